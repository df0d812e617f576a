"""Billing console pages: overview with the day chart, recharge with and without a gateway,
transactions, orders, consumption charts, subscriptions, price list, statements, the notices
banner. Another tenant's objects are 404."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from apps.billing import notices, order_services, services, subscription_services
from apps.billing.models import Order, Payment, Wallet
from apps.billing.usage_services import open_usage
from tests.unit.billing.conftest import T0


@pytest.fixture
def page(a_owner):
    client = Client()
    client.force_login(a_owner.user)
    return client


@pytest.fixture
def funded(operator, tenant_a, catalog, ledger_clock):  # noqa: F811
    return services.recharge(operator, tenant=tenant_a, amount="50", currency="USD", idempotency_key="bank-1")


def _bars(html: str, chart_id: str) -> list[tuple[str, str]]:
    svg = re.search(rf'<svg[^>]*id="{chart_id}".*?</svg>', html, re.S).group(0)
    return re.findall(r'data-label="([^"]*)" data-value="([^"]*)"', svg)


def test_overview_shows_the_wallet_recent_entries_and_this_months_chart(page, funded, make_instance, catalog,
                                                                        ledger_clock):  # noqa: F811
    open_usage(make_instance(), product_code="instance.flavor.t1-nano", quantity=1, at=T0)
    ledger_clock.now = T0 + timedelta(days=1, hours=6)

    html = page.get("/billing/overview/").content.decode()

    assert 'data-testid="balance">50.00 USD' in html and funded.public_id in html
    assert _bars(html, "consumption-by-day") == [("2026-03-01", "0.86"), ("2026-03-02", "0.22")]
    assert 'data-testid="month-consumption">1.08 USD' in html
    assert 'id="low-balance"' not in html


def test_the_threshold_is_set_on_the_overview_and_a_low_balance_is_said(page, funded, tenant_a):
    refused = page.post("/billing/overview/", {"threshold": "1.234"})
    saved = page.post("/billing/overview/", {"threshold": "60"}, follow=True)

    assert refused.status_code == 400 and "At most 2 decimal places." in refused.content.decode()
    assert "Low-balance threshold saved." in saved.content.decode() and 'id="low-balance"' in saved.content.decode()
    assert Wallet.objects.get(tenant=tenant_a).low_balance_threshold == Decimal("60")


def test_recharge_without_gateway_says_so_and_disables_the_form(page, no_gateway, catalog):  # noqa: F811
    html = page.get("/billing/recharge/").content.decode()
    assert "The payment gateway is not configured; an operator can credit your wallet." in html
    assert "<fieldset disabled>" in html
    response = page.post("/billing/recharge/", {"amount": "10", "idempotency_key": "k1"})
    assert response.status_code == 503 and not Payment.objects.exists()


def test_recharge_goes_to_the_checkout_and_shows_the_payment_on_return(page, gateway, funded, tenant_a):  # noqa: F811
    response = page.post("/billing/recharge/", {"amount": "25", "idempotency_key": "console:k1"})
    payment = Payment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"https://checkout.test/cs_{payment.public_id}"

    back = page.get(f"/billing/recharge/?payment={payment.public_id}").content.decode()

    assert f"Payment <code>{payment.public_id}</code> of 25.00 USD: <strong>succeeded</strong>" in back
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("75")


def test_transactions_filter_and_paginate(page, operator, tenant_a, funded):
    for n in range(30):
        services.charge(operator, tenant=tenant_a, amount="1", currency="USD", idempotency_key=f"c{n}", reason="x")

    first = page.get("/billing/transactions/?kind=charge").content.decode()
    recharges = page.get("/billing/transactions/?kind=recharge").content.decode()

    assert first.count('data-entry="') == 25 and "Page 1 of 2" in first
    assert recharges.count('data-entry="') == 1 and funded.public_id in recharges


def test_order_detail_shows_items_and_another_tenant_gets_404(page, b_owner, operator, tenant_a, funded, catalog):
    order = order_services.place_order(
        operator, tenant=tenant_a, kind=Order.PURCHASE, billing_mode=Order.MONTHLY, resource_id="i-bought01",
        idempotency_key="buy-1", lines=[order_services.Line(product=catalog["eip.hour"], unit_price=Decimal("3"),
                                                            amount=Decimal("3"), description="one month")])
    other = Client()
    other.force_login(b_owner.user)

    listed = page.get("/billing/orders/").content.decode()
    detail = page.get(f"/billing/orders/{order.public_id}/").content.decode()

    assert f'data-order="{order.public_id}"' in listed
    assert 'data-testid="order-amount">3.00 USD' in detail and "one month" in detail and "eip.hour" in detail
    assert other.get(f"/billing/orders/{order.public_id}/").status_code == 404


def test_consumption_page_charts_resources_and_days_for_a_window(page, make_instance, catalog,
                                                                ledger_clock):  # noqa: F811
    vm, ip = make_instance("vm"), make_instance("ip")
    open_usage(vm, product_code="instance.flavor.t1-nano", quantity=1, at=T0)
    open_usage(ip, product_code="eip.hour", quantity=1, at=T0)
    ledger_clock.now = T0 + timedelta(days=3)

    html = page.get("/billing/consumption/?since=2026-03-02&until=2026-03-02").content.decode()
    bad = page.get("/billing/consumption/?since=2026-03-05&until=2026-03-01").content.decode()

    assert _bars(html, "consumption-by-resource") == [(vm.public_id, "0.86"), (ip.public_id, "0.12")]
    assert _bars(html, "consumption-by-day") == [("2026-03-02", "0.98")]
    assert "On or after from." in bad and len(_bars(bad, "consumption-by-day")) == 3  # back to this month


def test_subscriptions_are_renewed_and_auto_renew_toggled_from_the_page(page, b_owner, actor, a_owner, operator,
                                                                       catalog, funded, make_instance,
                                                                       ledger_clock):  # noqa: F811
    ledger_clock.now = T0 + timedelta(seconds=1)
    services.add_price(operator, product=catalog["eip.hour"], region="default", currency="USD", hourly="0.005",
                       monthly="4.00")
    sub = subscription_services.subscribe(actor(a_owner), resource=make_instance(), product_code="eip.hour",
                                          term="monthly", idempotency_key="sub-1")
    other = Client()
    other.force_login(b_owner.user)

    listed = page.get("/billing/subscriptions/").content.decode()
    renew = page.post(f"/billing/subscriptions/{sub.public_id}/renew", {"periods": "2", "idempotency_key": "r1"},
                      follow=True)
    page.post(f"/billing/subscriptions/{sub.public_id}/auto-renew", {"auto_renew": "on"})
    refused = other.post(f"/billing/subscriptions/{sub.public_id}/auto-renew", {})

    assert f'data-subscription="{sub.public_id}"' in listed and "Off: turn on" in listed
    assert "Renewed." in renew.content.decode()
    sub.refresh_from_db()
    assert (sub.expires_at.date().isoformat(), sub.auto_renew) == ("2026-06-01", True)
    assert refused.status_code == 404
    assert Wallet.objects.get(tenant=sub.tenant).balance == Decimal("50") - 3 * Decimal("4")


def test_price_list_page(page, operator, tenant_a, catalog):
    services.set_tenant_price(operator, tenant=tenant_a, product=catalog["eip.hour"], discount_percent="20")
    html = page.get("/billing/prices/").content.decode()
    row = re.search(r'<tr data-product="eip.hour">.*?</tr>', html, re.S).group(0)
    assert "0.004000" in row and "20.00 %" in row
    assert html.count("<tr data-product=") == len(catalog)


def test_statement_pages_and_csv(page, operator, tenant_a, funded, ledger_clock):  # noqa: F811
    ledger_clock.now = T0 + timedelta(days=2)
    services.charge(operator, tenant=tenant_a, amount="7.25", currency="USD", idempotency_key="c1", reason="ip")

    months = page.get("/billing/statements/").content.decode()
    html = page.get("/billing/statements/2026-03/").content.decode()
    csv = page.get("/billing/statements/2026-03.csv")

    assert "/billing/statements/2026-03/" in months and "/billing/statements/2026-03.csv" in months
    assert 'data-testid="opening">0.00' in html and 'data-testid="closing">42.75' in html
    assert 'data-kind="charge">-7.25' in html and 'data-kind="recharge">50.00' in html
    assert csv["Content-Type"].startswith("text/csv") and "closing balance,,42.75,USD" in csv.content.decode()
    assert page.get("/billing/statements/2026-13/").status_code == 404


def test_unread_notices_show_as_a_banner_until_marked_read(page, b_owner, tenant_a):
    notice = notices.notify(tenant_a, kind="low_balance", message="Your balance is low.", key="low:1")
    other = Client()
    other.force_login(b_owner.user)

    shown = page.get("/billing/prices/").content.decode()
    refused = other.post(f"/billing/notices/{notice.pk}/read", {"next": "/"})
    marked = page.post(f"/billing/notices/{notice.pk}/read", {"next": "/billing/prices/"})
    gone = page.get("/billing/prices/").content.decode()

    assert f'data-notice="{notice.pk}"' in shown and "Your balance is low." in shown
    assert "Your balance is low." not in other.get("/billing/prices/").content.decode()
    assert refused.status_code == 404
    assert marked.status_code == 302 and marked["Location"] == "/billing/prices/"
    assert f'data-notice="{notice.pk}"' not in gone


def test_billing_section_is_in_the_navigation(page, a_readonly):
    html = page.get("/billing/overview/").content.decode()
    for url in ["/billing/overview/", "/billing/recharge/", "/billing/transactions/", "/billing/orders/",
                "/billing/consumption/", "/billing/subscriptions/", "/billing/prices/", "/billing/statements/"]:
        assert f'href="{url}"' in html, url
