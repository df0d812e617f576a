"""Block storage services: pools and volume types (operators); volumes, attachments and
snapshots (tenants). Each checks, counts quota, writes the wanted state and queues the task
that drives the backend (apps.storage.tasks) on commit."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.compute.drivers.base import RUNNING, DriverError
from apps.compute.models import Cluster, Host, Image, Instance, Region
from apps.core import events, permissions
from apps.core.audit import audited, record
from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.core.ids import ALPHABET, LENGTH
from apps.core.validation import clean_name, lookup
from apps.storage.backends import get_storage_driver
from apps.storage.drivers.base import InUse, StorageError
from apps.storage.models import Backup, Snapshot, StoragePool, Volume, VolumeAttachment, VolumeType
from apps.tenants.services import require_operator

if TYPE_CHECKING:
    from apps.core.actor import Actor

# Event publishers (no state change), the scheduled capacity refresh and reconcile (which records
# what it repaired as the system), and
# what compute calls while it builds, defines or deletes an instance (part of those audited
# instance actions).
UNAUDITED = ("publish_volume", "publish_snapshot", "publish_backup", "refresh_storage_pools", "reconcile_pool",
             "reconcile_storage", "release_attachments", "ensure_root_volume", "instance_disks", "disk_for",
             "purge_recycle_bin", "root_volume", "running_attachment", "take_snapshot", "drop_snapshot",
             "temporary_snapshot",
             "volume_type_for")  # the last resolves a name for creates and their price (a read)

MAX_VOLUME_GB = 16384
DEVICES = [f"vd{c}" for c in "bcdefghijklmnopqrstuvwxyz"]  # vda is the root disk


def publish_volume(volume: Volume) -> None:
    events.publish(volume.tenant_id, {"type": "volume", "id": volume.public_id, "status": volume.status,
                                      "reason": volume.status_reason})


def publish_snapshot(snapshot: Snapshot) -> None:
    events.publish(snapshot.tenant_id, {"type": "snapshot", "id": snapshot.public_id, "status": snapshot.status,
                                        "volume": snapshot.volume.public_id})


# --- pools and volume types (operators) -----------------------------------------------------

@audited("storage_pool.create", area="storage")
def add_storage_pool(actor: Actor, *, name: str, backend: str, region: Region, config: dict,
                     availability_zone: Cluster | None = None, host: Host | None = None,
                     tags: list[str] | None = None) -> StoragePool:
    """Register a pool; it must answer (its capacity is read) before it is saved."""
    require_operator(actor)
    if backend not in (StoragePool.DIR, StoragePool.RBD):
        raise ValidationFailed("Unknown backend.", fields={"backend": ["dir or rbd."]})
    if backend == StoragePool.DIR and (host is None or not config.get("path")):
        raise ValidationFailed("A dir pool lives on one host, in one folder.",
                               fields={"host": ["Required for dir pools."], "path": ["Required for dir pools."]})
    if backend == StoragePool.RBD and not {"conf", "user", "pool"} <= set(config):
        raise ValidationFailed("An RBD pool needs the cluster's conf file, a cephx user and a pool.",
                               fields={"config": ["conf, user and pool are required."]})
    if StoragePool.objects.filter(name=name).exists():
        raise Conflict(f"A pool named {name} exists.", fields={"name": ["Taken."]})
    pool = StoragePool(name=name, backend=backend, region=region, availability_zone=availability_zone, host=host,
                       config=config, tags=tags or [])
    _read_usage(pool)
    if pool.state_reason:
        raise ValidationFailed(f"The pool does not answer: {pool.state_reason}", fields={"config": [pool.state_reason]})
    pool.save()
    return pool


def _read_usage(pool: StoragePool) -> None:
    try:
        usage = get_storage_driver(pool).usage()
    except StorageError as exc:
        pool.state_reason = str(exc)[:255]
        return
    pool.capacity_bytes, pool.allocated_bytes = usage.capacity_bytes, usage.allocated_bytes
    pool.available_bytes, pool.refreshed_at, pool.state_reason = usage.available_bytes, timezone.now(), ""


@audited("storage_pool.update", area="storage")
def update_storage_pool(actor: Actor, *, pool: StoragePool, enabled: bool | None = None,
                        tags: list[str] | None = None, holds_backups: bool | None = None) -> StoragePool:
    """Open or close a pool for new volumes, tag it, make it its region's backup pool (one
    per region)."""
    require_operator(actor)
    pool = StoragePool.objects.select_for_update().get(pk=pool.pk)
    if enabled is not None:
        pool.enabled = enabled
    if tags is not None:
        pool.tags = [clean_name(t, "tags") for t in tags]
    if holds_backups is not None:
        if holds_backups:
            StoragePool.objects.filter(region_id=pool.region_id).exclude(pk=pool.pk).update(holds_backups=False)
        pool.holds_backups = holds_backups
    pool.save(update_fields=["enabled", "tags", "holds_backups"])
    return pool


_PORTAL_OBJECT = re.compile(rf"^(vol|bak)-[{ALPHABET}]{{{LENGTH}}}$")  # what the portal names its objects
_IMAGE_BASE = re.compile(rf"^img-[{ALPHABET}]{{{LENGTH}}}$")


def reconcile_pool(pool_id: int) -> dict[str, list[str]]:
    """Compare a pool with the database by name. Objects the portal made (volumes, backups,
    bases of deleted images no volume depends on) whose row is gone or deleted are removed; a
    volume whose object vanished becomes `error`.
    Objects of other names (not the portal's) are never touched. What was done is audited."""
    from apps.core.actor import Actor

    pool = StoragePool.objects.select_related("host").get(pk=pool_id)
    driver = get_storage_driver(pool)
    present = {info.name for info in driver.list_volumes()}
    live = set(Volume.objects.filter(pool=pool).exclude(status=Volume.DELETED).values_list("public_id", flat=True))
    live |= set(Backup.objects.filter(pool=pool).exclude(status=Backup.DELETED).values_list("public_id", flat=True))
    removed = sorted(name for name in present - live if _PORTAL_OBJECT.match(name))
    for name in removed:
        driver.delete_volume(name)
    # Image bases of images that are gone, once no volume is cloned from them any more.
    images = set(Image.objects.filter(deleted_at__isnull=True).values_list("public_id", flat=True))
    for name in sorted(n for n in present - images if _IMAGE_BASE.match(n)):
        try:
            driver.delete_volume(name)
        except InUse:
            continue
        removed.append(name)
    lost = []
    for volume in Volume.objects.filter(pool=pool, status__in=(Volume.AVAILABLE, Volume.IN_USE)).exclude(
            public_id__in=present):
        Volume.objects.filter(pk=volume.pk).update(status=Volume.ERROR,
                                                   status_reason=f"Its data is gone from pool {pool.name}.")
        publish_volume(volume)
        lost.append(volume.public_id)
    report = {"removed": removed, "lost": lost}
    if removed or lost:
        record(Actor.system(), action="storage_pool.reconcile", area="storage", resource=pool, details=report)
    return report


def reconcile_storage() -> dict[str, dict]:
    """Every enabled pool (scheduled); a pool that does not answer is reported, not fatal."""
    reports = {}
    for pool in StoragePool.objects.filter(enabled=True):
        try:
            reports[pool.name] = reconcile_pool(pool.pk)
        except StorageError as exc:
            reports[pool.name] = {"error": [str(exc)]}
    return reports


def refresh_storage_pools() -> int:
    """Capacity and use of every pool, read from the backends (scheduled)."""
    count = 0
    for pool in StoragePool.objects.select_related("host"):
        _read_usage(pool)
        pool.save(update_fields=["capacity_bytes", "allocated_bytes", "available_bytes", "refreshed_at",
                                 "state_reason"])
        count += 1
    return count


@audited("volume_type.create", area="storage")
def create_volume_type(actor: Actor, *, name: str, pool: StoragePool, description: str = "",
                       multi_attach: bool = False, is_public: bool = True, is_default: bool = False) -> VolumeType:
    require_operator(actor)
    if VolumeType.objects.filter(name=name).exists():
        raise Conflict(f"A volume type named {name} exists.", fields={"name": ["Taken."]})
    if is_default:
        VolumeType.objects.filter(is_default=True).update(is_default=False)
    return VolumeType.objects.create(name=name, pool=pool, description=description, multi_attach=multi_attach,
                                     is_public=is_public, is_default=is_default)


@audited("volume_type.update", area="storage")
def update_volume_type(actor: Actor, *, volume_type: VolumeType, description: str, is_public: bool,
                       is_default: bool) -> VolumeType:
    """The pool and what volumes may do are fixed (volumes refer to them); offer and describe."""
    require_operator(actor)
    volume_type = VolumeType.objects.select_for_update().get(pk=volume_type.pk)
    if is_default:
        VolumeType.objects.exclude(pk=volume_type.pk).filter(is_default=True).update(is_default=False)
    volume_type.description, volume_type.is_public, volume_type.is_default = description, is_public, is_default
    volume_type.save(update_fields=["description", "is_public", "is_default"])
    return volume_type


# --- volumes ----------------------------------------------------------------------------------

def volume_type_for(actor: Actor, name: str | None) -> VolumeType:
    """The volume type `name` the actor may use (the default type when not given), open for new
    volumes."""
    types = VolumeType.objects.select_related("pool", "pool__region", "pool__host")
    if name:
        volume_type = lookup(actor, types, name, field="volume_type", label="volume type", key="name")
    else:
        volume_type = types.for_actor(actor).filter(is_default=True).first()
        if volume_type is None:
            raise ValidationFailed("Choose a volume type.", fields={"volume_type": ["No default type is set."]})
    if not volume_type.pool.enabled:
        raise Conflict(f"Volume type {volume_type.name} is closed for new volumes (its pool is disabled).",
                       code="pool_disabled")
    return volume_type


def _check_size(size_gb: int, *, at_least: int = 1, field: str = "size_gb") -> None:
    if not isinstance(size_gb, int) or size_gb < at_least or size_gb > MAX_VOLUME_GB:
        raise ValidationFailed(f"The size must be between {at_least} and {MAX_VOLUME_GB} GiB.",
                               fields={field: [f"{at_least} to {MAX_VOLUME_GB} GiB."]})


def _check_pool_space(pool: StoragePool, size_gb: int) -> None:
    """Thin pools overcommit, but no volume is larger than its whole pool."""
    if pool.available_bytes and size_gb * (1 << 30) > pool.capacity_bytes:
        raise Conflict(f"Pool {pool.name} holds at most {pool.capacity_bytes >> 30} GiB.", code="no_space",
                       fields={"size_gb": ["Larger than the pool."]})


@audited("volume.create", area="storage")
def create_volume(actor: Actor, *, name: str, size_gb: int | None = None, volume_type: str | None = None,
                  image: str | None = None, snapshot: str | None = None, source_volume: str | None = None,
                  backup: str | None = None, description: str = "", tags: list[str] | None = None) -> Volume:
    """A volume: empty, from an image (bootable, copy-on-write over the image), from a snapshot,
    as a copy of another volume, or restored from a backup (full copies). Created `creating`;
    a task fills it. Billed from now on (402 first when the wallet cannot cover its hours)."""
    from apps.billing import metering
    from apps.core.services import start_operation
    from apps.core.tasks import enqueue_on_commit
    from apps.storage import tasks
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, "storage", "create")
    if sum(ref is not None for ref in (image, snapshot, source_volume, backup)) > 1:
        raise ValidationFailed("Give at most one source: an image, a snapshot, a volume or a backup.",
                               fields={"image": ["One source only."]})
    source_image = source_snapshot = source = source_backup = None
    minimum = 1
    if image is not None:
        source_image = lookup(actor, Image.objects.filter(status=Image.ACTIVE, deleted_at__isnull=True), image,
                              field="image", label="image")
        if source_image.boot != Image.DISK:
            raise ValidationFailed(f"Image {source_image.name} boots a kernel directly; it has no disk to copy.",
                                   fields={"image": ["Not a disk image."]})
        minimum = max(1, source_image.min_disk_gb)
    if snapshot is not None:
        source_snapshot = lookup(actor, Snapshot.objects.select_related("volume__volume_type__pool"), snapshot,
                                 field="snapshot", label="snapshot")
        if source_snapshot.status != Snapshot.AVAILABLE:
            raise Conflict(f"Snapshot {source_snapshot.public_id} is {source_snapshot.status}.", code="invalid_state")
        minimum = source_snapshot.size_gb
    if source_volume is not None:
        source = lookup(actor, Volume.objects.select_related("volume_type__pool"), source_volume,
                        field="source_volume", label="volume")
        if source.status not in (Volume.AVAILABLE, Volume.IN_USE):
            raise Conflict(f"Volume {source.public_id} is {source.status}.", code="invalid_state")
        minimum = source.size_gb
    if backup is not None:
        source_backup = lookup(actor, Backup.objects.select_related("pool"), backup, field="backup", label="backup")
        if source_backup.status != Backup.AVAILABLE:
            raise Conflict(f"Backup {source_backup.public_id} is {source_backup.status}.", code="invalid_state")
        minimum = source_backup.size_gb
    if size_gb is None:
        if source_image is None and source_snapshot is None and source is None and source_backup is None:
            raise ValidationFailed("Give the size of an empty volume.", fields={"size_gb": ["Required."]})
        size_gb = minimum  # the source's size
    _check_size(size_gb, at_least=minimum)
    origin = source_snapshot.volume if source_snapshot else source
    chosen = origin.volume_type if origin is not None and not volume_type else volume_type_for(actor, volume_type)
    if origin is not None and origin.pool_id != chosen.pool_id:
        raise ValidationFailed("Copies stay in their source's pool: choose a volume type of that pool.",
                               fields={"volume_type": [f"Use a type of pool {origin.pool.name}."]})
    _check_pool_space(chosen.pool, size_gb)
    metering.require_funds(tenant, metering.estimate_volume(tenant, volume_type=chosen, size_gb=size_gb))
    quotas.consume(tenant, region=chosen.pool.region.code, amounts={"volumes": 1, "volume_gb": size_gb})
    volume = Volume.objects.create(
        tenant=tenant, name=clean_name(name), description=description.strip()[:255], size_gb=size_gb,
        volume_type=chosen, pool=chosen.pool, multi_attach=chosen.multi_attach, image=source_image,
        source_snapshot=source_snapshot, source_volume=source, source_backup=source_backup,
        tags=sorted({clean_name(t, "tags") for t in tags or []}),
        created_by=actor.user,
    )
    metering.order_created(actor, volume)
    metering.start_usage(volume)
    operation = start_operation(actor, area="storage", kind="volume.create", name=f"Create {volume.name}",
                                resource_id=volume.public_id)
    publish_volume(volume)
    enqueue_on_commit(tasks.create_volume, volume.pk, operation.pk, resource=volume)
    return volume


