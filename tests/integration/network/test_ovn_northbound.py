"""The network services against a real OVN northbound ovsdb-server, checked with ovn-nbctl:
what each create, update and delete leaves in OVN, and what an unreachable one answers."""

import json

import pytest

from apps.core.exceptions import Unavailable
from apps.network import services
from apps.network.models import VPC

pytestmark = [pytest.mark.ovn, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def ovsdb_value(value):
    """An ovsdb JSON value as Python: a map as a dict, a set as a sorted list, a uuid as its text."""
    if isinstance(value, list) and len(value) == 2 and value[0] in ("map", "set", "uuid"):
        kind, inner = value
        if kind == "map":
            return {k: ovsdb_value(v) for k, v in inner}
        return sorted(ovsdb_value(v) for v in inner) if kind == "set" else inner
    return value


def members(value) -> list:
    """A set column: ovsdb writes a one-element set as the element alone."""
    return value if isinstance(value, list) else [value]


def rows(ovn, table, *conditions, columns=None):
    """`ovn-nbctl find TABLE CONDITIONS...` as dicts of Python values (all columns unless given)."""
    selected = [f"--columns={columns}"] if columns else []
    doc = json.loads(ovn.nbctl("--format=json", *selected, "find", table, *conditions))
    return [{k: ovsdb_value(v) for k, v in zip(doc["headings"], row)} for row in doc["data"]]


def switch_port(ovn, port) -> dict:
    [row] = rows(ovn, "Logical_Switch_Port", f"name={port.uuid}")
    return row


def port_groups_of(ovn, port) -> set[str]:
    """The port groups the port is in, as `ovn-nbctl --bare --columns=ports find Port_Group` shows."""
    lsp = switch_port(ovn, port)["_uuid"]
    names = ovn.nbctl("--bare", "--columns=name", "list", "Port_Group").split()
    return {name for name in names
            if lsp in ovn.nbctl("--bare", "--columns=ports", "find", "Port_Group", f"name={name}").split()}


def dhcp_options(ovn, subnet) -> dict[str, tuple[str, dict]]:
    """The subnet's DHCP_Options rows by IP version: (uuid, options)."""
    found = {}
    for row in rows(ovn, "DHCP_Options"):
        if row["external_ids"].get("portal:id") == subnet.public_id:
            found[row["external_ids"]["portal:ip_version"]] = (row["_uuid"], row["options"])
    return found


def test_vpc_subnet_port_and_group_land_in_ovn(ovn, region, a_owner, actor):
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16", ipv6=True)
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24", ipv6=True,
                                    dns_nameservers=["10.20.0.2"],
                                    host_routes=[{"destination": "192.168.9.0/24", "nexthop": "10.20.1.9"}])
    port = services.create_port(owner, subnet=subnet, name="eth0")

    assert vpc.public_id in ovn.nbctl("lr-list")
    assert subnet.public_id in ovn.nbctl("ls-list")
    lrp = rows(ovn, "Logical_Router_Port", f"name=lrp-{subnet.public_id}", columns="mac,networks,ipv6_ra_configs")
    assert lrp[0]["mac"] == subnet.router_mac
    assert "10.20.1.1/24" in lrp[0]["networks"]
    dhcp = dhcp_options(ovn, subnet)
    assert set(dhcp) == {"4", "6"} and len(ovn.nbctl("dhcp-options-list").split()) == 2
    v4 = dhcp["4"][1]
    assert (v4["router"], v4["dns_server"]) == ("10.20.1.1", "{10.20.0.2}")
    assert "classless_static_route" in v4

    address = port.addresses.get(address__contains=".").address
    assert ovn.nbctl("lsp-get-addresses", str(port.uuid)).split()[:2] == [port.mac_address, address]
    assert address in ovn.nbctl("lsp-get-port-security", str(port.uuid))
    default = vpc.security_groups.get(is_default=True)
    assert port_groups_of(ovn, port) == {default.port_group, "portal_drop"}
    acls = ovn.nbctl("acl-list", default.port_group)
    assert f"outport == @{default.port_group} && ip4 && ip4.src == ${default.port_group}_ip4" in acls
    assert f"inport == @{default.port_group} && ip4" in acls

    rule = services.add_security_group_rule(owner, group=default, direction="ingress", protocol="tcp",
                                            port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0")
    assert f"outport == @{default.port_group} && ip4 && tcp && tcp.dst == 22" in ovn.nbctl("acl-list",
                                                                                           default.port_group)
    services.delete_security_group_rule(owner, rule=rule)
    assert "tcp.dst == 22" not in ovn.nbctl("acl-list", default.port_group)

    services.delete_port(owner, port=port)
    services.delete_subnet(owner, subnet=subnet)
    services.delete_vpc(owner, vpc=vpc)
    assert ovn.nbctl("ls-list").strip() == "" and ovn.nbctl("lr-list").strip() == ""
    assert ovn.nbctl("dhcp-options-list").strip() == ""
    assert {g["name"] for g in rows(ovn, "Port_Group", columns="name,ports")} == {"portal_drop"}


def test_subnet_updates_change_its_dhcp_options_and_what_the_ports_point_at(ovn, region, a_owner, actor):
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16", ipv6=True)
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24", ipv6=True,
                                    dns_nameservers=["10.20.0.2"])
    port = services.create_port(owner, subnet=subnet)
    dhcp = dhcp_options(ovn, subnet)
    assert dhcp["4"][1] == {"server_id": "10.20.1.1", "server_mac": subnet.router_mac, "router": "10.20.1.1",
                            "lease_time": "43200", "mtu": "1442", "dns_server": "{10.20.0.2}"}
    assert dhcp["6"][1] == {"server_id": subnet.router_mac}
    lsp = switch_port(ovn, port)
    assert (lsp["dhcpv4_options"], lsp["dhcpv6_options"]) == (dhcp["4"][0], dhcp["6"][0])

    services.update_subnet(owner, subnet=subnet, dns_nameservers=["9.9.9.9", "2620:fe::fe"],
                           host_routes=[{"destination": "192.168.9.0/24", "nexthop": "10.20.1.9"}])
    changed = dhcp_options(ovn, subnet)
    assert {version: uuid for version, (uuid, _) in changed.items()} == {"4": dhcp["4"][0], "6": dhcp["6"][0]}
    assert (changed["4"][1]["dns_server"], changed["4"][1]["classless_static_route"]) == (
        "{9.9.9.9}", "{192.168.9.0/24,10.20.1.9, 0.0.0.0/0,10.20.1.1}")
    assert changed["6"][1] == {"server_id": subnet.router_mac, "dns_server": "{2620:fe::fe}"}

    services.update_subnet(owner, subnet=subnet, dhcp_enabled=False)
    assert dhcp_options(ovn, subnet) == {} and ovn.nbctl("dhcp-options-list").strip() == ""
    lsp = switch_port(ovn, port)
    assert (lsp["dhcpv4_options"], lsp["dhcpv6_options"]) == ([], [])

    services.update_subnet(owner, subnet=subnet, dhcp_enabled=True)
    back = dhcp_options(ovn, subnet)
    assert {version: options for version, (_, options) in back.items()} == {
        version: options for version, (_, options) in changed.items()}
    lsp = switch_port(ovn, port)
    assert (lsp["dhcpv4_options"], lsp["dhcpv6_options"]) == (back["4"][0], back["6"][0])


