"""Volumes, attachments and snapshots through the services and the API, on the fake pool and
the fake hypervisor (tasks run on commit, inline)."""

import pytest

from apps.compute import services as compute
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Host, Image
from apps.core.exceptions import Conflict, NotFound, QuotaExceeded, ValidationFailed
from apps.storage import services
from apps.storage.backends import get_storage_driver
from apps.storage.drivers.base import NotFound as BackendNotFound
from apps.storage.drivers.base import StorageError
from apps.storage.models import Snapshot, Volume, VolumeAttachment
from apps.tenants.models import Quota
from tests.factories.storage import make_storage


@pytest.fixture
def storage(db):
    return make_storage()


@pytest.fixture
def run(run_tasks):
    return run_tasks


def fresh(obj):
    obj.refresh_from_db()
    return obj


def backend(volume):
    return get_storage_driver(volume.pool).volume_info(volume.public_id)


def launch(run, owner, name="vm"):
    [instance] = run(compute.create_instances, owner, name=name, flavor="t1.nano",
                     image=Image.objects.get(name="tiny").public_id)
    return fresh(instance)


def test_volumes_from_nothing_an_image_a_snapshot_and_a_volume(a_owner, actor, run, storage):
    owner = actor(a_owner)
    blank = fresh(run(services.create_volume, owner, name="data", size_gb=10))
    assert (blank.status, backend(blank).size_bytes, blank.pool.name) == ("available", 10 << 30, "local")

    boot = fresh(run(services.create_volume, owner, name="root", image=storage["disk_image"].public_id))
    assert (boot.status, boot.size_gb) == ("available", 2)  # the image's minimum disk
    assert backend(boot).parent == storage["disk_image"].public_id  # copy-on-write over the image base

    snapshot = fresh(run(services.create_snapshot, owner, volume=blank, name="s1"))
    assert snapshot.status == "available" and snapshot.public_id in backend(blank).snapshots
    restored = fresh(run(services.create_volume, owner, name="from-snap", snapshot=snapshot.public_id))
    assert (restored.status, restored.size_gb, backend(restored).parent) == ("available", 10, "")
    small = fresh(run(services.create_volume, owner, name="small", size_gb=1))
    assert fresh(run(services.create_volume, owner, name="copy-1", source_volume=small.public_id)).size_gb == 1
    copy = fresh(run(services.create_volume, owner, name="copy", source_volume=blank.public_id, size_gb=12))
    assert (copy.status, backend(copy).size_bytes) == ("available", 12 << 30)

    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (usage["volumes"], usage["volume_gb"], usage["snapshots"]) == (6, 10 + 2 + 10 + 1 + 1 + 12, 1)


@pytest.mark.parametrize("values, field", [
    ({}, "size_gb"),
    ({"size_gb": 0}, "size_gb"),
    ({"size_gb": -5}, "size_gb"),
    ({"size_gb": 100_000}, "size_gb"),
    ({"size_gb": 1, "name": "bad\x07name"}, "name"),
    ({"size_gb": 1, "volume_type": "gold"}, "volume_type"),
    ({"size_gb": 1, "image": "img-nothere"}, "image"),
    ({"size_gb": 1, "snapshot": "snap-nothere"}, "snapshot"),
])
def test_bad_input_is_a_clear_400_or_404_and_nothing_is_made(values, field, a_owner, api, storage):
    body = {"name": "v", **values}
    response = api(a_owner).post("/api/v1/volumes", body, format="json")
    assert response.status_code in (400, 404), response.json()
    assert field in response.json()["fields"]
    assert not Volume.objects.exists()


