"""Billing services: the catalog (operators: products, list price versions, tenant prices) and
wallets (recharge, charge, refund, credit, adjust, limits). Usage metering and settlement are in
apps.billing.usage_services.

Every change of a wallet locks its row (select_for_update), checks, writes one ledger entry and
the new balance in the same transaction. Calls carry an idempotency key: a retry with the same
key and the same amount returns the first call's entry and changes nothing."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.billing import money
from apps.billing.exceptions import InsufficientFunds
from apps.billing.models import PRODUCT_CODE, Price, Product, TenantPriceOverride, Transaction, Wallet
from apps.billing.rating import PERCENT_PLACES, PRICE_PLACES
from apps.compute.models import Region
from apps.core import permissions
from apps.core.audit import audited
from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.core.validation import clean_name
from apps.tenants.models import Tenant
from apps.tenants.services import require_operator

if TYPE_CHECKING:
    from apps.core.actor import Actor

# The ledger writer and the wallet lock: parts of the audited services here and of settlement
# (whose record is the ledger itself); the idempotency key check, a pure validation.
UNAUDITED = ("locked_wallet", "post", "clean_key")

KEY_MAX = 128


# --- catalog (operators) ----------------------------------------------------------------------

def _clean_code(value: str, field: str) -> str:
    code = (value or "").strip()
    if not re.match(PRODUCT_CODE, code) or len(code) > 96:
        raise ValidationFailed(f"'{value}' is not a product code.",
                               fields={field: ["Lower-case words joined by dots, e.g. instance.flavor.s1-small."]})
    return code


def _not_in_the_past(effective_from: datetime | None) -> datetime:
    """A version's start: now when not given, whole seconds, never before now."""
    now = timezone.now().replace(microsecond=0)
    if effective_from is None:
        return now
    if timezone.is_naive(effective_from):
        raise ValidationFailed("A time zone is required.", fields={"effective_from": ["Give a time zone."]})
    start = effective_from.replace(microsecond=0)
    if start < now:
        raise ValidationFailed("A price change never rewrites the past.",
                               fields={"effective_from": ["Now or later."]})
    return start


@audited("product.create", area="billing")
def create_product(actor: Actor, *, code: str, name: str, unit: str, meter: str = "",
                   description: str = "") -> Product:
    """Add a billable product. `meter` defaults to the code (a product of its own meter)."""
    require_operator(actor)
    code = _clean_code(code, "code")
    meter = _clean_code(meter, "meter") if meter else code
    if unit not in dict(Product.UNIT_CHOICES):
        raise ValidationFailed("Unknown unit.", fields={"unit": [f"One of {', '.join(dict(Product.UNIT_CHOICES))}."]})
    if Product.objects.filter(code=code).exists():
        raise Conflict(f"A product {code} exists.", fields={"code": ["Taken."]})
    return Product.objects.create(code=code, name=clean_name(name), unit=unit, meter=meter,
                                  description=(description or "").strip()[:255])


@audited("product.update", area="billing")
def update_product(actor: Actor, *, product: Product, name: str, description: str, is_active: bool) -> Product:
    """Rename, describe, retire or bring back a product. Its code, unit and meter are fixed:
    prices and usage refer to them."""
    require_operator(actor)
    product = Product.objects.select_for_update().get(pk=product.pk)
    product.name, product.is_active = clean_name(name), is_active
    product.description = (description or "").strip()[:255]
    product.save(update_fields=["name", "description", "is_active"])
    return product


