"""The load balancer and HA VIP pages: load balancers (create; listeners, members, weights,
health tags from the fake health checks and their polled fragment; delete, refused while an
EIP is bound), binding an EIP to a load balancer from the EIP page, HA VIPs (create, change
the interfaces, delete), what the VPC page and its topology show of them, the back office, and
another tenant's 404s, through the services on the fake network driver."""

import re

import pytest
from django.test import Client

from apps.compute import services as compute
from apps.compute.models import Image, Instance
from apps.network import edge_services as edge
from apps.network import lb_services as lb
from apps.network import services
from apps.network.drivers.base import HAVIP, LISTENER
from apps.network.models import ElasticIP, HaVip, IPAllocation, Listener, LoadBalancer, Member, Port
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


@pytest.fixture
def balancer(owner, net):
    """A load balancer with a TCP listener and one member (an address of the app subnet)."""
    front = lb.create_load_balancer(owner, subnet=net[1], name="front", ip_address="10.8.1.100")
    listener = lb.add_listener(owner, load_balancer=front, protocol="tcp", port=80)
    lb.add_member(owner, listener=listener, address="10.8.2.50", port=8080)
    return front


def signed_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def row(page: str, attribute: str, public_id: str) -> str:
    return re.search(rf'<tr {attribute}="{public_id}">.*?</tr>', page, re.S).group(0)


def form(page: str, form_id: str) -> str:
    return re.search(rf'<form method="post"(?: action="[^"]+")?(?: class="[^"]+")? id="{form_id}">.*?</form>', page,
                     re.S).group(0)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def health_tags(html: str) -> dict[str, tuple[str, str]]:
    """Member id → (tag colour, health) of the page's health tags."""
    return {member: (colour, health) for colour, member, health in re.findall(
        r'<span class="tag ([^"]+)" id="health-([^"]+)" data-health="([^"]+)"', html)}


def launch(run_tasks, owner, subnet) -> Instance:
    [vm] = run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano",
                     image=Image.objects.get(name="tiny").public_id, subnet=subnet.public_id)
    return vm


