"""Compute background work: drive the hypervisor to what the Instance row wants.

Every task takes ids, re-reads and locks the row, skips what is already done, and records the
outcome, so a worker killed at any line leaves a state the re-run (or the reconciler) finishes:
domain operations are idempotent (`ensure_domain`, `delete_domain(missing_ok=True)`)."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.compute import imagestore, scheduler, services
from apps.compute.drivers.base import SHUTOFF, DomainSpec, DriverError, KernelBoot
from apps.compute.hypervisors import get_compute_driver
from apps.storage.backends import get_storage_driver
from apps.compute.models import Host, Image, Instance
from apps.compute.signals import instance_deleted
from apps.core import services as core_services
from apps.core.exceptions import DomainError
from apps.core.tasks import record_status


def refresh_hosts() -> dict[str, str]:
    """Heartbeat every host: refresh capacity, mark silent ones down (scheduled every minute)."""
    return {
        host.name: services.refresh_host(host.pk, down_after_seconds=settings.PORTAL_HOST_DOWN_AFTER).state
        for host in Host.objects.all()
    }


def serial_log_path(instance: Instance) -> Path:
    return Path(settings.PORTAL_LIBVIRT_DIR) / "logs" / f"{instance.public_id}.log"


def domain_spec(instance: Instance) -> DomainSpec:
    """The domain as the database wants it, with every volume plugged in (the root disk of a
    disk-image instance first) and every network interface, so recreating or redefining it
    keeps them."""
    from apps.network import services as network
    from apps.storage import services as storage

    image, host = instance.image, instance.host
    kernel = None
    if image.boot == Image.KERNEL:
        cmdline = f"{image.cmdline} hostname={instance.public_id}".strip()
        kernel = KernelBoot(image.kernel_file, image.initrd_file, cmdline)
    log = serial_log_path(instance)
    log.parent.mkdir(parents=True, exist_ok=True)
    return DomainSpec(
        name=instance.public_id, vcpus=instance.vcpus, memory_mb=instance.ram_mb, virt_type=host.effective_virt_type,
        arch=image.arch, kernel=kernel, disks=storage.instance_disks(instance), nics=network.instance_nics(instance),
        serial_log=str(log),
        vnc_listen=host.management_address, title=instance.name[:64],
        labels=(("tenant", instance.tenant.public_id), ("instance", instance.public_id)),
    )


def _set_status(instance_id: int, status: str, reason: str = "", **fields) -> Instance:
    return record_status(Instance, instance_id, status, reason, publish=services.publish_instance, **fields)


def _load(instance_id: int) -> Instance:
    return Instance.objects.select_related("host", "host__cluster", "image", "tenant").get(pk=instance_id)


def provision_instance(instance_id: int, operation_id: int) -> None:
    instance = _load(instance_id)
    if instance.status not in (Instance.PENDING, Instance.BUILDING):
        return  # built already, or being deleted: the delete task cleans up
    _set_status(instance_id, Instance.BUILDING)
    try:
        if instance.image.boot == Image.DISK:
            from apps.storage import services as storage

            core_services.operation_step(operation_id, step="cloning the boot disk", progress=10)
            storage.ensure_root_volume(instance)
        core_services.operation_step(operation_id, step="defining the domain", progress=20,
                                     log=f"host {instance.host.name}, {instance.vcpus} vCPU, {instance.ram_mb} MiB")
        get_compute_driver(instance.host.uri).ensure_domain(domain_spec(instance))
    except (DriverError, DomainError) as exc:
        _fail_build(instance, operation_id, getattr(exc, "message", None) or str(exc))
        return
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance_id)
        if instance.status == Instance.BUILDING:
            instance.status, instance.launched_at = Instance.RUNNING, timezone.now()
            instance.save(update_fields=["status", "launched_at", "updated_at"])
            services.publish_instance(instance)
    core_services.operation_finish(operation_id, result={"host": instance.host.name}, log="running")


def _fail_build(instance: Instance, operation_id: int, reason: str) -> None:
    """The build failed: remove what may exist, give the host claim back, keep the row in
    `error` (its quota counts until the user deletes it, as on public clouds)."""
    get_compute_driver(instance.host.uri).delete_domain(instance.public_id)
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance.pk)
        if locked.host_id:
            scheduler.release(locked.host_id, vcpus=locked.vcpus, ram_mb=locked.ram_mb)
        locked.host, locked.status, locked.status_reason = None, Instance.ERROR, f"Build failed: {reason}"[:512]
        locked.save(update_fields=["host", "status", "status_reason", "updated_at"])
        services.publish_instance(locked)
    core_services.operation_fail(operation_id, error=reason)


def _power(instance_id: int, expected: str, action) -> None:
    instance = _load(instance_id)
    if instance.status != expected:
        return
    try:
        action(get_compute_driver(instance.host.uri), instance)
    except DriverError as exc:
        _set_status(instance_id, Instance.ERROR, f"{expected} failed: {exc}")


def start_instance(instance_id: int) -> None:
    def run(driver, instance):
        driver.ensure_domain(domain_spec(instance))
        _set_status(instance.pk, Instance.RUNNING)

    _power(instance_id, Instance.STARTING, run)


def stop_instance(instance_id: int, force: int = 0) -> None:
    """ACPI first; power off when the guest has not stopped within PORTAL_STOP_TIMEOUT."""

    def run(driver, instance):
        name = instance.public_id
        if not force:
            driver.stop_domain(name)
            deadline = time.monotonic() + settings.PORTAL_STOP_TIMEOUT
            while time.monotonic() < deadline and driver.domain_info(name).state != SHUTOFF:
                time.sleep(1)
        if driver.domain_info(name).state != SHUTOFF:
            driver.stop_domain(name, force=True)
        _set_status(instance.pk, Instance.STOPPED)

    _power(instance_id, Instance.STOPPING, run)


def reboot_instance(instance_id: int, hard: int = 0) -> None:
    def run(driver, instance):
        driver.reboot_domain(instance.public_id, hard=bool(hard))
        _set_status(instance.pk, Instance.RUNNING)

    _power(instance_id, Instance.REBOOTING, run)


def rebuild_instance(instance_id: int) -> None:
    """Recreate the domain from the (new) image; the guest boots fresh."""

    def run(driver, instance):
        driver.delete_domain(instance.public_id)
        driver.ensure_domain(domain_spec(instance))
        _set_status(instance.pk, Instance.RUNNING, launched_at=timezone.now())

    _power(instance_id, Instance.REBUILDING, run)


def resize_instance(instance_id: int) -> None:
    """Redefine the stopped domain with the new size; it stays stopped."""

    def run(driver, instance):
        driver.redefine_domain(domain_spec(instance))
        _set_status(instance.pk, Instance.STOPPED)

    _power(instance_id, Instance.RESIZING, run)


def move_instance(instance_id: int, source_id: int, target_id: int, power_on: int, source_down: int) -> None:
    """Cold move: remove the domain from the source (skipped when the source is down), define
    it on the target (claimed by the service), power it on if it was running, give the source
    claim back. Each step is idempotent, so a re-run after a crash completes the move."""
    instance = _load(instance_id)
    if instance.status != Instance.MIGRATING:
        return
    source, target = Host.objects.get(pk=source_id), Host.objects.get(pk=target_id)
    try:
        if not source_down:
            get_compute_driver(source.uri).delete_domain(instance.public_id)
        instance.host = target
        driver = get_compute_driver(target.uri)
        if power_on:
            driver.ensure_domain(domain_spec(instance))
        else:
            driver.redefine_domain(domain_spec(instance))
    except DriverError as exc:
        with transaction.atomic():
            scheduler.release(target_id, vcpus=instance.vcpus, ram_mb=instance.ram_mb)
        _set_status(instance_id, Instance.ERROR, f"migration to {target.name} failed: {exc}")
        return
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance_id)
        if locked.host_id == source_id:
            scheduler.release(source_id, vcpus=locked.vcpus, ram_mb=locked.ram_mb)
            locked.host = target
        locked.status = Instance.RUNNING if power_on else Instance.STOPPED
        locked.status_reason = f"moved from {source.name}"
        locked.save(update_fields=["host", "status", "status_reason", "updated_at"])
        services.publish_instance(locked)


IMPORT_TIMEOUT = 60  # seconds without data before a download is abandoned


def import_image(image_id: int, operation_id: int) -> None:
    """Download an image (see services.import_image), reporting progress. A re-run starts the
    download over: a killed worker leaves at most a partial file, removed here first."""
    import urllib.request


    image = Image.objects.get(pk=image_id)
    if image.status not in (Image.QUEUED, Image.SAVING):
        return
    operation = core_services.operation_step(operation_id, step="downloading", progress=1)
    Image.objects.filter(pk=image_id).update(status=Image.SAVING)
    imagestore.remove(image.public_id)
    url = operation.params["url"]

    def chunks(response, total):
        done, reported = 0, 0
        while block := response.read(imagestore.CHUNK):
            done += len(block)
            if total and done * 100 // total >= reported + 10:
                reported = done * 100 // total
                core_services.operation_step(operation_id, step="downloading", progress=min(95, reported))
            yield block

    try:
        with urllib.request.urlopen(url, timeout=IMPORT_TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0)
            info = imagestore.receive(chunks(response, total), imagestore.image_dir(image.public_id) / "disk",
                                      max_bytes=settings.PORTAL_IMAGE_MAX_MB << 20,
                                      expected_sha256=image.checksum_sha256)
    except Exception as exc:  # any failure ends as a readable reason on the image and the operation
        reason = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        Image.objects.filter(pk=image_id).update(status=Image.ERROR, description=f"Import failed: {reason}"[:1000])
        core_services.operation_fail(operation_id, error=reason)
        return
    Image.objects.filter(pk=image_id).update(
        status=Image.ACTIVE, disk_format=info.format, size_bytes=info.size, checksum_sha256=info.sha256,
        disk_file=str(imagestore.image_dir(image.public_id) / "disk"),
        min_disk_gb=-(-info.virtual_size // (1 << 30)),
    )
    core_services.operation_finish(operation_id, result={"format": info.format, "size": info.size}, log="active")


def destroy_instance(instance_id: int) -> None:
    """Remove the domain, give back the host claim and the quota, mark the row deleted."""
    from apps.tenants import quotas

    instance = _load(instance_id)
    if instance.status != Instance.DELETING:
        return
    if instance.host_id:
        try:
            get_compute_driver(instance.host.uri).delete_domain(instance.public_id)
        except DriverError as exc:
            _set_status(instance_id, Instance.ERROR, f"delete failed: {exc}")
            return
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance_id)
        if locked.status != Instance.DELETING:
            return
        if locked.host_id:
            scheduler.release(locked.host_id, vcpus=locked.vcpus, ram_mb=locked.ram_mb)
        quotas.release(locked.tenant, region=locked.region,
                       amounts={"instances": 1, "vcpus": locked.vcpus, "ram_mb": locked.ram_mb})
        locked.status, locked.host, locked.deleted_at = Instance.DELETED, None, timezone.now()
        locked.save(update_fields=["status", "host", "deleted_at", "updated_at"])
        instance_deleted.send(sender=Instance, instance=locked)
        services.publish_instance(locked)
    serial_log_path(instance).unlink(missing_ok=True)


def reconcile_instances() -> dict[str, dict]:
    """Safety net behind the event listener (scheduled): repair drift on every live host."""
    reports = {}
    for host in Host.objects.exclude(state=Host.DOWN):
        try:
            reports[host.name] = services.reconcile_host(host.pk)
        except DriverError as exc:
            reports[host.name] = {"error": [str(exc)]}
    return reports


def capture_image(image_id: int, instance_id: int, operation_id: int) -> None:
    """Copy a temporary snapshot of the instance's root volume into the image store; the image
    turns `active`, or `error` with the reason. A re-run starts the copy over."""
    from apps.storage import services as storage

    image = Image.objects.get(pk=image_id)
    if image.status != Image.SAVING:
        return
    path = imagestore.image_dir(image.public_id) / "disk"
    try:
        root = storage.root_volume(Instance.objects.get(pk=instance_id))
        if root is None:
            raise DomainError("the instance no longer has its root disk")
        path.parent.mkdir(parents=True, exist_ok=True)
        core_services.operation_step(operation_id, step="taking a snapshot", progress=5)
        with storage.temporary_snapshot(root, image.public_id):
            driver = get_storage_driver(root.pool)
            driver.export(root.public_id, str(path), snapshot=image.public_id,
                          progress=core_services.operation_progress(operation_id, "copying the disk", 10, 95))
        info = imagestore.describe(path)
    except Exception as exc:  # any failure ends as a readable reason on the image and the operation
        reason = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
        imagestore.remove(image.public_id)
        Image.objects.filter(pk=image_id).update(status=Image.ERROR, description=f"Capture failed: {reason}"[:1000])
        core_services.operation_fail(operation_id, error=reason)
        return
    Image.objects.filter(pk=image_id).update(status=Image.ACTIVE, disk_format=info.format, disk_file=str(path),
                                             size_bytes=info.size, checksum_sha256=info.sha256)
    core_services.operation_finish(operation_id, result={"format": info.format, "size": info.size}, log="active")
