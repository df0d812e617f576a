"""Volumes in real guests, through the services, on the seeded libvirt dir pool.

The tiny image's disk agent reports on the serial console each virtio disk that appears (by its
serial, which is the volume id: the kernel names disks vda, vdb… in the order they come, so the
serial is the stable name), with what it found 1 MiB in (leaving a note there when it was
empty), and when it grows or goes away. So a
volume attached live to guest A is seen and written by A; grown while attached; detached;
snapshotted; scribbled over from the host; reverted; copied to a new volume; and that copy,
attached live to guest B, still holds A's note."""

from __future__ import annotations

import subprocess

import pytest
from django.core.management import call_command

from apps.compute import services as compute
from apps.compute.models import Instance
from apps.storage import services
from apps.storage.backends import get_storage_driver
from apps.storage.models import Snapshot, Volume
from apps.tenants.models import Membership
from tests.factories.tenants import actor_for, make_tenant
from tests.integration.guests import settled, wait_for_line

pytestmark = [pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BOOT_TIMEOUT = 90
@pytest.fixture
def owner(tiny_image):
    """The tenant's owner; its volumes' and backups' files are removed from the pool afterwards
    (the guests that held them are gone by then)."""
    from apps.storage.models import Backup

    call_command("seed_storage")
    tenant = make_tenant("Storage Tenant", owner_username="storageowner")
    yield actor_for(Membership.objects.get(tenant=tenant))
    for kept in [*Volume.objects.filter(tenant=tenant), *Backup.objects.filter(tenant=tenant)]:
        get_storage_driver(kept.pool).delete_volume(kept.public_id)


@pytest.fixture
def guests(owner, tiny_image, libvirt_driver):
    made: list[Instance] = []

    def boot(name: str) -> Instance:
        [instance] = compute.create_instances(owner, name=name, flavor="t1.nano", image=tiny_image.public_id)
        made.append(instance)
        instance = settled(instance)
        assert instance.status == Instance.RUNNING, instance.status_reason
        wait_for_line(instance, r"BOOT-OK", BOOT_TIMEOUT)
        return instance

    yield boot
    for instance in made:
        instance.refresh_from_db()
        for attachment in instance.volume_attachments.all():
            attachment.delete()
        if instance.status not in (Instance.DELETING, Instance.DELETED):
            compute.delete_instance(owner, instance=instance)
        libvirt_driver.delete_domain(instance.public_id)


def test_a_volume_travels_between_guests_with_its_data(owner, guests):
    first = guests("vol-guest-a")
    volume = settled(services.create_volume(owner, name="data", size_gb=1))
    assert volume.status == Volume.AVAILABLE, volume.status_reason

    # Attached live: the guest sees it (1 GiB = 2097152 sectors), finds it empty and writes its note.
    volume = settled(services.attach_volume(owner, volume=volume, instance=first))
    assert volume.status == Volume.IN_USE, volume.status_reason
    seen = wait_for_line(first, rf"DISK-ADDED vd\w serial={volume.public_id} sectors=(\d+) found=(\S+) wrote=(\S+)")
    assert seen.groups() == ("2097152", "none", f"NOTE-FROM-{first.public_id}")

    # Grown under the running guest, which sees the new size at once.
    volume = settled(services.resize_volume(owner, volume=volume, size_gb=2))
    assert volume.status == Volume.IN_USE, volume.status_reason
    wait_for_line(first, rf"DISK-RESIZED vd\w serial={volume.public_id} sectors=4194304")

    # A snapshot while attached (the guest's QEMU takes it), then detached: the guest lets go.
    live = settled(services.create_snapshot(owner, volume=volume, name="while-attached"))
    assert live.status == Snapshot.AVAILABLE, live.status_reason
    volume = settled(services.detach_volume(owner, volume=volume))
    assert (volume.status, volume.status_reason) == (Volume.AVAILABLE, "")
    wait_for_line(first, rf"DISK-REMOVED vd\w serial={volume.public_id}")

    # Snapshot, scribble over the note from the host, revert: the note is back.
    snapshot = settled(services.create_snapshot(owner, volume=volume, name="with-note"))
    path = get_storage_driver(volume.pool).disk_source(volume.public_id).path
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x41 1M 512", path], check=True, capture_output=True)
    volume = settled(services.revert_to_snapshot(owner, snapshot=snapshot))
    assert volume.status_reason == f"Reverted to {snapshot.public_id}"

    # A copy of the volume, attached live to another guest, holds the first guest's note.
    second = guests("vol-guest-b")
    copy = settled(services.create_volume(owner, name="copy", source_volume=volume.public_id))
    assert (copy.status, copy.size_gb) == (Volume.AVAILABLE, 2)
    settled(services.attach_volume(owner, volume=copy, instance=second))
    seen = wait_for_line(second, rf"DISK-ADDED vd\w serial={copy.public_id} sectors=(\d+) found=(\S+) wrote=(\S+)")
    assert seen.groups() == ("4194304", f"NOTE-FROM-{first.public_id}", "none")

    # The snapshot taken while attached is a real one: a volume made from it has the note too.
    from_live = settled(services.create_volume(owner, name="from-live", snapshot=live.public_id))
    assert from_live.status == Volume.AVAILABLE, from_live.status_reason
    settled(services.attach_volume(owner, volume=from_live, instance=second))
    seen = wait_for_line(second, rf"DISK-ADDED vd\w serial={from_live.public_id} sectors=\d+ found=(\S+)")
    assert seen.group(1) == f"NOTE-FROM-{first.public_id}"


def test_a_disk_image_boots_from_a_copy_on_write_clone(owner, libvirt_driver):
    """SeaBIOS → SYSLINUX → the kernel, all read from the instance's root volume, which is a
    qcow2 overlay on the image base in the pool (nothing of the image was copied). An image
    made of the running instance boots a new one."""
    import json

    from apps.compute.models import Image
    from apps.storage.models import VolumeAttachment

    image = Image.objects.get(boot=Image.DISK, name="Tiny Linux (busybox, disk)")
    [instance] = compute.create_instances(owner, name="disk-boot", flavor="t1.micro", image=image.public_id)
    try:
        instance = settled(instance)
        assert instance.status == Instance.RUNNING, instance.status_reason
        root = VolumeAttachment.objects.get(instance=instance, is_root=True).volume
        wait_for_line(instance, r"BOOT-OK", BOOT_TIMEOUT)
        wait_for_line(instance, rf"DISK-ADDED vda serial={root.public_id} sectors=2097152 found=bootable")
        path = get_storage_driver(root.pool).disk_source(root.public_id).path
        info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True,
                                         capture_output=True, text=True).stdout)
        assert info["backing-filename"].endswith(f"/{image.public_id}")
        assert info["actual-size"] < 5 << 20  # an overlay, not a copy of the 10 MB image

        # An image of the running instance (its QEMU takes the snapshot), and a new instance of it boots.
        captured = compute.create_image_from_instance(owner, instance=instance, name="golden")
        captured.refresh_from_db()
        assert captured.status == Image.ACTIVE, captured.description
        [again] = compute.create_instances(owner, name="from-golden", flavor="t1.micro", image=captured.public_id)
        again = settled(again)
        assert again.status == Instance.RUNNING, again.status_reason
        wait_for_line(again, r"BOOT-OK", BOOT_TIMEOUT)
        compute.delete_instance(owner, instance=again)
        compute.delete_image(owner, image=captured)  # its file goes with it
    finally:
        compute.delete_instance(owner, instance=Instance.objects.get(pk=instance.pk))
    root.refresh_from_db()
    assert root.status == Volume.DELETED
    with pytest.raises(Exception, match="no volume"):
        get_storage_driver(root.pool).volume_info(root.public_id)