def test_load_balancer_listeners_and_members_through_the_pages(a_owner, owner, net, run_tasks, fake_network):
    vpc, web, app = net
    vm = launch(run_tasks, owner, web)
    vm_address = Port.objects.get(instance=vm).addresses.get().address
    client = signed_in(a_owner)
    page = client.get("/load-balancers/").content.decode()
    assert 'id="create-load-balancer"' in page and 'href="/load-balancers/"' in page and 'href="/havips/"' in page
    assert f'<option value="{web.public_id}">prod / web (10.8.1.0/24)</option>' in page

    response = client.post("/load-balancers/", {"subnet": web.public_id, "name": "front", "ip_address": "10.8.1.100",
                                                "description": "the shop"})
    balancer = LoadBalancer.objects.get(name="front")
    assert response.status_code == 302 and response["Location"] == f"/load-balancers/{balancer.public_id}/"
    assert (balancer.vip, balancer.subnet, balancer.description) == ("10.8.1.100", web, "the shop")
    listed = text(row(client.get("/load-balancers/").content.decode(), "data-load-balancer", balancer.public_id))
    assert listed.split() == ["front", balancer.public_id, "prod", "/", "web", "10.8.1.0/24", "10.8.1.100", "—", "0",
                              *listed.split()[-2:]]
    detail = client.get(f"/load-balancers/{balancer.public_id}/").content.decode()
    assert 'id="add-listener"' in detail and 'id="no-listeners"' in detail and "load-balancer-health" not in detail

    response = client.post(f"/load-balancers/{balancer.public_id}/add-listener", {
        "protocol": "tcp", "port": "80", "name": "web", "algorithm": "hash", "health_check": "on",
        "health_interval": "2", "health_timeout": "", "health_success": "", "health_failure": "4"})
    assert response.status_code == 302 and response["Location"] == f"/load-balancers/{balancer.public_id}/"
    listener = Listener.objects.get()
    assert (listener.name, listener.protocol, listener.port, listener.health_interval, listener.health_timeout,
            listener.health_failure) == ("web", "tcp", 80, 2, 3, 4)
    spec = fake_network.state[LISTENER][listener.ovn_name]
    assert spec.addresses == ("10.8.1.100",) and spec.health.interval == 2 and spec.backends == ()

    # The member form offers the tenant's instances with an interface in the VPC.
    detail = client.get(f"/load-balancers/{balancer.public_id}/").content.decode()
    member_form = form(detail, f"add-member-{listener.public_id}")
    assert f'<option value="{vm.public_id}">vm ({vm.public_id})</option>' in member_form
    base = f"/load-balancers/{balancer.public_id}/listeners/{listener.public_id}"
    assert client.post(f"{base}/add-member", {"instance": vm.public_id, "address": "", "port": "8080",
                                              "weight": "1"}).status_code == 302
    assert client.post(f"{base}/add-member", {"instance": "", "address": "10.8.2.50", "port": "8080",
                                              "weight": "2"}).status_code == 302
    on_vm, on_app = Member.objects.get(instance=vm), Member.objects.get(address="10.8.2.50")
    assert (on_vm.address, on_vm.port, on_vm.weight, on_app.weight) == (vm_address, 8080, 1, 2)
    assert sorted((b.address, b.port) for b in fake_network.state[LISTENER][listener.ovn_name].backends) == [
        (vm_address, 8080), ("10.8.2.50", 8080)]

    # Health as the checks report it: coloured tags, and the fragment the page polls every 5 s.
    fake_network.health[listener.ovn_name] = {(vm_address, 8080): "online", ("10.8.2.50", 8080): "offline"}
    detail = client.get(f"/load-balancers/{balancer.public_id}/").content.decode()
    assert health_tags(detail) == {on_vm.public_id: ("is-success", "online"),
                                   on_app.public_id: ("is-danger", "offline")}
    assert f'hx-get="/load-balancers/{balancer.public_id}/health/" hx-trigger="every 5s" hx-swap="none"' in detail
    members = text(row(detail, "data-member", on_vm.public_id))
    assert members.split()[:3] == [vm_address, "8080", "Save"] and "vm" in members and "online" in members
    fake_network.health[listener.ovn_name] = {(vm_address, 8080): "offline"}
    polled = client.get(f"/load-balancers/{balancer.public_id}/health/").content.decode()
    assert polled.count('hx-swap-oob="true"') == 2 and "<form" not in polled
    assert health_tags(polled) == {on_vm.public_id: ("is-danger", "offline"), on_app.public_id: ("is-light", "unknown")}

    # Weight 0 drains a member; without a health check members are unchecked.
    response = client.post(f"/load-balancers/{balancer.public_id}/members/{on_app.public_id}/update", {"weight": "0"})
    assert response.status_code == 302 and Member.objects.get(pk=on_app.pk).weight == 0
    assert [b.address for b in fake_network.state[LISTENER][listener.ovn_name].backends] == [vm_address]
    polled = client.get(f"/load-balancers/{balancer.public_id}/health/").content.decode()
    assert health_tags(polled)[on_app.public_id] == ("has-background-grey-light", "drained")
    client.post(f"{base}/update", {"algorithm": "source_ip", "health_interval": "2", "health_timeout": "3",
                                   "health_success": "2", "health_failure": "4"})  # the box unticked
    listener.refresh_from_db()
    spec = fake_network.state[LISTENER][listener.ovn_name]
    assert (listener.algorithm, listener.health_check) == ("source_ip", False)
    assert spec.source_ip_affinity and spec.health is None
    detail = client.get(f"/load-balancers/{balancer.public_id}/").content.decode()
    assert health_tags(detail)[on_vm.public_id] == ("is-light", "unchecked") and "No health check." in detail
    live = client.get(f"/load-balancers/{balancer.public_id}/", HTTP_HX_REQUEST="true").content.decode()
    assert live.startswith('<div id="listeners"') and on_vm.public_id in live and 'id="add-listener"' not in live

    client.post(f"/load-balancers/{balancer.public_id}/members/{on_app.public_id}/delete")
    assert list(listener.members.all()) == [on_vm]
    response = client.post(f"{base}/delete", follow=True)
    assert "Listener deleted." in response.content.decode()
    assert not Listener.objects.exists() and listener.ovn_name not in fake_network.state[LISTENER]
    response = client.post(f"/load-balancers/{balancer.public_id}/delete", follow=True)
    assert response.redirect_chain[-1][0] == "/load-balancers/" and "Load balancer front deleted." in text(
        response.content.decode())
    assert not LoadBalancer.objects.exists()