def test_sources_are_checked(a_owner, b_owner, actor, run, storage):
    owner = actor(a_owner)
    with pytest.raises(ValidationFailed, match="boots a kernel directly"):
        services.create_volume(owner, name="x", image=storage["image"].public_id, size_gb=1)
    with pytest.raises(ValidationFailed, match="between 2 and"):
        services.create_volume(owner, name="x", image=storage["disk_image"].public_id, size_gb=1)
    theirs = run(services.create_volume, actor(b_owner), name="b", size_gb=1)
    with pytest.raises(NotFound):
        services.create_volume(owner, name="x", source_volume=theirs.public_id)
    mine = fresh(run(services.create_volume, owner, name="a", size_gb=5))
    with pytest.raises(ValidationFailed, match="between 5 and"):
        services.create_volume(owner, name="x", source_volume=mine.public_id, size_gb=4)


def test_quota_is_a_clear_409_with_nothing_made(a_owner, actor, api, operator, storage):
    from apps.tenants.services import set_quota

    set_quota(operator, tenant=a_owner.tenant, resource="volume_gb", limit=10, region="default")
    response = api(a_owner).post("/api/v1/volumes", {"name": "big", "size_gb": 11}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "quota_exceeded"
    assert "10" in response.json()["message"]
    assert not Volume.objects.exists()
    with pytest.raises(QuotaExceeded):
        services.create_volume(actor(a_owner), name="big", size_gb=11)


def test_attach_detach_hot_plugs_into_the_guest(a_owner, actor, run, storage):
    owner = actor(a_owner)
    instance = launch(run, owner)
    volume = run(services.create_volume, owner, name="data", size_gb=1)
    volume = fresh(run(services.attach_volume, owner, volume=fresh(volume), instance=instance))
    attachment = VolumeAttachment.objects.get()
    assert (volume.status, attachment.device, attachment.instance_id) == ("in-use", "vdb", instance.pk)
    hypervisor = FakeDriver(instance.host.uri)
    assert "vdb" in hypervisor.domain_info(instance.public_id).disks

    second = fresh(run(services.create_volume, owner, name="more", size_gb=1))
    run(services.attach_volume, owner, volume=second, instance=instance)
    assert VolumeAttachment.objects.get(volume=second).device == "vdc"

    volume = fresh(run(services.detach_volume, owner, volume=volume))
    assert volume.status == "available" and not volume.attachments.exists()
    assert "vdb" not in hypervisor.domain_info(instance.public_id).disks


def test_attach_rules(a_owner, b_owner, actor, api, run, storage):
    owner = actor(a_owner)
    first, other = launch(run, owner, "one"), launch(run, owner, "two")
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=1))
    run(services.attach_volume, owner, volume=volume, instance=first)
    with pytest.raises(Conflict, match="does not allow attaching it to several"):
        services.attach_volume(owner, volume=fresh(volume), instance=other)

    shared = fresh(run(services.create_volume, owner, name="shared", size_gb=1, volume_type="shared"))
    run(services.attach_volume, owner, volume=shared, instance=first)
    assert fresh(run(services.attach_volume, owner, volume=fresh(shared), instance=other)).status == "in-use"
    with pytest.raises(ValidationFailed, match="several instances"):
        services.detach_volume(owner, volume=fresh(shared))

    theirs = launch(run, actor(b_owner), "theirs")
    spare = fresh(run(services.create_volume, owner, name="spare", size_gb=1))
    response = api(a_owner).post(f"/api/v1/volumes/{spare.public_id}/attach", {"instance": theirs.public_id},
                                 format="json")
    assert response.status_code == 404 and "instance" in response.json()["fields"]
    response = api(a_owner).post(f"/api/v1/volumes/{spare.public_id}/attach",
                                 {"instance": first.public_id, "device": "vdb"}, format="json")
    assert response.status_code == 400 and "not free" in response.json()["message"]


