"""Layer-4 load balancers through the services and the API (fake SDN): listeners, members,
health, the EIP, refusals with nothing changed."""

import pytest

from apps.compute import services as compute
from apps.compute.models import Image
from apps.core.exceptions import Conflict, ValidationFailed
from apps.network import edge_services as edge
from apps.network import lb_services as lb
from apps.network import services
from apps.network.drivers.base import LISTENER, ROUTER
from apps.network.models import IPAllocation, Port
from tests.factories.compute import make_inventory
from tests.factories.network import make_external_network


@pytest.fixture
def owner(a_owner, actor, db):
    make_inventory()
    return actor(a_owner)


@pytest.fixture
def net(owner):
    vpc = services.create_vpc(owner, name="web", cidr="10.7.0.0/16")
    return vpc, services.create_subnet(owner, vpc=vpc, name="front", cidr="10.7.1.0/24")


def launch(run_tasks, owner, subnet, count):
    image = Image.objects.get(name="tiny").public_id
    return run_tasks(compute.create_instances, owner, name="web", flavor="t1.nano", image=image,
                     subnet=subnet.public_id, count=count)


def test_listener_spreads_over_members_with_health_checks(owner, net, run_tasks, fake_network, api, a_owner):
    vpc, subnet = net
    web1, web2 = launch(run_tasks, owner, subnet, 2)
    balancer = lb.create_load_balancer(owner, subnet=subnet, name="front", ip_address="10.7.1.100")
    listener = lb.add_listener(owner, load_balancer=balancer, protocol="tcp", port=80, health_interval=2)
    first = lb.add_member(owner, listener=listener, instance=web1, port=8080)
    lb.add_member(owner, listener=listener, instance=web2, port=8080, weight=3)

    spec = fake_network.state[LISTENER][listener.ovn_name]
    ports = {p.instance_id: p for p in Port.objects.filter(instance__in=[web1, web2])}
    assert spec.addresses == ("10.7.1.100",) and (spec.protocol, spec.port) == ("tcp", 80)
    assert spec.router == vpc.public_id and spec.switches == (subnet.public_id,)
    service_ip = IPAllocation.objects.get(subnet=subnet, purpose=IPAllocation.SERVICE).address
    assert sorted((b.address, b.port, b.port_name, b.probe_source) for b in spec.backends) == sorted(
        (p.addresses.get().address, 8080, p.switch_port, service_ip) for p in ports.values())
    assert spec.health.interval == 2 and not spec.source_ip_affinity

    # Health as the checks report it; weight 0 drains a member.
    fake_network.health[listener.ovn_name] = {(first.address, 8080): "offline"}
    lb.update_member(owner, member=first, weight=0)
    assert [b.address for b in fake_network.state[LISTENER][listener.ovn_name].backends] == [
        ports[web2.pk].addresses.get().address]
    body = api(a_owner).get(f"/api/v1/load-balancers/{balancer.public_id}").json()
    health = {m["address"]: m["health"] for m in body["listeners"][0]["members"]}
    assert health == {first.address: "drained", ports[web2.pk].addresses.get().address: "unknown"}
    lb.update_member(owner, member=first, weight=1)
    body = api(a_owner).get(f"/api/v1/load-balancers/{balancer.public_id}").json()
    assert {m["address"]: m["health"] for m in body["listeners"][0]["members"]}[first.address] == "offline"

    lb.update_listener(owner, listener=listener, algorithm="source_ip", health_check=False)
    spec = fake_network.state[LISTENER][listener.ovn_name]
    assert spec.source_ip_affinity and spec.health is None

    # A new subnet of the VPC gets the listener too.
    other = services.create_subnet(owner, vpc=vpc, name="back", cidr="10.7.2.0/24")
    assert set(fake_network.state[LISTENER][listener.ovn_name].switches) == {subnet.public_id, other.public_id}
    with pytest.raises(Conflict):
        services.delete_subnet(owner, subnet=subnet)

    lb.delete_load_balancer(owner, load_balancer=balancer)
    assert fake_network.state[LISTENER] == {}
    assert not IPAllocation.objects.filter(address="10.7.1.100").exists()


