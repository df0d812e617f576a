"""The network services on the fake control plane: quotas, IPAM, nothing half-made when the
control plane fails, the reconcile's drift repair and orphan grace, and IPAM under concurrency
(PostgreSQL)."""

import ipaddress

import pytest
from django.db import connection
from django.db.models import F

from apps.core.exceptions import Conflict
from apps.core.models import AuditRecord
from apps.network import services
from apps.network.drivers.base import PORT, ROUTER, SECURITY_GROUP
from apps.network.models import VPC, IPAllocation, NetworkOrphan, Port, SecurityGroup
from apps.tenants.models import Quota
from apps.tenants.services import set_quota
from tests.concurrency import race
from tests.factories.compute import make_inventory
from tests.factories.tenants import actor_for


@pytest.fixture(autouse=True)
def region(db):
    return make_inventory()["region"]


def make_network(owner, *, subnet_cidr="10.0.1.0/24", ipv6=False):
    """A VPC 10.0.0.0/16 (dual-stack with `ipv6`) and one subnet "web" of it."""
    vpc = services.create_vpc(owner, name="prod", cidr="10.0.0.0/16", ipv6=ipv6)
    return vpc, services.create_subnet(owner, vpc=vpc, name="web", cidr=subnet_cidr, ipv6=ipv6)


def address(port, version=4) -> str:
    return next(a.address for a in port.addresses.all() if ipaddress.ip_address(a.address).version == version)


def in_use(tenant) -> dict[str, int]:
    return {q.resource: q.in_use for q in Quota.objects.filter(tenant=tenant)}


