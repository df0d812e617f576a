"""Virtual network services: VPCs, subnets (with IPAM), ports and security groups.

Each service checks, writes the rows, and then writes the change into the SDN through the
network driver, inside the audited transaction: if the control plane refuses or does not
answer, the rows roll back and what the service had already made in the backend is removed
again, so nothing is left half-made on either side. The scheduled reconcile repairs drift and
removes orphans (apps.network.tasks)."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from apps.compute.models import Region
from apps.core import events, permissions
from apps.core.audit import audited, record
from apps.core.exceptions import Conflict, Unavailable, ValidationFailed
from apps.core.validation import clean_name, lookup
from apps.network.backends import get_network_driver
from apps.network.drivers import base as driver
from apps.network.models import (
    VPC,
    HaVip,
    IPAllocation,
    LoadBalancer,
    NetworkOrphan,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)

if TYPE_CHECKING:
    from apps.core.actor import Actor

log = logging.getLogger(__name__)

# Spec builders, IPAM (part of the audited port services), what compute calls while it creates,
# builds and deletes instances (part of those audited actions), and the scheduled reconcile
# (which records what it did as the system).
UNAUDITED = ("router_spec", "switch_spec", "port_spec", "security_group_spec", "havip_spec", "reconcile_network",
             "allocate_address", "nic_spec", "instance_nics", "resolve_subnet", "create_instance_port",
             "release_ports", "publish_network")

VPC_PREFIXES = (16, 28)  # like AWS: a /16 at most, a /28 at least
SUBNET_MAX_PREFIX = 29  # network, gateway and broadcast leave a /29 five addresses
MAX_DNS, MAX_ROUTES, MAX_ADDRESS_PAIRS, MAX_RULES_PER_GROUP = 5, 20, 10, 100
MTU_RANGE = (1280, 8942)
# An object in the backend that no row explains is removed only when a later reconcile still
# finds it, at least this long after the first sighting: a service may be between its backend
# write and its commit.
ORPHAN_GRACE = timedelta(minutes=5)


def publish_network(obj, action: str) -> None:
    """Tell the tenant's pages; `vpc` lets a VPC's page skip the others' changes."""
    vpc = obj if isinstance(obj, VPC) else getattr(obj, "vpc", None)
    if vpc is None and hasattr(obj, "subnet_id"):
        vpc = obj.subnet.vpc
    if vpc is None and obj._meta.model_name == "elasticip":
        from apps.network.edge_services import vpc_of

        vpc = vpc_of(obj)
    events.publish(obj.tenant_id, {"type": "network", "kind": obj._meta.model_name, "id": obj.public_id,
                                   "vpc": vpc.public_id if vpc else None, "action": action})


# --- backend ------------------------------------------------------------------------------

@contextmanager
def _backend():
    """Run backend writes; on a failure undo the ones already done (in reverse) and answer
    503 (did not answer) or 409 (refused). Yields the undo list to append to."""
    undo: list = []
    try:
        yield undo
    except driver.NetworkError as exc:
        for step in reversed(undo):
            try:
                step()
            except driver.NetworkError:
                log.warning("could not undo a network change; the reconcile will remove it", exc_info=True)
        if isinstance(exc, driver.Unavailable):
            raise Unavailable(f"The network control plane is unavailable: {exc}") from exc
        raise Conflict(f"The change was refused: {exc}", code="network_error") from exc


def havip_spec(havip) -> driver.HaVipSpec:
    return driver.HaVipSpec(name=havip.public_id, tenant=havip.tenant.public_id, switch=havip.subnet.public_id,
                            address=havip.allocation.address,
                            parents=tuple(sorted(p.switch_port for p in havip.ports.all())))


def router_spec(vpc: VPC) -> driver.RouterSpec:
    """The VPC's router; with a gateway, also its NAT (EIPs bound to ports, NAT gateways),
    port mappings and the EIPs' bandwidth limits (also those of EIPs on load balancers, which
    are the load balancers' own VIPs)."""
    from apps.network.models import ElasticIP, NatGateway

    if not vpc.gateway_ip:
        return driver.RouterSpec(name=vpc.public_id, tenant=vpc.tenant.public_id)
    external = vpc.external_network
    addresses, nexthops = [f"{vpc.gateway_ip}/{external.network.prefixlen}"], [external.gateway_ip]
    if vpc.gateway_ipv6 and external.ipv6_cidr:
        addresses.append(f"{vpc.gateway_ipv6}/{ipaddress.ip_network(external.ipv6_cidr).prefixlen}")
        nexthops.append(external.ipv6_gateway_ip)
    gateway = driver.Gateway(network=external.switch, mac=vpc.gateway_mac, addresses=tuple(addresses),
                             nexthops=tuple(nexthops), chassis=tuple(external.gateway_chassis))
    nats, forwards, limits = [], [], []
    for eip in ElasticIP.objects.filter(port__subnet__vpc=vpc).prefetch_related("port__addresses"):
        private = next(a.address for a in eip.port.addresses.all() if (":" in a.address) == (eip.ip_version == 6))
        nats.append(driver.Nat(eip.public_id, "dnat_and_snat", eip.address, private))
        limits.append(driver.RateLimit(eip.public_id, eip.address, eip.bandwidth_mbps * 1000))
    for nat in NatGateway.objects.filter(vpc=vpc).select_related("eip").prefetch_related("subnets", "port_mappings"):
        for cidr in sorted(s.cidr for s in nat.subnets.all()) or [vpc.cidr]:
            nats.append(driver.Nat(f"{nat.public_id}:{cidr}", "snat", nat.eip.address, cidr))
        forwards += [driver.PortForward(m.public_id, m.protocol, nat.eip.address, m.external_port, m.internal_ip,
                                        m.internal_port) for m in nat.port_mappings.all()]
        limits.append(driver.RateLimit(nat.eip.public_id, nat.eip.address, nat.eip.bandwidth_mbps * 1000))
    for eip in ElasticIP.objects.filter(load_balancer__subnet__vpc=vpc):
        limits.append(driver.RateLimit(eip.public_id, eip.address, eip.bandwidth_mbps * 1000))
    return driver.RouterSpec(name=vpc.public_id, tenant=vpc.tenant.public_id, gateway=gateway, nats=tuple(nats),
                             forwards=tuple(forwards), limits=tuple(limits))


def switch_spec(subnet: Subnet) -> driver.SwitchSpec:
    return driver.SwitchSpec(
        name=subnet.public_id, tenant=subnet.tenant.public_id, router=subnet.vpc.public_id,
        router_mac=subnet.router_mac, cidr=subnet.cidr, gateway=subnet.gateway_ip, ipv6_cidr=subnet.ipv6_cidr,
        ipv6_gateway=subnet.ipv6_gateway_ip or "", dhcp=subnet.dhcp_enabled, dns=tuple(subnet.dns_nameservers),
        routes=tuple(driver.Route(r["destination"], r["nexthop"]) for r in subnet.host_routes), mtu=subnet.mtu)