def _move(volume: Volume, status: str, reason: str, task, *args, fields: tuple[str, ...] = ()) -> Volume:
    """Record the transitional state, tell the open pages, queue the task that finishes it."""
    from apps.core.tasks import enqueue_on_commit

    volume.status, volume.status_reason = status, reason
    volume.save(update_fields=["status", "status_reason", "updated_at", *fields])
    publish_volume(volume)
    enqueue_on_commit(task, *args, resource=volume)
    return volume


def _locked(volume: Volume) -> Volume:
    return Volume.objects.select_for_update(of=("self",)).select_related("pool", "tenant").get(pk=volume.pk)


def _require_status(volume: Volume, action: str, allowed: tuple[str, ...]) -> None:
    if volume.status not in allowed:
        raise Conflict(f"Cannot {action} volume {volume.public_id} while it is {volume.status}.",
                       code="invalid_state")


def _attached_to(volume: Volume) -> str:
    return ", ".join(f"{a.instance.public_id} as {a.device}" for a in volume.attachments.select_related("instance"))


@audited("volume.update", area="storage")
def update_volume(actor: Actor, *, volume: Volume, name: str | None = None, description: str | None = None,
                  tags: list[str] | None = None) -> Volume:
    permissions.require(actor, volume, "change")
    volume = _locked(volume)
    if name is not None:
        volume.name = clean_name(name)
    if description is not None:
        volume.description = description.strip()[:255]
    if tags is not None:
        volume.tags = sorted({clean_name(t, "tags") for t in tags})
    volume.save(update_fields=["name", "description", "tags", "updated_at"])
    return volume