@pytest.mark.parametrize("path, body, form_id, error", [
    ("add-listener", {"protocol": "tcp", "port": "0", "algorithm": "hash"}, "add-listener", "1 to 65535."),
    ("add-listener", {"protocol": "sctp", "port": "81", "algorithm": "hash"}, "add-listener",
     "Select a valid choice."),
    ("add-listener", {"protocol": "udp", "port": "81", "algorithm": "hash", "health_interval": "0"}, "add-listener",
     "1 to 300."),
    ("listeners/{listener}/add-member", {"address": "10.8.2.51", "port": "0", "weight": "1"},
     "add-member-{listener}", "1 to 65535."),
    ("listeners/{listener}/add-member", {"address": "10.8.2.51", "port": "80", "weight": "101"},
     "add-member-{listener}", "0 to 100."),
    ("listeners/{listener}/add-member", {"address": "192.168.1.5", "port": "80", "weight": "1"},
     "add-member-{listener}", "An IPv4 address of the VPC."),
    ("listeners/{listener}/add-member", {"address": "", "port": "80", "weight": "1"},
     "add-member-{listener}", "An instance or an address."),
    ("listeners/{listener}/update", {"algorithm": "round_robin", "health_check": "on"},
     "edit-listener-{listener}", "Select a valid choice."),
    ("listeners/{listener}/update", {"algorithm": "hash", "health_check": "on", "health_timeout": "61"},
     "edit-listener-{listener}", "1 to 60."),
])
def test_bad_input_shows_the_field_error_and_changes_nothing(path, body, form_id, error, a_owner, balancer,
                                                             fake_network):
    listener = balancer.listeners.get()
    before = (dict(fake_network.state[LISTENER]), list(Listener.objects.values()), list(Member.objects.values()),
              list(IPAllocation.objects.values()))
    url = f"/load-balancers/{balancer.public_id}/{path.format(listener=listener.public_id)}"
    page = signed_in(a_owner).post(url, {"name": "typed", **body})
    assert page.status_code == 400
    shown = form(page.content.decode(), form_id.format(listener=listener.public_id))
    assert error in shown
    assert before == (dict(fake_network.state[LISTENER]), list(Listener.objects.values()),
                      list(Member.objects.values()), list(IPAllocation.objects.values()))


def test_a_bad_weight_is_shown_on_its_member(a_owner, balancer, fake_network):
    member = Member.objects.get()
    before = dict(fake_network.state[LISTENER])
    page = signed_in(a_owner).post(f"/load-balancers/{balancer.public_id}/members/{member.public_id}/update",
                                   {"weight": "101"})
    assert page.status_code == 400
    cell = row(page.content.decode(), "data-member", member.public_id)
    assert 'value="101"' in cell and "0 to 100." in cell
    assert Member.objects.get().weight == 1 and dict(fake_network.state[LISTENER]) == before


def test_a_duplicate_listener_is_a_409_on_its_field(a_owner, balancer):
    page = signed_in(a_owner).post(f"/load-balancers/{balancer.public_id}/add-listener",
                                   {"protocol": "tcp", "port": "80", "algorithm": "hash"})
    assert page.status_code == 409 and "Taken." in form(page.content.decode(), "add-listener")
    assert balancer.listeners.count() == 1


