"""The network pages: VPCs (list, create, detail with subnets, network interfaces and the
topology picture) and security groups (list, create, detail with rules), through the services
on the fake network driver."""

import re

import pytest
from django.test import Client

from apps.network import services
from apps.network.drivers.base import ROUTER, SECURITY_GROUP, SWITCH
from apps.network.models import VPC, Port, SecurityGroup, SecurityGroupRule, Subnet
from tests.factories.compute import make_inventory


@pytest.fixture(autouse=True)
def region(db):
    make_inventory()  # the default region


def signed_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def test_vpc_subnet_and_interface_created_from_the_pages(a_owner, fake_network):
    client = signed_in(a_owner)
    page = client.get("/vpcs/")
    assert page.status_code == 200 and 'id="create-vpc"' in page.content.decode()

    response = client.post("/vpcs/", {"name": "prod", "cidr": "10.20.0.0/16", "ipv6": "on", "description": "main"})
    vpc = VPC.objects.get(name="prod")
    assert response.status_code == 302 and response["Location"] == f"/vpcs/{vpc.public_id}/"
    assert (vpc.cidr, vpc.description, vpc.ipv6_cidr.endswith("/56")) == ("10.20.0.0/16", "main", True)
    assert vpc.public_id in fake_network.state[ROUTER]
    listed = client.get("/vpcs/").content.decode()
    assert f'data-vpc="{vpc.public_id}"' in listed and "10.20.0.0/16" in listed

    response = client.post(f"/vpcs/{vpc.public_id}/create-subnet", {
        "name": "web", "cidr": "10.20.1.0/24", "gateway_ip": "", "dns_nameservers": "10.20.0.2, 1.1.1.1",
        "ipv6": "on", "dhcp_enabled": "on"})
    assert response.status_code == 302 and response["Location"] == f"/vpcs/{vpc.public_id}/"
    subnet = Subnet.objects.get(vpc=vpc)
    assert (subnet.cidr, subnet.gateway_ip, subnet.dns_nameservers, subnet.dhcp_enabled) == (
        "10.20.1.0/24", "10.20.1.1", ["10.20.0.2", "1.1.1.1"], True)
    assert subnet.ipv6_cidr and subnet.public_id in fake_network.state[SWITCH]

    default = vpc.security_groups.get(is_default=True)
    response = client.post(f"/vpcs/{vpc.public_id}/create-port", {
        "subnet": subnet.public_id, "name": "eth-web", "ip_address": "10.20.1.10",
        "security_groups": [default.public_id]})
    assert response.status_code == 302
    port = Port.objects.get(subnet=subnet)
    assert port.name == "eth-web" and list(port.security_groups.all()) == [default]
    assert "10.20.1.10" in set(port.addresses.values_list("address", flat=True))

    detail = client.get(f"/vpcs/{vpc.public_id}/").content.decode()
    subnet_row = re.search(rf'<tr data-subnet="{subnet.public_id}">.*?</tr>', detail, re.S).group(0)
    # a /24: 254 hosts, minus the gateway and the interface's address
    assert "<td>252</td>" in subnet_row and "DNS 10.20.0.2, 1.1.1.1" in subnet_row
    port_row = re.search(rf'<tr data-port="{port.public_id}">.*?</tr>', detail, re.S).group(0)
    assert port.mac_address in port_row and "10.20.1.10" in port_row and default.name in port_row


def test_a_bad_cidr_shows_on_the_form_and_creates_nothing(a_owner, fake_network):
    client = signed_in(a_owner)
    page = client.post("/vpcs/", {"name": "bad", "cidr": "10.0.0.0/33", "description": ""})
    assert page.status_code == 400
    body = page.content.decode()
    assert 'id="create-vpc"' in body and "A network such as 10.0.0.0/16, without host bits." in body
    assert not VPC.objects.exists() and not fake_network.state[ROUTER]

    vpc = services.create_vpc(_actor(a_owner), name="prod", cidr="10.20.0.0/16")
    page = signed_in(a_owner).post(f"/vpcs/{vpc.public_id}/create-subnet",
                                   {"name": "outside", "cidr": "192.168.0.0/24", "dhcp_enabled": "on"})
    assert page.status_code == 400
    body = page.content.decode()
    assert 'id="create-subnet"' in body and "Must be inside 10.20.0.0/16." in body
    assert 'value="outside"' in body  # the form keeps what was typed
    assert not Subnet.objects.exists() and not fake_network.state[SWITCH]


