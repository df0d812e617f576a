"""Properties of settlement through the real services, for any story of starts, stops, resizes,
late events, price changes and settlement runs (in order, repeated or late): the ledger holds
exactly the rounded cost of the recorded usage per resource, product and month (computed here
independently, with fractions), re-running charges nothing, and the ledger sums to the balance."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.billing import services
from apps.billing.models import Price, Transaction, UsageInterval, Wallet
from apps.billing.usage_services import change_usage, close_usage, open_usage, settle_tenant_usage

NANO, LARGE = "instance.flavor.t1-nano", "instance.flavor.s1-large"
START = datetime(2026, 3, 29, tzinfo=UTC)  # stories cross the end of March

steps = st.tuples(
    st.integers(min_value=0, max_value=36 * 3600),  # seconds since the previous step
    st.sampled_from(["open", "open", "close", "resize", "settle", "late settle", "late close"]),
    st.integers(min_value=0, max_value=1),  # which instance
    st.sampled_from([NANO, LARGE]),
    st.integers(min_value=1, max_value=4 * 3600),  # how late a late event is
)


def exact_due(tenant) -> dict[tuple[str, str, str], Decimal]:
    """Independent of rating: per interval, walk its seconds between price changes and month
    starts with fractions of the hourly price; round each (resource, product, month) half up."""
    prices = defaultdict(list)
    for price in Price.objects.filter(currency="USD").select_related("product").order_by("effective_from"):
        prices[price.product.code].append((price.effective_from, Fraction(price.hourly)))
    totals = defaultdict(Fraction)
    for interval in UsageInterval.objects.filter(tenant=tenant).select_related("product"):
        code, moment, end = interval.product.code, interval.started_at, interval.ended_at
        months = [datetime(y, m, 1, tzinfo=UTC) for y, m in ((2026, 4), (2026, 5))]
        cuts = sorted({c for c, _ in prices[code]} | set(months))
        for cut in [c for c in cuts if moment < c < end] + [end]:
            hourly = [p for since, p in prices[code] if since <= moment][-1]
            month = f"{moment:%Y-%m}"
            totals[(interval.resource_id, code, month)] += hourly * Fraction(interval.quantity) * int(
                (cut - moment).total_seconds()) / 3600
            moment = cut
    rounded = {key: (Decimal(total.numerator) / Decimal(total.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)
               for key, total in totals.items()}
    return {key: amount for key, amount in rounded.items() if amount}


def ledger_due(tenant) -> dict[tuple[str, str, str], Decimal]:
    totals = defaultdict(Decimal)
    for entry in Transaction.objects.filter(tenant=tenant, product__isnull=False).select_related("product"):
        totals[(entry.resource_id, entry.product.code, f"{entry.period:%Y-%m}")] -= entry.amount
    return {key: total for key, total in totals.items() if total}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(story=st.lists(steps, min_size=1, max_size=14), price_change=st.integers(min_value=0, max_value=5 * 86400))
def test_settlement_charges_exactly_the_recorded_usage_whatever_the_story(catalog, make_instance, tenant_a,
                                                                           operator, story, price_change):
    with transaction.atomic():
        services.add_price(operator, product=catalog[NANO], region="default", currency="USD", hourly="0.0123",
                           effective_from=START + timedelta(seconds=price_change))
        vms = [make_instance("a"), make_instance("b")]
        now = START
        settled_at = []
        for gap, action, which, flavor, lateness in story:
            now += timedelta(seconds=gap)
            vm = vms[which]
            if action == "open":
                if not UsageInterval.objects.filter(resource_id=vm.public_id, ended_at__isnull=True).exists():
                    open_usage(vm, product_code=flavor, quantity=1, at=now)
            elif action == "resize":
                change_usage(vm, product_code=flavor, quantity=1, at=now)
            elif action == "close":
                close_usage(vm, at=now)
            elif action == "late close":
                close_usage(vm, at=now - timedelta(seconds=lateness))
            else:
                moment = now - timedelta(seconds=lateness) if action == "late settle" else now
                settle_tenant_usage(tenant_a.pk, up_to=moment)
                settled_at.append(moment)
        end = now + timedelta(hours=1)
        for vm in vms:
            close_usage(vm, at=end)
        settle_tenant_usage(tenant_a.pk, up_to=end)
        written = Transaction.objects.count()

        assert ledger_due(tenant_a) == exact_due(tenant_a)
        for moment in [end, *settled_at]:
            assert settle_tenant_usage(tenant_a.pk, up_to=moment) == []
        assert Transaction.objects.count() == written
        wallet = Wallet.objects.get(tenant=tenant_a)
        assert sum(t.amount for t in Transaction.objects.filter(tenant=tenant_a)) == wallet.balance
        transaction.set_rollback(True)
