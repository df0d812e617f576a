from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.network.models import (
    VPC,
    ElasticIP,
    ExternalNetwork,
    HaVip,
    Listener,
    LoadBalancer,
    Member,
    NatGateway,
    Port,
    PortMapping,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from apps.network.selectors import ipv4_available


def _tags():
    return serializers.ListField(child=serializers.CharField(max_length=128), required=False, max_length=50)


class VpcSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    region = serializers.CharField(source="region.code")
    default_security_group = serializers.SerializerMethodField()
    subnet_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = VPC
        fields = ["id", "name", "description", "region", "cidr", "ipv6_cidr", "default_security_group",
                  "subnet_count", "tags", "created_at"]
        read_only_fields = fields

    def get_default_security_group(self, vpc) -> str | None:
        groups = getattr(vpc, "default_groups", None)
        if groups is None:
            groups = list(vpc.security_groups.filter(is_default=True))
        return groups[0].public_id if groups else None


class VpcCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    cidr = serializers.CharField(max_length=43, help_text="IPv4 block, /16 to /28, e.g. 10.0.0.0/16")
    region = serializers.CharField(max_length=64, required=False, allow_null=True, default=None)
    ipv6 = serializers.BooleanField(default=False, help_text="Also give the VPC an IPv6 /56 (unique local)")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    tags = _tags()


class VpcUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    tags = _tags()


class RouteSerializer(serializers.Serializer):
    destination = serializers.CharField(max_length=43)
    nexthop = serializers.CharField(max_length=45)


class SubnetSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    vpc = serializers.CharField(source="vpc.public_id")
    host_routes = RouteSerializer(many=True)
    available_ips = serializers.SerializerMethodField(help_text="Free IPv4 addresses")

    class Meta:
        model = Subnet
        fields = ["id", "name", "description", "vpc", "cidr", "gateway_ip", "ipv6_cidr", "ipv6_gateway_ip",
                  "dhcp_enabled", "dns_nameservers", "host_routes", "mtu", "available_ips", "tags", "created_at"]
        read_only_fields = fields

    def get_available_ips(self, subnet) -> int:
        return ipv4_available(subnet)


class SubnetCreateSerializer(serializers.Serializer):
    vpc = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=128)
    cidr = serializers.CharField(max_length=43, help_text="Inside the VPC's block, /29 at least")
    gateway_ip = serializers.CharField(max_length=45, required=False, allow_null=True, default=None,
                                       help_text="Default: the first address")
    ipv6 = serializers.BooleanField(default=False, help_text="Add the VPC's next free IPv6 /64")
    dhcp_enabled = serializers.BooleanField(default=True)
    dns_nameservers = serializers.ListField(child=serializers.CharField(max_length=45), required=False, default=list)
    host_routes = RouteSerializer(many=True, required=False, default=list)
    mtu = serializers.IntegerField(required=False, default=1442)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    tags = _tags()


class SubnetUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    dhcp_enabled = serializers.BooleanField(required=False)
    dns_nameservers = serializers.ListField(child=serializers.CharField(max_length=45), required=False)
    host_routes = RouteSerializer(many=True, required=False)
    tags = _tags()


class AddressPairSerializer(serializers.Serializer):
    ip_address = serializers.CharField(max_length=43, help_text="An address or a CIDR")
    mac_address = serializers.CharField(max_length=17, required=False, allow_blank=True, default="")


class PortSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    subnet = serializers.CharField(source="subnet.public_id")
    vpc = serializers.CharField(source="subnet.vpc.public_id")
    status = serializers.CharField()
    ip_address = serializers.SerializerMethodField()
    ipv6_address = serializers.SerializerMethodField()
    instance = serializers.CharField(source="instance.public_id", default=None)
    security_groups = serializers.SerializerMethodField()
    allowed_address_pairs = AddressPairSerializer(many=True)

    class Meta:
        model = Port
        fields = ["id", "name", "description", "vpc", "subnet", "mac_address", "ip_address", "ipv6_address", "status",
                  "instance", "device_index", "security_groups", "port_security_enabled", "allowed_address_pairs",
                  "tags", "created_at"]
        read_only_fields = fields

    def _address(self, port, v6: bool) -> str | None:
        return next((a.address for a in port.addresses.all() if (":" in a.address) == v6), None)

    def get_ip_address(self, port) -> str | None:
        return self._address(port, False)

    def get_ipv6_address(self, port) -> str | None:
        return self._address(port, True)

    def get_security_groups(self, port) -> list[str]:
        return sorted(g.public_id for g in port.security_groups.all())


