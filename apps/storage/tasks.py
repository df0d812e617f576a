"""Storage tasks (django-q2): drive the pool's backend, or the hypervisor for attached
volumes, then record what happened. Each is idempotent: a worker killed half-way leaves a
state the re-run finishes (backend verbs accept what exists; rows are re-read under locks)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.compute.drivers.base import DriverError
from apps.compute.hypervisors import get_compute_driver
from apps.core import services as core_services
from apps.core.tasks import record_status
from apps.storage import services
from apps.storage.backends import get_storage_driver
from apps.storage.drivers.base import InUse, StorageError
from apps.storage.models import Backup, Snapshot, Volume, VolumeAttachment

GiB = 1 << 30


def image_base(image) -> str:
    """The pool object every volume of an image is cloned from (imported once per pool)."""
    return image.public_id


def _set(volume_id: int, status: str, reason: str = "") -> Volume:
    return record_status(Volume, volume_id, status, reason, publish=services.publish_volume)


def _load(volume_id: int) -> Volume:
    return Volume.objects.select_related("pool", "pool__host", "image", "source_snapshot__volume",
                                         "source_volume", "source_backup__pool", "tenant").get(pk=volume_id)


def create_volume(volume_id: int, operation_id: int) -> None:
    volume = _load(volume_id)
    if volume.status != Volume.CREATING:
        return
    driver = get_storage_driver(volume.pool)
    size = volume.size_gb * GiB
    try:
        if volume.image_id:
            core_services.operation_step(operation_id, step="importing the image into the pool", progress=20)
            driver.import_image(image_base(volume.image), volume.image.disk_file)
            core_services.operation_step(operation_id, step="cloning the image", progress=70)
            driver.clone_image(volume.public_id, image_base(volume.image), size)
        elif volume.source_snapshot_id:
            snapshot = volume.source_snapshot
            core_services.operation_step(operation_id, step=f"copying {snapshot.public_id}", progress=30)
            driver.copy_volume(volume.public_id, snapshot.volume.public_id, size, snapshot=snapshot.public_id)
        elif volume.source_backup_id:
            backup = volume.source_backup
            core_services.operation_step(operation_id, step=f"restoring {backup.public_id}", progress=10)
            driver.receive(volume.public_id, get_storage_driver(backup.pool).read_args(backup.public_id),
                           progress=core_services.operation_progress(operation_id, "restoring", 10, 90))
            driver.resize_volume(volume.public_id, size)
        elif volume.source_volume_id:
            core_services.operation_step(operation_id, step=f"copying {volume.source_volume.public_id}", progress=30)
            driver.copy_volume(volume.public_id, volume.source_volume.public_id, size)
        else:
            driver.create_volume(volume.public_id, size)
    except StorageError as exc:
        _set(volume_id, Volume.ERROR, str(exc))
        core_services.operation_fail(operation_id, error=str(exc))
        return
    _set(volume_id, Volume.AVAILABLE)
    core_services.operation_finish(operation_id, result={"size_gb": volume.size_gb}, log="available")


def resize_volume(volume_id: int, was_attached: int) -> None:
    volume = _load(volume_id)
    if volume.status != Volume.EXTENDING:
        return
    settled = Volume.IN_USE if was_attached else Volume.AVAILABLE
    size = volume.size_gb * GiB
    try:
        running = services.running_attachment(volume)
        if running is not None:  # the guest's QEMU grows it, and the guest sees it at once
            get_compute_driver(running.instance.host.uri).resize_disk(running.instance.public_id, running.device, size)
        else:
            get_storage_driver(volume.pool).resize_volume(volume.public_id, size)
    except (StorageError, DriverError) as exc:
        _set(volume_id, settled, f"Resize failed: {exc}")
        return
    _set(volume_id, settled)


def attach_volume(attachment_id: int) -> None:
    attachment = VolumeAttachment.objects.select_related("volume__pool", "instance__host").filter(
        pk=attachment_id).first()
    if attachment is None or attachment.volume.status != Volume.ATTACHING:
        return
    volume, instance = attachment.volume, attachment.instance
    try:
        disk = services.disk_for(volume, attachment.device, instance.host)
        get_compute_driver(instance.host.uri).attach_disk(instance.public_id, disk)
    except (StorageError, DriverError) as exc:
        with transaction.atomic():
            attachment.delete()
            remaining = volume.attachments.exists()
        _set(volume.pk, Volume.IN_USE if remaining else Volume.AVAILABLE, f"Attach failed: {exc}")
        return
    _set(volume.pk, Volume.IN_USE)


def detach_volume(attachment_id: int) -> None:
    attachment = VolumeAttachment.objects.select_related("volume", "instance__host").filter(pk=attachment_id).first()
    if attachment is None or attachment.volume.status != Volume.DETACHING:
        return
    volume, instance = attachment.volume, attachment.instance
    try:
        if instance.host_id is not None:
            get_compute_driver(instance.host.uri).detach_disk(instance.public_id, attachment.device)
    except DriverError as exc:
        _set(volume.pk, Volume.IN_USE, f"Detach failed: {exc}")
        return
    with transaction.atomic():
        attachment.delete()
        remaining = volume.attachments.exists()
    _set(volume.pk, Volume.IN_USE if remaining else Volume.AVAILABLE)


def delete_volume(volume_id: int) -> None:
    from apps.billing import metering
    from apps.tenants import quotas

    volume = _load(volume_id)
    if volume.status != Volume.DELETING:
        return
    try:
        get_storage_driver(volume.pool).delete_volume(volume.public_id)
    except StorageError as exc:
        _set(volume_id, Volume.ERROR, f"Delete failed: {exc}")
        return
    with transaction.atomic():
        volume = Volume.objects.select_for_update().get(pk=volume_id)
        if volume.status != Volume.DELETING:
            return
        volume.status, volume.status_reason, volume.deleted_at = Volume.DELETED, "", timezone.now()
        volume.save(update_fields=["status", "status_reason", "deleted_at", "updated_at"])
        quotas.release(volume.tenant, region=volume.pool.region.code,
                       amounts={"volumes": 1, "volume_gb": volume.size_gb})
        # Deleted for good (by the tenant or the recycle bin's purge): no more usage, no subscription.
        metering.resource_deleted(volume, at=volume.deleted_at)
        services.publish_volume(volume)


def _snapshot(snapshot_id: int) -> Snapshot:
    return Snapshot.objects.select_related("volume__pool", "tenant").get(pk=snapshot_id)


def _set_snapshot(snapshot_id: int, status: str, reason: str = "", **fields) -> Snapshot:
    return record_status(Snapshot, snapshot_id, status, reason, publish=services.publish_snapshot, **fields)


def create_snapshot(snapshot_id: int) -> None:
    snapshot = _snapshot(snapshot_id)
    if snapshot.status != Snapshot.CREATING:
        return
    try:
        services.take_snapshot(snapshot.volume, snapshot.public_id)
    except (StorageError, DriverError) as exc:
        _set_snapshot(snapshot_id, Snapshot.ERROR, str(exc))
        return
    _set_snapshot(snapshot_id, Snapshot.AVAILABLE)


def delete_snapshot(snapshot_id: int) -> None:
    from apps.tenants import quotas

    snapshot = _snapshot(snapshot_id)
    if snapshot.status != Snapshot.DELETING:
        return
    volume = snapshot.volume
    try:
        services.drop_snapshot(volume, snapshot.public_id)
    except InUse as exc:
        _set_snapshot(snapshot_id, Snapshot.AVAILABLE, f"Not deleted: {exc}")
        return
    except (StorageError, DriverError) as exc:
        _set_snapshot(snapshot_id, Snapshot.ERROR, f"Delete failed: {exc}")
        return
    _set_snapshot(snapshot_id, Snapshot.DELETED, deleted_at=timezone.now())
    quotas.release(snapshot.tenant, region=volume.pool.region.code, amounts={"snapshots": 1})


def revert_to_snapshot(snapshot_id: int) -> None:
    snapshot = _snapshot(snapshot_id)
    if snapshot.status != Snapshot.RESTORING:
        return
    volume = snapshot.volume
    try:
        get_storage_driver(volume.pool).rollback_snapshot(volume.public_id, snapshot.public_id)
    except StorageError as exc:
        _set(volume.pk, Volume.AVAILABLE, f"Revert failed: {exc}")
        _set_snapshot(snapshot_id, Snapshot.AVAILABLE)
        return
    _set(volume.pk, Volume.AVAILABLE, f"Reverted to {snapshot.public_id}")
    _set_snapshot(snapshot_id, Snapshot.AVAILABLE)


def create_backup(backup_id: int, operation_id: int) -> None:
    """Copy a temporary snapshot of the volume into the backup pool, then drop the snapshot.
    A re-run after a killed worker takes the snapshot again (or finds it) and finishes."""
    backup = Backup.objects.select_related("pool", "volume__pool", "tenant").get(pk=backup_id)
    if backup.status != Backup.CREATING:
        return
    volume = backup.volume
    try:
        if volume is None or volume.status in (Volume.DELETING, Volume.DELETED):
            raise StorageError(f"volume {backup.volume_public_id} was deleted before it was copied")
        core_services.operation_step(operation_id, step="taking a snapshot", progress=5)
        with services.temporary_snapshot(volume, backup.public_id) as source:
            progress = core_services.operation_progress(operation_id, "copying", 10, 95)
            get_storage_driver(backup.pool).receive(backup.public_id, source, progress=progress)
    except (StorageError, DriverError) as exc:
        record_status(Backup, backup_id, Backup.ERROR, str(exc), publish=services.publish_backup)
        core_services.operation_fail(operation_id, error=str(exc))
        return
    record_status(Backup, backup_id, Backup.AVAILABLE, publish=services.publish_backup)
    core_services.operation_finish(operation_id, result={"size_gb": backup.size_gb, "pool": backup.pool.name},
                                   log="available")


def delete_backup(backup_id: int) -> None:
    from apps.tenants import quotas

    backup = Backup.objects.select_related("pool__region", "tenant").get(pk=backup_id)
    if backup.status != Backup.DELETING:
        return
    try:
        get_storage_driver(backup.pool).delete_volume(backup.public_id)
    except StorageError as exc:
        record_status(Backup, backup_id, Backup.ERROR, f"Delete failed: {exc}", publish=services.publish_backup)
        return
    record_status(Backup, backup_id, Backup.DELETED, publish=services.publish_backup, deleted_at=timezone.now())
    quotas.release(backup.tenant, region=backup.pool.region.code,
                   amounts={"backups": 1, "backup_gb": backup.size_gb})
