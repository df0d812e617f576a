"""North-south services: external networks (operators), elastic IPs, NAT gateways and their
port mappings (tenants).

A VPC's router gets a leg on an external network (an address from its ranges, a default route
to its gateway, hosted on the network's gateway chassis) when an EIP is bound to one of its
ports or a NAT gateway is made in it, and loses it when neither is left. Every change
rewrites the router's NAT, port forwards and bandwidth limits in one OVN transaction, like the
other network services (apps.network.services): rows and OVN change together or not at all."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from apps.compute.models import Region
from apps.core import permissions
from apps.core.audit import audited
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.validation import clean_name, lookup
from apps.network.backends import get_network_driver
from apps.network.drivers import base as driver
from apps.network.models import VPC, ElasticIP, ExternalNetwork, LoadBalancer, NatGateway, Port, PortMapping
from apps.network.services import (
    _address,
    _backend,
    _is_int,
    _listing,
    _locked,
    _network,
    _random_mac,
    _tags,
    publish_network,
    router_spec,
)
from apps.tenants.services import require_operator

if TYPE_CHECKING:
    from apps.core.actor import Actor

# What compute's instance deletion calls (part of that audited action), the spec builder and
# the router rewrite shared by the services here.
UNAUDITED = ("external_network_spec", "unbind_deleted_ports", "apply_router", "vpc_of")

MAX_BANDWIDTH_MBPS = 10000


def external_network_spec(network: ExternalNetwork) -> driver.ExternalNetworkSpec:
    return driver.ExternalNetworkSpec(name=network.switch, public_id=network.public_id,
                                      physical_network=network.physical_network, vlan=network.vlan or 0)


def apply_router(vpc: VPC) -> None:
    """Write the VPC's router as its rows now say (gateway, NAT, forwards, limits)."""
    vpc = VPC.objects.select_related("tenant", "external_network").get(pk=vpc.pk)
    with _backend():
        get_network_driver().ensure_router(router_spec(vpc))


# --- external networks (operators) ---------------------------------------------------------

def _check_ranges(ranges: list | None, network, gateway, field: str = "ranges") -> list[dict]:
    checked = []
    for item in ranges or []:
        if not isinstance(item, dict) or set(item) != {"start", "end"}:
            raise ValidationFailed("A range is {start, end}.", fields={field: ["Each range needs start and end."]})
        start, end = _address(item["start"], field), _address(item["end"], field)
        if start.version != network.version or start not in network or end not in network or start > end:
            raise ValidationFailed(f"Range {start}-{end} is not an ascending range of {network}.",
                                   fields={field: [f"Inside {network}, start ≤ end."]})
        if start <= gateway <= end or start == network.network_address or end == network.broadcast_address:
            raise ValidationFailed(f"Range {start}-{end} holds the gateway, network or broadcast address.",
                                   fields={field: ["Leave out the gateway, network and broadcast addresses."]})
        checked.append({"start": str(start), "end": str(end)})
    if not checked:
        raise ValidationFailed("Give at least one range of addresses to hand out.", fields={field: ["Required."]})
    spans = sorted((ipaddress.ip_address(r["start"]), ipaddress.ip_address(r["end"])) for r in checked)
    if any(later[0] <= earlier[1] for earlier, later in zip(spans, spans[1:])):
        raise ValidationFailed("Ranges overlap.", fields={field: ["Ranges must not overlap."]})
    return checked


def _check_ipv6(cidr: str, gateway_ip: str | None, ranges: list | None) -> tuple[str, str | None, list]:
    """An external network's optional IPv6 side: a prefix, its upstream gateway, ranges."""
    if not cidr:
        if gateway_ip or ranges:
            raise ValidationFailed("IPv6 gateway and ranges need an IPv6 prefix.", fields={"ipv6_cidr": ["Required."]})
        return "", None, []
    network = _network(cidr, "ipv6_cidr", version=6)
    if network.prefixlen > 120:
        raise ValidationFailed("An IPv6 prefix of /120 or larger.", fields={"ipv6_cidr": ["/120 or larger."]})
    gateway = _address(gateway_ip or "", "ipv6_gateway_ip")
    if gateway.version != 6 or gateway not in network:
        raise ValidationFailed(f"Gateway {gateway} is not in {network}.",
                               fields={"ipv6_gateway_ip": [f"In {network}."]})
    return str(network), str(gateway), _check_ranges(ranges, network, gateway, "ipv6_ranges")


