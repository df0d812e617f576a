"""Usage metering and its settlement into the wallets.

Metering. The lifecycle services of compute, storage and network call `open_usage`,
`change_usage` and `close_usage` inside their own transaction (part of the audited action that
changes the resource), with the moment of the state change. Each is idempotent: opening what is
open at the same product and quantity, or closing what is closed, changes nothing. Times are
whole seconds, and an interval never runs backwards: a close older than its start closes it at
its start, an open older than the meter's last close starts at that close, so a late event never
bills one second twice.

Settlement (`settle_tenant_usage`, run for every tenant by apps.billing.tasks.settle_usage).
What a tenant owes for one resource, product and calendar month (UTC) is cumulative: the exact
cost of all its usage in that month up to the settlement moment, rounded once to the currency's
places. The charge is that minus what the ledger already holds for it, so charges telescope
(their sum is always the rounded exact total, never a drifting sum of rounded pieces), a re-run
charges nothing, and a late close that shortens settled usage gives the difference back as a
refund. A tenant is settled in one transaction under its wallet's lock, and each entry's
idempotency key (resource, product, month, sequence) is unique in the ledger, so two workers can
never both write one. Usage already consumed is always charged, even past the credit limit: the
overdue policy acts on the balance; metering and settlement never refuse."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from apps.billing import money, rating, selectors
from apps.billing.models import Product, Transaction, UsageInterval, Wallet
from apps.billing.services import locked_wallet, post
from apps.core.actor import Actor
from apps.core.exceptions import Conflict, ValidationFailed

# Parts of the audited lifecycle actions that call them, and the scheduled settlement whose
# record is the ledger it writes.
UNAUDITED = ("open_usage", "close_usage", "change_usage", "settle_tenant_usage", "region_of")

# Where the resources metering knows keep their region (the first path that leads to one):
# instances carry its code, volumes their pool's, snapshots their volume's pool's, EIPs their
# external network's, NAT gateways their VPC's, load balancers their subnet's VPC's.
REGION_PATHS = ("region", "pool.region", "volume.pool.region", "external_network.region", "vpc.region",
                "subnet.vpc.region")


def _stamp(at: datetime) -> datetime:
    """The caller's moment to the whole second; a naive or missing time is a caller's bug."""
    if not isinstance(at, datetime) or timezone.is_naive(at):
        raise ValueError("usage times are aware datetimes")
    return at.replace(microsecond=0)


def region_of(resource) -> str:
    for path in REGION_PATHS:
        value = resource
        for name in path.split("."):
            value = getattr(value, name, None)
            if value is None:
                break
        if value is not None:
            return value if isinstance(value, str) else value.code
    raise ValueError(f"no region on {resource!r}: pass region=")


def _product(code: str) -> Product:
    product = Product.objects.filter(code=code, is_active=True).first()
    if product is None:
        raise ValidationFailed(f"No active product {code}.", fields={"product": ["Unknown or inactive product."]})
    return product


def _open_interval(resource_id: str, meter: str) -> UsageInterval | None:
    return (UsageInterval.objects.select_for_update()
            .filter(resource_id=resource_id, meter=meter, ended_at__isnull=True).first())


def _same(interval: UsageInterval, product: Product, quantity: Decimal) -> bool:
    return interval.product_id == product.pk and interval.quantity == quantity


def _refuse_reopen(interval: UsageInterval) -> Conflict:
    return Conflict(f"{interval.resource_id} is metered as {interval.product.code} ×{interval.quantity}: "
                    "change_usage changes it.", code="usage_open")


def open_usage(resource, *, product_code: str, quantity, at: datetime, region: str | None = None) -> UsageInterval:
    """Start metering `resource` (a row with a public id and a tenant) on a product at
    `quantity` from `at`, the moment it began to count (running, created). Its region comes from
    the resource (REGION_PATHS) unless given. Already open at the same product and quantity:
    returns that interval (a re-run); open at another: refused (409 `usage_open`)."""
    at = _stamp(at)
    product = _product(product_code)
    quantity = money.clean_decimal(quantity, places=rating.QUANTITY_PLACES, field="quantity")
    region = region or region_of(resource)
    with transaction.atomic():
        for _attempt in range(2):
            current = _open_interval(resource.public_id, product.meter)
            if current is not None:
                if _same(current, product, quantity):
                    return current
                raise _refuse_reopen(current)
            closed_until = (UsageInterval.objects.filter(resource_id=resource.public_id, meter=product.meter)
                            .aggregate(last=Max("ended_at"))["last"])
            try:
                with transaction.atomic():
                    return UsageInterval.objects.create(
                        tenant_id=resource.tenant_id, region=region, resource_type=resource._meta.model_name,
                        resource_id=resource.public_id, product=product, meter=product.meter, quantity=quantity,
                        started_at=max(at, closed_until) if closed_until else at)
            except IntegrityError:
                continue  # another transaction opened this meter first: look at what it opened
        raise Conflict(f"The metering of {resource.public_id} changed while it was opened; try again.",
                       code="usage_open")


def change_usage(resource, *, product_code: str, quantity, at: datetime) -> UsageInterval | None:
    """Meter `resource` at another product of the same meter or another quantity from `at` on
    (a resize, a bandwidth change): the open interval ends and the new one starts at the same
    second. The same product and quantity: nothing changes. Nothing open on that meter (a
    stopped instance being resized): nothing to change, None; its next open_usage counts the
    new size."""
    at = _stamp(at)
    product = _product(product_code)
    quantity = money.clean_decimal(quantity, places=rating.QUANTITY_PLACES, field="quantity")
    with transaction.atomic():
        current = _open_interval(resource.public_id, product.meter)
        if current is None or _same(current, product, quantity):
            return current
        current.ended_at = max(at, current.started_at)
        current.save(update_fields=["ended_at"])
        return UsageInterval.objects.create(
            tenant_id=current.tenant_id, region=current.region, resource_type=current.resource_type,
            resource_id=current.resource_id, product=product, meter=product.meter, quantity=quantity,
            started_at=current.ended_at)


def close_usage(resource, *, at: datetime, meter: str | None = None) -> list[UsageInterval]:
    """Stop metering `resource` at `at` (stopped, deleted; only `meter` when given: bought
    prepaid): each of its open intervals ends there, or at its own start if `at` is older.
    Nothing open: nothing changes, []."""
    at = _stamp(at)
    with transaction.atomic():
        intervals = UsageInterval.objects.select_for_update().filter(resource_id=resource.public_id,
                                                                     ended_at__isnull=True)
        intervals = list(intervals if meter is None else intervals.filter(meter=meter))
        for interval in intervals:
            interval.ended_at = max(at, interval.started_at)
            interval.save(update_fields=["ended_at"])
    return intervals


# --- settlement -------------------------------------------------------------------------------

def settle_tenant_usage(tenant_id: int, *, up_to: datetime) -> list[Transaction]:
    """Charge (or give back) what the tenant's usage up to `up_to` adds to what its ledger
    holds; returns the entries written. Asked for a moment its wallet is already settled to:
    nothing to do."""
    up_to = _stamp(up_to)
    with transaction.atomic():
        wallet = locked_wallet(tenant_id)
        if wallet.usage_settled_until is not None and up_to <= wallet.usage_settled_until:
            return []
        pending = list(UsageInterval.objects.filter(tenant_id=tenant_id, settled=False, started_at__lt=up_to)
                       .select_related("product"))
        posted = _settle(wallet, pending, rating.seconds(up_to)) if pending else []
        for interval in pending:
            interval.settled_until = min(interval.ended_at or up_to, up_to)
            interval.settled = interval.ended_at is not None and interval.ended_at <= up_to
        UsageInterval.objects.bulk_update(pending, ["settled_until", "settled"])
        wallet.usage_settled_until = up_to
        wallet.save(update_fields=["usage_settled_until", "updated_at"])
    return posted


def _first_periods(pending: list[UsageInterval]) -> dict[tuple[str, str], int]:
    """Per (resource, product code): the first month whose amount the pending intervals can
    change. An interval never settled counts from its start; a settled one from where it was
    settled to, or from its end when a late close put that earlier."""
    first: dict[tuple[str, str], int] = {}
    for interval in pending:
        point = interval.started_at if interval.settled_until is None else interval.settled_until
        if interval.ended_at is not None and interval.ended_at < point:
            point = interval.ended_at
        period = rating.period_start(rating.seconds(point))
        key = (interval.resource_id, interval.product.code)
        first[key] = min(period, first.get(key, period))
    return first


def _settle(wallet: Wallet, pending: list[UsageInterval], end: int) -> list[Transaction]:
    first = _first_periods(pending)
    start = min(first.values())
    products = {interval.product.code: interval.product for interval in pending}
    types = {interval.resource_id: interval.resource_type for interval in pending}
    resources = {resource for resource, _ in first}
    rows = (UsageInterval.objects.filter(tenant_id=wallet.tenant_id, resource_id__in=resources,
                                         product__code__in=products, started_at__lt=rating.moment(end))
            .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=rating.moment(start))).select_related("product"))
    usages = [rating.Usage(row.resource_id, row.product.code, row.region, rating.quantity_units(row.quantity),
                           rating.seconds(row.started_at), row.ended_at and rating.seconds(row.ended_at))
              for row in rows if (row.resource_id, row.product.code) in first]
    tariffs = selectors.tariffs(wallet, {(usage.region, usage.product) for usage in usages}, products, end)
    due = rating.costs(usages, tariffs, start, end)
    charged = _charged(wallet, resources, start)
    places = money.places(wallet.currency)
    system = Actor.system()
    posted = []
    for key in sorted(due.keys() | charged.keys()):
        resource_id, code, period = key
        if (resource_id, code) not in first or period < first[(resource_id, code)]:
            continue  # another product of the resource, or a month nothing pending reaches
        amount, entries = charged.get(key, (Decimal(0), 0))
        delta = rating.to_money(due.get(key, 0), places) - amount
        if not delta:
            continue
        month = rating.moment(period).date()
        kind = Transaction.CHARGE if delta > 0 else Transaction.REFUND
        what = f"{code} of {resource_id}, {month:%B %Y}"
        posted.append(post(
            wallet, kind=kind, amount=-delta, key=f"usage:{resource_id}:{code}:{month:%Y-%m}:{entries + 1}",
            actor=system, reason=what if kind == Transaction.CHARGE else f"usage correction: {what}",
            resource_type=types[resource_id], resource_id=resource_id, product=products[code], period=month,
            usage_until=rating.moment(end)))
    return posted


def _charged(wallet: Wallet, resources: set[str], start: int) -> dict[tuple[str, str, int], tuple[Decimal, int]]:
    """What the ledger holds for each (resource, product code, month) from `start` on: the net
    amount charged and the number of entries (the next entry's sequence)."""
    rows = (Transaction.objects
            .filter(wallet=wallet, resource_id__in=resources, product__isnull=False,
                    period__gte=rating.moment(start).date())
            .order_by().values("resource_id", "product__code", "period")
            .annotate(total=Sum("amount"), entries=Count("id")))
    return {(row["resource_id"], row["product__code"],
             rating.seconds(datetime(row["period"].year, row["period"].month, 1, tzinfo=UTC))):
            (-row["total"], row["entries"]) for row in rows}