def test_an_overlapping_subnet_is_a_409_on_the_form(a_owner):
    vpc = services.create_vpc(_actor(a_owner), name="prod", cidr="10.20.0.0/16")
    services.create_subnet(_actor(a_owner), vpc=vpc, name="web", cidr="10.20.1.0/24")
    page = signed_in(a_owner).post(f"/vpcs/{vpc.public_id}/create-subnet",
                                   {"name": "db", "cidr": "10.20.1.128/25", "dhcp_enabled": "on"})
    assert page.status_code == 409 and "Overlaps 10.20.1.0/24." in page.content.decode()
    assert Subnet.objects.count() == 1


def test_an_unreachable_control_plane_is_a_message_on_the_page(a_owner, fake_network):
    fake_network.fail_on.add("ensure_router")
    page = signed_in(a_owner).post("/vpcs/", {"name": "prod", "cidr": "10.20.0.0/16", "description": ""})
    assert page.status_code == 503 and "The network control plane is unavailable" in page.content.decode()
    assert not VPC.objects.exists()


def test_deleting_what_is_in_use_shows_the_409_message(a_owner):
    owner = _actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24")
    port = services.create_port(owner, subnet=subnet, name="eth0")
    client = signed_in(a_owner)

    page = client.post(f"/subnets/{subnet.public_id}/delete", follow=True).content.decode()
    assert f"Subnet {subnet.public_id} still has ports {port.public_id} (eth0): delete them first." in page
    page = client.post(f"/vpcs/{vpc.public_id}/delete", follow=True).content.decode()
    assert f"VPC {vpc.public_id} still has subnets {subnet.public_id} (web): delete them first." in page
    assert Subnet.objects.filter(pk=subnet.pk).exists() and VPC.objects.filter(pk=vpc.pk).exists()

    client.post(f"/ports/{port.public_id}/delete")
    client.post(f"/subnets/{subnet.public_id}/delete")
    response = client.post(f"/vpcs/{vpc.public_id}/delete")
    assert response.status_code == 302 and response["Location"] == "/vpcs/"
    assert not VPC.objects.exists() and not Subnet.objects.exists() and not Port.objects.exists()


def test_rename_a_vpc(a_owner):
    vpc = services.create_vpc(_actor(a_owner), name="prod", cidr="10.20.0.0/16")
    client = signed_in(a_owner)
    client.post(f"/vpcs/{vpc.public_id}/update", {"name": "production", "description": "the live one"})
    vpc.refresh_from_db()
    assert (vpc.name, vpc.description) == ("production", "the live one")
    page = client.post(f"/vpcs/{vpc.public_id}/update", {"name": "  ", "description": ""})
    assert page.status_code == 400 and 'id="update-vpc"' in page.content.decode()


