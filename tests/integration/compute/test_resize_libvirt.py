"""Resize and rebuild a real QEMU guest through the services: vCPUs and memory plugged into the
running guest (which brings them online), a stopped one shrunk, a rebuild that boots afresh."""

import re

import pytest
from django.conf import settings

from apps.compute import services
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.models import Host, Image, Instance
from apps.core.actor import Actor
from tests.integration.guests import serial, wait_for_line

pytestmark = [pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db]


def test_hot_resize_then_offline_resize_then_rebuild(tiny_image, a_owner, actor, settings,
                                                     django_capture_on_commit_callbacks):
    settings.PORTAL_STOP_TIMEOUT = 20
    services.create_flavor(Actor.system(), name="t1.hot", vcpus=2, ram_mb=256)
    owner = actor(a_owner)
    driver = LibvirtDriver(Host.objects.get(uri=settings.PORTAL_LIBVIRT_URI).uri)

    def act(service, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            service(owner, instance=Instance.objects.get(pk=instance.pk), **kwargs)
        return Instance.objects.get(pk=instance.pk)

    with django_capture_on_commit_callbacks(execute=True):
        [instance] = services.create_instances(owner, name="grow", flavor="t1.nano",
                                               image=Image.objects.get(boot=Image.KERNEL).public_id)
    try:
        before = int(wait_for_line(instance, r"HOTPLUG cpus=1 mem_kb=(\d+)", timeout=90).group(1))
        room = driver.domain_info(instance.public_id)
        assert (room.vcpus, room.memory_mb, room.max_memory_mb > 256) == (1, 128, True)

        resized = act(services.resize_instance, flavor="t1.hot")
        assert (resized.status, resized.vcpus, resized.ram_mb) == ("running", 2, 256), resized.status_reason
        info = driver.domain_info(instance.public_id)
        assert (info.state, info.vcpus, info.memory_mb) == ("running", 2, 256)
        # The guest sees both: a second CPU online and another 128 MiB block of memory (less the
        # kernel's page tables for it).
        wait_for_line(instance, r"HOTPLUG cpus=2 mem_kb=(?!" + str(before) + r"\b)", timeout=60)
        after = int(re.findall(r"HOTPLUG cpus=2 mem_kb=(\d+)", serial(instance))[-1])
        assert 120 * 1024 < after - before <= 128 * 1024, serial(instance)[-1500:]
        assert serial(instance).count("BOOT-OK") == 1  # it never rebooted

        act(services.stop_instance)
        stopped = act(services.resize_instance, flavor="t1.nano")  # stopped, it may shrink
        assert (stopped.status, stopped.vcpus) == ("stopped", 1)
        started = act(services.start_instance)
        assert started.status == "running", started.status_reason
        assert (driver.domain_info(instance.public_id).vcpus, driver.domain_info(instance.public_id).memory_mb) == (
            1, 128)
        wait_for_line(instance, r"BOOT-OK(.|\n)*BOOT-OK", timeout=90)

        rebuilt = act(services.rebuild_instance)
        assert rebuilt.status == "running", rebuilt.status_reason
        wait_for_line(instance, r"(BOOT-OK(.|\n)*){3}", timeout=90)
    finally:
        with django_capture_on_commit_callbacks(execute=True):
            services.delete_instance(owner, instance=Instance.objects.get(pk=instance.pk), force=True)
    assert Instance.objects.get(pk=instance.pk).status == "deleted"
