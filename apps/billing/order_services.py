"""Orders: every purchase is one (creating an on-demand resource, buying or renewing a prepaid
period, an upgrade or a downgrade, a top-up), with its lines, its amount and its status.

`place_order` runs inside the caller's transaction, as a part of the audited action that makes
or changes the resource: the money is taken under the wallet's lock in the same transaction, so
either the resource and its paid order both exist or neither does. A purchase the balance plus
the credit limit cannot cover is refused with 402 before anything is written. The idempotency
key is unique per tenant: a retried purchase returns its first order and charges nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.billing import money
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import Order, OrderItem, Product, Transaction
from apps.billing.services import locked_wallet, post
from apps.core.actor import Actor
from apps.core.audit import audited
from apps.core.exceptions import Conflict, ValidationFailed
from apps.tenants.models import Tenant
from apps.tenants.services import require_operator

# Parts of the audited purchase or refund that calls them (create, subscribe, renew, resize...).
UNAUDITED = ("place_order", "give_back")


@dataclass(frozen=True)
class Line:
    """An order line: `amount` is what it costs now (0 on demand, where `unit_price` is per hour
    and usage metering charges); `unit_price` per period when prepaid."""

    product: Product
    unit_price: Decimal
    amount: Decimal = Decimal(0)
    quantity: Decimal = Decimal(1)
    description: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None


def place_order(actor: Actor, *, tenant: Tenant, kind: str, lines: list[Line], idempotency_key: str,
                billing_mode: str = Order.ON_DEMAND, resource=None, resource_id: str = "") -> Order:
    """Record a paid order for `lines` and charge their sum to the tenant's wallet (nothing to
    charge when it is 0). Refused with 402 `insufficient_funds`, writing nothing, when the
    wallet cannot cover it. A key used before returns that order (the same purchase retried)."""
    if kind not in dict(Order.KIND_CHOICES) or billing_mode not in dict(Order.MODE_CHOICES):
        raise ValueError(f"unknown order kind {kind!r} or billing mode {billing_mode!r}")
    with transaction.atomic():
        wallet = locked_wallet(tenant.pk)
        earlier = Order.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
        if earlier is not None:
            return earlier
        places = money.places(wallet.currency)
        total = sum((line.amount for line in lines), Decimal(0)).quantize(Decimal(1).scaleb(-places))
        if total < 0:
            raise ValueError("order lines never sum below zero: refunds go through refund_order")
        if total > wallet.available:
            raise InsufficientFunds(
                f"This costs {total:.{places}f} {wallet.currency}; the balance ({wallet.balance:.{places}f}) and "
                f"credit limit ({wallet.credit_limit:.{places}f}) cannot cover it.",
                fields={"billing": ["Recharge the wallet first."]})
        now = timezone.now()
        refs = {"resource_type": resource._meta.model_name if resource is not None else "",
                "resource_id": resource.public_id if resource is not None else resource_id}
        order = Order.objects.create(tenant=tenant, kind=kind, status=Order.PAID, billing_mode=billing_mode,
                                     currency=wallet.currency, amount=total, idempotency_key=idempotency_key,
                                     created_by=_user(actor), paid_at=now, **refs)
        OrderItem.objects.bulk_create(
            OrderItem(order=order, product=line.product, description=line.description[:255], quantity=line.quantity,
                      unit_price=line.unit_price, amount=line.amount, period_start=line.period_start,
                      period_end=line.period_end) for line in lines)
        if total:
            order.charge = post(wallet, kind=Transaction.CHARGE, amount=-total, key=f"order:{order.public_id}",
                                actor=actor, reason=f"{order.get_kind_display()} {refs['resource_id']}".strip(),
                                **refs)
            order.save(update_fields=["charge", "updated_at"])
    return order


@audited("order.refund", area="billing")
def refund_order(actor: Actor, *, order: Order, amount=None, reason: str) -> Order:
    """An operator gives back `amount` (all that is left when not given) of a paid order to its
    wallet, with the reason. A fully refunded order becomes `refunded`."""
    require_operator(actor)
    if not (reason or "").strip():
        raise ValidationFailed("A reason is required.", fields={"reason": ["Say why."]})
    return give_back(actor, order=order, amount=amount, reason=reason)


def give_back(actor: Actor, *, order: Order, amount=None, reason: str) -> Order:
    """Refund `amount` (all that is left) of `order` into its wallet: an operator's refund or a
    downgrade's prorated difference, inside the caller's transaction."""
    with transaction.atomic():
        wallet = locked_wallet(order.tenant_id)
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status not in (Order.PAID, Order.REFUNDED) or not order.amount:
            raise Conflict(f"Order {order.public_id} is {order.status} and took no money.", code="not_refundable")
        left = order.amount - order.refunded
        amount = left if amount is None else money.clean_amount(amount, order.currency)
        if not left or amount > left:
            left_text = f"{left:.{money.places(order.currency)}f}"
            raise ValidationFailed(f"At most {left_text} {order.currency} of this order is left to refund.",
                                   fields={"amount": [f"At most {left_text}."]})
        entries = Transaction.objects.filter(wallet=wallet, idempotency_key__startswith=f"refund:{order.public_id}:")
        post(wallet, kind=Transaction.REFUND, amount=amount, key=f"refund:{order.public_id}:{entries.count() + 1}",
             actor=actor, reason=reason.strip()[:255], resource_type=order.resource_type,
             resource_id=order.resource_id)
        order.refunded += amount
        order.status = Order.REFUNDED if order.refunded == order.amount else order.status
        order.message = reason.strip()[:255]
        order.save(update_fields=["refunded", "status", "message", "updated_at"])
    return order


def _user(actor: Actor):
    return actor.user if actor.user is not None and actor.user.pk else None
