"""The north-south pages: elastic IPs (allocate, bind, unbind, bandwidth, release), NAT gateways
(create, subnets, port mappings, delete), what the VPC page and its topology show of them, and
the back office of external networks, through the edge services on the fake network driver."""

import re

import pytest
from django.test import Client

from apps.compute import services as compute
from apps.compute.models import Image, Instance
from apps.network import edge_services as edge
from apps.network import services
from apps.network.drivers.base import EXTERNAL, ROUTER
from apps.network.models import VPC, ElasticIP, ExternalNetwork, NatGateway, Port, PortMapping
from tests.factories.compute import make_inventory
from tests.factories.network import make_external_network
from tests.factories.tenants import actor_for


@pytest.fixture(autouse=True)
def public(db):
    make_inventory()  # the default region
    return make_external_network()


@pytest.fixture
def owner(a_owner):
    return actor_for(a_owner)


def signed_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def router(fake_network, vpc):
    return fake_network.state[ROUTER][vpc.public_id]


def row(page: str, attribute: str, public_id: str) -> str:
    return re.search(rf'<tr {attribute}="{public_id}">.*?</tr>', page, re.S).group(0)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def launch(run_tasks, owner, subnet) -> Instance:
    [vm] = run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano",
                     image=Image.objects.get(name="tiny").public_id, subnet=subnet.public_id)
    return vm


def test_allocate_bind_change_unbind_and_release_through_the_pages(a_owner, owner, net, run_tasks, fake_network):
    vpc, web, _ = net
    vm = launch(run_tasks, owner, web)
    client = signed_in(a_owner)
    page = client.get("/eips/").content.decode()
    assert 'id="allocate-eip"' in page and 'href="/eips/"' in page and 'href="/nat-gateways/"' in page

    response = client.post("/eips/", {"name": "front", "bandwidth_mbps": "20", "external_network": ""})
    assert response.status_code == 302 and response["Location"] == "/eips/"
    eip = ElasticIP.objects.get(name="front")
    assert (eip.address, eip.bandwidth_mbps, eip.status) == ("203.0.113.10", 20, "available")

    # The bind choice offers the instance (it has an interface) and the interfaces without an EIP.
    listed = client.get("/eips/").content.decode()
    vm_port = Port.objects.get(instance=vm)
    assert f'<option value="{vm.public_id}">vm ({vm.public_id})</option>' in listed
    assert f'<option value="{vm_port.public_id}">' in listed
    assert "return confirm('Release 203.0.113.10?" in row(listed, "data-eip", eip.public_id)

    response = client.post(f"/eips/{eip.public_id}/bind", {"target": vm.public_id})
    assert response.status_code == 302
    eip.refresh_from_db()
    vpc.refresh_from_db()
    assert eip.port == vm_port and vpc.gateway_ip == "203.0.113.11"
    spec = router(fake_network, vpc)
    assert [(n.type, n.external_ip) for n in spec.nats] == [("dnat_and_snat", "203.0.113.10")]
    line = text(row(client.get("/eips/").content.decode(), "data-eip", eip.public_id))
    assert "bound" in line and "vm" in line and vm_port.public_id in line and "public" in line

    client.post(f"/eips/{eip.public_id}/update", {"bandwidth_mbps": "50"})
    assert ElasticIP.objects.get(pk=eip.pk).bandwidth_mbps == 50
    assert [r.kbps for r in router(fake_network, vpc).limits] == [50000]

    client.post(f"/eips/{eip.public_id}/unbind")
    eip.refresh_from_db()
    vpc.refresh_from_db()
    assert eip.port is None and vpc.gateway_ip is None and router(fake_network, vpc).gateway is None

    port = services.create_port(owner, subnet=web, name="eth-lb")
    client.post(f"/eips/{eip.public_id}/bind", {"target": port.public_id})
    assert ElasticIP.objects.get(pk=eip.pk).port == port
    client.post(f"/eips/{eip.public_id}/unbind")

    response = client.post(f"/eips/{eip.public_id}/release", follow=True)
    assert "EIP 203.0.113.10 released." in response.content.decode()
    assert not ElasticIP.objects.exists()


