"""Base models: tenant-owned rows with public ids and soft delete, the scoped queryset that is
the one place where tenancy is enforced, the audit log, long-running operations and the
platform settings operators edit in the back office."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.ids import new_public_id

if TYPE_CHECKING:
    from apps.core.actor import Actor


class ScopedQuerySet(models.QuerySet):
    """Rows that carry a `tenant` and belong to an area (class attribute `area`, or a per-row
    `area` column when the model sets `area_field`)."""

    def for_actor(self, actor: Actor, action: str = "view") -> ScopedQuerySet:
        """Rows of the actor's tenant it may `action`; operators and the system see all.
        Empty, never an error: a row of another tenant simply is not there (404)."""
        if actor.is_privileged:
            return self
        if actor.tenant is None or actor.user is None:
            return self.none()
        rows = self.filter(tenant_id=actor.tenant.pk)
        area_field = getattr(self.model, "area_field", None)
        if area_field:
            from apps.core.policies import areas

            allowed = [a.name for a in areas() if actor.allows(a.name, action)]
            return rows.filter(**{f"{area_field}__in": allowed})
        if actor.allows(self.model.area, action):
            return rows
        return self._granted(actor, action, rows)

    def _granted(self, actor: Actor, action: str, rows: ScopedQuerySet) -> ScopedQuerySet:
        """Rows a sub-account holds a django-guardian object permission on."""
        from apps.core import permissions

        return permissions.granted_rows(actor, action, rows)


class TenantOwnedQuerySet(ScopedQuerySet):
    def for_actor(self, actor: Actor, action: str = "view", *, include_deleted: bool = False):
        rows = super().for_actor(actor, action)
        return rows if include_deleted else rows.filter(deleted_at__isnull=True)

    def by_public_id(self, public_id: str):
        return self.get(public_id=public_id)


class PublicIdModel(models.Model):
    """A row known outside by a prefixed public id (`i-3k9x2m7q`), given on first save."""

    public_id_prefix: ClassVar[str] = ""

    public_id = models.CharField(max_length=32, unique=True, editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self.public_id:
            self.public_id = new_public_id(self.public_id_prefix)
        super().save(*args, **kwargs)


class TenantOwned(PublicIdModel):
    """A resource that belongs to a tenant: the base of every instance, volume, VPC, EIP...

    Subclasses set `public_id_prefix` (`i`, `vol`, `vpc`...) and `area` (the policy area that
    governs them), and get the scoped manager."""

    area: ClassVar[str] = ""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=128, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Set when the resource goes to the recycle bin; rows are purged later by policy.
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]
        # Lists read one tenant's newest rows first: this index serves them without a sort.
        indexes = [models.Index(fields=["tenant", "-created_at", "-id"], name="%(app_label)s_%(class)s_list")]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})" if self.name else self.public_id


class AuditRecord(models.Model):
    """One service call: who, what, on which resource, with what result. Append-only."""

    RESULT_OK, RESULT_ERROR = "ok", "error"

    area = "audit"

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept as text so the record survives the user's deletion.
    username = models.CharField(max_length=150, blank=True)
    actor_kind = models.CharField(max_length=16)  # user, operator, system, anonymous
    via = models.CharField(max_length=16, blank=True)
    service = models.CharField(max_length=32, help_text="The area the action belongs to (iam, compute...).")
    action = models.CharField(max_length=64, db_index=True)
    resource_type = models.CharField(max_length=32, blank=True)
    resource_id = models.CharField(max_length=64, blank=True, db_index=True)
    result = models.CharField(max_length=8, choices=[(RESULT_OK, "ok"), (RESULT_ERROR, "error")])
    error_code = models.CharField(max_length=32, blank=True)
    reason = models.TextField(blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_id} {self.result}"


class Operation(TenantOwned):
    """Long work run by a task (an export, a provisioning, a backup): status, progress, the
    current step and a log that pages show live and the API exposes."""

    public_id_prefix = "op"
    area_field = "area"

    PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
    STATUS_CHOICES = [(s, s) for s in (PENDING, RUNNING, SUCCEEDED, FAILED)]

    area = models.CharField(max_length=32)
    kind = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=128, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        pass

    @property
    def is_finished(self) -> bool:
        return self.status in (self.SUCCEEDED, self.FAILED)


class TrackedTask(models.Model):
    """A queued task that drives one resource through a transitional state (building,
    attaching...). The row goes when the task ends well; one that raised or was lost with its
    worker is what turns the resource to `error` instead of leaving it transitional for ever."""

    func = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    resource_model = models.CharField(max_length=64, help_text="app_label.model of the resource row.")
    resource_pk = models.BigIntegerField()
    queued_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=1)

    class Meta:
        indexes = [models.Index(fields=["resource_model", "resource_pk"])]

    def __str__(self) -> str:
        return f"{self.func}{tuple(self.args)} for {self.resource_model}#{self.resource_pk}"


class PlatformSettings(models.Model):
    """Operator-editable settings (one row). Environment settings seed the first values."""

    signup_enabled = models.BooleanField(default=True, help_text="Anyone may sign up and get a tenant.")
    signup_message = models.CharField(
        max_length=255, blank=True, help_text="Shown on the sign-up page when sign-up is closed."
    )
    recycle_bin_hours = models.PositiveIntegerField(
        default=24, help_text="Deleted instances and volumes stay restorable this long; 0 deletes them at once."
    )
    # Billing policy: what happens to resources whose subscription expired or whose tenant's
    # balance (plus credit) ran out: a grace period, then stopped, then the recycle bin (whose
    # retention is recycle_bin_hours), then deleted.
    overdue_grace_hours = models.PositiveIntegerField(
        default=24, help_text="Hours an overdue tenant's on-demand resources keep running after the notice.")
    expiry_grace_days = models.PositiveIntegerField(
        default=3, help_text="Days an expired subscription's resource keeps running.")
    stopped_days = models.PositiveIntegerField(
        default=7, help_text="Days a resource stopped for billing stays stopped before the recycle bin.")
    renewal_reminder_days = models.PositiveIntegerField(
        default=7, help_text="Days before a subscription expires that its tenant is reminded.")
    downgrade_refund_percent = models.PositiveIntegerField(
        default=100, help_text="Share of a prepaid downgrade's prorated difference refunded to the wallet.")
    create_requires_hours = models.PositiveIntegerField(
        default=1, help_text="On-demand resources are created only if the balance plus credit covers this many hours.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "platform settings"

    def __str__(self) -> str:
        return "Platform settings"

    @classmethod
    def load(cls) -> PlatformSettings:
        row, _ = cls.objects.get_or_create(pk=1, defaults={"signup_enabled": settings.PORTAL_SIGNUP_ENABLED,
                                                           "recycle_bin_hours": settings.PORTAL_RECYCLE_BIN_HOURS})
        return row
