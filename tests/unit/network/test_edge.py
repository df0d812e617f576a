"""External networks, elastic IPs and NAT gateways through the services and the API (fake SDN):
what the VPC's router is told, and every refusal with nothing changed."""

import pytest

from apps.compute import services as compute
from apps.compute.models import Image
from apps.core.exceptions import Conflict, PermissionDenied, ValidationFailed
from apps.network import edge_services as edge
from apps.network import services
from apps.network.drivers.base import EXTERNAL, ROUTER
from apps.network.models import VPC, ElasticIP, Port
from apps.tenants.models import Quota
from tests.factories.compute import make_inventory
from tests.factories.network import make_external_network


@pytest.fixture
def owner(a_owner, actor, db):
    make_inventory()
    make_external_network()
    return actor(a_owner)


def router(fake_network, vpc):
    return fake_network.state[ROUTER][vpc.public_id]


def test_an_eip_bound_to_an_instance_gives_its_vpc_a_gateway_nat_and_a_rate_limit(owner, net, run_tasks,
                                                                                  fake_network, api, a_owner):
    vpc, web, _ = net
    [vm] = run_tasks(compute.create_instances, owner, name="vm", flavor="t1.nano",
                     image=Image.objects.get(name="tiny").public_id, subnet=web.public_id)
    eip = edge.allocate_eip(owner, name="front", bandwidth_mbps=20)
    assert (eip.address, eip.status) == ("203.0.113.10", "available")
    assert router(fake_network, vpc).gateway is None

    edge.bind_eip(owner, eip=eip, instance=vm)

    vpc.refresh_from_db()
    assert vpc.gateway_ip == "203.0.113.11"  # the router's leg takes the next address
    spec = router(fake_network, vpc)
    assert (spec.gateway.network, spec.gateway.addresses, spec.gateway.nexthops, spec.gateway.chassis) == (
        "ext-public", ("203.0.113.11/24",), ("203.0.113.1",), ("gw-1",))
    private = Port.objects.get(instance=vm).addresses.get().address
    assert [(n.type, n.external_ip, n.logical_ip) for n in spec.nats] == [("dnat_and_snat", eip.address, private)]
    assert [(r.address, r.kbps) for r in spec.limits] == [(eip.address, 20000)]
    body = api(a_owner).get(f"/api/v1/eips/{eip.public_id}").json()
    assert (body["status"], body["instance"], body["port"]) == ("bound", vm.public_id,
                                                                Port.objects.get(instance=vm).public_id)

    edge.update_eip(owner, eip=eip, bandwidth_mbps=50)
    assert [r.kbps for r in router(fake_network, vpc).limits] == [50000]

    # Deleting the instance lets go of the EIP (the tenant keeps it) and of the gateway.
    run_tasks(compute.delete_instance, owner, instance=vm)
    eip.refresh_from_db()
    vpc.refresh_from_db()
    assert eip.port is None and vpc.gateway_ip is None and router(fake_network, vpc).gateway is None