def test_eip_refusals_are_messages_and_field_errors(a_owner, owner, net, public, operator):
    _, web, _ = net
    client = signed_in(a_owner)
    eip = edge.allocate_eip(owner)

    page = client.post(f"/eips/{eip.public_id}/update", {"bandwidth_mbps": "0"})
    assert page.status_code == 400
    assert "EIP 203.0.113.10: 1 to 10000." in text(page.content.decode())
    page = client.post(f"/eips/{eip.public_id}/bind", {"target": "i-nothere"})
    assert page.status_code == 400 and "Select a valid choice." in page.content.decode()

    port = services.create_port(owner, subnet=web)
    edge.bind_eip(owner, eip=eip, port=port)
    page = client.post(f"/eips/{eip.public_id}/release", follow=True).content.decode()
    assert f"EIP {eip.public_id} (203.0.113.10) is bound to port" in page
    assert ElasticIP.objects.filter(pk=eip.pk).exists()
    other = edge.allocate_eip(owner)
    page = client.post(f"/eips/{other.public_id}/bind", {"target": port.public_id})
    assert page.status_code == 400  # not offered: it has an EIP
    assert ElasticIP.objects.get(pk=other.pk).port is None

    # An EIP of another external network than the VPC's gateway: the 409's message, on the list.
    edge.create_external_network(operator, name="lab", region=public.region, cidr="198.51.100.0/24",
                                 gateway_ip="198.51.100.1", ranges=[{"start": "198.51.100.5", "end": "198.51.100.9"}])
    lab_eip = edge.allocate_eip(owner, external_network="lab")
    target = services.create_port(owner, subnet=web).public_id
    page = client.post(f"/eips/{lab_eip.public_id}/bind", {"target": target})
    body = page.content.decode()
    assert page.status_code == 409 and "reaches the outside through public; this EIP is of lab." in body
    assert 'id="eips"' in body and ElasticIP.objects.get(pk=lab_eip.pk).port is None

    # The region's default network closed: allocating is a 409 with the reason.
    edge.update_external_network(operator, network=public, enabled=False)
    page = client.post("/eips/", {"name": "", "bandwidth_mbps": "100", "external_network": ""})
    assert page.status_code == 409 and "closed for new addresses" in page.content.decode()
    assert 'id="allocate-eip"' in page.content.decode()
    assert ElasticIP.objects.count() == 3


def test_a_readonly_member_sees_eips_but_cannot_allocate(a_owner, a_readonly, owner):
    eip = edge.allocate_eip(owner)
    client = signed_in(a_readonly)
    page = client.get("/eips/").content.decode()
    assert "Your role can read elastic IPs but not create them." in page and eip.address in page
    assert client.post("/eips/", {"bandwidth_mbps": "100"}).status_code == 403
    assert client.post(f"/eips/{eip.public_id}/release").status_code == 302
    assert ElasticIP.objects.count() == 1


