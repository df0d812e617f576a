"""Compute API: instances (with power actions), flavors, images."""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from apps.billing import metering
from apps.compute import selectors, services
from apps.compute.api import serializers as s
from apps.compute.models import Cluster, Flavor, Host, Image, Instance, InstanceGroup
from apps.console import services as consoles
from apps.console.api.serializers import ConsoleTicketSerializer
from apps.core.exceptions import NotFound
from apps.core.api.views import PortalViewSet, TenantScopedViewSet, validated
from apps.core.validation import lookup



class InstanceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Virtual machines. Writes answer 202: the work continues in the background and the
    status moves (pending → building → running, …); watch it here or on the events socket."""

    model = Instance
    serializer_class = s.InstanceSerializer
    list_selector = staticmethod(selectors.list_instances)
    filterset_fields = ["status", "name"]
    action_permissions = {
        "list": "view", "retrieve": "view", "create": "create", "partial_update": "change", "destroy": "delete",
        "restore": "delete",
        "start": "start", "stop": "stop", "reboot": "reboot", "rebuild": "rebuild", "resize": "resize",
        "reset_password": "reset_password", "console_log": "view", "migrate": "migrate", "console": "console",
        "create_image": "create_image", "estimate": "view",
    }

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "actor": getattr(self, "actor", None)}

    def _out(self, instance, code=status.HTTP_202_ACCEPTED):
        return Response(s.InstanceSerializer(instance, context=self.get_serializer_context()).data, status=code)

    def _act(self, service, body=None, code=status.HTTP_202_ACCEPTED):
        """Run an instance action: the instance first (another tenant's → 404 before any
        400 about the body), then the body's fields as the service's keyword arguments."""
        instance = self.get_object()
        data = validated(body, self.request) if body else {}
        return self._out(service(self.actor, instance=instance, **data), code)

    @extend_schema(request=s.InstanceCreateSerializer, responses={202: s.InstanceSerializer(many=True)})
    def create(self, request):
        instances = services.create_instances(self.actor, **validated(s.InstanceCreateSerializer, request))
        data = s.InstanceSerializer(instances, many=True, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.InstanceEstimateSerializer, responses=s.EstimateSerializer,
                   summary="The price of new instances before they are created (reads only)")
    @action(detail=False, methods=["post"])
    def estimate(self, request):
        query = validated(s.InstanceEstimateSerializer, request)
        flavor = lookup(self.actor, Flavor.objects, query["flavor"], field="flavor", label="flavor", key="name")
        cost = metering.estimate_instance(metering.tenant_of(self.actor), flavor=flavor, count=query["count"],
                                          region=query["region"] or settings.PORTAL_DEFAULT_REGION)
        return Response(s.EstimateSerializer(cost).data)

    @extend_schema(request=s.InstanceUpdateSerializer, responses=s.InstanceSerializer)
    def partial_update(self, request, id=None):
        return self._act(services.update_instance, s.InstanceUpdateSerializer, status.HTTP_200_OK)

    @extend_schema(responses={202: s.InstanceSerializer},
                   parameters=[OpenApiParameter("force", bool, description="Delete at once, not to the recycle bin.")],
                   summary="Delete: to the recycle bin (status `recycled`, restorable), or at once with `force` or "
                           "from there")
    def destroy(self, request, id=None):
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        return self._out(services.delete_instance(self.actor, instance=self.get_object(), force=force))

    @extend_schema(request=None, responses={202: s.InstanceSerializer},
                   summary="Restore from the recycle bin (it starts again)")
    @action(detail=True, methods=["post"])
    def restore(self, request, id=None):
        return self._act(services.restore_instance)

    @extend_schema(request=None, responses={202: s.InstanceSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request, id=None):
        return self._act(services.start_instance)

    @extend_schema(request=s.StopSerializer, responses={202: s.InstanceSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, id=None):
        return self._act(services.stop_instance, s.StopSerializer)

    @extend_schema(request=s.RebootSerializer, responses={202: s.InstanceSerializer})
    @action(detail=True, methods=["post"])
    def reboot(self, request, id=None):
        return self._act(services.reboot_instance, s.RebootSerializer)

    @extend_schema(request=s.RebuildSerializer, responses={202: s.InstanceSerializer})
    @action(detail=True, methods=["post"])
    def rebuild(self, request, id=None):
        return self._act(services.rebuild_instance, s.RebuildSerializer)

    @extend_schema(request=s.ResizeSerializer, responses={202: s.InstanceSerializer})
    @action(detail=True, methods=["post"])
    def resize(self, request, id=None):
        return self._act(services.resize_instance, s.ResizeSerializer)

    @extend_schema(request=s.PasswordSerializer, responses=s.InstanceSerializer)
    @action(detail=True, methods=["post"], url_path="reset-password")
    def reset_password(self, request, id=None):
        return self._act(services.reset_password, s.PasswordSerializer, status.HTTP_200_OK)

    @extend_schema(responses={(200, "text/plain"): str}, summary="Serial console output (last 64 KiB)")
    @action(detail=True, methods=["get"], url_path="console-log")
    def console_log(self, request, id=None):
        text = services.console_log(self.actor, instance=self.get_object())
        return HttpResponse(text, content_type="text/plain; charset=utf-8")

    @extend_schema(request=s.CreateImageSerializer, responses={202: s.ImageSerializer},
                   summary="Make a private disk image of the instance's root disk (a task; see operations)")
    @action(detail=True, methods=["post"], url_path="create-image")
    def create_image(self, request, id=None):
        instance = self.get_object()
        image = services.create_image_from_instance(self.actor, instance=instance,
                                                    **validated(s.CreateImageSerializer, request))
        return Response(s.ImageSerializer(image).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={201: ConsoleTicketSerializer},
                   summary="Open the VNC console: a one-time ticket and the websocket URLs")
    @action(detail=True, methods=["post"])
    def console(self, request, id=None):
        ticket = consoles.issue_ticket(self.actor, instance=self.get_object())
        return Response(ConsoleTicketSerializer(ticket, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MigrateSerializer, responses={202: s.InstanceSerializer},
                   summary="Move to another host, live or cold (operators)")
    @action(detail=True, methods=["post"])
    def migrate(self, request, id=None):
        instance = self.get_object()
        body = validated(s.MigrateSerializer, request)
        host = _host(body["host"]) if body["host"] else None
        return self._out(services.migrate_instance(self.actor, instance=instance, host=host, live=body["live"]))


def _host(public_id: str) -> Host:
    host = Host.objects.select_related("cluster", "cluster__region").filter(public_id=public_id).first()
    if host is None:
        raise NotFound(f"No host {public_id}.", fields={"host": ["Unknown host."]})
    return host


class HostViewSet(mixins.ListModelMixin, PortalViewSet):
    """Hypervisor hosts (operators): add (capacity read from libvirt), set state, drain,
    evacuate when down, remove when empty."""

    operator_only = True
    serializer_class = s.HostSerializer
    lookup_url_kwarg = "id"
    filterset_fields = ["state", "arch"]

    def get_queryset(self):
        return Host.objects.select_related("cluster", "cluster__region")

    def retrieve(self, request, id=None):
        return Response(s.HostSerializer(_host(id)).data)

    @extend_schema(request=s.HostCreateSerializer, responses={201: s.HostSerializer})
    def create(self, request):
        data = validated(s.HostCreateSerializer, request)
        cluster = Cluster.objects.filter(region__code=data.pop("region"), code=data.pop("availability_zone")).first()
        if cluster is None:
            raise NotFound("No such availability zone.", fields={"availability_zone": ["Unknown zone."]})
        host = services.add_host(self.actor, cluster=cluster, **data)
        return Response(s.HostSerializer(host).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.HostStateSerializer, responses=s.HostSerializer)
    def partial_update(self, request, id=None):
        host = _host(id)
        data = validated(s.HostStateSerializer, request)
        return Response(s.HostSerializer(services.set_host_state(self.actor, host=host, **data)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        services.remove_host(self.actor, host=_host(id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: s.HostSerializer})
    @action(detail=True, methods=["post"])
    def drain(self, request, id=None):
        host = services.drain_host(self.actor, host=_host(id))
        return Response(s.HostSerializer(host).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: s.HostSerializer})
    @action(detail=True, methods=["post"])
    def evacuate(self, request, id=None):
        host = services.evacuate_host(self.actor, host=_host(id))
        return Response(s.HostSerializer(host).data, status=status.HTTP_202_ACCEPTED)


class FlavorViewSet(mixins.ListModelMixin, PortalViewSet):
    """Instance sizes offered to the current tenant."""

    serializer_class = s.FlavorSerializer

    def get_queryset(self):
        return Flavor.objects.none() if self.schema_only else selectors.list_flavors(self.actor)


class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Public images, the tenant's own and those shared with it. Upload a qcow2/raw disk
    image (multipart), download one, delete your own."""

    model = Image
    serializer_class = s.ImageSerializer
    list_selector = staticmethod(selectors.list_images)
    filterset_fields = ["os_type", "arch", "visibility", "boot"]
    action_permissions = {"list": "view", "retrieve": "view", "create": "create", "destroy": "delete",
                          "download": "view", "import_url": "create"}
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request={"multipart/form-data": s.ImageUploadSerializer}, responses={201: s.ImageSerializer})
    def create(self, request):
        data = validated(s.ImageUploadSerializer, request)
        upload = data.pop("file")
        image = services.upload_image(self.actor, chunks=upload.chunks(), **data)
        return Response(s.ImageSerializer(image).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ImageImportSerializer, responses={202: s.ImageSerializer},
                   summary="Import from an allowed URL")
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[JSONParser])
    def import_url(self, request):
        image = services.import_image(self.actor, **validated(s.ImageImportSerializer, request))
        return Response(s.ImageSerializer(image).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        services.delete_image(self.actor, image=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, summary="Download the image")
    @action(detail=True, methods=["get"])
    def download(self, request, id=None):
        image = self.get_object()
        path = Path(image.disk_file) if image.disk_file else None
        if image.boot != Image.DISK or path is None or not path.is_file():
            raise NotFound(f"Image {image.public_id} has no disk file to download.")
        return FileResponse(path.open("rb"), as_attachment=True, filename=f"{image.public_id}.{image.disk_format}",
                            content_type="application/octet-stream")


class InstanceGroupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Isolation groups: anti-affinity spreads their instances over distinct hosts, affinity
    keeps them on one. Give `isolation_group` when creating instances."""

    model = InstanceGroup
    serializer_class = s.InstanceGroupSerializer
    list_selector = staticmethod(selectors.list_instance_groups)
    action_permissions = {"list": "view", "retrieve": "view", "create": "create", "destroy": "delete"}

    @extend_schema(request=s.InstanceGroupCreateSerializer, responses={201: s.InstanceGroupSerializer})
    def create(self, request):
        group = services.create_instance_group(self.actor, **validated(s.InstanceGroupCreateSerializer, request))
        return Response(s.InstanceGroupSerializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        services.delete_instance_group(self.actor, group=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