def security_group_spec(group: SecurityGroup) -> driver.SecurityGroupSpec:
    rules = tuple(
        driver.Rule(id=r.public_id, direction=r.direction, ethertype=r.ethertype, protocol=r.protocol,
                    port_min=r.port_range_min, port_max=r.port_range_max, remote_prefix=r.remote_ip_prefix,
                    remote_group=r.remote_group.port_group if r.remote_group_id else "")
        for r in group.rules.select_related("remote_group"))
    return driver.SecurityGroupSpec(name=group.port_group, public_id=group.public_id,
                                    tenant=group.tenant.public_id, rules=rules)


def port_spec(port: Port) -> driver.PortSpec:
    """The port; the HA VIPs it may hold are addresses it may send from, like address pairs."""
    pairs = tuple(driver.AddressPair(ip=p["ip_address"], mac=p.get("mac_address") or "")
                  for p in port.allowed_address_pairs)
    pairs += tuple(driver.AddressPair(ip=v.allocation.address, mac="") for v in port.havips.all())
    return driver.PortSpec(
        name=port.switch_port, public_id=port.public_id, tenant=port.tenant.public_id, switch=port.subnet.public_id,
        mac=port.mac_address, addresses=tuple(a.address for a in sorted(port.addresses.all(), key=lambda a: a.id)),
        port_security=port.port_security_enabled, allowed_pairs=pairs,
        security_groups=tuple(sorted(g.port_group for g in port.security_groups.all())),
        device=port.instance.public_id if port.instance_id else "")


# --- checks shared by the services ----------------------------------------------------------

def _network(value: str, field: str, *, version: int | None = None, strict: bool = True):
    try:
        network = ipaddress.ip_network((value or "").strip(), strict=strict)
    except ValueError as exc:
        raise ValidationFailed(f"{value!r} is not a network in CIDR notation: {exc}.",
                               fields={field: ["A network such as 10.0.0.0/16, without host bits."]}) from None
    if version and network.version != version:
        raise ValidationFailed(f"{value} is not an IPv{version} network.", fields={field: [f"IPv{version} only."]})
    return network


def _address(value: str, field: str):
    try:
        return ipaddress.ip_address((value or "").strip())
    except ValueError:
        raise ValidationFailed(f"{value!r} is not an IP address.", fields={field: ["An IP address."]}) from None


def _unusable(network) -> bool:
    return network.is_multicast or network.is_loopback or network.is_link_local or network.is_reserved


def _is_int(value) -> bool:
    """JSON numbers only: true and false are not ports or sizes."""
    return isinstance(value, int) and not isinstance(value, bool)


def _random_mac() -> str:
    """Locally administered, unicast; unique in the database."""
    while True:
        mac = ":".join(f"{b:02x}" for b in [0x02, *secrets.token_bytes(5)])
        if not Port.objects.filter(mac_address=mac).exists() and not Subnet.objects.filter(router_mac=mac).exists():
            return mac


def _locked(queryset, pk: int):
    """The row, locked for this transaction (not the rows it joins: those may be null)."""
    return queryset.select_for_update(of=("self",)).get(pk=pk)


def _tags(tags: list | None) -> list[str]:
    return [clean_name(t, "tags") for t in tags or []]


def _region(region: str | None) -> Region:
    from django.conf import settings

    code = region or settings.PORTAL_DEFAULT_REGION
    found = Region.objects.filter(code=code).first()
    if found is None:
        raise ValidationFailed(f"No region {code}.", fields={"region": ["Unknown region."]})
    return found


# --- VPCs ---------------------------------------------------------------------------------

@audited("vpc.create", area="network")
def create_vpc(actor: Actor, *, name: str, cidr: str, region: str | None = None, ipv6: bool = False,
               description: str = "", tags: list[str] | None = None) -> VPC:
    """A VPC: an IPv4 block (/16 to /28), optionally an IPv6 /56 (a random unique-local block),
    a router, and its default security group (all egress, ingress from its own members)."""
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, "network", "create")
    name = clean_name(name)
    network = _network(cidr, "cidr", version=4)
    low, high = VPC_PREFIXES
    if not low <= network.prefixlen <= high or _unusable(network):
        raise ValidationFailed(f"A VPC block is an IPv4 /{low} to /{high} of unicast addresses, not {network}.",
                               fields={"cidr": [f"/{low} to /{high}, e.g. 10.0.0.0/16."]})
    vpc_region = _region(region)
    ipv6_cidr = ""
    if ipv6:
        ipv6_cidr = str(ipaddress.IPv6Network(((0xFD << 120) | (secrets.randbits(48) << 72), 56)))
    quotas.consume(tenant, region=vpc_region.code, amounts={"vpcs": 1, "security_groups": 1,
                                                          "security_group_rules": 4 if ipv6 else 2})
    vpc = VPC.objects.create(tenant=tenant, name=name, created_by=actor.user, region=vpc_region, cidr=str(network),
                             ipv6_cidr=ipv6_cidr, description=description, tags=_tags(tags))
    group = SecurityGroup.objects.create(tenant=tenant, vpc=vpc, name="default", is_default=True,
                                         created_by=actor.user,
                                         description="All egress; ingress from members of this group.")
    for ethertype in [SecurityGroupRule.IPV4] + ([SecurityGroupRule.IPV6] if ipv6 else []):
        SecurityGroupRule.objects.create(security_group=group, direction=SecurityGroupRule.EGRESS,
                                         ethertype=ethertype)
        SecurityGroupRule.objects.create(security_group=group, direction=SecurityGroupRule.INGRESS,
                                         ethertype=ethertype, remote_group=group)
    backend = get_network_driver()
    with _backend() as undo:
        backend.ensure_router(router_spec(vpc))
        undo.append(lambda: backend.delete_router(vpc.public_id))
        backend.ensure_security_group(security_group_spec(group))
    publish_network(vpc, "created")
    return vpc


@audited("vpc.update", area="network")
def update_vpc(actor: Actor, *, vpc: VPC, name: str | None = None, description: str | None = None,
               tags: list[str] | None = None) -> VPC:
    """Names and labels; the address blocks are fixed (subnets are carved from them)."""
    permissions.require(actor, vpc, "change")
    if name is not None:
        vpc.name = clean_name(name)
    if description is not None:
        vpc.description = description
    if tags is not None:
        vpc.tags = _tags(tags)
    vpc.save(update_fields=["name", "description", "tags", "updated_at"])
    publish_network(vpc, "updated")
    return vpc


def _listing(rows) -> str:
    names = [f"{row.public_id}" + (f" ({row.name})" if row.name else "") for row in rows[:20]]
    return ", ".join(names) + (" …" if len(rows) > 20 else "")


