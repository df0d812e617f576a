"""Reads of the billing area for the API, pages and back office, scoped to the actor."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.billing import money, rating
from apps.billing.models import (Order, Payment, Price, Product, Subscription, TenantPriceOverride, Transaction,
                                 UsageInterval, Wallet)
from apps.billing.rating import PRICE_PLACES
from apps.core.exceptions import NotFound, ValidationFailed
from apps.tenants.models import Tenant

if TYPE_CHECKING:
    from apps.core.actor import Actor

# A consumption or revenue window is at most this long: rating it is done while the page waits.
MAX_WINDOW_DAYS = 366


def get_wallet(actor: Actor, *, tenant: Tenant | None = None) -> Wallet:
    """The wallet of `tenant` (operators) or of the actor's tenant. A tenant whose wallet was
    never used gets an unsaved empty one in the default currency: reading writes nothing."""
    tenant = tenant or actor.tenant
    if tenant is None or (not actor.is_privileged and tenant.pk != actor.tenant_id):
        raise NotFound("No wallet.")
    wallet = Wallet.objects.for_actor(actor, "view").filter(tenant=tenant).first()
    if wallet is None:
        if not actor.allows("billing", "view"):
            raise NotFound("No wallet.")
        wallet = Wallet(tenant=tenant, currency=settings.PORTAL_DEFAULT_CURRENCY)
    return wallet


def billed_tenant(actor: Actor, public_id: str | None = None) -> Tenant:
    """The tenant a billing read is about: `public_id` (operators: any tenant; members: only
    their own) or the actor's tenant. Anything else does not exist for the actor (404)."""
    if not public_id:
        if actor.tenant is None:
            raise NotFound("No current tenant.", fields={"tenant": ["Name a tenant."]})
        return actor.tenant
    if not actor.is_privileged:
        if actor.tenant is None or public_id != actor.tenant.public_id:
            raise NotFound(f"No tenant {public_id}.", fields={"tenant": ["Unknown tenant."]})
        return actor.tenant
    tenant = Tenant.objects.filter(public_id=public_id).first()
    if tenant is None:
        raise NotFound(f"No tenant {public_id}.", fields={"tenant": ["Unknown tenant."]})
    return tenant


def list_transactions(actor: Actor) -> QuerySet[Transaction]:
    return Transaction.objects.for_actor(actor, "view").select_related("product", "created_by", "tenant")


def list_usage(actor: Actor) -> QuerySet[UsageInterval]:
    return UsageInterval.objects.for_actor(actor, "view").select_related("product", "tenant")


def list_orders(actor: Actor) -> QuerySet[Order]:
    return Order.objects.for_actor(actor, "view").select_related("tenant").prefetch_related("items__product")


def get_order(actor: Actor, public_id: str) -> Order:
    order = list_orders(actor).filter(public_id=public_id).first()
    if order is None:
        raise NotFound(f"No order {public_id}.")
    return order


def list_subscriptions(actor: Actor) -> QuerySet[Subscription]:
    return Subscription.objects.for_actor(actor, "view").select_related("tenant", "product")


def get_subscription(actor: Actor, public_id: str, action: str = "view") -> Subscription:
    subscription = Subscription.objects.for_actor(actor, action).select_related("product").filter(
        public_id=public_id).first()
    if subscription is None:
        raise NotFound(f"No subscription {public_id}.")
    return subscription


def list_payments(actor: Actor) -> QuerySet[Payment]:
    return Payment.objects.for_actor(actor, "view").select_related("tenant", "order")


def get_payment(actor: Actor, public_id: str) -> Payment:
    payment = list_payments(actor).filter(public_id=public_id).first()
    if payment is None:
        raise NotFound(f"No payment {public_id}.")
    return payment


@dataclass(frozen=True)
class Quote:
    """What a tenant pays for one unit of a product in a region at a moment: per hour on
    demand, per month and per year prepaid (None: not sold so), in the wallet's currency, with
    the tenant's override applied (a fixed price replaces the hourly one; a discount lowers all
    three)."""

    product: Product
    region: str
    currency: str
    hourly: Decimal
    monthly: Decimal | None
    yearly: Decimal | None
    discount_percent: Decimal | None = None


def wallet_currency(tenant_id: int) -> str:
    currency = Wallet.objects.filter(tenant_id=tenant_id).values_list("currency", flat=True).first()
    return currency or settings.PORTAL_DEFAULT_CURRENCY