def test_an_eip_on_the_load_balancer_answers_too(owner, net, fake_network):
    vpc, subnet = net
    make_external_network()
    balancer = lb.create_load_balancer(owner, subnet=subnet, name="front")
    listener = lb.add_listener(owner, load_balancer=balancer, protocol="udp", port=53)
    eip = edge.allocate_eip(owner)
    edge.bind_eip(owner, eip=eip, load_balancer=balancer)
    assert fake_network.state[LISTENER][listener.ovn_name].addresses == (balancer.vip, eip.address)
    assert [r.address for r in fake_network.state[ROUTER][vpc.public_id].limits] == [eip.address]
    with pytest.raises(Conflict):
        lb.delete_load_balancer(owner, load_balancer=balancer)
    edge.unbind_eip(owner, eip=eip)
    assert fake_network.state[LISTENER][listener.ovn_name].addresses == (balancer.vip,)
    assert fake_network.state[ROUTER][vpc.public_id].gateway is None


@pytest.mark.parametrize("call, field", [
    (lambda o, b, lsn: lb.add_listener(o, load_balancer=b, protocol="sctp", port=80), "protocol"),
    (lambda o, b, lsn: lb.add_listener(o, load_balancer=b, protocol="tcp", port=0), "port"),
    (lambda o, b, lsn: lb.add_listener(o, load_balancer=b, protocol="tcp", port=81, algorithm="rr"), "algorithm"),
    (lambda o, b, lsn: lb.add_listener(o, load_balancer=b, protocol="tcp", port=81, health_interval=0),
     "health_interval"),
    (lambda o, b, lsn: lb.add_member(o, listener=lsn, address="192.168.1.1", port=80), "address"),
    (lambda o, b, lsn: lb.add_member(o, listener=lsn, address="10.7.1.9", port=70000), "port"),
    (lambda o, b, lsn: lb.add_member(o, listener=lsn, address="10.7.1.9", port=80, weight=101), "weight"),
    (lambda o, b, lsn: lb.add_member(o, listener=lsn, port=80), "address"),
])
def test_bad_listeners_and_members_change_nothing(call, field, owner, net, fake_network):
    _, subnet = net
    balancer = lb.create_load_balancer(owner, subnet=subnet, name="front")
    listener = lb.add_listener(owner, load_balancer=balancer, protocol="tcp", port=80)
    before = dict(fake_network.state[LISTENER])
    with pytest.raises(ValidationFailed) as caught:
        call(owner, balancer, listener)
    assert field in caught.value.fields
    assert fake_network.state[LISTENER] == before and balancer.listeners.count() == 1
    assert not listener.members.exists()


def test_duplicates_and_the_api(owner, net, api, a_owner, b_owner, fake_network):
    _, subnet = net
    client = api(a_owner)
    created = client.post("/api/v1/load-balancers", {"subnet": subnet.public_id, "name": "front"}, format="json")
    assert created.status_code == 201, created.json()
    lb_id = created.json()["id"]
    assert client.post(f"/api/v1/load-balancers/{lb_id}/listeners", {"protocol": "tcp", "port": 443},
                       format="json").status_code == 201
    again = client.post(f"/api/v1/load-balancers/{lb_id}/listeners", {"protocol": "tcp", "port": 443}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "duplicate_listener"
    listener_id = client.get(f"/api/v1/load-balancers/{lb_id}").json()["listeners"][0]["id"]
    member = client.post(f"/api/v1/load-balancers/{lb_id}/listeners/{listener_id}/members",
                         {"address": "10.7.1.20", "port": 8443}, format="json")
    assert member.status_code == 201
    [body] = member.json()["listeners"][0]["members"]
    assert (body["address"], body["port"], body["health"]) == ("10.7.1.20", 8443, "unknown")
    assert client.patch(f"/api/v1/load-balancers/{lb_id}/listeners/{listener_id}/members/{body['id']}",
                        {"weight": 5}, format="json").json()["listeners"][0]["members"][0]["weight"] == 5
    assert api(b_owner).get(f"/api/v1/load-balancers/{lb_id}").status_code == 404
    assert api(b_owner).post(f"/api/v1/load-balancers/{lb_id}/listeners", {"protocol": "tcp", "port": 80},
                             format="json").status_code == 404
    assert client.delete(f"/api/v1/load-balancers/{lb_id}/listeners/{listener_id}").status_code == 204
    assert client.delete(f"/api/v1/load-balancers/{lb_id}").status_code == 204
