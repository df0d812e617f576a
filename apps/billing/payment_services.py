"""Recharges paid through a payment gateway (Stripe Checkout): a pending order and payment, the
gateway's hosted page, and its signed events that credit the wallet exactly once.

A recharge is written before the gateway is asked, so a retry with the same idempotency key
finds the same payment and its session instead of opening a second one. Events are kept once
per (gateway, event id): a replay changes nothing. A payment that succeeded never moves back
(an `expired` arriving after `completed` changes nothing), and money that arrived is always
credited (a `completed` after `expired` still credits)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.billing import money, services
from apps.billing.gateways import UnknownGateway, get_gateway
from apps.billing.gateways.base import (
    EXPIRED, FAILED, PENDING, SUCCEEDED, Checkout, Customer, GatewayError, GatewayEventData, PaymentGateway,
)
from apps.billing.models import GatewayCustomer, GatewayEvent, Order, Payment
from apps.billing.services import clean_key
from apps.core import permissions
from apps.core.actor import Actor
from apps.core.audit import audited
from apps.core.exceptions import Conflict, DomainError, NotFound, Unavailable, ValidationFailed

# gateway_configured reads; start_recharge is audited in its two steps (payment.start writes the
# rows, payment.checkout asks the gateway); an event's or a refresh's change of a payment is
# audited as payment.update, and the credit it makes as wallet.recharge.
UNAUDITED = ("gateway_configured", "start_recharge", "handle_event", "refresh_payment")

FAILURE_MESSAGES = {FAILED: "The payment failed.", EXPIRED: "The checkout expired before it was paid."}


class GatewayNotConfigured(DomainError):
    """No payment gateway keys are set: tenants cannot pay in, operators credit wallets."""

    status = 503
    code = "gateway_not_configured"

    def __init__(self):
        super().__init__("The payment gateway is not configured; ask an operator to credit your wallet.")


def gateway_configured() -> bool:
    """Whether tenants can recharge through the portal's payment gateway."""
    try:
        return get_gateway().is_configured()
    except UnknownGateway:
        return False


def start_recharge(actor: Actor, *, amount, currency: str, idempotency_key: str, return_url: str) -> Payment:
    """Open a recharge of the actor's wallet: a pending `recharge` order and payment, and the
    gateway's checkout page (`payment.checkout_url`) to send the payer to. The payer comes back
    to `return_url` (with `?payment=<id>`). The same key again returns the same payment and
    session; a gateway that does not answer is 503, and the retry carries on."""
    try:
        gateway = get_gateway()
    except UnknownGateway:
        raise GatewayNotConfigured() from None
    payment = _open_payment(actor, gateway=gateway, amount=amount, currency=currency,
                            idempotency_key=idempotency_key, return_url=return_url)
    if payment.external_id or payment.status != PENDING:
        return payment
    return _open_checkout(actor, gateway=gateway, payment=payment, return_url=return_url)


@audited("payment.start", area="billing")
def _open_payment(actor: Actor, *, gateway: PaymentGateway, amount, currency: str, idempotency_key: str,
                  return_url: str) -> Payment:
    if actor.tenant is None:
        raise ValidationFailed("No current tenant selected.", code="no_tenant")
    permissions.require_area(actor, "billing", "change")
    if not gateway.is_configured():
        raise GatewayNotConfigured()
    currency = money.clean_currency(currency)
    amount = money.clean_amount(amount, currency)
    _check_limits(amount, currency)
    key = f"recharge:{clean_key(idempotency_key)}"
    if urlsplit(return_url or "").scheme not in ("http", "https"):
        raise ValidationFailed("A return address is required.", fields={"return_url": ["An http(s) URL."]})
    wallet = services.locked_wallet(actor.tenant.pk)
    if wallet.currency != currency:
        raise ValidationFailed(f"The wallet is in {wallet.currency}.", fields={"currency": [f"Use {wallet.currency}."]})
    earlier = Order.objects.filter(tenant_id=actor.tenant.pk, idempotency_key=key).select_related("payment").first()
    if earlier is not None:
        if earlier.kind != Order.RECHARGE or earlier.amount != amount or earlier.currency != currency:
            raise Conflict(f"The idempotency key {idempotency_key} was used for another order.",
                           code="idempotency_key_reused",
                           fields={"idempotency_key": ["Already used for another call."]})
        return earlier.payment
    user = actor.user if actor.user is not None and actor.user.pk else None
    order = Order.objects.create(tenant_id=actor.tenant.pk, kind=Order.RECHARGE, status=Order.PENDING,
                                 currency=currency, amount=amount, idempotency_key=key, created_by=user)
    return Payment.objects.create(tenant_id=actor.tenant.pk, gateway=gateway.code, amount=amount, currency=currency,
                                  order=order, created_by=user)


def _check_limits(amount, currency: str) -> None:
    """PORTAL_RECHARGE_MIN/MAX are in the default currency; other currencies have the gateway's."""
    if currency != settings.PORTAL_DEFAULT_CURRENCY:
        return
    low, high = settings.PORTAL_RECHARGE_MIN, settings.PORTAL_RECHARGE_MAX
    if amount < low:
        raise ValidationFailed(f"A recharge is at least {low} {currency}.", fields={"amount": [f"At least {low}."]})
    if amount > high:
        raise ValidationFailed(f"A recharge is at most {high} {currency}.", fields={"amount": [f"At most {high}."]})