def quote(tenant: Tenant, product: Product | str, region: str, *, at: datetime | None = None) -> Quote | None:
    """The tenant's price of `product` (a Product or its code) in `region` at `at` (now), or
    None when the product is unknown, inactive or has no list price there in the wallet's
    currency and no fixed override: it is not billed."""
    at = at or timezone.now()
    if isinstance(product, str):
        product = Product.objects.filter(code=product, is_active=True).first()
    if product is None or not product.is_active:
        return None
    currency = wallet_currency(tenant.pk)
    price = (Price.objects.filter(product=product, region=region, currency=currency, effective_from__lte=at)
             .order_by("-effective_from").first())
    override = (TenantPriceOverride.objects.filter(tenant=tenant, product=product, effective_from__lte=at)
                .order_by("-effective_from").first())
    if override is not None and override.fixed_hourly is not None and override.currency == currency:
        return Quote(product, region, currency, override.fixed_hourly, price and price.monthly,
                     price and price.yearly)
    if price is None:
        return None
    if override is None or override.discount_percent is None:
        return Quote(product, region, currency, price.hourly, price.monthly, price.yearly)
    percent, places = override.discount_percent, money.places(currency)
    return Quote(product, region, currency, _discounted(price.hourly, percent, PRICE_PLACES),
                 _discounted(price.monthly, percent, places), _discounted(price.yearly, percent, places), percent)


def _discounted(value: Decimal | None, percent: Decimal, places: int) -> Decimal | None:
    if value is None:
        return None
    return (value * (100 - percent) / 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def price_list(actor: Actor, *, tenant: Tenant) -> list[Quote]:
    """What the tenant pays now for every active product, in each region it is priced in (a
    list price in the wallet's currency, or anywhere for a product with a fixed tenant price)."""
    get_wallet(actor, tenant=tenant)  # the actor may read this tenant's billing, or 404
    from apps.compute.models import Region

    now = timezone.now()
    currency = wallet_currency(tenant.pk)
    pairs = set(Price.objects.filter(currency=currency, effective_from__lte=now, product__is_active=True)
                .values_list("product_id", "region").distinct())
    fixed = (TenantPriceOverride.objects.filter(tenant=tenant, effective_from__lte=now, fixed_hourly__isnull=False,
                                                currency=currency).values_list("product_id", flat=True))
    regions = list(Region.objects.values_list("code", flat=True))
    pairs |= {(product_id, region) for product_id in fixed for region in regions}
    products = Product.objects.in_bulk({product_id for product_id, _ in pairs})
    quotes = (quote(tenant, products[product_id], region, at=now) for product_id, region in pairs)
    return sorted((q for q in quotes if q is not None), key=lambda q: (q.product.code, q.region))


# --- windows of time ------------------------------------------------------------------------------

def date_window(start: date | None = None, end: date | None = None) -> tuple[datetime, datetime]:
    """The window of whole UTC days from `start` through `end` (both included); by default this
    month up to today. At most MAX_WINDOW_DAYS days."""
    today = timezone.now().astimezone(UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise ValidationFailed("The window ends before it starts.", fields={"to": ["On or after from."]})
    if (end - start).days >= MAX_WINDOW_DAYS:
        raise ValidationFailed("The window is too long.", fields={"from": [f"At most {MAX_WINDOW_DAYS} days."]})
    return _midnight(start), _midnight(end + timedelta(days=1))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _days(start: datetime, end: datetime) -> list[date]:
    """The UTC days [start, end) touches."""
    day, days = start.astimezone(UTC).date(), []
    while _midnight(day) < end:
        days.append(day)
        day += timedelta(days=1)
    return days


# --- consumption: usage rated for a window ----------------------------------------------------

CONSUMPTION_GROUPS = ("resource", "product", "day")


@dataclass(frozen=True)
class Consumption:
    """What a tenant's usage cost in a window, per group (a resource's public id, a product
    code or a day), rated exactly and rounded once per group; `total` is the window's exact
    cost rounded once (so it may differ from the sum of the rounded rows by rounding)."""

    tenant: Tenant
    currency: str
    start: datetime
    end: datetime
    group: str
    rows: list[tuple[str, Decimal]]
    total: Decimal


def consumption(actor: Actor, *, tenant: Tenant, start: datetime, end: datetime, group: str) -> Consumption:
    """The tenant's on-demand usage in [start, end) rated with its tariffs (list prices in the
    wallet's currency with its overrides: the ones settlement charges with). Up to now only:
    the future is not consumed yet. Unsettled usage counts too, so this is what the ledger will
    hold once settlement catches up."""
    if group not in CONSUMPTION_GROUPS:
        raise ValidationFailed("Unknown grouping.", fields={"group": [f"One of {', '.join(CONSUMPTION_GROUPS)}."]})
    wallet = get_wallet(actor, tenant=tenant)
    end = min(end, timezone.now().replace(microsecond=0))
    first, last = rating.seconds(start), max(rating.seconds(end), rating.seconds(start))
    rows = (list_usage(actor).filter(tenant=tenant, started_at__lt=rating.moment(last))
            .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start)))
    usages = [rating.Usage(row.resource_id, row.product.code, row.region, rating.quantity_units(row.quantity),
                           rating.seconds(row.started_at), row.ended_at and rating.seconds(row.ended_at))
              for row in rows]
    products = {row.product.code: row.product for row in rows}
    # The same price steps settlement charges with: one definition of a tenant's tariff.
    steps = tariffs(wallet, {(u.region, u.product) for u in usages}, products, last)
    places = money.places(wallet.currency)
    exact: dict[str, int] = {}
    if group == "day":
        for day in _days(start, rating.moment(last)):
            a, b = max(first, rating.seconds(_midnight(day))), min(last, rating.seconds(_midnight(day)) + 86400)
            exact[day.isoformat()] = sum(rating.costs(usages, steps, a, b).values())
    else:
        for (resource, product, _period), cost in rating.costs(usages, steps, first, last).items():
            key = resource if group == "resource" else product
            exact[key] = exact.get(key, 0) + cost
    ordered = sorted(exact.items()) if group == "day" else sorted(exact.items(), key=lambda kv: (-kv[1], kv[0]))
    return Consumption(tenant, wallet.currency, start, rating.moment(last), group,
                       [(key, rating.to_money(cost, places)) for key, cost in ordered],
                       rating.to_money(sum(exact.values()), places))