def test_the_topology_has_a_node_per_subnet_and_per_interface(a_owner):
    owner = _actor(a_owner)
    vpc = services.create_vpc(owner, name="big", cidr="10.30.0.0/16")
    subnets = [services.create_subnet(owner, vpc=vpc, name=f"net{i}", cidr=f"10.30.{i}.0/24") for i in range(10)]
    ports = [services.create_port(owner, subnet=subnets[i % 10], name=f"eth{i}") for i in range(50)]

    page = signed_in(a_owner).get(f"/vpcs/{vpc.public_id}/").content.decode()
    svg = re.search(r'<svg id="topology".*?</svg>', page, re.S).group(0)
    assert svg.count(f'data-router="{vpc.public_id}"') == 1
    assert sorted(re.findall(r'<g class="subnet" data-subnet="([^"]+)"', svg)) == sorted(s.public_id for s in subnets)
    assert sorted(re.findall(r'<g class="port [a-z-]+" data-port="([^"]+)"', svg)) == sorted(
        p.public_id for p in ports)
    for subnet in subnets:
        assert f'class="mono">{subnet.cidr}</text>' in svg
    # Every node is inside the picture, and no two subnet cards overlap.
    width, height = map(int, re.search(r'viewBox="0 0 (\d+) (\d+)"', svg).groups())
    cards = [tuple(map(int, m)) for m in re.findall(
        r'data-subnet="[^"]+">\s*<title>[^<]*</title>\s*<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', svg)]
    assert len(cards) == 10
    for i, (x, y, w, h) in enumerate(cards):
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
        for x2, y2, w2, h2 in cards[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


def test_the_vpc_page_reads_as_many_queries_for_many_subnets_and_interfaces(a_owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    owner = _actor(a_owner)
    vpc = services.create_vpc(owner, name="big", cidr="10.30.0.0/16")
    subnets = [services.create_subnet(owner, vpc=vpc, name=f"net{i}", cidr=f"10.30.{i}.0/24") for i in range(4)]
    services.create_port(owner, subnet=subnets[0], name="eth")
    client = signed_in(a_owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/vpcs/{vpc.public_id}/").status_code == 200
        return len(captured)

    few = queries()
    for i in range(12):
        services.create_port(owner, subnet=subnets[i % 4], name=f"eth{i}")
    assert queries() == few


def test_the_topology_of_an_empty_vpc_is_the_router(a_owner):
    vpc = services.create_vpc(_actor(a_owner), name="empty", cidr="10.30.0.0/16")
    page = signed_in(a_owner).get(f"/vpcs/{vpc.public_id}/").content.decode()
    assert 'data-router="' in page and "No subnets yet" in page and 'data-subnet="' not in page


def test_the_live_part_of_the_vpc_page(a_owner):
    owner = _actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24")
    live = signed_in(a_owner).get(f"/vpcs/{vpc.public_id}/", HTTP_HX_REQUEST="true").content.decode()
    assert live.startswith('<div id="vpc-live"') and f'data-subnet="{subnet.public_id}"' in live
    assert 'id="create-subnet"' not in live


def test_security_group_and_rule_created_from_the_pages(a_owner, fake_network):
    vpc = services.create_vpc(_actor(a_owner), name="prod", cidr="10.20.0.0/16")
    client = signed_in(a_owner)
    page = client.get(f"/security-groups/?vpc={vpc.public_id}").content.decode()
    assert 'id="create-security-group"' in page and f'<option value="{vpc.public_id}" selected>' in page

    response = client.post("/security-groups/", {"vpc": vpc.public_id, "name": "web", "description": "HTTP in"})
    group = SecurityGroup.objects.get(name="web")
    assert response.status_code == 302 and response["Location"] == f"/security-groups/{group.public_id}/"
    assert group.port_group in fake_network.state[SECURITY_GROUP]

    response = client.post(f"/security-groups/{group.public_id}/add-rule", {
        "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": "22", "port_range_max": "22",
        "remote_ip_prefix": "0.0.0.0/0", "remote_group": "", "description": "ssh"})
    assert response.status_code == 302
    rule = group.rules.get(direction="ingress")
    # Anywhere is kept as no prefix (one spelling per rule).
    assert (rule.protocol, rule.port_range_min, rule.port_range_max, rule.remote_ip_prefix) == ("tcp", 22, 22, "")
    spec = fake_network.state[SECURITY_GROUP][group.port_group]
    assert rule.public_id in {r.id for r in spec.rules}

    detail = client.get(f"/security-groups/{group.public_id}/").content.decode()
    row = re.search(rf'<tr data-rule="{rule.public_id}">.*?</tr>', detail, re.S).group(0)
    assert re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).split()[:6] == [
        "ingress", "IPv4", "tcp", "22", "0.0.0.0/0", "(anywhere)"]
    listed = client.get("/security-groups/").content.decode()
    assert f'data-security-group="{group.public_id}"' in listed

    client.post(f"/security-groups/{group.public_id}/rules/{rule.public_id}/delete")
    assert not SecurityGroupRule.objects.filter(pk=rule.pk).exists()
    response = client.post(f"/security-groups/{group.public_id}/delete")
    assert response.status_code == 302 and not SecurityGroup.objects.filter(pk=group.pk).exists()


def test_a_bad_rule_shows_on_the_form(a_owner):
    vpc = services.create_vpc(_actor(a_owner), name="prod", cidr="10.20.0.0/16")
    group = vpc.security_groups.get(is_default=True)
    before = group.rules.count()
    page = signed_in(a_owner).post(f"/security-groups/{group.public_id}/add-rule", {
        "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": "70000",
        "port_range_max": "", "remote_ip_prefix": "", "remote_group": "", "description": ""})
    assert page.status_code == 400 and "1 to 65535." in page.content.decode()
    assert group.rules.count() == before


def test_the_default_group_cannot_be_deleted_or_renamed(a_owner):
    vpc = services.create_vpc(_actor(a_owner), name="prod", cidr="10.20.0.0/16")
    group = vpc.security_groups.get(is_default=True)
    client = signed_in(a_owner)
    page = client.post(f"/security-groups/{group.public_id}/delete", follow=True).content.decode()
    assert "The default security group goes with its VPC." in page
    page = client.post(f"/security-groups/{group.public_id}/update", {"name": "other", "description": ""})
    assert page.status_code == 409 and "Fixed." in page.content.decode()
    assert SecurityGroup.objects.get(pk=group.pk).name == "default"


def test_other_tenants_networks_are_not_there(a_owner, b_owner):
    owner = _actor(a_owner)
    vpc = services.create_vpc(owner, name="secret-vpc", cidr="10.20.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="secret-net", cidr="10.20.1.0/24")
    port = services.create_port(owner, subnet=subnet)
    group = vpc.security_groups.get(is_default=True)
    rule = group.rules.first()
    client = signed_in(b_owner)
    for url in [f"/vpcs/{vpc.public_id}/", f"/security-groups/{group.public_id}/"]:
        assert client.get(url).status_code == 404
    for url in [f"/vpcs/{vpc.public_id}/delete", f"/vpcs/{vpc.public_id}/create-subnet",
                f"/subnets/{subnet.public_id}/delete", f"/ports/{port.public_id}/delete",
                f"/security-groups/{group.public_id}/add-rule",
                f"/security-groups/{group.public_id}/rules/{rule.public_id}/delete"]:
        assert client.post(url, {"name": "x", "cidr": "10.20.2.0/24"}).status_code == 404, url
    assert "secret" not in client.get("/vpcs/").content.decode()
    assert group.public_id not in client.get("/security-groups/").content.decode()
    # B's own VPC list in the security group form offers none of A's.
    response = client.post("/security-groups/", {"vpc": vpc.public_id, "name": "sneaky"})
    assert response.status_code == 400 and not SecurityGroup.objects.filter(name="sneaky").exists()
    assert VPC.objects.filter(pk=vpc.pk).exists() and Port.objects.filter(pk=port.pk).exists()


def test_a_readonly_member_sees_but_cannot_create(a_owner, a_readonly):
    vpc = services.create_vpc(_actor(a_owner), name="prod", cidr="10.20.0.0/16")
    client = signed_in(a_readonly)
    page = client.get("/vpcs/").content.decode()
    assert "Your role can read VPCs but not create them." in page and vpc.public_id in page
    page = client.post(f"/vpcs/{vpc.public_id}/create-subnet", {"name": "web", "cidr": "10.20.1.0/24"})
    assert page.status_code == 403 and not Subnet.objects.exists()


def test_back_office_pages_render(a_owner, admin_client):
    owner = _actor(a_owner)
    vpc = services.create_vpc(owner, name="prod", cidr="10.20.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.20.1.0/24")
    port = services.create_port(owner, subnet=subnet, name="eth0")
    group = vpc.security_groups.get(is_default=True)
    for url in ["/backoffice/network/vpc/", f"/backoffice/network/vpc/{vpc.pk}/change/", "/backoffice/network/subnet/",
                "/backoffice/network/port/", f"/backoffice/network/port/{port.pk}/change/",
                "/backoffice/network/securitygroup/", f"/backoffice/network/securitygroup/{group.pk}/change/"]:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    page = admin_client.get(f"/backoffice/network/securitygroup/{group.pk}/change/").content.decode()
    assert group.rules.first().public_id in page
    assert admin_client.get("/backoffice/network/vpc/add/").status_code == 403


def _actor(membership):
    from tests.factories.tenants import actor_for

    return actor_for(membership)