def test_a_dir_pool_volume_stays_on_its_host(a_owner, actor, run, storage):
    from tests.factories.compute import make_inventory

    owner = actor(a_owner)
    make_inventory("fake:///hv2")
    Host.objects.filter(name="hv1").update(state=Host.DISABLED)  # the next instance lands on hv2
    elsewhere = launch(run, owner, "elsewhere")
    assert elsewhere.host.name == "hv2"
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=1))
    with pytest.raises(Conflict, match="on host hv1; instance .* runs on hv2") as refused:
        services.attach_volume(owner, volume=volume, instance=elsewhere)
    assert refused.value.code == "not_reachable"


def test_deleting_says_where_a_volume_is_attached_and_gives_quota_back(a_owner, actor, api, run, storage):
    owner = actor(a_owner)
    instance = launch(run, owner)
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=3))
    run(services.attach_volume, owner, volume=volume, instance=instance)
    response = api(a_owner).delete(f"/api/v1/volumes/{volume.public_id}")
    assert response.status_code == 409
    assert response.json()["message"] == (f"Volume {volume.public_id} is attached to {instance.public_id} as vdb: "
                                          "detach it first.")
    run(services.detach_volume, owner, volume=fresh(volume))
    snapshot = run(services.create_snapshot, owner, volume=fresh(volume), name="keep")
    with pytest.raises(Conflict, match="has snapshots"):
        services.delete_volume(owner, volume=fresh(volume))
    run(services.delete_snapshot, owner, snapshot=fresh(snapshot))
    assert fresh(snapshot).status == "deleted"

    volume = fresh(run(services.delete_volume, owner, volume=fresh(volume)))
    assert (volume.status, volume.deleted_at is not None) == ("deleted", True)
    with pytest.raises(BackendNotFound):
        backend(volume)
    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (usage["volumes"], usage["volume_gb"], usage["snapshots"]) == (0, 0, 0)
    assert api(a_owner).get(f"/api/v1/volumes/{volume.public_id}").status_code == 404


def test_the_root_disk_stays(a_owner, actor, run, storage):
    owner = actor(a_owner)
    instance = launch(run, owner)
    volume = fresh(run(services.create_volume, owner, name="root", size_gb=1))
    VolumeAttachment.objects.create(volume=volume, instance=instance, device="vda", is_root=True)
    Volume.objects.filter(pk=volume.pk).update(status=Volume.IN_USE)
    with pytest.raises(Conflict, match="root disk"):
        services.detach_volume(owner, volume=fresh(volume))


def test_resize_grows_only_and_reaches_a_running_guest(a_owner, actor, run, storage, monkeypatch):
    owner = actor(a_owner)
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=2))
    with pytest.raises(ValidationFailed, match="only grow"):
        services.resize_volume(owner, volume=volume, size_gb=2)
    assert fresh(run(services.resize_volume, owner, volume=volume, size_gb=4)).size_gb == 4
    assert backend(volume).size_bytes == 4 << 30

    instance = launch(run, owner)
    run(services.attach_volume, owner, volume=fresh(volume), instance=instance)
    grown = []
    monkeypatch.setattr(FakeDriver, "resize_disk", lambda self, name, target, size: grown.append((name, target, size)))
    volume = fresh(run(services.resize_volume, owner, volume=fresh(volume), size_gb=6))
    assert volume.status == "in-use" and grown == [(instance.public_id, "vdb", 6 << 30)]


def test_snapshots_of_a_running_guests_disk_go_through_its_qemu(a_owner, actor, run, storage, monkeypatch):
    owner = actor(a_owner)
    instance = launch(run, owner)
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=1))
    run(services.attach_volume, owner, volume=volume, instance=instance)
    taken = []
    monkeypatch.setattr(FakeDriver, "snapshot_disk", lambda self, name, target, snap: taken.append((name, target)))
    snapshot = fresh(run(services.create_snapshot, owner, volume=fresh(volume), name="live"))
    assert snapshot.status == "available" and taken == [(instance.public_id, "vdb")]
    with pytest.raises(Conflict, match="detach it before reverting"):
        services.revert_to_snapshot(owner, snapshot=snapshot)

    run(services.detach_volume, owner, volume=fresh(volume))
    get_storage_driver(volume.pool).create_snapshot(volume.public_id, snapshot.public_id)  # what QEMU wrote
    volume = fresh(run(services.revert_to_snapshot, owner, snapshot=fresh(snapshot)))
    assert (volume.status, volume.status_reason, fresh(snapshot).status) == (
        "available", f"Reverted to {snapshot.public_id}", "available")


