"""The lifecycle services of compute, storage and network meter what they make (fake drivers,
tasks inline, the clock pinned): which intervals open and close when, and the orders."""

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.billing import services as billing
from apps.billing.models import Order, Product, Subscription, UsageInterval
from apps.compute import services as compute
from apps.compute.models import Image, Instance
from apps.network import edge_services as edge
from apps.network import lb_services
from apps.network import services as network
from apps.storage import services as storage
from tests.factories.network import make_external_network
from tests.factories.storage import make_storage
from tests.unit.billing.conftest import T0

HOUR = timedelta(hours=1)

# (code, unit, meter, hourly USD)
PRICED = [
    ("instance.flavor.t1.nano", Product.HOUR, "instance.flavor", "0.036"),
    ("instance.flavor.t1.small", Product.HOUR, "instance.flavor", "0.072"),
    ("volume.gb.standard", Product.GB_HOUR, "volume.gb", "0.0001"),
    ("snapshot.gb", Product.GB_HOUR, "", "0.00005"),
    ("eip.hour", Product.HOUR, "", "0.005"),
    ("eip.bandwidth_mbps", Product.MBPS_HOUR, "", "0.01"),
    ("load_balancer", Product.HOUR, "", "0.02"),
    ("nat_gateway", Product.HOUR, "", "0.03"),
]


@pytest.fixture
def world(operator, clock, tenant_a):
    """Compute, storage and the external network of the default region, t1.small next to t1.nano."""
    inventory = make_storage()
    make_external_network()
    compute.create_flavor(operator, name="t1.small", vcpus=2, ram_mb=256)
    return inventory


@pytest.fixture
def priced(world, operator, tenant_a):
    """Every product of PRICED priced in USD in `default` from T0; tenant A has 100 USD of credit."""
    for code, unit, meter, hourly in PRICED:
        product = billing.create_product(operator, code=code, name=code, unit=unit, meter=meter)
        billing.add_price(operator, product=product, region="default", currency="USD", hourly=hourly)
    billing.grant_credit(operator, tenant=tenant_a, amount="100", currency="USD", reason="test")


@pytest.fixture
def owner(a_owner, actor):
    return actor(a_owner)


def intervals(resource_id: str) -> list[tuple]:
    """(product, quantity, started, ended) of a resource, oldest first, times as offsets from T0."""
    rows = UsageInterval.objects.filter(resource_id=resource_id).order_by("started_at", "id")
    return [(row.product.code, row.quantity, row.started_at - T0, row.ended_at and row.ended_at - T0)
            for row in rows]


def orders(resource_id: str) -> list[tuple]:
    return [(order.kind, order.billing_mode, order.status, order.amount,
             [(item.product.code, item.quantity, item.unit_price) for item in order.items.all()])
            for order in Order.objects.filter(resource_id=resource_id).order_by("created_at", "id")]


def launch(run_tasks, owner, name="vm") -> Instance:
    [instance] = run_tasks(compute.create_instances, owner, name=name, flavor="t1.nano",
                           image=Image.objects.get(name="tiny").public_id)
    instance.refresh_from_db()
    return instance


def test_an_instance_is_billed_while_it_runs_at_its_flavor(priced, owner, run_tasks, clock):
    vm = launch(run_tasks, owner)
    assert vm.status == "running"
    assert orders(vm.public_id) == [("create", "on_demand", "paid", 0,
                                     [("instance.flavor.t1.nano", 1, Decimal("0.036"))])]

    clock.now = T0 + HOUR
    run_tasks(compute.stop_instance, owner, instance=vm)
    clock.now = T0 + 2 * HOUR
    run_tasks(compute.start_instance, owner, instance=vm)
    clock.now = T0 + 3 * HOUR
    run_tasks(compute.reboot_instance, owner, instance=vm)  # still running: nothing changes
    clock.now = T0 + 4 * HOUR
    run_tasks(compute.resize_instance, owner, instance=vm, flavor="t1.small")
    clock.now = T0 + 5 * HOUR
    run_tasks(compute.delete_instance, owner, instance=vm)

    assert intervals(vm.public_id) == [
        ("instance.flavor.t1.nano", 1, 0 * HOUR, HOUR),
        ("instance.flavor.t1.nano", 1, 2 * HOUR, 4 * HOUR),
        ("instance.flavor.t1.small", 1, 4 * HOUR, 5 * HOUR),
    ]
    assert [kind for kind, *_ in orders(vm.public_id)] == ["create", "upgrade"]
    assert orders(vm.public_id)[1][4] == [("instance.flavor.t1.small", 1, Decimal("0.072"))]


