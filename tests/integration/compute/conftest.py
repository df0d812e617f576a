"""Real libvirt for the compute integration tests: the driver, and the seeded inventory with
the tiny image. Both skip with the reason when the test command did not provide them."""

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.compute.drivers.base import Transient
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.models import Host, Image


@pytest.fixture
def libvirt_driver() -> LibvirtDriver:
    driver = LibvirtDriver(settings.PORTAL_LIBVIRT_URI)
    try:
        driver.host_capacity()
    except Transient as exc:
        pytest.skip(f"libvirtd not reachable at {settings.PORTAL_LIBVIRT_URI} ({exc}); `make test` starts it")
    return driver


@pytest.fixture
def tiny_image(libvirt_driver) -> Image:
    """Region, zone, the local libvirt host, flavors and the tiny image in the test database
    (`seed_compute`). The test marks its database access (django_db)."""
    call_command("seed_compute")
    image = Image.objects.filter(boot=Image.KERNEL, status=Image.ACTIVE).first()
    if image is None:
        pytest.skip("the tiny image is not built; `make test` builds it (scripts/build_tiny_image.sh)")
    assert Host.objects.filter(uri=settings.PORTAL_LIBVIRT_URI).exists(), "seed_compute did not add the local host"
    return image