def _in_use(network: ExternalNetwork) -> set[str]:
    gateways = VPC.objects.filter(external_network=network).values_list("gateway_ip", "gateway_ipv6")
    return (set(ElasticIP.objects.filter(external_network=network).values_list("address", flat=True))
            | {address for pair in gateways for address in pair if address})


def _in_ranges(address: str, ranges: list[dict]) -> bool:
    value = ipaddress.ip_address(address)
    return any(ipaddress.ip_address(r["start"]) <= value <= ipaddress.ip_address(r["end"]) for r in ranges)


@audited("external_network.create", area="network")
def create_external_network(actor: Actor, *, name: str, region: Region, cidr: str, gateway_ip: str, ranges: list,
                            physical_network: str = "physnet1", vlan: int | None = None,
                            gateway_chassis: list[str] | None = None, is_default: bool = False,
                            ipv6_cidr: str = "", ipv6_gateway_ip: str | None = None,
                            ipv6_ranges: list | None = None) -> ExternalNetwork:
    """An IPv4 provider network, optionally with IPv6 too (`ipv6_*`: then EIPs may be IPv6
    and VPCs' gateways get an IPv6 address and default route)."""
    require_operator(actor)
    if ExternalNetwork.objects.filter(name=name).exists():
        raise Conflict(f"An external network named {name} exists.", fields={"name": ["Taken."]})
    network = _network(cidr, "cidr", version=4)
    gateway = _address(gateway_ip, "gateway_ip")
    if gateway not in network or gateway in (network.network_address, network.broadcast_address):
        raise ValidationFailed(f"Gateway {gateway} is not a host address of {network}.",
                               fields={"gateway_ip": [f"A host address of {network}."]})
    if vlan is not None and not 1 <= vlan <= 4094:
        raise ValidationFailed("A VLAN id is 1 to 4094.", fields={"vlan": ["1 to 4094, or empty for flat."]})
    v6_cidr, v6_gateway, v6_ranges = _check_ipv6(ipv6_cidr, ipv6_gateway_ip, ipv6_ranges)
    if is_default:
        ExternalNetwork.objects.filter(region=region).update(is_default=False)
    external = ExternalNetwork.objects.create(
        name=name, region=region, cidr=str(network), gateway_ip=str(gateway), ipv6_cidr=v6_cidr,
        ipv6_gateway_ip=v6_gateway, ipv6_ranges=v6_ranges,
        ranges=_check_ranges(ranges, network, gateway), physical_network=clean_name(physical_network,
                                                                                     "physical_network"),
        vlan=vlan, gateway_chassis=[clean_name(c, "gateway_chassis") for c in gateway_chassis or []],
        is_default=is_default)
    with _backend():
        get_network_driver().ensure_external_network(external_network_spec(external))
    return external


@audited("external_network.update", area="network")
def update_external_network(actor: Actor, *, network: ExternalNetwork, enabled: bool | None = None,
                            ranges: list | None = None, gateway_chassis: list[str] | None = None,
                            is_default: bool | None = None) -> ExternalNetwork:
    """Open or close it for new EIPs, change its ranges (never away from addresses in use) or
    its gateway chassis (moved at once for every VPC on it)."""
    require_operator(actor)
    network = _locked(ExternalNetwork.objects, network.pk)
    if enabled is not None:
        network.enabled = enabled
    if ranges is not None:
        checked = _check_ranges(ranges, network.network, ipaddress.ip_address(network.gateway_ip))
        stranded = sorted(a for a in _in_use(network) if ":" not in a and not _in_ranges(a, checked))
        if stranded:
            raise Conflict(f"Addresses in use would fall outside the ranges: {', '.join(stranded[:10])}.",
                           code="in_use", fields={"ranges": ["Keep the addresses in use."]})
        network.ranges = checked
    if gateway_chassis is not None:
        network.gateway_chassis = [clean_name(c, "gateway_chassis") for c in gateway_chassis]
    if is_default:
        ExternalNetwork.objects.filter(region=network.region).exclude(pk=network.pk).update(is_default=False)
    if is_default is not None:
        network.is_default = is_default
    network.save()
    if gateway_chassis is not None:
        for vpc in VPC.objects.filter(external_network=network):
            apply_router(vpc)
    return network


