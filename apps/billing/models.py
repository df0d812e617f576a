"""Billing data: the catalog (products, list price versions per region and currency, tenant
overrides), usage metering (intervals the lifecycle services open and close) and wallets with
their append-only ledger.

Money is Decimal; ledger columns keep 4 places (the most any currency has) and services round
to the currency's own places. Hourly prices keep 6 places: they are charged per second."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from apps.core.models import PublicIdModel, ScopedQuerySet

PRODUCT_CODE = r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$"


def _money(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=19, decimal_places=4, **kwargs)


def _hourly(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=18, decimal_places=6, **kwargs)


class Product(models.Model):
    """A billable thing, priced per unit-hour: `instance.flavor.s1-small` (hour),
    `volume.gb.ssd` (GB-hour), `snapshot.gb`, `eip.hour`, `eip.bandwidth_mbps` (Mbps-hour),
    `load_balancer`, `nat_gateway`.

    `meter` names what a resource holds at most one of at a time: every instance flavor shares
    the meter `instance.flavor`, so a resize closes one product's interval and opens the other's,
    while an EIP's `eip.hour` and `eip.bandwidth_mbps` run side by side."""

    HOUR, GB_HOUR, MBPS_HOUR = "hour", "GB-hour", "Mbps-hour"
    UNIT_CHOICES = [(HOUR, "per hour"), (GB_HOUR, "per GB-hour"), (MBPS_HOUR, "per Mbps-hour")]

    code = models.CharField(max_length=96, unique=True, validators=[RegexValidator(PRODUCT_CODE)])
    name = models.CharField(max_length=128)
    description = models.CharField(max_length=255, blank=True)
    unit = models.CharField(max_length=16, choices=UNIT_CHOICES)
    meter = models.CharField(max_length=96, validators=[RegexValidator(PRODUCT_CODE)])
    is_active = models.BooleanField(default=True, help_text="Inactive products meter no new usage.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Price(models.Model):
    """One version of a product's list price in a region and currency, in force from
    `effective_from` until the next version's. Versions are only added, never in the past, so a
    price change never rewrites what was charged; two versions never start at the same second."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="prices")
    region = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    effective_from = models.DateTimeField()
    hourly = _hourly(help_text="On demand, per unit-hour, charged per second.")
    monthly = _money(null=True, blank=True, help_text="Prepaid per month (blank: not sold monthly).")
    yearly = _money(null=True, blank=True, help_text="Prepaid per year (blank: not sold yearly).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["product__code", "region", "currency", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["product", "region", "currency", "effective_from"],
                                    name="price_version_unique"),
            models.CheckConstraint(condition=Q(hourly__gte=0), name="price_hourly_not_negative"),
        ]

    def __str__(self) -> str:
        return (f"{self.product.code}@{self.region} {self.hourly} {self.currency}/h "
                f"from {self.effective_from:%Y-%m-%d %H:%M}")


class TenantPriceOverride(models.Model):
    """An operator's price for one tenant and product from `effective_from` on (every region):
    a fixed hourly price (in the tenant's wallet currency) or a discount on the list price, or
    neither (back to the list price). Versioned like Price."""

    area = "billing"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    effective_from = models.DateTimeField()
    fixed_hourly = _hourly(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, help_text="Of the fixed price.")
    discount_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "product__code", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "product", "effective_from"], name="override_version_unique"),
            models.CheckConstraint(condition=Q(fixed_hourly__isnull=True) | Q(discount_percent__isnull=True),
                                   name="override_fixed_or_discount"),
            models.CheckConstraint(condition=Q(discount_percent__isnull=True)
                                   | Q(discount_percent__gte=0, discount_percent__lte=100),
                                   name="override_discount_percent"),
        ]

    def __str__(self) -> str:
        if self.fixed_hourly is not None:
            what = f"{self.fixed_hourly} {self.currency}/h"
        elif self.discount_percent is not None:
            what = f"-{self.discount_percent}%"
        else:
            what = "list price"
        return f"{self.product.code} for {self.tenant_id}: {what} from {self.effective_from:%Y-%m-%d %H:%M}"


class UsageInterval(models.Model):
    """A resource using a product at a quantity (GB for a volume, Mbps for bandwidth, 1 for an
    instance) from `started_at` until `ended_at` (empty while it runs). Appended by the
    lifecycle services; the only later writes are the close (`ended_at`) and settlement's
    bookkeeping (`settled_until`, `settled`: charged up to its end, never looked at again)."""

    area = "billing"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    region = models.CharField(max_length=64)
    resource_type = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=32, help_text="The resource's public id.")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    meter = models.CharField(max_length=96)
    quantity = models.DecimalField(max_digits=15, decimal_places=3)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    settled_until = models.DateTimeField(null=True, blank=True)
    settled = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # One open interval per resource and meter: a second open of the same is refused by
            # the database even when two workers race.
            models.UniqueConstraint(fields=["resource_id", "meter"], condition=Q(ended_at__isnull=True),
                                    name="usage_one_open_per_meter"),
            models.CheckConstraint(condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                                   name="usage_never_negative"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="usage_quantity_positive"),
        ]
        indexes = [
            # What settlement reads every run: the little that is not settled yet.
            models.Index(fields=["tenant", "started_at"], condition=Q(settled=False), name="usage_unsettled"),
            models.Index(fields=["resource_id", "product", "started_at"], name="usage_resource"),
        ]

    def __str__(self) -> str:
        return f"{self.resource_id} ×{self.quantity} {self.started_at:%Y-%m-%d %H:%M:%S}–{self.ended_at or ''}"


class Wallet(PublicIdModel):
    """A tenant's money in one currency. `balance` is the sum of its ledger, kept in the row and
    changed only under the row's lock (select_for_update) together with the ledger row."""

    public_id_prefix = "wal"
    area = "billing"

    tenant = models.OneToOneField("tenants.Tenant", on_delete=models.PROTECT, related_name="wallet")
    currency = models.CharField(max_length=3)
    balance = _money(default=0)
    credit_limit = _money(default=0, help_text="How far purchases may take the balance below zero.")
    low_balance_threshold = _money(default=0, help_text="Below this balance the tenant is warned.")
    # Usage is settled into this wallet up to here; a settlement asked for an earlier moment
    # (a late worker) has nothing to do.
    usage_settled_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(credit_limit__gte=0), name="wallet_credit_limit")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.balance} {self.currency}"

    @property
    def available(self):
        """What purchases may still spend: the balance plus the credit limit."""
        return self.balance + self.credit_limit

    @property
    def is_low(self) -> bool:
        return self.balance < self.low_balance_threshold