def test_nat_gateway_created_changed_and_deleted_from_the_pages(a_owner, owner, net, fake_network):
    vpc, web, app = net
    eip, bound = edge.allocate_eip(owner, name="egress-ip"), edge.allocate_eip(owner)
    edge.bind_eip(owner, eip=bound, port=services.create_port(owner, subnet=web))
    client = signed_in(a_owner)

    page = client.get(f"/nat-gateways/?vpc={vpc.public_id}").content.decode()
    assert 'id="create-nat-gateway"' in page and f'<option value="{vpc.public_id}" selected>' in page
    assert f'<option value="{eip.public_id}">' in page and f'value="{bound.public_id}"' not in page  # unbound only

    response = client.post("/nat-gateways/", {"vpc": vpc.public_id, "eip": eip.public_id, "name": "egress",
                                              "subnets": [app.public_id], "description": ""})
    nat = NatGateway.objects.get(name="egress")
    assert response.status_code == 302 and response["Location"] == f"/nat-gateways/{nat.public_id}/"
    assert [(n.type, n.external_ip, n.logical_ip) for n in router(fake_network, vpc).nats if n.type == "snat"] == [
        ("snat", eip.address, "10.8.2.0/24")]
    listed = text(row(client.get("/nat-gateways/").content.decode(), "data-nat-gateway", nat.public_id))
    assert "egress" in listed and "prod" in listed and eip.address in listed and "app 10.8.2.0/24" in listed

    detail = client.get(f"/nat-gateways/{nat.public_id}/").content.decode()
    assert "app" in text(re.search(r'id="nat-subnets">.*?</td>', detail, re.S).group(0))
    assert 'id="add-mapping"' in detail and "No port mappings." in detail

    response = client.post(f"/nat-gateways/{nat.public_id}/add-mapping", {
        "protocol": "tcp", "external_port": "2222", "internal_ip": "10.8.1.5", "internal_port": "22",
        "description": "ssh"})
    assert response.status_code == 302 and response["Location"] == f"/nat-gateways/{nat.public_id}/"
    mapping = PortMapping.objects.get()
    [forward] = router(fake_network, vpc).forwards
    assert (forward.external_ip, forward.external_port, forward.internal_ip, forward.internal_port) == (
        eip.address, 2222, "10.8.1.5", 22)
    detail = client.get(f"/nat-gateways/{nat.public_id}/").content.decode()
    assert text(row(detail, "data-mapping", mapping.public_id)).split()[:4] == [
        "tcp", f"{eip.address}:2222", "10.8.1.5:22", "ssh"]
    live = client.get(f"/nat-gateways/{nat.public_id}/", HTTP_HX_REQUEST="true").content.decode()
    assert live.startswith('<div class="box" id="port-mappings"') and mapping.public_id in live

    client.post(f"/nat-gateways/{nat.public_id}/mappings/{mapping.public_id}/delete")
    assert not PortMapping.objects.exists() and router(fake_network, vpc).forwards == ()

    client.post(f"/nat-gateways/{nat.public_id}/update", {"name": "egress", "description": "all out", "subnets": []})
    nat.refresh_from_db()
    assert nat.description == "all out" and not nat.subnets.exists()
    assert ("snat", "10.8.0.0/16") in [(n.type, n.logical_ip) for n in router(fake_network, vpc).nats]

    response = client.post(f"/nat-gateways/{nat.public_id}/delete", follow=True)
    assert response.redirect_chain[-1][0] == "/nat-gateways/"
    assert "NAT gateway egress deleted." in response.content.decode()
    assert not NatGateway.objects.exists() and ElasticIP.objects.get(pk=eip.pk).status == "available"


@pytest.mark.parametrize("body, status, error", [
    ({"protocol": "tcp", "external_port": "80", "internal_ip": "192.168.1.5", "internal_port": "80"}, 400,
     "An address of one of the VPC&#x27;s subnets."),
    ({"protocol": "tcp", "external_port": "0", "internal_ip": "10.8.1.5", "internal_port": "80"}, 400, "1 to 65535."),
    ({"protocol": "icmp", "external_port": "80", "internal_ip": "10.8.1.5", "internal_port": "80"}, 400,
     "Select a valid choice."),
    ({"protocol": "tcp", "external_port": "2222", "internal_ip": "10.8.1.6", "internal_port": "22"}, 409,
     "Mapped already."),
])
def test_a_bad_port_mapping_shows_its_field_error(body, status, error, a_owner, owner, net, fake_network):
    vpc, _, _ = net
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner), name="egress")
    edge.add_port_mapping(owner, nat=nat, protocol="tcp", external_port=2222, internal_ip="10.8.1.5",
                          internal_port=22)
    before = router(fake_network, vpc)
    page = signed_in(a_owner).post(f"/nat-gateways/{nat.public_id}/add-mapping", {**body, "description": "typed"})
    assert page.status_code == status
    form = re.search(r'<form method="post" action="[^"]+" id="add-mapping">.*?</form>', page.content.decode(),
                     re.S).group(0)
    assert error in form and 'value="typed"' in form  # on the form, which keeps what was typed
    assert nat.port_mappings.count() == 1 and router(fake_network, vpc) == before


