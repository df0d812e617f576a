"""The only writers of tenancy state: tenants, members, grants, quotas, API tokens, key pairs,
platform settings. Each service takes the Actor first, checks what the actor may do, writes in
one transaction and leaves one audit record (apps.core.audit.audited)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from apps.core import events, permissions
from apps.core.actor import Actor
from apps.core.audit import audited
from apps.core.exceptions import Conflict, NotFound, PermissionDenied, TenantFrozen, ValidationFailed
from apps.core.models import PlatformSettings
from apps.core.policies import OWNER, ROLE_CHOICES, policies
from apps.core.registry import model_for_public_id
from apps.tenants import quotas, sshkeys
from apps.tenants.models import ApiToken, KeyPair, Membership, Quota, QuotaDefault, Tenant, hash_token

User = get_user_model()
ROLES = {value for value, _ in ROLE_CHOICES}


# --- guards -------------------------------------------------------------------------------

def require_operator(actor: Actor) -> None:
    if not actor.is_privileged:
        raise PermissionDenied("Only operators can do this.")


def require_writable_tenant(actor: Actor) -> Tenant:
    """Creates need an active tenant: a frozen one can read but not create."""
    if actor.tenant is None:
        raise ValidationFailed("No current tenant selected.", code="no_tenant")
    tenant = Tenant.objects.get(pk=actor.tenant.pk)
    if tenant.is_frozen:
        raise TenantFrozen(f"Tenant {tenant.name} is frozen: {tenant.frozen_reason or 'no reason given'}.")
    return tenant


def _validate_new_user(username: str, email: str, password: str) -> None:
    errors: dict[str, list[str]] = {}
    if not username or len(username) > 150:
        errors["username"] = ["A username of 1 to 150 characters is required."]
    elif User.objects.filter(username__iexact=username).exists():
        errors["username"] = ["This username is taken."]
    if email:
        try:
            validate_email(email)
        except DjangoValidationError:
            errors["email"] = ["Enter a valid e-mail address."]
    try:
        validate_password(password, User(username=username, email=email))
    except DjangoValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationFailed("The account details are not valid.", fields=errors)


def _validate_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed("Unknown role.", fields={"role": [f"Choose one of {', '.join(sorted(ROLES))}."]})


def _validate_policies(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - set(policies()))
    if unknown:
        raise ValidationFailed("Unknown policy.", fields={"policies": [f"Unknown: {', '.join(unknown)}."]})
    return sorted(set(names))


# --- tenants ------------------------------------------------------------------------------

@audited("tenant.signup", area="iam", acting_user=lambda tenant: tenant.memberships.get().user)
def sign_up(actor: Actor, *, username: str, email: str, password: str, tenant_name: str) -> Tenant:
    """Self-service: a new user and a new tenant it owns (when operators allow sign-up)."""
    if not PlatformSettings.load().signup_enabled:
        raise PermissionDenied(PlatformSettings.load().signup_message or "Sign-up is closed on this platform.")
    if not tenant_name.strip():
        raise ValidationFailed("A tenant name is required.", fields={"tenant_name": ["This field is required."]})
    _validate_new_user(username, email, password)
    user = User.objects.create_user(username=username, email=email, password=password)
    tenant = Tenant.objects.create(name=tenant_name.strip())
    Membership.objects.create(tenant=tenant, user=user, role=OWNER, created_by=user)
    return tenant


@audited("tenant.create", area="iam")
def create_tenant(actor: Actor, *, name: str, owner=None) -> Tenant:
    """A user opens another tenant it owns; operators create one for any user."""
    if not name.strip():
        raise ValidationFailed("A tenant name is required.", fields={"name": ["This field is required."]})
    if owner is not None and owner != actor.user:
        require_operator(actor)
    owner = owner or actor.user
    if owner is None:
        raise ValidationFailed("A tenant needs an owner.", fields={"owner": ["This field is required."]})
    tenant = Tenant.objects.create(name=name.strip())
    Membership.objects.create(tenant=tenant, user=owner, role=OWNER, created_by=actor.user)
    return tenant


@audited("tenant.freeze", area="iam")
def freeze_tenant(actor: Actor, *, tenant: Tenant, reason: str) -> Tenant:
    require_operator(actor)
    if not reason.strip():
        raise ValidationFailed("Say why the tenant is frozen.", fields={"reason": ["This field is required."]})
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    tenant.status, tenant.frozen_reason, tenant.frozen_at = Tenant.FROZEN, reason.strip(), timezone.now()
    tenant.save(update_fields=["status", "frozen_reason", "frozen_at"])
    events.publish(tenant.pk, {"type": "tenant", "status": tenant.status, "reason": tenant.frozen_reason})
    return tenant


@audited("tenant.unfreeze", area="iam")
def unfreeze_tenant(actor: Actor, *, tenant: Tenant) -> Tenant:
    require_operator(actor)
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    tenant.status, tenant.frozen_reason, tenant.frozen_at = Tenant.ACTIVE, "", None
    tenant.save(update_fields=["status", "frozen_reason", "frozen_at"])
    events.publish(tenant.pk, {"type": "tenant", "status": tenant.status})
    return tenant


@audited("tenant.rename", area="iam")
def rename_tenant(actor: Actor, *, tenant: Tenant, name: str) -> Tenant:
    if not actor.is_privileged:
        permissions.require_area(actor, "iam", "change")
    if not name.strip():
        raise ValidationFailed("A tenant name is required.", fields={"name": ["This field is required."]})
    tenant.name = name.strip()
    tenant.save(update_fields=["name"])
    return tenant


# --- members ------------------------------------------------------------------------------

def _require_can_manage(actor: Actor, membership_role: str) -> None:
    permissions.require_area(actor, "iam", "change")
    if membership_role == OWNER and actor.role != OWNER and not actor.is_privileged:
        raise PermissionDenied("Only an owner can create or change owners.")


@audited("member.create", area="iam")
def create_sub_account(actor: Actor, *, username: str, email: str, password: str, role: str) -> Membership:
    """A new user that belongs to the actor's tenant with `role`."""
    tenant = require_writable_tenant(actor)
    _validate_role(role)
    _require_can_manage(actor, role)
    _validate_new_user(username, email, password)
    quotas.consume(tenant, amounts={"members": 1})
    user = User.objects.create_user(username=username, email=email, password=password)
    membership = Membership.objects.create(tenant=tenant, user=user, role=role, created_by=actor.user)
    events.publish(tenant.pk, {"type": "member", "id": membership.public_id, "action": "created"})
    return membership


