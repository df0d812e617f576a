"""The network API through DRF on the fake control plane: bad input is a clear 400/404/409 with
nothing made anywhere, deletes say what is in the way, and the shapes of details, lists,
filters and the rule endpoints."""

import copy
import ipaddress
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.network import services
from apps.network.drivers.base import ROUTER, SECURITY_GROUP, SWITCH
from apps.network.models import VPC, IPAllocation, Port, SecurityGroup, SecurityGroupRule, Subnet
from apps.tenants.models import Quota
from tests.factories.compute import make_inventory
from tests.unit.network.test_services import make_network


@pytest.fixture
def net(a_owner, b_owner, actor):
    """Tenant A: the dual-stack VPC "prod" 10.0.0.0/16 with its subnet "web" 10.0.1.0/24 and a
    port on it (10.0.1.2), and a second VPC; tenant B: a VPC of its own."""
    make_inventory()
    owner = actor(a_owner)
    vpc, subnet = make_network(owner, ipv6=True)
    other = services.create_vpc(owner, name="other", cidr="10.1.0.0/16")
    foreign = services.create_vpc(actor(b_owner), name="theirs", cidr="10.0.0.0/16")
    return SimpleNamespace(
        owner=owner, vpc=vpc, subnet=subnet, port=services.create_port(owner, subnet=subnet),
        group=vpc.security_groups.get(), other_group=other.security_groups.get(),
        foreign_group=foreign.security_groups.get())


def everything(fake) -> tuple:
    """What a refused request must leave as it was: rows, quota usage, the backend."""
    rows = [model.objects.count() for model in (VPC, Subnet, Port, SecurityGroup, SecurityGroupRule, IPAllocation)]
    return rows, sorted(Quota.objects.values_list("tenant_id", "resource", "in_use")), copy.deepcopy(fake.state)


def url(net, target: str) -> str:
    if target == "rules":
        return f"/api/v1/security-groups/{net.group.public_id}/rules"
    return f"/api/v1/{target}"


def payload(net, target: str, body: dict) -> dict:
    """The case's body over a valid one; "@group" etc. stand for that group's public id."""
    base = {"vpcs": {"name": "x"}, "subnets": {"vpc": net.vpc.public_id, "name": "x"},
            "ports": {"subnet": net.subnet.public_id}, "rules": {"direction": "ingress"}}[target]

    def resolve(value):
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return getattr(net, value[1:]).public_id if isinstance(value, str) and value.startswith("@") else value

    return {**base, **{key: resolve(value) for key, value in body.items()}}