@audited("external_network.delete", area="network")
def delete_external_network(actor: Actor, *, network: ExternalNetwork) -> ExternalNetwork:
    require_operator(actor)
    network = _locked(ExternalNetwork.objects, network.pk)
    eips = list(network.eips.all())
    vpcs = list(network.vpcs.all())
    if eips or vpcs:
        parts = ([f"EIPs {_listing(eips)}"] if eips else []) + ([f"VPC gateways {_listing(vpcs)}"] if vpcs else [])
        raise Conflict(f"External network {network.name} is in use by {' and '.join(parts)}.", code="in_use")
    network.delete()
    with _backend():
        get_network_driver().delete_external_network(network.switch)
    return network


def _free_address(network: ExternalNetwork, version: int = 4) -> str:
    """The lowest free address of the ranges of that family; the caller holds the network's
    row lock."""
    used = _in_use(network) | {network.gateway_ip, network.ipv6_gateway_ip}
    for item in network.ranges if version == 4 else network.ipv6_ranges:
        start, end = int(ipaddress.ip_address(item["start"])), int(ipaddress.ip_address(item["end"]))
        for value in range(start, end + 1):
            address = str(ipaddress.ip_address(value))
            if address not in used:
                return address
    raise Conflict(f"External network {network.name} has no free IPv{version} address.",
                   code="no_external_address")


# --- elastic IPs ----------------------------------------------------------------------------

def _check_bandwidth(mbps: int) -> int:
    if not _is_int(mbps) or not 1 <= mbps <= MAX_BANDWIDTH_MBPS:
        raise ValidationFailed(f"Bandwidth is 1 to {MAX_BANDWIDTH_MBPS} Mbit/s.",
                               fields={"bandwidth_mbps": [f"1 to {MAX_BANDWIDTH_MBPS}."]})
    return mbps


def _external_network(ref: str | None, region: str | None) -> ExternalNetwork:
    from django.conf import settings

    networks = ExternalNetwork.objects.select_related("region")
    if ref:
        found = networks.filter(public_id=ref).first() or networks.filter(name=ref).first()
        if found is None:
            raise ValidationFailed(f"No external network {ref}.", fields={"external_network": ["Unknown."]})
    else:
        code = region or settings.PORTAL_DEFAULT_REGION
        found = networks.filter(region__code=code, is_default=True).first()
        if found is None:
            raise ValidationFailed(f"Region {code} has no default external network: name one.",
                                   fields={"external_network": ["Required here."]})
    if not found.enabled:
        raise Conflict(f"External network {found.name} is closed for new addresses.", code="network_disabled")
    return found


