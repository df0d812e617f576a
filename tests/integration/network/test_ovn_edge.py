"""External networks, EIPs and NAT gateways in a real OVN northbound database, checked with
ovn-nbctl: the external switch and its localnet port, the VPC router's gateway port on its
gateway chassis with a default route, NAT rows, port-forward load balancers and the EIPs' QoS;
all gone again when unbound or deleted; drift repaired by the reconcile."""

import pytest

from apps.core.actor import Actor
from apps.network import edge_services as edge
from apps.network import services
from apps.network.models import VPC
from tests.integration.network.test_ovn_northbound import rows

pytestmark = [pytest.mark.ovn, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def public(ovn, region):
    return edge.create_external_network(
        Actor.system(), name="public", region=region, cidr="203.0.113.0/24", gateway_ip="203.0.113.1", vlan=42,
        ranges=[{"start": "203.0.113.10", "end": "203.0.113.99"}], gateway_chassis=["gw-a", "gw-b"],
        is_default=True)


def nat_rows(ovn, vpc) -> list[tuple[str, str, str]]:
    """(type, external ip, logical ip) of the router's NAT rows."""
    router = rows(ovn, "Logical_Router", f"name={vpc.public_id}", columns="nat")[0]["nat"]
    uuids = router if isinstance(router, list) else [router]
    return sorted((r["type"], r["external_ip"], r["logical_ip"]) for r in rows(ovn, "NAT")
                  if r["_uuid"] in uuids)


def test_eip_and_nat_gateway_in_ovn(ovn, public, a_owner, actor):
    owner = actor(a_owner)
    [localnet] = rows(ovn, "Logical_Switch_Port", "name=ln-ext-public")
    assert (localnet["type"], localnet["options"], localnet["tag"]) == ("localnet", {"network_name": "physnet1"}, 42)

    vpc = services.create_vpc(owner, name="prod", cidr="10.30.0.0/16")
    web = services.create_subnet(owner, vpc=vpc, name="web", cidr="10.30.1.0/24")
    port = services.create_port(owner, subnet=web)
    eip = edge.allocate_eip(owner, bandwidth_mbps=10)
    edge.bind_eip(owner, eip=eip, port=port)
    vpc.refresh_from_db()

    [gw] = rows(ovn, "Logical_Router_Port", f"name=lrp-gw-{vpc.public_id}")
    assert (gw["mac"], gw["networks"]) == (vpc.gateway_mac, f"{vpc.gateway_ip}/24")
    chassis = sorted((c["chassis_name"], c["priority"]) for c in rows(ovn, "Gateway_Chassis"))
    assert chassis == [("gw-a", 2), ("gw-b", 1)]
    assert "0.0.0.0/0" in ovn.nbctl("lr-route-list", vpc.public_id) and "203.0.113.1" in ovn.nbctl(
        "lr-route-list", vpc.public_id)
    private = port.addresses.get().address
    assert nat_rows(ovn, vpc) == [("dnat_and_snat", eip.address, private)]
    qos = sorted((q["direction"], q["match"], q["bandwidth"]["rate"]) for q in rows(ovn, "QoS"))
    assert qos == [("from-lport", f'inport == "rp-gw-{vpc.public_id}" && ip4.src == {eip.address}', 10000),
                   ("to-lport", f'outport == "rp-gw-{vpc.public_id}" && ip4.dst == {eip.address}', 10000)]
    assert f"rp-gw-{vpc.public_id}" in ovn.nbctl("lsp-list", "ext-public")

    nat_eip = edge.allocate_eip(owner)
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=nat_eip, name="egress", subnets=[web.public_id])
    edge.add_port_mapping(owner, nat=nat, protocol="tcp", external_port=2222, internal_ip=private, internal_port=22)
    assert ("snat", nat_eip.address, "10.30.1.0/24") in nat_rows(ovn, vpc)
    [balancer] = rows(ovn, "Load_Balancer")
    assert (balancer["protocol"], balancer["vips"]) == ("tcp", {f"{nat_eip.address}:2222": f"{private}:22"})
    assert balancer["_uuid"] in str(rows(ovn, "Logical_Router", f"name={vpc.public_id}")[0]["load_balancer"])

    # Drift: a NAT row and the load balancer removed by hand come back with the reconcile.
    ovn.nbctl("lr-nat-del", vpc.public_id, "dnat_and_snat", eip.address)
    ovn.nbctl("lb-del", balancer["name"])
    report = services.reconcile_network()
    assert any(eip.public_id in line for line in report["repaired"])
    assert len(rows(ovn, "Load_Balancer")) == 1 and len(nat_rows(ovn, vpc)) == 2

    edge.delete_nat_gateway(owner, nat=nat)
    edge.unbind_eip(owner, eip=eip)
    vpc = VPC.objects.get(pk=vpc.pk)
    assert vpc.gateway_ip is None
    assert nat_rows(ovn, vpc) == [] and rows(ovn, "Load_Balancer") == [] and rows(ovn, "QoS") == []
    assert rows(ovn, "Logical_Router_Port", f"name=lrp-gw-{vpc.public_id}") == []
    assert f"rp-gw-{vpc.public_id}" not in ovn.nbctl("lsp-list", "ext-public")
    assert "0.0.0.0/0" not in ovn.nbctl("lr-route-list", vpc.public_id)