class PortCreateSerializer(serializers.Serializer):
    subnet = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    ip_address = serializers.CharField(max_length=45, required=False, allow_null=True, default=None,
                                       help_text="Default: the lowest free address")
    ipv6_address = serializers.CharField(max_length=45, required=False, allow_null=True, default=None)
    security_groups = serializers.ListField(child=serializers.CharField(max_length=32), required=False,
                                            allow_null=True, default=None, max_length=10,
                                            help_text="Default: the VPC's default group")
    port_security_enabled = serializers.BooleanField(default=True)
    allowed_address_pairs = AddressPairSerializer(many=True, required=False, default=list)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    tags = _tags()


class PortUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    security_groups = serializers.ListField(child=serializers.CharField(max_length=32), required=False,
                                            max_length=10)
    port_security_enabled = serializers.BooleanField(required=False)
    allowed_address_pairs = AddressPairSerializer(many=True, required=False)
    tags = _tags()


class PortAttachSerializer(serializers.Serializer):
    instance = serializers.CharField(max_length=32, help_text="Instance (i-…) of the same tenant")


class RuleSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    remote_group = serializers.CharField(source="remote_group.public_id", default=None)

    class Meta:
        model = SecurityGroupRule
        fields = ["id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
                  "remote_group", "description", "created_at"]
        read_only_fields = fields


class RuleCreateSerializer(serializers.Serializer):
    direction = serializers.CharField(max_length=8, help_text="ingress or egress")
    ethertype = serializers.CharField(max_length=4, required=False, default="IPv4", help_text="IPv4 or IPv6")
    protocol = serializers.CharField(max_length=4, required=False, default="any", help_text="tcp, udp, icmp or any")
    port_range_min = serializers.IntegerField(required=False, allow_null=True, default=None,
                                              help_text="tcp/udp: first port; icmp: type")
    port_range_max = serializers.IntegerField(required=False, allow_null=True, default=None,
                                              help_text="tcp/udp: last port; icmp: code")
    remote_ip_prefix = serializers.CharField(max_length=43, required=False, allow_blank=True, default="",
                                             help_text="Source (ingress) or destination (egress) CIDR")
    remote_group = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                         help_text="Or a security group of the same VPC: its members' addresses")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class SecurityGroupSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    vpc = serializers.CharField(source="vpc.public_id")
    rules = RuleSerializer(many=True, read_only=True)

    class Meta:
        model = SecurityGroup
        fields = ["id", "name", "description", "vpc", "is_default", "rules", "created_at"]
        read_only_fields = fields


class SecurityGroupCreateSerializer(serializers.Serializer):
    vpc = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class SecurityGroupUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)



class ExternalNetworkSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    region = serializers.CharField(source="region.code")

    class Meta:
        model = ExternalNetwork
        fields = ["id", "name", "region", "cidr", "gateway_ip", "ranges", "ipv6_cidr", "ipv6_gateway_ip", "ipv6_ranges",
                  "physical_network", "vlan", "gateway_chassis", "enabled", "is_default"]
        read_only_fields = fields

    def to_representation(self, network):
        data = super().to_representation(network)
        actor = self.context.get("actor")
        if actor is None or not actor.is_operator:  # how the platform is wired is the operators' business
            for private in ("ranges", "physical_network", "vlan", "gateway_chassis", "gateway_ip", "ipv6_gateway_ip",
                            "ipv6_ranges"):
                data.pop(private)
        return data


class RangeSerializer(serializers.Serializer):
    start = serializers.CharField(max_length=45)
    end = serializers.CharField(max_length=45)


class ExternalNetworkCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    region = serializers.CharField(max_length=64)
    cidr = serializers.CharField(max_length=43)
    gateway_ip = serializers.CharField(max_length=45)
    ranges = RangeSerializer(many=True)
    physical_network = serializers.CharField(max_length=64, required=False, default="physnet1")
    vlan = serializers.IntegerField(required=False, allow_null=True, default=None)
    gateway_chassis = serializers.ListField(child=serializers.CharField(max_length=128), required=False, default=list)
    is_default = serializers.BooleanField(required=False, default=False)
    ipv6_cidr = serializers.CharField(max_length=43, required=False, allow_blank=True, default="")
    ipv6_gateway_ip = serializers.CharField(max_length=45, required=False, allow_null=True, default=None)
    ipv6_ranges = RangeSerializer(many=True, required=False, default=list)


class ExternalNetworkUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    ranges = RangeSerializer(many=True, required=False)
    gateway_chassis = serializers.ListField(child=serializers.CharField(max_length=128), required=False)
    is_default = serializers.BooleanField(required=False)


class ElasticIPSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    external_network = serializers.CharField(source="external_network.name")
    region = serializers.CharField(source="external_network.region.code")
    status = serializers.CharField()
    port = serializers.CharField(source="port.public_id", default=None)
    instance = serializers.SerializerMethodField()
    nat_gateway = serializers.SerializerMethodField()
    load_balancer = serializers.CharField(source="load_balancer.public_id", default=None)
    ip_version = serializers.IntegerField(read_only=True)

    class Meta:
        model = ElasticIP
        fields = ["id", "name", "description", "address", "ip_version", "external_network", "region", "bandwidth_mbps",
                  "status", "port", "instance", "nat_gateway", "load_balancer", "tags", "created_at"]
        read_only_fields = fields

    def get_instance(self, eip) -> str | None:
        return eip.port.instance.public_id if eip.port_id and eip.port.instance_id else None

    def get_nat_gateway(self, eip) -> str | None:
        nat = getattr(eip, "nat_gateway", None)
        return nat.public_id if nat else None


class ElasticIPEstimateSerializer(serializers.Serializer):
    bandwidth_mbps = serializers.IntegerField(min_value=1, max_value=10000, default=100)
    region = serializers.CharField(max_length=64, required=False, allow_null=True, default=None,
                                   help_text="Default: the platform's region")


class ElasticIPCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    external_network = serializers.CharField(max_length=64, required=False, allow_null=True, default=None,
                                             help_text="Name or id; default: the region's default")
    region = serializers.CharField(max_length=64, required=False, allow_null=True, default=None)
    bandwidth_mbps = serializers.IntegerField(required=False, default=100)
    ip_version = serializers.IntegerField(required=False, default=4, help_text="4, or 6 where the network has IPv6")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    tags = _tags()


class ElasticIPUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    bandwidth_mbps = serializers.IntegerField(required=False)
    tags = _tags()


class ElasticIPBindSerializer(serializers.Serializer):
    port = serializers.CharField(max_length=32, required=False, allow_null=True, default=None)
    instance = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                     help_text="Or an instance: its primary interface")
    load_balancer = serializers.CharField(max_length=32, required=False, allow_null=True, default=None,
                                          help_text="Or a load balancer: its listeners answer on the EIP too")


class PortMappingSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = PortMapping
        fields = ["id", "protocol", "external_port", "internal_ip", "internal_port", "description", "created_at"]
        read_only_fields = fields


class PortMappingCreateSerializer(serializers.Serializer):
    protocol = serializers.CharField(max_length=3, help_text="tcp or udp")
    external_port = serializers.IntegerField()
    internal_ip = serializers.CharField(max_length=45)
    internal_port = serializers.IntegerField()
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class NatGatewaySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    vpc = serializers.CharField(source="vpc.public_id")
    eip = serializers.CharField(source="eip.public_id")
    address = serializers.CharField(source="eip.address")
    subnets = serializers.SerializerMethodField(help_text="Empty: the whole VPC")
    port_mappings = PortMappingSerializer(many=True, read_only=True)

    class Meta:
        model = NatGateway
        fields = ["id", "name", "description", "vpc", "eip", "address", "subnets", "port_mappings", "created_at"]
        read_only_fields = fields

    def get_subnets(self, nat) -> list[str]:
        return sorted(s.public_id for s in nat.subnets.all())


class NatGatewayCreateSerializer(serializers.Serializer):
    vpc = serializers.CharField(max_length=32)
    eip = serializers.CharField(max_length=32, help_text="An unbound EIP (eip-…): the address it translates to")
    name = serializers.CharField(max_length=128)
    subnets = serializers.ListField(child=serializers.CharField(max_length=32), required=False, allow_null=True,
                                    default=None, help_text="Default: the whole VPC")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class NatGatewayUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    subnets = serializers.ListField(child=serializers.CharField(max_length=32), required=False)


class HaVipSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    subnet = serializers.CharField(source="subnet.public_id")
    address = serializers.CharField(source="allocation.address")
    ports = serializers.SerializerMethodField()

    class Meta:
        model = HaVip
        fields = ["id", "name", "description", "subnet", "address", "ports", "created_at"]
        read_only_fields = fields

    def get_ports(self, havip) -> list[str]:
        return sorted(p.public_id for p in havip.ports.all())


class HaVipCreateSerializer(serializers.Serializer):
    subnet = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=128)
    ip_address = serializers.CharField(max_length=45, required=False, allow_null=True, default=None,
                                       help_text="Default: the lowest free address")
    ports = serializers.ListField(child=serializers.CharField(max_length=32), required=False, default=list,
                                  max_length=16, help_text="Ports (of the subnet) that may hold the address")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class HaVipUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    ports = serializers.ListField(child=serializers.CharField(max_length=32), required=False, max_length=16)


class LbMemberSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    instance = serializers.CharField(source="instance.public_id", default=None)
    health = serializers.SerializerMethodField(help_text="online, offline, drained, unchecked or unknown")

    class Meta:
        model = Member
        fields = ["id", "address", "port", "weight", "instance", "health"]
        read_only_fields = fields

    def get_health(self, member) -> str:
        return self.context.get("health", {}).get(member.pk, "unknown")


class ListenerSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    members = serializers.SerializerMethodField()

    class Meta:
        model = Listener
        fields = ["id", "name", "protocol", "port", "algorithm", "health_check", "health_interval", "health_timeout",
                  "health_success", "health_failure", "members"]
        read_only_fields = fields

    @extend_schema_field(LbMemberSerializer(many=True))
    def get_members(self, listener):
        from apps.network.lb_services import member_health

        return LbMemberSerializer(listener.members.all(), many=True, context={"health": member_health(listener)}).data


class LoadBalancerSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    vpc = serializers.CharField(source="subnet.vpc.public_id")
    subnet = serializers.CharField(source="subnet.public_id")
    vip = serializers.CharField(source="allocation.address")
    eip = serializers.SerializerMethodField(help_text="The bound EIP's address")
    listeners = ListenerSerializer(many=True, read_only=True)

    class Meta:
        model = LoadBalancer
        fields = ["id", "name", "description", "vpc", "subnet", "vip", "eip", "listeners", "created_at"]
        read_only_fields = fields

    def get_eip(self, lb) -> str | None:
        eip = getattr(lb, "eip", None)
        return eip.address if eip else None


class LoadBalancerCreateSerializer(serializers.Serializer):
    subnet = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=128)
    ip_address = serializers.CharField(max_length=45, required=False, allow_null=True, default=None,
                                       help_text="The VIP; default: the lowest free address")
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class LoadBalancerUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)


class _HealthFields(serializers.Serializer):
    health_interval = serializers.IntegerField(required=False, allow_null=True, default=None)
    health_timeout = serializers.IntegerField(required=False, allow_null=True, default=None)
    health_success = serializers.IntegerField(required=False, allow_null=True, default=None)
    health_failure = serializers.IntegerField(required=False, allow_null=True, default=None)


class ListenerCreateSerializer(_HealthFields):
    protocol = serializers.CharField(max_length=3, help_text="tcp or udp")
    port = serializers.IntegerField()
    name = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    algorithm = serializers.CharField(max_length=16, required=False, default="hash",
                                      help_text="hash (per connection) or source_ip (a client sticks to a member)")
    health_check = serializers.BooleanField(required=False, default=True)


class ListenerUpdateSerializer(_HealthFields):
    name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    algorithm = serializers.CharField(max_length=16, required=False)
    health_check = serializers.BooleanField(required=False)


class LbMemberCreateSerializer(serializers.Serializer):
    port = serializers.IntegerField()
    instance = serializers.CharField(max_length=32, required=False, allow_null=True, default=None)
    address = serializers.CharField(max_length=45, required=False, allow_null=True, default=None)
    weight = serializers.IntegerField(required=False, default=1, help_text="0 takes it out of the rotation")


class LbMemberUpdateSerializer(serializers.Serializer):
    weight = serializers.IntegerField()