def test_port_updates_move_it_between_port_groups_and_set_its_port_security(ovn, region, a_owner, actor):
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24")
    port = services.create_port(owner, subnet=subnet)
    default, web = vpc.security_groups.get(), services.create_security_group(owner, vpc=vpc, name="web")
    assert port_groups_of(ovn, port) == {default.port_group, "portal_drop"}

    services.update_port(owner, port=port, security_groups=[web.public_id])
    assert port_groups_of(ovn, port) == {web.port_group, "portal_drop"}
    assert members(switch_port(ovn, port)["port_security"]) == [f"{port.mac_address} 10.20.1.2"]

    services.update_port(owner, port=port, allowed_address_pairs=[
        {"ip_address": "10.20.1.100"}, {"ip_address": "10.30.0.0/24", "mac_address": "02:11:22:33:44:55"}])
    assert set(members(switch_port(ovn, port)["port_security"])) == {
        f"{port.mac_address} 10.20.1.2 10.20.1.100", "02:11:22:33:44:55 10.30.0.0/24"}

    services.update_port(owner, port=port, port_security_enabled=False)
    lsp = switch_port(ovn, port)
    assert (lsp["port_security"], members(lsp["addresses"])) == ([], [f"{port.mac_address} 10.20.1.2"])
    assert port_groups_of(ovn, port) == set()

    services.update_port(owner, port=port, port_security_enabled=True, security_groups=[default.public_id])
    assert port_groups_of(ovn, port) == {default.port_group, "portal_drop"}
    assert len(members(switch_port(ovn, port)["port_security"])) == 2


