"""Back office: the billing screens render, prices are added through the service (never in the
past), wallets are credited by actions, the ledger and usage are read-only."""

from datetime import timedelta
from decimal import Decimal

from apps.billing import services
from apps.billing.models import Price, Transaction, Wallet
from apps.billing.usage_services import open_usage, settle_tenant_usage
from tests.unit.billing.conftest import T0


def test_billing_screens_render_and_the_ledger_is_read_only(admin_client, catalog, make_instance, operator, tenant_a):
    open_usage(make_instance(), product_code="instance.flavor.t1-nano", quantity=1, at=T0)
    entry = services.recharge(operator, tenant=tenant_a, amount="5", currency="USD", idempotency_key="evt_1")
    price = Price.objects.first()
    override = services.set_tenant_price(operator, tenant=tenant_a, product=catalog["eip.hour"], discount_percent="10")
    for url in ["/backoffice/billing/product/", f"/backoffice/billing/product/{catalog['eip.hour'].pk}/change/",
                "/backoffice/billing/product/add/", "/backoffice/billing/price/", "/backoffice/billing/price/add/",
                f"/backoffice/billing/price/{price.pk}/change/", "/backoffice/billing/tenantpriceoverride/add/",
                f"/backoffice/billing/tenantpriceoverride/{override.pk}/change/",
                "/backoffice/billing/wallet/", "/backoffice/billing/transaction/",
                f"/backoffice/billing/transaction/{entry.pk}/change/", "/backoffice/billing/usageinterval/"]:
        assert admin_client.get(url).status_code == 200, url
    assert admin_client.get("/backoffice/billing/transaction/add/").status_code == 403
    assert entry.public_id in admin_client.get("/backoffice/billing/transaction/").content.decode()


def test_a_price_is_added_through_the_service_and_never_in_the_past(admin_client, catalog, clock):
    product = catalog["eip.hour"]
    form = {"product": product.pk, "region": "default", "currency": "USD", "hourly": "0.007",
            "effective_from_0": "2026-03-05", "effective_from_1": "00:00:00"}

    added = admin_client.post("/backoffice/billing/price/add/", form)
    refused = admin_client.post("/backoffice/billing/price/add/", {**form, "effective_from_0": "2026-02-01"},
                                follow=True)

    assert added.status_code == 302
    assert Price.objects.filter(product=product).values_list("hourly", flat=True).order_by("effective_from")[1] == \
        Decimal("0.007")
    assert "A price change never rewrites the past. effective_from: Now or later." in refused.content.decode()
    assert Price.objects.filter(product=product).count() == 2


def test_wallet_actions_move_money_once_per_form(admin_client, operator, tenant_a):
    wallet = services.open_wallet(operator, tenant=tenant_a, currency="EUR")
    post = {"action": "recharge", "_selected_action": [wallet.pk], "apply": "1", "amount": "12.34",
            "reason": "bank transfer 2026-03-01", "idempotency_key": "backoffice:form-1"}

    asked = admin_client.post("/backoffice/billing/wallet/", {"action": "recharge", "_selected_action": [wallet.pk]})
    first = admin_client.post("/backoffice/billing/wallet/", post, follow=True)
    admin_client.post("/backoffice/billing/wallet/", post)  # the same form sent twice
    refused = admin_client.post("/backoffice/billing/wallet/", {**post, "amount": "1.234", "idempotency_key": "k2"},
                                follow=True)

    assert "Recharge wallets" in asked.content.decode() and 'name="idempotency_key"' in asked.content.decode()
    assert "Recharged 12.34 EUR for Tenant A." in first.content.decode()
    assert "At most 2 decimal places." in refused.content.decode()
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("12.34")
    entry = Transaction.objects.get()
    assert (entry.kind, entry.reason, entry.actor_kind, entry.created_by.is_staff) == (
        "recharge", "bank transfer 2026-03-01", "operator", True)


# --- orders, payments, exports and the revenue overview --------------------------------------

def _paid_order(operator, tenant, product, key="buy-1", amount="12.50"):
    from apps.billing import order_services
    from apps.billing.models import Order

    return order_services.place_order(operator, tenant=tenant, kind=Order.PURCHASE, billing_mode=Order.MONTHLY,
                                      idempotency_key=key, resource_id="i-bought01",
                                      lines=[order_services.Line(product=product, unit_price=Decimal(amount),
                                                                 amount=Decimal(amount))])


def test_order_screens_render_with_items_and_the_other_billing_screens_too(admin_client, catalog, operator,
                                                                          tenant_a):
    from apps.billing import notices
    from apps.billing.models import GatewayEvent

    services.recharge(operator, tenant=tenant_a, amount="50", currency="USD", idempotency_key="evt_1")
    order = _paid_order(operator, tenant_a, catalog["eip.hour"])
    notices.notify(tenant_a, kind="low_balance", message="Balance low.", key="low:1")
    GatewayEvent.objects.create(gateway="stripe", event_id="evt_x", type="checkout.session.completed", payload={})

    page = admin_client.get(f"/backoffice/billing/order/{order.pk}/change/").content.decode()
    filtered = admin_client.get("/backoffice/billing/order/?status__exact=paid&kind__exact=purchase")

    assert "eip.hour" in page and "12.5000" in page
    assert order.public_id in filtered.content.decode()
    for url in ["/backoffice/billing/subscription/", "/backoffice/billing/payment/",
                "/backoffice/billing/gatewayevent/", "/backoffice/billing/notice/", "/backoffice/billing/"]:
        assert admin_client.get(url).status_code == 200, url
    assert admin_client.get("/backoffice/billing/gatewayevent/add/").status_code == 403
    assert "Revenue and usage" in admin_client.get("/backoffice/billing/").content.decode()


