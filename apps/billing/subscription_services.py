"""Subscriptions: a resource bought for monthly or yearly periods, paid in advance.

Buying one (`subscribe`, also how an on-demand resource switches to prepaid) charges the
periods through a `purchase` order and stops the on-demand metering of the product's meter:
while a subscription covers a resource (active, or expired but not ended) its usage is not
metered (`active_for`). `renew` pays further periods from `expires_at`, so time spent expired
is paid too, and brings back a resource the policy stopped or put in the recycle bin.
`change_plan` moves to another product of the same meter or another quantity, prorated by the
exact seconds left in each paid period. What happens at expiry is apps.billing.policy.

Periods are calendar months (a year is 12), counted from `starts_at` so that a subscription
started on the 31st ends on the last day of shorter months and on the 31st again after."""

from __future__ import annotations

import calendar
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.billing import money, rating
from apps.billing.models import Notice, Order, Product, Subscription, UsageInterval
from apps.billing.notices import notify
from apps.billing.order_services import Line, give_back, place_order
from apps.billing.selectors import quote
from apps.billing.services import clean_key
from apps.billing.usage_services import region_of, close_usage
from apps.core import permissions
from apps.core.actor import Actor
from apps.core.audit import audited
from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.core.models import PlatformSettings
from apps.core.registry import model_for_public_id

# Parts of the lifecycle actions that call them (a resource deleted for good; metering asking
# whether a resource is prepaid) and a read.
UNAUDITED = ("end_for_resource", "active_for", "add_months", "resource_of", "revive")