@audited("vpc.delete", area="network")
def delete_vpc(actor: Actor, *, vpc: VPC) -> VPC:
    """Only an empty VPC: its subnets and its own security groups go first (409 lists them)."""
    from apps.tenants import quotas

    permissions.require(actor, vpc, "delete")
    vpc = _locked(VPC.objects, vpc.pk)
    subnets = list(vpc.subnets.all())
    groups = list(vpc.security_groups.filter(is_default=False))
    nat_gateways = list(vpc.nat_gateways.all())
    if subnets or groups or nat_gateways:
        parts = ([f"subnets {_listing(subnets)}"] if subnets else []) + (
            [f"security groups {_listing(groups)}"] if groups else []) + (
            [f"NAT gateways {_listing(nat_gateways)}"] if nat_gateways else [])
        raise Conflict(f"VPC {vpc.public_id} still has {' and '.join(parts)}: delete them first.", code="in_use")
    default = vpc.security_groups.filter(is_default=True).first()
    rules = default.rules.count() if default else 0
    if default:
        SecurityGroupRule.objects.filter(remote_group=default).delete()
        default.delete()
    vpc.delete()
    quotas.release(vpc.tenant, region=vpc.region.code,
                   amounts={"vpcs": 1, "security_groups": 1 if default else 0, "security_group_rules": rules})
    backend = get_network_driver()
    with _backend():
        if default:
            backend.delete_security_group(default.port_group)
        backend.delete_router(vpc.public_id)
    publish_network(vpc, "deleted")
    return vpc


# --- subnets ------------------------------------------------------------------------------

def _check_dns(servers: list | None) -> list[str]:
    servers = list(servers or [])
    if len(servers) > MAX_DNS:
        raise ValidationFailed(f"At most {MAX_DNS} DNS servers.", fields={"dns_nameservers": [f"At most {MAX_DNS}."]})
    return [str(_address(s, "dns_nameservers")) for s in servers]


def _check_routes(routes: list | None, network) -> list[dict]:
    routes = list(routes or [])
    if len(routes) > MAX_ROUTES:
        raise ValidationFailed(f"At most {MAX_ROUTES} routes.", fields={"host_routes": [f"At most {MAX_ROUTES}."]})
    checked = []
    for route in routes:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise ValidationFailed("A route is {destination, nexthop}.",
                                   fields={"host_routes": ["Each route needs destination and nexthop."]})
        destination = _network(route["destination"], "host_routes", version=4)
        nexthop = _address(route["nexthop"], "host_routes")
        if nexthop not in network:
            raise ValidationFailed(f"Next hop {nexthop} is not in {network}.",
                                   fields={"host_routes": ["The next hop must be on the subnet."]})
        checked.append({"destination": str(destination), "nexthop": str(nexthop)})
    return checked


def _check_mtu(mtu: int) -> int:
    low, high = MTU_RANGE
    if not _is_int(mtu) or not low <= mtu <= high:
        raise ValidationFailed(f"The MTU is {low} to {high}.", fields={"mtu": [f"{low} to {high}."]})
    return mtu


def _next_ipv6_block(vpc: VPC) -> ipaddress.IPv6Network:
    used = {s.ipv6_cidr for s in vpc.subnets.exclude(ipv6_cidr="")}
    for block in vpc.ipv6_network.subnets(new_prefix=64):
        if str(block) not in used:
            return block
    raise Conflict(f"VPC {vpc.public_id} has no free IPv6 /64 left.", code="no_ipv6_block")


@audited("subnet.create", area="network")
def create_subnet(actor: Actor, *, vpc: VPC, name: str, cidr: str, gateway_ip: str | None = None,
                  ipv6: bool = False, dhcp_enabled: bool = True, dns_nameservers: list[str] | None = None,
                  host_routes: list[dict] | None = None, mtu: int = 1442, description: str = "",
                  tags: list[str] | None = None) -> Subnet:
    """A subnet of the VPC's block (not overlapping its others), with a gateway on the VPC's
    router (the first address unless given) and DHCP; `ipv6` adds the next free /64 of the
    VPC's IPv6 block (DHCPv6 and router advertisements)."""
    from apps.tenants import quotas

    permissions.require(actor, vpc, "create")
    vpc = _locked(VPC.objects, vpc.pk)
    name = clean_name(name)
    network = _network(cidr, "cidr", version=4)
    if not network.subnet_of(vpc.network):
        raise ValidationFailed(f"{network} is not inside the VPC's block {vpc.cidr}.",
                               fields={"cidr": [f"Must be inside {vpc.cidr}."]})
    if network.prefixlen > SUBNET_MAX_PREFIX:
        raise ValidationFailed(f"A subnet is at most a /{SUBNET_MAX_PREFIX}.",
                               fields={"cidr": [f"/{SUBNET_MAX_PREFIX} is the smallest subnet."]})
    overlapping = [s for s in vpc.subnets.all() if s.network.overlaps(network)]
    if overlapping:
        raise Conflict(f"{network} overlaps subnet {_listing(overlapping)} ({overlapping[0].cidr}).",
                       code="overlap", fields={"cidr": [f"Overlaps {overlapping[0].cidr}."]})
    if gateway_ip:
        gateway = _address(gateway_ip, "gateway_ip")
        if gateway not in network or gateway in (network.network_address, network.broadcast_address):
            raise ValidationFailed(f"Gateway {gateway} is not a host address of {network}.",
                                   fields={"gateway_ip": [f"A host address of {network}."]})
    else:
        gateway = next(network.hosts())
    ipv6_block = ipv6_gateway = None
    if ipv6:
        if not vpc.ipv6_cidr:
            raise ValidationFailed(f"VPC {vpc.public_id} has no IPv6 block.",
                                   fields={"ipv6": ["The VPC is IPv4 only."]})
        ipv6_block = _next_ipv6_block(vpc)
        ipv6_gateway = ipv6_block.network_address + 1
    quotas.consume(vpc.tenant, region=vpc.region.code, amounts={"subnets": 1})
    subnet = Subnet.objects.create(
        tenant=vpc.tenant, vpc=vpc, name=name, created_by=actor.user, description=description, cidr=str(network),
        gateway_ip=str(gateway), ipv6_cidr=str(ipv6_block) if ipv6_block else "",
        ipv6_gateway_ip=str(ipv6_gateway) if ipv6_gateway else None, router_mac=_random_mac(),
        dhcp_enabled=dhcp_enabled, dns_nameservers=_check_dns(dns_nameservers),
        host_routes=_check_routes(host_routes, network), mtu=_check_mtu(mtu), tags=_tags(tags))
    IPAllocation.objects.create(subnet=subnet, address=str(gateway), purpose=IPAllocation.GATEWAY)
    if ipv6_gateway:
        IPAllocation.objects.create(subnet=subnet, address=str(ipv6_gateway), purpose=IPAllocation.GATEWAY)
    with _backend():
        get_network_driver().ensure_switch(switch_spec(subnet))
    from apps.network.lb_services import apply_listeners

    for lb in LoadBalancer.objects.filter(subnet__vpc=vpc):  # clients on the new subnet reach them too
        apply_listeners(lb)
    publish_network(subnet, "created")
    return subnet


