"""Quota resources (a registry every area adds to) and the reserve/commit/release arithmetic.

All changes go through the tenant's Quota rows, locked with select_for_update in a fixed order,
so concurrent requests queue on the rows and can never overshoot a limit. Two ways to use it:
- `consume()` inside the service that creates the resource, when creation is synchronous;
- `reserve()` in the service, then `commit_reservation()` from the task once the resource
  exists, or `cancel_reservation()` when it failed (expired ones are swept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import QuotaExceeded, ValidationFailed
from apps.tenants.models import Quota, QuotaDefault, QuotaReservation, Tenant

GLOBAL_REGION = ""


@dataclass(frozen=True)
class QuotaResource:
    name: str
    label: str
    default: int
    unit: str = ""
    regional: bool = True


_resources: dict[str, QuotaResource] = {}


def register_quota(name: str, label: str, *, default: int, unit: str = "", regional: bool = True) -> QuotaResource:
    """Called from an app's AppConfig.ready(). Re-registering the same resource is a no-op."""
    resource = _resources.setdefault(name, QuotaResource(name, label, default, unit, regional))
    if resource.label != label:
        raise ValueError(f"quota {name!r} already registered")
    return resource


def resources() -> list[QuotaResource]:
    return list(_resources.values())


def get_resource(name: str) -> QuotaResource:
    try:
        return _resources[name]
    except KeyError:
        raise ValidationFailed(f"Unknown quota resource '{name}'.", fields={"resource": ["Unknown resource."]})


def region_for(resource: str, region: str | None) -> str:
    return (region or settings.PORTAL_DEFAULT_REGION) if get_resource(resource).regional else GLOBAL_REGION


def default_limit(resource: str, region: str) -> int:
    """The operator default for a region, else for every region, else the registry's."""
    defaults = {d.region: d.limit for d in QuotaDefault.objects.filter(resource=resource, region__in=[region, ""])}
    return defaults.get(region, defaults.get("", get_resource(resource).default))


def effective_limit(row: Quota) -> int:
    return row.limit if row.limit is not None else default_limit(row.resource, row.region)


def _locked_rows(tenant: Tenant, region: str | None, names) -> dict[str, Quota]:
    """The tenant's rows for `names`, created if missing, locked in name order (no deadlocks)."""
    keys = sorted((region_for(name, region), name) for name in names)
    Quota.objects.bulk_create(
        [Quota(tenant=tenant, region=r, resource=n) for r, n in keys],
        ignore_conflicts=True,
    )
    rows = {}
    for r, n in keys:
        rows[n] = Quota.objects.select_for_update().get(tenant=tenant, region=r, resource=n)
    return rows


def _check(rows: dict[str, Quota], amounts: dict[str, int]) -> None:
    problems = {}
    for name, amount in amounts.items():
        if amount < 0:
            raise ValueError("quota amounts are positive")
        row = rows[name]
        limit = effective_limit(row)
        if row.in_use + row.reserved + amount > limit:
            label = get_resource(name).label
            problems[name] = [
                f"Quota exceeded for {label}: {row.in_use + row.reserved} of {limit} used, {amount} more requested."
            ]
    if problems:
        raise QuotaExceeded(" ".join(msg for msgs in problems.values() for msg in msgs), fields=problems)


def _take(tenant: Tenant, region: str | None, amounts: dict[str, int], column: str) -> None:
    """Lock, check, and add `amounts` to `column` (in_use or reserved) of each row."""
    rows = _locked_rows(tenant, region, amounts)
    _check(rows, amounts)
    for name, amount in amounts.items():
        setattr(rows[name], column, getattr(rows[name], column) + amount)
        rows[name].save(update_fields=[column])


def consume(tenant: Tenant, *, region: str | None = None, amounts: dict[str, int]) -> None:
    """Check and count `amounts` as in use, in the caller's transaction."""
    with transaction.atomic():
        _take(tenant, region, amounts, "in_use")


def release(tenant: Tenant, *, region: str | None = None, amounts: dict[str, int]) -> None:
    """Give back quota of resources that no longer exist (never below zero)."""
    with transaction.atomic():
        rows = _locked_rows(tenant, region, amounts)
        for name, amount in amounts.items():
            rows[name].in_use = max(0, rows[name].in_use - amount)
            rows[name].save(update_fields=["in_use"])


def reserve(tenant: Tenant, *, region: str | None = None, amounts: dict[str, int]) -> QuotaReservation:
    """Hold `amounts` for a resource being built; returns the reservation to commit or cancel."""
    with transaction.atomic():
        _take(tenant, region, amounts, "reserved")
        return QuotaReservation.objects.create(
            tenant=tenant,
            region=region or settings.PORTAL_DEFAULT_REGION,
            amounts=amounts,
            expires_at=timezone.now() + timedelta(seconds=settings.PORTAL_RESERVATION_TTL),
        )


def _settle(reservation_id: int, *, commit: bool) -> bool:
    with transaction.atomic():
        reservation = QuotaReservation.objects.select_for_update().filter(pk=reservation_id).first()
        if reservation is None:  # already settled: a re-run of the task is a no-op
            return False
        rows = _locked_rows(reservation.tenant, reservation.region, reservation.amounts)
        for name, amount in reservation.amounts.items():
            row = rows[name]
            row.reserved = max(0, row.reserved - amount)
            if commit:
                row.in_use += amount
            row.save(update_fields=["reserved", "in_use"])
        reservation.delete()
        return True


def commit_reservation(reservation_id: int) -> bool:
    return _settle(reservation_id, commit=True)


def cancel_reservation(reservation_id: int) -> bool:
    return _settle(reservation_id, commit=False)


def sweep_expired_reservations() -> int:
    """Cancel reservations whose resource never got built (a worker died mid-task)."""
    expired = QuotaReservation.objects.filter(expires_at__lt=timezone.now()).values_list("pk", flat=True)
    return sum(cancel_reservation(pk) for pk in list(expired))