@audited("member.update", area="iam")
def update_member(
    actor: Actor,
    *,
    membership: Membership,
    role: str | None = None,
    is_active: bool | None = None,
    policies: list[str] | None = None,
) -> Membership:
    """Change a member's role, extra policies, or disable/enable it. The last active owner
    stays an active owner; nobody changes their own membership."""
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _require_can_manage(actor, membership.role)
    if membership.user_id == actor.user_id:
        raise PermissionDenied("You cannot change your own membership.")
    if role is not None:
        _validate_role(role)
        _require_can_manage(actor, role)
        membership.role = role
    if policies is not None:
        membership.policies = _validate_policies(policies)
    if is_active is not None:
        membership.is_active = is_active
    if membership.role != OWNER or not membership.is_active:
        other_owners = Membership.objects.active().filter(tenant_id=membership.tenant_id, role=OWNER).exclude(
            pk=membership.pk
        )
        if not other_owners.exists():
            raise Conflict("A tenant keeps at least one active owner.")
    membership.save(update_fields=["role", "policies", "is_active"])
    events.publish(membership.tenant_id, {"type": "member", "id": membership.public_id, "action": "updated"})
    return membership


@audited("member.grant", area="iam")
def grant_resource(actor: Actor, *, membership: Membership, resource_id: str, action: str) -> Membership:
    """Give one member `action` on one resource of the tenant (django-guardian)."""
    assign_perm(*_grant(actor, membership, resource_id, action))
    return membership


@audited("member.revoke", area="iam")
def revoke_resource(actor: Actor, *, membership: Membership, resource_id: str, action: str) -> Membership:
    remove_perm(*_grant(actor, membership, resource_id, action))
    return membership


def _grant(actor: Actor, membership: Membership, resource_id: str, action: str):
    """(permission codename, user, object) of a grant the actor may manage."""
    _require_can_manage(actor, membership.role)
    model = model_for_public_id(resource_id)
    obj = model.objects.for_actor(actor).filter(public_id=resource_id).first() if model else None
    if obj is None:
        raise NotFound(f"No resource {resource_id}.", fields={"resource_id": ["Not found in this tenant."]})
    return permissions.perm_codename(type(obj), action), membership.user, obj


# --- quotas (operators) -------------------------------------------------------------------

@audited("quota.set", area="iam")
def set_quota(actor: Actor, *, tenant: Tenant, resource: str, limit: int | None, region: str | None = None) -> Quota:
    """Override one tenant's limit (None: back to the operator default)."""
    require_operator(actor)
    if limit is not None and limit < 0:
        raise ValidationFailed("A limit cannot be negative.", fields={"limit": ["Must be 0 or more."]})
    region = quotas.region_for(resource, region)
    row, _ = Quota.objects.select_for_update().get_or_create(tenant=tenant, region=region, resource=resource)
    row.limit = limit
    row.save(update_fields=["limit"])
    return row


@audited("quota.set_default", area="iam")
def set_quota_default(actor: Actor, *, resource: str, limit: int, region: str = "") -> QuotaDefault:
    require_operator(actor)
    quotas.get_resource(resource)
    if limit < 0:
        raise ValidationFailed("A limit cannot be negative.", fields={"limit": ["Must be 0 or more."]})
    row, _ = QuotaDefault.objects.update_or_create(resource=resource, region=region, defaults={"limit": limit})
    return row