PAIRS = [{"ip_address": f"10.0.9.{n}"} for n in range(11)]
BAD_INPUT = [
    # target, body, status, code, field (None: the whole request), what the message says
    ("vpcs", {"cidr": "ten.0.0.0/16"}, 400, "invalid", "cidr", "is not a network in CIDR notation"),
    ("vpcs", {"cidr": "10.0.0.1/16"}, 400, "invalid", "cidr", "has host bits set"),
    ("vpcs", {"cidr": "10.0.0.0/8"}, 400, "invalid", "cidr", "/16 to /28 of unicast addresses, not 10.0.0.0/8."),
    ("vpcs", {"cidr": "10.0.0.0/29"}, 400, "invalid", "cidr", "/16 to /28 of unicast addresses, not 10.0.0.0/29."),
    ("vpcs", {"cidr": "fd00::/56"}, 400, "invalid", "cidr", "fd00::/56 is not an IPv4 network"),
    ("subnets", {"cidr": "10.1.0.0/24"}, 400, "invalid", "cidr", "is not inside the VPC's block 10.0.0.0/16"),
    ("subnets", {"cidr": "10.0.1.128/25"}, 409, "overlap", "cidr", "overlaps subnet"),
    ("subnets", {"cidr": "10.0.2.0/30"}, 400, "invalid", "cidr", "at most a /29"),
    ("subnets", {"cidr": "10.0.2.0/24", "gateway_ip": "10.0.3.1"}, 400, "invalid", "gateway_ip",
     "10.0.3.1 is not a host address of 10.0.2.0/24"),
    ("ports", {"ip_address": "10.0.2.5"}, 400, "invalid", "ip_address", "10.0.2.5 is not in subnet"),
    ("ports", {"ip_address": "10.0.1.2"}, 409, "address_in_use", "ip_address", "10.0.1.2 is taken by eni-"),
    ("ports", {"ip_address": "10.0.1.1"}, 409, "address_in_use", "ip_address", "10.0.1.1 is taken by the gateway"),
    ("ports", {"ip_address": "10.0.1.0"}, 400, "invalid", "ip_address", "reserved (network or broadcast"),
    ("ports", {"ip_address": "10.0.1.255"}, 400, "invalid", "ip_address", "reserved (network or broadcast"),
    ("ports", {"security_groups": ["@group"], "port_security_enabled": False}, 400, "invalid", "security_groups",
     "Security groups need port security"),
    ("ports", {"allowed_address_pairs": PAIRS}, 400, "invalid", "allowed_address_pairs", "At most 10"),
    ("ports", {"allowed_address_pairs": [{"ip_address": "10.0.9.1", "mac_address": "02:00:00:00:00:zz"}]}, 400,
     "invalid", "allowed_address_pairs", "02:00:00:00:00:zz is not a MAC address"),
    ("rules", {"protocol": "tcp", "port_range_min": 80, "port_range_max": 22}, 400, "invalid", "port_range_max",
     "The port range 80-22 is reversed"),
    ("rules", {"protocol": "tcp", "port_range_min": 0, "port_range_max": 22}, 400, "invalid", "port_range_min",
     "Ports are 1 to 65535"),
    ("rules", {"protocol": "udp", "port_range_min": 53, "port_range_max": 65536}, 400, "invalid", "port_range_max",
     "Ports are 1 to 65535"),
    ("rules", {"protocol": "any", "port_range_min": 22, "port_range_max": 22}, 400, "invalid", "port_range_min",
     "Ports apply to tcp and udp"),
    ("rules", {"protocol": "icmp", "port_range_max": 0}, 400, "invalid", "port_range_min", "An ICMP code needs a type"),
    ("rules", {"remote_ip_prefix": "2001:db8::/32"}, 400, "invalid", "remote_ip_prefix", "is not an IPv4 network"),
    ("rules", {"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}, 400, "invalid", "remote_ip_prefix",
     "is not an IPv6 network"),
    ("rules", {"remote_ip_prefix": "10.0.0.0/8", "remote_group": "@group"}, 400, "invalid", "remote_group",
     "not both"),
    ("rules", {"remote_group": "@foreign_group"}, 404, "not_found", "remote_group", "No security group sg-"),
    ("rules", {"remote_group": "@other_group"}, 400, "invalid", "remote_group", "belongs to another VPC"),
    ("rules", {"direction": "egress"}, 409, "duplicate_rule", None, "has this rule already"),
]


@pytest.mark.parametrize("target, body, status, code, field, says", BAD_INPUT)
def test_bad_input_is_a_clear_error_and_nothing_is_made(target, body, status, code, field, says, net, a_owner, api,
                                                        fake_network):
    before = everything(fake_network)
    response = api(a_owner).post(url(net, target), payload(net, target, body), format="json")
    answer = response.json()
    assert (response.status_code, answer["code"]) == (status, code), answer
    assert says in answer["message"], answer
    assert list(answer["fields"]) == ([field] if field else []), answer
    assert everything(fake_network) == before


def test_another_tenants_group_as_remote_group_is_answered_like_an_unknown_one(net, a_owner, api):
    def refuse(ref):
        response = api(a_owner).post(url(net, "rules"), {"direction": "ingress", "remote_group": ref}, format="json")
        return response.status_code, response.json()["message"].replace(ref, "<ref>"), response.json()["fields"]

    assert refuse(net.foreign_group.public_id) == refuse("sg-nothere1") == (
        404, "No security group <ref>.", {"remote_group": ["Unknown security group."]})


def test_a_subnet_with_ports_is_not_deleted_and_the_409_names_them(net, a_owner, api, fake_network):
    second = services.create_port(net.owner, subnet=net.subnet, name="db")
    response = api(a_owner).delete(f"/api/v1/subnets/{net.subnet.public_id}")
    assert (response.status_code, response.json()["code"]) == (409, "in_use")
    assert response.json()["message"] == (f"Subnet {net.subnet.public_id} still has ports {second.public_id} (db), "
                                          f"{net.port.public_id}: delete them first.")
    assert Subnet.objects.filter(pk=net.subnet.pk).exists() and net.subnet.public_id in fake_network.state[SWITCH]


def test_a_vpc_with_subnets_or_groups_is_not_deleted_and_the_409_names_them(net, a_owner, api, fake_network):
    group = services.create_security_group(net.owner, vpc=net.vpc, name="db")
    client, path = api(a_owner), f"/api/v1/vpcs/{net.vpc.public_id}"
    refused = client.delete(path)
    assert (refused.status_code, refused.json()["code"]) == (409, "in_use")
    assert refused.json()["message"] == (f"VPC {net.vpc.public_id} still has subnets {net.subnet.public_id} (web) "
                                         f"and security groups {group.public_id} (db): delete them first.")
    services.delete_port(net.owner, port=net.port)
    services.delete_subnet(net.owner, subnet=net.subnet)
    assert client.delete(path).json()["message"] == (f"VPC {net.vpc.public_id} still has security groups "
                                                     f"{group.public_id} (db): delete them first.")
    assert net.vpc.public_id in fake_network.state[ROUTER]

    services.delete_security_group(net.owner, group=group)
    assert client.delete(path).status_code == 204
    assert not VPC.objects.filter(pk=net.vpc.pk).exists() and not SecurityGroup.objects.filter(vpc=net.vpc).exists()
    assert net.vpc.public_id not in fake_network.state[ROUTER]
    assert net.group.port_group not in fake_network.state[SECURITY_GROUP]


def test_a_security_group_in_use_or_the_default_one_is_not_deleted(net, a_owner, api, fake_network):
    client = api(a_owner)
    web = services.create_security_group(net.owner, vpc=net.vpc, name="web")
    db = services.create_security_group(net.owner, vpc=net.vpc, name="db")
    services.update_port(net.owner, port=net.port, security_groups=[web.public_id])
    services.add_security_group_rule(net.owner, group=db, direction="ingress", remote_group=web.public_id)

    default = client.delete(f"/api/v1/security-groups/{net.group.public_id}")
    assert (default.status_code, default.json()["code"]) == (409, "default_group")
    refused = client.delete(f"/api/v1/security-groups/{web.public_id}")
    assert (refused.status_code, refused.json()["code"]) == (409, "in_use")
    assert refused.json()["message"] == (f"Security group {web.public_id} is in use: ports {net.port.public_id} "
                                         f"use it and rules of {db.public_id} (db) name it.")
    assert web.port_group in fake_network.state[SECURITY_GROUP]

    assert client.delete(f"/api/v1/security-groups/{db.public_id}").status_code == 204
    assert client.delete(f"/api/v1/security-groups/{web.public_id}").json()["message"] == (
        f"Security group {web.public_id} is in use: ports {net.port.public_id} use it.")
    services.update_port(net.owner, port=net.port, security_groups=[net.group.public_id])
    assert client.delete(f"/api/v1/security-groups/{web.public_id}").status_code == 204
    assert web.port_group not in fake_network.state[SECURITY_GROUP]


def test_details_show_each_resource(net, a_owner, api):
    client = api(a_owner)
    vpc = client.get(f"/api/v1/vpcs/{net.vpc.public_id}").json()
    assert vpc == {"id": net.vpc.public_id, "name": "prod", "description": "", "region": "default",
                   "cidr": "10.0.0.0/16", "ipv6_cidr": net.vpc.ipv6_cidr, "default_security_group": net.group.public_id,
                   "subnet_count": 1, "tags": [], "created_at": vpc["created_at"]}
    subnet = client.get(f"/api/v1/subnets/{net.subnet.public_id}").json()
    assert subnet == {"id": net.subnet.public_id, "name": "web", "description": "", "vpc": net.vpc.public_id,
                      "cidr": "10.0.1.0/24", "gateway_ip": "10.0.1.1", "ipv6_cidr": net.subnet.ipv6_cidr,
                      "ipv6_gateway_ip": net.subnet.ipv6_gateway_ip, "dhcp_enabled": True, "dns_nameservers": [],
                      "host_routes": [], "mtu": 1442, "available_ips": 252, "tags": [],
                      "created_at": subnet["created_at"]}
    port = client.get(f"/api/v1/ports/{net.port.public_id}").json()
    assert port == {"id": net.port.public_id, "name": "", "description": "", "vpc": net.vpc.public_id,
                    "subnet": net.subnet.public_id, "mac_address": net.port.mac_address, "ip_address": "10.0.1.2",
                    "ipv6_address": str(ipaddress.ip_network(net.subnet.ipv6_cidr)[2]), "status": "available",
                    "instance": None, "device_index": None, "security_groups": [net.group.public_id],
                    "port_security_enabled": True, "allowed_address_pairs": [], "tags": [],
                    "created_at": port["created_at"]}
    group = client.get(f"/api/v1/security-groups/{net.group.public_id}").json()
    assert (group["id"], group["name"], group["vpc"], group["is_default"]) == (
        net.group.public_id, "default", net.vpc.public_id, True)
    assert sorted((r["direction"], r["ethertype"], r["protocol"], r["remote_group"]) for r in group["rules"]) == [
        ("egress", "IPv4", "any", None), ("egress", "IPv6", "any", None),
        ("ingress", "IPv4", "any", net.group.public_id), ("ingress", "IPv6", "any", net.group.public_id)]


def test_lists_filter_by_vpc_and_subnet(net, a_owner, api):
    second = services.create_subnet(net.owner, vpc=net.vpc, name="db", cidr="10.0.2.0/24")
    elsewhere = services.create_subnet(net.owner, vpc=net.other_group.vpc, name="far", cidr="10.1.1.0/24")
    ports = [services.create_port(net.owner, subnet=s) for s in (second, elsewhere)]
    client = api(a_owner)

    def ids(path):
        body = client.get(path).json()
        assert body["count"] == len(body["results"])
        return [row["id"] for row in body["results"]]

    assert ids(f"/api/v1/subnets?vpc__public_id={net.vpc.public_id}") == [second.public_id, net.subnet.public_id]
    assert ids(f"/api/v1/ports?subnet__public_id={second.public_id}") == [ports[0].public_id]
    assert ids(f"/api/v1/ports?subnet__vpc__public_id={net.vpc.public_id}") == [ports[0].public_id,
                                                                                net.port.public_id]
    assert ids(f"/api/v1/security-groups?vpc__public_id={net.vpc.public_id}") == [net.group.public_id]
    assert set(ids("/api/v1/vpcs")) == {net.vpc.public_id, net.other_group.vpc.public_id}


def test_rules_are_added_and_removed_through_their_group(net, a_owner, api, fake_network):
    client, base = api(a_owner), f"/api/v1/security-groups/{net.group.public_id}/rules"
    created = client.post(base, {"direction": "ingress", "protocol": "tcp", "port_range_min": 22,
                                 "remote_ip_prefix": "192.0.2.7/24", "description": "ssh"}, format="json")
    assert created.status_code == 201, created.json()
    rule = created.json()
    assert rule == {"id": rule["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                    "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "192.0.2.0/24",
                    "remote_group": None, "description": "ssh", "created_at": rule["created_at"]}
    listed = client.get(f"/api/v1/security-groups/{net.group.public_id}").json()["rules"]
    assert rule in listed and len(listed) == 5
    assert rule["id"] in {r.id for r in fake_network.state[SECURITY_GROUP][net.group.port_group].rules}

    assert client.delete(f"{base}/sgr-nothere1").status_code == 404
    assert client.delete(f"{base}/{rule['id']}").status_code == 204
    assert not SecurityGroupRule.objects.filter(public_id=rule["id"]).exists()
    assert rule["id"] not in {r.id for r in fake_network.state[SECURITY_GROUP][net.group.port_group].rules}
    assert Quota.objects.get(tenant=net.group.tenant, resource="security_group_rules").in_use == 4 + 2


def test_another_tenant_gets_404_and_changes_nothing(net, b_owner, api, fake_network):
    client, before = api(b_owner), everything(fake_network)
    rule = net.group.rules.first()
    for response in (client.get(f"/api/v1/vpcs/{net.vpc.public_id}"),
                     client.post(f"/api/v1/security-groups/{net.group.public_id}/rules", {"direction": "ingress"},
                                 format="json"),
                     client.delete(f"/api/v1/security-groups/{net.group.public_id}/rules/{rule.public_id}"),
                     client.post("/api/v1/ports", {"subnet": net.subnet.public_id}, format="json")):
        assert response.status_code == 404, response.json()
    assert everything(fake_network) == before


@pytest.mark.parametrize("path", ["/api/v1/vpcs", "/api/v1/subnets", "/api/v1/ports", "/api/v1/security-groups"])
def test_lists_take_as_many_queries_for_many_rows_as_for_one(path, net, a_owner, api):
    client = api(a_owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    few = queries()
    vpc = services.create_vpc(net.owner, name="more", cidr="10.3.0.0/16", ipv6=True)
    for n in range(3):
        subnet = services.create_subnet(net.owner, vpc=vpc, name=f"s{n}", cidr=f"10.3.{n}.0/24", ipv6=True)
        services.create_port(net.owner, subnet=subnet)
        services.create_security_group(net.owner, vpc=vpc, name=f"g{n}")
    assert queries() == few
