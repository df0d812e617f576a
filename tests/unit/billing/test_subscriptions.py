"""Subscriptions: prepaid periods charged through orders (402 writes nothing), one per resource,
calendar months, renewals from the expiry, auto-renew, plan changes prorated to the cent, and
other tenants' subscriptions out of reach."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.billing import policy, services, subscription_services, usage_services
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Notice, Order, Product, Subscription, UsageInterval, Wallet
from apps.billing.subscription_services import add_months
from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.models import PlatformSettings
from tests.factories.compute import make_inventory

pytestmark = pytest.mark.django_db

NANO, LARGE, GB = "instance.flavor.t1.nano", "instance.flavor.s1.large", "volume.gb.standard"


PREPAID = [  # (code, unit, meter, hourly, monthly, yearly) in USD in the region `default`
    (NANO, Product.HOUR, "instance.flavor", "0.036", "20.00", "200.00"),
    (LARGE, Product.HOUR, "instance.flavor", "0.144", "50.00", "500.00"),
    (GB, Product.GB_HOUR, "volume.gb", "0.0001", "0.10", None),
    ("eip.hour", Product.HOUR, "", "0.005", None, None),
]


@pytest.fixture
def prepaid(operator, clock):
    """Products sold by the month and year (the volume only monthly, the EIP only on demand)."""
    make_inventory()
    for code, unit, meter, hourly, monthly, yearly in PREPAID:
        product = services.create_product(operator, code=code, name=code, unit=unit, meter=meter)
        services.add_price(operator, product=product, region="default", currency="USD", hourly=hourly,
                           monthly=monthly, yearly=yearly)


@pytest.fixture
def funded(prepaid, operator, tenant_a):
    services.recharge(operator, tenant=tenant_a, amount="100.00", currency="USD", idempotency_key="fund")


def balance(tenant) -> Decimal:
    return Wallet.objects.get(tenant=tenant).balance


def buy(who, resource, *, key="k1", **kwargs):
    kwargs.setdefault("product_code", NANO)
    kwargs.setdefault("term", "monthly")
    return subscription_services.subscribe(who, resource=resource, idempotency_key=key, **kwargs)


def test_calendar_months_clamp_to_the_last_day():
    jan31 = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
    assert add_months(jan31, 1) == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    assert add_months(jan31, 13) == datetime(2027, 2, 28, 9, 30, tzinfo=UTC)
    assert add_months(datetime(2027, 12, 31, tzinfo=UTC), 2) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_months(jan31, -2) == datetime(2025, 11, 30, 9, 30, tzinfo=UTC)


def test_subscribing_charges_the_periods_and_ends_on_demand_metering(funded, tenant_a, a_owner, actor,
                                                                     make_instance, clock):
    instance = make_instance()
    usage_services.open_usage(instance, product_code=NANO, quantity=1, at=clock.now)
    usage_services.open_usage(instance, product_code="eip.hour", quantity=1, at=clock.now)
    clock.now += timedelta(minutes=30)

    sub = buy(actor(a_owner), instance, periods=2)

    assert (sub.status, sub.term, sub.price, sub.currency) == ("active", "monthly", Decimal("20.00"), "USD")
    assert (sub.starts_at, sub.expires_at) == (clock.now, datetime(2026, 5, 1, 0, 30, tzinfo=UTC))
    order = Order.objects.get(resource_id=instance.public_id, kind=Order.PURCHASE)
    assert (order.amount, order.billing_mode, order.status) == (Decimal("40.00"), "monthly", "paid")
    assert [(i.amount, i.period_start, i.period_end) for i in order.items.all()] == [
        (Decimal("20.00"), clock.now, datetime(2026, 4, 1, 0, 30, tzinfo=UTC)),
        (Decimal("20.00"), datetime(2026, 4, 1, 0, 30, tzinfo=UTC), sub.expires_at)]
    assert balance(tenant_a) == Decimal("60.00")
    flavor_usage = UsageInterval.objects.get(resource_id=instance.public_id, meter="instance.flavor")
    assert flavor_usage.ended_at == clock.now
    assert UsageInterval.objects.get(resource_id=instance.public_id, meter="eip.hour").ended_at is None
    assert subscription_services.active_for(instance.public_id, "instance.flavor") == sub
    assert subscription_services.active_for(instance.public_id, "eip.hour") is None


def test_a_year_is_twelve_months_and_a_term_not_sold_is_refused(funded, operator, tenant_a, a_owner, actor,
                                                                 make_instance):
    services.recharge(operator, tenant=tenant_a, amount="150.00", currency="USD", idempotency_key="more")
    sub = buy(actor(a_owner), make_instance(), term="yearly")
    assert (sub.expires_at, sub.price, balance(tenant_a)) == (
        datetime(2027, 3, 1, tzinfo=UTC), Decimal("200.00"), Decimal("50.00"))
    with pytest.raises(ValidationFailed) as refused:
        buy(actor(a_owner), make_instance("disk"), product_code=GB, quantity=10, term="yearly", key="k2")
    assert "term" in refused.value.fields
    with pytest.raises(ValidationFailed) as refused:
        buy(actor(a_owner), make_instance("x"), term="weekly", key="k3")
    assert "term" in refused.value.fields


def test_a_subscription_the_wallet_cannot_cover_writes_nothing(prepaid, operator, tenant_a, a_owner, actor,
                                                               make_instance, clock):
    services.recharge(operator, tenant=tenant_a, amount="39.99", currency="USD", idempotency_key="fund")
    instance = make_instance()
    usage_services.open_usage(instance, product_code=NANO, quantity=1, at=clock.now)

    with pytest.raises(InsufficientFunds):
        buy(actor(a_owner), instance, periods=2)

    assert not Subscription.objects.exists() and not Order.objects.exists()
    assert balance(tenant_a) == Decimal("39.99")
    assert UsageInterval.objects.get(resource_id=instance.public_id).ended_at is None


def test_one_subscription_per_resource_and_a_retry_charges_once(funded, tenant_a, a_owner, actor, make_instance):
    owner, instance = actor(a_owner), make_instance()
    sub = buy(owner, instance)
    assert buy(owner, instance) == sub  # the same call retried with its key
    with pytest.raises(Conflict) as refused:
        buy(owner, instance, key="k2", term="yearly")
    assert refused.value.code == "subscribed"
    with pytest.raises(Conflict) as reused:
        buy(owner, make_instance("other"), key="k1")
    assert reused.value.code == "idempotency_key_reused"
    assert balance(tenant_a) == Decimal("80.00")


def test_renewal_continues_from_the_expiry_on_the_same_day_of_month(funded, tenant_a, a_owner, actor,
                                                                    make_instance, clock):
    owner = actor(a_owner)
    clock.now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    sub = buy(owner, make_instance())
    assert sub.expires_at == datetime(2026, 4, 30, 12, tzinfo=UTC)

    clock.now = datetime(2026, 5, 2, tzinfo=UTC)  # expired two days ago, in grace
    policy.run()
    assert Subscription.objects.get(pk=sub.pk).status == "grace"
    sub = subscription_services.renew(owner, subscription=sub, idempotency_key="r1")
    assert subscription_services.renew(owner, subscription=sub, idempotency_key="r1").expires_at == sub.expires_at

    assert (sub.status, sub.expires_at) == ("active", datetime(2026, 5, 31, 12, tzinfo=UTC))  # the 31st again
    renewal = Order.objects.get(kind=Order.RENEW)
    assert renewal.amount == Decimal("20.00")
    assert [(i.period_start, i.period_end) for i in renewal.items.all()] == [
        (datetime(2026, 4, 30, 12, tzinfo=UTC), sub.expires_at)]
    assert balance(tenant_a) == Decimal("60.00")


def test_auto_renew_pays_from_the_wallet_or_lets_it_expire(funded, operator, tenant_a, a_owner, actor,
                                                           make_instance, clock):
    owner = actor(a_owner)
    sub = buy(owner, make_instance())
    sub = subscription_services.set_auto_renew(owner, subscription=sub, auto_renew=True)
    clock.now = sub.expires_at
    policy.run()
    policy.run()
    sub.refresh_from_db()
    assert (sub.status, sub.expires_at) == ("active", datetime(2026, 5, 1, tzinfo=UTC))
    assert balance(tenant_a) == Decimal("60.00")
    assert Notice.objects.filter(kind=Notice.RENEWED).count() == 1

    services.adjust(operator, tenant=tenant_a, amount="-50.00", currency="USD", reason="test")
    clock.now = sub.expires_at
    policy.run()
    sub.refresh_from_db()
    assert sub.status == "grace" and balance(tenant_a) == Decimal("10.00")
    expired = Notice.objects.get(kind=Notice.EXPIRED)
    assert "could not renew" in expired.message and sub.resource_id in expired.message


def test_upgrade_and_downgrade_are_prorated_by_the_seconds_left(funded, tenant_a, a_owner, actor, make_instance,
                                                                clock):
    owner = actor(a_owner)
    sub = buy(owner, make_instance())  # March: 31 days, 20.00
    assert balance(tenant_a) == Decimal("80.00")

    clock.now += timedelta(days=10)  # 21 of 31 days left: (50 - 20) × 21/31 = 20.3225...
    upgrade = subscription_services.change_plan(owner, subscription=sub, product_code=LARGE, quantity=1,
                                                at=clock.now)
    assert (upgrade.kind, upgrade.amount) == (Order.UPGRADE, Decimal("20.32"))
    assert balance(tenant_a) == Decimal("59.68")
    sub.refresh_from_db()
    assert (sub.product.code, sub.price) == (LARGE, Decimal("50.00"))

    PlatformSettings.objects.update_or_create(pk=1, defaults={"downgrade_refund_percent": 50})
    clock.now += timedelta(days=10, hours=12)  # 10.5 of 31 days left: 30 × 10.5/31 = 10.16129 → 10.16, half: 5.08
    downgrade = subscription_services.change_plan(owner, subscription=sub, product_code=NANO, quantity=1,
                                                  at=clock.now)
    assert (downgrade.kind, downgrade.amount) == (Order.DOWNGRADE, Decimal("0"))
    assert balance(tenant_a) == Decimal("64.76")
    assert Order.objects.get(pk=upgrade.pk).refunded == Decimal("5.08")  # the newest paid order gives back first
    assert subscription_services.change_plan(owner, subscription=sub, product_code=NANO, quantity=1,
                                             at=clock.now) == downgrade  # retried: nothing more
    assert balance(tenant_a) == Decimal("64.76")
    with pytest.raises(Conflict):
        subscription_services.change_plan(owner, subscription=sub, product_code=LARGE, quantity=1, at=clock.now)
    with pytest.raises(ValidationFailed) as refused:
        subscription_services.change_plan(owner, subscription=sub, product_code=GB, quantity=1,
                                          at=clock.now + timedelta(seconds=1))
    assert "product_code" in refused.value.fields


def test_an_upgrade_the_wallet_cannot_cover_changes_nothing(prepaid, operator, tenant_a, a_owner, actor,
                                                            make_instance, clock):
    services.recharge(operator, tenant=tenant_a, amount="25.00", currency="USD", idempotency_key="fund")
    owner = actor(a_owner)
    sub = buy(owner, make_instance())
    with pytest.raises(InsufficientFunds):
        subscription_services.change_plan(owner, subscription=sub, product_code=LARGE, quantity=1, at=clock.now)
    sub.refresh_from_db()
    assert (sub.product.code, balance(tenant_a), Order.objects.count()) == (NANO, Decimal("5.00"), 1)


def test_switching_to_prepaid_takes_the_metered_product(funded, a_owner, actor, make_instance, clock):
    instance = make_instance()
    usage_services.open_usage(instance, product_code=LARGE, quantity=1, at=clock.now)
    sub = subscription_services.switch_to_prepaid(actor(a_owner), resource=instance, term="monthly",
                                                  idempotency_key="s1")
    assert (sub.product.code, sub.price) == (LARGE, Decimal("50.00"))


def test_other_tenants_and_read_only_members_cannot_touch_it(funded, a_owner, a_readonly, b_owner, actor,
                                                             make_instance, tenant_a):
    instance = make_instance()
    with pytest.raises(NotFound):
        buy(actor(b_owner), instance)
    with pytest.raises(PermissionDenied):
        buy(actor(a_readonly), instance)
    sub = buy(actor(a_owner), instance)
    for call, kwargs in ((subscription_services.renew, {"idempotency_key": "x"}),
                         (subscription_services.set_auto_renew, {"auto_renew": True})):
        with pytest.raises(NotFound):
            call(actor(b_owner), subscription=sub, **kwargs)
    with pytest.raises(NotFound):
        subscription_services.change_plan(actor(b_owner), subscription=sub, product_code=LARGE, quantity=1,
                                          at=sub.starts_at)
    sub.refresh_from_db()
    assert (sub.auto_renew, sub.expires_at, balance(tenant_a)) == (False, datetime(2026, 4, 1, tzinfo=UTC),
                                                                    Decimal("80.00"))


def test_a_resource_deleted_for_good_ends_its_subscription(funded, a_owner, actor, make_instance, clock):
    instance = make_instance()
    sub = buy(actor(a_owner), instance)
    assert subscription_services.end_for_resource(instance, at=clock.now) == sub
    assert subscription_services.end_for_resource(instance, at=clock.now) is None
    sub.refresh_from_db()
    assert sub.status == "ended" and subscription_services.active_for(instance.public_id, "instance.flavor") is None
    with pytest.raises(Conflict) as refused:
        subscription_services.renew(actor(a_owner), subscription=sub, idempotency_key="r")
    assert refused.value.code == "ended"