@audited("subnet.update", area="network")
def update_subnet(actor: Actor, *, subnet: Subnet, name: str | None = None, description: str | None = None,
                  dhcp_enabled: bool | None = None, dns_nameservers: list[str] | None = None,
                  host_routes: list[dict] | None = None, tags: list[str] | None = None) -> Subnet:
    """DHCP settings apply to the guests at their next lease renewal."""
    permissions.require(actor, subnet, "change")
    subnet = _locked(Subnet.objects.select_related("vpc", "tenant"), subnet.pk)
    if name is not None:
        subnet.name = clean_name(name)
    if description is not None:
        subnet.description = description
    if dhcp_enabled is not None:
        subnet.dhcp_enabled = dhcp_enabled
    if dns_nameservers is not None:
        subnet.dns_nameservers = _check_dns(dns_nameservers)
    if host_routes is not None:
        subnet.host_routes = _check_routes(host_routes, subnet.network)
    if tags is not None:
        subnet.tags = _tags(tags)
    subnet.save()
    with _backend():
        backend = get_network_driver()
        backend.ensure_switch(switch_spec(subnet))
        # Ports point at the subnet's DHCP options, which may have come or gone.
        for port in _ports_with_specs(subnet.ports.all()):
            backend.ensure_port(port_spec(port))
    publish_network(subnet, "updated")
    return subnet


@audited("subnet.delete", area="network")
def delete_subnet(actor: Actor, *, subnet: Subnet) -> Subnet:
    """Only a subnet without ports (409 lists them)."""
    from apps.tenants import quotas

    permissions.require(actor, subnet, "delete")
    subnet = _locked(Subnet.objects.select_related("vpc__region", "tenant"), subnet.pk)
    blockers = [("ports", list(subnet.ports.all())), ("HA VIPs", list(subnet.havips.all())),
                ("load balancers", list(subnet.load_balancers.all()))]
    if any(rows for _, rows in blockers):
        what = " and ".join(f"{label} {_listing(rows)}" for label, rows in blockers if rows)
        raise Conflict(f"Subnet {subnet.public_id} still has {what}: delete them first.", code="in_use")
    subnet.delete()
    quotas.release(subnet.tenant, region=subnet.vpc.region.code, amounts={"subnets": 1})
    with _backend():
        get_network_driver().delete_switch(subnet.public_id)
    publish_network(subnet, "deleted")
    return subnet


# --- IPAM ---------------------------------------------------------------------------------

def _holder(allocation: IPAllocation) -> str:
    """Who uses an address, in words for a refusal."""
    if allocation.port_id:
        return allocation.port.public_id
    if allocation.purpose == IPAllocation.VIP:
        owner = getattr(allocation, "havip", None) or getattr(allocation, "load_balancer", None)
        return owner.public_id if owner else "a virtual address"
    return "the load balancers' health checks" if allocation.purpose == IPAllocation.SERVICE else "the gateway"


def allocate_address(subnet: Subnet, port: Port | None, *, version: int = 4, requested: str | None = None,
                     field: str = "ip_address", purpose: str = IPAllocation.PORT) -> IPAllocation:
    """An address of the subnet for the port: the one asked for, or the lowest free one. The
    caller holds the subnet's row lock; the unique constraint backs it."""
    network = subnet.network if version == 4 else subnet.ipv6_network
    if requested:
        address = _address(requested, field)
        if address.version != version or address not in network:
            raise ValidationFailed(f"{address} is not in subnet {subnet.public_id} ({network}).",
                                   fields={field: [f"Must be inside {network}."]})
        if address in (network.network_address, network.broadcast_address):
            raise ValidationFailed(f"{address} is reserved (network or broadcast address).",
                                   fields={field: ["Reserved address."]})
        taken = IPAllocation.objects.filter(subnet=subnet, address=str(address)).select_related("port").first()
        if taken:
            holder = _holder(taken)
            raise Conflict(f"{address} is taken by {holder}.", code="address_in_use",
                           fields={field: [f"Taken by {holder}."]})
    else:
        taken_set = set(IPAllocation.objects.filter(subnet=subnet).values_list("address", flat=True))
        address = next((a for a in network.hosts() if str(a) not in taken_set), None)
        if address is None:
            raise Conflict(f"Subnet {subnet.public_id} ({network}) has no free address.", code="subnet_full")
    return IPAllocation.objects.create(subnet=subnet, address=str(address), purpose=purpose, port=port)


# --- security groups ----------------------------------------------------------------------

def _groups(actor: Actor, vpc: VPC, refs: list[str] | None) -> list[SecurityGroup]:
    """The actor's groups named by `refs` (404 for others'), all of this VPC."""
    if refs is None:
        return list(vpc.security_groups.filter(is_default=True))
    groups = [lookup(actor, SecurityGroup.objects, ref, field="security_groups", label="security group")
              for ref in dict.fromkeys(refs)]
    foreign = [g for g in groups if g.vpc_id != vpc.pk]
    if foreign:
        raise ValidationFailed(f"Security group {foreign[0].public_id} belongs to another VPC.",
                               fields={"security_groups": [f"Not in VPC {vpc.public_id}."]})
    return groups


@audited("security_group.create", area="network")
def create_security_group(actor: Actor, *, vpc: VPC, name: str, description: str = "") -> SecurityGroup:
    """A group that allows all egress (IPv4, and IPv6 in a dual-stack VPC) and no ingress
    until rules are added."""
    from apps.tenants import quotas

    permissions.require(actor, vpc, "create")
    name = clean_name(name)
    if vpc.security_groups.filter(name=name).exists():
        raise Conflict(f"VPC {vpc.public_id} has a security group named {name}.", fields={"name": ["Taken."]})
    ethertypes = [SecurityGroupRule.IPV4] + ([SecurityGroupRule.IPV6] if vpc.ipv6_cidr else [])
    quotas.consume(vpc.tenant, region=vpc.region.code,
                   amounts={"security_groups": 1, "security_group_rules": len(ethertypes)})
    group = SecurityGroup.objects.create(tenant=vpc.tenant, vpc=vpc, name=name, description=description,
                                         created_by=actor.user)
    for ethertype in ethertypes:
        SecurityGroupRule.objects.create(security_group=group, direction=SecurityGroupRule.EGRESS,
                                         ethertype=ethertype)
    with _backend():
        get_network_driver().ensure_security_group(security_group_spec(group))
    publish_network(group, "created")
    return group