@audited("payment.checkout", area="billing")
def _open_checkout(actor: Actor, *, gateway: PaymentGateway, payment: Payment, return_url: str) -> Payment:
    """Ask the gateway for the payment's checkout page, holding the payment's lock so two retries
    of one recharge wait for each other (the gateway's own idempotency keys cover a crash)."""
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.external_id or payment.status != PENDING:
        return payment
    back = _with_query(return_url, payment=payment.public_id)
    try:
        session = gateway.create_checkout(
            Checkout(reference=payment.public_id, tenant_reference=payment.tenant.public_id,
                     customer=_customer_id(gateway, payment.tenant, actor), amount=money.clean_amount(
                         payment.amount, payment.currency), currency=payment.currency,
                     description=f"Wallet recharge {payment.public_id}"),
            success_url=back, cancel_url=back)
    except GatewayError as exc:
        raise Unavailable(f"The payment gateway did not answer ({exc}); nothing was charged. Try again.") from exc
    payment.external_id, payment.checkout_url = session.external_id, session.url
    payment.save(update_fields=["external_id", "checkout_url"])
    return payment


def _customer_id(gateway: PaymentGateway, tenant, actor: Actor) -> str:
    """The tenant's customer id at the gateway, made on its first payment."""
    known = GatewayCustomer.objects.filter(tenant=tenant, gateway=gateway.code).first()
    if known is not None:
        return known.external_id
    email = actor.user.email if actor.user is not None else ""
    external_id = gateway.create_customer(Customer(reference=tenant.public_id, name=tenant.name, email=email))
    return GatewayCustomer.objects.get_or_create(tenant=tenant, gateway=gateway.code,
                                                 defaults={"external_id": external_id})[0].external_id


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


def handle_event(gateway_code: str, payload: bytes, headers) -> str:
    """A gateway's webhook: verify it (gateways.base.BadSignature when it does not, and nothing
    is recorded), keep it once per event id, and apply it to its payment. Returns the outcome:
    credited, failed, expired, no_change, pending, ignored (not an event about payments),
    unknown_payment, mismatch (amount or currency differ: nothing credited) or duplicate."""
    try:
        gateway = get_gateway(gateway_code)
    except UnknownGateway:
        raise NotFound(f"No payment gateway {gateway_code}.") from None
    if not gateway.is_configured():
        raise GatewayNotConfigured()
    data = gateway.parse_event(payload, headers)
    if not data.id:
        raise ValidationFailed("The event has no id.", fields={"id": ["Required."]})
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = GatewayEvent.objects.create(gateway=gateway.code, event_id=data.id, type=data.type[:128],
                                                    payload=data.payload)
        except IntegrityError:
            return "duplicate"
        event.outcome = _apply(gateway.code, data)
        event.save(update_fields=["outcome"])
    return event.outcome


def _apply(gateway_code: str, data: GatewayEventData) -> str:
    """Apply what the gateway says of a checkout to its payment, under the payment's lock."""
    if data.status is None:
        return "ignored"
    rows = Payment.objects.select_for_update()
    payment = rows.filter(gateway=gateway_code, external_id=data.external_id).first() if data.external_id else None
    if payment is None and data.reference:
        # The event may come before the session's id was stored (the gateway answered, we crashed).
        payment = rows.filter(gateway=gateway_code, public_id=data.reference, external_id="").first()
    if payment is None:
        return "unknown_payment"
    if data.amount is None or data.amount != payment.amount or data.currency != payment.currency:
        return "mismatch"
    if not payment.external_id:
        payment.external_id = data.external_id
        payment.save(update_fields=["external_id"])
    return _transition(payment, data.status)


def _transition(payment: Payment, status: str) -> str:
    """Move a locked payment to the gateway's `status`: success from any state but success,
    failure or expiry only from pending."""
    if status == PENDING:
        return "pending"
    if payment.status == SUCCEEDED or (status != SUCCEEDED and payment.status != PENDING):
        return "no_change"
    _move(Actor.system(tenant=payment.tenant), payment=payment, status=status)
    return "credited" if status == SUCCEEDED else status


@audited("payment.update", area="billing")
def _move(actor: Actor, *, payment: Payment, status: str) -> Payment:
    now = timezone.now()
    services.locked_wallet(payment.tenant_id)  # wallet before order, as refunds take them
    order = Order.objects.select_for_update().get(pk=payment.order_id)
    if status == SUCCEEDED:
        # Money in: a ledger entry keyed by the payment, linked here; the order charged nothing.
        payment.transaction = services.recharge(
            actor, tenant=payment.tenant, amount=money.clean_amount(payment.amount, payment.currency),
            currency=payment.currency, idempotency_key=f"payment:{payment.public_id}",
            reason=f"Payment {payment.public_id} ({payment.gateway})")
        order.status, order.paid_at, order.message = Order.PAID, now, ""
    else:
        order.status, order.message = Order.FAILED, FAILURE_MESSAGES[status]
    payment.status, payment.completed_at, payment.message = status, now, FAILURE_MESSAGES.get(status, "")
    payment.save(update_fields=["status", "completed_at", "message", "transaction"])
    order.save(update_fields=["status", "paid_at", "message", "updated_at"])
    return payment


def refresh_payment(actor: Actor, *, payment: Payment) -> Payment:
    """Ask the gateway about a payment not yet succeeded (the payer is back before the webhook)
    and apply the answer as an event would. Another tenant's payment does not exist (404)."""
    payment = Payment.objects.for_actor(actor).filter(pk=payment.pk).first()
    if payment is None:
        raise NotFound("No such payment.")
    if payment.status == SUCCEEDED or not payment.external_id:
        return payment
    try:
        gateway = get_gateway(payment.gateway)
        data = gateway.retrieve(payment.external_id) if gateway.is_configured() else None
    except (UnknownGateway, GatewayError):
        return payment  # nothing to learn now; the webhook still comes
    if data is not None:
        with transaction.atomic():
            _apply(payment.gateway, data)
    payment.refresh_from_db()
    return payment