def test_a_backend_failure_is_an_error_with_the_reason(a_owner, actor, run, storage, monkeypatch):
    from apps.storage.drivers.fake import FakeStorageDriver

    def broken(self, name, size):
        raise StorageError("pool is read-only")

    monkeypatch.setattr(FakeStorageDriver, "create_volume", broken)
    volume = fresh(run(services.create_volume, actor(a_owner), name="data", size_gb=1))
    assert (volume.status, volume.status_reason) == ("error", "pool is read-only")
    # An error volume can be deleted (and gives its quota back).
    assert fresh(run(services.delete_volume, actor(a_owner), volume=volume)).status == "deleted"


def test_states_refuse_actions_with_409(a_owner, actor, storage):
    owner = actor(a_owner)
    volume = services.create_volume(owner, name="data", size_gb=1)  # still creating (no commit)
    for call in (lambda: services.resize_volume(owner, volume=volume, size_gb=2),
                 lambda: services.create_snapshot(owner, volume=volume, name="s"),
                 lambda: services.delete_volume(owner, volume=volume)):
        with pytest.raises(Conflict, match="while it is creating"):
            call()
    assert not Snapshot.objects.exists()


def test_deleting_an_instance_frees_its_volumes(a_owner, actor, run, storage):
    owner = actor(a_owner)
    instance = launch(run, owner)
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=1))
    run(services.attach_volume, owner, volume=volume, instance=instance)
    run(compute.delete_instance, owner, instance=fresh(instance))
    volume = fresh(volume)
    assert (volume.status, volume.status_reason) == ("available", f"{instance.public_id} was deleted")
    assert not volume.attachments.exists()


def test_a_disk_image_instance_boots_from_a_copy_on_write_root_volume(a_owner, actor, api, run, storage):
    from apps.compute.services import create_flavor
    from apps.core.actor import Actor

    create_flavor(Actor.system(), name="t1.disk", vcpus=1, ram_mb=128, disk_gb=4)
    owner = actor(a_owner)
    refused = api(a_owner).post("/api/v1/instances", {"name": "x", "flavor": "t1.nano",
                                                      "image": storage["disk_image"].public_id}, format="json")
    assert refused.status_code == 400 and "flavor" in refused.json()["fields"]

    [instance] = run(compute.create_instances, owner, name="vm", flavor="t1.disk",
                     image=storage["disk_image"].public_id)
    instance = fresh(instance)
    assert instance.status == "running", instance.status_reason
    root = VolumeAttachment.objects.get(instance=instance, is_root=True).volume
    assert (root.status, root.size_gb, root.image_id, root.pool.name) == ("in-use", 4, storage["disk_image"].pk,
                                                                          "local")
    assert backend(root).parent == storage["disk_image"].public_id  # a clone, not a copy
    assert FakeDriver(instance.host.uri).domain_info(instance.public_id).disks == ("vda",)
    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (usage["volumes"], usage["volume_gb"]) == (1, 4)
    with pytest.raises(Conflict, match="root disk"):
        services.detach_volume(owner, volume=root)

    run(compute.delete_instance, owner, instance=instance)
    root = fresh(root)
    assert root.status == "deleted"
    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (usage["volumes"], usage["volume_gb"], usage["instances"]) == (0, 0, 0)


