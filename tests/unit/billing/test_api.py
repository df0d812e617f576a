"""Billing API: the wallet and its threshold, the ledger with filters, usage, what usage cost in a
window, the price list, orders, subscriptions (renew, auto-renew), recharges, notices and
statements. Another tenant's rows are 404; operators read every tenant and narrow by `tenant`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from apps.billing import notices, order_services, services, subscription_services
from apps.billing.models import Order, Payment, Transaction, Wallet
from apps.billing.usage_services import close_usage, open_usage
from tests.unit.billing.conftest import T0


@pytest.fixture
def funded(operator, tenant_a, catalog, ledger_clock):
    """Tenant A's wallet with 50.00 USD paid in at T0."""
    return services.recharge(operator, tenant=tenant_a, amount="50", currency="USD", idempotency_key="bank-1")


def _monthly_price(operator, catalog, clock, code="instance.flavor.t1-nano", monthly="20.00"):
    clock.now = T0 + timedelta(seconds=1)
    services.add_price(operator, product=catalog[code], region="default", currency="USD", hourly="0.036",
                       monthly=monthly)


# --- wallet -----------------------------------------------------------------------------------

def test_wallet_shows_balance_available_limit_threshold_and_overdue_state(api, a_owner, operator, tenant_a, funded):
    services.set_credit_limit(operator, tenant=tenant_a, credit_limit="10")
    body = api(a_owner).get("/api/v1/wallet").json()
    assert (body["currency"], body["balance"], body["available"], body["credit_limit"]) == (
        "USD", "50.0000", "60.0000", "10.0000")
    assert (body["low_balance_threshold"], body["is_low"], body["is_overdue"], body["tenant"]) == (
        "0.0000", False, False, tenant_a.public_id)


def test_wallet_threshold_is_set_with_field_errors_for_bad_amounts(api, a_owner, a_readonly, tenant_a, funded):
    client = api(a_owner)

    ok = client.patch("/api/v1/wallet", {"low_balance_threshold": "60.50"}, format="json")
    places = client.patch("/api/v1/wallet", {"low_balance_threshold": "1.234"}, format="json")
    negative = client.patch("/api/v1/wallet", {"low_balance_threshold": "-1"}, format="json")
    denied = api(a_readonly).patch("/api/v1/wallet", {"low_balance_threshold": "5"}, format="json")

    assert ok.status_code == 200 and ok.json()["low_balance_threshold"] == "60.5000" and ok.json()["is_low"]
    assert places.status_code == 400 and places.json()["fields"] == {"low_balance_threshold": [
        "At most 2 decimal places."]}
    assert negative.status_code == 400 and "low_balance_threshold" in negative.json()["fields"]
    assert denied.status_code == 403
    assert Wallet.objects.get(tenant=tenant_a).low_balance_threshold == Decimal("60.50")


def test_operators_name_the_tenant_and_members_cannot_name_another(api, a_owner, b_owner, operator, tenant_a, funded):
    as_operator = api(operator.user).get(f"/api/v1/wallet?tenant={tenant_a.public_id}")
    as_b = api(b_owner).get(f"/api/v1/wallet?tenant={tenant_a.public_id}")
    assert as_operator.status_code == 200 and as_operator.json()["balance"] == "50.0000"
    assert as_b.status_code == 404


# --- ledger and usage -------------------------------------------------------------------------

def test_transactions_filter_by_kind_resource_and_days_and_are_404_across_tenants(
        api, a_owner, b_owner, operator, tenant_a, funded, clock):
    clock.now = T0 + timedelta(days=2)
    charge = services.charge(operator, tenant=tenant_a, amount="3", currency="USD", idempotency_key="c1",
                             reason="disk")
    client = api(a_owner)

    everything = client.get("/api/v1/transactions").json()
    charges = client.get("/api/v1/transactions?kind=charge").json()
    from_day_2 = client.get("/api/v1/transactions?since=2026-03-03").json()
    until_day_1 = client.get("/api/v1/transactions?until=2026-03-01").json()

    assert [t["id"] for t in everything["results"]] == [charge.public_id, funded.public_id]
    assert [(t["kind"], t["amount"], t["balance_after"]) for t in charges["results"]] == [
        ("charge", "-3.0000", "47.0000")]
    assert [t["id"] for t in from_day_2["results"]] == [charge.public_id]
    assert [t["id"] for t in until_day_1["results"]] == [funded.public_id]
    assert client.get(f"/api/v1/transactions/{charge.public_id}").json()["reason"] == "disk"
    assert api(b_owner).get(f"/api/v1/transactions/{charge.public_id}").status_code == 404
    assert api(b_owner).get("/api/v1/transactions").json()["results"] == []
    assert api(operator.user).get("/api/v1/transactions?tenant=tn-nobody").json()["results"] == []