@audited("volume.resize", area="storage")
def resize_volume(actor: Actor, *, volume: Volume, size_gb: int) -> Volume:
    """Grow a volume; attached to a running instance, the guest sees the new size at once. It is
    billed at the new size from now."""
    from apps.billing import metering
    from apps.storage import tasks
    from apps.tenants import quotas

    permissions.require(actor, volume, "resize")
    volume = _locked(volume)
    _require_status(volume, "resize", (Volume.AVAILABLE, Volume.IN_USE))
    if not isinstance(size_gb, int) or size_gb <= volume.size_gb:
        raise ValidationFailed(f"Volumes only grow: give more than {volume.size_gb} GiB.",
                               fields={"size_gb": [f"More than {volume.size_gb} GiB."]})
    _check_size(size_gb)
    _check_pool_space(volume.pool, size_gb)
    quotas.consume(volume.tenant, region=volume.pool.region.code, amounts={"volume_gb": size_gb - volume.size_gb})
    was_attached = 1 if volume.status == Volume.IN_USE else 0
    volume.size_gb = size_gb
    metering.change_quantity(volume)
    return _move(volume, Volume.EXTENDING, "", tasks.resize_volume, volume.pk, was_attached, fields=("size_gb",))


@audited("volume.delete", area="storage")
def delete_volume(actor: Actor, *, volume: Volume) -> Volume:
    """To the recycle bin for PlatformSettings.recycle_bin_hours (the data stays, restorable,
    and counts in the quota); at once when that is 0, or when it is in the recycle bin already.
    Either way it is no longer billed."""
    from apps.billing import metering
    from apps.core.models import PlatformSettings
    from apps.storage import tasks

    permissions.require(actor, volume, "delete")
    volume = _locked(volume)
    if volume.attachments.exists():
        raise Conflict(f"Volume {volume.public_id} is attached to {_attached_to(volume)}: detach it first.",
                       code="attached")
    _require_status(volume, "delete", (Volume.AVAILABLE, Volume.ERROR, Volume.RECYCLED))
    snapshots = list(volume.snapshots.exclude(status=Snapshot.DELETED).values_list("public_id", flat=True))
    if snapshots:
        raise Conflict(f"Volume {volume.public_id} has snapshots ({', '.join(snapshots)}): they live in the volume, "
                       "so delete them first (or copy them to new volumes).", code="has_snapshots")
    hours = PlatformSettings.load().recycle_bin_hours
    if volume.status == Volume.AVAILABLE and hours:
        volume.status, volume.recycled_at = Volume.RECYCLED, timezone.now()
        volume.status_reason = f"In the recycle bin for {hours} h"
        volume.save(update_fields=["status", "status_reason", "recycled_at", "updated_at"])
        metering.stop_usage(volume)
        publish_volume(volume)
        return volume
    metering.stop_usage(volume)  # the delete task ends its subscription once it is gone
    return _move(volume, Volume.DELETING, "", tasks.delete_volume, volume.pk)