@audited("security_group.update", area="network")
def update_security_group(actor: Actor, *, group: SecurityGroup, name: str | None = None,
                          description: str | None = None) -> SecurityGroup:
    permissions.require(actor, group, "change")
    if name is not None:
        name = clean_name(name)
        if group.is_default and name != group.name:
            raise Conflict("The default security group keeps its name.", fields={"name": ["Fixed."]})
        if group.vpc.security_groups.filter(name=name).exclude(pk=group.pk).exists():
            raise Conflict(f"VPC {group.vpc.public_id} has a security group named {name}.",
                           fields={"name": ["Taken."]})
        group.name = name
    if description is not None:
        group.description = description
    group.save(update_fields=["name", "description", "updated_at"])
    publish_network(group, "updated")
    return group


@audited("security_group.delete", area="network")
def delete_security_group(actor: Actor, *, group: SecurityGroup) -> SecurityGroup:
    """Not the default group, not while ports use it or other groups' rules name it (409)."""
    from apps.tenants import quotas

    permissions.require(actor, group, "delete")
    group = _locked(SecurityGroup.objects.select_related("vpc__region", "tenant"), group.pk)
    if group.is_default:
        raise Conflict("The default security group goes with its VPC.", code="default_group")
    ports = list(group.ports.all())
    referencing = list(SecurityGroup.objects.filter(rules__remote_group=group).exclude(pk=group.pk).distinct())
    if ports or referencing:
        parts = ([f"ports {_listing(ports)} use it"] if ports else []) + (
            [f"rules of {_listing(referencing)} name it"] if referencing else [])
        raise Conflict(f"Security group {group.public_id} is in use: {' and '.join(parts)}.", code="in_use")
    rules = group.rules.count()
    group.delete()
    quotas.release(group.tenant, region=group.vpc.region.code,
                   amounts={"security_groups": 1, "security_group_rules": rules})
    with _backend():
        get_network_driver().delete_security_group(group.port_group)
    publish_network(group, "deleted")
    return group


def _check_rule(group: SecurityGroup, *, direction: str, ethertype: str, protocol: str, port_range_min, port_range_max,
                remote_ip_prefix: str) -> tuple[int | None, int | None, str]:
    R = SecurityGroupRule
    if direction not in (R.INGRESS, R.EGRESS):
        raise ValidationFailed("Direction is ingress or egress.", fields={"direction": ["ingress or egress."]})
    if ethertype not in (R.IPV4, R.IPV6):
        raise ValidationFailed("Ethertype is IPv4 or IPv6.", fields={"ethertype": ["IPv4 or IPv6."]})
    if ethertype == R.IPV6 and not group.vpc.ipv6_cidr:
        raise ValidationFailed(f"VPC {group.vpc.public_id} is IPv4 only.", fields={"ethertype": ["IPv4 only here."]})
    if protocol not in (R.TCP, R.UDP, R.ICMP, R.ANY):
        raise ValidationFailed("Protocol is tcp, udp, icmp or any.", fields={"protocol": ["tcp, udp, icmp or any."]})
    low, high = port_range_min, port_range_max
    if protocol in (R.TCP, R.UDP):
        if (low is None) != (high is None):
            low, high = (low, low) if high is None else (high, high)
        if low is not None:
            for field, value in (("port_range_min", low), ("port_range_max", high)):
                if not _is_int(value) or not 1 <= value <= 65535:
                    raise ValidationFailed("Ports are 1 to 65535.", fields={field: ["1 to 65535."]})
            if low > high:
                raise ValidationFailed(f"The port range {low}-{high} is reversed.",
                                       fields={"port_range_max": [f"At least {low}."]})
    elif protocol == R.ICMP:
        for field, value in (("port_range_min", low), ("port_range_max", high)):
            if value is not None and (not _is_int(value) or not 0 <= value <= 255):
                raise ValidationFailed("ICMP type and code are 0 to 255.", fields={field: ["0 to 255."]})
        if high is not None and low is None:
            raise ValidationFailed("An ICMP code needs a type.", fields={"port_range_min": ["The ICMP type."]})
    elif low is not None or high is not None:
        raise ValidationFailed("Ports apply to tcp and udp (type and code to icmp).",
                               fields={"port_range_min": ["Not for protocol any."]})
    prefix = ""
    if remote_ip_prefix:
        network = _network(remote_ip_prefix, "remote_ip_prefix", version=4 if ethertype == R.IPV4 else 6, strict=False)
        # Anywhere is stored as no prefix, so the same rule cannot be added twice in two spellings.
        prefix = "" if network.prefixlen == 0 else str(network)
    return low, high, prefix


@audited("security_group_rule.create", area="network")
def add_security_group_rule(actor: Actor, *, group: SecurityGroup, direction: str, ethertype: str = "IPv4",
                            protocol: str = "any", port_range_min: int | None = None,
                            port_range_max: int | None = None, remote_ip_prefix: str = "",
                            remote_group: str | None = None, description: str = "") -> SecurityGroupRule:
    """An allow rule (stateful: replies are allowed). The source (ingress) or destination
    (egress) is a CIDR, another group of the VPC (its members' addresses) or anywhere. It
    applies to running instances at once."""
    from apps.tenants import quotas

    permissions.require(actor, group, "change")
    group = _locked(SecurityGroup.objects.select_related("vpc__region", "tenant"), group.pk)
    low, high, prefix = _check_rule(group, direction=direction, ethertype=ethertype, protocol=protocol,
                                    port_range_min=port_range_min, port_range_max=port_range_max,
                                    remote_ip_prefix=remote_ip_prefix)
    remote = None
    if remote_group is not None:
        if prefix:
            raise ValidationFailed("Give a remote CIDR or a remote group, not both.",
                                   fields={"remote_group": ["Not with remote_ip_prefix."]})
        remote = lookup(actor, SecurityGroup.objects, remote_group, field="remote_group", label="security group")
        if remote.vpc_id != group.vpc_id:
            raise ValidationFailed(f"Security group {remote.public_id} belongs to another VPC.",
                                   fields={"remote_group": [f"Not in VPC {group.vpc.public_id}."]})
    same = group.rules.filter(direction=direction, ethertype=ethertype, protocol=protocol, port_range_min=low,
                              port_range_max=high, remote_ip_prefix=prefix, remote_group=remote).first()
    if same:
        raise Conflict(f"Security group {group.public_id} has this rule already ({same.public_id}).",
                       code="duplicate_rule")
    if group.rules.count() >= MAX_RULES_PER_GROUP:
        raise Conflict(f"A security group holds at most {MAX_RULES_PER_GROUP} rules.", code="too_many_rules")
    quotas.consume(group.tenant, region=group.vpc.region.code, amounts={"security_group_rules": 1})
    rule = SecurityGroupRule.objects.create(
        security_group=group, direction=direction, ethertype=ethertype, protocol=protocol, port_range_min=low,
        port_range_max=high, remote_ip_prefix=prefix, remote_group=remote, description=description)
    with _backend():
        get_network_driver().ensure_security_group(security_group_spec(group))
    publish_network(group, "updated")
    return rule


