"""HA VIPs: an address of a subnet that chosen ports may take over (fake SDN)."""

import pytest

from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.network import services
from apps.network.drivers.base import HAVIP, PORT
from apps.network.models import IPAllocation
from tests.factories.compute import make_inventory


@pytest.fixture
def owner(a_owner, actor, db):
    make_inventory()
    return actor(a_owner)


@pytest.fixture
def subnet(owner):
    vpc = services.create_vpc(owner, name="ha", cidr="10.5.0.0/16")
    return services.create_subnet(owner, vpc=vpc, name="ha", cidr="10.5.1.0/24")


def test_a_vip_moves_between_its_ports_which_may_send_from_it(owner, subnet, fake_network, api, a_owner):
    first, second, third = (services.create_port(owner, subnet=subnet) for _ in range(3))
    vip = services.create_havip(owner, subnet=subnet, name="db", ip_address="10.5.1.100",
                                ports=[first.public_id, second.public_id])

    spec = fake_network.state[HAVIP][vip.public_id]
    assert (spec.address, spec.switch, spec.parents) == ("10.5.1.100", subnet.public_id,
                                                         tuple(sorted([first.switch_port, second.switch_port])))
    pairs = {name: {p.ip for p in fake_network.state[PORT][name].allowed_pairs} for name in fake_network.state[PORT]}
    assert pairs[first.switch_port] == pairs[second.switch_port] == {"10.5.1.100"}
    assert pairs[third.switch_port] == set()

    # The address is reserved: no port gets it.
    with pytest.raises(Conflict) as caught:
        services.create_port(owner, subnet=subnet, ip_address="10.5.1.100")
    assert vip.public_id in caught.value.message

    response = api(a_owner).patch(f"/api/v1/havips/{vip.public_id}", {"ports": [third.public_id]}, format="json")
    assert response.status_code == 200 and response.json()["ports"] == [third.public_id]
    pairs = {name: {p.ip for p in fake_network.state[PORT][name].allowed_pairs} for name in fake_network.state[PORT]}
    assert pairs[first.switch_port] == set() and pairs[third.switch_port] == {"10.5.1.100"}

    with pytest.raises(Conflict):  # the subnet holds the VIP
        services.delete_subnet(owner, subnet=subnet)
    services.delete_port(owner, port=third)
    assert fake_network.state[HAVIP][vip.public_id].parents == ()
    services.delete_havip(owner, havip=vip)
    assert vip.public_id not in fake_network.state[HAVIP]
    assert not IPAllocation.objects.filter(address="10.5.1.100").exists()


def test_ports_of_another_subnet_or_tenant_are_refused(owner, subnet, b_owner, actor):
    other = services.create_subnet(owner, vpc=subnet.vpc, name="other", cidr="10.5.2.0/24")
    with pytest.raises(ValidationFailed) as caught:
        services.create_havip(owner, subnet=subnet, name="x",
                              ports=[services.create_port(owner, subnet=other).public_id])
    assert "ports" in caught.value.fields
    b = actor(b_owner)
    b_vpc = services.create_vpc(b, name="b", cidr="10.6.0.0/16")
    b_port = services.create_port(b, subnet=services.create_subnet(b, vpc=b_vpc, name="b", cidr="10.6.1.0/24"))
    with pytest.raises(NotFound):
        services.create_havip(owner, subnet=subnet, name="x", ports=[b_port.public_id])