def test_an_eip_bound_from_the_eip_page_and_the_delete_refused_meanwhile(a_owner, owner, balancer, fake_network):
    listener = balancer.listeners.get()
    eip = edge.allocate_eip(owner, name="shop")
    client = signed_in(a_owner)
    listed = client.get("/eips/").content.decode()
    offered = re.search(r'<optgroup label="Load balancers">.*?</optgroup>', listed, re.S).group(0)
    assert f'<option value="{balancer.public_id}">front VIP 10.8.1.100 (prod)</option>' in offered

    response = client.post(f"/eips/{eip.public_id}/bind", {"target": balancer.public_id})
    assert response.status_code == 302 and ElasticIP.objects.get(pk=eip.pk).load_balancer == balancer
    assert fake_network.state[LISTENER][listener.ovn_name].addresses == ("10.8.1.100", eip.address)
    line = text(row(client.get("/eips/").content.decode(), "data-eip", eip.public_id))
    assert "bound" in line and "Load balancer front" in line and "Unbind" in line
    assert f'href="/load-balancers/{balancer.public_id}/"' in row(client.get("/eips/").content.decode(), "data-eip",
                                                                  eip.public_id)
    assert f'value="{balancer.public_id}"' not in client.get("/eips/").content.decode()  # it has one now
    detail = client.get(f"/load-balancers/{balancer.public_id}/").content.decode()
    assert eip.address in text(re.search(r'id="load-balancer-eip">.*?</td>', detail, re.S).group(0))
    assert f"<code>{eip.address}:80</code>" in detail
    assert eip.address in row(client.get("/load-balancers/").content.decode(), "data-load-balancer",
                              balancer.public_id)

    page = client.post(f"/load-balancers/{balancer.public_id}/delete", follow=True).content.decode()
    assert f"EIP {eip.public_id} ({eip.address}) is bound to {balancer.public_id}: unbind it first." in page
    assert LoadBalancer.objects.filter(pk=balancer.pk).exists()

    client.post(f"/eips/{eip.public_id}/unbind")
    assert ElasticIP.objects.get(pk=eip.pk).load_balancer is None
    assert fake_network.state[LISTENER][listener.ovn_name].addresses == ("10.8.1.100",)
    assert client.post(f"/load-balancers/{balancer.public_id}/delete").status_code == 302
    assert not LoadBalancer.objects.exists()


def test_havips_created_changed_and_deleted_from_the_pages(a_owner, owner, net, fake_network):
    vpc, web, app = net
    first, second = services.create_port(owner, subnet=web), services.create_port(owner, subnet=web)
    elsewhere = services.create_port(owner, subnet=app)
    client = signed_in(a_owner)
    page = client.get(f"/havips/?subnet={web.public_id}").content.decode()
    create = form(page, "create-havip")
    assert f'<option value="{web.public_id}" selected>' in create and f'value="{elsewhere.public_id}"' in create

    response = client.post("/havips/", {"subnet": web.public_id, "name": "db", "ip_address": "10.8.1.200",
                                        "ports": [first.public_id, second.public_id], "description": ""})
    assert response.status_code == 302 and response["Location"] == "/havips/"
    havip = HaVip.objects.get()
    assert (havip.address, set(havip.ports.all())) == ("10.8.1.200", {first, second})
    assert fake_network.state[HAVIP][havip.public_id].parents == tuple(sorted([first.switch_port,
                                                                              second.switch_port]))
    line = row(client.get("/havips/").content.decode(), "data-havip", havip.public_id)
    assert "db" in text(line) and "prod / web 10.8.1.0/24" in text(line) and "10.8.1.200" in text(line)
    assert f'<option value="{first.public_id}" selected>' in line and f'value="{elsewhere.public_id}"' not in line

    response = client.post(f"/havips/{havip.public_id}/update", {"ports": [second.public_id]})
    assert response.status_code == 302 and list(havip.ports.all()) == [second]
    assert fake_network.state[HAVIP][havip.public_id].parents == (second.switch_port,)
    # An interface of another subnet: the service's refusal, above the list; nothing changes.
    page = client.post(f"/havips/{havip.public_id}/update", {"ports": [elsewhere.public_id]})
    assert page.status_code == 400
    assert f"HA VIP db: Ports of subnet {web.public_id} only." in text(page.content.decode())
    assert list(havip.ports.all()) == [second]
    client.post(f"/havips/{havip.public_id}/update", {})  # none chosen: no interface may hold it
    assert not havip.ports.exists() and fake_network.state[HAVIP][havip.public_id].parents == ()

    response = client.post(f"/havips/{havip.public_id}/delete", follow=True)
    assert "HA VIP db deleted." in response.content.decode()
    assert not HaVip.objects.exists() and havip.public_id not in fake_network.state[HAVIP]


