"""Load balancer services (layer 4): load balancers with a virtual address in a subnet, TCP/UDP
listeners, members and health checks.

Each listener is one OVN load balancer on the VPC's router and switches: the VIP (and the EIP
bound to the load balancer) on the listener's port, spread over the members with a weight above
0. Health checks are ovn-controller's: each member is probed through its logical port from a
service address of its subnet; the results are read from the southbound database. OVN has no
weighted balancing: weight 0 takes a member out, other weights balance evenly (docs/network.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core import permissions
from apps.core.audit import audited
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.validation import clean_name
from apps.network.backends import get_network_driver
from apps.network.drivers import base as driver
from apps.network.models import IPAllocation, Listener, LoadBalancer, Member, Port, Subnet
from apps.network.services import _address, _backend, _is_int, _locked, allocate_address, publish_network

if TYPE_CHECKING:
    from apps.core.actor import Actor

# Spec builders and readers, and the rewrite of a load balancer's listeners that the services
# here and the EIP binding (part of those audited actions) share.
UNAUDITED = ("listener_spec", "member_health", "apply_listeners")

HEALTH_LIMITS = {"health_interval": (1, 300), "health_timeout": (1, 60), "health_success": (1, 10),
                 "health_failure": (1, 10)}


def _service_address(subnet_id: int) -> str:
    found = IPAllocation.objects.filter(subnet_id=subnet_id, purpose=IPAllocation.SERVICE).first()
    return found.address if found else ""


def listener_spec(listener: Listener) -> driver.ListenerSpec:
    lb = listener.load_balancer
    vpc = lb.subnet.vpc
    eip = getattr(lb, "eip", None)
    ports = {a.address: a.port for a in IPAllocation.objects.filter(subnet__vpc=vpc, port__isnull=False)
             .select_related("port")}
    backends = []
    for member in listener.members.filter(weight__gt=0):
        port = ports.get(member.address)
        backends.append(driver.Backend(member.address, member.port, port.switch_port if port else "",
                                       _service_address(port.subnet_id) if port else ""))
    health = None
    if listener.health_check:
        health = driver.HealthCheck(listener.health_interval, listener.health_timeout, listener.health_success,
                                    listener.health_failure)
    return driver.ListenerSpec(
        name=listener.ovn_name, public_id=listener.public_id, tenant=lb.tenant.public_id, protocol=listener.protocol,
        addresses=(lb.vip, *([eip.address] if eip else [])), port=listener.port, backends=tuple(backends),
        router=vpc.public_id, switches=tuple(sorted(vpc.subnets.values_list("public_id", flat=True))),
        source_ip_affinity=listener.algorithm == Listener.SOURCE_IP, health=health)


def apply_listeners(lb: LoadBalancer) -> None:
    """Write every listener of the load balancer as its rows now say."""
    backend = get_network_driver()
    with _backend():
        for listener in Listener.objects.filter(load_balancer=lb).select_related(
                "load_balancer__tenant", "load_balancer__subnet__vpc", "load_balancer__allocation"):
            backend.ensure_listener(listener_spec(listener))


def member_health(listener: Listener) -> dict[int, str]:
    """Member id → online / offline (the health checks' last word), drained (weight 0),
    unchecked (no health check) or unknown (not reported yet, or no southbound to ask)."""
    members = list(listener.members.all())
    if not listener.health_check:
        return {m.pk: "drained" if m.weight == 0 else "unchecked" for m in members}
    try:
        seen = get_network_driver().backend_health(listener.ovn_name)
    except driver.NetworkError:
        seen = {}
    return {m.pk: "drained" if m.weight == 0 else seen.get((m.address, m.port), "unknown") for m in members}


# --- load balancers -------------------------------------------------------------------------

@audited("load_balancer.create", area="network")
def create_load_balancer(actor: Actor, *, subnet: Subnet, name: str, ip_address: str | None = None,
                         description: str = "") -> LoadBalancer:
    """A load balancer with its virtual address in the subnet (the one asked for, else the
    lowest free); listeners come next. Billed until it is deleted; 402 first when the wallet
    cannot cover its hours."""
    from apps.billing import metering
    from apps.tenants import quotas

    permissions.require(actor, subnet, "create")
    subnet = _locked(Subnet.objects.select_related("vpc__region", "tenant"), subnet.pk)
    metering.require_funds(subnet.tenant, metering.estimate_load_balancer(subnet.tenant, region=subnet.vpc.region.code))
    quotas.consume(subnet.tenant, region=subnet.vpc.region.code, amounts={"load_balancers": 1})
    allocation = allocate_address(subnet, None, requested=ip_address, purpose=IPAllocation.VIP)
    lb = LoadBalancer.objects.create(tenant=subnet.tenant, created_by=actor.user, name=clean_name(name),
                                     subnet=subnet, allocation=allocation, description=description)
    metering.order_created(actor, lb)
    metering.start_usage(lb)
    publish_network(lb, "created")
    return lb


@audited("load_balancer.update", area="network")
def update_load_balancer(actor: Actor, *, load_balancer: LoadBalancer, name: str | None = None,
                         description: str | None = None) -> LoadBalancer:
    permissions.require(actor, load_balancer, "change")
    if name is not None:
        load_balancer.name = clean_name(name)
    if description is not None:
        load_balancer.description = description
    load_balancer.save(update_fields=["name", "description", "updated_at"])
    publish_network(load_balancer, "updated")
    return load_balancer


@audited("load_balancer.delete", area="network")
def delete_load_balancer(actor: Actor, *, load_balancer: LoadBalancer) -> LoadBalancer:
    """With its listeners and members; not while an EIP is bound to it. No longer billed."""
    from apps.billing import metering
    from apps.tenants import quotas

    permissions.require(actor, load_balancer, "delete")
    lb = _locked(LoadBalancer.objects.select_related("subnet__vpc__region", "tenant", "allocation"),
                 load_balancer.pk)
    eip = getattr(lb, "eip", None)
    if eip is not None:
        raise Conflict(f"EIP {eip.public_id} ({eip.address}) is bound to {lb.public_id}: unbind it first.",
                       code="eip_bound")
    names = [listener.ovn_name for listener in lb.listeners.all()]
    allocation = lb.allocation
    metering.resource_deleted(lb)
    lb.delete()
    allocation.delete()
    quotas.release(lb.tenant, region=lb.subnet.vpc.region.code, amounts={"load_balancers": 1})
    with _backend():
        for name in names:
            get_network_driver().delete_listener(name)
    publish_network(lb, "deleted")
    return lb


# --- listeners ------------------------------------------------------------------------------

def _check_port(value, field: str) -> int:
    if not _is_int(value) or not 1 <= value <= 65535:
        raise ValidationFailed("Ports are 1 to 65535.", fields={field: ["1 to 65535."]})
    return value


def _check_health(values: dict) -> dict:
    checked = {}
    for field, value in values.items():
        if value is None:
            continue
        low, high = HEALTH_LIMITS[field]
        if not _is_int(value) or not low <= value <= high:
            raise ValidationFailed(f"{field} is {low} to {high}.", fields={field: [f"{low} to {high}."]})
        checked[field] = value
    return checked


def _write(listener: Listener) -> None:
    listener = Listener.objects.select_related("load_balancer__tenant", "load_balancer__subnet__vpc",
                                               "load_balancer__allocation").get(pk=listener.pk)
    with _backend():
        get_network_driver().ensure_listener(listener_spec(listener))
    publish_network(listener.load_balancer, "updated")


@audited("listener.create", area="network")
def add_listener(actor: Actor, *, load_balancer: LoadBalancer, protocol: str, port: int, name: str = "",
                 algorithm: str = Listener.HASH, health_check: bool = True, health_interval: int | None = None,
                 health_timeout: int | None = None, health_success: int | None = None,
                 health_failure: int | None = None) -> Listener:
    permissions.require(actor, load_balancer, "change")
    lb = _locked(LoadBalancer.objects, load_balancer.pk)
    if protocol not in ("tcp", "udp"):
        raise ValidationFailed("Protocol is tcp or udp.", fields={"protocol": ["tcp or udp."]})
    if algorithm not in (Listener.HASH, Listener.SOURCE_IP):
        raise ValidationFailed("Algorithm is hash or source_ip.", fields={"algorithm": ["hash or source_ip."]})
    port = _check_port(port, "port")
    if lb.listeners.filter(protocol=protocol, port=port).exists():
        raise Conflict(f"{lb.public_id} listens on {protocol}/{port} already.", code="duplicate_listener",
                       fields={"port": ["Taken."]})
    health = _check_health({"health_interval": health_interval, "health_timeout": health_timeout,
                            "health_success": health_success, "health_failure": health_failure})
    listener = Listener.objects.create(load_balancer=lb, name=clean_name(name) if name else "", protocol=protocol,
                                       port=port, algorithm=algorithm, health_check=health_check, **health)
    _write(listener)
    return listener


@audited("listener.update", area="network")
def update_listener(actor: Actor, *, listener: Listener, name: str | None = None, algorithm: str | None = None,
                    health_check: bool | None = None, health_interval: int | None = None,
                    health_timeout: int | None = None, health_success: int | None = None,
                    health_failure: int | None = None) -> Listener:
    permissions.require(actor, listener.load_balancer, "change")
    listener = _locked(Listener.objects, listener.pk)
    if algorithm is not None:
        if algorithm not in (Listener.HASH, Listener.SOURCE_IP):
            raise ValidationFailed("Algorithm is hash or source_ip.", fields={"algorithm": ["hash or source_ip."]})
        listener.algorithm = algorithm
    if name is not None:
        listener.name = clean_name(name) if name else ""
    if health_check is not None:
        listener.health_check = health_check
    for field, value in _check_health({"health_interval": health_interval, "health_timeout": health_timeout,
                                       "health_success": health_success, "health_failure": health_failure}).items():
        setattr(listener, field, value)
    listener.save()
    _write(listener)
    return listener


@audited("listener.delete", area="network")
def delete_listener(actor: Actor, *, listener: Listener) -> Listener:
    permissions.require(actor, listener.load_balancer, "change")
    listener = _locked(Listener.objects.select_related("load_balancer"), listener.pk)
    listener.delete()
    with _backend():
        get_network_driver().delete_listener(listener.ovn_name)
    publish_network(listener.load_balancer, "updated")
    return listener


# --- members --------------------------------------------------------------------------------

def _check_weight(weight) -> int:
    if not _is_int(weight) or not 0 <= weight <= 100:
        raise ValidationFailed("Weight is 0 (out of rotation) to 100.", fields={"weight": ["0 to 100."]})
    return weight


def _member_address(listener: Listener, instance, address: str | None) -> tuple[str, Port | None]:
    vpc = listener.load_balancer.subnet.vpc
    if (instance is None) == (address is None):
        raise ValidationFailed("Give an instance or an address.", fields={"address": ["An instance or an address."]})
    if instance is not None:
        port = Port.objects.filter(instance=instance, subnet__vpc=vpc).order_by("device_index").first()
        if port is None:
            raise Conflict(f"Instance {instance.public_id} has no interface in VPC {vpc.public_id}.",
                           code="not_in_vpc", fields={"instance": [f"Not in VPC {vpc.public_id}."]})
        found = next((a.address for a in port.addresses.all() if ":" not in a.address), None)
        if found is None:
            raise Conflict(f"Port {port.public_id} has no IPv4 address.", code="no_ipv4")
        return found, port
    value = _address(address, "address")
    if value.version != 4 or not any(value in s.network for s in vpc.subnets.all()):
        raise ValidationFailed(f"{value} is in none of VPC {vpc.public_id}'s subnets.",
                               fields={"address": ["An IPv4 address of the VPC."]})
    allocation = IPAllocation.objects.filter(subnet__vpc=vpc, address=str(value), port__isnull=False).first()
    return str(value), allocation.port if allocation else None


def _ensure_service_address(subnet_id: int) -> None:
    """The address health probes of members on this subnet come from (one per subnet)."""
    if not _service_address(subnet_id):
        subnet = _locked(Subnet.objects, subnet_id)
        allocate_address(subnet, None, purpose=IPAllocation.SERVICE)


@audited("member.create", area="network")
def add_member(actor: Actor, *, listener: Listener, port: int, instance=None, address: str | None = None,
               weight: int = 1) -> Member:
    """A backend: an instance of the VPC (its interface's address) or an address of the VPC."""
    permissions.require(actor, listener.load_balancer, "change")
    listener = _locked(Listener.objects.select_related("load_balancer__subnet__vpc"), listener.pk)
    member_address, member_port = _member_address(listener, instance, address)
    port, weight = _check_port(port, "port"), _check_weight(weight)
    if listener.members.filter(address=member_address, port=port).exists():
        raise Conflict(f"{member_address}:{port} is a member of {listener.public_id} already.",
                       code="duplicate_member")
    if member_port is not None:
        _ensure_service_address(member_port.subnet_id)
    member = Member.objects.create(listener=listener, address=member_address, port=port,
                                   weight=weight, instance=instance)
    _write(listener)
    return member


@audited("member.update", area="network")
def update_member(actor: Actor, *, member: Member, weight: int) -> Member:
    permissions.require(actor, member.listener.load_balancer, "change")
    member = _locked(Member.objects.select_related("listener"), member.pk)
    member.weight = _check_weight(weight)
    member.save(update_fields=["weight"])
    _write(member.listener)
    return member


@audited("member.delete", area="network")
def delete_member(actor: Actor, *, member: Member) -> Member:
    permissions.require(actor, member.listener.load_balancer, "change")
    member = _locked(Member.objects.select_related("listener"), member.pk)
    member.delete()
    _write(member.listener)
    return member
