"""Seed the compute inventory of a fresh install (idempotent): region, availability zone,
the local libvirt host, a few flavors and the tiny bootable images (kernel boot, and disk)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.compute import services
from apps.compute.models import Cluster, Flavor, Host, Region
from apps.core.actor import Actor
from apps.core.exceptions import DomainError

FLAVORS = [
    # name, vCPUs, RAM MiB, root disk GB
    ("t1.nano", 1, 128, 0),
    ("t1.micro", 1, 256, 1),
    ("s1.small", 1, 1024, 10),
    ("s1.medium", 2, 2048, 20),
    ("s1.large", 4, 4096, 40),
]


class Command(BaseCommand):
    help = "Create the default region, zone, local host, flavors and tiny image if missing."

    def handle(self, *args, **options):
        system = Actor.system()
        region = Region.objects.filter(code=settings.PORTAL_DEFAULT_REGION).first() or services.create_region(
            system, code=settings.PORTAL_DEFAULT_REGION, name="Default region")
        cluster = Cluster.objects.filter(region=region, code="az1").first() or services.create_cluster(
            system, region=region, code="az1", name="Zone 1", tags=["x86"])
        if not Host.objects.filter(uri=settings.PORTAL_LIBVIRT_URI).exists():
            try:
                host = services.add_host(system, cluster=cluster, name="local", uri=settings.PORTAL_LIBVIRT_URI)
                self.stdout.write(f"host {host.name}: {host.vcpus} CPUs, {host.memory_mb} MiB, {host.effective_virt_type}")
            except DomainError as exc:
                self.stderr.write(f"local host not added: {exc.message}")
        for name, vcpus, ram_mb, disk_gb in FLAVORS:
            if not Flavor.objects.filter(name=name).exists():
                services.create_flavor(system, name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb)
        tiny = Path(settings.PORTAL_LIBVIRT_DIR) / "images" / "tiny"
        if (tiny / "manifest.json").exists():
            image = services.register_kernel_image(system, name="Tiny Linux (busybox)", directory=tiny,
                                                   os_distro="busybox")
            self.stdout.write(f"image {image.public_id}: {image.name}")
            disk = services.register_disk_image(system, name="Tiny Linux (busybox, disk)", directory=tiny,
                                                os_distro="busybox")
            self.stdout.write(f"image {disk.public_id}: {disk.name}")
        else:
            self.stderr.write("tiny image not built (scripts/build_tiny_image.sh)")
