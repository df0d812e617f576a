"""Network API: VPCs, subnets, ports (network interfaces) and security groups with their
rules. Changes are written into the SDN before the answer: 201/200 means in place."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.compute.models import Instance
from apps.core.api.views import TenantScopedViewSet, validated
from apps.core.exceptions import NotFound
from apps.core.validation import lookup
from apps.network import selectors, services
from apps.network.api import serializers as s
from apps.network.models import VPC, Port, SecurityGroup, Subnet

_CRUD = {"list": "view", "retrieve": "view", "create": "create", "partial_update": "change", "destroy": "delete"}


class _NetworkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Create / update / delete through the services named by the subclass; the answer is the
    object as the list shows it."""

    action_permissions = _CRUD
    create_serializer = update_serializer = None
    parent = None  # (field, model, label) of the object a create names, e.g. ("vpc", VPC, "VPC")

    def _out(self, obj, code=status.HTTP_200_OK):
        obj = self.get_queryset().filter(pk=obj.pk).first() or obj
        return Response(self.get_serializer(obj).data, status=code)

    def _create(self, request, service):
        data = validated(self.create_serializer, request)
        field, model, label = self.parent
        data[field] = lookup(self.actor, model.objects, data[field], field=field, label=label)
        return self._out(service(self.actor, **data), status.HTTP_201_CREATED)

    def _update(self, request, service, name):
        obj = self.get_object()
        return self._out(service(self.actor, **{name: obj}, **validated(self.update_serializer, request)))

    def _destroy(self, service, name):
        service(self.actor, **{name: self.get_object()})
        return Response(status=status.HTTP_204_NO_CONTENT)


class VpcViewSet(_NetworkViewSet):
    """VPCs: an IPv4 block (and optionally IPv6), a router, a default security group."""

    model = VPC
    serializer_class = s.VpcSerializer
    update_serializer = s.VpcUpdateSerializer
    list_selector = staticmethod(selectors.list_vpcs)
    filterset_fields = ["name", "region__code"]

    @extend_schema(request=s.VpcCreateSerializer, responses={201: s.VpcSerializer})
    def create(self, request):
        return self._out(services.create_vpc(self.actor, **validated(s.VpcCreateSerializer, request)),
                         status.HTTP_201_CREATED)

    @extend_schema(request=s.VpcUpdateSerializer, responses=s.VpcSerializer)
    def partial_update(self, request, id=None):
        return self._update(request, services.update_vpc, "vpc")

    @extend_schema(responses={204: None}, summary="Delete an empty VPC (409 lists what is in it)")
    def destroy(self, request, id=None):
        return self._destroy(services.delete_vpc, "vpc")


class SubnetViewSet(_NetworkViewSet):
    """Subnets of a VPC, with DHCP (IPv4, and DHCPv6 + router advertisements when dual-stack)."""

    model = Subnet
    serializer_class = s.SubnetSerializer
    create_serializer, update_serializer = s.SubnetCreateSerializer, s.SubnetUpdateSerializer
    parent = ("vpc", VPC, "VPC")
    list_selector = staticmethod(selectors.list_subnets)
    filterset_fields = ["name", "vpc__public_id"]

    @extend_schema(request=s.SubnetCreateSerializer, responses={201: s.SubnetSerializer})
    def create(self, request):
        return self._create(request, services.create_subnet)

    @extend_schema(request=s.SubnetUpdateSerializer, responses=s.SubnetSerializer)
    def partial_update(self, request, id=None):
        return self._update(request, services.update_subnet, "subnet")

    @extend_schema(responses={204: None}, summary="Delete a subnet without ports (409 lists them)")
    def destroy(self, request, id=None):
        return self._destroy(services.delete_subnet, "subnet")


class PortViewSet(_NetworkViewSet):
    """Network interfaces (ENIs): a MAC and addresses on a subnet, security groups, port
    security and allowed address pairs."""

    model = Port
    serializer_class = s.PortSerializer
    create_serializer, update_serializer = s.PortCreateSerializer, s.PortUpdateSerializer
    parent = ("subnet", Subnet, "subnet")
    list_selector = staticmethod(selectors.list_ports)
    filterset_fields = ["name", "subnet__public_id", "subnet__vpc__public_id", "instance__public_id"]
    action_permissions = {**_CRUD, "attach": "change", "detach": "change"}

    @extend_schema(request=s.PortCreateSerializer, responses={201: s.PortSerializer})
    def create(self, request):
        return self._create(request, services.create_port)

    @extend_schema(request=s.PortUpdateSerializer, responses=s.PortSerializer)
    def partial_update(self, request, id=None):
        return self._update(request, services.update_port, "port")

    @extend_schema(responses={204: None}, summary="Delete a detached port")
    def destroy(self, request, id=None):
        return self._destroy(services.delete_port, "port")

    @extend_schema(request=s.PortAttachSerializer, responses=s.PortSerializer,
                   summary="Plug into a running or stopped instance (hot plug when running)")
    @action(detail=True, methods=["post"])
    def attach(self, request, id=None):
        port = self.get_object()
        ref = validated(s.PortAttachSerializer, request)["instance"]
        instance = lookup(self.actor, Instance.objects, ref, field="instance", label="instance")
        return self._out(services.attach_port(self.actor, port=port, instance=instance))

    @extend_schema(request=None, responses=s.PortSerializer, summary="Unplug a secondary interface")
    @action(detail=True, methods=["post"])
    def detach(self, request, id=None):
        return self._out(services.detach_port(self.actor, port=self.get_object()))


class SecurityGroupViewSet(_NetworkViewSet):
    """Security groups (stateful allow rules; everything else is dropped) and their rules."""

    model = SecurityGroup
    serializer_class = s.SecurityGroupSerializer
    create_serializer, update_serializer = s.SecurityGroupCreateSerializer, s.SecurityGroupUpdateSerializer
    parent = ("vpc", VPC, "VPC")
    list_selector = staticmethod(selectors.list_security_groups)
    filterset_fields = ["name", "vpc__public_id"]
    action_permissions = {**_CRUD, "add_rule": "change", "delete_rule": "change"}

    @extend_schema(request=s.SecurityGroupCreateSerializer, responses={201: s.SecurityGroupSerializer})
    def create(self, request):
        return self._create(request, services.create_security_group)

    @extend_schema(request=s.SecurityGroupUpdateSerializer, responses=s.SecurityGroupSerializer)
    def partial_update(self, request, id=None):
        return self._update(request, services.update_security_group, "group")

    @extend_schema(responses={204: None}, summary="Delete a group no port uses and no rule names")
    def destroy(self, request, id=None):
        return self._destroy(services.delete_security_group, "group")

    @extend_schema(request=s.RuleCreateSerializer, responses={201: s.RuleSerializer},
                   summary="Add an allow rule (applies to running instances at once)")
    @action(detail=True, methods=["post"], url_path="rules")
    def add_rule(self, request, id=None):
        group = self.get_object()
        rule = services.add_security_group_rule(self.actor, group=group, **validated(s.RuleCreateSerializer, request))
        return Response(s.RuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None}, summary="Remove a rule",
                   parameters=[OpenApiParameter("rule_id", str, OpenApiParameter.PATH, description="sgr-…")])
    @action(detail=True, methods=["delete"], url_path=r"rules/(?P<rule_id>[^/.]+)")
    def delete_rule(self, request, id=None, rule_id=None):
        group = self.get_object()
        rule = group.rules.filter(public_id=rule_id).first()
        if rule is None:
            raise NotFound(f"No rule {rule_id} in {group.public_id}.")
        services.delete_security_group_rule(self.actor, rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)
