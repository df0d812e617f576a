"""Recharges through the payment gateway: validation, the pending order and payment, signed
webhooks (signatures made with Stripe's own scheme, verified by the real StripeGateway), replays,
out-of-order events, mismatches, isolation, and a portal without keys. Only Stripe's API calls
are replaced (OfflineStripe keeps checkout sessions in a dict)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import stripe
from django.test import Client

from apps.billing import gateways, payment_services
from apps.billing.gateways.base import CheckoutSession, GatewayError
from apps.billing.gateways.stripe import StripeGateway, session_state
from apps.billing.models import GatewayCustomer, GatewayEvent, Order, Payment, Transaction, Wallet
from apps.core.exceptions import Conflict, NotFound, PermissionDenied, Unavailable, ValidationFailed

SECRET = "whsec_unit_test_secret"
RETURN = "https://portal.test/billing/recharge"
WEBHOOK = "/billing/webhooks/stripe"


class StripeBook:
    """What OfflineStripe was asked: customers, checkouts, sessions; `fail_next` makes the next
    checkout fail like a timeout."""

    def __init__(self):
        self.customers: list = []
        self.checkouts: list = []
        self.sessions: dict[str, dict] = {}
        self.fail_next = False


class OfflineStripe(StripeGateway):
    """StripeGateway with its settings and webhook verification as they are, and checkout
    sessions and customers kept in a StripeBook instead of at Stripe."""

    def __init__(self, book: StripeBook):
        super().__init__()
        self.book = book

    def create_customer(self, customer):
        self.book.customers.append(customer)
        return f"cus_{len(self.book.customers)}"

    def create_checkout(self, checkout, *, success_url, cancel_url):
        if self.book.fail_next:
            self.book.fail_next = False
            raise GatewayError("timed out")
        self.book.checkouts.append((checkout, success_url, cancel_url))
        session_id = f"cs_test_{len(self.book.checkouts)}"
        self.book.sessions[session_id] = {
            "id": session_id, "object": "checkout.session", "status": "open", "payment_status": "unpaid",
            "amount_total": int(checkout.amount * 100), "currency": checkout.currency.lower(),
            "client_reference_id": checkout.reference, "metadata": {"payment": checkout.reference},
        }
        return CheckoutSession(external_id=session_id, url=f"https://checkout.test/{session_id}")

    def retrieve(self, external_id):
        return session_state(self.book.sessions[external_id])


@pytest.fixture
def gateway(settings, monkeypatch) -> StripeBook:
    settings.PORTAL_STRIPE_SECRET_KEY = "sk_test_unit"
    settings.PORTAL_STRIPE_WEBHOOK_SECRET = SECRET
    settings.PORTAL_STRIPE_API_BASE = ""
    book = StripeBook()
    monkeypatch.setitem(gateways.GATEWAYS, "stripe", lambda: OfflineStripe(book))
    return book


@pytest.fixture
def start(a_owner, actor, gateway):
    """start(amount="25.00", key="k1", who=a_owner) -> a pending Payment of 25.00 USD."""

    def make(amount="25.00", key="k1", who=None, currency="USD") -> Payment:
        return payment_services.start_recharge(actor(who or a_owner), amount=amount, currency=currency,
                                               idempotency_key=key, return_url=RETURN)

    return make


def event(kind: str, payment: Payment, *, event_id: str = "evt_1", amount_total: int | None = None,
          currency: str = "usd", payment_status: str = "paid") -> bytes:
    session = {"id": payment.external_id, "object": "checkout.session", "client_reference_id": payment.public_id,
               "amount_total": int(payment.amount * 100) if amount_total is None else amount_total,
               "currency": currency, "payment_status": payment_status, "metadata": {"payment": payment.public_id}}
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": session}}).encode()


def post(payload: bytes, *, secret: str = SECRET, signature: str | None = None):
    """POST a webhook signed as Stripe signs: HMAC-SHA256 of "{t}.{payload}", `t=…,v1=…`."""
    header = signature if signature is not None else stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret)
    return Client().post(WEBHOOK, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def balance(tenant) -> Decimal:
    return Wallet.objects.get(tenant=tenant).balance


# --- starting a recharge ---------------------------------------------------------------------

def test_start_recharge_writes_a_pending_order_and_payment_and_opens_a_checkout(start, gateway, tenant_a):
    payment = start("25.00")

    assert payment.status == Payment.PENDING and payment.gateway == "stripe"
    assert (payment.amount, payment.currency) == (Decimal("25.00"), "USD")
    assert payment.external_id == "cs_test_1" and payment.checkout_url == "https://checkout.test/cs_test_1"
    order = payment.order
    assert (order.kind, order.status, order.amount, order.charge) == (Order.RECHARGE, Order.PENDING, 25, None)
    checkout, success_url, cancel_url = gateway.checkouts[0]
    assert (checkout.reference, checkout.tenant_reference, checkout.customer) == (
        payment.public_id, tenant_a.public_id, "cus_1")
    assert success_url == cancel_url == f"{RETURN}?payment={payment.public_id}"
    assert balance(tenant_a) == 0


def test_the_same_key_returns_the_same_payment_and_session(start, gateway):
    first = start("25.00", key="k1")
    again = start("25.00", key="k1")

    assert again.pk == first.pk and again.external_id == first.external_id
    assert len(gateway.checkouts) == 1
    with pytest.raises(Conflict) as refused:
        start("30.00", key="k1")
    assert refused.value.code == "idempotency_key_reused"
    assert Payment.objects.count() == 1


def test_a_tenant_is_one_gateway_customer(start, gateway, tenant_a):
    start(key="k1")
    start(key="k2")

    assert [c.reference for c in gateway.customers] == [tenant_a.public_id]
    assert list(GatewayCustomer.objects.values_list("tenant", "gateway", "external_id")) == [
        (tenant_a.pk, "stripe", "cus_1")]


def test_a_gateway_that_does_not_answer_is_503_and_the_retry_carries_on(start, gateway):
    gateway.fail_next = True
    with pytest.raises(Unavailable) as unavailable:
        start(key="k1")
    assert unavailable.value.status == 503
    pending = Payment.objects.get()
    assert (pending.status, pending.external_id) == (Payment.PENDING, "")

    payment = start(key="k1")

    assert payment.pk == pending.pk and payment.external_id == "cs_test_1"
    assert len(gateway.checkouts) == 1


@pytest.mark.parametrize(("amount", "currency", "field", "message"), [
    ("0", "USD", "amount", "More than zero."),
    ("-5", "USD", "amount", "More than zero."),
    ("10.001", "USD", "amount", "At most 2 decimal places."),
    ("10", "XYZ", "currency", "One of EUR, JPY, USD."),
    ("10", "EUR", "currency", "Use USD."),
    ("4.99", "USD", "amount", "At least 5."),
    ("10000.01", "USD", "amount", "At most 10000."),
    (0.1, "USD", "amount", "A decimal number, e.g. 10.50."),
])
def test_bad_amounts_are_400_on_their_field_and_write_nothing(start, amount, currency, field, message):
    with pytest.raises(ValidationFailed) as refused:
        start(amount, currency=currency)

    assert refused.value.status == 400
    assert refused.value.fields == {field: [message]}
    assert not Payment.objects.exists() and not Order.objects.exists()


def test_a_read_only_member_cannot_recharge(start, a_readonly):
    with pytest.raises(PermissionDenied):
        start(who=a_readonly)
    assert not Payment.objects.exists()


def test_without_keys_a_recharge_is_503_with_the_message(start, settings):
    settings.PORTAL_STRIPE_SECRET_KEY = ""

    assert payment_services.gateway_configured() is False
    with pytest.raises(payment_services.GatewayNotConfigured) as refused:
        start()
    assert (refused.value.status, refused.value.code) == (503, "gateway_not_configured")
    assert refused.value.message == "The payment gateway is not configured; ask an operator to credit your wallet."
    assert not Payment.objects.exists()


def test_without_a_webhook_secret_events_are_503_and_nothing_is_recorded(start, settings):
    payment = start()
    settings.PORTAL_STRIPE_WEBHOOK_SECRET = ""

    response = post(event("checkout.session.completed", payment))

    assert response.status_code == 503 and response.json()["code"] == "gateway_not_configured"
    assert not GatewayEvent.objects.exists()


# --- webhooks --------------------------------------------------------------------------------

def test_a_signed_completed_event_credits_the_wallet_once_and_a_replay_changes_nothing(start, tenant_a):
    payment = start("25.00")
    payload = event("checkout.session.completed", payment)

    first = post(payload)
    replay = post(payload)

    assert (first.status_code, first.json()) == (200, {"received": True, "outcome": "credited"})
    assert (replay.status_code, replay.json()) == (200, {"received": True, "outcome": "duplicate"})
    assert balance(tenant_a) == Decimal("25.00")
    entry = Transaction.objects.get(tenant=tenant_a)
    assert (entry.kind, entry.amount, entry.idempotency_key) == ("recharge", 25, f"payment:{payment.public_id}")
    payment.refresh_from_db()
    assert (payment.status, payment.transaction_id) == (Payment.SUCCEEDED, entry.pk)
    order = Order.objects.get(pk=payment.order_id)
    assert (order.status, order.charge_id) == (Order.PAID, None) and order.paid_at is not None
    assert list(GatewayEvent.objects.values_list("event_id", "outcome")) == [("evt_1", "credited")]


def test_the_same_payment_completed_by_two_events_is_credited_once(start, tenant_a):
    payment = start("25.00")

    post(event("checkout.session.completed", payment, event_id="evt_1"))
    second = post(event("checkout.session.async_payment_succeeded", payment, event_id="evt_2"))

    assert second.json()["outcome"] == "no_change"
    assert balance(tenant_a) == Decimal("25.00")


@pytest.mark.parametrize("signature", [
    "t=1700000000,v1=" + "0" * 64,                    # made up
    None,                                             # signed with another secret (below)
    "",                                               # no signature at all
])
def test_a_bad_signature_is_400_and_nothing_is_recorded_or_credited(start, tenant_a, signature):
    payment = start()
    payload = event("checkout.session.completed", payment)

    response = post(payload, secret="whsec_someone_else", signature=signature)

    assert response.status_code == 400 and response.json()["code"] == "bad_signature"
    assert not GatewayEvent.objects.exists()
    assert balance(tenant_a) == 0
    assert Payment.objects.get().status == Payment.PENDING


def test_an_altered_payload_is_400(start, tenant_a):
    payment = start("25.00")
    signed = event("checkout.session.completed", payment)
    header = stripe.WebhookSignature.generate_signature_header(signed.decode(), SECRET)
    altered = signed.replace(b'"amount_total": 2500', b'"amount_total": 250000')

    response = post(altered, signature=header)

    assert response.status_code == 400
    assert balance(tenant_a) == 0


def test_an_old_signature_is_400(start, tenant_a):
    payment = start()
    payload = event("checkout.session.completed", payment)
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET, timestamp=1_000_000_000)

    assert post(payload, signature=header).status_code == 400
    assert balance(tenant_a) == 0


def test_an_expiry_after_the_completion_changes_nothing(start, tenant_a):
    payment = start("25.00")

    post(event("checkout.session.completed", payment, event_id="evt_1"))
    late = post(event("checkout.session.expired", payment, event_id="evt_2", payment_status="unpaid"))

    assert late.json()["outcome"] == "no_change"
    payment.refresh_from_db()
    assert payment.status == Payment.SUCCEEDED and Order.objects.get().status == Order.PAID
    assert balance(tenant_a) == Decimal("25.00")


def test_a_completion_after_the_expiry_still_credits(start, tenant_a):
    payment = start("25.00")

    expired = post(event("checkout.session.expired", payment, event_id="evt_1", payment_status="unpaid"))
    assert expired.json()["outcome"] == "expired"
    assert (Payment.objects.get().status, Order.objects.get().status) == (Payment.EXPIRED, Order.FAILED)

    completed = post(event("checkout.session.completed", payment, event_id="evt_2"))

    assert completed.json()["outcome"] == "credited"
    assert (Payment.objects.get().status, Order.objects.get().status) == (Payment.SUCCEEDED, Order.PAID)
    assert balance(tenant_a) == Decimal("25.00")


def test_a_failed_async_payment_fails_the_order(start, tenant_a):
    payment = start()

    pending = post(event("checkout.session.completed", payment, event_id="evt_1", payment_status="unpaid"))
    failed = post(event("checkout.session.async_payment_failed", payment, event_id="evt_2",
                        payment_status="unpaid"))

    assert (pending.json()["outcome"], failed.json()["outcome"]) == ("pending", "failed")
    payment.refresh_from_db()
    assert (payment.status, payment.message) == (Payment.FAILED, "The payment failed.")
    assert Order.objects.get().status == Order.FAILED
    assert balance(tenant_a) == 0


@pytest.mark.parametrize(("amount_total", "currency"), [(2499, "usd"), (2500, "eur"), (2500, "gbp")])
def test_an_event_whose_amount_or_currency_differs_credits_nothing(start, tenant_a, amount_total, currency):
    payment = start("25.00")

    response = post(event("checkout.session.completed", payment, amount_total=amount_total, currency=currency))

    assert (response.status_code, response.json()["outcome"]) == (200, "mismatch")
    assert GatewayEvent.objects.get().outcome == "mismatch"
    assert Payment.objects.get().status == Payment.PENDING
    assert balance(tenant_a) == 0


def test_events_about_other_things_are_kept_and_ignored(start, tenant_a):
    payload = json.dumps({"id": "evt_c", "object": "event", "type": "customer.created",
                          "data": {"object": {"id": "cus_1"}}}).encode()

    response = post(payload)

    assert response.json() == {"received": True, "outcome": "ignored"}
    assert GatewayEvent.objects.get().type == "customer.created"


def test_an_event_for_a_session_the_portal_never_opened_credits_nothing(start, tenant_a):
    payment = start()
    payment.external_id, payment.public_id = "cs_unknown", "pay-zzzzzzzz"

    assert post(event("checkout.session.completed", payment)).json()["outcome"] == "unknown_payment"
    assert balance(tenant_a) == 0


def test_an_unknown_gateway_is_404_and_only_post_is_taken(gateway):
    assert Client().post("/billing/webhooks/paypal", data=b"{}", content_type="application/json").status_code == 404
    assert Client().get(WEBHOOK).status_code == 405


# --- the payer comes back --------------------------------------------------------------------

def test_refresh_applies_what_the_gateway_says(start, gateway, a_owner, actor, tenant_a):
    payment = start("25.00")
    assert payment_services.refresh_payment(actor(a_owner), payment=payment).status == Payment.PENDING

    gateway.sessions[payment.external_id].update(status="complete", payment_status="paid")
    refreshed = payment_services.refresh_payment(actor(a_owner), payment=payment)

    assert refreshed.status == Payment.SUCCEEDED
    assert balance(tenant_a) == Decimal("25.00")
    # The webhook arriving afterwards finds it done.
    assert post(event("checkout.session.completed", payment)).json()["outcome"] == "no_change"
    assert balance(tenant_a) == Decimal("25.00")


def test_another_tenant_never_sees_a_payment(start, b_owner, actor):
    payment = start()

    with pytest.raises(NotFound):
        payment_services.refresh_payment(actor(b_owner), payment=payment)
    assert not Payment.objects.for_actor(actor(b_owner)).exists()
    assert Payment.objects.get().status == Payment.PENDING
