"""GPU flavors: the scheduler places them only where a free device of the type is, hands each
device to one instance at a time, and the domain gets it passed through."""

import pytest

from apps.compute import services, tasks
from apps.compute.models import Host, Instance
from apps.core.actor import Actor
from apps.core.exceptions import Conflict
from tests.factories.compute import make_inventory

T4 = {"vendor": "NVIDIA", "product": "T4", "device_class": "0x030200", "vendor_id": "10de", "product_id": "1eb8"}


@pytest.fixture
def gpu_cloud(db):
    inventory = make_inventory("fake:///hv", hosts=2)
    # Only hv-0 has GPUs: two T4s and an AMD card; GPU requests must land there, plain ones anywhere.
    Host.objects.filter(name="hv-0").update(pci_devices=[
        {**T4, "address": "0000:65:00.0"}, {**T4, "address": "0000:b3:00.0"},
        {**T4, "address": "0000:17:00.0", "vendor_id": "1002", "product_id": "74a1"}])
    services.create_flavor(Actor.system(), name="g1.t4", vcpus=2, ram_mb=512, gpu_count=1, gpu_type="10de:1eb8")
    services.create_flavor(Actor.system(), name="g2.t4", vcpus=2, ram_mb=512, gpu_count=2, gpu_type="10de:1eb8")
    return inventory


def create(run_tasks, owner, inventory, flavor, name):
    [instance] = run_tasks(services.create_instances, owner, name=name, flavor=flavor,
                           image=inventory["image"].public_id)
    return Instance.objects.get(pk=instance.pk)


def test_gpus_are_placed_claimed_and_passed_through(a_owner, actor, gpu_cloud, run_tasks):
    owner = actor(a_owner)
    first = create(run_tasks, owner, gpu_cloud, "g1.t4", "train-1")
    second = create(run_tasks, owner, gpu_cloud, "g1.t4", "train-2")
    assert (first.host.name, second.host.name) == ("hv-0", "hv-0")
    assert sorted(first.pci_addresses + second.pci_addresses) == ["0000:65:00.0", "0000:b3:00.0"]
    assert tasks.domain_spec(first).pci_devices == tuple(first.pci_addresses)

    with pytest.raises(Conflict, match=r"1 × GPU 10de:1eb8") as exc:  # the AMD card is another type
        create(run_tasks, owner, gpu_cloud, "g1.t4", "train-3")
    assert exc.value.code == "no_valid_host"
    assert create(run_tasks, owner, gpu_cloud, "t1.nano", "web").host.name == "hv-1"  # plain ones go anywhere

    run_tasks(services.delete_instance, owner, instance=first)
    third = create(run_tasks, owner, gpu_cloud, "g1.t4", "train-3")
    assert third.pci_addresses == first.pci_addresses  # freed with the instance


def test_gpu_instances_keep_their_gpus(a_owner, actor, operator, gpu_cloud, run_tasks):
    owner = actor(a_owner)
    instance = create(run_tasks, owner, gpu_cloud, "g1.t4", "train")
    run_tasks(services.stop_instance, owner, instance=instance, force=True)
    for flavor in ("t1.nano", "g2.t4"):
        with pytest.raises(Conflict, match="a resize keeps them"):
            services.resize_instance(owner, instance=instance, flavor=flavor)
    with pytest.raises(Conflict, match="do not move with it"):
        services.migrate_instance(operator, instance=instance, host=Host.objects.get(name="hv-1"))