def test_a_backup_of_an_attached_volume_restores_into_another_guest(owner, guests):
    from apps.storage.models import Backup

    first = guests("backup-guest-a")
    volume = settled(services.create_volume(owner, name="data", size_gb=1))
    settled(services.attach_volume(owner, volume=volume, instance=first))
    wait_for_line(first, rf"DISK-ADDED vd\w serial={volume.public_id} sectors=\d+ found=none wrote=NOTE-FROM-")

    backup = settled(services.create_backup(owner, volume=Volume.objects.get(pk=volume.pk), name="nightly"))
    assert backup.status == Backup.AVAILABLE, backup.status_reason
    path = get_storage_driver(backup.pool).disk_source(backup.public_id).path
    assert not get_storage_driver(backup.pool).volume_info(backup.public_id).parent  # a full copy
    volume.refresh_from_db()
    assert volume.status == Volume.IN_USE
    assert get_storage_driver(volume.pool).volume_info(volume.public_id).snapshots == ()  # temporary one dropped
    assert path.endswith(backup.public_id)

    second = guests("backup-guest-b")
    restored = settled(services.create_volume(owner, name="restored", backup=backup.public_id))
    assert restored.status == Volume.AVAILABLE, restored.status_reason
    settled(services.attach_volume(owner, volume=restored, instance=second))
    seen = wait_for_line(second, rf"DISK-ADDED vd\w serial={restored.public_id} sectors=\d+ found=(\S+)")
    assert seen.group(1) == f"NOTE-FROM-{first.public_id}"