@audited("volume.restore", area="storage")
def restore_volume(actor: Actor, *, volume: Volume) -> Volume:
    """Back from the recycle bin, as it was, and billed again (not before the tenant pays, when
    the billing policy put it there: 402)."""
    from apps.billing import metering, policy

    permissions.require(actor, volume, "delete")
    policy.check_can_start(actor, volume)
    volume = _locked(volume)
    _require_status(volume, "restore", (Volume.RECYCLED,))
    volume.status, volume.status_reason, volume.recycled_at = Volume.AVAILABLE, "", None
    volume.save(update_fields=["status", "status_reason", "recycled_at", "updated_at"])
    metering.start_usage(volume)
    publish_volume(volume)
    return volume


def purge_recycle_bin() -> int:
    """Delete the volumes whose time in the recycle bin is over (scheduled)."""
    from apps.core import tasks as core_tasks
    from apps.storage import tasks

    return core_tasks.purge_recycle_bin(Volume, delete_task=tasks.delete_volume, publish=publish_volume)


# --- attachments -----------------------------------------------------------------------------

def _check_reachable(volume: Volume, instance: Instance) -> None:
    """A volume attaches only where its pool is: a dir pool on the instance's own host, an RBD
    pool in the instance's region (and zone, when the pool belongs to one)."""
    pool = volume.pool
    if pool.backend == StoragePool.DIR and instance.host_id != pool.host_id:
        where = instance.host.name if instance.host_id else "no host yet"
        raise Conflict(f"Volume {volume.public_id} is in pool {pool.name} on host {pool.host.name}; instance "
                       f"{instance.public_id} runs on {where}.", code="not_reachable")
    if pool.region.code != instance.region or (
            pool.availability_zone_id and pool.availability_zone_id != instance.host.cluster_id):
        raise Conflict(f"Volume {volume.public_id} is in another region or zone than instance "
                       f"{instance.public_id}.", code="not_reachable")