def test_the_vpc_page_and_topology_show_the_way_out(a_owner, owner, net):
    vpc, web, _ = net
    port = services.create_port(owner, subnet=web, name="eth-web")
    client = signed_in(a_owner)
    page = client.get(f"/vpcs/{vpc.public_id}/").content.decode()
    assert 'class="internet"' not in page and 'viewBox="0 0 ' in page and "No gateway" in page

    eip = edge.allocate_eip(owner)
    edge.bind_eip(owner, eip=eip, port=port)
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner), name="egress")
    vpc.refresh_from_db()
    page = client.get(f"/vpcs/{vpc.public_id}/").content.decode()
    svg = re.search(r'<svg id="topology".*?</svg>', page, re.S).group(0)
    width, height = map(int, re.search(r'viewBox="0 -90 (\d+) (\d+)"', svg).groups())
    internet = re.search(r'<g class="internet" data-external-network="([^"]+)">.*?</g>', svg, re.S)
    assert internet.group(1) == ExternalNetwork.objects.get(name="public").public_id
    assert "Internet · external network public" in internet.group(0) and "203.0.113.0/24 via 203.0.113.1" in svg
    assert f'data-gateway-ip="{vpc.gateway_ip}">{vpc.gateway_ip}</text>' in svg
    assert re.search(rf'<g class="nat" data-nat-gateway="{nat.public_id}">.*?{nat.eip.address}', svg, re.S)
    port_node = re.search(rf'data-port="{port.public_id}">.*?</g>', svg, re.S).group(0)
    assert f'<tspan class="eip" dx="4" data-eip="{eip.public_id}">⇄ {eip.address}</tspan>' in port_node

    way_out = text(re.search(r'<div class="box" id="vpc-gateway">.*?</ul>', page, re.S).group(0))
    assert "external network public ( 203.0.113.0/24 ): the router's address " + vpc.gateway_ip in way_out
    assert "NAT gateway egress" in way_out and f'href="/nat-gateways/{nat.public_id}/"' in page
    assert eip.address in text(row(page, "data-port", port.public_id))


def test_the_vpc_page_reads_as_many_queries_for_many_eips(a_owner, owner, net):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    vpc, web, _ = net
    client = signed_in(a_owner)
    edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner), name="egress")

    def queries(url) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    edge.bind_eip(owner, eip=edge.allocate_eip(owner), port=services.create_port(owner, subnet=web))
    few = queries(f"/vpcs/{vpc.public_id}/"), queries("/eips/")
    for _ in range(3):
        edge.bind_eip(owner, eip=edge.allocate_eip(owner), port=services.create_port(owner, subnet=web))
    assert (queries(f"/vpcs/{vpc.public_id}/"), queries("/eips/")) == few


def test_another_tenant_gets_404_on_every_page_and_action(a_owner, b_owner, owner, net):
    vpc, web, _ = net
    eip = edge.allocate_eip(owner, name="a-front")
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner), name="a-egress")
    mapping = edge.add_port_mapping(owner, nat=nat, protocol="tcp", external_port=80, internal_ip="10.8.1.5",
                                    internal_port=80)
    port = services.create_port(owner, subnet=web)
    client = signed_in(b_owner)
    assert client.get(f"/nat-gateways/{nat.public_id}/").status_code == 404
    for url, body in [
        *((f"/eips/{eip.public_id}/{action}", {"target": port.public_id, "bandwidth_mbps": "1"})
          for action in ("bind", "update", "unbind", "release")),
        *((f"/nat-gateways/{nat.public_id}/{action}",
           {"name": "x", "protocol": "tcp", "external_port": "81", "internal_ip": "10.8.1.5", "internal_port": "81"})
          for action in ("update", "add-mapping", "delete")),
        (f"/nat-gateways/{nat.public_id}/mappings/{mapping.public_id}/delete", {}),
    ]:
        assert client.post(url, body).status_code == 404, url
    for url in ("/eips/", "/nat-gateways/"):
        listed = client.get(url).content.decode()
        assert eip.public_id not in listed and nat.public_id not in listed and "a-egress" not in listed
    # B's own forms offer none of A's VPCs and EIPs.
    response = client.post("/nat-gateways/", {"vpc": vpc.public_id, "eip": eip.public_id, "name": "sneaky"})
    assert response.status_code == 400 and NatGateway.objects.count() == 1
    assert ElasticIP.objects.get(pk=eip.pk).port is None and nat.port_mappings.get() == mapping


