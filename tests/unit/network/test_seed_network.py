"""`manage.py seed_network` on the fake control plane: the demo tenant's default VPC and subnet
are made once, and a control plane that does not answer is a warning, not a failure."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.network import services
from apps.network.drivers.base import ROUTER, SWITCH
from apps.network.models import VPC, Subnet
from apps.tenants.models import Membership, Tenant
from tests.factories.compute import make_inventory
from tests.factories.tenants import actor_for


@pytest.fixture
def demo(db, settings, tmp_path):
    """The region (seed_compute's) and the demo tenant (seed_demo's; its logins file in tmp_path)."""
    settings.VAR_DIR = tmp_path
    make_inventory()
    call_command("seed_demo", stdout=StringIO())
    return Tenant.objects.get(name="Demo")


def seed() -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("seed_network", stdout=out, stderr=err)  # returns: exit status 0
    return out.getvalue(), err.getvalue()


def test_makes_the_default_vpc_and_subnet_once(demo, fake_network):
    out, err = seed()
    vpc = VPC.objects.get()
    subnet = Subnet.objects.get()
    assert (vpc.tenant, vpc.name, vpc.cidr, vpc.created_by.username) == (demo, "default", "10.0.0.0/16", "demo")
    assert (subnet.vpc, subnet.name, subnet.cidr, subnet.gateway_ip) == (vpc, "default", "10.0.1.0/24", "10.0.1.1")
    assert vpc.public_id in out and subnet.public_id in out and not err
    assert set(fake_network.state[ROUTER]) == {vpc.public_id} and set(fake_network.state[SWITCH]) == {subnet.public_id}

    assert seed() == ("", "")
    assert (VPC.objects.count(), Subnet.objects.count()) == (1, 1)
    assert (len(fake_network.state[ROUTER]), len(fake_network.state[SWITCH])) == (1, 1)


def test_a_vpc_named_default_is_left_alone(demo, fake_network):
    seed()
    owner = actor_for(Membership.objects.get(tenant=demo, user__username="demo"))
    services.delete_subnet(owner, subnet=Subnet.objects.get())  # the owner's choice: no subnet in it
    assert seed() == ("", "")
    assert (VPC.objects.count(), Subnet.objects.count()) == (1, 0)


def test_an_unavailable_control_plane_is_a_warning_and_the_next_run_makes_it(demo, fake_network):
    fake_network.fail_on.add("ensure_router")
    out, err = seed()
    assert "warning: no demo network" in err and "seed_network" in err and not out
    assert not VPC.objects.exists()

    fake_network.fail_on.clear()
    seed()
    assert (VPC.objects.count(), Subnet.objects.count()) == (1, 1)


def test_a_subnet_that_fails_leaves_no_vpc_behind(demo, fake_network):
    fake_network.fail_on.add("ensure_switch")
    out, err = seed()
    assert "warning: no demo network" in err
    assert not VPC.objects.exists() and fake_network.state[ROUTER] == {}

    fake_network.fail_on.clear()
    seed()
    assert (VPC.objects.count(), Subnet.objects.count()) == (1, 1)


def test_without_the_demo_tenant_nothing_is_made(db, fake_network):
    out, err = seed()
    assert "seed_demo first" in err
    assert not VPC.objects.exists()