def test_a_nat_gateway_translates_the_chosen_subnets_and_maps_ports(owner, net, fake_network, a_owner, api):
    vpc, web, app = net
    eip = edge.allocate_eip(owner)
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=eip, name="egress")
    assert [(n.type, n.logical_ip) for n in router(fake_network, vpc).nats] == [("snat", "10.8.0.0/16")]

    edge.update_nat_gateway(owner, nat=nat, subnets=[app.public_id])
    assert [(n.type, n.external_ip, n.logical_ip) for n in router(fake_network, vpc).nats] == [
        ("snat", eip.address, "10.8.2.0/24")]

    response = api(a_owner).post(f"/api/v1/nat-gateways/{nat.public_id}/port-mappings",
                                 {"protocol": "tcp", "external_port": 2222, "internal_ip": "10.8.1.5",
                                  "internal_port": 22}, format="json")
    assert response.status_code == 201, response.json()
    [forward] = router(fake_network, vpc).forwards
    assert (forward.external_ip, forward.external_port, forward.internal_ip, forward.internal_port) == (
        eip.address, 2222, "10.8.1.5", 22)
    again = api(a_owner).post(f"/api/v1/nat-gateways/{nat.public_id}/port-mappings",
                              {"protocol": "tcp", "external_port": 2222, "internal_ip": "10.8.1.6",
                               "internal_port": 22}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "duplicate_mapping"

    # The EIP is the NAT gateway's: it cannot be bound twice, unbound or released meanwhile.
    port = services.create_port(owner, subnet=web)
    for refused in (lambda: edge.bind_eip(owner, eip=eip, port=port), lambda: edge.unbind_eip(owner, eip=eip),
                    lambda: edge.release_eip(owner, eip=eip)):
        with pytest.raises(Conflict):
            refused()
    with pytest.raises(Conflict) as caught:
        services.delete_vpc(owner, vpc=vpc)
    assert nat.public_id in caught.value.message

    assert api(a_owner).delete(f"/api/v1/nat-gateways/{nat.public_id}").status_code == 204
    vpc.refresh_from_db()
    assert vpc.gateway_ip is None and router(fake_network, vpc).nats == ()
    edge.release_eip(owner, eip=eip)
    assert not ElasticIP.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"protocol": "icmp", "external_port": 80, "internal_ip": "10.8.1.5", "internal_port": 80}, "protocol"),
    ({"protocol": "tcp", "external_port": 0, "internal_ip": "10.8.1.5", "internal_port": 80}, "external_port"),
    ({"protocol": "tcp", "external_port": 80, "internal_ip": "10.8.1.5", "internal_port": 70000}, "internal_port"),
    ({"protocol": "tcp", "external_port": 80, "internal_ip": "192.168.1.5", "internal_port": 80}, "internal_ip"),
    ({"protocol": "tcp", "external_port": 80, "internal_ip": "nope", "internal_port": 80}, "internal_ip"),
])
def test_bad_port_mappings_are_400s(body, field, owner, net, a_owner, api, fake_network):
    vpc, _, _ = net
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner), name="egress")
    before = router(fake_network, vpc)
    response = api(a_owner).post(f"/api/v1/nat-gateways/{nat.public_id}/port-mappings", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not nat.port_mappings.exists() and router(fake_network, vpc) == before


def test_eip_allocation_quota_and_exhaustion(owner, tenant_a, operator):
    from apps.tenants.services import set_quota

    set_quota(operator, tenant=tenant_a, resource="eips", limit=20, region="default")
    made = [edge.allocate_eip(owner) for _ in range(11)]  # the range holds 11 addresses
    assert [e.address for e in made] == [f"203.0.113.{n}" for n in range(10, 21)]
    with pytest.raises(Conflict) as caught:
        edge.allocate_eip(owner)
    assert caught.value.code == "no_external_address"
    assert Quota.objects.get(tenant=tenant_a, resource="eips").in_use == 11
    edge.release_eip(owner, eip=made[3])
    assert edge.allocate_eip(owner).address == "203.0.113.13"


def test_binding_refusals(owner, net, b_owner, actor, api, a_owner):
    vpc, web, _ = net
    eip, other = edge.allocate_eip(owner), edge.allocate_eip(owner)
    port = services.create_port(owner, subnet=web)
    edge.bind_eip(owner, eip=eip, port=port)
    with pytest.raises(Conflict) as caught:
        edge.bind_eip(owner, eip=eip, port=services.create_port(owner, subnet=web))
    assert caught.value.code == "bound"
    with pytest.raises(Conflict) as caught:
        edge.bind_eip(owner, eip=other, port=port)
    assert caught.value.code == "port_has_eip"
    with pytest.raises(Conflict) as caught:
        services.delete_port(owner, port=port)
    assert caught.value.code == "eip_bound"
    # Another tenant's port or EIP is unknown to the API.
    stranger = api(b_owner)
    assert stranger.post(f"/api/v1/eips/{other.public_id}/bind", {"port": port.public_id},
                         format="json").status_code == 404
    b_vpc = services.create_vpc(actor(b_owner), name="b", cidr="10.9.0.0/16")
    b_port = services.create_port(actor(b_owner), subnet=services.create_subnet(actor(b_owner), vpc=b_vpc, name="b",
                                                                                cidr="10.9.1.0/24"))
    assert api(a_owner).post(f"/api/v1/eips/{other.public_id}/bind", {"port": b_port.public_id},
                             format="json").status_code == 404


def test_external_networks_are_the_operators(owner, operator, fake_network, api, a_owner):
    from apps.compute.models import Region

    region = Region.objects.get(code="default")
    with pytest.raises(PermissionDenied):
        edge.create_external_network(owner, name="mine", region=region, cidr="198.51.100.0/24",
                                     gateway_ip="198.51.100.1", ranges=[{"start": "198.51.100.5",
                                                                         "end": "198.51.100.9"}])
    listed = api(a_owner).get("/api/v1/external-networks").json()
    assert [n["name"] for n in listed] == ["public"] and "gateway_chassis" not in listed[0]
    assert "ext-public" in fake_network.state[EXTERNAL]

    for ranges, field in (([{"start": "198.51.100.1", "end": "198.51.100.9"}], "ranges"),
                          ([{"start": "198.51.100.9", "end": "198.51.100.5"}], "ranges"),
                          ([{"start": "198.51.100.5", "end": "198.51.101.9"}], "ranges"),
                          ([], "ranges")):
        with pytest.raises(ValidationFailed) as caught:
            edge.create_external_network(operator, name="lab", region=region, cidr="198.51.100.0/24",
                                         gateway_ip="198.51.100.1", ranges=ranges)
        assert field in caught.value.fields
    with pytest.raises(ValidationFailed):
        edge.create_external_network(operator, name="lab", region=region, cidr="198.51.100.0/24",
                                     gateway_ip="198.51.100.1", vlan=5000,
                                     ranges=[{"start": "198.51.100.5", "end": "198.51.100.9"}])

    public = make_external_network()
    eip = edge.allocate_eip(owner)
    with pytest.raises(Conflict):  # shrinking the ranges away from an address in use
        edge.update_external_network(operator, network=public, ranges=[{"start": "203.0.113.15",
                                                                        "end": "203.0.113.20"}])
    with pytest.raises(Conflict):
        edge.delete_external_network(operator, network=public)
    edge.release_eip(owner, eip=eip)
    edge.update_external_network(operator, network=public, enabled=False)
    with pytest.raises(Conflict) as caught:
        edge.allocate_eip(owner)
    assert caught.value.code == "network_disabled"


def test_moving_the_gateway_chassis_moves_every_vpcs_gateway(owner, net, operator, fake_network):
    vpc, web, _ = net
    edge.bind_eip(owner, eip=edge.allocate_eip(owner), port=services.create_port(owner, subnet=web))
    edge.update_external_network(operator, network=make_external_network(), gateway_chassis=["gw-2", "gw-3"])
    assert router(fake_network, VPC.objects.get(pk=vpc.pk)).gateway.chassis == ("gw-2", "gw-3")


@pytest.mark.parametrize("body, field", [
    ({"protocol": "tcp", "external_port": True, "internal_ip": "10.8.1.5", "internal_port": 80}, "external_port"),
    ({"protocol": "tcp", "external_port": 80, "internal_ip": "10.8.1.0", "internal_port": 80}, "internal_ip"),
    ({"protocol": "tcp", "external_port": 80, "internal_ip": "10.8.1.255", "internal_port": 80}, "internal_ip"),
])
def test_booleans_and_reserved_addresses_are_not_mappings(body, field, owner, net):
    vpc, _, _ = net
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner), name="egress")
    with pytest.raises(ValidationFailed) as caught:
        edge.add_port_mapping(owner, nat=nat, **body)
    assert field in caught.value.fields and not nat.port_mappings.exists()