# --- API tokens ---------------------------------------------------------------------------

@audited("token.create", area="iam")
def create_api_token(
    actor: Actor, *, name: str, scope: str, tenant: Tenant | None = None, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """A personal token for the actor's user; returns it with the secret, shown only once.
    A token never widens access: requests still run with the member's role."""
    if actor.user is None:
        raise PermissionDenied("Only users have API tokens.")
    if actor.read_only:
        raise PermissionDenied("A read-only token cannot create tokens.")
    if not name.strip():
        raise ValidationFailed("Name the token.", fields={"name": ["This field is required."]})
    if scope not in (ApiToken.READ, ApiToken.READ_WRITE):
        raise ValidationFailed("Unknown scope.", fields={"scope": ["Choose 'read' or 'read-write'."]})
    if tenant is not None and not Membership.objects.active().filter(tenant=tenant, user=actor.user).exists():
        raise NotFound("No such tenant.", fields={"tenant": ["Not one of your tenants."]})
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise ValidationFailed("Expiry out of range.", fields={"expires_in_days": ["Between 1 and 3650 days."]})
    secret = ApiToken.SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=actor.user,
        tenant=tenant,
        name=name.strip(),
        scope=scope,
        token_hash=hash_token(secret),
        prefix=secret[:10],
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    return token, secret


@audited("token.revoke", area="iam")
def revoke_api_token(actor: Actor, *, token: ApiToken) -> ApiToken:
    if token.user_id != actor.user_id and not actor.is_privileged:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


# --- key pairs ----------------------------------------------------------------------------

def _key_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 128:
        raise ValidationFailed("A key pair name of 1 to 128 characters is required.", fields={"name": ["Invalid."]})
    return name


def _save_key_pair(actor: Actor, name: str, parsed: sshkeys.ParsedKey) -> KeyPair:
    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, KeyPair.area, "create")
    if KeyPair.objects.filter(tenant=tenant, name=name, deleted_at__isnull=True).exists():
        raise Conflict(f"A key pair named '{name}' exists.", fields={"name": ["Already used in this tenant."]})
    quotas.consume(tenant, amounts={"key_pairs": 1})
    try:
        key_pair = KeyPair.objects.create(
            tenant=tenant,
            name=name,
            created_by=actor.user,
            public_key=parsed.public_key,
            key_type=parsed.key_type,
            fingerprint=parsed.fingerprint,
        )
    except IntegrityError:  # lost a race with a request creating the same name
        raise Conflict(f"A key pair named '{name}' exists.", fields={"name": ["Already used in this tenant."]})
    events.publish(tenant.pk, {"type": "key_pair", "id": key_pair.public_id, "action": "created"})
    return key_pair


@audited("keypair.import", area="compute")
def import_key_pair(actor: Actor, *, name: str, public_key: str) -> KeyPair:
    """Register the public half of a key the user keeps."""
    return _save_key_pair(actor, _key_name(name), sshkeys.parse_public_key(public_key))


@audited("keypair.generate", area="compute")
def generate_key_pair(actor: Actor, *, name: str, key_type: str = "ed25519") -> tuple[KeyPair, str]:
    """Make a new key pair; the private key is returned once and not kept."""
    name = _key_name(name)
    parsed, private_key = sshkeys.generate(key_type, comment=name)
    return _save_key_pair(actor, name, parsed), private_key


@audited("keypair.delete", area="compute")
def delete_key_pair(actor: Actor, *, key_pair: KeyPair) -> KeyPair:
    permissions.require(actor, key_pair, "delete")
    key_pair = KeyPair.objects.select_for_update().get(pk=key_pair.pk)
    if key_pair.deleted_at is None:
        key_pair.deleted_at = timezone.now()
        key_pair.save(update_fields=["deleted_at"])
        quotas.release(key_pair.tenant, amounts={"key_pairs": 1})
        events.publish(key_pair.tenant_id, {"type": "key_pair", "id": key_pair.public_id, "action": "deleted"})
    return key_pair


# --- platform -----------------------------------------------------------------------------

@audited("platform.settings", area="iam")
def update_platform_settings(actor: Actor, *, signup_enabled: bool, signup_message: str = "",
                             recycle_bin_hours: int | None = None) -> PlatformSettings:
    require_operator(actor)
    row = PlatformSettings.load()
    row.signup_enabled, row.signup_message = signup_enabled, signup_message
    if recycle_bin_hours is not None:
        if not 0 <= recycle_bin_hours <= 24 * 90:
            raise ValidationFailed("The recycle bin keeps things 0 to 2160 hours (90 days).",
                                   fields={"recycle_bin_hours": ["0 to 2160."]})
        row.recycle_bin_hours = recycle_bin_hours
    row.save()
    return row