@audited("eip.allocate", area="network")
def allocate_eip(actor: Actor, *, name: str = "", external_network: str | None = None, region: str | None = None,
                 bandwidth_mbps: int = 100, ip_version: int = 4, description: str = "",
                 tags: list[str] | None = None) -> ElasticIP:
    """A public address for the tenant: the lowest free one of the network's IPv4 ranges, or
    of its IPv6 ranges (`ip_version` 6, where the network has IPv6). Billed (the address and its
    bandwidth) until it is released; 402 first when the wallet cannot cover its hours."""
    from apps.billing import metering
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, "network", "create")
    network = _locked(ExternalNetwork.objects.select_related("region"),
                      _external_network(external_network, region).pk)
    if ip_version not in (4, 6) or (ip_version == 6 and not network.ipv6_cidr):
        raise ValidationFailed(f"External network {network.name} offers IPv4" + (" and IPv6." if network.ipv6_cidr
                                                                                  else " only."),
                               fields={"ip_version": ["4" + (" or 6." if network.ipv6_cidr else " here.")]})
    bandwidth_mbps = _check_bandwidth(bandwidth_mbps)
    metering.require_funds(tenant, metering.estimate_eip(tenant, bandwidth_mbps=bandwidth_mbps,
                                                         region=network.region.code))
    quotas.consume(tenant, region=network.region.code, amounts={"eips": 1})
    eip = ElasticIP.objects.create(tenant=tenant, created_by=actor.user, name=clean_name(name) if name else "",
                                   external_network=network, address=_free_address(network, ip_version),
                                   bandwidth_mbps=bandwidth_mbps, description=description, tags=_tags(tags))
    metering.order_created(actor, eip)
    metering.start_usage(eip)
    publish_network(eip, "created")
    return eip


@audited("eip.update", area="network")
def update_eip(actor: Actor, *, eip: ElasticIP, name: str | None = None, description: str | None = None,
               bandwidth_mbps: int | None = None, tags: list[str] | None = None) -> ElasticIP:
    """A new bandwidth applies to a bound EIP at once, and is billed from now."""
    from apps.billing import metering

    permissions.require(actor, eip, "change")
    eip = _locked(ElasticIP.objects, eip.pk)
    if name is not None:
        eip.name = clean_name(name) if name else ""
    if description is not None:
        eip.description = description
    if tags is not None:
        eip.tags = _tags(tags)
    if bandwidth_mbps is not None:
        eip.bandwidth_mbps = _check_bandwidth(bandwidth_mbps)
        metering.change_quantity(eip)
    eip.save()
    vpc = vpc_of(eip)
    if vpc is not None:
        apply_router(vpc)
    publish_network(eip, "updated")
    return eip


def vpc_of(eip: ElasticIP) -> VPC | None:
    """The VPC the EIP reaches into, if bound (a released one reaches none)."""
    if eip.pk is None:
        return None
    if eip.port_id:
        return eip.port.subnet.vpc
    if eip.load_balancer_id:
        return eip.load_balancer.subnet.vpc
    nat = NatGateway.objects.filter(eip=eip).select_related("vpc").first()
    return nat.vpc if nat else None


def _bound_to(eip: ElasticIP) -> str:
    if eip.port_id:
        return f"port {eip.port.public_id}"
    if eip.load_balancer_id:
        return f"load balancer {eip.load_balancer.public_id}"
    nat = NatGateway.objects.filter(eip=eip).first()
    return f"NAT gateway {nat.public_id}" if nat else ""


def _require_ipv4(eip: ElasticIP, why: str) -> None:
    if eip.ip_version != 4:
        raise ValidationFailed(f"{why}: EIP {eip.public_id} is IPv6.", fields={"eip": ["An IPv4 EIP."]})


def _require_unbound(eip: ElasticIP) -> None:
    holder = _bound_to(eip)
    if holder:
        raise Conflict(f"EIP {eip.public_id} ({eip.address}) is bound to {holder}.", code="bound")


def _open_gateway(vpc: VPC, network: ExternalNetwork) -> VPC:
    """The VPC's router leg on `network`, made when missing; one external network per VPC."""
    vpc = _locked(VPC.objects.select_related("region"), vpc.pk)
    if vpc.external_network_id and vpc.external_network_id != network.pk:
        raise Conflict(f"VPC {vpc.public_id} reaches the outside through {vpc.external_network.name}; this EIP is "
                       f"of {network.name}.", code="other_external_network")
    if vpc.region_id != network.region_id:
        raise Conflict(f"VPC {vpc.public_id} is in region {vpc.region.code}, the EIP in {network.region.code}.",
                       code="other_region")
    if not vpc.gateway_ip or (network.ipv6_cidr and not vpc.gateway_ipv6):
        network = _locked(ExternalNetwork.objects, network.pk)
        if not vpc.gateway_ip:
            vpc.external_network, vpc.gateway_ip, vpc.gateway_mac = network, _free_address(network), _random_mac()
        if network.ipv6_cidr and not vpc.gateway_ipv6:
            vpc.gateway_ipv6 = _free_address(network, 6)
        vpc.save(update_fields=["external_network", "gateway_ip", "gateway_ipv6", "gateway_mac", "updated_at"])
    return vpc


