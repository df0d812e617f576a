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

from apps.compute import cloudinit, imagestore, scheduler, selectors, services
from apps.compute.drivers.base import (
    RUNNING,
    SHUTOFF,
    DiskSpec,
    DomainSpec,
    DriverError,
    KernelBoot,
    MigrationProgress,
)
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


def seed_path(instance: Instance) -> Path:
    return Path(settings.PORTAL_LIBVIRT_DIR) / "seeds" / f"{instance.public_id}.iso"


def _seed_disks(instance: Instance) -> tuple[DiskSpec, ...]:
    """The cloud-init seed as a CD-ROM, written now from the row (so a rebuild, a move or a
    reconcile brings the guest the same one): for images that run cloud-init, whose NoCloud
    datasource then answers at once instead of cloud-init probing for others; and for any
    image given user data or a key pair, which a guest may read without cloud-init."""
    if not (instance.image.cloud_init or instance.user_data or instance.key_pair_id):
        return ()
    path = seed_path(instance)
    cloudinit.write_seed(path, cloudinit.Seed(
        instance_id=instance.public_id, hostname=cloudinit.hostname(instance.name, instance.public_id),
        user_data=instance.user_data, public_keys=(instance.key_pair.public_key,) if instance.key_pair_id else (),
        password_hash=instance.password_hash,
    ))
    # IDE: machine `pc` has its PIIX IDE controller built in (SATA would add an AHCI one). A seed
    # is never hot-plugged, which IDE cannot do.
    return (DiskSpec(path=str(path), format="raw", target="hdc", bus="ide", read_only=True, device="cdrom"),)


def domain_spec(instance: Instance) -> DomainSpec:
    """The domain as the database wants it, with every volume plugged in (the root disk of a
    disk-image instance first), its cloud-init seed and every network interface, so recreating
    or redefining it keeps them."""
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
        arch=image.arch, kernel=kernel, disks=(*storage.instance_disks(instance), *_seed_disks(instance)),
        nics=network.instance_nics(instance), pci_devices=tuple(instance.pci_addresses), **hotplug_room(instance),
        serial_log=str(log),
        vnc_listen=host.management_address, title=instance.name[:64],
        labels=(("tenant", instance.tenant.public_id), ("instance", instance.public_id)),
    )


def hotplug_room(instance: Instance) -> dict[str, int]:
    """How far the domain may grow while it runs: PORTAL_HOTPLUG_MAX_VCPUS/_RAM_MB, never
    beyond what its host has (0 turns hot resize off)."""
    host = instance.host
    vcpus = min(settings.PORTAL_HOTPLUG_MAX_VCPUS, host.vcpus or settings.PORTAL_HOTPLUG_MAX_VCPUS)
    memory_mb = min(settings.PORTAL_HOTPLUG_MAX_RAM_MB, host.memory_mb or settings.PORTAL_HOTPLUG_MAX_RAM_MB)
    return {"max_vcpus": max(vcpus, instance.vcpus), "max_memory_mb": memory_mb if memory_mb > instance.ram_mb else 0}


def _set_status(instance_id: int, status: str, reason: str = "", **fields) -> Instance:
    return record_status(Instance, instance_id, status, reason, publish=services.instance_status_recorded, **fields)


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
    except DriverError as exc:  # the hypervisor refused: another host may not
        _fail_build(instance, operation_id, str(exc), reschedule=True)
        return
    except DomainError as exc:
        _fail_build(instance, operation_id, exc.message)
        return
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance_id)
        if instance.status == Instance.BUILDING:
            instance.status, instance.launched_at = Instance.RUNNING, timezone.now()
            instance.save(update_fields=["status", "launched_at", "updated_at"])
            services.instance_status_recorded(instance)
    core_services.operation_finish(operation_id, result={"host": instance.host.name}, log="running")