@audited("volume.attach", area="storage")
def attach_volume(actor: Actor, *, volume: Volume, instance: Instance, device: str | None = None) -> Volume:
    """Plug a volume into an instance (running: hot plug). The device name is kept while it
    stays attached, so the guest finds it at the same place after a reboot."""
    from apps.storage import tasks

    permissions.require(actor, volume, "attach")
    permissions.require(actor, instance, "change")
    volume = _locked(volume)
    instance = Instance.objects.select_for_update(of=("self",)).select_related("host").get(pk=instance.pk)
    if volume.attachments.filter(instance=instance).exists():
        raise Conflict(f"Volume {volume.public_id} is attached to {instance.public_id} already.", code="attached")
    if volume.status == Volume.IN_USE and not volume.multi_attach:
        raise Conflict(f"Volume {volume.public_id} is attached to {_attached_to(volume)}; its type "
                       f"{volume.volume_type.name} does not allow attaching it to several instances.",
                       code="attached")
    _require_status(volume, "attach", (Volume.AVAILABLE, Volume.IN_USE))
    if instance.status not in (Instance.RUNNING, Instance.STOPPED):
        raise Conflict(f"Instance {instance.public_id} is {instance.status}: attach to a running or stopped "
                       "instance.", code="invalid_state")
    _check_reachable(volume, instance)
    taken = set(instance.volume_attachments.values_list("device", flat=True))
    if device is not None:
        if device not in DEVICES or device in taken:
            in_use = ", ".join(sorted(taken)) or "none"
            raise ValidationFailed(f"Device {device} is not free on {instance.public_id}.",
                                   fields={"device": [f"A free one of vdb…vdz; taken: {in_use}."]})
    else:
        device = next((d for d in DEVICES if d not in taken), None)
        if device is None:
            raise Conflict(f"Instance {instance.public_id} has no free disk slot.", code="no_device")
    attachment = VolumeAttachment.objects.create(volume=volume, instance=instance, device=device)
    return _move(volume, Volume.ATTACHING, f"to {instance.public_id} as {device}", tasks.attach_volume, attachment.pk)