def _close_gateway_if_unused(vpc: VPC) -> None:
    # Under the VPC's lock, which a bind takes too (_open_gateway): never closed under one.
    vpc = _locked(VPC.objects, vpc.pk)
    if (ElasticIP.objects.filter(port__subnet__vpc=vpc).exists()
            or ElasticIP.objects.filter(load_balancer__subnet__vpc=vpc).exists()
            or NatGateway.objects.filter(vpc=vpc).exists()):
        return
    VPC.objects.filter(pk=vpc.pk).update(external_network=None, gateway_ip=None, gateway_ipv6=None, gateway_mac="")


@audited("eip.bind", area="network")
def bind_eip(actor: Actor, *, eip: ElasticIP, port: Port | None = None, instance=None,
             load_balancer: LoadBalancer | None = None) -> ElasticIP:
    """One-to-one NAT between the EIP and a port's IPv4 address (an instance: its primary
    interface), or a load balancer's public address (its listeners answer on it too). Once
    bound, it is refused elsewhere until unbound."""
    permissions.require(actor, eip, "change")
    if sum(target is not None for target in (port, instance, load_balancer)) != 1:
        raise ValidationFailed("Bind to a port, an instance or a load balancer.",
                               fields={"port": ["A port, an instance or a load balancer."]})
    if load_balancer is not None:
        return _bind_to_load_balancer(actor, eip, load_balancer)
    if instance is not None:
        port = Port.objects.filter(instance=instance, device_index=0).first()
        if port is None:
            raise Conflict(f"Instance {instance.public_id} has no network interface.", code="no_interface")
    permissions.require(actor, port, "change")
    eip = _locked(ElasticIP.objects.select_related("external_network"), eip.pk)
    _require_unbound(eip)
    port = _locked(Port.objects.select_related("subnet__vpc"), port.pk)
    taken = ElasticIP.objects.filter(port=port).first()
    if taken:
        raise Conflict(f"Port {port.public_id} has EIP {taken.public_id} already.", code="port_has_eip")
    if not any((":" in a.address) == (eip.ip_version == 6) for a in port.addresses.all()):
        raise Conflict(f"Port {port.public_id} has no IPv{eip.ip_version} address for {eip.address}.",
                       code=f"no_ipv{eip.ip_version}")
    vpc = _open_gateway(port.subnet.vpc, eip.external_network)
    eip.port = port
    eip.save(update_fields=["port", "updated_at"])
    apply_router(vpc)
    publish_network(eip, "bound")
    return eip


def _bind_to_load_balancer(actor: Actor, eip: ElasticIP, lb: LoadBalancer) -> ElasticIP:
    from apps.network.lb_services import apply_listeners

    permissions.require(actor, lb, "change")
    eip = _locked(ElasticIP.objects.select_related("external_network"), eip.pk)
    _require_ipv4(eip, "Load balancers' members are IPv4")
    _require_unbound(eip)
    lb = _locked(LoadBalancer.objects.select_related("subnet__vpc"), lb.pk)
    taken = ElasticIP.objects.filter(load_balancer=lb).first()
    if taken:
        raise Conflict(f"Load balancer {lb.public_id} has EIP {taken.public_id} already.", code="has_eip")
    vpc = _open_gateway(lb.subnet.vpc, eip.external_network)
    eip.load_balancer = lb
    eip.save(update_fields=["load_balancer", "updated_at"])
    apply_router(vpc)
    apply_listeners(lb)
    publish_network(eip, "bound")
    return eip


