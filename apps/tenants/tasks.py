"""Periodic tenancy work."""

from apps.tenants import quotas


def sweep_quota_reservations() -> int:
    """Release quota held by reservations whose resource was never built."""
    return quotas.sweep_expired_reservations()
