"""Block storage API: volumes (attach, detach, resize), snapshots (revert), backups, volume
types, and the pools for operators."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.billing import metering
from apps.compute.api.serializers import EstimateSerializer
from apps.compute.models import Instance
from apps.core.api.views import PortalViewSet, TenantScopedViewSet, validated
from apps.core.validation import lookup
from apps.storage import selectors, services
from apps.storage.api import serializers as s
from apps.storage.models import Backup, Snapshot, StoragePool, Volume, VolumeType


class VolumeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Block volumes. Changes answer 202 and continue in the background: watch `status`
    (creating → available ⇄ in-use, …) here or on the events socket."""

    model = Volume
    serializer_class = s.VolumeSerializer
    list_selector = staticmethod(selectors.list_volumes)
    filterset_fields = ["status", "name"]
    action_permissions = {
        "list": "view", "retrieve": "view", "create": "create", "partial_update": "change", "destroy": "delete",
        "resize": "resize", "attach": "attach", "detach": "attach", "restore": "delete", "estimate": "view",
    }

    def _out(self, volume, code=status.HTTP_202_ACCEPTED):
        return Response(s.VolumeSerializer(volume).data, status=code)

    def _instance(self, public_id: str | None):
        if public_id is None:
            return None
        return lookup(self.actor, Instance.objects, public_id, field="instance", label="instance")

    @extend_schema(request=s.VolumeEstimateSerializer, responses=EstimateSerializer,
                   summary="The price of a new volume before it is created (reads only)")
    @action(detail=False, methods=["post"])
    def estimate(self, request):
        query = validated(s.VolumeEstimateSerializer, request)
        volume_type = services.volume_type_for(self.actor, query["volume_type"])
        cost = metering.estimate_volume(metering.tenant_of(self.actor), volume_type=volume_type,
                                        size_gb=query["size_gb"])
        return Response(EstimateSerializer(cost).data)

    @extend_schema(request=s.VolumeCreateSerializer, responses={202: s.VolumeSerializer})
    def create(self, request):
        return self._out(services.create_volume(self.actor, **validated(s.VolumeCreateSerializer, request)))

    @extend_schema(request=s.VolumeUpdateSerializer, responses=s.VolumeSerializer)
    def partial_update(self, request, id=None):
        volume = self.get_object()
        data = validated(s.VolumeUpdateSerializer, request)
        return self._out(services.update_volume(self.actor, volume=volume, **data), status.HTTP_200_OK)

    @extend_schema(responses={202: s.VolumeSerializer},
                   summary="Delete: to the recycle bin (status `recycled`, restorable), or at once from there")
    def destroy(self, request, id=None):
        return self._out(services.delete_volume(self.actor, volume=self.get_object()))

    @extend_schema(request=None, responses=s.VolumeSerializer, summary="Restore from the recycle bin")
    @action(detail=True, methods=["post"])
    def restore(self, request, id=None):
        return self._out(services.restore_volume(self.actor, volume=self.get_object()), status.HTTP_200_OK)

    @extend_schema(request=s.VolumeResizeSerializer, responses={202: s.VolumeSerializer}, summary="Grow a volume")
    @action(detail=True, methods=["post"])
    def resize(self, request, id=None):
        volume = self.get_object()
        return self._out(services.resize_volume(self.actor, volume=volume, **validated(s.VolumeResizeSerializer, request)))

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


class _VolumeCopyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Snapshots and backups: taken of a volume (202, a task finishes it), deleted (202)."""

    # The services, set by subclasses (not `delete`: a view's HTTP method handlers are its
    # attributes named like the methods).
    take_service = delete_service = None
    action_permissions = {"list": "view", "retrieve": "view", "create": "create", "destroy": "delete"}
    filterset_fields = ["status", "name"]

    def _out(self, obj):
        return Response(self.get_serializer(obj).data, status=status.HTTP_202_ACCEPTED)

    def create(self, request):
        data = validated(s.VolumeCopyRequestSerializer, request)
        volume = lookup(self.actor, Volume.objects, data.pop("volume"), field="volume", label="volume")
        return self._out(type(self).take_service(self.actor, volume=volume, **data))

    def destroy(self, request, id=None):
        return self._out(type(self).delete_service(self.actor, **{self.model._meta.model_name: self.get_object()}))


@extend_schema_view(create=extend_schema(request=s.VolumeCopyRequestSerializer, responses={202: s.SnapshotSerializer}),
                    destroy=extend_schema(responses={202: s.SnapshotSerializer}))
class SnapshotViewSet(_VolumeCopyViewSet):
    """Volume snapshots: take one (attached volumes too), make volumes from it
    (`POST /volumes` with `snapshot`), revert its volume to it (detached), delete it."""

    model = Snapshot
    serializer_class = s.SnapshotSerializer
    list_selector = staticmethod(selectors.list_snapshots)
    take_service, delete_service = staticmethod(services.create_snapshot), staticmethod(services.delete_snapshot)
    action_permissions = {**_VolumeCopyViewSet.action_permissions, "revert": "view"}

    @extend_schema(request=None, responses={202: s.VolumeSerializer},
                   summary="Revert the (detached) volume to this snapshot")
    @action(detail=True, methods=["post"])
    def revert(self, request, id=None):
        volume = services.revert_to_snapshot(self.actor, snapshot=self.get_object())
        return Response(s.VolumeSerializer(volume).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(create=extend_schema(request=s.VolumeCopyRequestSerializer, responses={202: s.BackupSerializer}),
                    destroy=extend_schema(responses={202: s.BackupSerializer}))
class BackupViewSet(_VolumeCopyViewSet):
    """Full copies of volumes in the backup pool: they outlive the volume; restore one with
    `POST /volumes` and `backup`. Progress is an operation (`GET /operations`)."""

    model = Backup
    serializer_class = s.BackupSerializer
    list_selector = staticmethod(selectors.list_backups)
    take_service, delete_service = staticmethod(services.create_backup), staticmethod(services.delete_backup)
    filterset_fields = ["status", "name", "volume_public_id"]


class VolumeTypeViewSet(mixins.ListModelMixin, PortalViewSet):
    """The volume types tenants choose from."""

    serializer_class = s.VolumeTypeSerializer
    pagination_class = None

    def get_queryset(self):
        if self.schema_only:
            return VolumeType.objects.none()
        return selectors.list_volume_types(self.actor)


class StoragePoolViewSet(mixins.ListModelMixin, PortalViewSet):
    """Storage pools with capacity and use read from the backends (operators)."""

    operator_only = True
    serializer_class = s.StoragePoolSerializer

    def get_queryset(self):
        return StoragePool.objects.select_related("region", "availability_zone", "host")
