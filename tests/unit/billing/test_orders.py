"""Orders: a purchase is charged under the wallet's lock with its order, or refused whole; a
retry finds its first order; refunds never give back more than was paid. Quotes apply the
tenant's override."""

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.billing import order_services, selectors, services
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Order, OrderItem, Transaction, Wallet
from apps.core.exceptions import ValidationFailed

pytestmark = pytest.mark.django_db


def _line(product, amount):
    return order_services.Line(product=product, unit_price=Decimal(amount), amount=Decimal(amount),
                               description="one month")


def _fund(operator, tenant, amount):
    services.recharge(operator, tenant=tenant, amount=amount, currency="USD", idempotency_key=f"fund-{amount}")


def test_a_paid_order_charges_its_lines_once(catalog, operator, tenant_a, a_owner, actor):
    _fund(operator, tenant_a, "20.00")
    product = catalog["instance.flavor.t1-nano"]
    lines = [_line(product, "7.50"), _line(product, "2.25")]
    order = order_services.place_order(actor(a_owner), tenant=tenant_a, kind=Order.PURCHASE, lines=lines,
                                       billing_mode=Order.MONTHLY, resource_id="i-test", idempotency_key="k1")
    again = order_services.place_order(actor(a_owner), tenant=tenant_a, kind=Order.PURCHASE, lines=lines,
                                       billing_mode=Order.MONTHLY, resource_id="i-test", idempotency_key="k1")
    assert again.pk == order.pk
    assert (order.status, order.amount, order.charge.amount) == (Order.PAID, Decimal("9.75"), Decimal("-9.75"))
    assert OrderItem.objects.filter(order=order).count() == 2
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("10.25")


def test_an_order_the_wallet_cannot_cover_writes_nothing(catalog, operator, tenant_a, a_owner, actor):
    _fund(operator, tenant_a, "5.00")
    with pytest.raises(InsufficientFunds) as refused:
        order_services.place_order(actor(a_owner), tenant=tenant_a, kind=Order.PURCHASE,
                                   lines=[_line(catalog["eip.hour"], "5.01")], idempotency_key="k2")
    assert refused.value.status == 402 and "billing" in refused.value.fields
    assert not Order.objects.exists()
    assert Transaction.objects.filter(kind=Transaction.CHARGE).count() == 0


def test_on_demand_orders_cost_nothing_now(catalog, tenant_a, a_owner, actor):
    order = order_services.place_order(actor(a_owner), tenant=tenant_a, kind=Order.CREATE, idempotency_key="k3",
                                       lines=[order_services.Line(catalog["eip.hour"], Decimal("0.005"))])
    assert (order.status, order.amount, order.charge) == (Order.PAID, 0, None)


def test_refunds_stop_at_what_was_paid(catalog, operator, tenant_a, a_owner, actor):
    _fund(operator, tenant_a, "10.00")
    order = order_services.place_order(actor(a_owner), tenant=tenant_a, kind=Order.PURCHASE, idempotency_key="k4",
                                       lines=[_line(catalog["eip.hour"], "6.00")])
    order_services.refund_order(operator, order=order, amount="2.00", reason="goodwill")
    with pytest.raises(ValidationFailed):
        order_services.refund_order(operator, order=order, amount="4.01", reason="too much")
    order = order_services.refund_order(operator, order=order, reason="the rest")
    assert (order.status, order.refunded) == (Order.REFUNDED, Decimal("6.00"))
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("10.00")


def test_a_quote_applies_the_tenants_override(catalog, operator, tenant_a, clock):
    product = catalog["instance.flavor.t1-nano"]
    services.add_price(operator, product=product, region="default", currency="USD", hourly="0.05", monthly="30.00",
                       effective_from=clock.now + timedelta(hours=1))
    assert selectors.quote(tenant_a, product, "default").hourly == Decimal("0.036")
    services.set_tenant_price(operator, tenant=tenant_a, product=product, discount_percent="10",
                              effective_from=clock.now + timedelta(hours=2))
    later = selectors.quote(tenant_a, product.code, "default", at=clock.now + timedelta(hours=3))
    assert (later.hourly, later.monthly, later.discount_percent) == (Decimal("0.045"), Decimal("27.00"), 10)
    assert selectors.quote(tenant_a, product, "elsewhere") is None
    assert selectors.quote(tenant_a, "no.such.product", "default") is None