def test_refund_action_asks_a_reason_and_refunds_through_the_service(admin_client, catalog, operator, tenant_a):
    from apps.billing.models import Order

    services.recharge(operator, tenant=tenant_a, amount="50", currency="USD", idempotency_key="evt_1")
    order = _paid_order(operator, tenant_a, catalog["eip.hour"])
    action = {"action": "refund", "_selected_action": [order.pk]}

    asked = admin_client.post("/backoffice/billing/order/", action)
    no_reason = admin_client.post("/backoffice/billing/order/", {**action, "apply": "1", "reason": ""})
    partly = admin_client.post("/backoffice/billing/order/", {**action, "apply": "1", "amount": "2.50",
                                                             "reason": "outage 2026-03-01"}, follow=True)
    too_much = admin_client.post("/backoffice/billing/order/", {**action, "apply": "1", "amount": "20",
                                                               "reason": "again"}, follow=True)

    assert "Refund orders" in asked.content.decode() and 'name="reason"' in asked.content.decode()
    assert "This field is required." in no_reason.content.decode()
    assert f"Refunded order {order.public_id}." in partly.content.decode()
    assert "USD of this order is left to refund." in too_much.content.decode()
    order.refresh_from_db()
    assert (order.refunded, order.status, order.message) == (Decimal("2.50"), Order.PAID, "outage 2026-03-01")
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("50") - Decimal("12.50") + Decimal("2.50")


def _csv(response) -> list[list[str]]:
    import csv
    import io

    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_exports_for_a_range_of_days(admin_client, catalog, operator, tenant_a, tenant_b):
    from apps.billing.models import Payment

    recorded = services.recharge(operator, tenant=tenant_a, amount="50", currency="USD", idempotency_key="bank-1")
    order = _paid_order(operator, tenant_a, catalog["eip.hour"])
    payment = Payment.objects.create(tenant=tenant_b, gateway="stripe", amount=Decimal("25"), currency="USD")
    today = recorded.created_at.date().isoformat()
    url = f"/backoffice/billing/order/export/?since={today}&until={today}&what="

    orders = _csv(admin_client.get(url + "orders"))
    entries = _csv(admin_client.get(url + "transactions"))
    recharges = _csv(admin_client.get(url + "recharges"))
    before = _csv(admin_client.get(url.replace(f"since={today}", "since=2020-01-01").replace(
        f"until={today}", "until=2020-01-31") + "orders"))
    form = admin_client.get("/backoffice/billing/order/export/")

    assert orders[0][:3] == ["created_at", "order", "tenant"]
    assert [(r[1], r[2], r[7], r[6]) for r in orders[1:]] == [(order.public_id, tenant_a.public_id, "12.50", "paid")]
    assert sorted((r[1], r[4], r[5]) for r in entries[1:]) == sorted([(recorded.public_id, "recharge", "50.00"),
                                                                      (order.charge.public_id, "charge", "-12.50")])
    assert [(r[1], r[2], r[5], r[7]) for r in recharges[1:]] == [
        ("operator", "", "50.00", "succeeded"), ("gateway", payment.public_id, "25.00", "pending")]
    assert before == [orders[0]]
    assert form.status_code == 200 and 'name="what"' in form.content.decode()


def test_export_action_writes_the_selected_orders(admin_client, catalog, operator, tenant_a):
    services.recharge(operator, tenant=tenant_a, amount="50", currency="USD", idempotency_key="bank-1")
    first = _paid_order(operator, tenant_a, catalog["eip.hour"], key="buy-1")
    _paid_order(operator, tenant_a, catalog["eip.hour"], key="buy-2")

    rows = _csv(admin_client.post("/backoffice/billing/order/", {"action": "export_csv",
                                                                 "_selected_action": [first.pk]}))

    assert [r[1] for r in rows[1:]] == [first.public_id]


def test_revenue_overview_draws_the_days_tenants_and_products(admin_client, catalog, operator, tenant_a, tenant_b,
                                                              make_instance, ledger_clock):
    services.recharge(operator, tenant=tenant_a, amount="50", currency="USD", idempotency_key="a-1")
    services.recharge(operator, tenant=tenant_b, amount="20", currency="USD", idempotency_key="b-1")
    open_usage(make_instance(), product_code="instance.flavor.t1-nano", quantity=1, at=T0)
    ledger_clock.now = T0 + timedelta(days=1, hours=10)
    settle_tenant_usage(tenant_a.pk, up_to=ledger_clock.now)  # 34 h × 0.036 = 1.224 → 1.22
    services.charge(operator, tenant=tenant_b, amount="3", currency="USD", idempotency_key="b-2", reason="x")
    services.refund(operator, tenant=tenant_b, amount="1", currency="USD", idempotency_key="b-3")

    page = admin_client.get("/backoffice/billing/order/overview/?since=2026-03-01&until=2026-03-02&currency=USD")
    html = page.content.decode()
    bad = admin_client.get("/backoffice/billing/order/overview/?since=2026-03-01&until=2026-03-02&currency=XXX")

    assert page.status_code == 200
    assert 'data-label="2026-03-01" data-value="0.00"' in html  # revenue on day 1: nothing charged yet
    assert 'data-label="2026-03-02" data-value="3.22"' in html  # 1.22 usage + 3 − 1 refunded
    assert 'data-label="2026-03-01" data-value="70.00"' in html  # recharges
    assert 'data-label="Tenant B" data-value="2.00"' in html and 'data-label="Tenant A" data-value="1.22"' in html
    assert 'data-label="instance.flavor.t1-nano" data-value="1.22"' in html
    refused = bad.content.decode()
    assert "Unknown currency &#x27;XXX&#x27;." in refused and 'class="bar-chart"' not in refused
    assert admin_client.get("/backoffice/billing/order/overview/").status_code == 200
