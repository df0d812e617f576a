"""Settlement: usage charged into the wallets, cumulative per resource, product and month, so
the charges add up to the rounded exact cost, re-runs charge nothing and late closes are given
back."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.billing import services
from apps.billing.models import Transaction, UsageInterval, Wallet
from apps.billing.tasks import settle_usage
from apps.billing.usage_services import change_usage, close_usage, open_usage, settle_tenant_usage
from apps.core.exceptions import ValidationFailed
from apps.storage.models import Volume
from tests.factories.storage import make_storage
from tests.unit.billing.conftest import T0

NANO, LARGE = "instance.flavor.t1-nano", "instance.flavor.s1-large"
DAY2 = datetime(2026, 3, 2, tzinfo=UTC)


def at(hours: float, day: datetime = DAY2) -> datetime:
    return day + timedelta(seconds=round(hours * 3600))


def entries(tenant):
    return [(t.kind, t.amount, t.idempotency_key) for t in Transaction.objects.filter(tenant=tenant).order_by("id")]


def balance(tenant) -> Decimal:
    return Wallet.objects.get(tenant=tenant).balance


def test_charges_telescope_to_the_rounded_exact_cost(catalog, make_instance, tenant_a):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=at(10))
    key = f"usage:{vm.public_id}:{NANO}:2026-03"

    settle_tenant_usage(tenant_a.pk, up_to=at(11))    # 1 h × 0.036 = 0.036 → 0.04
    settle_tenant_usage(tenant_a.pk, up_to=at(12))    # 0.072 → 0.07: 0.03 more
    close_usage(vm, at=at(12.5))
    settle_tenant_usage(tenant_a.pk, up_to=at(13))    # 2.5 h: 0.09 → 0.02 more

    assert entries(tenant_a) == [("charge", Decimal("-0.04"), f"{key}:1"), ("charge", Decimal("-0.03"), f"{key}:2"),
                                 ("charge", Decimal("-0.02"), f"{key}:3")]
    assert balance(tenant_a) == Decimal("-0.09")  # consumed usage is charged even past the credit limit
    charge = Transaction.objects.filter(tenant=tenant_a).first()
    assert (charge.resource_type, charge.resource_id, charge.product.code, charge.period, charge.usage_until,
            charge.actor_kind, charge.reason) == (
        "instance", vm.public_id, NANO, DAY2.date().replace(day=1), at(13), "system",
        f"{NANO} of {vm.public_id}, March 2026")
    interval = UsageInterval.objects.get(resource_id=vm.public_id)
    assert (interval.settled, interval.settled_until) == (True, at(12.5))


def test_a_rerun_or_a_late_worker_charges_nothing(catalog, make_instance, tenant_a):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=at(10))
    settle_tenant_usage(tenant_a.pk, up_to=at(12))

    assert settle_tenant_usage(tenant_a.pk, up_to=at(12)) == []
    assert settle_tenant_usage(tenant_a.pk, up_to=at(11)) == []
    assert len(entries(tenant_a)) == 1


def test_a_price_change_applies_from_its_second_and_never_to_the_past(catalog, make_instance, tenant_a, operator,
                                                                       clock):
    services.add_price(operator, product=catalog[NANO], region="default", currency="USD", hourly="0.072",
                       effective_from=T0 + timedelta(days=10))
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=T0 + timedelta(days=9))
    close_usage(vm, at=T0 + timedelta(days=11))

    settle_tenant_usage(tenant_a.pk, up_to=T0 + timedelta(days=12))

    assert entries(tenant_a)[0][1] == Decimal("-2.59")  # 24 h × 0.036 + 24 h × 0.072 = 2.592
    clock.now = T0 + timedelta(days=20)
    with pytest.raises(ValidationFailed) as caught:
        services.add_price(operator, product=catalog[NANO], region="default", currency="USD", hourly="1",
                           effective_from=T0 + timedelta(days=10, seconds=1))
    assert caught.value.fields == {"effective_from": ["Now or later."]}


def test_usage_across_a_month_boundary_is_charged_to_each_month(catalog, make_instance, tenant_a):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=datetime(2026, 3, 31, 22, tzinfo=UTC))
    close_usage(vm, at=datetime(2026, 4, 1, 2, tzinfo=UTC))

    settle_usage(up_to=datetime(2026, 4, 1, 3, tzinfo=UTC))

    prefix = f"usage:{vm.public_id}:{NANO}"
    assert entries(tenant_a) == [("charge", Decimal("-0.07"), f"{prefix}:2026-03:1"),
                                 ("charge", Decimal("-0.07"), f"{prefix}:2026-04:1")]


def test_a_late_close_gives_the_difference_back(catalog, make_instance, tenant_a):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=at(10))
    settle_tenant_usage(tenant_a.pk, up_to=at(12))      # 2 h charged: 0.07
    close_usage(vm, at=at(11))                           # the stop happened at 11:00

    settle_tenant_usage(tenant_a.pk, up_to=at(13))

    key = f"usage:{vm.public_id}:{NANO}:2026-03"
    assert entries(tenant_a) == [("charge", Decimal("-0.07"), f"{key}:1"), ("refund", Decimal("0.03"), f"{key}:2")]
    assert Transaction.objects.get(kind="refund").reason.startswith("usage correction: ")
    assert balance(tenant_a) == Decimal("-0.04")


def test_a_late_close_into_a_settled_month_corrects_that_month(catalog, make_instance, tenant_a):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=datetime(2026, 3, 31, 23, tzinfo=UTC))
    settle_tenant_usage(tenant_a.pk, up_to=datetime(2026, 4, 1, 1, tzinfo=UTC))
    close_usage(vm, at=datetime(2026, 3, 31, 23, 30, tzinfo=UTC))

    settle_tenant_usage(tenant_a.pk, up_to=datetime(2026, 4, 1, 2, tzinfo=UTC))

    prefix = f"usage:{vm.public_id}:{NANO}"
    assert entries(tenant_a) == [("charge", Decimal("-0.04"), f"{prefix}:2026-03:1"),
                                 ("charge", Decimal("-0.04"), f"{prefix}:2026-04:1"),
                                 ("refund", Decimal("0.02"), f"{prefix}:2026-03:2"),   # 0.018 → 0.02 due
                                 ("refund", Decimal("0.04"), f"{prefix}:2026-04:2")]
    assert balance(tenant_a) == Decimal("-0.02")


def test_a_resize_charges_each_size_for_its_time(catalog, make_instance, tenant_a):
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=at(0))
    change_usage(vm, product_code=LARGE, quantity=1, at=at(10))
    close_usage(vm, at=at(20))

    settle_usage(up_to=at(24))

    assert sorted(e[1] for e in entries(tenant_a)) == [Decimal("-1.44"), Decimal("-0.36")]


def test_tenant_prices_discount_or_fix_the_rate(catalog, make_instance, tenant_a, tenant_b, operator):
    services.set_tenant_price(operator, tenant=tenant_a, product=catalog[NANO], discount_percent="50",
                              reason="partner")
    services.set_tenant_price(operator, tenant=tenant_b, product=catalog[NANO], fixed_hourly="0.5")
    for tenant in (tenant_a, tenant_b):
        vm = make_instance(tenant=tenant)
        open_usage(vm, product_code=NANO, quantity=1, at=at(0))
        close_usage(vm, at=at(10))

    settle_usage(up_to=at(24))

    assert [e[1] for e in entries(tenant_a)] == [Decimal("-0.18")]  # 10 h × 0.018
    assert [e[1] for e in entries(tenant_b)] == [Decimal("-5.00")]  # 10 h × 0.5


def test_quantities_multiply_the_price(catalog, tenant_a):
    storage = make_storage()
    disk = Volume.objects.create(tenant=tenant_a, name="data", size_gb=250, volume_type=storage["type"],
                                 pool=storage["pool"])
    open_usage(disk, product_code="volume.gb.standard", quantity=disk.size_gb, at=at(0))
    close_usage(disk, at=at(0, DAY2 + timedelta(days=10)))

    settle_usage(up_to=at(0, DAY2 + timedelta(days=11)))

    assert [e[1] for e in entries(tenant_a)] == [Decimal("-6.00")]  # 250 GB × 240 h × 0.0001


def test_usage_without_a_price_in_the_wallet_currency_costs_nothing(catalog, make_instance, tenant_a, operator):
    services.open_wallet(operator, tenant=tenant_a, currency="JPY")
    vm = make_instance()
    open_usage(vm, product_code=NANO, quantity=1, at=at(0))

    settle_usage(up_to=at(5))

    assert entries(tenant_a) == []
    assert UsageInterval.objects.get().settled_until == at(5)


def test_the_task_settles_every_tenant_and_opens_wallets_on_first_use(catalog, make_instance, tenant_a, tenant_b):
    for tenant in (tenant_a, tenant_b):
        open_usage(make_instance(tenant=tenant), product_code=NANO, quantity=1, at=at(0))

    assert settle_usage(up_to=at(1)) == {"tenants": 2, "entries": 2}
    assert settle_usage(up_to=at(1)) == {"tenants": 2, "entries": 0}
    assert settle_usage(up_to=at(2)) == {"tenants": 2, "entries": 2}
    assert Wallet.objects.filter(currency="USD").count() == 2
    assert [e[1] for e in entries(tenant_b)] == [Decimal("-0.04"), Decimal("-0.03")]


def test_usage_recorded_late_is_charged_by_the_next_run(catalog, make_instance, tenant_a):
    vm, late = make_instance("vm"), make_instance("late")
    open_usage(vm, product_code=NANO, quantity=1, at=at(0))
    settle_tenant_usage(tenant_a.pk, up_to=at(10))
    open_usage(late, product_code=NANO, quantity=1, at=at(5))  # its start event arrived after the run

    settle_tenant_usage(tenant_a.pk, up_to=at(11))

    first, *second_run = [(e[1], e[2].split(":")[1]) for e in entries(tenant_a)]
    assert first == (Decimal("-0.36"), vm.public_id)
    assert sorted(second_run) == sorted([(Decimal("-0.04"), vm.public_id), (Decimal("-0.22"), late.public_id)])