def test_a_security_group_is_a_port_group_with_its_acls_until_it_is_deleted(ovn, region, a_owner, actor):
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16", ipv6=True)
    group = services.create_security_group(owner, vpc=vpc, name="web")
    [row] = rows(ovn, "Port_Group", f"name={group.port_group}")
    assert row["external_ids"] == {"portal:owner": "cloudportal", "portal:kind": "security_group",
                                   "portal:id": group.public_id, "portal:tenant": a_owner.tenant.public_id}
    acls = [a for a in rows(ovn, "ACL") if a["_uuid"] in members(row["acls"])]
    assert sorted((a["direction"], a["priority"], a["match"], a["action"]) for a in acls) == [
        ("from-lport", 1002, f"inport == @{group.port_group} && {ip}", "allow-related") for ip in ("ip4", "ip6")]

    services.delete_security_group(owner, group=group)
    assert rows(ovn, "Port_Group", f"name={group.port_group}") == []
    assert not [a for a in rows(ovn, "ACL") if group.port_group in a["match"]]


RULES = [
    # the rule (remote_group "@web": the other group), the ACL's direction and match ({pg}: the group's)
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 8000, "port_range_max": 8080},
     "to-lport", "outport == @{pg} && ip4 && tcp && tcp.dst >= 8000 && tcp.dst <= 8080"),
    ({"direction": "ingress", "protocol": "udp", "port_range_min": 53, "remote_ip_prefix": "192.0.2.0/24"},
     "to-lport", "outport == @{pg} && ip4 && ip4.src == 192.0.2.0/24 && udp && udp.dst == 53"),
    ({"direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
     "to-lport", "outport == @{pg} && ip4 && icmp4 && icmp4.type == 8 && icmp4.code == 0"),
    ({"direction": "ingress", "ethertype": "IPv6", "protocol": "icmp", "port_range_min": 128},
     "to-lport", "outport == @{pg} && ip6 && icmp6 && icmp6.type == 128"),
    ({"direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "port_range_min": 443,
      "remote_ip_prefix": "2001:db8::/32"},
     "to-lport", "outport == @{pg} && ip6 && ip6.src == 2001:db8::/32 && tcp && tcp.dst == 443"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 5432, "remote_group": "@web"},
     "to-lport", "outport == @{pg} && ip4 && ip4.src == ${web}_ip4 && tcp && tcp.dst == 5432"),
    ({"direction": "ingress", "ethertype": "IPv6", "remote_group": "@web"},
     "to-lport", "outport == @{pg} && ip6 && ip6.src == ${web}_ip6"),
    ({"direction": "egress", "protocol": "udp", "port_range_min": 123, "remote_ip_prefix": "198.51.100.1/32"},
     "from-lport", "inport == @{pg} && ip4 && ip4.dst == 198.51.100.1/32 && udp && udp.dst == 123"),
    ({"direction": "egress", "protocol": "tcp", "port_range_min": 1, "port_range_max": 65535},
     "from-lport", "inport == @{pg} && ip4 && tcp"),
]


@pytest.mark.parametrize("rule, direction, match", RULES)
def test_each_kind_of_rule_is_one_allow_related_acl(rule, direction, match, ovn, region, a_owner, actor):
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16", ipv6=True)
    db, web = (services.create_security_group(owner, vpc=vpc, name=name) for name in ("db", "web"))
    if rule.get("remote_group"):
        rule = {**rule, "remote_group": web.public_id}

    made = services.add_security_group_rule(owner, group=db, **rule)
    [acl] = [a for a in rows(ovn, "ACL") if a["external_ids"].get("portal:rule") == made.public_id]
    expected = match.replace("{pg}", db.port_group).replace("{web}", web.port_group)
    assert (acl["direction"], acl["priority"], acl["match"], acl["action"]) == (
        direction, 1002, expected, "allow-related")
    assert acl["_uuid"] in members(rows(ovn, "Port_Group", f"name={db.port_group}")[0]["acls"])

    services.delete_security_group_rule(owner, rule=made)
    assert not [a for a in rows(ovn, "ACL") if a["external_ids"].get("portal:rule") == made.public_id]
    assert expected not in ovn.nbctl("acl-list", db.port_group)


def test_an_unreachable_northbound_is_a_503_and_nothing_is_made(ovn, region, a_owner, actor, api, settings,
                                                                 tmp_path):
    from apps.network import backends

    settings.OVN_NB_CONNECTION = f"unix:{tmp_path / 'nothing-listens.sock'}"
    backends.forget_drivers()
    with pytest.raises(Unavailable, match="does not answer"):
        services.create_vpc(actor(a_owner), name="prod", cidr="10.20.0.0/16")
    response = api(a_owner).post("/api/v1/vpcs", {"name": "prod", "cidr": "10.20.0.0/16"}, format="json")
    assert (response.status_code, response.json()["code"]) == (503, "unavailable"), response.json()
    assert not VPC.objects.exists()
    assert ovn.nbctl("lr-list").strip() == ""