@audited("volume.detach", area="storage")
def detach_volume(actor: Actor, *, volume: Volume, instance: Instance | None = None) -> Volume:
    """Unplug a volume (from `instance`, needed when it is attached to several)."""
    from apps.storage import tasks

    permissions.require(actor, volume, "attach")
    volume = _locked(volume)
    _require_status(volume, "detach", (Volume.IN_USE,))
    attachments = volume.attachments.select_related("instance")
    if instance is not None:
        attachments = attachments.filter(instance=instance)
    attachments = list(attachments)
    if not attachments:
        raise NotFound(f"Volume {volume.public_id} is not attached to {instance.public_id}.",
                       fields={"instance": ["Not attached there."]})
    if len(attachments) > 1:
        raise ValidationFailed("The volume is attached to several instances: say which.",
                               fields={"instance": [_attached_to(volume)]})
    attachment = attachments[0]
    if attachment.is_root:
        raise Conflict(f"Volume {volume.public_id} is the root disk of {attachment.instance.public_id}; it stays.",
                       code="root_disk")
    permissions.require(actor, attachment.instance, "change")
    return _move(volume, Volume.DETACHING, f"from {attachment.instance.public_id}", tasks.detach_volume,
                 attachment.pk)


# --- disks of instances (called by compute) ----------------------------------------------------

def _root_pool(instance: Instance) -> VolumeType:
    """Where an instance's root disk goes: a dir pool on its host, else an RBD pool of its
    region (and zone); the pool's default type, or its first."""
    host = instance.host
    pools = StoragePool.objects.filter(enabled=True, region__code=instance.region)
    zone = Q(availability_zone=host.cluster_id) | Q(availability_zone__isnull=True)
    pool = (pools.filter(backend=StoragePool.DIR, host=host).first()
            or pools.filter(zone, backend=StoragePool.RBD).first())
    volume_type = pool and (pool.volume_types.filter(is_default=True).first() or pool.volume_types.first())
    if volume_type is None:
        raise Conflict(f"No storage pool holds boot disks for host {host.name}; operators add one (a dir pool on "
                       "that host, or an RBD pool of the region) with a volume type.", code="no_storage")
    return volume_type


def root_volume(instance: Instance) -> Volume | None:
    attachment = VolumeAttachment.objects.select_related("volume__pool").filter(instance=instance, is_root=True).first()
    return attachment.volume if attachment else None


def ensure_root_volume(instance: Instance, *, reimage: bool = False) -> Volume:
    """The root volume of a disk-image instance: a copy-on-write clone of its image, attached
    as vda (made once; the instance's create counted its quota). Part of provisioning. With
    `reimage` (a rebuild, the domain gone), an existing root volume's data is replaced by a
    fresh clone of the instance's image; its id, size and attachment stay."""
    from apps.storage.tasks import image_base

    volume = root_volume(instance)
    if volume is None:
        volume_type = _root_pool(instance)
        with transaction.atomic():
            volume = Volume.objects.create(
                tenant=instance.tenant, name=f"{instance.name} root"[:128], size_gb=instance.flavor.disk_gb,
                volume_type=volume_type, pool=volume_type.pool, image=instance.image, status=Volume.CREATING,
                created_by=instance.created_by, description=f"Boot disk of {instance.public_id}",
            )
            VolumeAttachment.objects.create(volume=volume, instance=instance, device="vda", is_root=True)
    driver = get_storage_driver(volume.pool)
    try:
        driver.import_image(image_base(instance.image), instance.image.disk_file)
        if reimage:
            driver.delete_volume(volume.public_id)
        driver.clone_image(volume.public_id, image_base(instance.image), volume.size_bytes)
    except StorageError as exc:
        Volume.objects.filter(pk=volume.pk).update(status=Volume.ERROR, status_reason=str(exc)[:512])
        raise Conflict(f"The boot disk could not be made: {exc}", code="storage_error") from exc
    Volume.objects.filter(pk=volume.pk).update(status=Volume.IN_USE, status_reason="", image=instance.image)
    publish_volume(volume)
    return volume


def disk_for(volume: Volume, device: str, host: Host):
    """The volume as `host`'s hypervisor opens it at `device`; a pool that needs a key on the
    host (RBD) gets it there first."""
    driver = get_storage_driver(volume.pool)
    secret = driver.host_secret()
    if secret is not None:
        _hypervisor(host.uri).ensure_ceph_secret(*secret)
    return replace(driver.disk_source(volume.public_id), target=device, serial=volume.public_id)


def instance_disks(instance: Instance) -> tuple:
    """Every volume plugged into the instance, as its host sees them (root first)."""
    attachments = (VolumeAttachment.objects.select_related("volume__pool", "volume__pool__host")
                   .filter(instance=instance).order_by("-is_root", "device"))
    return tuple(disk_for(a.volume, a.device, instance.host) for a in attachments)


