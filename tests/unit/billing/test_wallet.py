"""Wallet services: money in and out under the wallet's lock, one ledger entry per call, retries
answered from the ledger, bad amounts refused with field messages."""

from decimal import Decimal

import pytest

from apps.billing import selectors, services
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Transaction, Wallet
from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.models import AuditRecord


def ledger_sum(tenant) -> Decimal:
    return sum((t.amount for t in Transaction.objects.filter(tenant=tenant)), Decimal(0))


def test_a_recharge_credits_the_wallet_once_per_key(operator, tenant_a):
    first = services.recharge(operator, tenant=tenant_a, amount="25.50", currency="usd", idempotency_key="evt_1")
    again = services.recharge(operator, tenant=tenant_a, amount=Decimal("25.5"), currency="USD",
                              idempotency_key="evt_1")

    assert again.pk == first.pk
    wallet = Wallet.objects.get(tenant=tenant_a)
    assert (wallet.currency, wallet.balance) == ("USD", Decimal("25.50"))
    assert (first.kind, first.amount, first.balance_after, first.actor_kind) == ("recharge", Decimal("25.50"),
                                                                                 Decimal("25.50"), "operator")
    assert Transaction.objects.count() == 1
    assert AuditRecord.objects.filter(action="wallet.recharge", resource_id=first.public_id).count() == 2


def test_a_key_reused_for_another_amount_is_refused(operator, tenant_a):
    services.recharge(operator, tenant=tenant_a, amount="10", currency="USD", idempotency_key="evt_1")

    with pytest.raises(Conflict) as caught:
        services.recharge(operator, tenant=tenant_a, amount="11", currency="USD", idempotency_key="evt_1")

    assert caught.value.code == "idempotency_key_reused"
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("10")


@pytest.mark.parametrize(("amount", "currency", "field", "message"), [
    ("-5", "USD", "amount", "More than zero."),
    ("0", "USD", "amount", "More than zero."),
    ("0.001", "USD", "amount", "At most 2 decimal places."),
    ("1.5", "JPY", "amount", "At most 0 decimal places."),
    ("ten", "USD", "amount", "A decimal number, e.g. 10.50."),
    ("NaN", "USD", "amount", "A decimal number, e.g. 10.50."),
    (1.5, "USD", "amount", "A decimal number, e.g. 10.50."),
    ("1e13", "USD", "amount", "Less than 1,000,000,000,000."),
    ("10", "XBT", "currency", "One of EUR, JPY, USD."),
])
def test_bad_amounts_are_refused_with_a_field_message_and_nothing_moves(operator, tenant_a, amount, currency, field,
                                                                        message):
    with pytest.raises(ValidationFailed) as caught:
        services.recharge(operator, tenant=tenant_a, amount=amount, currency=currency, idempotency_key="k")

    assert caught.value.fields == {field: [message]}
    assert not Transaction.objects.exists()


def test_trailing_zeros_are_not_extra_places(operator, tenant_a):
    entry = services.recharge(operator, tenant=tenant_a, amount="10.500", currency="USD", idempotency_key="k")
    assert entry.amount == Decimal("10.50")


def test_money_in_another_currency_than_the_wallet_is_refused(operator, tenant_a):
    services.open_wallet(operator, tenant=tenant_a, currency="JPY")

    with pytest.raises(ValidationFailed) as caught:
        services.recharge(operator, tenant=tenant_a, amount="10", currency="USD", idempotency_key="k")
    entry = services.recharge(operator, tenant=tenant_a, amount="1000", currency="JPY", idempotency_key="k")

    assert caught.value.fields == {"currency": ["Use JPY."]}
    assert entry.balance_after == Decimal("1000")
    with pytest.raises(Conflict):
        services.open_wallet(operator, tenant=tenant_a, currency="EUR")


def test_a_purchase_the_wallet_cannot_cover_is_refused_with_402(operator, tenant_a, a_owner, actor):
    services.recharge(operator, tenant=tenant_a, amount="10", currency="USD", idempotency_key="evt_1")
    services.set_credit_limit(operator, tenant=tenant_a, credit_limit="5")
    owner = actor(a_owner)

    paid = services.charge(owner, tenant=tenant_a, amount="14.99", currency="USD", idempotency_key="order-1",
                           reason="prepaid month")
    with pytest.raises(InsufficientFunds) as caught:
        services.charge(owner, tenant=tenant_a, amount="0.02", currency="USD", idempotency_key="order-2",
                        reason="one more")

    assert (caught.value.status, caught.value.code) == (402, "insufficient_funds")
    assert "(-4.99 USD) and credit limit (5.00) cannot cover 0.02 USD" in caught.value.message
    assert (paid.amount, paid.balance_after, paid.actor_kind) == (Decimal("-14.99"), Decimal("-4.99"), "user")
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("-4.99")
    assert Transaction.objects.filter(idempotency_key="order-2").count() == 0
    assert AuditRecord.objects.filter(action="wallet.charge", error_code="insufficient_funds").count() == 1
    # A retry of the paid order is answered from the ledger, even with the wallet now short.
    assert services.charge(owner, tenant=tenant_a, amount="14.99", currency="USD", idempotency_key="order-1",
                           reason="prepaid month").pk == paid.pk