@audited("security_group_rule.delete", area="network")
def delete_security_group_rule(actor: Actor, *, rule: SecurityGroupRule) -> SecurityGroupRule:
    from apps.tenants import quotas

    group = rule.security_group
    permissions.require(actor, group, "change")
    group = _locked(SecurityGroup.objects.select_related("vpc__region", "tenant"), group.pk)
    rule.delete()
    quotas.release(group.tenant, region=group.vpc.region.code, amounts={"security_group_rules": 1})
    with _backend():
        get_network_driver().ensure_security_group(security_group_spec(group))
    publish_network(group, "updated")
    return rule


# --- ports --------------------------------------------------------------------------------

def _ports_with_specs(ports):
    return ports.select_related("tenant", "subnet", "instance").prefetch_related(
        "addresses", "security_groups", "havips__allocation")


def _check_pairs(pairs: list | None) -> list[dict]:
    pairs = list(pairs or [])
    if len(pairs) > MAX_ADDRESS_PAIRS:
        raise ValidationFailed(f"At most {MAX_ADDRESS_PAIRS} allowed address pairs.",
                               fields={"allowed_address_pairs": [f"At most {MAX_ADDRESS_PAIRS}."]})
    checked = []
    for pair in pairs:
        if not isinstance(pair, dict) or "ip_address" not in pair or set(pair) - {"ip_address", "mac_address"}:
            raise ValidationFailed("A pair is {ip_address, mac_address (optional)}.",
                                   fields={"allowed_address_pairs": ["Each pair needs ip_address."]})
        network = _network(str(pair["ip_address"]), "allowed_address_pairs", strict=False)
        ip = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
        mac = (pair.get("mac_address") or "").strip().lower()
        if mac and (len(mac.split(":")) != 6 or not all(len(b) == 2 and all(c in "0123456789abcdef" for c in b)
                                                         for b in mac.split(":"))):
            raise ValidationFailed(f"{mac} is not a MAC address.", fields={"allowed_address_pairs": ["Bad MAC."]})
        checked.append({"ip_address": ip, "mac_address": mac})
    return checked


def _new_port(actor: Actor, subnet: Subnet, *, name: str = "", ip_address: str | None = None,
              ipv6_address: str | None = None, security_groups: list[str] | None = None,
              port_security_enabled: bool = True, allowed_address_pairs: list[dict] | None = None,
              description: str = "", tags: list[str] | None = None, **binding) -> Port:
    """The rows of a new port (quota, addresses, groups); the caller writes it into the SDN."""
    from apps.tenants import quotas

    permissions.require(actor, subnet, "create")
    subnet = _locked(Subnet.objects.select_related("vpc__region", "tenant"), subnet.pk)
    groups = _groups(actor, subnet.vpc, security_groups)
    if not port_security_enabled and security_groups:
        raise ValidationFailed("Security groups need port security.",
                               fields={"security_groups": ["Not without port security."]})
    if not port_security_enabled:
        groups = []
    pairs = _check_pairs(allowed_address_pairs)
    if ipv6_address and not subnet.ipv6_cidr:
        raise ValidationFailed(f"Subnet {subnet.public_id} is IPv4 only.", fields={"ipv6_address": ["IPv4 only."]})
    quotas.consume(subnet.tenant, region=subnet.vpc.region.code, amounts={"ports": 1})
    port = Port.objects.create(tenant=subnet.tenant, subnet=subnet, name=clean_name(name) if name else "",
                               created_by=actor.user, description=description, mac_address=_random_mac(),
                               port_security_enabled=port_security_enabled, allowed_address_pairs=pairs,
                               tags=_tags(tags), **binding)
    allocate_address(subnet, port, requested=ip_address)
    if subnet.ipv6_cidr:
        allocate_address(subnet, port, version=6, requested=ipv6_address, field="ipv6_address")
    port.security_groups.set(groups)
    return _ports_with_specs(Port.objects).get(pk=port.pk)


@audited("port.create", area="network")
def create_port(actor: Actor, *, subnet: Subnet, **options) -> Port:
    """A network interface on the subnet with an address from its IPv4 block (`ip_address`,
    else the lowest free) and, on dual-stack subnets, its IPv6 /64; in the VPC's default
    security group unless `security_groups` are given; attach it to instances later."""
    port = _new_port(actor, subnet, **options)
    with _backend():
        get_network_driver().ensure_port(port_spec(port))
    publish_network(port, "created")
    return port


@audited("port.update", area="network")
def update_port(actor: Actor, *, port: Port, name: str | None = None, description: str | None = None,
                security_groups: list[str] | None = None, port_security_enabled: bool | None = None,
                allowed_address_pairs: list[dict] | None = None, tags: list[str] | None = None) -> Port:
    """Groups, port security and address pairs apply to a running instance at once."""
    permissions.require(actor, port, "change")
    port = _locked(_ports_with_specs(Port.objects), port.pk)
    if name is not None:
        port.name = clean_name(name) if name else ""
    if description is not None:
        port.description = description
    if tags is not None:
        port.tags = _tags(tags)
    if port_security_enabled is not None:
        port.port_security_enabled = port_security_enabled
    if allowed_address_pairs is not None:
        port.allowed_address_pairs = _check_pairs(allowed_address_pairs)
    if security_groups is not None:
        groups = _groups(actor, port.subnet.vpc, security_groups)
    else:
        groups = list(port.security_groups.all())
    if not port.port_security_enabled:
        if security_groups:
            raise ValidationFailed("Security groups need port security.",
                                   fields={"security_groups": ["Not without port security."]})
        groups = []
    port.save()
    port.security_groups.set(groups)
    port = _ports_with_specs(Port.objects).get(pk=port.pk)
    with _backend():
        get_network_driver().ensure_port(port_spec(port))
    publish_network(port, "updated")
    return port


@audited("port.delete", area="network")
def delete_port(actor: Actor, *, port: Port) -> Port:
    """Not while attached to an instance (detach it first)."""
    from apps.tenants import quotas

    permissions.require(actor, port, "delete")
    port = _locked(Port.objects.select_related("subnet__vpc__region", "tenant", "instance"), port.pk)
    if port.instance_id:
        raise Conflict(f"Port {port.public_id} is attached to {port.instance.public_id}: detach it first.",
                       code="attached")
    eip = port.eip if hasattr(port, "eip") else None
    if eip is not None:
        raise Conflict(f"EIP {eip.public_id} ({eip.address}) is bound to port {port.public_id}: unbind it first.",
                       code="eip_bound")
    havips = list(port.havips.all())
    port.delete()
    quotas.release(port.tenant, region=port.subnet.vpc.region.code, amounts={"ports": 1})
    with _backend():
        backend = get_network_driver()
        for havip in havips:  # one parent fewer
            backend.ensure_havip(havip_spec(havip))
        backend.delete_port(port.switch_port)
    publish_network(port, "deleted")
    return port