def test_a_stopped_instance_resized_is_metered_at_the_new_flavor_when_it_starts(priced, owner, run_tasks, clock):
    vm = launch(run_tasks, owner)
    clock.now = T0 + HOUR
    run_tasks(compute.stop_instance, owner, instance=vm, force=True)
    clock.now = T0 + 2 * HOUR
    run_tasks(compute.resize_instance, owner, instance=vm, flavor="t1.small")
    clock.now = T0 + 3 * HOUR
    run_tasks(compute.resize_instance, owner, instance=vm, flavor="t1.nano")
    clock.now = T0 + 4 * HOUR
    run_tasks(compute.start_instance, owner, instance=vm)
    assert intervals(vm.public_id) == [("instance.flavor.t1.nano", 1, 0 * HOUR, HOUR),
                                       ("instance.flavor.t1.nano", 1, 4 * HOUR, None)]
    assert [kind for kind, *_ in orders(vm.public_id)] == ["create", "upgrade", "downgrade"]


def test_the_hypervisor_stopping_crashing_or_starting_an_instance_moves_its_metering(priced, owner, run_tasks,
                                                                                     clock):
    from apps.compute.drivers.base import CRASHED, RUNNING, SHUTOFF, DomainEvent

    vm = launch(run_tasks, owner)
    clock.now = T0 + HOUR
    compute.apply_domain_event(DomainEvent(vm.public_id, SHUTOFF, "shutdown"))
    clock.now = T0 + 2 * HOUR
    compute.apply_domain_event(DomainEvent(vm.public_id, RUNNING, "booted"))
    clock.now = T0 + 3 * HOUR
    compute.apply_domain_event(DomainEvent(vm.public_id, CRASHED, "panicked"))
    assert Instance.objects.get(pk=vm.pk).status == "error"
    assert intervals(vm.public_id) == [("instance.flavor.t1.nano", 1, 0 * HOUR, HOUR),
                                       ("instance.flavor.t1.nano", 1, 2 * HOUR, 3 * HOUR)]


def test_the_recycle_bin_ends_an_instances_metering_and_a_restore_starts_it_again(priced, owner, run_tasks, clock):
    from apps.core.models import PlatformSettings

    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": 24})
    vm = launch(run_tasks, owner)
    clock.now = T0 + HOUR
    run_tasks(compute.delete_instance, owner, instance=vm)
    assert Instance.objects.get(pk=vm.pk).status == "recycled"
    clock.now = T0 + 3 * HOUR
    run_tasks(compute.restore_instance, owner, instance=vm)
    assert intervals(vm.public_id) == [("instance.flavor.t1.nano", 1, 0 * HOUR, HOUR),
                                       ("instance.flavor.t1.nano", 1, 3 * HOUR, None)]


def test_a_failed_build_is_never_billed(priced, owner, run_tasks):
    from apps.compute.drivers.base import DriverError
    from apps.compute.drivers.fake import FakeDriver

    FakeDriver("fake:///hv1").fail_next("ensure_domain", DriverError("no"))
    vm = launch(run_tasks, owner)
    assert vm.status == "error"
    assert intervals(vm.public_id) == []


def test_an_instance_covered_by_a_subscription_meters_nothing_on_demand(priced, owner, run_tasks, clock, tenant_a):
    vm = launch(run_tasks, owner)
    clock.now = T0 + HOUR
    run_tasks(compute.stop_instance, owner, instance=vm, force=True)
    Subscription.objects.create(
        tenant=tenant_a, resource_type="instance", resource_id=vm.public_id,
        product=Product.objects.get(code="instance.flavor.t1.nano"), region="default", term="monthly",
        currency="USD", price=Decimal("20"), starts_at=T0 + HOUR, expires_at=T0 + 31 * 24 * HOUR)
    clock.now = T0 + 2 * HOUR
    run_tasks(compute.start_instance, owner, instance=vm)
    assert intervals(vm.public_id) == [("instance.flavor.t1.nano", 1, 0 * HOUR, HOUR)]


def test_without_products_nothing_is_billed_or_ordered(world, owner, run_tasks, clock):
    vm = launch(run_tasks, owner)
    volume = run_tasks(storage.create_volume, owner, name="data", size_gb=10)
    volume.refresh_from_db()
    eip = edge.allocate_eip(owner, bandwidth_mbps=10)
    clock.now = T0 + HOUR
    run_tasks(compute.stop_instance, owner, instance=vm)
    assert (vm.status, volume.status, eip.status) == ("running", "available", "available")
    assert UsageInterval.objects.count() == 0 and Order.objects.count() == 0


def test_an_inactive_product_meters_nothing(priced, operator, owner, run_tasks):
    product = Product.objects.get(code="instance.flavor.t1.nano")
    billing.update_product(operator, product=product, name=product.name, description="", is_active=False)
    vm = launch(run_tasks, owner)
    assert vm.status == "running" and intervals(vm.public_id) == [] and orders(vm.public_id) == []