def test_back_office_of_the_way_out(a_owner, owner, net, admin_client, public, fake_network):
    vpc, web, _ = net
    eip = edge.allocate_eip(owner)
    edge.bind_eip(owner, eip=eip, port=services.create_port(owner, subnet=web))
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner), name="egress")
    edge.add_port_mapping(owner, nat=nat, protocol="tcp", external_port=80, internal_ip="10.8.1.5", internal_port=80)
    for url in ["/backoffice/network/externalnetwork/", f"/backoffice/network/externalnetwork/{public.pk}/change/",
                "/backoffice/network/externalnetwork/add-external-network/", "/backoffice/network/elasticip/",
                f"/backoffice/network/elasticip/{eip.pk}/change/", "/backoffice/network/natgateway/",
                f"/backoffice/network/natgateway/{nat.pk}/change/"]:
        assert admin_client.get(url).status_code == 200, url
    assert "203.0.113.10-203.0.113.20" in admin_client.get("/backoffice/network/externalnetwork/").content.decode()
    assert "10.8.1.5" in admin_client.get(f"/backoffice/network/natgateway/{nat.pk}/change/").content.decode()
    assert admin_client.get("/backoffice/network/elasticip/add/").status_code == 403

    # Added through the service: its OVN switch is made; a bad range is the service's message.
    form = {"name": "lab", "region": public.region.pk, "cidr": "198.51.100.0/24", "gateway_ip": "198.51.100.1",
            "ranges": "198.51.100.5-198.51.100.9, 198.51.100.20-198.51.100.29", "physical_network": "physnet2",
            "vlan": "120", "gateway_chassis": "gw-1, gw-2"}
    page = admin_client.post("/backoffice/network/externalnetwork/add-external-network/",
                             {**form, "ranges": "198.51.100.1-198.51.100.9"}, follow=True).content.decode()
    assert "holds the gateway, network or broadcast address" in page and not ExternalNetwork.objects.filter(
        name="lab").exists()
    response = admin_client.post("/backoffice/network/externalnetwork/add-external-network/", form)
    assert response.status_code == 302
    lab = ExternalNetwork.objects.get(name="lab")
    assert (lab.ranges, lab.vlan, lab.gateway_chassis, lab.physical_network) == (
        [{"start": "198.51.100.5", "end": "198.51.100.9"}, {"start": "198.51.100.20", "end": "198.51.100.29"}],
        120, ["gw-1", "gw-2"], "physnet2")
    assert "ext-lab" in fake_network.state[EXTERNAL]

    # Edits go through the service too: shrinking the ranges away from addresses in use is refused.
    change = f"/backoffice/network/externalnetwork/{public.pk}/change/"
    page = admin_client.post(change, {"enabled": "on", "is_default": "on", "gateway_chassis": '["gw-9"]',
                                      "ranges": '[{"start": "203.0.113.15", "end": "203.0.113.20"}]'},
                             follow=True).content.decode()
    assert "Addresses in use would fall outside the ranges" in page and "was changed successfully" not in page
    public.refresh_from_db()
    assert public.ranges == [{"start": "203.0.113.10", "end": "203.0.113.20"}] and public.gateway_chassis == ["gw-1"]
    admin_client.post(change, {"enabled": "on", "is_default": "on", "gateway_chassis": '["gw-9"]',
                               "ranges": '[{"start": "203.0.113.10", "end": "203.0.113.30"}]'})
    public.refresh_from_db()
    assert public.ranges[0]["end"] == "203.0.113.30" and router(fake_network, VPC.objects.get(
        pk=vpc.pk)).gateway.chassis == ("gw-9",)
    response = admin_client.post("/backoffice/network/externalnetwork/", {
        "action": "remove", "_selected_action": [public.pk, lab.pk]}, follow=True)
    assert "is in use by" in response.content.decode() and "Lab removed." in response.content.decode()
    assert list(ExternalNetwork.objects.values_list("name", flat=True)) == ["public"]
