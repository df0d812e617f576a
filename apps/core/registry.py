"""Tenant-owned resource types, found from the installed models (no registration needed)."""

from __future__ import annotations

from django.apps import apps

from apps.core.ids import prefix_of
from apps.core.models import TenantOwned


def tenant_owned_models() -> list[type[TenantOwned]]:
    return [m for m in apps.get_models() if issubclass(m, TenantOwned)]


def model_for_public_id(public_id: str) -> type[TenantOwned] | None:
    prefix = prefix_of(public_id)
    return next((m for m in tenant_owned_models() if m.public_id_prefix == prefix), None)
