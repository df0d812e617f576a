"""Reads of the billing area for the API, pages and back office, scoped to the actor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet

from apps.billing.models import Transaction, UsageInterval, Wallet
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