@audited("price.add", area="billing")
def add_price(actor: Actor, *, product: Product, region: str, currency: str, hourly, monthly=None, yearly=None,
              effective_from: datetime | None = None) -> Price:
    """Add a version of a product's list price in a region and currency, in force from
    `effective_from` (now when not given; never in the past) until the next version."""
    require_operator(actor)
    currency = money.clean_currency(currency)
    if not Region.objects.filter(code=region).exists():
        raise ValidationFailed(f"No region {region}.", fields={"region": ["Unknown region."]})
    price = Price(
        product=product, region=region, currency=currency, effective_from=_not_in_the_past(effective_from),
        hourly=money.clean_decimal(hourly, places=PRICE_PLACES, field="hourly", zero=True),
        monthly=None if monthly is None else money.clean_amount(monthly, currency, field="monthly", zero=True),
        yearly=None if yearly is None else money.clean_amount(yearly, currency, field="yearly", zero=True),
        created_by=actor.user,
    )
    try:
        with transaction.atomic():
            price.save()
    except IntegrityError:
        raise Conflict(f"{product.code} already has a {currency} price in {region} from {price.effective_from}.",
                       fields={"effective_from": ["Another version starts then."]}) from None
    return price


@audited("price.set_tenant", area="billing")
def set_tenant_price(actor: Actor, *, tenant: Tenant, product: Product, fixed_hourly=None, discount_percent=None,
                     effective_from: datetime | None = None, reason: str = "") -> TenantPriceOverride:
    """Give a tenant its own price of a product from `effective_from` on (now when not given,
    never in the past): a fixed hourly price in its wallet's currency, a discount percent on the
    list price, or neither (back to the list price)."""
    require_operator(actor)
    if fixed_hourly is not None and discount_percent is not None:
        raise ValidationFailed("A fixed price or a discount, not both.",
                               fields={"discount_percent": ["Leave empty with a fixed price."]})
    override = TenantPriceOverride(tenant=tenant, product=product, effective_from=_not_in_the_past(effective_from),
                                   reason=(reason or "").strip()[:255], created_by=actor.user)
    if fixed_hourly is not None:
        override.fixed_hourly = money.clean_decimal(fixed_hourly, places=PRICE_PLACES, field="fixed_hourly", zero=True)
        override.currency = locked_wallet(tenant.pk).currency
    if discount_percent is not None:
        percent = money.clean_decimal(discount_percent, places=PERCENT_PLACES, field="discount_percent", zero=True)
        if percent > 100:
            raise ValidationFailed("A discount is at most 100%.", fields={"discount_percent": ["0 to 100."]})
        override.discount_percent = percent
    try:
        with transaction.atomic():
            override.save()
    except IntegrityError:
        raise Conflict(f"{tenant.name} already has a price of {product.code} from {override.effective_from}.",
                       fields={"effective_from": ["Another version starts then."]}) from None
    return override


# --- wallets ------------------------------------------------------------------------------------

def locked_wallet(tenant_id: int) -> Wallet:
    """The tenant's wallet, locked until the caller's transaction ends; opened in the default
    currency on first use."""
    Wallet.objects.get_or_create(tenant_id=tenant_id, defaults={"currency": settings.PORTAL_DEFAULT_CURRENCY})
    return Wallet.objects.select_for_update().get(tenant_id=tenant_id)


def post(wallet: Wallet, *, kind: str, amount: Decimal, key: str, actor: Actor, reason: str = "",
         **usage) -> Transaction:
    """Append a ledger entry to a wallet the caller holds locked, and move its balance."""
    wallet.balance += amount
    wallet.save(update_fields=["balance", "updated_at"])
    user = actor.user if actor.user is not None and actor.user.pk else None
    return Transaction.objects.create(
        wallet=wallet, tenant_id=wallet.tenant_id, kind=kind, amount=amount, balance_after=wallet.balance,
        currency=wallet.currency, idempotency_key=key, reason=reason, created_by=user, actor_kind=actor.kind, **usage,
    )


def clean_key(key: str) -> str:
    key = (key or "").strip()
    if not key or len(key) > KEY_MAX or any(ord(c) < 33 or ord(c) == 127 for c in key):
        raise ValidationFailed("An idempotency key of 1 to 128 visible characters is required.",
                               fields={"idempotency_key": [f"1 to {KEY_MAX} visible characters, no spaces."]})
    return key