class Transaction(PublicIdModel):
    """One ledger entry: money into (positive) or out of (negative) a wallet, with the balance
    after it. Append-only; the idempotency key makes a retried call find its first result.
    Usage charges name the resource, product and month (period) they settle."""

    public_id_prefix = "txn"
    area = "billing"

    RECHARGE, CHARGE, REFUND, ADJUSTMENT, CREDIT = "recharge", "charge", "refund", "adjustment", "credit"
    KIND_CHOICES = [(RECHARGE, "recharge"), (CHARGE, "charge"), (REFUND, "refund"), (ADJUSTMENT, "adjustment"),
                    (CREDIT, "credit")]

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="transactions")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    amount = _money()
    balance_after = _money()
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=128)
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    actor_kind = models.CharField(max_length=16)  # user, operator, system
    resource_type = models.CharField(max_length=32, blank=True)
    resource_id = models.CharField(max_length=32, blank=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    period = models.DateField(null=True, blank=True, help_text="Usage charges: the month they belong to.")
    usage_until = models.DateTimeField(null=True, blank=True, help_text="Usage charges: settled up to here.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["wallet", "idempotency_key"], name="transaction_idempotency_key"),
            models.CheckConstraint(
                condition=Q(kind__in=["recharge", "refund", "credit"], amount__gt=0) | Q(kind="charge", amount__lt=0)
                | (Q(kind="adjustment") & ~Q(amount=0)),
                name="transaction_amount_sign"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="transaction_list"),
            models.Index(fields=["wallet", "resource_id", "period"], name="transaction_usage"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.kind} {self.amount} {self.currency}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("ledger entries are append-only")
