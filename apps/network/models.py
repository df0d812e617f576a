"""Virtual networks (tenants): VPCs, their subnets, ports (elastic network interfaces) with
their addresses, and security groups.

The database is the desired state; apps.network.drivers writes it into OVN's northbound
database: a VPC is a logical router, a subnet a logical switch plugged into it (with DHCP
options), a port a logical switch port, a security group a port group with ACLs. Every OVN row
carries the public id of what it stands for in its external_ids, which is how the reconciler
finds drift and orphans."""

from __future__ import annotations

import ipaddress
import uuid

from django.db import models

from apps.core.models import PublicIdModel, TenantOwned


# Layer-4 protocols of port mappings and listeners (one enum in the API schema).
TRANSPORT_CHOICES = [("tcp", "tcp"), ("udp", "udp")]


class ExternalNetwork(PublicIdModel):
    """A provider network with public addresses (operators): a VLAN (or flat) segment behind a
    physical network name that gateway hosts map to a bridge. EIPs and VPCs' router gateways
    take their addresses from its ranges. In OVN: a switch `ext-<name>` with a localnet port."""

    public_id_prefix = "extnet"

    name = models.SlugField(max_length=64, unique=True)
    region = models.ForeignKey("compute.Region", on_delete=models.PROTECT, related_name="external_networks")
    cidr = models.CharField(max_length=43, help_text="e.g. 203.0.113.0/24")
    gateway_ip = models.GenericIPAddressField(protocol="IPv4", help_text="The upstream router on this network")
    # [{"start": "203.0.113.10", "end": "203.0.113.200"}]: addresses the portal may hand out
    ranges = models.JSONField(default=list)
    # The same for IPv6, when the network has it (empty: IPv4 only).
    ipv6_cidr = models.CharField(max_length=43, blank=True)
    ipv6_gateway_ip = models.GenericIPAddressField(protocol="IPv6", null=True, blank=True)
    ipv6_ranges = models.JSONField(default=list, blank=True)
    physical_network = models.CharField(max_length=64, default="physnet1",
                                        help_text="ovn-bridge-mappings name on the gateway hosts")
    vlan = models.PositiveSmallIntegerField(null=True, blank=True, help_text="802.1Q tag; empty: flat")
    # OVN chassis (system-id) that carry VPCs' gateway ports, most preferred first
    gateway_chassis = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="Where EIPs of its region come from by default")

    class Meta:
        ordering = ["region__code", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.cidr)

    @property
    def switch(self) -> str:
        return f"ext-{self.name}"


class VPC(TenantOwned):
    public_id_prefix = "vpc"
    area = "network"

    region = models.ForeignKey("compute.Region", on_delete=models.PROTECT, related_name="vpcs")
    description = models.CharField(max_length=255, blank=True)
    cidr = models.CharField(max_length=43, help_text="IPv4 block of the VPC, e.g. 10.0.0.0/16")
    ipv6_cidr = models.CharField(max_length=43, blank=True, help_text="IPv6 block (a /56), empty: IPv4 only")
    tags = models.JSONField(default=list, blank=True)
    # The router's leg on an external network, there while EIPs or NAT gateways of the VPC need it.
    external_network = models.ForeignKey(ExternalNetwork, on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="vpcs")
    gateway_ip = models.GenericIPAddressField(protocol="IPv4", null=True, blank=True,
                                              help_text="The router's address on the external network")
    gateway_ipv6 = models.GenericIPAddressField(protocol="IPv6", null=True, blank=True)
    gateway_mac = models.CharField(max_length=17, blank=True)

    class Meta(TenantOwned.Meta):
        verbose_name, verbose_name_plural = "VPC", "VPCs"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.cidr)

    @property
    def ipv6_network(self) -> ipaddress.IPv6Network | None:
        return ipaddress.ip_network(self.ipv6_cidr) if self.ipv6_cidr else None


