"""Network API: VPCs, subnets, ports (network interfaces) and security groups with their
rules. Changes are written into the SDN before the answer: 201/200 means in place."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.billing import metering
from apps.compute.api.serializers import EstimateSerializer
from apps.compute.models import Instance, Region
from apps.core.api.views import PortalViewSet, TenantScopedViewSet, validated
from apps.core.exceptions import NotFound, ValidationFailed
from apps.core.validation import lookup
from apps.network import edge_services as edge
from apps.network import lb_services as lb
from apps.network import selectors, services
from apps.network.api import serializers as s
from apps.network.models import (
    VPC,
    ElasticIP,
    ExternalNetwork,
    HaVip,
    LoadBalancer,
    NatGateway,
    Port,
    SecurityGroup,
    Subnet,
)

def _path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.PATH, description=description)


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


class ExternalNetworkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """External (provider) networks EIPs come from. Everyone lists them; operators manage
    them (ranges, VLAN, gateway chassis)."""

    serializer_class = s.ExternalNetworkSerializer
    lookup_field, lookup_url_kwarg = "public_id", "id"
    pagination_class = None

    def get_queryset(self):
        return ExternalNetwork.objects.select_related("region")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "actor": getattr(self, "actor", None)}

    def _out(self, network, code=status.HTTP_200_OK):
        return Response(self.get_serializer(network).data, status=code)

    @extend_schema(request=s.ExternalNetworkCreateSerializer, responses={201: s.ExternalNetworkSerializer})
    def create(self, request):
        data = validated(s.ExternalNetworkCreateSerializer, request)
        region = Region.objects.filter(code=data.pop("region")).first()
        if region is None:
            raise ValidationFailed("Unknown region.", fields={"region": ["Unknown region."]})
        return self._out(edge.create_external_network(self.actor, region=region, **data), status.HTTP_201_CREATED)

    @extend_schema(request=s.ExternalNetworkUpdateSerializer, responses=s.ExternalNetworkSerializer)
    def partial_update(self, request, id=None):
        network = self.get_object()
        data = validated(s.ExternalNetworkUpdateSerializer, request)
        return self._out(edge.update_external_network(self.actor, network=network, **data))

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        edge.delete_external_network(self.actor, network=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ElasticIPViewSet(_NetworkViewSet):
    """Elastic IPs: public addresses held by the tenant, bound to a port or an instance
    (one-to-one NAT) or used by a NAT gateway; each with a bandwidth limit."""

    model = ElasticIP
    serializer_class = s.ElasticIPSerializer
    update_serializer = s.ElasticIPUpdateSerializer
    list_selector = staticmethod(selectors.list_eips)
    filterset_fields = ["name", "address"]
    action_permissions = {**_CRUD, "bind": "change", "unbind": "change", "estimate": "view"}

    @extend_schema(request=s.ElasticIPEstimateSerializer, responses=EstimateSerializer,
                   summary="The price of a new EIP before it is allocated (reads only)")
    @action(detail=False, methods=["post"])
    def estimate(self, request):
        query = validated(s.ElasticIPEstimateSerializer, request)
        cost = metering.estimate_eip(metering.tenant_of(self.actor), bandwidth_mbps=query["bandwidth_mbps"],
                                     region=query["region"] or settings.PORTAL_DEFAULT_REGION)
        return Response(EstimateSerializer(cost).data)

    @extend_schema(request=s.ElasticIPCreateSerializer, responses={201: s.ElasticIPSerializer})
    def create(self, request):
        return self._out(edge.allocate_eip(self.actor, **validated(s.ElasticIPCreateSerializer, request)),
                         status.HTTP_201_CREATED)

    @extend_schema(request=s.ElasticIPUpdateSerializer, responses=s.ElasticIPSerializer)
    def partial_update(self, request, id=None):
        return self._update(request, edge.update_eip, "eip")

    @extend_schema(responses={204: None}, summary="Release an unbound EIP")
    def destroy(self, request, id=None):
        return self._destroy(edge.release_eip, "eip")

    @extend_schema(request=s.ElasticIPBindSerializer, responses=s.ElasticIPSerializer,
                   summary="Bind to a port or an instance (its primary interface)")
    @action(detail=True, methods=["post"])
    def bind(self, request, id=None):
        eip = self.get_object()
        data = validated(s.ElasticIPBindSerializer, request)
        targets = {"port": (Port, "port"), "instance": (Instance, "instance"),
                   "load_balancer": (LoadBalancer, "load balancer")}
        found = {field: lookup(self.actor, model.objects, data[field], field=field, label=label)
                 if data[field] else None for field, (model, label) in targets.items()}
        return self._out(edge.bind_eip(self.actor, eip=eip, **found))

    @extend_schema(request=None, responses=s.ElasticIPSerializer, summary="Unbind from its port")
    @action(detail=True, methods=["post"])
    def unbind(self, request, id=None):
        return self._out(edge.unbind_eip(self.actor, eip=self.get_object()))


class NatGatewayViewSet(_NetworkViewSet):
    """NAT gateways: source NAT of a VPC's subnets to an EIP, and port mappings into the VPC."""

    model = NatGateway
    serializer_class = s.NatGatewaySerializer
    update_serializer = s.NatGatewayUpdateSerializer
    list_selector = staticmethod(selectors.list_nat_gateways)
    filterset_fields = ["name", "vpc__public_id"]
    action_permissions = {**_CRUD, "add_mapping": "change", "delete_mapping": "change"}

    @extend_schema(request=s.NatGatewayCreateSerializer, responses={201: s.NatGatewaySerializer})
    def create(self, request):
        data = validated(s.NatGatewayCreateSerializer, request)
        data["vpc"] = lookup(self.actor, VPC.objects, data["vpc"], field="vpc", label="VPC")
        data["eip"] = lookup(self.actor, ElasticIP.objects, data["eip"], field="eip", label="EIP")
        return self._out(edge.create_nat_gateway(self.actor, **data), status.HTTP_201_CREATED)

    @extend_schema(request=s.NatGatewayUpdateSerializer, responses=s.NatGatewaySerializer)
    def partial_update(self, request, id=None):
        return self._update(request, edge.update_nat_gateway, "nat")

    @extend_schema(responses={204: None}, summary="Delete with its port mappings (the EIP stays)")
    def destroy(self, request, id=None):
        return self._destroy(edge.delete_nat_gateway, "nat")

    @extend_schema(request=s.PortMappingCreateSerializer, responses={201: s.PortMappingSerializer},
                   summary="Map EIP:port to a private address and port")
    @action(detail=True, methods=["post"], url_path="port-mappings")
    def add_mapping(self, request, id=None):
        nat = self.get_object()
        mapping = edge.add_port_mapping(self.actor, nat=nat, **validated(s.PortMappingCreateSerializer, request))
        return Response(s.PortMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None}, summary="Remove a port mapping",
                   parameters=[OpenApiParameter("mapping_id", str, OpenApiParameter.PATH, description="dnat-…")])
    @action(detail=True, methods=["delete"], url_path=r"port-mappings/(?P<mapping_id>[^/.]+)")
    def delete_mapping(self, request, id=None, mapping_id=None):
        nat = self.get_object()
        mapping = nat.port_mappings.filter(public_id=mapping_id).first()
        if mapping is None:
            raise NotFound(f"No port mapping {mapping_id} in {nat.public_id}.")
        edge.delete_port_mapping(self.actor, mapping=mapping)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HaVipViewSet(_NetworkViewSet):
    """HA VIPs: a private address that moves between chosen ports of a subnet (VRRP style)."""

    model = HaVip
    serializer_class = s.HaVipSerializer
    create_serializer, update_serializer = s.HaVipCreateSerializer, s.HaVipUpdateSerializer
    parent = ("subnet", Subnet, "subnet")
    list_selector = staticmethod(selectors.list_havips)
    filterset_fields = ["name", "subnet__public_id"]

    @extend_schema(request=s.HaVipCreateSerializer, responses={201: s.HaVipSerializer})
    def create(self, request):
        return self._create(request, services.create_havip)

    @extend_schema(request=s.HaVipUpdateSerializer, responses=s.HaVipSerializer)
    def partial_update(self, request, id=None):
        return self._update(request, services.update_havip, "havip")

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        return self._destroy(services.delete_havip, "havip")


