"""Tenants, their members, quotas, API tokens and SSH key pairs."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import PublicIdModel, ScopedQuerySet, TenantOwned
from apps.core.policies import READONLY, ROLE_CHOICES


class Tenant(PublicIdModel):
    """An organisation or a person: owns resources, a wallet and quotas; frozen tenants can
    read but not create."""

    public_id_prefix = "tn"
    ACTIVE, FROZEN = "active", "frozen"
    STATUS_CHOICES = [(ACTIVE, "active"), (FROZEN, "frozen")]

    name = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=ACTIVE)
    frozen_reason = models.CharField(max_length=255, blank=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    @property
    def is_frozen(self) -> bool:
        return self.status == self.FROZEN


class MembershipQuerySet(ScopedQuerySet):
    def active(self):
        return self.filter(is_active=True, user__is_active=True)


class Membership(PublicIdModel):
    """A user's place in a tenant: a role plus optional extra named policies. A sub-account
    is a user created by a tenant's owner or admin, with one membership."""

    public_id_prefix = "mem"
    area = "iam"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=ROLE_CHOICES, default=READONLY)
    policies = models.JSONField(default=list, blank=True, help_text="Extra named policies on top of the role.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


class QuotaDefault(models.Model):
    """The operator's default limit of a quota resource, for all tenants (region blank) or
    for one region. A tenant's own Quota.limit overrides it."""

    resource = models.CharField(max_length=32)
    region = models.CharField(max_length=64, blank=True, help_text="Blank: every region.")
    limit = models.PositiveBigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resource", "region"], name="one_default_per_resource_region")]
        ordering = ["resource", "region"]

    def __str__(self) -> str:
        return f"{self.resource}@{self.region or '*'} = {self.limit}"


class Quota(models.Model):
    """Usage of one quota resource by one tenant in one region. The row is what concurrent
    requests lock (select_for_update) while they reserve."""

    area = "iam"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quotas")
    region = models.CharField(max_length=64)
    resource = models.CharField(max_length=32)
    # None: the operator default applies.
    limit = models.PositiveBigIntegerField(null=True, blank=True)
    in_use = models.PositiveBigIntegerField(default=0)
    reserved = models.PositiveBigIntegerField(default=0)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["region", "resource"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "region", "resource"], name="one_quota_row"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.region}/{self.resource}: {self.in_use}+{self.reserved}/{self.limit}"


class QuotaReservation(PublicIdModel):
    """Quota held for a resource being created; committed when it exists, released if the
    creation fails or the reservation expires (swept by a scheduled task)."""

    public_id_prefix = "rsv"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=64)
    amounts = models.JSONField(help_text="resource -> amount")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def for_user(self, user):
        return self.filter(user=user)


class ApiToken(PublicIdModel):
    """A personal API token. Only its SHA-256 is stored; the secret is shown once. A token may
    be bound to one tenant and limited to reads."""

    READ, READ_WRITE = "read", "read-write"
    SCOPE_CHOICES = [(READ, "read-only"), (READ_WRITE, "read-write")]
    SECRET_PREFIX = "cpt_"
    public_id_prefix = "tok"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    name = models.CharField(max_length=64)
    scope = models.CharField(max_length=16, choices=SCOPE_CHOICES, default=READ_WRITE)
    token_hash = models.CharField(max_length=64, unique=True)
    # First characters of the secret, so users can tell their tokens apart.
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class KeyPair(TenantOwned):
    """An SSH public key that instances of the tenant can be created with (EC2-style key pair).
    The private key of a generated pair is returned once and never stored."""

    public_id_prefix = "kp"
    area = "compute"

    public_key = models.TextField()
    key_type = models.CharField(max_length=32)
    fingerprint = models.CharField(max_length=128)

    class Meta(TenantOwned.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], condition=Q(deleted_at__isnull=True), name="keypair_name_unique_in_tenant"
            )
        ]