def _fail_build(instance: Instance, operation_id: int, reason: str, *, reschedule: bool = False) -> None:
    """The build failed: remove what may exist and give the host claim back. With
    `reschedule` (the hypervisor refused), claim another host the build has not tried and
    build there, PORTAL_BUILD_RESCHEDULES times at most, while the instance has nothing tied
    to the failed host (a boot disk in its dir pool). Otherwise keep the row in `error` (its
    quota counts until the user deletes it, as on public clouds)."""
    from apps.core.models import Operation
    from apps.core.tasks import enqueue_on_commit

    get_compute_driver(instance.host.uri).delete_domain(instance.public_id)
    with transaction.atomic():
        locked = Instance.objects.select_for_update(of=("self",)).select_related("image", "flavor").get(pk=instance.pk)
        operation = Operation.objects.select_for_update().get(pk=operation_id)
        tried = [*operation.params.get("tried_hosts", []), locked.host_id]
        if locked.host_id:
            scheduler.release(locked.host_id, vcpus=locked.vcpus, ram_mb=locked.ram_mb)
        host = None
        if (reschedule and len(tried) <= settings.PORTAL_BUILD_RESCHEDULES
                and selectors.host_bound_volume(locked) is None):
            request = scheduler.request_for(locked, exclude=tuple(tried))
            try:
                host = scheduler.claim(request)
            except DomainError:
                reason += f" (no other host could take it after {len(tried)})"
            else:
                locked.pci_addresses = scheduler.claim_devices(host, request)
        if host is not None:
            operation.params = {**operation.params, "tried_hosts": tried}
            operation.save(update_fields=["params"])
            locked.host, locked.status, locked.status_reason = host, Instance.PENDING, f"Retrying on {host.name}"
            locked.save(update_fields=["host", "status", "status_reason", "pci_addresses", "updated_at"])
            services.instance_status_recorded(locked)
            core_services.operation_step(operation_id, step="rescheduling", progress=5,
                                         log=f"build failed on {instance.host.name}: {reason}; retrying on {host.name}")
            enqueue_on_commit(provision_instance, locked.pk, operation_id, resource=locked)
            return
        locked.host, locked.status, locked.status_reason = None, Instance.ERROR, f"Build failed: {reason}"[:512]
        locked.pci_addresses = []
        locked.save(update_fields=["host", "status", "status_reason", "pci_addresses", "updated_at"])
        services.instance_status_recorded(locked)
    core_services.operation_fail(operation_id, error=reason)


def _power(instance_id: int, expected: str, action) -> None:
    instance = _load(instance_id)
    if instance.status != expected:
        return
    try:
        action(get_compute_driver(instance.host.uri), instance)
    except (DriverError, DomainError) as exc:
        _set_status(instance_id, Instance.ERROR, f"{expected} failed: {getattr(exc, 'message', None) or exc}")


def start_instance(instance_id: int) -> None:
    def run(driver, instance):
        driver.ensure_domain(domain_spec(instance))
        _set_status(instance.pk, Instance.RUNNING)

    _power(instance_id, Instance.STARTING, run)


def _shut_down(driver, name: str, *, force: bool) -> None:
    """ACPI first; power off when the guest has not stopped within PORTAL_STOP_TIMEOUT."""
    if not force:
        driver.stop_domain(name)
        deadline = time.monotonic() + settings.PORTAL_STOP_TIMEOUT
        while time.monotonic() < deadline and driver.domain_info(name).state != SHUTOFF:
            time.sleep(1)
    if driver.domain_info(name).state != SHUTOFF:
        driver.stop_domain(name, force=True)


def stop_instance(instance_id: int, force: int = 0) -> None:
    def run(driver, instance):
        _shut_down(driver, instance.public_id, force=bool(force))
        _set_status(instance.pk, Instance.STOPPED)

    _power(instance_id, Instance.STOPPING, run)


def recycle_instance(instance_id: int) -> None:
    """Shut the deleted instance down and leave it in the recycle bin (see services)."""
    from apps.core.models import PlatformSettings

    def run(driver, instance):
        _shut_down(driver, instance.public_id, force=False)
        hours = PlatformSettings.load().recycle_bin_hours
        _set_status(instance.pk, Instance.RECYCLED, f"In the recycle bin for {hours} h", recycled_at=timezone.now())

    _power(instance_id, Instance.RECYCLING, run)


def reboot_instance(instance_id: int, hard: int = 0) -> None:
    def run(driver, instance):
        driver.reboot_domain(instance.public_id, hard=bool(hard))
        _set_status(instance.pk, Instance.RUNNING)

    _power(instance_id, Instance.REBOOTING, run)


def rebuild_instance(instance_id: int) -> None:
    """Recreate the domain from the (new) image; the guest boots fresh."""

    def run(driver, instance):
        driver.delete_domain(instance.public_id)
        if instance.image.boot == Image.DISK:
            from apps.storage import services as storage

            storage.ensure_root_volume(instance, reimage=True)
        driver.ensure_domain(domain_spec(instance))
        _set_status(instance.pk, Instance.RUNNING, launched_at=timezone.now())

    _power(instance_id, Instance.REBUILDING, run)


def resize_instance(instance_id: int, live: int = 0) -> None:
    """Grow the running guest in place (`live`), or redefine the stopped domain with the new
    size (it stays stopped)."""

    def run(driver, instance):
        if live:
            driver.hot_resize(instance.public_id, vcpus=instance.vcpus, memory_mb=instance.ram_mb)
            _set_status(instance.pk, Instance.RUNNING)
        else:
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
        _move_failed(instance_id, target_id, Instance.ERROR, f"migration to {target.name} failed: {exc}")
        return
    _moved(instance_id, source_id, target, Instance.RUNNING if power_on else Instance.STOPPED,
           f"moved from {source.name}")