class LoadBalancerViewSet(_NetworkViewSet):
    """Layer-4 load balancers: a VIP in a subnet (and an EIP if bound), TCP/UDP listeners,
    members (instances or addresses of the VPC) with health checks and their health."""

    model = LoadBalancer
    serializer_class = s.LoadBalancerSerializer
    create_serializer, update_serializer = s.LoadBalancerCreateSerializer, s.LoadBalancerUpdateSerializer
    parent = ("subnet", Subnet, "subnet")
    list_selector = staticmethod(selectors.list_load_balancers)
    filterset_fields = ["name", "subnet__public_id"]
    action_permissions = {**_CRUD, "add_listener": "change", "listener": "change", "add_member": "change",
                          "member": "change"}

    @extend_schema(request=s.LoadBalancerCreateSerializer, responses={201: s.LoadBalancerSerializer})
    def create(self, request):
        return self._create(request, lb.create_load_balancer)

    @extend_schema(request=s.LoadBalancerUpdateSerializer, responses=s.LoadBalancerSerializer)
    def partial_update(self, request, id=None):
        return self._update(request, lb.update_load_balancer, "load_balancer")

    @extend_schema(responses={204: None}, summary="Delete with its listeners (not while an EIP is bound)")
    def destroy(self, request, id=None):
        return self._destroy(lb.delete_load_balancer, "load_balancer")

    def _listener(self, listener_id):
        found = self.get_object().listeners.filter(public_id=listener_id).first()
        if found is None:
            raise NotFound(f"No listener {listener_id}.")
        return found

    @extend_schema(request=s.ListenerCreateSerializer, responses={201: s.LoadBalancerSerializer},
                   summary="Add a TCP/UDP listener")
    @action(detail=True, methods=["post"], url_path="listeners")
    def add_listener(self, request, id=None):
        balancer = self.get_object()
        lb.add_listener(self.actor, load_balancer=balancer, **validated(s.ListenerCreateSerializer, request))
        return self._out(balancer, status.HTTP_201_CREATED)

    @extend_schema(methods=["PATCH"], request=s.ListenerUpdateSerializer, responses=s.LoadBalancerSerializer,
                   parameters=[_path("listener_id", "lsnr-…")])
    @extend_schema(methods=["DELETE"], request=None, responses={204: None},
                   parameters=[_path("listener_id", "lsnr-…")])
    @action(detail=True, methods=["patch", "delete"], url_path=r"listeners/(?P<listener_id>[^/.]+)")
    def listener(self, request, id=None, listener_id=None):
        listener = self._listener(listener_id)
        if request.method == "DELETE":
            lb.delete_listener(self.actor, listener=listener)
            return Response(status=status.HTTP_204_NO_CONTENT)
        lb.update_listener(self.actor, listener=listener, **validated(s.ListenerUpdateSerializer, request))
        return self._out(self.get_object())

    @extend_schema(request=s.LbMemberCreateSerializer, responses={201: s.LoadBalancerSerializer},
                   parameters=[_path("listener_id", "lsnr-…")], summary="Add a member (an instance or an address)")
    @action(detail=True, methods=["post"], url_path=r"listeners/(?P<listener_id>[^/.]+)/members")
    def add_member(self, request, id=None, listener_id=None):
        listener = self._listener(listener_id)
        data = validated(s.LbMemberCreateSerializer, request)
        if data["instance"]:
            data["instance"] = lookup(self.actor, Instance.objects, data["instance"], field="instance",
                                      label="instance")
        lb.add_member(self.actor, listener=listener, **data)
        return self._out(self.get_object(), status.HTTP_201_CREATED)

    @extend_schema(methods=["PATCH"], request=s.LbMemberUpdateSerializer, responses=s.LoadBalancerSerializer,
                   parameters=[_path("listener_id", "lsnr-…"), _path("member_id", "mbr-…")])
    @extend_schema(methods=["DELETE"], request=None, responses={204: None},
                   parameters=[_path("listener_id", "lsnr-…"), _path("member_id", "mbr-…")])
    @action(detail=True, methods=["patch", "delete"],
            url_path=r"listeners/(?P<listener_id>[^/.]+)/members/(?P<member_id>[^/.]+)")
    def member(self, request, id=None, listener_id=None, member_id=None):
        member = self._listener(listener_id).members.filter(public_id=member_id).first()
        if member is None:
            raise NotFound(f"No member {member_id}.")
        if request.method == "DELETE":
            lb.delete_member(self.actor, member=member)
            return Response(status=status.HTTP_204_NO_CONTENT)
        lb.update_member(self.actor, member=member, **validated(s.LbMemberUpdateSerializer, request))
        return self._out(self.get_object())
