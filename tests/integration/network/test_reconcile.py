"""The network reconcile against a real OVN northbound: drift made by hand with ovn-nbctl is
reported and repaired until OVN is as the services left it; the portal's orphans go once their
grace is over; objects of other owners are never touched."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db.models import F

from apps.core.models import AuditRecord
from apps.network import services
from apps.network.models import NetworkOrphan
from tests.integration.network.test_ovn_northbound import rows

pytestmark = [pytest.mark.ovn, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TABLES = ["Logical_Router", "Logical_Router_Port", "Logical_Switch", "Logical_Switch_Port", "Port_Group", "ACL",
          "DHCP_Options"]


def northbound(ovn) -> dict:
    """Every row of the tables the portal writes, keyed by a stable label, references shown as
    the labels of the rows they point at: equal whenever the content is, whatever the uuids."""
    tables = {table: rows(ovn, table) for table in TABLES}

    def label(table, row):
        if table == "ACL":
            return f"acl {row['direction']} {row['priority']} {row['match']}"
        return f"{table} {row['cidr'] if table == 'DHCP_Options' else row['name']}"

    labels = {row["_uuid"]: label(table, row) for table, found in tables.items() for row in found}

    def named(value):
        if isinstance(value, list):
            return sorted(named(v) for v in value)
        return labels.get(value, value) if isinstance(value, str) else value

    return {label(table, row): {column: named(value) for column, value in row.items() if column != "_uuid"}
            for table, found in tables.items() for row in found}


@pytest.fixture
def world(ovn, region, a_owner, actor):
    """A VPC with a subnet, a port in the default group, and a group "solo" with one rule."""
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24", dns_nameservers=["10.20.0.2"])
    port = services.create_port(owner, subnet=subnet)
    default = vpc.security_groups.get()
    solo = services.create_security_group(owner, vpc=vpc, name="solo")
    return SimpleNamespace(vpc=vpc, subnet=subnet, port=port, default=default, solo=solo, lsp=str(port.uuid),
                           egress=default.rules.get(direction="egress"), only=solo.rules.get())


def lsp_uuid(ovn, w) -> str:
    return ovn.nbctl("--bare", "--columns=_uuid", "find", "Logical_Switch_Port", f"name={w.lsp}").strip()


def dhcp_uuid(ovn) -> str:
    return ovn.nbctl("--bare", "--columns=_uuid", "find", "DHCP_Options", "cidr=10.20.1.0/24").strip()


DRIFT = {
    # what is done by hand, what the reconcile reports
    "acl-deleted": (
        lambda ovn, w: ovn.nbctl("acl-del", w.default.port_group, "from-lport", "1002",
                                 f"inport == @{w.default.port_group} && ip4"),
        lambda w: [f"port group {w.default.port_group}: ACL {w.egress.public_id} missing"]),
    "a-groups-only-acl-deleted": (
        lambda ovn, w: ovn.nbctl("acl-del", w.solo.port_group),
        lambda w: [f"port group {w.solo.port_group}: ACL {w.only.public_id} missing"]),
    "acl-changed": (
        lambda ovn, w: ovn.nbctl("set", "ACL", ovn.nbctl("--bare", "--columns=acls", "find", "Port_Group",
                                                         f"name={w.solo.port_group}").strip(), "action=drop"),
        lambda w: [f"port group {w.solo.port_group}: ACL {w.only.public_id} differed"]),
    "drop-acl-deleted": (
        lambda ovn, w: ovn.nbctl("acl-del", "portal_drop", "to-lport", "1001", "outport == @portal_drop && ip"),
        lambda w: ["port group portal_drop: ACL drop-to missing"]),
    "port-addresses-changed": (
        lambda ovn, w: ovn.nbctl("lsp-set-addresses", w.lsp, "02:00:00:00:00:01 10.20.1.99"),
        lambda w: [f"port {w.port.public_id}: addresses differed"]),
    "port-out-of-its-group": (
        lambda ovn, w: ovn.nbctl("remove", "Port_Group", w.default.port_group, "ports", lsp_uuid(ovn, w)),
        lambda w: [f"port {w.port.public_id}: missing from port group {w.default.port_group}"]),
    "port-in-a-group-not-its-own": (
        lambda ovn, w: ovn.nbctl("add", "Port_Group", w.solo.port_group, "ports", lsp_uuid(ovn, w)),
        lambda w: [f"port {w.port.public_id}: removed from port group {w.solo.port_group}"]),
    "dhcp-options-changed": (
        lambda ovn, w: ovn.nbctl("dhcp-options-set-options", dhcp_uuid(ovn), "lease_time=60"),
        lambda w: [f"switch {w.subnet.public_id} DHCPv4: options differed"]),
    "switch-deleted": (
        lambda ovn, w: ovn.nbctl("ls-del", w.subnet.public_id),
        lambda w: [f"switch {w.subnet.public_id}: created", f"switch {w.subnet.public_id}: router-side switch port "
                   "created", f"port {w.port.public_id}: created"]),
    "router-deleted": (
        lambda ovn, w: ovn.nbctl("lr-del", w.vpc.public_id),
        lambda w: [f"router {w.vpc.public_id}: created", f"switch {w.subnet.public_id}: router port created"]),
}


@pytest.mark.parametrize("drift", DRIFT)
def test_hand_made_drift_is_reported_and_repaired(drift, world, ovn):
    make, report = DRIFT[drift]
    before = northbound(ovn)
    make(ovn, world)
    assert northbound(ovn) != before

    result = services.reconcile_network()

    assert result == {"repaired": report(world), "removed": []}
    assert northbound(ovn) == before
    assert services.reconcile_network() == {"repaired": [], "removed": []}
    assert [r.details for r in AuditRecord.objects.filter(action="network.reconcile")] == [result]


def portal_ids(kind: str, public_id: str, owner: str = "cloudportal") -> list[str]:
    return [f'external_ids:"portal:owner"={owner}', f'external_ids:"portal:kind"={kind}',
            f'external_ids:"portal:id"={public_id}']


FOREIGN = ["Logical_Switch lab-net", "Logical_Switch subnet-theirs1", "Logical_Router vpc-theirs01"]


def test_orphans_go_after_their_grace_and_other_owners_objects_stay(world, ovn):
    ghost_port = "0b9d2f6e-1c1a-4f55-9a57-111111111111"
    before = northbound(ovn)
    ovn.nbctl("lr-add", "vpc-ghost001", "--", "set", "Logical_Router", "vpc-ghost001",
              *portal_ids("router", "vpc-ghost001"))
    ovn.nbctl("ls-add", "subnet-ghost01", "--", "set", "Logical_Switch", "subnet-ghost01",
              *portal_ids("switch", "subnet-ghost01"))
    ovn.nbctl("pg-add", "pg_sg_ghost001", "--", "set", "Port_Group", "pg_sg_ghost001",
              *portal_ids("security_group", "sg-ghost001"))
    ovn.nbctl("lsp-add", world.subnet.public_id, ghost_port, "--", "set", "Logical_Switch_Port", ghost_port,
              *portal_ids("port", "eni-ghost001"))
    ovn.nbctl("ls-add", "lab-net")  # no external_ids: not the portal's
    ovn.nbctl("ls-add", "subnet-theirs1", "--", "set", "Logical_Switch", "subnet-theirs1",
              *portal_ids("switch", "subnet-theirs1", owner="someone-else"))
    ovn.nbctl("lr-add", "vpc-theirs01", "--", "set", "Logical_Router", "vpc-theirs01",
              *portal_ids("router", "vpc-theirs01", owner="someone-else"))
    with_orphans = northbound(ovn)

    assert services.reconcile_network() == {"repaired": [], "removed": []}
    assert northbound(ovn) == with_orphans
    assert sorted(NetworkOrphan.objects.values_list("kind", "name")) == [
        ("port", ghost_port), ("router", "vpc-ghost001"), ("security_group", "pg_sg_ghost001"),
        ("switch", "subnet-ghost01")]

    NetworkOrphan.objects.update(first_seen=F("first_seen") - timedelta(minutes=10))
    result = services.reconcile_network()

    assert result == {"repaired": [], "removed": [f"port {ghost_port}", "switch subnet-ghost01",
                                                  "security_group pg_sg_ghost001", "router vpc-ghost001"]}
    assert not NetworkOrphan.objects.exists()
    assert set(ovn.nbctl("--bare", "--columns=name", "list", "Logical_Switch").split()) == {
        world.subnet.public_id, "lab-net", "subnet-theirs1"}
    assert set(ovn.nbctl("--bare", "--columns=name", "list", "Logical_Router").split()) == {
        world.vpc.public_id, "vpc-theirs01"}
    assert "pg_sg_ghost001" not in ovn.nbctl("--bare", "--columns=name", "list", "Port_Group")
    assert not rows(ovn, "Logical_Switch_Port", f"name={ghost_port}")
    after = northbound(ovn)
    assert {k: v for k, v in after.items() if k not in FOREIGN} == before
    assert {k: v for k, v in after.items() if k in FOREIGN} == {k: with_orphans[k] for k in FOREIGN}
    assert [r.details for r in AuditRecord.objects.filter(action="network.reconcile")] == [result]
