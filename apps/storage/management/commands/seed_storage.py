"""Seed block storage of a fresh install (idempotent): a libvirt dir pool on the local host,
in PORTAL_LIBVIRT_DIR/pool, and the default volume type `standard` on it."""

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.compute.models import Host
from apps.core.actor import Actor
from apps.core.exceptions import DomainError
from apps.storage import services
from apps.storage.models import StoragePool, VolumeType


class Command(BaseCommand):
    help = "Create the local dir storage pool and the default volume type if missing."

    def handle(self, *args, **options):
        system = Actor.system()
        host = Host.objects.select_related("cluster__region").filter(uri=settings.PORTAL_LIBVIRT_URI).first()
        if host is None:
            self.stderr.write("no local host (seed_compute first): no storage pool")
            return
        pool = StoragePool.objects.filter(name="local").first()
        if pool is None:
            try:
                pool = services.add_storage_pool(
                    system, name="local", backend=StoragePool.DIR, region=host.cluster.region, host=host,
                    config={"path": str(settings.PORTAL_LIBVIRT_DIR / "pool")}, tags=["local"])
            except DomainError as exc:
                self.stderr.write(f"local storage pool not added: {exc.message}")
                return
            self.stdout.write(f"storage pool {pool.name}: {pool.capacity_bytes >> 30} GiB")
        if not VolumeType.objects.filter(name="standard").exists():
            services.create_volume_type(system, name="standard", pool=pool, is_default=True,
                                        description="Volumes on the local host's disk")