class Subnet(TenantOwned):
    public_id_prefix = "subnet"
    area = "network"

    vpc = models.ForeignKey(VPC, on_delete=models.PROTECT, related_name="subnets")
    description = models.CharField(max_length=255, blank=True)
    cidr = models.CharField(max_length=43)
    gateway_ip = models.GenericIPAddressField(protocol="IPv4")
    ipv6_cidr = models.CharField(max_length=43, blank=True)
    ipv6_gateway_ip = models.GenericIPAddressField(protocol="IPv6", null=True, blank=True)
    # The VPC router's port on this subnet answers ARP/ND and DHCP with this address.
    router_mac = models.CharField(max_length=17, unique=True)
    dhcp_enabled = models.BooleanField(default=True)
    dns_nameservers = models.JSONField(default=list, blank=True)
    # [{"destination": "192.168.0.0/24", "nexthop": "10.0.1.5"}], pushed by DHCP (option 121).
    host_routes = models.JSONField(default=list, blank=True)
    mtu = models.PositiveIntegerField(default=1442)
    tags = models.JSONField(default=list, blank=True)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.cidr)

    @property
    def ipv6_network(self) -> ipaddress.IPv6Network | None:
        return ipaddress.ip_network(self.ipv6_cidr) if self.ipv6_cidr else None


class SecurityGroup(TenantOwned):
    """Stateful firewall rules for the ports that are members. In OVN: a port group whose
    ACLs are the rules; remote-group rules match the address sets OVN keeps for port groups."""

    public_id_prefix = "sg"
    area = "network"

    vpc = models.ForeignKey(VPC, on_delete=models.PROTECT, related_name="security_groups")
    description = models.CharField(max_length=255, blank=True)
    is_default = models.BooleanField(default=False, help_text="The VPC's default group (not deletable).")

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(fields=["vpc"], condition=models.Q(is_default=True),
                                    name="one_default_security_group_per_vpc"),
            models.UniqueConstraint(fields=["vpc", "name"], name="security_group_name_unique_in_vpc"),
        ]

    @property
    def port_group(self) -> str:
        """OVN port group names allow letters, digits and underscores only."""
        return "pg_" + self.public_id.replace("-", "_")


class SecurityGroupRule(PublicIdModel):
    public_id_prefix = "sgr"

    INGRESS, EGRESS = "ingress", "egress"
    IPV4, IPV6 = "IPv4", "IPv6"
    TCP, UDP, ICMP, ANY = "tcp", "udp", "icmp", "any"

    security_group = models.ForeignKey(SecurityGroup, on_delete=models.CASCADE, related_name="rules")
    direction = models.CharField(max_length=8, choices=[(INGRESS, INGRESS), (EGRESS, EGRESS)])
    ethertype = models.CharField(max_length=4, choices=[(IPV4, IPV4), (IPV6, IPV6)], default=IPV4)
    PROTOCOL_CHOICES = [(p, p) for p in (TCP, UDP, ICMP, ANY)]
    protocol = models.CharField(max_length=4, choices=PROTOCOL_CHOICES, default=ANY)
    # tcp/udp: the destination port range; icmp: type (min) and code (max), either may be empty.
    port_range_min = models.PositiveIntegerField(null=True, blank=True)
    port_range_max = models.PositiveIntegerField(null=True, blank=True)
    remote_ip_prefix = models.CharField(max_length=43, blank=True)
    remote_group = models.ForeignKey(SecurityGroup, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="referencing_rules")
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["security_group", "direction", "created_at", "id"]

    def __str__(self) -> str:
        return self.public_id