@pytest.mark.parametrize("body, status, error", [
    ({"ports": ["{elsewhere}"]}, 400, "Ports of subnet {web} only."),
    ({"ip_address": "10.8.2.9"}, 400, "Must be inside 10.8.1.0/24."),
    ({"ip_address": "10.8.1.200"}, 409, "Taken by {taken}."),
])
def test_a_bad_havip_shows_its_field_error(body, status, error, a_owner, owner, net, fake_network):
    _, web, app = net
    taken = services.create_havip(owner, subnet=web, name="taken", ip_address="10.8.1.200")
    elsewhere = services.create_port(owner, subnet=app)
    names = {"elsewhere": elsewhere.public_id, "web": web.public_id, "taken": taken.public_id}
    body = {k: [v.format(**names) for v in value] if isinstance(value, list) else value for k, value in body.items()}
    page = signed_in(a_owner).post("/havips/", {"subnet": web.public_id, "name": "typed", **body})
    assert page.status_code == status
    shown = form(page.content.decode(), "create-havip")
    assert error.format(**names) in shown and 'value="typed"' in shown
    assert HaVip.objects.count() == 1 and len(fake_network.state[HAVIP]) == 1


def test_the_vpc_page_and_topology_show_load_balancers_and_havips(a_owner, owner, net, balancer):
    vpc, web, _ = net
    port = services.create_port(owner, subnet=web, name="eth-db")
    havip = services.create_havip(owner, subnet=web, name="db", ip_address="10.8.1.200", ports=[port.public_id])
    page = signed_in(a_owner).get(f"/vpcs/{vpc.public_id}/").content.decode()
    box = text(re.search(r'<div class="box" id="vpc-balancing">.*?</ul>\s*<ul.*?</ul>', page, re.S).group(0))
    assert "Load balancer front 10.8.1.100 — subnet web, 1 listener" in box
    assert "HA VIP db 10.8.1.200 — subnet web, 1 network interface" in box
    assert f'href="/load-balancers/{balancer.public_id}/"' in page

    svg = re.search(r'<svg id="topology".*?</svg>', page, re.S).group(0)
    card = re.search(rf'<g class="subnet" data-subnet="{web.public_id}">.*?</g>\s*</a>\s*</g>', svg, re.S).group(0)
    node = re.search(rf'<g class="load-balancer" data-load-balancer="{balancer.public_id}">.*?</g>', card, re.S)
    assert "10.8.1.100" in node.group(0) and "load balancer · front" in node.group(0)
    assert 'transform="rotate(45' in node.group(0)  # a diamond, not a port's circle
    node = re.search(rf'<g class="havip" data-havip="{havip.public_id}">.*?</g>', card, re.S)
    assert "10.8.1.200" in node.group(0) and "HA VIP · db" in node.group(0) and "<circle" not in node.group(0)
    # Stacked under the port, inside the card.
    ys = [int(y) for y in re.findall(r'<(?:circle cx="\d+" cy|rect class="mark" x="-?\d+" y)="(\d+)"', card)]
    height = int(re.search(r'<rect x="\d+" y="(\d+)" width="\d+" height="(\d+)"', card).group(2))
    top = int(re.search(r'<rect x="\d+" y="(\d+)"', card).group(1))
    assert len(ys) == 3 and ys == sorted(ys) and ys[-1] < top + height


