"""Recharges through the real stripe library against the Stripe stand-in and a real localstripe,
with signed webhooks delivered over HTTP to a live portal."""

from decimal import Decimal
from http.client import HTTPConnection, HTTPResponse
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from apps.billing import payment_services
from apps.billing.models import GatewayCustomer, GatewayEvent, Order, Payment, Transaction, Wallet

pytestmark = [pytest.mark.integration, pytest.mark.stripe, pytest.mark.django_db(transaction=True)]

RETURN = "https://portal.test/billing/recharge"


def recharge(actor, amount="25.00", key="k1"):
    return payment_services.start_recharge(actor, amount=amount, currency="USD", idempotency_key=key,
                                           return_url=RETURN)


def press_pay(checkout_url: str) -> HTTPResponse:
    """POST the checkout page's form, as the Pay button does, without following the redirect."""
    url = urlsplit(checkout_url)
    connection = HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("POST", url.path, body=b"", headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_start_recharge_opens_a_checkout_for_a_stripe_customer(stripe_standin, a_owner, actor, tenant_a):
    payment = recharge(actor(a_owner), "25.00")

    (created,) = stripe_standin.checkout_creates()
    assert created.authorization == f"Bearer {stripe_standin.secret_key}"
    assert created.idempotency_key == f"checkout:{payment.public_id}"
    form = created.form
    assert (form["mode"], form["line_items[0][quantity]"]) == ("payment", "1")
    assert (form["line_items[0][price_data][unit_amount]"], form["line_items[0][price_data][currency]"]) == (
        "2500", "usd")
    assert form["client_reference_id"] == form["metadata[payment]"] == payment.public_id
    assert form["metadata[tenant]"] == tenant_a.public_id
    assert form["success_url"] == f"{RETURN}?payment={payment.public_id}"
    # The customer is localstripe's, made once for the tenant with a key of its own.
    (customer_create,) = stripe_standin.customer_creates()
    assert customer_create.idempotency_key == f"customer:{tenant_a.public_id}"
    customers = stripe_standin.localstripe("/v1/customers")["data"]
    assert [(c["id"], c["metadata"]) for c in customers] == [(form["customer"], {"tenant": tenant_a.public_id})]
    assert GatewayCustomer.objects.get(tenant=tenant_a).external_id == form["customer"]
    assert payment.external_id in stripe_standin.sessions
    assert payment.checkout_url == f"{stripe_standin.api_base}/pay/{payment.external_id}"


def test_a_retry_sends_the_same_key_and_a_second_recharge_reuses_the_customer(stripe_standin, a_owner, actor):
    first = recharge(actor(a_owner), key="k1")
    # The portal lost the session's id (a crash after Stripe answered): the retry asks again.
    Payment.objects.filter(pk=first.pk).update(external_id="", checkout_url="")
    again = recharge(actor(a_owner), key="k1")
    second = recharge(actor(a_owner), "40.00", key="k2")

    creates = stripe_standin.checkout_creates()
    assert [r.idempotency_key for r in creates] == [f"checkout:{first.public_id}"] * 2 + [
        f"checkout:{second.public_id}"]
    assert again.pk == first.pk and again.external_id == first.external_id  # Stripe's answer, replayed
    assert len(stripe_standin.sessions) == 2
    assert len(stripe_standin.customer_creates()) == 1
    assert len(stripe_standin.localstripe("/v1/customers")["data"]) == 1
    assert creates[2].form["customer"] == creates[0].form["customer"]


def test_paying_delivers_a_signed_webhook_that_credits_once(stripe_standin, a_owner, actor, tenant_a):
    payment = recharge(actor(a_owner), "25.00")

    # The hosted page shows the amount and a Pay button; pressing it sends the payer back.
    with urlopen(payment.checkout_url) as page:
        assert "id='pay'" in (text := page.read().decode()) and "25.00 USD" in text
    pressed = press_pay(payment.checkout_url)
    assert (pressed.status, pressed.getheader("Location")) == (303, f"{RETURN}?payment={payment.public_id}")
    (delivery,) = stripe_standin.deliveries
    replay = stripe_standin.redeliver()

    assert (delivery.status, delivery.body) == (200, '{"received": true, "outcome": "credited"}')
    assert (replay.status, replay.body) == (200, '{"received": true, "outcome": "duplicate"}')
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("25.00")
    assert Transaction.objects.filter(tenant=tenant_a).count() == 1
    payment.refresh_from_db()
    assert payment.status == Payment.SUCCEEDED and Order.objects.get(pk=payment.order_id).status == Order.PAID
    assert GatewayEvent.objects.count() == 1


def test_the_payer_back_before_the_webhook_is_credited_by_refresh(stripe_standin, a_owner, actor, tenant_a):
    payment = recharge(actor(a_owner), "25.00")
    stripe_standin.sessions[payment.external_id].update(status="complete", payment_status="paid")

    refreshed = payment_services.refresh_payment(actor(a_owner), payment=payment)

    assert refreshed.status == Payment.SUCCEEDED
    assert Wallet.objects.get(tenant=tenant_a).balance == Decimal("25.00")


def test_an_expired_checkout_fails_the_order(stripe_standin, a_owner, actor, tenant_a):
    payment = recharge(actor(a_owner))

    delivery = stripe_standin.expire(payment.external_id)

    assert delivery.body == '{"received": true, "outcome": "expired"}'
    assert (Payment.objects.get().status, Order.objects.get().status) == (Payment.EXPIRED, Order.FAILED)
    assert Wallet.objects.get(tenant=tenant_a).balance == 0
