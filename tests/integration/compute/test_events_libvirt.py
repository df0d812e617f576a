"""Real libvirt events and reconcile: changes made behind the portal's back are seen."""

import threading
import time

import pytest
from django.conf import settings

from apps.compute import services
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.management.commands.listen_events import watch
from apps.compute.models import Host, Instance

pytestmark = [pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def real_instance(tiny_image, libvirt_driver, a_owner, actor, django_capture_on_commit_callbacks):
    owner = actor(a_owner)
    with django_capture_on_commit_callbacks(execute=True):
        [instance] = services.create_instances(owner, name="evented", flavor="t1.nano", image=tiny_image.public_id)
    yield Instance.objects.get(pk=instance.pk)
    libvirt_driver.delete_domain(instance.public_id)


def wait_for_status(instance, status, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = Instance.objects.get(pk=instance.pk).status
        if current == status:
            return
        time.sleep(0.2)
    pytest.fail(f"{instance.public_id} stayed {current}, expected {status}")


def test_listener_follows_a_domain_destroyed_behind_the_portal(real_instance):
    stop = threading.Event()
    listener = threading.Thread(target=watch, args=(settings.PORTAL_LIBVIRT_URI, stop), daemon=True)
    listener.start()
    try:
        time.sleep(1)  # the listener registers its callback
        driver = LibvirtDriver(settings.PORTAL_LIBVIRT_URI)
        started = time.monotonic()
        driver.stop_domain(real_instance.public_id, force=True)  # `virsh destroy`
        wait_for_status(real_instance, "stopped")
        print(f"event applied {time.monotonic() - started:.2f}s after the destroy")
        driver.start_domain(real_instance.public_id)
        wait_for_status(real_instance, "running")
    finally:
        stop.set()
        listener.join(timeout=10)


def test_reconcile_recreates_an_undefined_domain(real_instance):
    driver = LibvirtDriver(settings.PORTAL_LIBVIRT_URI)
    driver.delete_domain(real_instance.public_id)  # destroy + undefine behind the portal's back
    report = services.reconcile_host(Host.objects.get(uri=settings.PORTAL_LIBVIRT_URI).pk)
    assert report["recreated"] == [real_instance.public_id]
    assert driver.domain_info(real_instance.public_id).state == "running"
    assert Instance.objects.get(pk=real_instance.pk).status == "running"