@audited("eip.unbind", area="network")
def unbind_eip(actor: Actor, *, eip: ElasticIP) -> ElasticIP:
    from apps.network.lb_services import apply_listeners

    permissions.require(actor, eip, "change")
    eip = _locked(ElasticIP.objects.select_related("port__subnet__vpc", "load_balancer__subnet__vpc"), eip.pk)
    if NatGateway.objects.filter(eip=eip).exists():
        raise Conflict(f"EIP {eip.public_id} is a NAT gateway's address: delete the NAT gateway.", code="nat_gateway")
    if not (eip.port_id or eip.load_balancer_id):
        raise Conflict(f"EIP {eip.public_id} is not bound.", code="not_bound")
    lb = eip.load_balancer
    vpc = eip.port.subnet.vpc if eip.port_id else lb.subnet.vpc
    eip.port = eip.load_balancer = None
    eip.save(update_fields=["port", "load_balancer", "updated_at"])
    _close_gateway_if_unused(vpc)
    apply_router(vpc)
    if lb is not None:
        apply_listeners(lb)
    publish_network(eip, "unbound")
    return eip


@audited("eip.release", area="network")
def release_eip(actor: Actor, *, eip: ElasticIP) -> ElasticIP:
    """Give the address back (unbound EIPs only); no longer billed."""
    from apps.billing import metering
    from apps.tenants import quotas

    permissions.require(actor, eip, "delete")
    eip = _locked(ElasticIP.objects.select_related("external_network__region", "tenant"), eip.pk)
    _require_unbound(eip)
    metering.resource_deleted(eip)
    eip.delete()
    quotas.release(eip.tenant, region=eip.external_network.region.code, amounts={"eips": 1})
    publish_network(eip, "deleted")
    return eip


def unbind_deleted_ports(ports: list[Port]) -> None:
    """Ports going away with their instance let go of their EIPs (kept by the tenant)."""
    vpcs = {}
    for eip in ElasticIP.objects.filter(port__in=ports).select_related("port__subnet__vpc"):
        vpcs[eip.port.subnet.vpc.pk] = eip.port.subnet.vpc
        eip.port = None
        eip.save(update_fields=["port", "updated_at"])
        publish_network(eip, "unbound")
    for vpc in vpcs.values():
        _close_gateway_if_unused(vpc)
        apply_router(vpc)


# --- NAT gateways ---------------------------------------------------------------------------

def _nat_subnets(vpc: VPC, refs: list[str] | None, actor: Actor) -> list:
    from apps.network.models import Subnet

    subnets = [lookup(actor, Subnet.objects, ref, field="subnets", label="subnet") for ref in dict.fromkeys(refs or [])]
    foreign = [s for s in subnets if s.vpc_id != vpc.pk]
    if foreign:
        raise ValidationFailed(f"Subnet {foreign[0].public_id} is not in VPC {vpc.public_id}.",
                               fields={"subnets": [f"Not in VPC {vpc.public_id}."]})
    return subnets


@audited("nat_gateway.create", area="network")
def create_nat_gateway(actor: Actor, *, vpc: VPC, eip: ElasticIP, name: str, subnets: list[str] | None = None,
                       description: str = "") -> NatGateway:
    """Source NAT of the VPC's subnets (all, or `subnets`) to the EIP, which it holds from now.
    Billed until it is deleted; 402 first when the wallet cannot cover its hours."""
    from apps.billing import metering
    from apps.tenants import quotas

    permissions.require(actor, vpc, "create")
    permissions.require(actor, eip, "change")
    chosen = _nat_subnets(vpc, subnets, actor)
    eip = _locked(ElasticIP.objects.select_related("external_network"), eip.pk)
    _require_ipv4(eip, "NAT gateways translate IPv4")
    _require_unbound(eip)
    metering.require_funds(vpc.tenant, metering.estimate_nat_gateway(vpc.tenant, region=vpc.region.code))
    vpc = _open_gateway(vpc, eip.external_network)
    quotas.consume(vpc.tenant, region=vpc.region.code, amounts={"nat_gateways": 1})
    nat = NatGateway.objects.create(tenant=vpc.tenant, created_by=actor.user, name=clean_name(name), vpc=vpc, eip=eip,
                                    description=description)
    metering.order_created(actor, nat)
    metering.start_usage(nat)
    nat.subnets.set(chosen)
    apply_router(vpc)
    publish_network(nat, "created")
    return nat