def test_no_pool_for_boot_disks_is_a_clear_build_error(a_owner, actor, run, storage):
    from apps.compute.services import create_flavor
    from apps.core.actor import Actor
    from apps.storage.models import StoragePool

    create_flavor(Actor.system(), name="t1.disk", vcpus=1, ram_mb=128, disk_gb=4)
    StoragePool.objects.update(enabled=False)
    [instance] = run(compute.create_instances, actor(a_owner), name="vm", flavor="t1.disk",
                     image=storage["disk_image"].public_id)
    instance = fresh(instance)
    assert instance.status == "error"
    assert "No storage pool holds boot disks for host hv1" in instance.status_reason


def test_root_disks_go_to_the_regions_rbd_pool_when_the_host_has_no_dir_pool(a_owner, actor, run, storage):
    from apps.compute.services import create_flavor
    from apps.core.actor import Actor
    from apps.storage.models import StoragePool

    system = Actor.system()
    create_flavor(system, name="t1.disk", vcpus=1, ram_mb=128, disk_gb=4)
    services.update_storage_pool(system, pool=storage["pool"], enabled=False)
    ceph = services.add_storage_pool(system, name="ceph", backend=StoragePool.RBD, region=storage["region"],
                                     config={"conf": "/c", "user": "portal", "pool": "rbd"})
    services.create_volume_type(system, name="ceph", pool=ceph)
    [instance] = run(compute.create_instances, actor(a_owner), name="vm", flavor="t1.disk",
                     image=storage["disk_image"].public_id)
    assert fresh(instance).status == "running"
    assert VolumeAttachment.objects.get(instance=instance, is_root=True).volume.pool == ceph


def test_backups_are_full_copies_in_the_backup_pool_and_restore_to_new_volumes(a_owner, actor, api, run, storage,
                                                                              monkeypatch):
    from apps.core.actor import Actor
    from apps.core.models import Operation
    from apps.storage.drivers.fake import Probe
    from apps.storage.models import Backup, StoragePool

    system = Actor.system()
    vault = services.add_storage_pool(system, name="vault", backend=StoragePool.DIR, region=storage["region"],
                                      host=storage["pool"].host, config={"path": "/fake/vault"})
    services.update_storage_pool(system, pool=vault, holds_backups=True)
    owner = actor(a_owner)
    instance = launch(run, owner)
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=3))
    Probe(get_storage_driver(volume.pool)).write(volume.public_id, 0x61)
    run(services.attach_volume, owner, volume=volume, instance=instance)
    taken = []
    pool = get_storage_driver(volume.pool)

    def qemu_snapshot(self, name, target, snap):  # the guest's QEMU writes it into the volume
        taken.append(snap)
        pool.create_snapshot(volume.public_id, snap)

    def qemu_drop(self, name, target, snap):
        taken.append(f"-{snap}")
        pool.delete_snapshot(volume.public_id, snap)

    monkeypatch.setattr(FakeDriver, "snapshot_disk", qemu_snapshot)
    monkeypatch.setattr(FakeDriver, "delete_disk_snapshot", qemu_drop)

    response = run(api(a_owner).post, "/api/v1/backups", {"volume": volume.public_id, "name": "nightly"},
                   format="json")
    assert response.status_code == 202, response.json()
    backup = Backup.objects.get()
    # Tasks ran inline on commit: a temporary snapshot by the guest's QEMU, copied, dropped.
    assert (backup.status, backup.pool, backup.size_gb) == ("available", vault, 3)
    assert taken == [backup.public_id, f"-{backup.public_id}"]
    assert Probe(get_storage_driver(vault)).holds(backup.public_id, 0x61)
    operation = Operation.objects.get(resource_id=backup.public_id)
    assert (operation.status, operation.progress) == ("succeeded", 100)

    restored = fresh(run(services.create_volume, owner, name="restored", backup=backup.public_id))
    assert (restored.status, restored.size_gb, restored.pool) == ("available", 3, volume.pool)
    assert Probe(get_storage_driver(restored.pool)).holds(restored.public_id, 0x61)

    run(services.detach_volume, owner, volume=fresh(volume))
    run(services.delete_volume, owner, volume=fresh(volume))
    assert fresh(backup).status == "available"  # a backup outlives its volume
    run(services.delete_backup, owner, backup=fresh(backup))
    assert fresh(backup).status == "deleted"
    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (usage["backups"], usage["backup_gb"]) == (0, 0)