class Port(TenantOwned):
    """An elastic network interface: a MAC and addresses on a subnet, attached to at most one
    instance at a time. `uuid` names the OVN logical switch port and is the `interfaceid` of the
    libvirt interface (libvirt wants a UUID there)."""

    public_id_prefix = "eni"
    area = "network"

    AVAILABLE, IN_USE = "available", "in-use"

    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="ports")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    description = models.CharField(max_length=255, blank=True)
    mac_address = models.CharField(max_length=17, unique=True)
    instance = models.ForeignKey("compute.Instance", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="ports")
    device_index = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0: the primary NIC")
    delete_on_termination = models.BooleanField(default=False)
    port_security_enabled = models.BooleanField(default=True)
    # [{"ip_address": "10.0.1.0/28" or an address, "mac_address": ""}]: addresses it may also send from
    allowed_address_pairs = models.JSONField(default=list, blank=True)
    security_groups = models.ManyToManyField(SecurityGroup, blank=True, related_name="ports")
    tags = models.JSONField(default=list, blank=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["instance", "device_index"], name="port_device_index_unique")]

    @property
    def status(self) -> str:
        return self.IN_USE if self.instance_id else self.AVAILABLE

    @property
    def switch_port(self) -> str:
        return str(self.uuid)


class IPAllocation(models.Model):
    """One address of a subnet in use: the gateway, a port's address. The unique constraint is
    what keeps two ports from getting one address, whatever races."""

    GATEWAY, PORT, VIP, SERVICE = "gateway", "port", "vip", "service"

    subnet = models.ForeignKey(Subnet, on_delete=models.CASCADE, related_name="allocations")
    address = models.GenericIPAddressField()
    purpose = models.CharField(max_length=16, choices=[(GATEWAY, GATEWAY), (PORT, PORT), (VIP, VIP),
                                                       (SERVICE, SERVICE)])
    port = models.ForeignKey(Port, on_delete=models.CASCADE, null=True, blank=True, related_name="addresses")

    class Meta:
        ordering = ["subnet", "id"]
        constraints = [models.UniqueConstraint(fields=["subnet", "address"], name="address_once_per_subnet")]

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version

    def __str__(self) -> str:
        return self.address


class NetworkOrphan(models.Model):
    """A backend object of the portal's that no row explains, since `first_seen`: the
    reconcile removes it when it is still there a grace period later."""

    kind = models.CharField(max_length=16)
    name = models.CharField(max_length=64)
    first_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="network_orphan_once")]


class ElasticIP(TenantOwned):
    """A public address of an external network held by a tenant: bound to a port (one-to-one
    NAT to its private address) or to a NAT gateway (the address it translates to), or neither."""

    public_id_prefix = "eip"
    area = "network"

    external_network = models.ForeignKey(ExternalNetwork, on_delete=models.PROTECT, related_name="eips")
    address = models.GenericIPAddressField()
    bandwidth_mbps = models.PositiveIntegerField(default=100)
    port = models.OneToOneField(Port, on_delete=models.PROTECT, null=True, blank=True, related_name="eip")
    load_balancer = models.OneToOneField("network.LoadBalancer", on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="eip")
    description = models.CharField(max_length=255, blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["external_network", "address"], name="eip_address_unique")]

    @property
    def ip_version(self) -> int:
        return 6 if ":" in self.address else 4

    @property
    def status(self) -> str:
        if self.port_id or self.load_balancer_id or hasattr(self, "nat_gateway"):
            return "bound"
        return "available"


class NatGateway(TenantOwned):
    """Source NAT for a VPC's subnets (all, or the chosen ones) to its EIP, and destination NAT
    of EIP ports to private addresses (port mappings)."""

    public_id_prefix = "nat"
    area = "network"

    vpc = models.ForeignKey(VPC, on_delete=models.PROTECT, related_name="nat_gateways")
    eip = models.OneToOneField(ElasticIP, on_delete=models.PROTECT, related_name="nat_gateway")
    # Empty: every subnet of the VPC (its whole block); else only these.
    subnets = models.ManyToManyField(Subnet, blank=True, related_name="nat_gateways")
    description = models.CharField(max_length=255, blank=True)