TERM_MONTHS = {Order.MONTHLY: 1, Order.YEARLY: 12}
# A subscription is bought or renewed for at most five years ahead at once.
MAX_MONTHS = 60
# Statuses in which a subscription still holds its resource: no on-demand usage is metered.
COVERING = (Subscription.ACTIVE, Subscription.GRACE, Subscription.SUSPENDED, Subscription.RECYCLED)
# Orders whose money a downgrade gives back, newest first.
PAID_KINDS = (Order.PURCHASE, Order.RENEW, Order.UPGRADE)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` that many calendar months later (or earlier), the day clamped to the month's
    last day (Jan 31 + 1 month = Feb 28 or 29)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _months_paid(subscription: Subscription) -> int:
    start, end = subscription.starts_at, subscription.expires_at
    return (end.year - start.year) * 12 + end.month - start.month


def resource_of(subscription: Subscription):
    """The subscribed resource's row (deleted or not), or None when its type keeps no row we know."""
    model = model_for_public_id(subscription.resource_id)
    return model.objects.filter(public_id=subscription.resource_id).first() if model else None


def _allowed(actor: Actor, tenant_id: int, missing: str) -> None:
    """Tenants act on their own only (another tenant's is not there: 404) and need write access
    to billing; operators and the system act on any."""
    if actor.is_privileged:
        return
    if tenant_id != actor.tenant_id:
        raise NotFound(missing)
    permissions.require_area(actor, "billing", "charge")


def _locked(actor: Actor, subscription: Subscription) -> Subscription:
    row = (Subscription.objects.for_actor(actor, "view").select_for_update(of=("self",))
           .select_related("product", "tenant")
           .filter(pk=subscription.pk).first())
    if row is None:
        raise NotFound(f"No subscription {subscription.public_id}.")
    _allowed(actor, row.tenant_id, f"No subscription {subscription.public_id}.")
    if row.status == Subscription.ENDED:
        raise Conflict(f"Subscription {row.public_id} has ended: its resource was deleted.", code="ended")
    return row


def _clean_term(term: str, periods) -> int:
    """The months `periods` terms make; a 400 naming the wrong field."""
    if term not in TERM_MONTHS:
        raise ValidationFailed("Monthly or yearly.", fields={"term": ["One of monthly, yearly."]})
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise ValidationFailed("A whole number of periods.", fields={"periods": ["1 or more."]})
    months = periods * TERM_MONTHS[term]
    if months > MAX_MONTHS:
        raise ValidationFailed(f"At most {MAX_MONTHS // 12} years at once.",
                               fields={"periods": [f"At most {MAX_MONTHS // TERM_MONTHS[term]}."]})
    return months


def _term_price(tenant, product: Product, region: str, term: str, quantity: Decimal) -> tuple[Decimal, Decimal, str]:
    """(unit price per term, price per term for `quantity`, currency) at the tenant's price now."""
    offer = quote(tenant, product, region)
    if offer is None:
        raise ValidationFailed(f"{product.code} is not sold in {region}.", fields={"product_code": ["Not sold here."]})
    unit = offer.monthly if term == Order.MONTHLY else offer.yearly
    if unit is None:
        raise ValidationFailed(f"{product.code} is not sold {term} in {region}.",
                               fields={"term": [f"Not sold {term}."]})
    step = Decimal(1).scaleb(-money.places(offer.currency))
    return unit, (unit * quantity).quantize(step, rounding=ROUND_HALF_UP), offer.currency


def _period_lines(product: Product, unit: Decimal, per_term: Decimal, quantity: Decimal, term: str,
                  boundaries: list[datetime]) -> list[Line]:
    return [Line(product=product, unit_price=unit, amount=per_term, quantity=quantity, period_start=start,
                 period_end=end, description=f"{product.code} ×{_number(quantity)}, {term} "
                                             f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")
            for start, end in zip(boundaries, boundaries[1:], strict=False)]


def _replayed(tenant_id: int, key: str, kind: str, resource_id: str) -> bool:
    """Whether an order with this key was placed for the same call (a retry: nothing more to
    do); a key used for another purchase is refused."""
    order = Order.objects.filter(tenant_id=tenant_id, idempotency_key=key).first()
    if order is None:
        return False
    if (order.kind, order.resource_id) != (kind, resource_id):
        raise Conflict(f"The idempotency key {key} was used for order {order.public_id}.",
                       code="idempotency_key_reused", fields={"idempotency_key": ["Already used for another call."]})
    return True


def _number(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"


def _product(code: str) -> Product:
    product = Product.objects.filter(code=code, is_active=True).first()
    if product is None:
        raise ValidationFailed(f"No product {code}.", fields={"product_code": ["Unknown or inactive product."]})
    return product


def _quantity(value) -> Decimal:
    return money.clean_decimal(value, places=rating.QUANTITY_PLACES, field="quantity")


@audited("subscription.subscribe", area="billing")
def subscribe(actor: Actor, *, resource, product_code: str, quantity=1, term: str, periods: int = 1,
              auto_renew: bool = False, idempotency_key: str) -> Subscription:
    """Buy `periods` months or years of `product_code` × `quantity` for `resource` from now on,
    charged at once (402, writing nothing, when the wallet cannot cover it). Its on-demand
    metering of the product's meter ends now. Runs inside the caller's transaction (a create
    with a term). A resource that has a subscription: 409 `subscribed` (the same call retried
    with its key returns the subscription it made)."""
    _allowed(actor, resource.tenant_id, f"No {resource._meta.verbose_name} {resource.public_id}.")
    months = _clean_term(term, periods)
    product, quantity = _product(product_code), _quantity(quantity)
    if getattr(resource, "status", "") in ("deleting", "deleted"):
        raise Conflict(f"{resource.public_id} is deleted.", code="invalid_state")
    key = clean_key(idempotency_key)
    subscriptions = Subscription.objects.filter(resource_id=resource.public_id).order_by("-created_at", "-id")
    if _replayed(resource.tenant_id, key, Order.PURCHASE, resource.public_id):
        return subscriptions.first()
    current = subscriptions.exclude(status=Subscription.ENDED).first()
    if current is not None:
        raise Conflict(f"{resource.public_id} is already prepaid ({current.public_id}): renew it instead.",
                       code="subscribed")
    region = region_of(resource)
    unit, per_term, currency = _term_price(resource.tenant, product, region, term, quantity)
    now = timezone.now().replace(microsecond=0)
    boundaries = [add_months(now, n) for n in range(0, months + 1, TERM_MONTHS[term])]
    place_order(actor, tenant=resource.tenant, kind=Order.PURCHASE, billing_mode=term, resource=resource,
                idempotency_key=key, lines=_period_lines(product, unit, per_term, quantity, term, boundaries))
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                tenant_id=resource.tenant_id, resource_type=resource._meta.model_name, resource_id=resource.public_id,
                product=product, quantity=quantity, region=region, term=term, currency=currency, price=per_term,
                starts_at=now, expires_at=boundaries[-1], auto_renew=bool(auto_renew), status_changed_at=now,
                created_by=actor.user if actor.user is not None and actor.user.pk else None)
    except IntegrityError:
        raise Conflict(f"{resource.public_id} was just subscribed by another request.", code="subscribed") from None
    close_usage(resource, at=now, meter=product.meter)
    return subscription


@audited("subscription.switch_to_prepaid", area="billing")
def switch_to_prepaid(actor: Actor, *, resource, term: str, periods: int = 1, auto_renew: bool = False,
                      idempotency_key: str, meter: str = "") -> Subscription:
    """Buy a running on-demand resource prepaid at the product and quantity it is metered at
    now (its last usage of `meter`, needed only when it is metered on several)."""
    _allowed(actor, resource.tenant_id, f"No {resource._meta.verbose_name} {resource.public_id}.")
    usage = UsageInterval.objects.filter(resource_id=resource.public_id).select_related("product")
    meters = set(usage.values_list("meter", flat=True)) if not meter else {meter}
    if len(meters) > 1:
        raise ValidationFailed(f"{resource.public_id} is metered on {', '.join(sorted(meters))}: choose one.",
                               fields={"meter": [f"One of {', '.join(sorted(meters))}."]})
    last = usage.filter(meter__in=meters).order_by("-started_at", "-id").first()
    if last is None:
        raise ValidationFailed(f"{resource.public_id} was never metered on demand: subscribe with a product.",
                               fields={"meter": ["Nothing metered."]})
    return subscribe(actor, resource=resource, product_code=last.product.code, quantity=last.quantity, term=term,
                     periods=periods, auto_renew=auto_renew, idempotency_key=idempotency_key)


@audited("subscription.renew", area="billing")
def renew(actor: Actor, *, subscription: Subscription, periods: int = 1, idempotency_key: str) -> Subscription:
    """Pay `periods` more terms from `expires_at` (the time since expiry is paid too) at the
    tenant's price now. An expired subscription is active again and its resource, stopped or in
    the recycle bin by the policy, is started or restored. The same key retried: nothing more."""
    sub = _locked(actor, subscription)
    key = clean_key(idempotency_key)
    if _replayed(sub.tenant_id, key, Order.RENEW, sub.resource_id):
        return sub
    months = _clean_term(sub.term, periods)
    paid = _months_paid(sub)
    boundaries = [add_months(sub.starts_at, n) for n in range(paid, paid + months + 1, TERM_MONTHS[sub.term])]
    now = timezone.now()
    if boundaries[-1] <= now:
        raise ValidationFailed(f"{periods} more {sub.term} periods still end before now: renew for more.",
                               fields={"periods": ["Renew up to a moment after now."]})
    if boundaries[-1] > add_months(now, MAX_MONTHS):
        raise ValidationFailed(f"At most {MAX_MONTHS // 12} years ahead.", fields={"periods": ["Fewer."]})
    unit, per_term, _currency = _term_price(sub.tenant, sub.product, sub.region, sub.term, sub.quantity)
    place_order(actor, tenant=sub.tenant, kind=Order.RENEW, billing_mode=sub.term, resource_id=sub.resource_id,
                idempotency_key=key,
                lines=_period_lines(sub.product, unit, per_term, sub.quantity, sub.term, boundaries))
    was = sub.status
    sub.expires_at, sub.price = boundaries[-1], per_term
    if was != Subscription.ACTIVE:
        sub.status, sub.status_changed_at = Subscription.ACTIVE, now
    sub.save(update_fields=["expires_at", "price", "status", "status_changed_at", "updated_at"])
    resource = resource_of(sub)
    if was in (Subscription.SUSPENDED, Subscription.RECYCLED) and resource is not None:
        revive(resource, start_stopped=True)
    return sub


def revive(resource, *, start_stopped: bool) -> None:
    """Undo what the billing policy did to a resource: out of the recycle bin (an instance is
    started with it), and a stopped instance started when `start_stopped` (the policy stopped
    it). Other states and resource types: nothing to undo."""
    from apps.compute import services as compute
    from apps.compute.models import Instance
    from apps.storage import services as storage
    from apps.storage.models import Volume

    system = Actor.system(tenant=resource.tenant)
    if isinstance(resource, Instance):
        if resource.status == Instance.RECYCLED:
            compute.restore_instance(system, instance=resource)
        elif resource.status == Instance.STOPPED and start_stopped:
            compute.start_instance(system, instance=resource)
    elif isinstance(resource, Volume) and resource.status == Volume.RECYCLED:
        storage.restore_volume(system, volume=resource)


@audited("subscription.set_auto_renew", area="billing")
def set_auto_renew(actor: Actor, *, subscription: Subscription, auto_renew: bool) -> Subscription:
    """Renew from the wallet at expiry (one term), or not."""
    sub = _locked(actor, subscription)
    sub.auto_renew = bool(auto_renew)
    sub.save(update_fields=["auto_renew", "updated_at"])
    return sub


def _left_share(sub: Subscription, at: datetime) -> Fraction:
    """How many terms of the paid time are left after `at`: in each paid term from `at` on,
    its seconds left over its seconds (a term's length varies with its months)."""
    step = TERM_MONTHS[sub.term]
    bounds = [add_months(sub.starts_at, n) for n in range(0, _months_paid(sub) + 1, step)]
    share = Fraction(0)
    for start, end in zip(bounds, bounds[1:], strict=False):
        if end > at:
            share += Fraction(int((end - max(at, start)).total_seconds()), int((end - start).total_seconds()))
    return share


def _to_money(value: Fraction, places: int) -> Decimal:
    """Half up to the currency's places (the sign kept)."""
    scaled = abs(value) * 10 ** places
    units = scaled.numerator * 2 + scaled.denominator
    rounded = Decimal(units // (2 * scaled.denominator)).scaleb(-places)
    return rounded if value >= 0 else -rounded


@audited("subscription.change_plan", area="billing")
def change_plan(actor: Actor, *, subscription: Subscription, product_code: str, quantity, at: datetime) -> Order:
    """Move to another product of the same meter (a flavor) or another quantity (GB) from `at`
    on, until expiry. The difference of the term prices, prorated by the seconds left in each
    paid term, is charged (an `upgrade` order; 402 when the wallet cannot cover it) or given
    back from the subscription's orders × PlatformSettings.downgrade_refund_percent (recorded by
    a `downgrade` order). Repeated for the same moment: the first order, nothing more."""
    sub = _locked(actor, subscription)
    at = at.replace(microsecond=0)
    key = f"plan:{sub.public_id}:{at:%Y%m%dT%H%M%S}"
    product, quantity = _product(product_code), _quantity(quantity)
    if earlier := Order.objects.filter(tenant_id=sub.tenant_id, idempotency_key=key).first():
        if earlier.items.filter(product=product, quantity=quantity).exists():
            return earlier  # the same change retried
        raise Conflict(f"The plan of {sub.public_id} changed at this second already ({earlier.public_id}).",
                       code="plan_changed")
    if sub.status != Subscription.ACTIVE or not sub.starts_at <= at < sub.expires_at:
        raise Conflict(f"Subscription {sub.public_id} is {sub.status} until {sub.expires_at:%Y-%m-%d %H:%M}: "
                       "renew it first.", code="invalid_state")
    if product.meter != sub.product.meter:
        raise ValidationFailed(f"{product.code} is not a {sub.product.meter}.",
                               fields={"product_code": [f"A product of the meter {sub.product.meter}."]})
    unit, per_term, _currency = _term_price(sub.tenant, product, sub.region, sub.term, quantity)
    places = money.places(sub.currency)
    difference = _to_money(Fraction(per_term - sub.price) * _left_share(sub, at), places)
    what = f"{sub.product.code} ×{_number(sub.quantity)} to {product.code} ×{_number(quantity)}"
    line = {"product": product, "unit_price": unit, "quantity": quantity, "period_start": at,
            "period_end": sub.expires_at}
    if difference >= 0:
        order = place_order(actor, tenant=sub.tenant, kind=Order.UPGRADE, billing_mode=sub.term,
                            resource_id=sub.resource_id, idempotency_key=key,
                            lines=[Line(amount=difference, description=f"{what}, prorated", **line)])
    else:
        percent = PlatformSettings.load().downgrade_refund_percent
        refund = _to_money(Fraction(-difference) * percent / 100, places)
        order = place_order(actor, tenant=sub.tenant, kind=Order.DOWNGRADE, billing_mode=sub.term,
                            resource_id=sub.resource_id, idempotency_key=key,
                            lines=[Line(description=f"{what}: {refund} {sub.currency} back ({percent}% of "
                                                    f"{-difference} prorated)", **line)])
        _give_back(actor, sub, refund, reason=f"downgrade {sub.resource_id}: {what} ({order.public_id})")
    sub.product, sub.quantity, sub.price = product, quantity, per_term
    sub.save(update_fields=["product", "quantity", "price", "updated_at"])
    return order


def _give_back(actor: Actor, sub: Subscription, amount: Decimal, *, reason: str) -> None:
    """Refund `amount` from the subscription's paid orders, newest first (never more than
    they took)."""
    orders = (Order.objects.select_for_update()
              .filter(tenant_id=sub.tenant_id, resource_id=sub.resource_id, kind__in=PAID_KINDS,
                      status__in=(Order.PAID, Order.REFUNDED), amount__gt=0).order_by("-created_at", "-id"))
    for order in orders:
        if amount <= 0:
            break
        part = min(amount, order.amount - order.refunded)
        if part > 0:
            give_back(actor, order=order, amount=part, reason=reason)
            amount -= part


def end_for_resource(resource, *, at: datetime) -> Subscription | None:
    """The resource (a row, or its public id) is deleted for good: its subscription ends.
    Nothing to end: None."""
    resource_id = getattr(resource, "public_id", resource)
    with transaction.atomic():
        sub = (Subscription.objects.select_for_update(of=("self",)).select_related("tenant")
               .filter(resource_id=resource_id).exclude(status=Subscription.ENDED).first())
        if sub is None:
            return None
        if sub.status == Subscription.RECYCLED:
            notify(sub.tenant, kind=Notice.DELETED, level=Notice.DANGER, resource_id=resource_id,
                   key=f"deleted:{sub.public_id}",
                   message=f"{resource_id} was deleted: its subscription {sub.public_id} expired on "
                           f"{sub.expires_at:%Y-%m-%d %H:%M} UTC and was not renewed.")
        sub.status, sub.status_changed_at = Subscription.ENDED, at
        sub.save(update_fields=["status", "status_changed_at", "updated_at"])
    return sub


def active_for(resource_id: str, meter: str) -> Subscription | None:
    """The subscription that holds `resource_id`'s `meter` (active or expired but not ended):
    no on-demand usage is metered for it. None: the resource is on demand."""
    return (Subscription.objects.filter(resource_id=resource_id, product__meter=meter, status__in=COVERING)
            .select_related("product").first())
