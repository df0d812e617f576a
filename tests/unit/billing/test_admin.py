"""Back office: the billing screens render, prices are added through the service (never in the
past), wallets are credited by actions, the ledger and usage are read-only."""

from decimal import Decimal

from apps.billing import services
from apps.billing.models import Price, Transaction, Wallet
from apps.billing.usage_services import open_usage
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
