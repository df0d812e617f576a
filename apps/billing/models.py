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
    # The overdue policy's clock: when the balance plus credit first ran out (empty while it
    # covers), and how far the policy has gone since (notified, stopped, recycled).
    overdue_since = models.DateTimeField(null=True, blank=True)
    overdue_stage = models.CharField(max_length=16, blank=True)
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


class Order(PublicIdModel):
    """One purchase: creating an on-demand resource, buying or renewing a prepaid period,
    upgrading or downgrading a resource, topping up the wallet. `amount` is what the order
    costs (charged when it is paid; 0 for an on-demand create, which usage metering bills);
    `refunded` what was given back of it. The idempotency key is unique per tenant, so a
    retried purchase finds its first order."""

    public_id_prefix = "ord"
    area = "billing"

    CREATE, PURCHASE, RENEW, UPGRADE, DOWNGRADE, RECHARGE = "create", "purchase", "renew", "upgrade", "downgrade", \
        "recharge"
    KIND_CHOICES = [(CREATE, "create on demand"), (PURCHASE, "buy prepaid"), (RENEW, "renew"), (UPGRADE, "upgrade"),
                    (DOWNGRADE, "downgrade"), (RECHARGE, "recharge")]
    PENDING, PAID, FAILED, CANCELLED, REFUNDED = "pending", "paid", "failed", "cancelled", "refunded"
    STATUS_CHOICES = [(PENDING, "pending"), (PAID, "paid"), (FAILED, "failed"), (CANCELLED, "cancelled"),
                      (REFUNDED, "refunded")]
    ON_DEMAND, MONTHLY, YEARLY = "on_demand", "monthly", "yearly"
    MODE_CHOICES = [(ON_DEMAND, "on demand"), (MONTHLY, "monthly"), (YEARLY, "yearly")]

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PENDING)
    billing_mode = models.CharField(max_length=16, choices=MODE_CHOICES, default=ON_DEMAND)
    resource_type = models.CharField(max_length=32, blank=True)
    resource_id = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=3)
    amount = _money(default=0)
    refunded = _money(default=0)
    idempotency_key = models.CharField(max_length=128)
    charge = models.ForeignKey(Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    message = models.CharField(max_length=255, blank=True, help_text="Why it failed or was cancelled or refunded.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    paid_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="order_idempotency_key"),
            models.CheckConstraint(condition=Q(amount__gte=0) & Q(refunded__gte=0) & Q(refunded__lte=F("amount")),
                                   name="order_amounts"),
        ]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="order_list"),
                   models.Index(fields=["resource_id"], name="order_resource")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.kind} {self.amount} {self.currency} {self.status}"


class OrderItem(models.Model):
    """A line of an order: a product, at a quantity, for a period (prepaid) or per hour (on demand)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=255, blank=True)
    quantity = models.DecimalField(max_digits=15, decimal_places=3, default=1)
    unit_price = _hourly(help_text="Per hour (on demand) or per period (prepaid).")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    amount = _money(default=0)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.product.code} ×{self.quantity} {self.amount}"


class Subscription(PublicIdModel):
    """A resource bought for monthly or yearly periods, paid up to `expires_at`. While it is
    active the resource meters no on-demand usage of `product`'s meter. After expiry it goes
    through the platform's policy: grace → the resource stopped → the recycle bin → deleted
    (`ended`); renewing before it is deleted brings it back."""

    public_id_prefix = "sub"
    area = "billing"

    ACTIVE, GRACE, SUSPENDED, RECYCLED, ENDED = "active", "grace", "suspended", "recycled", "ended"
    STATUS_CHOICES = [(ACTIVE, "active"), (GRACE, "expired, in grace"), (SUSPENDED, "expired, resource stopped"),
                      (RECYCLED, "expired, in the recycle bin"), (ENDED, "ended")]
    TERM_CHOICES = [(Order.MONTHLY, "monthly"), (Order.YEARLY, "yearly")]

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    resource_type = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=32)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(max_digits=15, decimal_places=3, default=1)
    region = models.CharField(max_length=64)
    term = models.CharField(max_length=16, choices=TERM_CHOICES)
    currency = models.CharField(max_length=3)
    price = _money(help_text="Per term, as last paid.")
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    auto_renew = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=ACTIVE)
    status_changed_at = models.DateTimeField(default=timezone.now)
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="The last reminder before expiry.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["expires_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["resource_id"], condition=~Q(status="ended"),
                                    name="subscription_one_per_resource"),
            models.CheckConstraint(condition=Q(expires_at__gt=F("starts_at")), name="subscription_period"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="subscription_due")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.resource_id} {self.term} until {self.expires_at:%Y-%m-%d}"


class Payment(PublicIdModel):
    """Money a tenant pays in through a payment gateway (a Stripe Checkout session): pending
    until the gateway's event says it succeeded, which credits the wallet once
    (`transaction`)."""

    public_id_prefix = "pay"
    area = "billing"

    PENDING, SUCCEEDED, FAILED, EXPIRED = "pending", "succeeded", "failed", "expired"
    STATUS_CHOICES = [(PENDING, "pending"), (SUCCEEDED, "succeeded"), (FAILED, "failed"), (EXPIRED, "expired")]

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    gateway = models.CharField(max_length=32)
    external_id = models.CharField(max_length=255, blank=True, help_text="The gateway's id (a Checkout session).")
    checkout_url = models.URLField(max_length=1024, blank=True)
    amount = _money()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PENDING)
    order = models.OneToOneField(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="payment")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    message = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "external_id"], condition=~Q(external_id=""),
                                    name="payment_external_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.gateway} {self.amount} {self.currency} {self.status}"


class GatewayEvent(models.Model):
    """A payment gateway's webhook event, kept once per event id: a replay finds it and does
    nothing again."""

    gateway = models.CharField(max_length=32)
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=128)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["gateway", "event_id"], name="gateway_event_once")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.event_id} {self.type}"


class GatewayCustomer(models.Model):
    """A tenant as a payment gateway's customer (a Stripe Customer): made at its first payment
    and reused for every later one, so the gateway keeps one customer's payments together."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    gateway = models.CharField(max_length=32)
    external_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "gateway"], name="gateway_customer_once")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.external_id} (tenant {self.tenant_id})"


class Notice(models.Model):
    """A billing message to a tenant (low balance, overdue, resources stopped, a subscription
    about to expire...), shown in the console until read and e-mailed to its owners once.
    `key` is unique per tenant so a repeated check never says the same thing twice."""

    area = "billing"

    LOW_BALANCE, OVERDUE, STOPPED, RECYCLED, DELETED, EXPIRING, EXPIRED, RENEWED, RESTORED = (
        "low_balance", "overdue", "stopped", "recycled", "deleted", "expiring", "expired", "renewed", "restored")
    KIND_CHOICES = [(LOW_BALANCE, "low balance"), (OVERDUE, "overdue"), (STOPPED, "resources stopped"),
                    (RECYCLED, "resources in the recycle bin"), (DELETED, "resources deleted"),
                    (EXPIRING, "subscription expiring"), (EXPIRED, "subscription expired"),
                    (RENEWED, "subscription renewed"), (RESTORED, "resources restored")]
    INFO, WARNING, DANGER = "info", "warning", "danger"
    LEVEL_CHOICES = [(INFO, "info"), (WARNING, "warning"), (DANGER, "danger")]

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    level = models.CharField(max_length=8, choices=LEVEL_CHOICES, default=WARNING)
    message = models.CharField(max_length=500)
    resource_id = models.CharField(max_length=32, blank=True)
    key = models.CharField(max_length=160)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="notice_once")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"
