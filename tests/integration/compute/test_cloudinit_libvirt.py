"""A real QEMU guest reads its cloud-init NoCloud seed: the portal writes the ISO, libvirt plugs
it in as an IDE CD-ROM, the tiny image finds the `cidata` label, says which instance it is and
runs the user data script, whose output lands on the serial console."""

import pytest

from apps.compute import services
from apps.compute.models import Instance
from apps.compute.tasks import seed_path
from tests.integration.guests import remove_instances, wait_for_line

pytestmark = [pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db]

BOOT_TIMEOUT = 120  # seconds: software emulation, and the CD-ROM is probed after BOOT-OK


def test_the_guest_reads_its_seed_and_runs_the_user_data(tiny_image, libvirt_driver, a_owner, actor,
                                                         django_capture_on_commit_callbacks):
    assert tiny_image.cloud_init  # the tiny image's manifest says it reads NoCloud seeds
    owner = actor(a_owner)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            [instance] = services.create_instances(owner, name="seeded", flavor="t1.nano", image=tiny_image.public_id,
                                                   user_data="#!/bin/sh\necho USERDATA-RAN-$((6*7))\n",
                                                   password="Seed-pass-42")
        instance.refresh_from_db()
        assert instance.status == "running", instance.status_reason
        wait_for_line(instance, rf"SEED-OK instance-id={instance.public_id}\b", BOOT_TIMEOUT)
        wait_for_line(instance, r"USERDATA-RAN-42", BOOT_TIMEOUT)
        assert "hdc" in libvirt_driver.domain_info(instance.public_id).disks
        with django_capture_on_commit_callbacks(execute=True):
            services.delete_instance(owner, instance=Instance.objects.get(pk=instance.pk), force=True)
        assert Instance.objects.get(pk=instance.pk).status == "deleted"
        assert not seed_path(instance).exists()
    finally:
        remove_instances(a_owner.tenant, libvirt_driver)