def test_refund_credit_and_adjust_move_the_balance_and_the_ledger_sums_to_it(operator, tenant_a):
    services.recharge(operator, tenant=tenant_a, amount="100", currency="USD", idempotency_key="evt_1")
    services.refund(operator, tenant=tenant_a, amount="5.25", currency="USD", idempotency_key="order-9:refund")
    services.grant_credit(operator, tenant=tenant_a, amount="20", currency="USD", reason="launch promotion")
    down = services.adjust(operator, tenant=tenant_a, amount="-150", currency="USD", reason="double recharge")

    assert down.balance_after == Decimal("-24.75")  # a correction may go below the credit limit
    assert [t.kind for t in Transaction.objects.order_by("id")] == ["recharge", "refund", "credit", "adjustment"]
    assert ledger_sum(tenant_a) == Wallet.objects.get(tenant=tenant_a).balance == Decimal("-24.75")


def test_adjust_and_credit_need_a_reason(operator, tenant_a):
    with pytest.raises(ValidationFailed) as caught:
        services.adjust(operator, tenant=tenant_a, amount="5", currency="USD", reason=" ")
    assert caught.value.fields == {"reason": ["Say why."]}
    with pytest.raises(ValidationFailed) as caught:
        services.adjust(operator, tenant=tenant_a, amount="0", currency="USD", reason="nothing")
    assert caught.value.fields == {"amount": ["Not zero."]}
    with pytest.raises(ValidationFailed):
        services.grant_credit(operator, tenant=tenant_a, amount="5", currency="USD", reason="")


def test_tenants_cannot_move_money_in_or_charge_another_tenant(tenant_a, tenant_b, a_owner, a_readonly, b_owner,
                                                                actor):
    with pytest.raises(PermissionDenied):
        services.recharge(actor(a_owner), tenant=tenant_a, amount="5", currency="USD", idempotency_key="k")
    with pytest.raises(PermissionDenied):
        services.set_credit_limit(actor(a_owner), tenant=tenant_a, credit_limit="100")
    with pytest.raises(PermissionDenied):
        services.charge(actor(a_readonly), tenant=tenant_a, amount="1", currency="USD", idempotency_key="k",
                        reason="x")
    with pytest.raises(NotFound):
        services.charge(actor(b_owner), tenant=tenant_a, amount="1", currency="USD", idempotency_key="k", reason="x")
    assert not Transaction.objects.exists()


def test_the_low_balance_threshold_is_the_tenants_to_set(tenant_a, a_owner, a_readonly, actor):
    wallet = services.set_low_balance_threshold(actor(a_owner), tenant=tenant_a, threshold="20")

    assert wallet.low_balance_threshold == Decimal("20") and wallet.is_low
    with pytest.raises(PermissionDenied):
        services.set_low_balance_threshold(actor(a_readonly), tenant=tenant_a, threshold="1")


def test_the_ledger_is_append_only(operator, tenant_a):
    entry = services.recharge(operator, tenant=tenant_a, amount="5", currency="USD", idempotency_key="k")
    entry.amount = Decimal("500")

    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()


def test_selectors_show_a_tenant_its_own_wallet_and_ledger_only(operator, tenant_a, tenant_b, a_readonly, b_owner,
                                                                 actor):
    services.recharge(operator, tenant=tenant_a, amount="5", currency="USD", idempotency_key="k")

    assert selectors.get_wallet(actor(a_readonly)).balance == Decimal("5")
    assert selectors.get_wallet(actor(b_owner)).pk is None  # never used: an empty one, nothing written
    assert list(selectors.list_transactions(actor(b_owner))) == []
    assert selectors.list_transactions(actor(a_readonly)).count() == 1
    with pytest.raises(NotFound):
        selectors.get_wallet(actor(b_owner), tenant=tenant_a)