def test_the_reconcile_removes_the_portals_orphans_and_reports_lost_volumes(a_owner, actor, run, storage):
    from apps.core.models import AuditRecord

    owner = actor(a_owner)
    kept = fresh(run(services.create_volume, owner, name="kept", size_gb=1))
    lost = fresh(run(services.create_volume, owner, name="lost", size_gb=1))
    driver = get_storage_driver(storage["pool"])
    driver.create_volume("vol-xyzw2345", 1 << 30)  # a killed worker's leftover: no row
    driver.create_volume("someones-disk", 1 << 30)  # not the portal's: left alone
    driver.delete_volume(lost.public_id)  # vanished behind the portal's back
    driver.import_image("img-xyzw2346", "/fake/image")  # the base of an image deleted since
    driver.import_image(storage["disk_image"].public_id, "/fake/disk")  # a live image's base: kept

    report = services.reconcile_storage()["local"]
    assert report == {"removed": ["vol-xyzw2345", "img-xyzw2346"], "lost": [lost.public_id]}
    assert storage["disk_image"].public_id in {v.name for v in driver.list_volumes()}
    names = {v.name for v in driver.list_volumes()}
    assert kept.public_id in names and "someones-disk" in names and "vol-xyzw2345" not in names
    assert (fresh(lost).status, fresh(lost).status_reason) == ("error", "Its data is gone from pool local.")
    record = AuditRecord.objects.get(action="storage_pool.reconcile")
    assert record.actor_kind == "system" and record.details == report
    assert services.reconcile_storage()["local"] == {"removed": [], "lost": []}



def test_deleted_volumes_wait_in_the_recycle_bin(a_owner, actor, api, run, storage):
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.models import PlatformSettings

    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": 24})
    owner = actor(a_owner)
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=2))
    response = api(a_owner).delete(f"/api/v1/volumes/{volume.public_id}")
    assert response.status_code == 202 and response.json()["status"] == "recycled"
    assert backend(volume).size_bytes == 2 << 30  # the data stays while it is restorable
    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert usage["volume_gb"] == 2
    with pytest.raises(Conflict):
        services.attach_volume(owner, volume=fresh(volume), instance=launch(run, owner))

    restored = api(a_owner).post(f"/api/v1/volumes/{volume.public_id}/restore")
    assert restored.status_code == 200 and restored.json()["status"] == "available"

    run(services.delete_volume, owner, volume=fresh(volume))
    assert services.purge_recycle_bin() == 0  # not yet
    Volume.objects.filter(pk=volume.pk).update(recycled_at=timezone.now() - timedelta(hours=25))
    assert run(services.purge_recycle_bin) == 1
    assert fresh(volume).status == "deleted"
    with pytest.raises(BackendNotFound):
        backend(volume)
    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert usage["volume_gb"] == 0


def test_delete_now_from_the_recycle_bin(a_owner, actor, run, storage):
    from apps.core.models import PlatformSettings

    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": 24})
    owner = actor(a_owner)
    volume = fresh(run(services.create_volume, owner, name="data", size_gb=1))
    assert fresh(run(services.delete_volume, owner, volume=volume)).status == "recycled"
    assert fresh(run(services.delete_volume, owner, volume=fresh(volume))).status == "deleted"