def _moved(instance_id: int, source_id: int, target: Host, status: str, reason: str) -> None:
    """The domain is on the target: the instance follows it, and the source claim is given
    back (once: a re-run finds the instance on the target already)."""
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance_id)
        if locked.host_id == source_id:
            scheduler.release(source_id, vcpus=locked.vcpus, ram_mb=locked.ram_mb)
            locked.host = target
        locked.status, locked.status_reason = status, reason
        locked.save(update_fields=["host", "status", "status_reason", "updated_at"])
        services.instance_status_recorded(locked)


def _move_failed(instance_id: int, target_id: int, status: str, reason: str) -> None:
    """The move did not happen: the target claim is given back (once) and the instance says why."""
    with transaction.atomic():
        locked = Instance.objects.select_for_update().get(pk=instance_id)
        if locked.status != Instance.MIGRATING:
            return
        scheduler.release(target_id, vcpus=locked.vcpus, ram_mb=locked.ram_mb)
        locked.status, locked.status_reason = status, reason[:512]
        locked.save(update_fields=["status", "status_reason", "updated_at"])
        services.instance_status_recorded(locked)


def _runs_on(driver, name: str) -> bool:
    """Whether the domain runs on the driver's host (False when missing or the host is silent)."""
    try:
        return driver.domain_info(name).state == RUNNING
    except DriverError:
        return False


def live_migrate_instance(instance_id: int, source_id: int, target_id: int, operation_id: int) -> None:
    """Live migration (services.migrate_instance): the guest's memory is copied to the target
    (claimed by the service) while it runs, the copy's progress shown in the operation. A
    re-run after a dead worker looks where the domain is: running on the target, the move is
    done (a copy left paused on the source goes); still on the source, it migrates again.
    The source claim is given back once the domain left it; a failure leaves the guest running
    on the source and gives the target claim back."""
    instance = _load(instance_id)
    if instance.status != Instance.MIGRATING:
        return
    source, target = Host.objects.get(pk=source_id), Host.objects.get(pk=target_id)
    here, there = get_compute_driver(source.uri), get_compute_driver(target.uri)
    name, started, reports = instance.public_id, time.monotonic(), []

    def report(progress: MigrationProgress) -> None:
        """Each new percent or pass of the copy into the operation (libvirt is read twice a second)."""
        seen = {(p.percent, p.iteration) for p in reports}
        reports.append(progress)
        if progress.downtime_ms is None and (progress.percent, progress.iteration) not in seen:
            left = f"{progress.remaining_bytes >> 20} of {progress.total_bytes >> 20} MiB left"
            core_services.operation_step(operation_id, step=f"copying memory: {left}, pass {progress.iteration}",
                                         progress=5 + 90 * progress.percent // 100)

    try:
        if not _runs_on(there, name):
            if here.domain_info(name).state == RUNNING:  # NotFound: the guest is on neither host
                there.delete_domain(name)  # the incoming copy of an attempt whose worker died, if any
            instance.host = target
            domain_spec(instance)  # the target gets what the guest opens there: RBD keys, seed, log folder
            core_services.operation_step(operation_id, step="copying memory", progress=5,
                                         log=f"from {source.name} to {target.name}")
            here.migrate_domain(name, there, live=True, address=target.management_address,
                                timeout=settings.PORTAL_LIVE_MIGRATION_TIMEOUT, progress=report)
        here.delete_domain(name)  # gone already, unless a dead worker left it paused after the switch-over
    except DriverError as exc:
        # The operation first: a worker dying between the two leaves the row migrating, for a re-run.
        core_services.operation_fail(operation_id, error=str(exc))
        if _runs_on(here, name):
            _move_failed(instance_id, target_id, Instance.RUNNING,
                         f"live migration to {target.name} failed: {exc}; still running on {source.name}")
        else:
            _move_failed(instance_id, target_id, Instance.ERROR, f"live migration to {target.name} failed: {exc}")
        return
    seconds = round(time.monotonic() - started, 1)
    downtime = reports[-1].downtime_ms if reports else None
    core_services.operation_finish(operation_id, result={"target": target.name, "seconds": seconds,
                                                         "downtime_ms": downtime},
                                   log=f"running on {target.name} after {seconds} s, paused {downtime} ms")
    _moved(instance_id, source_id, target, Instance.RUNNING, f"live-migrated from {source.name}")


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
        services.instance_status_recorded(locked)
    serial_log_path(instance).unlink(missing_ok=True)
    seed_path(instance).unlink(missing_ok=True)


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