class PortMapping(PublicIdModel):
    """EIP:external_port → internal_ip:internal_port through a NAT gateway (an OVN load
    balancer on the VPC's router)."""

    public_id_prefix = "dnat"

    nat_gateway = models.ForeignKey(NatGateway, on_delete=models.CASCADE, related_name="port_mappings")
    protocol = models.CharField(max_length=3, choices=TRANSPORT_CHOICES)
    external_port = models.PositiveIntegerField()
    internal_ip = models.GenericIPAddressField(protocol="IPv4")
    internal_port = models.PositiveIntegerField()
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["nat_gateway", "protocol", "external_port"]
        constraints = [models.UniqueConstraint(fields=["nat_gateway", "protocol", "external_port"],
                                               name="port_mapping_external_port_unique")]

    def __str__(self) -> str:
        return self.public_id


class HaVip(TenantOwned):
    """A private address of a subnet that moves between chosen ports (keepalived / VRRP style):
    whichever of them announces it (gratuitous ARP) receives its traffic. In OVN: a `virtual`
    logical switch port whose virtual parents are those ports, which may send from it."""

    public_id_prefix = "havip"
    area = "network"

    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="havips")
    allocation = models.OneToOneField(IPAllocation, on_delete=models.PROTECT, related_name="havip")
    ports = models.ManyToManyField(Port, blank=True, related_name="havips")
    description = models.CharField(max_length=255, blank=True)

    class Meta(TenantOwned.Meta):
        verbose_name, verbose_name_plural = "HA VIP", "HA VIPs"

    @property
    def address(self) -> str:
        return self.allocation.address


class LoadBalancer(TenantOwned):
    """A layer-4 load balancer: a virtual address of a subnet (and optionally an EIP) whose
    listeners spread TCP/UDP connections over members. In OVN: one Load_Balancer row per
    listener, on the VPC's router and switches, with health checks by ovn-controller."""

    public_id_prefix = "lb"
    area = "network"

    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="load_balancers")
    allocation = models.OneToOneField(IPAllocation, on_delete=models.PROTECT, related_name="load_balancer")
    description = models.CharField(max_length=255, blank=True)

    @property
    def vip(self) -> str:
        return self.allocation.address


class Listener(PublicIdModel):
    public_id_prefix = "lsnr"

    HASH, SOURCE_IP = "hash", "source_ip"

    load_balancer = models.ForeignKey(LoadBalancer, on_delete=models.CASCADE, related_name="listeners")
    name = models.CharField(max_length=128, blank=True)
    protocol = models.CharField(max_length=3, choices=TRANSPORT_CHOICES)
    port = models.PositiveIntegerField()
    # hash: each connection to any member (OVN hashes the 5-tuple); source_ip: a client sticks to one
    algorithm = models.CharField(max_length=16, choices=[(HASH, HASH), (SOURCE_IP, SOURCE_IP)], default=HASH)
    health_check = models.BooleanField(default=True)
    health_interval = models.PositiveIntegerField(default=5, help_text="seconds between probes")
    health_timeout = models.PositiveIntegerField(default=3)
    health_success = models.PositiveIntegerField(default=2, help_text="probes to count a member up")
    health_failure = models.PositiveIntegerField(default=3, help_text="probes to count a member down")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["load_balancer", "protocol", "port"]
        constraints = [models.UniqueConstraint(fields=["load_balancer", "protocol", "port"],
                                               name="listener_port_unique")]

    def __str__(self) -> str:
        return self.public_id

    @property
    def ovn_name(self) -> str:
        return f"lb-{self.public_id}"


class Member(PublicIdModel):
    """A backend of a listener: an address of the VPC (an instance's or a port's) and a port.
    Weight 0 takes it out of the rotation."""

    public_id_prefix = "mbr"

    listener = models.ForeignKey(Listener, on_delete=models.CASCADE, related_name="members")
    address = models.GenericIPAddressField(protocol="IPv4")
    port = models.PositiveIntegerField()
    weight = models.PositiveSmallIntegerField(default=1)
    instance = models.ForeignKey("compute.Instance", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["listener", "address", "port"]
        constraints = [models.UniqueConstraint(fields=["listener", "address", "port"], name="member_unique")]

    def __str__(self) -> str:
        return self.public_id
