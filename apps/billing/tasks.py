"""Billing work on a schedule: on-demand usage settled into the wallets; the billing policy
(subscriptions expiring, overdue tenants, low balances)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from apps.billing import policy
from apps.billing.models import UsageInterval
from apps.billing.usage_services import settle_tenant_usage

log = logging.getLogger(__name__)


def settle_usage(up_to: datetime | None = None) -> dict:
    """Charge every tenant's usage up to `up_to` (now when not given), every
    PORTAL_BILLING_SETTLE_MINUTES. Each tenant is settled in its own transaction under its
    wallet's lock and amounts are cumulative per resource, product and month, so a re-run, a
    second worker at the same time or a run after a worker died half-way charges only what is
    new. A tenant that fails is logged and the others go on; the run then fails, naming it."""
    up_to = up_to or timezone.now()
    tenants = (UsageInterval.objects.filter(settled=False, started_at__lt=up_to)
               .order_by("tenant_id").values_list("tenant_id", flat=True).distinct())
    summary = {"tenants": 0, "entries": 0}
    failed = []
    for tenant_id in list(tenants):
        try:
            posted = settle_tenant_usage(tenant_id, up_to=up_to)
        except Exception:
            log.exception("settling the usage of tenant %s failed", tenant_id)
            failed.append(tenant_id)
            continue
        summary["tenants"] += 1
        summary["entries"] += len(posted)
    if failed:
        raise RuntimeError(f"usage of tenants {failed} not settled ({summary})")
    return summary


def apply_billing_policy() -> dict:
    """Every 15 minutes (setup_schedules): subscriptions reminded, renewed, expired, their
    resources stopped and recycled; overdue tenants warned, stopped, recycled, or restored when
    they paid; low balances told (apps.billing.policy). Each step happens once, however often
    this runs."""
    return policy.run()