def test_a_volume_is_billed_from_creation_to_deletion_at_its_size(priced, owner, run_tasks, clock):
    volume = run_tasks(storage.create_volume, owner, name="data", size_gb=10)
    assert orders(volume.public_id) == [("create", "on_demand", "paid", 0,
                                         [("volume.gb.standard", 10, Decimal("0.0001"))])]
    clock.now = T0 + HOUR
    run_tasks(storage.resize_volume, owner, volume=volume, size_gb=20)
    clock.now = T0 + 2 * HOUR
    run_tasks(storage.delete_volume, owner, volume=volume)
    assert intervals(volume.public_id) == [("volume.gb.standard", 10, 0 * HOUR, HOUR),
                                           ("volume.gb.standard", 20, HOUR, 2 * HOUR)]


def test_a_volume_in_the_recycle_bin_is_not_billed_until_restored(priced, owner, run_tasks, clock):
    from apps.core.models import PlatformSettings

    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": 24})
    volume = run_tasks(storage.create_volume, owner, name="data", size_gb=5)
    clock.now = T0 + HOUR
    storage.delete_volume(owner, volume=volume)
    clock.now = T0 + 4 * HOUR
    storage.restore_volume(owner, volume=volume)
    assert intervals(volume.public_id) == [("volume.gb.standard", 5, 0 * HOUR, HOUR),
                                           ("volume.gb.standard", 5, 4 * HOUR, None)]


def test_root_disks_are_part_of_the_flavor(priced, owner, run_tasks, operator):
    storage_world = make_storage()
    compute.create_flavor(operator, name="d1", vcpus=1, ram_mb=128, disk_gb=2)
    [vm] = run_tasks(compute.create_instances, owner, name="disk", flavor="d1",
                     image=storage_world["disk_image"].public_id)
    root = storage.root_volume(vm)
    assert root is not None and intervals(root.public_id) == []


def test_a_snapshot_is_billed_at_its_size_until_deleted(priced, owner, run_tasks, clock):
    volume = run_tasks(storage.create_volume, owner, name="data", size_gb=8)
    clock.now = T0 + HOUR
    snapshot = run_tasks(storage.create_snapshot, owner, volume=volume, name="s1")
    clock.now = T0 + 3 * HOUR
    run_tasks(storage.delete_snapshot, owner, snapshot=snapshot)
    assert intervals(snapshot.public_id) == [("snapshot.gb", 8, HOUR, 3 * HOUR)]
    assert [kind for kind, *_ in orders(snapshot.public_id)] == ["create"]


def test_an_eip_is_billed_for_the_address_and_its_bandwidth(priced, owner, clock):
    eip = edge.allocate_eip(owner, name="front", bandwidth_mbps=20)
    assert orders(eip.public_id) == [("create", "on_demand", "paid", 0,
                                      [("eip.hour", 1, Decimal("0.005")),
                                       ("eip.bandwidth_mbps", 20, Decimal("0.01"))])]
    clock.now = T0 + HOUR
    edge.update_eip(owner, eip=eip, bandwidth_mbps=50)
    clock.now = T0 + 2 * HOUR
    edge.update_eip(owner, eip=eip, name="renamed")  # not the bandwidth: nothing changes
    clock.now = T0 + 3 * HOUR
    edge.release_eip(owner, eip=eip)
    assert intervals(eip.public_id) == [("eip.hour", 1, 0 * HOUR, 3 * HOUR),
                                        ("eip.bandwidth_mbps", 20, 0 * HOUR, HOUR),
                                        ("eip.bandwidth_mbps", 50, HOUR, 3 * HOUR)]


def test_load_balancers_and_nat_gateways_are_billed_from_creation_to_deletion(priced, owner, clock):
    vpc = network.create_vpc(owner, name="prod", cidr="10.8.0.0/16")
    subnet = network.create_subnet(owner, vpc=vpc, name="web", cidr="10.8.1.0/24")
    lb = lb_services.create_load_balancer(owner, subnet=subnet, name="front")
    nat = edge.create_nat_gateway(owner, vpc=vpc, eip=edge.allocate_eip(owner, bandwidth_mbps=1), name="out")
    clock.now = T0 + 2 * HOUR
    lb_services.delete_load_balancer(owner, load_balancer=lb)
    edge.delete_nat_gateway(owner, nat=nat)
    assert intervals(lb.public_id) == [("load_balancer", 1, 0 * HOUR, 2 * HOUR)]
    assert intervals(nat.public_id) == [("nat_gateway", 1, 0 * HOUR, 2 * HOUR)]
    assert [kind for kind, *_ in orders(lb.public_id) + orders(nat.public_id)] == ["create", "create"]