def test_usage_lists_intervals_filtered_by_resource_and_product(api, a_owner, b_owner, make_instance, catalog, clock):
    vm, other = make_instance("vm"), make_instance("other")
    open_usage(vm, product_code="instance.flavor.t1-nano", quantity=1, at=T0)
    open_usage(other, product_code="instance.flavor.s1-large", quantity=1, at=T0)
    close_usage(vm, at=T0 + timedelta(hours=2))

    mine = api(a_owner).get(f"/api/v1/usage?resource={vm.public_id}").json()["results"]
    large = api(a_owner).get("/api/v1/usage?product=instance.flavor.s1-large").json()["results"]

    assert [(u["resource_id"], u["product"], u["quantity"]) for u in mine] == [
        (vm.public_id, "instance.flavor.t1-nano", "1.000")]
    assert mine[0]["ended_at"].startswith("2026-03-01T02:00:00")
    assert [u["resource_id"] for u in large] == [other.public_id]
    assert api(b_owner).get("/api/v1/usage").json()["results"] == []


# --- consumption ------------------------------------------------------------------------------

def test_consumption_rates_usage_per_resource_product_and_day(api, a_owner, make_instance, catalog, clock):
    vm, disk = make_instance("vm"), make_instance("disk")
    open_usage(vm, product_code="instance.flavor.t1-nano", quantity=1, at=T0)  # 0.036/h
    open_usage(disk, product_code="volume.gb.standard", quantity=100, at=T0 + timedelta(hours=12))  # 0.01/h
    clock.now = T0 + timedelta(days=1, hours=12)
    client = api(a_owner)

    by_resource = client.get("/api/v1/consumption?group=resource").json()
    by_day = client.get("/api/v1/consumption?group=day&from=2026-03-01&to=2026-03-02").json()
    by_product = client.get("/api/v1/consumption?group=product").json()

    # 36 h × 0.036 = 1.296 → 1.30; 24 h × 100 GB × 0.0001 = 0.24
    assert by_resource["rows"] == [{"key": vm.public_id, "amount": "1.30"}, {"key": disk.public_id, "amount": "0.24"}]
    assert by_resource["total"] == "1.54" and by_resource["currency"] == "USD"
    # day 1: 24 × 0.036 + 12 × 0.01 = 0.984; day 2 (up to now, 12:00): 12 × 0.036 + 12 × 0.01 = 0.552
    assert by_day["rows"] == [{"key": "2026-03-01", "amount": "0.98"}, {"key": "2026-03-02", "amount": "0.55"}]
    assert by_day["end"].startswith("2026-03-02T12:00:00")
    assert [row["key"] for row in by_product["rows"]] == ["instance.flavor.t1-nano", "volume.gb.standard"]


def test_consumption_uses_the_tenants_discount(api, a_owner, operator, tenant_a, make_instance, catalog, clock):
    services.set_tenant_price(operator, tenant=tenant_a, product=catalog["instance.flavor.t1-nano"],
                              discount_percent="50")
    open_usage(make_instance(), product_code="instance.flavor.t1-nano", quantity=1, at=T0)
    clock.now = T0 + timedelta(hours=10)
    assert api(a_owner).get("/api/v1/consumption").json()["total"] == "0.18"  # 10 h × 0.018


def test_consumption_refuses_a_bad_group_or_window(api, a_owner, catalog):
    client = api(a_owner)
    group = client.get("/api/v1/consumption?group=month")
    backwards = client.get("/api/v1/consumption?from=2026-03-05&to=2026-03-01")
    too_long = client.get("/api/v1/consumption?from=2024-01-01&to=2026-03-01")
    not_a_day = client.get("/api/v1/consumption?from=yesterday")
    assert group.status_code == 400 and list(group.json()["fields"]) == ["group"]
    assert backwards.status_code == 400 and backwards.json()["fields"] == {"to": ["On or after from."]}
    assert too_long.status_code == 400 and list(too_long.json()["fields"]) == ["from"]
    assert not_a_day.status_code == 400 and list(not_a_day.json()["fields"]) == ["from"]