@audited("nat_gateway.update", area="network")
def update_nat_gateway(actor: Actor, *, nat: NatGateway, name: str | None = None, description: str | None = None,
                       subnets: list[str] | None = None) -> NatGateway:
    """`subnets`: the subnets it translates ([] for the whole VPC); applies at once."""
    permissions.require(actor, nat, "change")
    nat = _locked(NatGateway.objects.select_related("vpc"), nat.pk)
    if name is not None:
        nat.name = clean_name(name)
    if description is not None:
        nat.description = description
    nat.save()
    if subnets is not None:
        nat.subnets.set(_nat_subnets(nat.vpc, subnets, actor))
    apply_router(nat.vpc)
    publish_network(nat, "updated")
    return nat


@audited("nat_gateway.delete", area="network")
def delete_nat_gateway(actor: Actor, *, nat: NatGateway) -> NatGateway:
    """With its port mappings; the EIP stays the tenant's, unbound. No longer billed."""
    from apps.billing import metering
    from apps.tenants import quotas

    permissions.require(actor, nat, "delete")
    nat = _locked(NatGateway.objects.select_related("vpc__region", "tenant"), nat.pk)
    vpc = nat.vpc
    metering.resource_deleted(nat)
    nat.delete()
    quotas.release(nat.tenant, region=vpc.region.code, amounts={"nat_gateways": 1})
    _close_gateway_if_unused(vpc)
    apply_router(vpc)
    publish_network(nat, "deleted")
    return nat


def _check_port(value, field: str) -> int:
    if not _is_int(value) or not 1 <= value <= 65535:
        raise ValidationFailed("Ports are 1 to 65535.", fields={field: ["1 to 65535."]})
    return value


@audited("port_mapping.create", area="network")
def add_port_mapping(actor: Actor, *, nat: NatGateway, protocol: str, external_port: int, internal_ip: str,
                     internal_port: int, description: str = "") -> PortMapping:
    """EIP:external_port → internal_ip:internal_port (an address of one of the VPC's subnets)."""
    permissions.require(actor, nat, "change")
    nat = _locked(NatGateway.objects.select_related("vpc", "eip"), nat.pk)
    if protocol not in ("tcp", "udp"):
        raise ValidationFailed("Protocol is tcp or udp.", fields={"protocol": ["tcp or udp."]})
    external_port, internal_port = _check_port(external_port, "external_port"), _check_port(internal_port,
                                                                                            "internal_port")
    address = _address(internal_ip, "internal_ip")
    usable = [s.network for s in nat.vpc.subnets.all()]
    if not any(address in n and address not in (n.network_address, n.broadcast_address) for n in usable):
        raise ValidationFailed(f"{address} is in none of VPC {nat.vpc.public_id}'s subnets.",
                               fields={"internal_ip": ["An address of one of the VPC's subnets."]})
    same = nat.port_mappings.filter(protocol=protocol, external_port=external_port).first()
    if same:
        raise Conflict(f"{nat.eip.address}:{external_port}/{protocol} is mapped already ({same.public_id}).",
                       code="duplicate_mapping", fields={"external_port": ["Mapped already."]})
    mapping = PortMapping.objects.create(nat_gateway=nat, protocol=protocol, external_port=external_port,
                                         internal_ip=str(address), internal_port=internal_port,
                                         description=description)
    apply_router(nat.vpc)
    publish_network(nat, "updated")
    return mapping


@audited("port_mapping.delete", area="network")
def delete_port_mapping(actor: Actor, *, mapping: PortMapping) -> PortMapping:
    nat = mapping.nat_gateway
    permissions.require(actor, nat, "change")
    nat = _locked(NatGateway.objects.select_related("vpc"), nat.pk)
    mapping.delete()
    apply_router(nat.vpc)
    publish_network(nat, "updated")
    return mapping
