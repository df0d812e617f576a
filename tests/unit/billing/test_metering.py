"""Metering: intervals opened, changed and closed by the lifecycle services, idempotent, never
negative, never overlapping on one meter."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from apps.billing import selectors, services
from apps.billing.models import UsageInterval
from apps.billing.usage_services import change_usage, close_usage, open_usage
from apps.core.exceptions import Conflict, ValidationFailed
from apps.network import edge_services
from tests.factories.network import make_external_network
from tests.factories.storage import make_storage
from tests.unit.billing.conftest import T0

NANO, LARGE = "instance.flavor.t1-nano", "instance.flavor.s1-large"


def intervals(resource):
    return [(i.product.code, i.quantity, i.started_at, i.ended_at)
            for i in UsageInterval.objects.filter(resource_id=resource.public_id).order_by("id")]


def test_open_records_the_tenant_region_and_whole_seconds(catalog, make_instance, a_readonly, b_owner, actor):
    vm = make_instance()

    interval = open_usage(vm, product_code=NANO, quantity=1, at=T0 + timedelta(seconds=5, microseconds=700))

    assert (interval.tenant_id, interval.region, interval.resource_type, interval.resource_id, interval.meter) == (
        vm.tenant_id, "default", "instance", vm.public_id, "instance.flavor")
    assert (interval.started_at, interval.ended_at, interval.quantity) == (T0 + timedelta(seconds=5), None, 1)
    assert list(selectors.list_usage(actor(a_readonly))) == [interval]
    assert list(selectors.list_usage(actor(b_owner))) == []


def test_opening_twice_is_a_no_op_and_another_size_is_refused(catalog, make_instance):
    vm = make_instance()
    first = open_usage(vm, product_code=NANO, quantity=1, at=T0)

    again = open_usage(vm, product_code=NANO, quantity="1.000", at=T0 + timedelta(hours=1))
    with pytest.raises(Conflict) as caught:
        open_usage(vm, product_code=LARGE, quantity=1, at=T0 + timedelta(hours=1))

    assert again.pk == first.pk
    assert caught.value.code == "usage_open"
    assert intervals(vm) == [(NANO, 1, T0, None)]


def test_a_resize_closes_and_opens_at_the_same_second(catalog, make_instance):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=T0)
    resized = T0 + timedelta(minutes=90)

    change_usage(vm, product_code=LARGE, quantity=1, at=resized)
    change_usage(vm, product_code=LARGE, quantity=1, at=resized + timedelta(minutes=1))  # a re-run: no-op

    assert intervals(vm) == [(NANO, 1, T0, resized), (LARGE, 1, resized, None)]


def test_changing_what_is_not_metered_changes_nothing(catalog, make_instance):
    vm = make_instance()  # stopped: nothing open

    assert change_usage(vm, product_code=LARGE, quantity=1, at=T0) is None
    assert intervals(vm) == []


def test_close_ends_every_meter_of_the_resource_and_twice_is_a_no_op(catalog, operator, tenant_a, a_owner, actor):
    make_external_network()
    services.grant_credit(operator, tenant=tenant_a, amount="10", currency="USD", reason="test")
    eip = edge_services.allocate_eip(actor(a_owner), name="web")  # opens both meters: the opens below are re-runs
    open_usage(eip, product_code="eip.hour", quantity=1, at=T0)
    open_usage(eip, product_code="eip.bandwidth_mbps", quantity=100, at=T0)
    change_usage(eip, product_code="eip.bandwidth_mbps", quantity=200, at=T0 + timedelta(hours=2))
    end = T0 + timedelta(hours=3)

    assert len(close_usage(eip, at=end)) == 2
    assert close_usage(eip, at=end + timedelta(hours=1)) == []
    assert intervals(eip) == [("eip.hour", 1, T0, end), ("eip.bandwidth_mbps", 100, T0, T0 + timedelta(hours=2)),
                              ("eip.bandwidth_mbps", 200, T0 + timedelta(hours=2), end)]
    assert set(UsageInterval.objects.values_list("region", "resource_type")) == {("default", "elasticip")}


def test_late_events_never_make_negative_or_overlapping_intervals(catalog, make_instance):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=T0 + timedelta(hours=1))

    close_usage(vm, at=T0)  # older than the start: closes at the start
    open_usage(vm, product_code=NANO, quantity=1, at=T0 + timedelta(minutes=30))  # older than the last close

    assert intervals(vm) == [(NANO, 1, T0 + timedelta(hours=1), T0 + timedelta(hours=1)),
                             (NANO, 1, T0 + timedelta(hours=1), None)]


def test_the_database_refuses_a_second_open_interval_on_a_meter(catalog, make_instance):
    vm = make_instance()
    interval = open_usage(vm, product_code=NANO, quantity=1, at=T0)

    with pytest.raises(IntegrityError), transaction.atomic():
        UsageInterval.objects.create(tenant_id=vm.tenant_id, region="default", resource_type="instance",
                                     resource_id=vm.public_id, product=catalog[LARGE], meter=interval.meter,
                                     quantity=1, started_at=T0)


def test_unknown_or_retired_products_and_bad_quantities_are_refused(catalog, make_instance, operator):
    from apps.billing import services

    vm = make_instance()
    services.update_product(operator, product=catalog[LARGE], name="old", description="", is_active=False)

    for code, quantity, field in [("instance.flavor.nope", 1, "product"), (LARGE, 1, "product"),
                                  (NANO, 0, "quantity"), (NANO, "0.0001", "quantity")]:
        with pytest.raises(ValidationFailed) as caught:
            open_usage(vm, product_code=code, quantity=quantity, at=T0)
        assert list(caught.value.fields) == [field]
    with pytest.raises(ValueError):
        open_usage(vm, product_code=NANO, quantity=1, at=T0.replace(tzinfo=None))
    assert intervals(vm) == []


def test_the_region_comes_from_the_resource(catalog, tenant_a):
    from apps.storage.models import Volume

    storage = make_storage()
    volume = Volume.objects.create(tenant=tenant_a, name="data", size_gb=20, volume_type=storage["type"],
                                   pool=storage["pool"])

    interval = open_usage(volume, product_code="volume.gb.standard", quantity=volume.size_gb, at=T0)

    assert (interval.region, interval.resource_type, interval.quantity) == ("default", "volume", Decimal(20))