# --- prices -----------------------------------------------------------------------------------

def test_price_list_shows_what_the_tenant_pays(api, a_owner, operator, tenant_a, catalog, clock):
    _monthly_price(operator, catalog, clock)
    services.set_tenant_price(operator, tenant=tenant_a, product=catalog["eip.hour"], discount_percent="20")

    prices = {p["product"]: p for p in api(a_owner).get("/api/v1/prices").json()}

    assert set(prices) == {code for code in catalog}
    nano = prices["instance.flavor.t1-nano"]
    assert (nano["hourly"], nano["monthly"], nano["yearly"], nano["currency"], nano["region"], nano["unit"]) == (
        "0.036000", "20.0000", None, "USD", "default", "hour")
    assert (prices["eip.hour"]["hourly"], prices["eip.hour"]["discount_percent"]) == ("0.004000", "20.00")


# --- orders and subscriptions -----------------------------------------------------------------

def test_orders_list_with_items_and_are_404_across_tenants(api, a_owner, b_owner, operator, tenant_a, funded,
                                                          catalog, make_instance):
    vm = make_instance()
    order = order_services.place_order(
        operator, tenant=tenant_a, kind=Order.PURCHASE, billing_mode=Order.MONTHLY, resource=vm,
        idempotency_key="buy-1", lines=[order_services.Line(product=catalog["instance.flavor.t1-nano"],
                                                            unit_price=Decimal("12.5"), amount=Decimal("12.50"))])

    listed = api(a_owner).get("/api/v1/orders?kind=purchase").json()["results"]
    detail = api(a_owner).get(f"/api/v1/orders/{order.public_id}").json()

    assert [o["id"] for o in listed] == [order.public_id]
    assert (detail["amount"], detail["status"], detail["resource_id"]) == ("12.5000", "paid", vm.public_id)
    assert [(i["product"], i["amount"]) for i in detail["items"]] == [("instance.flavor.t1-nano", "12.5000")]
    assert api(b_owner).get(f"/api/v1/orders/{order.public_id}").status_code == 404
    assert api(a_owner).get("/api/v1/orders?status=refunded").json()["results"] == []


@pytest.fixture
def subscription(operator, actor, a_owner, catalog, clock, funded, make_instance):
    _monthly_price(operator, catalog, clock)
    return subscription_services.subscribe(actor(a_owner), resource=make_instance(),
                                           product_code="instance.flavor.t1-nano", term="monthly",
                                           idempotency_key="sub-1")


def test_subscriptions_renew_and_toggle_auto_renew(api, a_owner, subscription, tenant_a):
    client = api(a_owner)
    url = f"/api/v1/subscriptions/{subscription.public_id}"

    listed = client.get("/api/v1/subscriptions").json()["results"]
    toggled = client.patch(url, {"auto_renew": True}, format="json")
    renewed = client.post(f"{url}/renew", {"periods": 1, "idempotency_key": "renew-1"}, format="json")
    again = client.post(f"{url}/renew", {"periods": 1, "idempotency_key": "renew-1"}, format="json")
    bad = client.post(f"{url}/renew", {"periods": 0}, format="json")

    assert [s["id"] for s in listed] == [subscription.public_id]
    assert toggled.status_code == 200 and toggled.json()["auto_renew"] is True
    assert renewed.status_code == 200 and renewed.json()["expires_at"].startswith("2026-05-01")
    assert again.json()["expires_at"] == renewed.json()["expires_at"]
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"periods", "idempotency_key"}
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("50") - 2 * Decimal("20")


def test_another_tenant_cannot_renew_or_toggle(api, b_owner, subscription, tenant_a):
    client = api(b_owner)
    url = f"/api/v1/subscriptions/{subscription.public_id}"
    assert client.get(url).status_code == 404
    assert client.patch(url, {"auto_renew": True}, format="json").status_code == 404
    assert client.post(f"{url}/renew", {"idempotency_key": "x"}, format="json").status_code == 404
    assert Order.objects.filter(kind=Order.RENEW).count() == 0


