"""The network services against a real OVN northbound ovsdb-server, checked with ovn-nbctl:
what each create, update and delete leaves in OVN, and what a reconcile repairs."""

import json

import pytest

from apps.network import services

pytestmark = [pytest.mark.ovn, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def rows(ovn, table, *conditions, columns="_uuid,name,external_ids"):
    out = ovn.nbctl("--format=json", f"--columns={columns}", "find", table, *conditions)
    doc = json.loads(out)
    return [dict(zip(doc["headings"], row)) for row in doc["data"]]


def ovsdb_map(value):
    assert value[0] == "map"
    return dict(value[1])


def test_vpc_subnet_port_and_group_land_in_ovn(ovn, region, a_owner, actor):
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16", ipv6=True)
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24", ipv6=True,
                                    dns_nameservers=["10.20.0.2"],
                                    host_routes=[{"destination": "192.168.9.0/24", "nexthop": "10.20.1.9"}])
    port = services.create_port(owner, subnet=subnet, name="eth0")

    show = ovn.nbctl("show")
    assert f"router" in show and vpc.public_id in ovn.nbctl("lr-list")
    assert subnet.public_id in ovn.nbctl("ls-list")
    lrp = rows(ovn, "Logical_Router_Port", f"name=lrp-{subnet.public_id}", columns="mac,networks,ipv6_ra_configs")
    assert lrp[0]["mac"] == subnet.router_mac
    assert "10.20.1.1/24" in str(lrp[0]["networks"])
    dhcp = ovn.nbctl("dhcp-options-list").split()
    assert len(dhcp) == 2
    v4 = ovn.nbctl("dhcp-options-get-options", [d for d in dhcp if ovn.nbctl("get", "DHCP_Options", d, "cidr").strip('"\n') == "10.20.1.0/24"][0])
    assert "router=10.20.1.1" in v4 and "dns_server={10.20.0.2}" in v4
    assert "classless_static_route" in v4

    address = port.addresses.get(address__contains=".").address
    assert ovn.nbctl("lsp-get-addresses", str(port.uuid)).split()[:2] == [port.mac_address, address]
    assert address in ovn.nbctl("lsp-get-port-security", str(port.uuid))
    default = vpc.security_groups.get(is_default=True)
    groups = rows(ovn, "Port_Group", columns="name,ports")
    names = {g["name"] for g in groups}
    assert default.port_group in names and "portal_drop" in names
    acls = ovn.nbctl("acl-list", default.port_group)
    assert f"outport == @{default.port_group} && ip4 && ip4.src == ${default.port_group}_ip4" in acls
    assert f"inport == @{default.port_group} && ip4" in acls

    rule = services.add_security_group_rule(owner, group=default, direction="ingress", protocol="tcp",
                                            port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0")
    assert f"outport == @{default.port_group} && ip4 && tcp && tcp.dst == 22" in ovn.nbctl("acl-list", default.port_group)
    services.delete_security_group_rule(owner, rule=rule)
    assert "tcp.dst == 22" not in ovn.nbctl("acl-list", default.port_group)

    services.delete_port(owner, port=port)
    services.delete_subnet(owner, subnet=subnet)
    services.delete_vpc(owner, vpc=vpc)
    assert ovn.nbctl("ls-list").strip() == "" and ovn.nbctl("lr-list").strip() == ""
    assert ovn.nbctl("dhcp-options-list").strip() == ""
    assert {g["name"] for g in rows(ovn, "Port_Group", columns="name,ports")} == {"portal_drop"}
