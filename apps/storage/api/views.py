"""Block storage API: volumes (attach, detach, resize), snapshots (revert), backups, volume
types, and the pools for operators."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.compute.models import Instance
from apps.core.api.views import PortalViewSet, TenantScopedViewSet, validated
from apps.core.validation import lookup
from apps.storage import selectors, services
from apps.storage.api import serializers as s
from apps.storage.models import Backup, Snapshot, StoragePool, Volume


class VolumeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Block volumes. Changes answer 202 and continue in the background: watch `status`
    (creating → available ⇄ in-use, …) here or on the events socket."""

    model = Volume
    serializer_class = s.VolumeSerializer
    list_selector = staticmethod(selectors.list_volumes)
    filterset_fields = ["status", "name"]
    action_permissions = {
        "list": "view", "retrieve": "view", "create": "create", "partial_update": "change", "destroy": "delete",
        "resize": "resize", "attach": "attach", "detach": "attach",
    }

    def _out(self, volume, code=status.HTTP_202_ACCEPTED):
        return Response(s.VolumeSerializer(volume).data, status=code)

    def _instance(self, public_id: str | None):
        if public_id is None:
            return None
        return lookup(self.actor, Instance.objects, public_id, field="instance", label="instance")

    @extend_schema(request=s.VolumeCreateSerializer, responses={202: s.VolumeSerializer})
    def create(self, request):
        return self._out(services.create_volume(self.actor, **validated(s.VolumeCreateSerializer, request)))

    @extend_schema(request=s.VolumeUpdateSerializer, responses=s.VolumeSerializer)
    def partial_update(self, request, id=None):
        volume = self.get_object()
        data = validated(s.VolumeUpdateSerializer, request)
        return self._out(services.update_volume(self.actor, volume=volume, **data), status.HTTP_200_OK)

    @extend_schema(responses={202: s.VolumeSerializer})
    def destroy(self, request, id=None):
        return self._out(services.delete_volume(self.actor, volume=self.get_object()))

    @extend_schema(request=s.ResizeSerializer, responses={202: s.VolumeSerializer}, summary="Grow a volume")
    @action(detail=True, methods=["post"])
    def resize(self, request, id=None):
        volume = self.get_object()
        return self._out(services.resize_volume(self.actor, volume=volume, **validated(s.ResizeSerializer, request)))

    @extend_schema(request=s.AttachSerializer, responses={202: s.VolumeSerializer}, summary="Attach to an instance")
    @action(detail=True, methods=["post"])
    def attach(self, request, id=None):
        volume = self.get_object()
        data = validated(s.AttachSerializer, request)
        instance = self._instance(data["instance"])
        return self._out(services.attach_volume(self.actor, volume=volume, instance=instance, device=data["device"]))

    @extend_schema(request=s.DetachSerializer, responses={202: s.VolumeSerializer}, summary="Detach")
    @action(detail=True, methods=["post"])
    def detach(self, request, id=None):
        volume = self.get_object()
        instance = self._instance(validated(s.DetachSerializer, request)["instance"])
        return self._out(services.detach_volume(self.actor, volume=volume, instance=instance))


class SnapshotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Volume snapshots: take one (attached volumes too), make volumes from it
    (`POST /volumes` with `snapshot`), revert its volume to it (detached), delete it."""

    model = Snapshot
    serializer_class = s.SnapshotSerializer
    list_selector = staticmethod(selectors.list_snapshots)
    filterset_fields = ["status", "name"]
    action_permissions = {"list": "view", "retrieve": "view", "create": "create", "destroy": "delete",
                          "revert": "view"}

    @extend_schema(request=s.SnapshotCreateSerializer, responses={202: s.SnapshotSerializer})
    def create(self, request):
        data = validated(s.SnapshotCreateSerializer, request)
        volume = lookup(self.actor, Volume.objects, data.pop("volume"), field="volume", label="volume")
        snapshot = services.create_snapshot(self.actor, volume=volume, **data)
        return Response(s.SnapshotSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={202: s.SnapshotSerializer})
    def destroy(self, request, id=None):
        snapshot = services.delete_snapshot(self.actor, snapshot=self.get_object())
        return Response(s.SnapshotSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: s.VolumeSerializer},
                   summary="Revert the (detached) volume to this snapshot")
    @action(detail=True, methods=["post"])
    def revert(self, request, id=None):
        volume = services.revert_to_snapshot(self.actor, snapshot=self.get_object())
        return Response(s.VolumeSerializer(volume).data, status=status.HTTP_202_ACCEPTED)


class BackupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Full copies of volumes in the backup pool: they outlive the volume; restore one with
    `POST /volumes` and `backup`. Progress is an operation (`GET /operations`)."""

    model = Backup
    serializer_class = s.BackupSerializer
    list_selector = staticmethod(selectors.list_backups)
    filterset_fields = ["status", "name", "volume_public_id"]
    action_permissions = {"list": "view", "retrieve": "view", "create": "create", "destroy": "delete"}

    @extend_schema(request=s.BackupCreateSerializer, responses={202: s.BackupSerializer})
    def create(self, request):
        data = validated(s.BackupCreateSerializer, request)
        volume = lookup(self.actor, Volume.objects, data.pop("volume"), field="volume", label="volume")
        backup = services.create_backup(self.actor, volume=volume, **data)
        return Response(s.BackupSerializer(backup).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={202: s.BackupSerializer})
    def destroy(self, request, id=None):
        backup = services.delete_backup(self.actor, backup=self.get_object())
        return Response(s.BackupSerializer(backup).data, status=status.HTTP_202_ACCEPTED)


class VolumeTypeViewSet(mixins.ListModelMixin, PortalViewSet):
    """The volume types tenants choose from."""

    serializer_class = s.VolumeTypeSerializer
    pagination_class = None

    def get_queryset(self):
        return selectors.list_volume_types(self.actor)


class StoragePoolViewSet(mixins.ListModelMixin, PortalViewSet):
    """Storage pools with capacity and use read from the backends (operators)."""

    operator_only = True
    serializer_class = s.StoragePoolSerializer

    def get_queryset(self):
        return StoragePool.objects.select_related("region", "availability_zone", "host")