def release_attachments(sender, *, instance: Instance, **kwargs) -> None:
    """An instance is gone (compute's `instance_deleted`): its domain went with it. Its root
    volume goes too; its data volumes stay, available unless still attached elsewhere."""
    from apps.core.tasks import enqueue_on_commit
    from apps.storage import tasks

    for attachment in VolumeAttachment.objects.select_related("volume").filter(instance=instance):
        volume = _locked(attachment.volume)
        attachment.delete()
        if attachment.is_root:
            volume.status, volume.status_reason = Volume.DELETING, f"root disk of {instance.public_id}"
            volume.save(update_fields=["status", "status_reason", "updated_at"])
            enqueue_on_commit(tasks.delete_volume, volume.pk, resource=volume)
        elif volume.status in (Volume.IN_USE, Volume.ATTACHING, Volume.DETACHING):
            volume.status = Volume.IN_USE if volume.attachments.exists() else Volume.AVAILABLE
            volume.status_reason = f"{instance.public_id} was deleted"
            volume.save(update_fields=["status", "status_reason", "updated_at"])
            publish_volume(volume)


# --- snapshots -------------------------------------------------------------------------------

@audited("snapshot.create", area="storage")
def create_snapshot(actor: Actor, *, volume: Volume, name: str, description: str = "") -> Snapshot:
    """A point-in-time snapshot, attached volumes included (the guest's QEMU takes it); billed
    at the volume's size until it is deleted."""
    from apps.billing import metering
    from apps.core.tasks import enqueue_on_commit
    from apps.storage import tasks
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require(actor, volume, "snapshot")
    volume = _locked(volume)
    _require_status(volume, "snapshot", (Volume.AVAILABLE, Volume.IN_USE))
    quotas.consume(tenant, region=volume.pool.region.code, amounts={"snapshots": 1})
    snapshot = Snapshot.objects.create(tenant=tenant, volume=volume, name=clean_name(name), size_gb=volume.size_gb,
                                       description=description.strip()[:255], created_by=actor.user)
    metering.order_created(actor, snapshot)
    metering.start_usage(snapshot)
    publish_snapshot(snapshot)
    enqueue_on_commit(tasks.create_snapshot, snapshot.pk, resource=snapshot)
    return snapshot


def _locked_snapshot(snapshot: Snapshot) -> Snapshot:
    locked = Snapshot.objects.select_for_update(of=("self",)).select_related("volume", "volume__pool")
    return locked.get(pk=snapshot.pk)


@audited("snapshot.delete", area="storage")
def delete_snapshot(actor: Actor, *, snapshot: Snapshot) -> Snapshot:
    """Deleted by a task; no longer billed from now."""
    from apps.billing import metering
    from apps.core.tasks import enqueue_on_commit
    from apps.storage import tasks

    permissions.require(actor, snapshot, "delete")
    snapshot = _locked_snapshot(snapshot)
    if snapshot.status not in (Snapshot.AVAILABLE, Snapshot.ERROR):
        raise Conflict(f"Snapshot {snapshot.public_id} is {snapshot.status}.", code="invalid_state")
    busy = Volume.objects.filter(source_snapshot=snapshot, status=Volume.CREATING).values_list("public_id", flat=True)
    if busy:
        raise Conflict(f"Volumes are being created from snapshot {snapshot.public_id} ({', '.join(busy)}); "
                       "delete it when they are ready.", code="in_use")
    snapshot.status = Snapshot.DELETING
    snapshot.save(update_fields=["status", "updated_at"])
    metering.resource_deleted(snapshot)
    publish_snapshot(snapshot)
    enqueue_on_commit(tasks.delete_snapshot, snapshot.pk, resource=snapshot)
    return snapshot


@audited("snapshot.revert", area="storage")
def revert_to_snapshot(actor: Actor, *, snapshot: Snapshot) -> Volume:
    """Put the volume back to the snapshot. Only detached: a running guest would not expect
    its disk to change under it."""
    from apps.storage import tasks

    permissions.require(actor, snapshot.volume, "change")
    snapshot = _locked_snapshot(snapshot)
    volume = _locked(snapshot.volume)
    if volume.attachments.exists():
        raise Conflict(f"Volume {volume.public_id} is attached to {_attached_to(volume)}: detach it before "
                       "reverting it to a snapshot.", code="attached")
    _require_status(volume, "revert", (Volume.AVAILABLE,))
    if snapshot.status != Snapshot.AVAILABLE:
        raise Conflict(f"Snapshot {snapshot.public_id} is {snapshot.status}.", code="invalid_state")
    snapshot.status = Snapshot.RESTORING
    snapshot.save(update_fields=["status", "updated_at"])
    return _move(volume, Volume.RESTORING, f"to {snapshot.public_id}", tasks.revert_to_snapshot, snapshot.pk)