# --- HA VIPs -------------------------------------------------------------------------------

def _havip_ports(actor: Actor, subnet: Subnet, refs: list[str]) -> list[Port]:
    ports = [lookup(actor, Port.objects, ref, field="ports", label="port") for ref in dict.fromkeys(refs)]
    foreign = [p for p in ports if p.subnet_id != subnet.pk]
    if foreign:
        raise ValidationFailed(f"Port {foreign[0].public_id} is not on subnet {subnet.public_id}.",
                               fields={"ports": [f"Ports of subnet {subnet.public_id} only."]})
    return ports


@audited("havip.create", area="network")
def create_havip(actor: Actor, *, subnet: Subnet, name: str, ip_address: str | None = None,
                 ports: list[str] | None = None, description: str = "") -> HaVip:
    """A reserved address of the subnet (the one asked for, else the lowest free) that the
    chosen ports may take over from each other."""
    from apps.tenants import quotas

    permissions.require(actor, subnet, "create")
    subnet = _locked(Subnet.objects.select_related("vpc__region", "tenant"), subnet.pk)
    members = _havip_ports(actor, subnet, ports or [])
    quotas.consume(subnet.tenant, region=subnet.vpc.region.code, amounts={"havips": 1})
    allocation = allocate_address(subnet, None, requested=ip_address, purpose=IPAllocation.VIP)
    havip = HaVip.objects.create(tenant=subnet.tenant, created_by=actor.user, name=clean_name(name), subnet=subnet,
                                 allocation=allocation, description=description)
    havip.ports.set(members)
    _apply_havip(havip, members)
    publish_network(havip, "created")
    return havip


def _apply_havip(havip: HaVip, ports: list[Port]) -> None:
    """The virtual port, and the port security of the ports that gained or lost it."""
    backend = get_network_driver()
    with _backend():
        for port in _ports_with_specs(Port.objects.filter(pk__in=[p.pk for p in ports])):
            backend.ensure_port(port_spec(port))
        backend.ensure_havip(havip_spec(HaVip.objects.select_related("tenant", "subnet", "allocation")
                                        .get(pk=havip.pk)))


@audited("havip.update", area="network")
def update_havip(actor: Actor, *, havip: HaVip, name: str | None = None, description: str | None = None,
                 ports: list[str] | None = None) -> HaVip:
    """`ports`: the ports that may hold the address from now on."""
    permissions.require(actor, havip, "change")
    havip = _locked(HaVip.objects.select_related("subnet"), havip.pk)
    if name is not None:
        havip.name = clean_name(name)
    if description is not None:
        havip.description = description
    havip.save()
    touched = list(havip.ports.all())
    if ports is not None:
        members = _havip_ports(actor, havip.subnet, ports)
        havip.ports.set(members)
        touched += members
    _apply_havip(havip, touched)
    publish_network(havip, "updated")
    return havip


@audited("havip.delete", area="network")
def delete_havip(actor: Actor, *, havip: HaVip) -> HaVip:
    from apps.tenants import quotas

    permissions.require(actor, havip, "delete")
    havip = _locked(HaVip.objects.select_related("subnet__vpc__region", "tenant", "allocation"), havip.pk)
    members = list(havip.ports.all())
    havip.ports.clear()
    allocation = havip.allocation
    havip.delete()
    allocation.delete()
    quotas.release(havip.tenant, region=havip.subnet.vpc.region.code, amounts={"havips": 1})
    backend = get_network_driver()
    with _backend():
        backend.delete_havip(havip.public_id)
        for port in _ports_with_specs(Port.objects.filter(pk__in=[p.pk for p in members])):
            backend.ensure_port(port_spec(port))
    publish_network(havip, "deleted")
    return havip


# --- instances' interfaces -------------------------------------------------------------------

def nic_spec(port: Port):
    from django.conf import settings

    from apps.compute.drivers.base import NicSpec

    return NicSpec(mac=port.mac_address, port_id=port.switch_port, bridge=settings.PORTAL_OVN_BRIDGE,
                   mtu=port.subnet.mtu, offload=settings.PORTAL_OVS_DATAPATH != "netdev")


def instance_nics(instance) -> tuple:
    """The instance's interfaces for its domain definition (primary first), their ports made
    sure of in the SDN first: compute asks whenever it defines the domain (build, start,
    rebuild, move), so a port lost in the backend is back before the guest needs it."""
    from apps.compute.drivers.base import DriverError

    ports = list(_ports_with_specs(Port.objects.filter(instance=instance)).order_by("device_index"))
    backend = get_network_driver()
    try:
        for port in ports:
            backend.ensure_port(port_spec(port))
    except driver.NetworkError as exc:
        raise DriverError(f"network: {exc}") from exc
    return tuple(nic_spec(port) for port in ports)


def resolve_subnet(actor: Actor, ref: str) -> Subnet:
    return lookup(actor, Subnet.objects.select_related("vpc"), ref, field="subnet", label="subnet")


def create_instance_port(actor: Actor, *, instance, subnet: Subnet, security_groups: list[str] | None = None,
                         ip_address: str | None = None) -> Port:
    """Part of instance.create: the instance's primary interface (deleted with it). Only rows
    here; the build task writes it into the SDN before the domain starts (instance_nics)."""
    return _new_port(actor, subnet, name=f"{instance.name} eth0", ip_address=ip_address,
                     security_groups=security_groups, instance=instance, device_index=0,
                     delete_on_termination=True)


def release_ports(sender, *, instance, **kwargs) -> None:
    """An instance is gone (compute's `instance_deleted`): the ports made with it go too, the
    others stay, detached."""
    from apps.tenants import quotas

    from apps.network.edge_services import unbind_deleted_ports

    backend = get_network_driver()
    ports = list(_ports_with_specs(Port.objects.filter(instance=instance)))
    unbind_deleted_ports([p for p in ports if p.delete_on_termination])
    for port in ports:
        if port.delete_on_termination:
            havips = list(port.havips.all())
            port.delete()
            for havip in havips:
                backend.ensure_havip(havip_spec(havip))
            quotas.release(port.tenant, region=port.subnet.vpc.region.code, amounts={"ports": 1})
            backend.delete_port(port.switch_port)
        else:
            port.instance, port.device_index = None, None
            port.save(update_fields=["instance", "device_index", "updated_at"])
            backend.ensure_port(port_spec(port))
        publish_network(port, "released")


def _plugged_instance(instance):
    from apps.compute.models import Instance

    instance = _locked(Instance.objects.select_related("host"), instance.pk)
    if instance.status not in (Instance.RUNNING, Instance.STOPPED):
        raise Conflict(f"Instance {instance.public_id} is {instance.status}; interfaces are plugged into running "
                       "or stopped instances.", code="invalid_state")
    return instance


def _hypervisor(instance):
    from apps.compute.hypervisors import get_compute_driver

    return get_compute_driver(instance.host.uri)


