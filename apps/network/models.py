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


class VPC(TenantOwned):
    public_id_prefix = "vpc"
    area = "network"

    region = models.ForeignKey("compute.Region", on_delete=models.PROTECT, related_name="vpcs")
    description = models.CharField(max_length=255, blank=True)
    cidr = models.CharField(max_length=43, help_text="IPv4 block of the VPC, e.g. 10.0.0.0/16")
    ipv6_cidr = models.CharField(max_length=43, blank=True, help_text="IPv6 block (a /56), empty: IPv4 only")
    tags = models.JSONField(default=list, blank=True)

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
    protocol = models.CharField(max_length=4, choices=[(p, p) for p in (TCP, UDP, ICMP, ANY)], default=ANY)
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

    GATEWAY, PORT = "gateway", "port"

    subnet = models.ForeignKey(Subnet, on_delete=models.CASCADE, related_name="allocations")
    address = models.GenericIPAddressField()
    purpose = models.CharField(max_length=16, choices=[(GATEWAY, GATEWAY), (PORT, PORT)])
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
