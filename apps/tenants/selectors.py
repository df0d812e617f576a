"""Reads shared by the API, the console pages and the back office. Everything a tenant sees
goes through `for_actor()`; the actor itself is resolved here once per request."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.actor import Actor
from apps.core.exceptions import NotFound, ValidationFailed
from apps.tenants import quotas
from apps.tenants.models import ApiToken, KeyPair, Membership, Quota, Tenant


def memberships_of(user) -> QuerySet[Membership]:
    """The active tenants a user can switch to (frozen ones included: they stay readable)."""
    return Membership.objects.active().filter(user=user).select_related("tenant").order_by("tenant__name")


def resolve_actor(base: Actor, *, tenant_public_id: str | None, strict: bool) -> Actor:
    """Attach the current tenant to an authenticated actor.

    `tenant_public_id` comes from the API header, the token or the console session. With
    `strict` (API header), a tenant the user is not an active member of is an error (400);
    otherwise it silently falls back to the user's first tenant."""
    user = base.user
    if user is None or not user.is_authenticated:
        return base
    memberships = list(memberships_of(user))
    chosen = None
    if tenant_public_id:
        chosen = next((m for m in memberships if m.tenant.public_id == tenant_public_id), None)
        if chosen is None and strict:
            raise ValidationFailed(
                f"Unknown tenant '{tenant_public_id}'.", fields={"tenant": ["Not a tenant you are a member of."]}
            )
    if chosen is None and memberships:
        chosen = memberships[0]
    if chosen is None:
        return base
    return base.with_tenant(chosen.tenant, chosen.role, frozenset(chosen.policies))


def get_tenant(actor: Actor) -> Tenant:
    if actor.tenant is None:
        raise NotFound("No current tenant.")
    return Tenant.objects.get(pk=actor.tenant.pk)


def list_members(actor: Actor) -> QuerySet[Membership]:
    return Membership.objects.for_actor(actor).select_related("user", "created_by")


def get_member(actor: Actor, public_id: str) -> Membership:
    member = list_members(actor).filter(public_id=public_id).first()
    if member is None:
        raise NotFound(f"No member {public_id}.")
    return member


def quota_usage(actor: Actor, *, region: str | None = None) -> list[dict]:
    """Every registered quota resource with its limit and usage for the actor's tenant."""
    if actor.tenant is None:
        return []
    rows = {(q.region, q.resource): q for q in Quota.objects.filter(tenant_id=actor.tenant.pk)}
    usage = []
    for resource in quotas.resources():
        r = quotas.region_for(resource.name, region)
        row = rows.get((r, resource.name)) or Quota(tenant_id=actor.tenant.pk, region=r, resource=resource.name)
        limit = quotas.effective_limit(row)
        used = row.in_use + row.reserved
        usage.append(
            {
                "resource": resource.name,
                "label": resource.label,
                "unit": resource.unit,
                "region": r,
                "limit": limit,
                "in_use": row.in_use,
                "reserved": row.reserved,
                "percent": min(100, round(100 * used / limit)) if limit else (100 if used else 0),
            }
        )
    return usage


def list_api_tokens(actor: Actor) -> QuerySet[ApiToken]:
    """A user's own tokens: tokens are personal, not tenant resources."""
    if actor.user is None:
        return ApiToken.objects.none()
    return ApiToken.objects.for_user(actor.user).select_related("tenant")


def get_api_token(actor: Actor, public_id: str) -> ApiToken:
    token = list_api_tokens(actor).filter(public_id=public_id).first()
    if token is None:
        raise NotFound(f"No API token {public_id}.")
    return token


def list_key_pairs(actor: Actor) -> QuerySet[KeyPair]:
    return KeyPair.objects.for_actor(actor).select_related("created_by")


def get_key_pair(actor: Actor, public_id: str) -> KeyPair:
    key_pair = list_key_pairs(actor).filter(public_id=public_id).first()
    if key_pair is None:
        raise NotFound(f"No key pair {public_id}.")
    return key_pair
