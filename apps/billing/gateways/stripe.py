"""Stripe Checkout (the official `stripe` library): a hosted payment page per recharge, the
tenant as one Stripe Customer, and signed webhook events. PORTAL_STRIPE_API_BASE points the
client elsewhere (a local stand-in in tests); Stripe's own API when empty."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings

from apps.billing import money
from apps.billing.gateways.base import (
    EXPIRED, FAILED, PENDING, SUCCEEDED, BadSignature, Checkout, CheckoutSession, Customer, GatewayError,
    GatewayEventData, PaymentGateway, header,
)

# Checkout session events the portal acts on, and what they make of the payment. A completed
# session is paid unless its payment method settles later (then an async_payment_* follows).
EVENT_STATUS = {
    "checkout.session.completed": None,
    "checkout.session.async_payment_succeeded": SUCCEEDED,
    "checkout.session.async_payment_failed": FAILED,
    "checkout.session.expired": EXPIRED,
}


class StripeGateway(PaymentGateway):
    """Stripe Checkout in `payment` mode, one line item of the recharge amount."""

    code = "stripe"

    def __init__(self):
        self.secret_key = settings.PORTAL_STRIPE_SECRET_KEY
        self.webhook_secret = settings.PORTAL_STRIPE_WEBHOOK_SECRET
        self.api_base = settings.PORTAL_STRIPE_API_BASE

    def is_configured(self) -> bool:
        return bool(self.secret_key and self.webhook_secret)

    def _client(self) -> stripe.StripeClient:
        bases = {"api": self.api_base.rstrip("/")} if self.api_base else None
        return stripe.StripeClient(self.secret_key, base_addresses=bases)

    def create_customer(self, customer: Customer) -> str:
        """One Customer per tenant; the key makes a retried first payment find the same one."""
        params: dict[str, Any] = {"name": customer.name, "metadata": {"tenant": customer.reference}}
        if customer.email:
            params["email"] = customer.email
        made = self._call(self._client().v1.customers.create, params,
                          idempotency_key=f"customer:{customer.reference}")
        return made.id

    def create_checkout(self, checkout: Checkout, *, success_url: str, cancel_url: str) -> CheckoutSession:
        """A Checkout session for the recharge; retried for the same payment, the same session."""
        references = {"payment": checkout.reference, "tenant": checkout.tenant_reference}
        params = {
            "mode": "payment",
            "customer": checkout.customer,
            "client_reference_id": checkout.reference,
            "metadata": references,
            "payment_intent_data": {"metadata": references},
            "line_items": [{"quantity": 1, "price_data": {
                "currency": checkout.currency.lower(),
                "unit_amount": _minor_units(checkout.amount, checkout.currency),
                "product_data": {"name": checkout.description},
            }}],
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        session = self._call(self._client().v1.checkout.sessions.create, params,
                             idempotency_key=f"checkout:{checkout.reference}")
        return CheckoutSession(external_id=session.id, url=session.url)

    def retrieve(self, external_id: str) -> GatewayEventData:
        return session_state(self._call(self._client().v1.checkout.sessions.retrieve, external_id).to_dict())

    def parse_event(self, payload: bytes, headers: Mapping[str, str]) -> GatewayEventData:
        try:
            stripe.Webhook.construct_event(payload, header(headers, "Stripe-Signature"), self.webhook_secret)
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise BadSignature(str(exc).splitlines()[0] if str(exc) else "unreadable event") from None
        kind = event.get("type", "")
        if kind not in EVENT_STATUS:
            return GatewayEventData(id=event.get("id", ""), type=kind, payload=event)
        session = event.get("data", {}).get("object", {})
        status = EVENT_STATUS[kind] or (SUCCEEDED if session.get("payment_status") == "paid" else PENDING)
        return _read_session(session, event_id=event.get("id", ""), kind=kind, status=status, payload=event)

    @staticmethod
    def _call(method, *args, idempotency_key: str | None = None):
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        try:
            return method(*args, options=options)
        except stripe.StripeError as exc:
            raise GatewayError(exc.user_message or str(exc) or type(exc).__name__) from exc


def _minor_units(amount: Decimal, currency: str) -> int:
    """10.50 USD → 1050; amounts were checked to have at most the currency's places."""
    return int(amount.scaleb(money.places(currency)))


def session_state(session: dict[str, Any]) -> GatewayEventData:
    """A retrieved Checkout session: paid, expired, or still pending (open, or paid by a method
    that settles later)."""
    if session.get("status") == "expired":
        status = EXPIRED
    elif session.get("status") == "complete" and session.get("payment_status") == "paid":
        status = SUCCEEDED
    else:
        status = PENDING
    return _read_session(session, event_id="", kind="checkout.session", status=status, payload=session)


def _read_session(session: dict[str, Any], *, event_id: str, kind: str, status: str,
                  payload: dict[str, Any]) -> GatewayEventData:
    """A Checkout session as the portal reads it (an amount in a currency it does not know is None)."""
    currency = (session.get("currency") or "").upper()
    places = money.currencies().get(currency)
    total = session.get("amount_total")
    return GatewayEventData(
        id=event_id, type=kind, external_id=session.get("id", ""), status=status,
        reference=session.get("client_reference_id") or (session.get("metadata") or {}).get("payment", ""),
        amount=Decimal(total).scaleb(-places) if places is not None and isinstance(total, int) else None,
        currency=currency, payload=payload)