# --- the operators' overview -------------------------------------------------------------------

@dataclass(frozen=True)
class Overview:
    """Money in a window, one currency: revenue (charges minus refunds) and recharges per day,
    the tenants that spent most, and what usage charges each product brought in (the ledger's
    settled usage)."""

    currency: str
    start: datetime
    end: datetime
    revenue_by_day: list[tuple[str, Decimal]]
    recharges_by_day: list[tuple[str, Decimal]]
    top_tenants: list[tuple[str, Decimal]]
    usage_by_product: list[tuple[str, Decimal]]


def revenue_overview(actor: Actor, *, start: datetime, end: datetime, currency: str, top: int = 10) -> Overview:
    """Operators only: the back office's revenue and usage page."""
    from apps.core.exceptions import PermissionDenied

    if not actor.is_privileged:
        raise PermissionDenied("Only operators can read the revenue of the platform.")
    currency = money.clean_currency(currency)
    step = Decimal(1).scaleb(-money.places(currency))
    entries = Transaction.objects.filter(currency=currency, created_at__gte=start, created_at__lt=end)
    spent = entries.filter(kind__in=[Transaction.CHARGE, Transaction.REFUND])

    def amount(total, sign: int) -> Decimal:
        # SQLite sums decimals as floats: back to the currency's places (and no "-0").
        return (sign * Decimal(total or 0)).quantize(step, rounding=ROUND_HALF_UP) + 0

    def by_day(rows: QuerySet, sign: int) -> list[tuple[str, Decimal]]:
        totals = {row["day"]: row["total"] for row in rows.annotate(day=TruncDate("created_at", tzinfo=UTC))
                  .order_by().values("day").annotate(total=Sum("amount"))}
        return [(day.isoformat(), amount(totals.get(day), sign)) for day in _days(start, end)]

    def ranked(rows: QuerySet, field: str) -> list[tuple[str, Decimal]]:
        rows = rows.order_by().values(field).annotate(total=Sum("amount")).order_by("total", field)[:top]
        return [(row[field], amount(row["total"], -1)) for row in rows]

    return Overview(currency, start, end, by_day(spent, -1), by_day(entries.filter(kind=Transaction.RECHARGE), 1),
                    ranked(spent, "tenant__name"), ranked(spent.filter(product__isnull=False), "product__code"))


def tariffs(wallet: Wallet, keys: set[tuple[str, str]], products: dict[str, Product],
             end: int) -> dict[tuple[str, str], list]:
    """The price steps in force for the tenant per (region, product code), up to `end`: list
    prices in the wallet's currency merged with the tenant's overrides."""
    until = rating.moment(end)
    lists = defaultdict(list)
    for price in (Price.objects.filter(product__in=products.values(), region__in={r for r, _ in keys},
                                       currency=wallet.currency, effective_from__lt=until)
                  .order_by("effective_from")):
        lists[(price.region, price.product_id)].append((rating.seconds(price.effective_from),
                                                        rating.price_units(price.hourly)))
    overrides = defaultdict(list)
    for override in (TenantPriceOverride.objects
                     .filter(tenant_id=wallet.tenant_id, product__in=products.values(), effective_from__lt=until)
                     .filter(Q(fixed_hourly__isnull=True) | Q(currency=wallet.currency)).order_by("effective_from")):
        overrides[override.product_id].append(rating.Override(
            rating.seconds(override.effective_from),
            fixed=None if override.fixed_hourly is None else rating.price_units(override.fixed_hourly),
            discount=None if override.discount_percent is None else rating.percent_units(override.discount_percent)))
    return {(region, code): rating.tariff_steps(lists[(region, products[code].pk)], overrides[products[code].pk])
            for region, code in keys}