def test_the_vpc_quota_is_a_409_with_nothing_made_and_a_delete_gives_it_back(a_owner, actor, api, operator,
                                                                              fake_network):
    owner = actor(a_owner)
    set_quota(operator, tenant=a_owner.tenant, resource="vpcs", limit=1, region="default")
    first = services.create_vpc(owner, name="first", cidr="10.0.0.0/16")

    refused = api(a_owner).post("/api/v1/vpcs", {"name": "second", "cidr": "10.1.0.0/16"}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "quota_exceeded", refused.json()
    assert list(VPC.objects.values_list("name", flat=True)) == ["first"]
    assert SecurityGroup.objects.count() == 1
    assert set(fake_network.state[ROUTER]) == {first.public_id}
    assert in_use(a_owner.tenant) == {"vpcs": 1, "security_groups": 1, "security_group_rules": 2}

    services.delete_vpc(owner, vpc=first)
    assert in_use(a_owner.tenant) == {"vpcs": 0, "security_groups": 0, "security_group_rules": 0}
    assert (fake_network.state[ROUTER], fake_network.state[SECURITY_GROUP]) == ({}, {})
    again = api(a_owner).post("/api/v1/vpcs", {"name": "second", "cidr": "10.1.0.0/16"}, format="json")
    assert again.status_code == 201, again.json()


def test_addresses_are_the_lowest_free_ones_the_gateway_is_reserved_and_a_full_subnet_is_a_409(a_owner, actor,
                                                                                                 fake_network):
    owner = actor(a_owner)
    _, subnet = make_network(owner, subnet_cidr="10.0.1.0/29")  # .1 gateway, .2 to .6 for ports
    assert list(subnet.allocations.values_list("address", "purpose")) == [("10.0.1.1", "gateway")]

    chosen = services.create_port(owner, subnet=subnet, ip_address="10.0.1.4")
    ports = [services.create_port(owner, subnet=subnet) for _ in range(4)]
    assert [address(p) for p in [chosen, *ports]] == ["10.0.1.4", "10.0.1.2", "10.0.1.3", "10.0.1.5", "10.0.1.6"]
    assert fake_network.state[PORT][chosen.switch_port].addresses == ("10.0.1.4",)

    with pytest.raises(Conflict) as full:
        services.create_port(owner, subnet=subnet)
    assert full.value.code == "subnet_full"
    assert Port.objects.count() == 5 and len(fake_network.state[PORT]) == 5
    assert in_use(a_owner.tenant)["ports"] == 5

    services.delete_port(owner, port=ports[1])  # gives 10.0.1.3 back
    assert address(services.create_port(owner, subnet=subnet)) == "10.0.1.3"
    assert in_use(a_owner.tenant)["ports"] == 5


def test_a_dual_stack_port_gets_an_ipv6_address_of_its_subnets_64(a_owner, actor, fake_network):
    owner = actor(a_owner)
    vpc, subnet = make_network(owner, ipv6=True)
    block = ipaddress.ip_network(subnet.ipv6_cidr)
    assert vpc.ipv6_network.prefixlen == 56 and vpc.ipv6_network.subnet_of(ipaddress.ip_network("fd00::/8"))
    assert block.prefixlen == 64 and block.subnet_of(vpc.ipv6_network)
    assert subnet.ipv6_gateway_ip == str(block[1])

    port = services.create_port(owner, subnet=subnet)
    assert (address(port), address(port, 6)) == ("10.0.1.2", str(block[2]))
    assert fake_network.state[PORT][port.switch_port].addresses == ("10.0.1.2", str(block[2]))
    chosen = services.create_port(owner, subnet=subnet, ipv6_address=str(block[0x99]))
    assert (address(chosen), address(chosen, 6)) == ("10.0.1.3", str(block[0x99]))

    second = services.create_subnet(owner, vpc=vpc, name="db", cidr="10.0.2.0/24", ipv6=True)
    assert second.ipv6_cidr == str(ipaddress.ip_network((block.network_address + 2**64, 64)))


def test_a_vpc_whose_group_the_control_plane_fails_is_not_made(a_owner, api, fake_network):
    fake_network.fail_on.add("ensure_security_group")
    response = api(a_owner).post("/api/v1/vpcs", {"name": "prod", "cidr": "10.0.0.0/16"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "unavailable", response.json()
    assert "fake control plane: ensure_security_group fails" in response.json()["message"]
    assert not VPC.objects.exists() and not SecurityGroup.objects.exists()
    assert fake_network.state[ROUTER] == {}  # made before the group failed, removed again
    assert sum(in_use(a_owner.tenant).values()) == 0
    assert AuditRecord.objects.get(action="vpc.create").error_code == "unavailable"


def test_a_port_the_control_plane_fails_is_not_made_and_costs_no_quota(a_owner, actor, api, fake_network):
    _, subnet = make_network(actor(a_owner))
    fake_network.fail_on.add("ensure_port")
    response = api(a_owner).post("/api/v1/ports", {"subnet": subnet.public_id}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "unavailable", response.json()
    assert not Port.objects.exists() and fake_network.state[PORT] == {}
    assert list(IPAllocation.objects.values_list("purpose", flat=True)) == ["gateway"]
    assert in_use(a_owner.tenant).get("ports", 0) == 0
    fake_network.fail_on.clear()
    assert address(services.create_port(actor(a_owner), subnet=subnet)) == "10.0.1.2"


def test_the_reconcile_repairs_drift_and_removes_an_orphan_only_after_its_grace(a_owner, actor, api, fake_network):
    owner = actor(a_owner)
    vpc, subnet = make_network(owner)
    port = services.create_port(owner, subnet=subnet)
    # A failed create whose undo failed too leaves a router that no row explains.
    fake_network.fail_on.update({"ensure_security_group", "delete_router"})
    assert api(a_owner).post("/api/v1/vpcs", {"name": "lost", "cidr": "10.1.0.0/16"}, format="json").status_code == 503
    fake_network.fail_on.clear()
    [orphan] = set(fake_network.state[ROUTER]) - {vpc.public_id}
    del fake_network.state[PORT][port.switch_port]  # drift: the port is gone from the backend

    first = services.reconcile_network()
    assert first == {"repaired": [f"port {port.switch_port}: created"], "removed": []}
    assert orphan in fake_network.state[ROUTER] and NetworkOrphan.objects.filter(name=orphan).exists()
    assert services.reconcile_network() == {"repaired": [], "removed": []}  # still inside the grace

    NetworkOrphan.objects.update(first_seen=F("first_seen") - services.ORPHAN_GRACE)
    assert services.reconcile_network() == {"repaired": [], "removed": [f"router {orphan}"]}
    assert set(fake_network.state[ROUTER]) == {vpc.public_id} and not NetworkOrphan.objects.exists()
    assert [r.details for r in AuditRecord.objects.filter(action="network.reconcile").order_by("id")] == [
        {"repaired": [f"port {port.switch_port}: created"], "removed": []},
        {"repaired": [], "removed": [f"router {orphan}"]}]


ATTEMPTS = 20
FREE = 15  # of the /27's 29 addresses after the gateway: fewer than the attempts


# PostgreSQL's row lock on the subnet is what this is about; on SQLite (IMMEDIATE transactions
# queue the writers) it runs too, as the quota race does, and says which one it ran on.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_ports_get_distinct_addresses_until_the_subnet_is_full(a_owner, fake_network):
    owner = actor_for(a_owner)
    _, subnet = make_network(owner, subnet_cidr="10.0.1.0/27")
    for _ in range(29 - FREE):
        services.create_port(owner, subnet=subnet)

    outcomes = race(ATTEMPTS, lambda n: services.create_port(owner, subnet=subnet, name=f"race-{n}"))

    assert sorted(set(outcomes)) == ["ok", "subnet_full"], outcomes
    assert outcomes.count("ok") == FREE
    addresses = list(IPAllocation.objects.filter(subnet=subnet).values_list("address", flat=True))
    assert sorted(addresses, key=ipaddress.ip_address) == [str(a) for a in subnet.network.hosts()]
    assert Port.objects.count() == len(fake_network.state[PORT]) == 29
    assert in_use(a_owner.tenant)["ports"] == 29
    print(f"{connection.vendor}: {outcomes.count('ok')} ports made, {outcomes.count('subnet_full')} refused")


def test_anywhere_is_one_rule_whatever_its_spelling(a_owner, actor, db):
    owner = actor(a_owner)
    make_inventory()
    vpc = services.create_vpc(owner, name="any", cidr="10.3.0.0/16")
    group = vpc.security_groups.get(is_default=True)
    services.add_security_group_rule(owner, group=group, direction="ingress", protocol="tcp", port_range_min=80,
                                     port_range_max=80, remote_ip_prefix="0.0.0.0/0")
    with pytest.raises(Conflict) as caught:
        services.add_security_group_rule(owner, group=group, direction="ingress", protocol="tcp", port_range_min=80,
                                         port_range_max=80)
    assert caught.value.code == "duplicate_rule"
