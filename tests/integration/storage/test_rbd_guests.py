"""RBD volumes in real guests: network disks through the monitors, with the pool's cephx key
held by libvirt as a secret (set on the host when the disk is plugged in). A data volume is
hot-plugged, written by the guest, copied, and the copy read by the guest; a disk-image
instance boots from a copy-on-write RBD clone of its image."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.compute import services as compute
from apps.compute.models import Image, Instance
from apps.core.actor import Actor
from apps.storage import services
from apps.storage.backends import get_storage_driver
from apps.storage.models import StoragePool, Volume, VolumeAttachment
from apps.tenants.models import Membership
from tests.factories.tenants import actor_for, make_tenant
from tests.integration.guests import settled, wait_for_line
from tests.integration.storage.test_volumes_libvirt import BOOT_TIMEOUT

pytestmark = [pytest.mark.ceph, pytest.mark.libvirt, pytest.mark.integration,
              pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ceph_type(ceph_cluster, tiny_image):
    """An RBD pool of the throwaway cluster with the type `ceph`; the local dir pool is closed,
    so root disks go to Ceph too. Everything the tenant made is removed from the pool after."""
    call_command("seed_storage")
    system = Actor.system()
    local = StoragePool.objects.get(name="local")
    services.update_storage_pool(system, pool=local, enabled=False)
    pool = services.add_storage_pool(
        system, name="ceph", backend=StoragePool.RBD, region=local.region,
        config={"conf": ceph_cluster.conf, "user": ceph_cluster.user, "pool": ceph_cluster.pool,
                "keyring": ceph_cluster.keyring})
    volume_type = services.create_volume_type(system, name="ceph", pool=pool)
    yield volume_type
    driver = get_storage_driver(pool)
    for volume in Volume.objects.filter(pool=pool):
        driver.delete_volume(volume.public_id)
    for base in driver.list_volumes("img-"):
        driver.delete_volume(base.name)
    _forget_secret(driver.secret_uuid)


def _forget_secret(uuid: str) -> None:
    """The pool's key was put on the host as a libvirt secret: take it away again."""
    import libvirt
    from django.conf import settings

    from apps.compute.drivers.libvirt import connection

    try:
        connection(settings.PORTAL_LIBVIRT_URI).secretLookupByUUIDString(uuid).undefine()
    except libvirt.libvirtError:
        pass  # never set: the test failed before a disk was plugged in


@pytest.fixture
def owner(ceph_type, libvirt_driver):
    tenant = make_tenant("Ceph Tenant", owner_username="cephowner")
    actor = actor_for(Membership.objects.get(tenant=tenant))
    yield actor
    for instance in Instance.objects.filter(tenant=tenant):
        instance.refresh_from_db()
        if instance.status not in (Instance.DELETING, Instance.DELETED):
            compute.delete_instance(actor, instance=instance)
        libvirt_driver.delete_domain(instance.public_id)


def test_an_rbd_volume_in_a_running_guest(owner, tiny_image):
    [guest] = compute.create_instances(owner, name="rbd-guest", flavor="t1.nano", image=tiny_image.public_id)
    guest = settled(guest)
    wait_for_line(guest, r"BOOT-OK", BOOT_TIMEOUT)

    volume = settled(services.create_volume(owner, name="data", size_gb=1, volume_type="ceph"))
    assert volume.status == Volume.AVAILABLE, volume.status_reason
    volume = settled(services.attach_volume(owner, volume=volume, instance=guest))
    assert volume.status == Volume.IN_USE, volume.status_reason
    seen = wait_for_line(guest, rf"DISK-ADDED vd\w serial={volume.public_id} sectors=2097152 found=(\S+) wrote=(\S+)")
    assert seen.groups() == ("none", f"NOTE-FROM-{guest.public_id}")

    snapshot = settled(services.create_snapshot(owner, volume=volume, name="online"))  # RBD: no QEMU help needed
    assert snapshot.status == "available", snapshot.status_reason
    volume = settled(services.detach_volume(owner, volume=volume))
    wait_for_line(guest, rf"DISK-REMOVED vd\w serial={volume.public_id}")

    copy = settled(services.create_volume(owner, name="copy", snapshot=snapshot.public_id))
    settled(services.attach_volume(owner, volume=copy, instance=guest))
    seen = wait_for_line(guest, rf"DISK-ADDED vd\w serial={copy.public_id} sectors=\d+ found=(\S+)")
    assert seen.group(1) == f"NOTE-FROM-{guest.public_id}"


def test_a_disk_image_boots_from_an_rbd_clone(owner):
    image = Image.objects.get(boot=Image.DISK, name="Tiny Linux (busybox, disk)")
    [instance] = compute.create_instances(owner, name="rbd-boot", flavor="t1.micro", image=image.public_id)
    instance = settled(instance)
    assert instance.status == Instance.RUNNING, instance.status_reason
    root = VolumeAttachment.objects.get(instance=instance, is_root=True).volume
    assert root.pool.backend == StoragePool.RBD
    assert get_storage_driver(root.pool).volume_info(root.public_id).parent == image.public_id
    wait_for_line(instance, r"BOOT-OK", BOOT_TIMEOUT)
    wait_for_line(instance, rf"DISK-ADDED vda serial={root.public_id} sectors=2097152 found=bootable")
