"""Reads of the billing area for the API, pages and back office, scoped to the actor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.billing import money
from apps.billing.models import Price, Product, TenantPriceOverride, Transaction, UsageInterval, Wallet
from apps.billing.rating import PRICE_PLACES
from apps.core.exceptions import NotFound

if TYPE_CHECKING:
    from apps.core.actor import Actor
    from apps.tenants.models import Tenant


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


def list_transactions(actor: Actor) -> QuerySet[Transaction]:
    return Transaction.objects.for_actor(actor, "view").select_related("product", "created_by")


def list_usage(actor: Actor) -> QuerySet[UsageInterval]:
    return UsageInterval.objects.for_actor(actor, "view").select_related("product")


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
