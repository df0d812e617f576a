"""Fifty concurrent creates on two small hosts: claims never push a host past its overcommit
ratios, and every refused request says why and leaves nothing behind."""

import pytest

from apps.compute import services
from apps.compute.models import Host, Instance
from apps.tenants.services import set_quota
from tests.concurrency import race
from tests.factories.compute import make_inventory
from tests.factories.tenants import actor_for

ATTEMPTS = 50


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_overcommit_a_host(a_owner, operator):
    inventory = make_inventory(hosts=2)
    # Each fake host: 8 CPUs x 4.0 = 32 vCPUs; memory is the tighter limit here.
    Host.objects.update(ram_allocation_ratio=1, reserved_memory_mb=16384 - 1280)  # room for 10 x 128 MiB
    for resource in ("instances", "vcpus", "ram_mb"):
        set_quota(operator, tenant=a_owner.tenant, resource=resource, limit=10**6)
    owner = actor_for(a_owner)
    outcomes = race(ATTEMPTS, lambda n: services.create_instances(
        owner, name=f"race-{n}", flavor="t1.nano", image=inventory["image"].public_id))

    assert sorted(set(outcomes)) == ["no_valid_host", "ok"], outcomes
    assert outcomes.count("ok") == 20
    for host in Host.objects.all():
        assert host.memory_mb_used <= host.memory_mb_capacity
        assert (host.instances_count, host.memory_mb_used) == (10, 1280)
        assert Instance.objects.filter(host=host).count() == 10