def test_havip_is_a_virtual_port_whose_parents_may_send_from_it(ovn, region, a_owner, actor):
    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="ha", cidr="10.31.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="ha", cidr="10.31.1.0/24")
    first, second = services.create_port(owner, subnet=subnet), services.create_port(owner, subnet=subnet)
    vip = services.create_havip(owner, subnet=subnet, name="db", ports=[first.public_id, second.public_id])

    [row] = rows(ovn, "Logical_Switch_Port", f"name={vip.public_id}")
    assert row["type"] == "virtual" and row["options"]["virtual-ip"] == vip.address
    assert sorted(row["options"]["virtual-parents"].split(",")) == sorted([str(first.uuid), str(second.uuid)])
    assert vip.address in ovn.nbctl("lsp-get-port-security", str(first.uuid))

    services.update_havip(owner, havip=vip, ports=[second.public_id])
    assert vip.address not in ovn.nbctl("lsp-get-port-security", str(first.uuid))
    assert rows(ovn, "Logical_Switch_Port", f"name={vip.public_id}")[0]["options"]["virtual-parents"] == str(
        second.uuid)
    services.delete_havip(owner, havip=vip)
    assert rows(ovn, "Logical_Switch_Port", f"name={vip.public_id}") == []
    assert vip.address not in ovn.nbctl("lsp-get-port-security", str(second.uuid))


def test_listener_is_a_load_balancer_with_health_checks_on_router_and_switches(ovn, region, a_owner, actor):
    from apps.network import lb_services as lb

    owner = actor(a_owner)
    vpc = services.create_vpc(owner, name="lb", cidr="10.32.0.0/16")
    subnet = services.create_subnet(owner, vpc=vpc, name="lb", cidr="10.32.1.0/24")
    backends = [services.create_port(owner, subnet=subnet) for _ in range(2)]
    balancer = lb.create_load_balancer(owner, subnet=subnet, name="front", ip_address="10.32.1.100")
    listener = lb.add_listener(owner, load_balancer=balancer, protocol="tcp", port=80, algorithm="source_ip")
    for port in backends:
        lb.add_member(owner, listener=listener, address=port.addresses.get().address, port=8080)

    [row] = rows(ovn, "Load_Balancer", f"name={listener.ovn_name}")
    addresses = sorted(p.addresses.get().address for p in backends)
    assert row["protocol"] == "tcp" and row["selection_fields"] == "ip_src"
    assert sorted(row["vips"]["10.32.1.100:80"].split(",")) == [f"{a}:8080" for a in addresses]
    service_ip = next(a.address for a in subnet.allocations.all() if a.purpose == "service")
    assert row["ip_port_mappings"] == {p.addresses.get().address: f"{p.uuid}:{service_ip}" for p in backends}
    [check] = rows(ovn, "Load_Balancer_Health_Check")
    assert check["vip"] == "10.32.1.100:80" and check["options"]["interval"] == "5"
    assert listener.ovn_name in ovn.nbctl("lr-lb-list", vpc.public_id)
    assert listener.ovn_name in ovn.nbctl("ls-lb-list", subnet.public_id)

    # Drift: detached by hand and its health check dropped; the reconcile puts both back.
    ovn.nbctl("ls-lb-del", subnet.public_id, listener.ovn_name)
    ovn.nbctl("clear", "Load_Balancer", listener.ovn_name, "health_check")
    report = services.reconcile_network()
    assert any(listener.public_id in line for line in report["repaired"])
    assert listener.ovn_name in ovn.nbctl("ls-lb-list", subnet.public_id)
    assert len(rows(ovn, "Load_Balancer_Health_Check")) == 1

    lb.delete_load_balancer(owner, load_balancer=balancer)
    assert rows(ovn, "Load_Balancer") == [] and rows(ovn, "Load_Balancer_Health_Check") == []


def test_ipv6_eip_gives_the_gateway_an_ipv6_leg_route_nat_and_rate_limit(ovn, region, a_owner, actor):
    owner = actor(a_owner)
    edge.create_external_network(
        Actor.system(), name="dual", region=region, cidr="198.51.100.0/24", gateway_ip="198.51.100.1",
        ranges=[{"start": "198.51.100.10", "end": "198.51.100.20"}], ipv6_cidr="2001:db8:1::/64",
        ipv6_gateway_ip="2001:db8:1::1", ipv6_ranges=[{"start": "2001:db8:1::100", "end": "2001:db8:1::1ff"}],
        gateway_chassis=["gw-a"], is_default=True)
    vpc = services.create_vpc(owner, name="v6", cidr="10.33.0.0/16", ipv6=True)
    subnet = services.create_subnet(owner, vpc=vpc, name="v6", cidr="10.33.1.0/24", ipv6=True)
    port = services.create_port(owner, subnet=subnet)
    eip = edge.allocate_eip(owner, ip_version=6, bandwidth_mbps=5)
    edge.bind_eip(owner, eip=eip, port=port)
    vpc.refresh_from_db()

    [gw] = rows(ovn, "Logical_Router_Port", f"name=lrp-gw-{vpc.public_id}")
    assert sorted(gw["networks"]) == sorted([f"{vpc.gateway_ip}/24", f"{vpc.gateway_ipv6}/64"])
    routes = ovn.nbctl("lr-route-list", vpc.public_id)
    assert "::/0" in routes and "2001:db8:1::1" in routes and "0.0.0.0/0" in routes
    private6 = port.addresses.get(address__contains=":").address
    assert nat_rows(ovn, vpc) == [("dnat_and_snat", eip.address, f"{private6}/128")]  # ovsdbapp's spelling
    assert not any(eip.public_id in line for line in services.reconcile_network()["repaired"])
    assert sorted(q["match"] for q in rows(ovn, "QoS")) == [
        f'inport == "rp-gw-{vpc.public_id}" && ip6.src == {eip.address}',
        f'outport == "rp-gw-{vpc.public_id}" && ip6.dst == {eip.address}']
