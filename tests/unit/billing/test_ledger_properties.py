"""Property of the wallet: after any interleaving of recharges, purchases (some refused, some
retried), refunds, adjustments and credit limit changes, the ledger sums to the balance, each
entry's balance_after is the running sum, and no purchase took the balance past the limit."""

from decimal import Decimal

from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.billing import services
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Transaction, Wallet

cents = st.integers(min_value=1, max_value=100_000).map(lambda n: Decimal(n).scaleb(-2))
operations = st.one_of(
    st.tuples(st.just("recharge"), cents),
    st.tuples(st.just("charge"), cents),
    st.tuples(st.just("refund"), cents),
    st.tuples(st.just("adjust"), cents, st.booleans()),
    st.tuples(st.just("credit_limit"), st.integers(min_value=0, max_value=50_000).map(Decimal)),
    st.tuples(st.just("retry"), st.integers(min_value=0, max_value=100)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operations, min_size=1, max_size=25))
def test_the_ledger_sums_to_the_balance_after_any_interleaving(operator, tenant_a, ops):
    with transaction.atomic():
        services.open_wallet(operator, tenant=tenant_a, currency="USD")
        calls = []  # (service, kwargs) of every call made, for retries
        for n, (kind, *args) in enumerate(ops):
            key = f"op-{n}"
            if kind == "retry":
                if not calls:
                    continue
                service, kwargs = calls[args[0] % len(calls)]
            elif kind == "credit_limit":
                services.set_credit_limit(operator, tenant=tenant_a, credit_limit=args[0])
                continue
            elif kind == "adjust":
                amount, down = args
                service, kwargs = services.adjust, {"amount": -amount if down else amount, "reason": "books"}
            else:
                service = {"recharge": services.recharge, "charge": services.charge, "refund": services.refund}[kind]
                kwargs = {"amount": args[0], "reason": kind}
            kwargs = {"tenant": tenant_a, "currency": "USD", "idempotency_key": key, **kwargs}
            calls.append((service, kwargs))
            before = Transaction.objects.count()
            try:
                service(operator, **kwargs)
            except InsufficientFunds:
                wallet = Wallet.objects.get(tenant=tenant_a)
                assert wallet.available < kwargs["amount"]
                assert Transaction.objects.count() == before
            if service is services.charge and Transaction.objects.count() > before:
                wallet = Wallet.objects.get(tenant=tenant_a)
                assert wallet.balance >= -wallet.credit_limit

        entries = list(Transaction.objects.filter(tenant=tenant_a).order_by("id"))
        running = Decimal(0)
        for entry in entries:
            running += entry.amount
            assert entry.balance_after == running
        assert Wallet.objects.get(tenant=tenant_a).balance == running
        assert len({e.idempotency_key for e in entries}) == len(entries)
        transaction.set_rollback(True)
