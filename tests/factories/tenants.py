"""Tenants and members, built through the services so their invariants hold."""

import itertools

from django.contrib.auth import get_user_model

from apps.core.actor import Actor
from apps.tenants import services
from apps.tenants.models import Membership, Tenant

PASSWORD = "correct-horse-battery-9"
_seq = itertools.count(1)


def make_tenant(name: str | None = None, *, owner_username: str | None = None) -> Tenant:
    n = next(_seq)
    owner = get_user_model().objects.create_user(owner_username or f"owner{n}", f"owner{n}@example.test", PASSWORD)
    return services.create_tenant(Actor.system(), name=name or f"Tenant {n}", owner=owner)


def add_member(tenant: Tenant, role: str, username: str | None = None) -> Membership:
    n = next(_seq)
    return services.create_sub_account(
        Actor.system(tenant=tenant),
        username=username or f"{role}{n}",
        email=f"{role}{n}@example.test",
        password=PASSWORD,
        role=role,
    )


def actor_for(membership: Membership, **overrides) -> Actor:
    base = Actor(user=membership.user, via="test", **overrides)
    return base.with_tenant(membership.tenant, membership.role, frozenset(membership.policies))