def _wallet_for(actor: Actor, tenant: Tenant, currency: str) -> Wallet:
    """Lock the tenant's wallet after checking the actor may see it and `currency` is its own."""
    if not actor.is_privileged and tenant.pk != actor.tenant_id:
        raise NotFound(f"No tenant {tenant.public_id}.")
    wallet = locked_wallet(tenant.pk)
    if wallet.currency != currency:
        raise ValidationFailed(f"The wallet is in {wallet.currency}.", fields={"currency": [f"Use {wallet.currency}."]})
    return wallet


def _replayed(wallet: Wallet, key: str, kind: str, amount: Decimal) -> Transaction | None:
    """The entry an earlier call with this key made, if the call is the same; a different call
    reusing the key is refused."""
    earlier = wallet.transactions.filter(idempotency_key=key).first()
    if earlier is None:
        return None
    if earlier.kind != kind or earlier.amount != amount:
        raise Conflict(f"The idempotency key {key} was used for another {earlier.kind} of {earlier.amount}.",
                       code="idempotency_key_reused", fields={"idempotency_key": ["Already used for another call."]})
    return earlier


def _pay_in(actor: Actor, *, kind: str, tenant: Tenant, amount, currency: str, idempotency_key: str,
            reason: str) -> Transaction:
    require_operator(actor)
    currency = money.clean_currency(currency)
    amount = money.clean_amount(amount, currency)
    key = clean_key(idempotency_key)
    wallet = _wallet_for(actor, tenant, currency)
    if earlier := _replayed(wallet, key, kind, amount):
        return earlier
    entry = post(wallet, kind=kind, amount=amount, key=key, actor=actor, reason=(reason or "").strip()[:255])
    # Money in may end an overdue tenant's suspension: the policy restores what it stopped once
    # this commits (its schedule would too, later).
    from apps.billing import policy

    transaction.on_commit(lambda: policy.after_payment(tenant.pk))
    return entry


@audited("wallet.recharge", area="billing")
def recharge(actor: Actor, *, tenant: Tenant, amount, currency: str, idempotency_key: str,
             reason: str = "") -> Transaction:
    """Money paid in (a payment gateway's event, a bank transfer an operator records)."""
    return _pay_in(actor, kind=Transaction.RECHARGE, tenant=tenant, amount=amount, currency=currency,
                   idempotency_key=idempotency_key, reason=reason)


@audited("wallet.refund", area="billing")
def refund(actor: Actor, *, tenant: Tenant, amount, currency: str, idempotency_key: str,
           reason: str = "") -> Transaction:
    """Money given back to the wallet (a cancelled purchase, a downgrade)."""
    return _pay_in(actor, kind=Transaction.REFUND, tenant=tenant, amount=amount, currency=currency,
                   idempotency_key=idempotency_key, reason=reason)


@audited("wallet.credit", area="billing")
def grant_credit(actor: Actor, *, tenant: Tenant, amount, currency: str, reason: str,
                 idempotency_key: str | None = None) -> Transaction:
    """An operator's gift (a promotion, a goodwill credit): not money paid in."""
    if not (reason or "").strip():
        raise ValidationFailed("A reason is required.", fields={"reason": ["Say why."]})
    return _pay_in(actor, kind=Transaction.CREDIT, tenant=tenant, amount=amount, currency=currency,
                   idempotency_key=idempotency_key or f"credit:{uuid.uuid4()}", reason=reason)


