"""The portal drives a real QEMU guest: create → BOOT-OK on its serial console → stop → start
→ delete, through the services and tasks, with libvirt as the hypervisor."""

import time

import pytest
from django.conf import settings

from apps.compute import services
from apps.compute.drivers.base import NotFound
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.models import Host, Image, Instance
from apps.compute.tasks import serial_log_path

pytestmark = [pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def libvirt_host(tiny_image):
    return Host.objects.get(uri=settings.PORTAL_LIBVIRT_URI)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def test_instance_lifecycle_on_real_qemu(libvirt_host, a_owner, actor, settings,
                                         django_capture_on_commit_callbacks):
    settings.PORTAL_STOP_TIMEOUT = 20
    owner = actor(a_owner)
    image = Image.objects.get(boot=Image.KERNEL, status=Image.ACTIVE)
    driver = LibvirtDriver(libvirt_host.uri)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        [instance] = services.create_instances(owner, name="real-vm", flavor="t1.nano", image=image.public_id)
    try:
        instance.refresh_from_db()
        assert instance.status == "running", instance.status_reason
        assert driver.domain_info(instance.public_id).state == "running"
        log = serial_log_path(instance)
        wait_for(lambda: log.exists() and "BOOT-OK" in log.read_text(errors="replace"), 90, "BOOT-OK")
        print(f"create -> BOOT-OK through the portal: {time.monotonic() - started:.1f}s")
        assert "BOOT-OK" in services.console_log(owner, instance=instance)

        with django_capture_on_commit_callbacks(execute=True):
            services.stop_instance(owner, instance=instance)  # ACPI: the tiny guest runs acpid
        assert Instance.objects.get(pk=instance.pk).status == "stopped"
        assert driver.domain_info(instance.public_id).state == "shutoff"

        with django_capture_on_commit_callbacks(execute=True):
            services.start_instance(owner, instance=Instance.objects.get(pk=instance.pk))
        assert driver.domain_info(instance.public_id).state == "running"
    finally:
        with django_capture_on_commit_callbacks(execute=True):
            services.delete_instance(owner, instance=Instance.objects.get(pk=instance.pk))
    assert Instance.objects.get(pk=instance.pk).status == "deleted"
    with pytest.raises(NotFound):
        driver.domain_info(instance.public_id)
    assert Host.objects.get(pk=libvirt_host.pk).instances_count == 0
