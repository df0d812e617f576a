"""Concurrency on one wallet: fifty purchases at once never take the balance past the credit
limit, and settlement workers running at once charge what one would.

PostgreSQL's row lock on the wallet (select_for_update) is what this is about; on SQLite
(IMMEDIATE transactions queue the writers) it runs too, as the quota race does, and says which
one it ran on."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from apps.billing import rating, services
from apps.billing.models import Transaction, Wallet
from apps.billing.tasks import settle_usage
from apps.billing.usage_services import open_usage
from tests.concurrency import race
from tests.factories.tenants import actor_for
from tests.unit.billing.conftest import T0

ATTEMPTS = 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_charges_never_overdraw_the_wallet(operator, tenant_a, a_owner):
    services.recharge(operator, tenant=tenant_a, amount="10.00", currency="USD", idempotency_key="evt_1")
    services.set_credit_limit(operator, tenant=tenant_a, credit_limit="5.00")
    owner = actor_for(a_owner)

    outcomes = race(ATTEMPTS, lambda n: services.charge(owner, tenant=tenant_a, amount="0.70", currency="USD",
                                                        idempotency_key=f"order-{n}", reason="race"))

    assert sorted(set(outcomes)) == ["insufficient_funds", "ok"], outcomes
    assert outcomes.count("ok") == 21  # 21 × 0.70 = 14.70 fits in 10.00 + 5.00; a 22nd would not
    wallet = Wallet.objects.get(tenant=tenant_a)
    assert wallet.balance == Decimal("-4.70") >= -wallet.credit_limit
    entries = list(Transaction.objects.filter(tenant=tenant_a).order_by("id"))
    assert sum(e.amount for e in entries) == wallet.balance
    running = Decimal(0)
    for entry in entries:
        running += entry.amount
        assert entry.balance_after == running  # each entry saw the one before it: no lost update
    print(f"{connection.vendor}: {outcomes.count('ok')} charged, {outcomes.count('insufficient_funds')} refused")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_settlement_workers_running_at_once_charge_once(catalog, make_instance, tenant_a, tenant_b):
    vms = [make_instance(f"vm{n}", tenant=tenant) for tenant in (tenant_a, tenant_b) for n in range(3)]
    for vm in vms:
        open_usage(vm, product_code="instance.flavor.t1-nano", quantity=1, at=T0)
    moments = [T0 + timedelta(minutes=30 + 10 * (n % 4)) for n in range(8)]  # some are behind: up to an hour

    outcomes = race(len(moments), lambda n: settle_usage(up_to=moments[n]))

    assert outcomes == ["ok"] * len(moments)
    due = rating.to_money(3600 * rating.QUANTITY_SCALE * rating.price_units(Decimal("0.036")) * rating.FULL_PRICE, 2)
    for vm in vms:
        charged = -sum(e.amount for e in Transaction.objects.filter(resource_id=vm.public_id))
        assert charged == due == Decimal("0.04")  # settled to the latest moment (one hour), once
    for wallet in Wallet.objects.all():
        assert wallet.usage_settled_until == max(moments)
    print(f"{connection.vendor}: {Transaction.objects.count()} entries from {len(moments)} workers")
