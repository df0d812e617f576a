"""Register the periodic safety-net tasks with django-q2 (idempotent)."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django_q.models import Schedule

SCHEDULES = [
    # (name, task path, minutes between runs)
    ("sweep expired quota reservations", "apps.tenants.tasks.sweep_quota_reservations", 5),
    ("purge old finished operations", "apps.core.tasks.purge_operations", 60),
    ("sweep lost and failed resource tasks", "apps.core.tasks.sweep_tracked_tasks", 5),
    ("host heartbeats", "apps.compute.tasks.refresh_hosts", 1),
    ("reconcile instances with the hypervisors", "apps.compute.tasks.reconcile_instances", 5),
    ("sweep console tickets and lost sessions", "apps.console.services.sweep_sessions", 1),
    ("storage pool capacity", "apps.storage.services.refresh_storage_pools", 5),
    ("reconcile storage pools with the database", "apps.storage.services.reconcile_storage", 15),
    ("empty the recycle bin of volumes past their retention", "apps.storage.services.purge_recycle_bin", 60),
    ("empty the recycle bin of instances past their retention", "apps.compute.services.purge_recycled_instances", 60),
    ("reconcile networks with the SDN (OVN)", "apps.network.services.reconcile_network", 10),
    ("settle usage into the wallets", "apps.billing.tasks.settle_usage", settings.PORTAL_BILLING_SETTLE_MINUTES),
    # Expiring subscriptions, overdue tenants (and their payments), low balances: each step once.
    ("billing policy: expiry, overdue, low balance", "apps.billing.tasks.apply_billing_policy", 15),
]


class Command(BaseCommand):
    help = "Create or update the periodic tasks."

    def handle(self, *args, **options):
        for name, func, minutes in SCHEDULES:
            Schedule.objects.update_or_create(
                name=name,
                defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
            )
        self.stdout.write(f"{len(SCHEDULES)} schedules registered")
