"""Monthly statements: the opening balance is the balance after the last entry before the month,
the closing balance is the wallet's ledger at the month's end, the totals by kind add up, months
chain, and the CSV carries the same numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from apps.billing import services, statements
from apps.billing.models import Transaction, Wallet
from apps.billing.usage_services import open_usage, settle_tenant_usage
from apps.core.exceptions import NotFound


FEB = datetime(2026, 2, 10, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
def story(operator, tenant_a, catalog, make_instance, ledger_clock):
    """February: 100 paid in, 30 charged. March: usage of one instance settled at the month's
    end (31 days × 24 h × 0.036 = 26.784 → 26.78), a refund, a negative adjustment, a credit.
    The clock then stands in mid-April, with no entry in April."""
    clock = ledger_clock
    clock.now = FEB
    services.recharge(operator, tenant=tenant_a, amount="100", currency="USD", idempotency_key="feb-1")
    services.charge(operator, tenant=tenant_a, amount="30", currency="USD", idempotency_key="feb-2", reason="buy")
    clock.now = MAR
    open_usage(make_instance(), product_code="instance.flavor.t1-nano", quantity=1, at=MAR)
    clock.now = MAR + timedelta(days=5)
    services.refund(operator, tenant=tenant_a, amount="4.50", currency="USD", idempotency_key="mar-1")
    services.adjust(operator, tenant=tenant_a, amount="-1.25", currency="USD", reason="fix")
    services.grant_credit(operator, tenant=tenant_a, amount="10", currency="USD", reason="welcome")
    clock.now = APR - timedelta(seconds=1)
    settle_tenant_usage(tenant_a.pk, up_to=APR - timedelta(seconds=1))
    clock.now = APR + timedelta(days=14)
    return tenant_a


def _ledger_at(tenant, moment: datetime) -> Decimal:
    """The wallet's balance at `moment`, summed from the ledger itself."""
    return sum((t.amount for t in Transaction.objects.filter(tenant=tenant, created_at__lt=moment)), Decimal(0))


def test_a_month_opens_with_the_balance_before_it_and_closes_with_the_ledger_at_its_end(owner_actor, story):
    march = statements.monthly_statement(owner_actor, tenant=story, month=date(2026, 3, 1))

    assert march.opening == Decimal("70.00")
    assert [e.kind for e in march.entries] == ["refund", "adjustment", "credit", "charge"]
    assert march.totals == {"charge": Decimal("-26.78"), "refund": Decimal("4.50"),
                            "adjustment": Decimal("-1.25"), "credit": Decimal("10.00")}
    assert march.closing == Decimal("56.47") == march.opening + sum(march.totals.values())
    assert march.closing == _ledger_at(story, APR)


def test_months_chain_and_the_last_closing_is_the_balance(owner_actor, story):
    months = statements.months(owner_actor, tenant=story)
    assert months == [date(2026, 4, 1), date(2026, 3, 1), date(2026, 2, 1)]

    chain = [statements.monthly_statement(owner_actor, tenant=story, month=m) for m in reversed(months)]

    assert chain[0].opening == 0 and chain[0].closing == Decimal("70.00")
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.opening == before.closing
    april = chain[-1]
    assert (april.entries, april.totals, april.opening, april.closing) == ([], {}, Decimal("56.47"),
                                                                           Decimal("56.47"))
    assert april.closing == Wallet.objects.get(tenant=story).balance


def test_the_csv_carries_the_same_numbers(owner_actor, story):
    march = statements.monthly_statement(owner_actor, tenant=story, month=date(2026, 3, 1))

    rows = list(csv.reader(io.StringIO(statements.statement_csv(march))))

    assert rows[0] == statements.CSV_COLUMNS
    assert rows[1][:6] == ["2026-03-01", "", "opening balance", "", "70.00", "USD"]
    assert [r[2:5] for r in rows[2:-1]] == [[e.kind, f"{e.amount:.2f}", f"{e.balance_after:.2f}"]
                                            for e in march.entries]
    usage = rows[-2]
    assert (usage[6], usage[7], usage[8]) == (march.entries[-1].resource_id, "instance.flavor.t1-nano", "2026-03")
    assert rows[-1][:6] == ["2026-04-01", "", "closing balance", "", "56.47", "USD"]


def test_another_tenants_statement_and_future_months_do_not_exist(actor, b_owner, owner_actor, story):
    with pytest.raises(NotFound):
        statements.monthly_statement(actor(b_owner), tenant=story, month=date(2026, 3, 1))
    with pytest.raises(NotFound):
        statements.monthly_statement(owner_actor, tenant=story, month=date(2026, 5, 1))
    with pytest.raises(NotFound):
        statements.parse_month("2026-3x")


def test_a_tenant_without_entries_has_no_months(actor, b_owner, tenant_b):
    assert statements.months(actor(b_owner), tenant=tenant_b) == []


@pytest.fixture
def owner_actor(actor, a_owner):
    return actor(a_owner)