def test_another_tenant_gets_404_on_every_page_and_action(a_owner, b_owner, owner, net, balancer):
    _, web, _ = net
    listener, member = balancer.listeners.get(), Member.objects.get()
    havip = services.create_havip(owner, subnet=web, name="a-vip")
    eip = edge.allocate_eip(owner)
    client = signed_in(b_owner)
    for url in (f"/load-balancers/{balancer.public_id}/", f"/load-balancers/{balancer.public_id}/health/"):
        assert client.get(url).status_code == 404, url
    base = f"/load-balancers/{balancer.public_id}"
    for url in [*(f"{base}/{action}" for action in ("update", "add-listener", "delete")),
                *(f"{base}/listeners/{listener.public_id}/{action}" for action in ("update", "add-member", "delete")),
                *(f"{base}/members/{member.public_id}/{action}" for action in ("update", "delete")),
                *(f"/havips/{havip.public_id}/{action}" for action in ("update", "delete"))]:
        body = {"name": "x", "protocol": "tcp", "port": "81", "address": "10.8.1.9", "weight": "5", "ports": []}
        assert client.post(url, body).status_code == 404, url
    for url in ("/load-balancers/", "/havips/", "/eips/"):
        listed = client.get(url).content.decode()
        assert balancer.public_id not in listed and havip.public_id not in listed and "a-vip" not in listed
    # B's forms offer none of A's subnets, and B's EIP page none of A's load balancers.
    assert client.post("/load-balancers/", {"subnet": web.public_id, "name": "sneaky"}).status_code == 400
    assert client.post("/havips/", {"subnet": web.public_id, "name": "sneaky"}).status_code == 400
    b_eip = edge.allocate_eip(actor_for(b_owner))
    assert client.post(f"/eips/{b_eip.public_id}/bind", {"target": balancer.public_id}).status_code == 400
    # A listener or member of A's load balancer under another load balancer: not found either.
    mine = lb.create_load_balancer(owner, subnet=web, name="other")
    other = signed_in(a_owner)
    assert other.post(f"/load-balancers/{mine.public_id}/listeners/{listener.public_id}/delete").status_code == 404
    assert other.post(f"/load-balancers/{mine.public_id}/members/{member.public_id}/delete").status_code == 404
    assert (LoadBalancer.objects.count(), Listener.objects.count(), Member.objects.count(),
            HaVip.objects.count()) == (2, 1, 1, 1)
    assert ElasticIP.objects.get(pk=eip.pk).load_balancer is None
    assert LoadBalancer.objects.get(pk=balancer.pk).name == "front" and list(havip.ports.all()) == []


def test_a_readonly_member_sees_load_balancers_but_cannot_change_them(a_readonly, balancer):
    client = signed_in(a_readonly)
    assert "Your role can read load balancers but not create them." in client.get("/load-balancers/").content.decode()
    assert client.get(f"/load-balancers/{balancer.public_id}/").status_code == 200
    listener = balancer.listeners.get()
    response = client.post(f"/load-balancers/{balancer.public_id}/listeners/{listener.public_id}/delete", follow=True)
    assert response.status_code == 200 and Listener.objects.filter(pk=listener.pk).exists()


def test_back_office_of_load_balancers_and_havips(admin_client, owner, net, balancer):
    _, web, _ = net
    havip = services.create_havip(owner, subnet=web, name="db", ports=[services.create_port(owner, subnet=web)
                                                                        .public_id])
    for url in ["/backoffice/network/loadbalancer/", f"/backoffice/network/loadbalancer/{balancer.pk}/change/",
                "/backoffice/network/havip/", f"/backoffice/network/havip/{havip.pk}/change/"]:
        assert admin_client.get(url).status_code == 200, url
    assert "10.8.1.100" in admin_client.get("/backoffice/network/loadbalancer/").content.decode()
    change = admin_client.get(f"/backoffice/network/loadbalancer/{balancer.pk}/change/").content.decode()
    assert "10.8.2.50:8080 ×1" in change and balancer.listeners.get().public_id in change
    assert havip.address in admin_client.get("/backoffice/network/havip/").content.decode()
    assert admin_client.get("/backoffice/network/loadbalancer/add/").status_code == 403