def test_ipv6_eips_where_the_external_network_has_ipv6(owner, operator, fake_network):
    from apps.compute.models import Region

    with pytest.raises(ValidationFailed) as caught:  # the default network is IPv4 only
        edge.allocate_eip(owner, ip_version=6)
    assert "ip_version" in caught.value.fields
    region = Region.objects.get(code="default")
    dual = edge.create_external_network(
        operator, name="dual", region=region, cidr="198.51.100.0/24", gateway_ip="198.51.100.1",
        ranges=[{"start": "198.51.100.10", "end": "198.51.100.20"}], ipv6_cidr="2001:db8:1::/64",
        ipv6_gateway_ip="2001:db8:1::1", ipv6_ranges=[{"start": "2001:db8:1::100", "end": "2001:db8:1::1ff"}],
        gateway_chassis=["gw-1"])
    vpc = services.create_vpc(owner, name="v6", cidr="10.12.0.0/16", ipv6=True)
    subnet = services.create_subnet(owner, vpc=vpc, name="v6", cidr="10.12.1.0/24", ipv6=True)
    port = services.create_port(owner, subnet=subnet)
    v6 = edge.allocate_eip(owner, external_network="dual", ip_version=6)
    assert v6.address == "2001:db8:1::100" and v6.ip_version == 6

    edge.bind_eip(owner, eip=v6, port=port)
    vpc.refresh_from_db()
    spec = router(fake_network, vpc)
    assert spec.gateway.addresses == (f"{vpc.gateway_ip}/24", "2001:db8:1::101/64")
    assert spec.gateway.nexthops == ("198.51.100.1", "2001:db8:1::1")
    private6 = port.addresses.get(address__contains=":").address
    assert [(n.type, n.external_ip, n.logical_ip) for n in spec.nats] == [("dnat_and_snat", v6.address, private6)]
    # NAT gateways and load balancers take IPv4 EIPs; an IPv4-only port cannot take an IPv6 EIP.
    other = edge.allocate_eip(owner, external_network="dual", ip_version=6)
    with pytest.raises(ValidationFailed):
        edge.create_nat_gateway(owner, vpc=vpc, eip=other, name="nat6")
    v4_only = services.create_port(owner, subnet=services.create_subnet(owner, vpc=vpc, name="v4", cidr="10.12.2.0/24"))
    with pytest.raises(Conflict) as caught:
        edge.bind_eip(owner, eip=other, port=v4_only)
    assert caught.value.code == "no_ipv6"
    for bad in ({"ipv6_cidr": "2001:db8:2::/64", "ipv6_gateway_ip": "2001:db8:3::1"},
                {"ipv6_cidr": "10.0.0.0/8", "ipv6_gateway_ip": "10.0.0.1"},
                {"ipv6_cidr": "", "ipv6_gateway_ip": "2001:db8:2::1"}):
        with pytest.raises(ValidationFailed):
            edge.create_external_network(operator, name="bad", region=region, cidr="192.0.2.0/24",
                                         gateway_ip="192.0.2.1", ranges=[{"start": "192.0.2.5", "end": "192.0.2.9"}],
                                         ipv6_ranges=[{"start": "2001:db8:2::5", "end": "2001:db8:2::9"}], **bad)