def test_rebuilding_a_disk_image_instance_clones_its_boot_volume_again(a_owner, actor, api, run, storage):
    from apps.compute.services import create_flavor
    from apps.core.actor import Actor

    create_flavor(Actor.system(), name="t1.disk", vcpus=1, ram_mb=128, disk_gb=4)
    other = Image.objects.create(name="disk-2", visibility=Image.PUBLIC, status=Image.ACTIVE, boot=Image.DISK,
                                 disk_format="qcow2", disk_file="/fake/disk-2.qcow2", min_disk_gb=2)
    owner = actor(a_owner)
    [vm] = run(compute.create_instances, owner, name="vm", flavor="t1.disk", image=storage["disk_image"].public_id)
    data = fresh(run(services.create_volume, owner, name="data", size_gb=1))
    run(services.attach_volume, owner, volume=data, instance=vm)
    root = VolumeAttachment.objects.get(instance=vm, is_root=True).volume
    kernel = api(a_owner).post(f"/api/v1/instances/{vm.public_id}/rebuild", {"image": storage["image"].public_id},
                               format="json")
    assert kernel.status_code == 400 and "Choose a disk image" in str(kernel.json()["fields"]["image"])

    snap = fresh(run(services.create_snapshot, owner, volume=root, name="before"))
    refused = api(a_owner).post(f"/api/v1/instances/{vm.public_id}/rebuild", {"image": other.public_id},
                                format="json")
    assert refused.status_code == 409 and snap.public_id in refused.json()["message"]
    run(services.delete_snapshot, owner, snapshot=snap)

    run(compute.rebuild_instance, owner, instance=vm, image=other.public_id)
    vm = fresh(vm)
    assert (vm.status, vm.image) == ("running", other), vm.status_reason
    again = VolumeAttachment.objects.get(instance=vm, is_root=True).volume
    assert (again.pk, again.status, again.image, again.size_gb) == (root.pk, "in-use", other, 4)
    assert backend(again).parent == other.public_id  # a fresh clone of the new image
    assert fresh(data).status == "in-use"  # data volumes stay
    assert FakeDriver(vm.host.uri).domain_info(vm.public_id).disks == ("vda", "vdb")
    usage = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (usage["volumes"], usage["volume_gb"]) == (2, 5)


def test_an_image_of_an_instance_copies_its_root_disk(a_owner, actor, api, run, storage, settings, tmp_path):
    from apps.compute.models import Image
    from apps.compute.services import create_flavor
    from apps.core.actor import Actor
    from apps.core.models import Operation

    settings.PORTAL_LIBVIRT_DIR = tmp_path
    create_flavor(Actor.system(), name="t1.disk", vcpus=1, ram_mb=128, disk_gb=4)
    owner = actor(a_owner)
    [kernel_vm] = run(compute.create_instances, owner, name="k", flavor="t1.nano", image=storage["image"].public_id)
    refused = api(a_owner).post(f"/api/v1/instances/{kernel_vm.public_id}/create-image", {"name": "x"},
                                format="json")
    assert refused.status_code == 409 and "no disk" in refused.json()["message"]

    [vm] = run(compute.create_instances, owner, name="vm", flavor="t1.disk", image=storage["disk_image"].public_id)
    response = run(api(a_owner).post, f"/api/v1/instances/{vm.public_id}/create-image", {"name": "golden"},
                   format="json")
    assert response.status_code == 202, response.json()
    image = Image.objects.get(public_id=response.json()["id"])
    assert (image.status, image.boot, image.owner_id, image.min_disk_gb, image.disk_format) == (
        "active", "disk", a_owner.tenant_id, 4, "qcow2")
    assert (tmp_path / "images" / image.public_id / "disk").is_file()
    assert Operation.objects.get(resource_id=image.public_id).status == "succeeded"
    root = VolumeAttachment.objects.get(instance=vm, is_root=True).volume
    assert backend(root).snapshots == ()  # the temporary snapshot is gone
    # The new image boots new instances.
    [copy] = run(compute.create_instances, owner, name="copy", flavor="t1.disk", image=image.public_id)
    assert fresh(copy).status == "running"