@audited("port.attach", area="network")
def attach_port(actor: Actor, *, port: Port, instance) -> Port:
    """Plug an available interface into an instance of its tenant (hot when it runs)."""
    from apps.compute.drivers.base import DriverError

    permissions.require(actor, port, "change")
    permissions.require(actor, instance, "change")
    port = _locked(_ports_with_specs(Port.objects), port.pk)
    if port.instance_id:
        raise Conflict(f"Port {port.public_id} is attached to {port.instance.public_id}.", code="attached")
    instance = _plugged_instance(instance)
    used = set(Port.objects.filter(instance=instance).values_list("device_index", flat=True))
    port.instance, port.device_index = instance, next(i for i in range(len(used) + 1) if i not in used)
    port.save(update_fields=["instance", "device_index", "updated_at"])
    port = _ports_with_specs(Port.objects).get(pk=port.pk)
    backend = get_network_driver()
    with _backend() as undo:
        backend.ensure_port(port_spec(port))
        undo.append(lambda: backend.ensure_port(replace(port_spec(port), device="")))
        try:
            _hypervisor(instance).attach_interface(instance.public_id, nic_spec(port))
        except DriverError as exc:
            raise driver.NetworkError(f"the hypervisor could not plug it in: {exc}") from exc
    publish_network(port, "attached")
    return port


@audited("port.detach", area="network")
def detach_port(actor: Actor, *, port: Port) -> Port:
    """Unplug a secondary interface (the primary one goes with its instance)."""
    from apps.compute.drivers.base import DriverError

    permissions.require(actor, port, "change")
    port = _locked(_ports_with_specs(Port.objects), port.pk)
    if not port.instance_id:
        raise Conflict(f"Port {port.public_id} is not attached.", code="not_attached")
    if port.device_index == 0:
        raise Conflict(f"Port {port.public_id} is the primary interface of {port.instance.public_id}; it goes with "
                       "the instance.", code="primary_interface")
    instance = _plugged_instance(port.instance)
    port.instance, port.device_index = None, None
    port.save(update_fields=["instance", "device_index", "updated_at"])
    with _backend():
        try:
            _hypervisor(instance).detach_interface(instance.public_id, port.mac_address)
        except DriverError as exc:
            raise driver.NetworkError(f"the hypervisor could not unplug it: {exc}") from exc
        get_network_driver().ensure_port(port_spec(port))
    publish_network(port, "detached")
    return port


# --- reconcile ------------------------------------------------------------------------------

def _repair(rows, spec, ensure, report: list[str]) -> None:
    """Make each object's backend match its row, holding the row's lock so a service changing
    it meanwhile cannot be undone by a stale spec."""
    for pk in rows.values_list("pk", flat=True):
        with transaction.atomic():
            row = rows.select_for_update(of=("self",)).filter(pk=pk).first()
            if row is not None:
                report += ensure(spec(row))


def reconcile_network() -> dict[str, list[str]]:
    """Compare the backend with the database: make every object match its row (drift is
    repaired and reported) and remove the portal's objects that no row explains, once they have
    been orphans for ORPHAN_GRACE. Objects of other owners are never touched. Audited when
    anything was done."""
    from apps.core.actor import Actor

    from apps.network.edge_services import external_network_spec
    from apps.network.lb_services import listener_spec
    from apps.network.models import ExternalNetwork, Listener

    backend = get_network_driver()
    repaired: list[str] = list(backend.ensure_baseline())
    try:
        _repair(ExternalNetwork.objects.all(), external_network_spec, backend.ensure_external_network, repaired)
        _repair(VPC.objects.select_related("tenant", "external_network"), router_spec, backend.ensure_router,
                repaired)
        _repair(SecurityGroup.objects.select_related("tenant"), security_group_spec,
                backend.ensure_security_group, repaired)
        _repair(Subnet.objects.select_related("tenant", "vpc"), switch_spec, backend.ensure_switch, repaired)
        _repair(_ports_with_specs(Port.objects), port_spec, backend.ensure_port, repaired)
        _repair(HaVip.objects.select_related("tenant", "subnet", "allocation").prefetch_related("ports"), havip_spec,
                backend.ensure_havip, repaired)
        _repair(Listener.objects.select_related("load_balancer__tenant", "load_balancer__subnet__vpc",
                                                "load_balancer__allocation"), listener_spec, backend.ensure_listener,
                repaired)
        removed = _remove_orphans(backend)
    except driver.NetworkError as exc:
        raise Unavailable(f"Network reconcile stopped: {exc}") from exc
    if repaired or removed:
        record(Actor.system(), action="network.reconcile", area="network",
               details={"repaired": repaired[:200], "removed": removed[:200]})
    return {"repaired": repaired, "removed": removed}


def _remove_orphans(backend) -> list[str]:
    from apps.network.models import ExternalNetwork, Listener

    found = backend.inventory()
    wanted = {
        driver.ROUTER: set(VPC.objects.values_list("public_id", flat=True)),
        driver.SWITCH: set(Subnet.objects.values_list("public_id", flat=True)),
        driver.SECURITY_GROUP: {"pg_" + p.replace("-", "_")
                                for p in SecurityGroup.objects.values_list("public_id", flat=True)},
        driver.PORT: {str(u) for u in Port.objects.values_list("uuid", flat=True)},
        driver.EXTERNAL: {f"ext-{n}" for n in ExternalNetwork.objects.values_list("name", flat=True)},
        driver.HAVIP: set(HaVip.objects.values_list("public_id", flat=True)),
        driver.LISTENER: {f"lb-{p}" for p in Listener.objects.values_list("public_id", flat=True)},
    }
    now, removed = timezone.now(), []
    orphans = {(kind, name) for kind, names in found.items() for name in names - wanted.get(kind, set())}
    NetworkOrphan.objects.exclude(
        pk__in=[o.pk for o in NetworkOrphan.objects.all() if (o.kind, o.name) in orphans]).delete()
    deleters = {driver.PORT: backend.delete_port, driver.SWITCH: backend.delete_switch,
                driver.SECURITY_GROUP: backend.delete_security_group, driver.ROUTER: backend.delete_router,
                driver.EXTERNAL: backend.delete_external_network, driver.HAVIP: backend.delete_havip,
                driver.LISTENER: backend.delete_listener}
    # Dependants first.
    for kind in (driver.LISTENER, driver.HAVIP, driver.PORT, driver.SWITCH, driver.SECURITY_GROUP, driver.ROUTER,
                 driver.EXTERNAL):
        for name in sorted(n for k, n in orphans if k == kind):
            sighting, _ = NetworkOrphan.objects.get_or_create(kind=kind, name=name, defaults={"first_seen": now})
            if now - sighting.first_seen >= ORPHAN_GRACE:
                deleters[kind](name)
                sighting.delete()
                removed.append(f"{kind} {name}")
    return removed