# --- snapshots the system takes (backups, images of instances) -----------------------------

def running_attachment(volume: Volume) -> VolumeAttachment | None:
    """The attachment whose guest runs now, if any (its QEMU holds the volume)."""
    for attachment in volume.attachments.select_related("instance__host"):
        host = attachment.instance.host
        if host is None:
            continue
        try:
            if _hypervisor(host.uri).domain_info(attachment.instance.public_id).state == RUNNING:
                return attachment
        except DriverError:
            continue
    return None


def take_snapshot(volume: Volume, name: str) -> None:
    running = running_attachment(volume)
    if running is not None and volume.pool.backend == "dir":  # the file is QEMU's while it runs
        _hypervisor(running.instance.host.uri).snapshot_disk(running.instance.public_id, running.device, name)
    else:
        get_storage_driver(volume.pool).create_snapshot(volume.public_id, name)


def drop_snapshot(volume: Volume, name: str) -> None:
    running = running_attachment(volume)
    if running is not None and volume.pool.backend == "dir":
        _hypervisor(running.instance.host.uri).delete_disk_snapshot(running.instance.public_id,
                                                                           running.device, name)
    else:
        get_storage_driver(volume.pool).delete_snapshot(volume.public_id, name)


@contextmanager
def temporary_snapshot(volume: Volume, name: str):
    """A snapshot `name` of the volume as it is now (the guest's QEMU takes it while it runs),
    yielded as the qemu-img arguments that read it, and dropped afterwards."""
    take_snapshot(volume, name)
    try:
        yield get_storage_driver(volume.pool).read_args(volume.public_id, snapshot=name)
    finally:
        drop_snapshot(volume, name)


def _hypervisor(uri: str):
    from apps.compute.hypervisors import get_compute_driver

    return get_compute_driver(uri)


# --- backups ---------------------------------------------------------------------------------

def _backup_pool(volume: Volume) -> StoragePool:
    """The region's backup pool (operators mark one), else the volume's own pool."""
    chosen = StoragePool.objects.filter(region_id=volume.pool.region_id, enabled=True, holds_backups=True).first()
    return chosen or volume.pool


@audited("backup.create", area="storage")
def create_backup(actor: Actor, *, volume: Volume, name: str, description: str = "") -> Backup:
    """A full copy of the volume as it is now (a temporary snapshot is copied, attached volumes
    included) into the backup pool, as a task with progress. Callable from a schedule with a
    system actor of the volume's tenant."""
    from apps.core.services import start_operation
    from apps.core.tasks import enqueue_on_commit
    from apps.storage import tasks
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require(actor, volume, "backup")
    volume = _locked(volume)
    _require_status(volume, "back up", (Volume.AVAILABLE, Volume.IN_USE))
    quotas.consume(tenant, region=volume.pool.region.code, amounts={"backups": 1, "backup_gb": volume.size_gb})
    backup = Backup.objects.create(tenant=tenant, name=clean_name(name), description=description.strip()[:255],
                                   volume=volume, volume_public_id=volume.public_id, pool=_backup_pool(volume),
                                   size_gb=volume.size_gb, created_by=actor.user)
    operation = start_operation(actor, area="storage", kind="backup.create", name=f"Back up {volume.name}",
                                resource_id=backup.public_id)
    publish_backup(backup)
    enqueue_on_commit(tasks.create_backup, backup.pk, operation.pk, resource=backup)
    return backup


@audited("backup.delete", area="storage")
def delete_backup(actor: Actor, *, backup: Backup) -> Backup:
    from apps.core.tasks import enqueue_on_commit
    from apps.storage import tasks

    permissions.require(actor, backup, "delete")
    backup = Backup.objects.select_for_update(of=("self",)).select_related("pool").get(pk=backup.pk)
    if backup.status not in (Backup.AVAILABLE, Backup.ERROR):
        raise Conflict(f"Backup {backup.public_id} is {backup.status}.", code="invalid_state")
    busy = Volume.objects.filter(source_backup=backup, status=Volume.CREATING).values_list("public_id", flat=True)
    if busy:
        raise Conflict(f"Volumes are being restored from backup {backup.public_id} ({', '.join(busy)}).",
                       code="in_use")
    backup.status = Backup.DELETING
    backup.save(update_fields=["status", "updated_at"])
    publish_backup(backup)
    enqueue_on_commit(tasks.delete_backup, backup.pk, resource=backup)
    return backup


def publish_backup(backup: Backup) -> None:
    events.publish(backup.tenant_id, {"type": "backup", "id": backup.public_id, "status": backup.status,
                                      "volume": backup.volume_public_id})