def test_a_renewal_the_wallet_cannot_cover_is_402(api, a_owner, subscription):
    response = api(a_owner).post(f"/api/v1/subscriptions/{subscription.public_id}/renew",
                                 {"periods": 3, "idempotency_key": "renew-big"}, format="json")
    assert response.status_code == 402 and response.json()["code"] == "insufficient_funds"


# --- payments ---------------------------------------------------------------------------------

def test_recharge_answers_the_checkout_url(api, a_owner, b_owner, gateway, catalog):
    response = api(a_owner).post("/api/v1/payments", {"amount": "25.00", "idempotency_key": "pay-1"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["amount"], body["currency"], body["status"]) == ("25.0000", "USD", "pending")
    assert body["checkout_url"] == f"https://checkout.test/cs_{body['id']}"
    assert [p["id"] for p in api(a_owner).get("/api/v1/payments").json()["results"]] == [body["id"]]
    assert api(b_owner).get(f"/api/v1/payments/{body['id']}").status_code == 404


def test_recharge_without_gateway_keys_is_503_and_writes_nothing(api, a_owner, no_gateway, catalog):
    response = api(a_owner).post("/api/v1/payments", {"amount": "25.00", "idempotency_key": "pay-1"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "gateway_not_configured"
    assert not Payment.objects.exists()


def test_recharge_validates_its_shape(api, a_owner, gateway, catalog):
    response = api(a_owner).post("/api/v1/payments", {"amount": "lots"}, format="json")
    assert response.status_code == 400 and set(response.json()["fields"]) == {"amount", "idempotency_key"}


# --- notices ----------------------------------------------------------------------------------

def test_notices_are_listed_and_marked_read_by_their_tenant_only(api, a_owner, b_owner, tenant_a):
    notice = notices.notify(tenant_a, kind="low_balance", message="Balance low.", key="low:1")

    unread = api(a_owner).get("/api/v1/notices?unread=true").json()["results"]
    refused = api(b_owner).post(f"/api/v1/notices/{notice.pk}/read")
    read = api(a_owner).post(f"/api/v1/notices/{notice.pk}/read")

    assert [(n["id"], n["kind"], n["message"]) for n in unread] == [(notice.pk, "low_balance", "Balance low.")]
    assert refused.status_code == 404
    assert read.status_code == 200 and read.json()["read_at"] is not None
    assert api(a_owner).get("/api/v1/notices?unread=true").json()["results"] == []
    assert api(b_owner).get("/api/v1/notices").json()["results"] == []


# --- statements -------------------------------------------------------------------------------

def test_statement_json_and_csv(api, a_owner, b_owner, operator, tenant_a, funded, clock):
    clock.now = T0 + timedelta(days=3)
    services.charge(operator, tenant=tenant_a, amount="7.25", currency="USD", idempotency_key="c1", reason="ip")
    client = api(a_owner)

    months = client.get("/api/v1/statements").json()
    body = client.get("/api/v1/statements/2026-03").json()
    csv = client.get("/api/v1/statements/2026-03.csv")

    assert months == [{"month": "2026-03"}]
    assert (body["opening"], body["closing"], body["totals"]) == ("0.00", "42.75", {"recharge": "50.00",
                                                                                    "charge": "-7.25"})
    assert [e["kind"] for e in body["entries"]] == ["recharge", "charge"]
    lines = csv.content.decode().splitlines()
    assert csv["Content-Type"].startswith("text/csv") and "statement-2026-03.csv" in csv["Content-Disposition"]
    assert lines[1].startswith("2026-03-01,,opening balance,,0.00,USD")
    assert lines[3].split(",")[2:6] == ["charge", "-7.25", "42.75", "USD"]
    assert lines[-1].startswith("2026-04-01,,closing balance,,42.75,USD")
    assert client.get("/api/v1/statements/2026-13").status_code == 404
    assert client.get("/api/v1/statements/2026-05").status_code == 404  # not yet
    assert api(b_owner).get("/api/v1/statements/2026-03").json()["entries"] == []
    assert api(b_owner).get(f"/api/v1/statements/2026-03?tenant={tenant_a.public_id}").status_code == 404
    assert Transaction.objects.filter(tenant=tenant_a).count() == 2