@audited("wallet.charge", area="billing")
def charge(actor: Actor, *, tenant: Tenant, amount, currency: str, idempotency_key: str, reason: str,
           resource=None) -> Transaction:
    """Take money for a purchase (a prepaid period, an order). Refused with 402
    `insufficient_funds`, charging nothing, when the balance plus the credit limit cannot cover
    it. `resource` (with a public id) is what the purchase is for."""
    if not actor.is_privileged:
        permissions.require_area(actor, "billing", "charge")
    currency = money.clean_currency(currency)
    amount = money.clean_amount(amount, currency)
    key = clean_key(idempotency_key)
    wallet = _wallet_for(actor, tenant, currency)
    if earlier := _replayed(wallet, key, Transaction.CHARGE, -amount):
        return earlier
    if wallet.available < amount:
        raise InsufficientFunds(
            f"The balance ({wallet.balance:.{money.places(currency)}f} {currency}) and credit limit "
            f"({wallet.credit_limit:.{money.places(currency)}f}) cannot cover {amount} {currency}.",
            fields={"amount": ["More than the wallet can pay."]})
    refs = {"resource_type": resource._meta.model_name, "resource_id": resource.public_id} if resource else {}
    return post(wallet, kind=Transaction.CHARGE, amount=-amount, key=key, actor=actor,
                reason=(reason or "").strip()[:255], **refs)


@audited("wallet.adjust", area="billing")
def adjust(actor: Actor, *, tenant: Tenant, amount, currency: str, reason: str,
           idempotency_key: str | None = None) -> Transaction:
    """An operator's correction, up or down (signed amount), with the reason it is made. It may
    take the balance below the credit limit: it corrects the books, it buys nothing."""
    require_operator(actor)
    if not (reason or "").strip():
        raise ValidationFailed("A reason is required.", fields={"reason": ["Say why."]})
    currency = money.clean_currency(currency)
    amount = money.clean_amount(amount, currency, signed=True)
    key = clean_key(idempotency_key or f"adjust:{uuid.uuid4()}")
    wallet = _wallet_for(actor, tenant, currency)
    return _replayed(wallet, key, Transaction.ADJUSTMENT, amount) or post(
        wallet, kind=Transaction.ADJUSTMENT, amount=amount, key=key, actor=actor, reason=reason.strip()[:255])


@audited("wallet.open", area="billing")
def open_wallet(actor: Actor, *, tenant: Tenant, currency: str) -> Wallet:
    """Open a tenant's wallet in a chosen currency before its first use (otherwise it opens in
    PORTAL_DEFAULT_CURRENCY). Opening it again in the same currency changes nothing."""
    require_operator(actor)
    currency = money.clean_currency(currency)
    wallet, _ = Wallet.objects.get_or_create(tenant=tenant, defaults={"currency": currency})
    if wallet.currency != currency:
        raise Conflict(f"The wallet of {tenant.name} is in {wallet.currency}.", code="wallet_exists",
                       fields={"currency": [f"The wallet is in {wallet.currency}."]})
    return wallet


@audited("wallet.set_credit_limit", area="billing")
def set_credit_limit(actor: Actor, *, tenant: Tenant, credit_limit) -> Wallet:
    """How far purchases may take the tenant's balance below zero (0: not at all)."""
    require_operator(actor)
    wallet = locked_wallet(tenant.pk)
    wallet.credit_limit = money.clean_amount(credit_limit, wallet.currency, field="credit_limit", zero=True)
    wallet.save(update_fields=["credit_limit", "updated_at"])
    return wallet


@audited("wallet.set_low_balance_threshold", area="billing")
def set_low_balance_threshold(actor: Actor, *, tenant: Tenant, threshold) -> Wallet:
    """The balance below which the tenant is warned (0: only when it is negative)."""
    if not actor.is_privileged:
        permissions.require_area(actor, "billing", "change")
        if tenant.pk != actor.tenant_id:
            raise NotFound(f"No tenant {tenant.public_id}.")
    wallet = locked_wallet(tenant.pk)
    wallet.low_balance_threshold = money.clean_amount(threshold, wallet.currency, field="threshold", zero=True)
    wallet.save(update_fields=["low_balance_threshold", "updated_at"])
    return wallet
