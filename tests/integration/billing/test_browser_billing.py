"""End-to-end billing in a real Chromium against the portal under daphne, with the real libvirtd
and the Stripe stand-in (tests/stripe_standin.py, localstripe behind it) as the payment gateway.

A tenant with an empty wallet sees the price of t1.nano on the create form, recharges 25.00
through the gateway's checkout page (the stand-in's, where Stripe's would be; its signed
`checkout.session.completed` webhook reaches the portal), creates the instance, lets it run,
and after settlement finds the charge in its transactions and the instance's cost on the
consumption page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.conf import settings

expect = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed").expect

from apps.billing import services
from apps.billing.models import GatewayEvent, Payment, Transaction, UsageInterval, Wallet
from apps.billing.tasks import settle_usage
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.models import Instance
from apps.core.actor import Actor
from tests.factories.tenants import PASSWORD, make_tenant
from tests.integration.conftest import serve_portal
from tests.integration.guests import remove_instances
from tests.integration.pages import sign_in
from tests.stripe_standin import StripeStandIn

pytestmark = [pytest.mark.browser, pytest.mark.libvirt, pytest.mark.stripe, pytest.mark.integration]

RUNNING_TIMEOUT_MS = 60_000
HOURLY = "18.000000"  # 0.005 a second: a few seconds of running cost whole cents
RUN_SECONDS = 6


@pytest.fixture(scope="module")
def stripe_stand_in(tmp_path_factory) -> Iterator[StripeStandIn]:
    with StripeStandIn(tmp_path_factory.mktemp("stripe")) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def daphne_server(django_db_setup, stripe_stand_in):
    """The portal under daphne with its Stripe settings on the stand-in, whose webhooks go back
    to this server."""
    with serve_portal("billing", PORTAL_PAYMENT_GATEWAY="stripe", PORTAL_STRIPE_API_BASE=stripe_stand_in.api_base,
                      PORTAL_STRIPE_SECRET_KEY=stripe_stand_in.secret_key,
                      PORTAL_STRIPE_WEBHOOK_SECRET=stripe_stand_in.webhook_secret) as server:
        stripe_stand_in.webhook_url = f"{server.url}/billing/webhooks/stripe"
        yield server


@pytest.mark.django_db(transaction=True)  # the server process must see (and write) committed rows
def test_price_before_create_recharge_through_checkout_and_the_charge_in_consumption(
        tiny_image, browser_context, daphne_server, stripe_stand_in, output_dir):
    base = daphne_server.url
    tenant = make_tenant("Billing Tenant", owner_username="payer")
    system = Actor.system()
    product = services.create_product(system, code="instance.flavor.t1.nano", name="t1.nano", unit="hour",
                                      meter="instance.flavor")
    services.add_price(system, product=product, region=settings.PORTAL_DEFAULT_REGION, currency="USD", hourly=HOURLY,
                       monthly="9000.00")
    driver = LibvirtDriver(settings.PORTAL_LIBVIRT_URI)
    page = browser_context.new_page()
    try:
        sign_in(page, "payer", PASSWORD)

        # The price, before anything is created.
        page.goto("/instances/")
        form = page.locator("#create-instance")
        form.locator("select[name=flavor]").select_option("t1.nano")
        price = page.locator("#instance-price")
        expect(price).to_contain_text("18.00 USD per hour")
        expect(price).to_contain_text("prepaid 9000.00 USD per month")

        # An empty wallet cannot cover an hour of it: refused on the page, nothing made.
        form.locator("input[name=name]").fill("billed-vm")
        form.locator("select[name=image]").select_option(tiny_image.public_id)
        form.get_by_role("button", name="Create").click()
        expect(page.locator(".notification.is-danger, .help.is-danger").first).to_contain_text("Recharge")
        assert not Instance.objects.filter(tenant=tenant).exists()

        # Recharge 25.00 through the gateway's checkout page (the stand-in's).
        page.goto("/billing/recharge/")
        page.locator("#recharge-form input[name=amount]").fill("25")
        page.locator("#recharge-form").get_by_role("button", name="Pay with the payment gateway").click()
        expect(page).to_have_url(re.compile(re.escape(f"{stripe_stand_in.api_base}/pay/") + r"\S+"))
        page.locator("#pay").click()
        expect(page.locator("#payment-status")).to_contain_text("succeeded")
        assert page.url.startswith(f"{base}/billing/recharge/?payment=")
        payment = Payment.objects.get(tenant=tenant)
        assert (payment.status, payment.amount) == (Payment.SUCCEEDED, Decimal("25.00"))
        assert GatewayEvent.objects.filter(type="checkout.session.completed").count() == 1  # the signed webhook
        assert Wallet.objects.get(tenant=tenant).balance == Decimal("25.00")
        assert Transaction.objects.filter(tenant=tenant, kind=Transaction.RECHARGE).count() == 1
        [checkout] = stripe_stand_in.checkout_creates()
        assert checkout.form["line_items[0][price_data][unit_amount]"] == "2500"  # in cents
        page.goto("/billing/overview/")
        expect(page.locator("body")).to_contain_text("25.00")

        # Now the instance is created, and runs.
        page.goto("/instances/")
        form = page.locator("#create-instance")
        form.locator("input[name=name]").fill("billed-vm")
        form.locator("select[name=flavor]").select_option("t1.nano")
        form.locator("select[name=image]").select_option(tiny_image.public_id)
        form.get_by_role("button", name="Create").click()
        expect(page.get_by_role("alert").filter(has_text="Instance creation started")).to_have_count(
            1, timeout=RUNNING_TIMEOUT_MS)
        instance = Instance.objects.get(tenant=tenant, name="billed-vm")
        assert instance.status == Instance.RUNNING, (instance.status, instance.status_reason)
        time.sleep(RUN_SECONDS)

        # Settlement charges what it used so far; the consumption page rates it too.
        settle_usage()
        charges = Transaction.objects.filter(tenant=tenant, kind=Transaction.CHARGE, resource_id=instance.public_id)
        assert charges.count() == 1
        charged = -charges.get().amount
        interval = UsageInterval.objects.get(resource_id=instance.public_id)
        assert charged >= Decimal("0.03"), (charged, interval)

        page.goto("/billing/transactions/")
        expect(page.locator("body")).to_contain_text(instance.public_id)
        expect(page.locator("body")).to_contain_text(f"-{charged:.2f}")
        page.goto("/billing/consumption/")
        row = page.locator("#by-resource tbody tr").filter(has_text=instance.public_id)
        expect(row).to_have_count(1)
        shown = Decimal(row.locator("td").nth(1).inner_text().strip())
        assert shown >= charged, (shown, charged)  # rated up to the page's moment, a little later
        page.screenshot(path=str(output_dir / "billing-consumption.png"), full_page=True)
    finally:
        page.close()
        remove_instances(tenant, driver)
