"""Writers of the compute inventory: hosts (operators), flavors (operators), images."""

from __future__ import annotations

import json
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from django.conf import settings

from apps.compute import cloudinit, imagestore, scheduler, selectors
from apps.compute.drivers.base import DriverError, HostCapacity
from apps.compute.hypervisors import get_compute_driver
from apps.compute.models import Cluster, Flavor, Host, Image, Instance, InstanceGroup, Region
from apps.core import events, permissions
from apps.core.actor import Actor
from apps.core.audit import audited
from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.validation import clean_name, lookup
from apps.tenants.services import require_operator

# --- regions and clusters -----------------------------------------------------------------

@audited("region.create", area="compute")
def create_region(actor: Actor, *, code: str, name: str) -> Region:
    require_operator(actor)
    if Region.objects.filter(code=code).exists():
        raise Conflict(f"Region {code} exists.", fields={"code": ["Already used."]})
    return Region.objects.create(code=code, name=clean_name(name))


@audited("cluster.create", area="compute")
def create_cluster(actor: Actor, *, region: Region, code: str, name: str, tags=(), virt_type: str = "auto") -> Cluster:
    require_operator(actor)
    if Cluster.objects.filter(region=region, code=code).exists():
        raise Conflict(f"Cluster {code} exists in {region.code}.", fields={"code": ["Already used."]})
    return Cluster.objects.create(region=region, code=code, name=clean_name(name), tags=list(tags), virt_type=virt_type)


# --- hosts --------------------------------------------------------------------------------

def _apply_capacity(host: Host, capacity: HostCapacity) -> None:
    host.hostname = capacity.hostname
    host.arch = capacity.arch
    host.cpu_model = capacity.cpu_model
    host.vcpus = capacity.vcpus
    host.memory_mb = capacity.memory_mb
    host.numa_nodes = capacity.numa_nodes
    host.kvm_usable = capacity.kvm_usable
    host.pci_devices = [vars(d) for d in capacity.pci_devices]
    host.hypervisor_version = capacity.hypervisor_version
    host.heartbeat_at = timezone.now()


@audited("host.add", area="compute")
def add_host(actor: Actor, *, cluster: Cluster, name: str, uri: str, management_address: str = "127.0.0.1",
             cpu_allocation_ratio=None, ram_allocation_ratio=None) -> Host:
    """Register a hypervisor: connect to its libvirt and read its capacity first, so a host
    that cannot be reached is refused rather than half-added."""
    require_operator(actor)
    name = clean_name(name)
    if Host.objects.filter(uri=uri).exists() or Host.objects.filter(name=name).exists():
        raise Conflict("A host with this name or URI exists.", fields={"uri": ["Already registered."]})
    try:
        capacity = get_compute_driver(uri).host_capacity()
    except DriverError as exc:
        raise ValidationFailed(f"Cannot reach libvirt at {uri}: {exc}", fields={"uri": [str(exc)]})
    host = Host(cluster=cluster, name=name, uri=uri, management_address=management_address)
    if cpu_allocation_ratio is not None:
        host.cpu_allocation_ratio = cpu_allocation_ratio
    if ram_allocation_ratio is not None:
        host.ram_allocation_ratio = ram_allocation_ratio
    _apply_capacity(host, capacity)
    host.save()
    return host


@audited("host.update", area="compute")
def update_host(actor: Actor, *, host: Host, management_address: str, virt_type: str, cpu_allocation_ratio,
                ram_allocation_ratio, reserved_memory_mb: int) -> Host:
    """Operator settings of a host. Lower ratios never evict running instances; they only
    leave less room for new ones."""
    require_operator(actor)
    if min(cpu_allocation_ratio, ram_allocation_ratio) <= 0:
        raise ValidationFailed("Allocation ratios must be positive.", fields={"cpu_allocation_ratio": ["> 0."]})
    host = Host.objects.select_for_update().get(pk=host.pk)
    host.management_address, host.virt_type = management_address, virt_type
    host.cpu_allocation_ratio, host.ram_allocation_ratio = cpu_allocation_ratio, ram_allocation_ratio
    host.reserved_memory_mb = reserved_memory_mb
    host.save(update_fields=["management_address", "virt_type", "cpu_allocation_ratio", "ram_allocation_ratio",
                             "reserved_memory_mb"])
    return host


@audited("host.set_state", area="compute")
def set_host_state(actor: Actor, *, host: Host, state: str, reason: str = "") -> Host:
    """Enable, disable (no new instances) or put in maintenance; `down` is set by heartbeats."""
    require_operator(actor)
    if state not in (Host.ENABLED, Host.DISABLED, Host.MAINTENANCE):
        raise ValidationFailed("Unknown host state.", fields={"state": ["enabled, disabled or maintenance."]})
    host = Host.objects.select_for_update().get(pk=host.pk)
    host.state, host.state_reason = state, reason.strip()
    host.save(update_fields=["state", "state_reason"])
    return host


@audited("host.remove", area="compute")
def remove_host(actor: Actor, *, host: Host) -> Host:
    """Forget a host that carries no instances (drain it first)."""
    require_operator(actor)
    host = Host.objects.select_for_update().get(pk=host.pk)
    if host.instances_count:
        raise Conflict(f"Host {host.name} still carries {host.instances_count} instances; drain it first.")
    host.delete()
    return host


def refresh_host(host_id: int, *, down_after_seconds: int) -> Host:
    """Heartbeat (a task, not a user action): re-read capacity; a host whose libvirt stopped
    answering for longer than the grace period becomes `down`, and comes back when it answers."""
    host = Host.objects.get(pk=host_id)
    try:
        capacity = get_compute_driver(host.uri).host_capacity()
    except DriverError as exc:
        with transaction.atomic():
            host = Host.objects.select_for_update().get(pk=host_id)
            silent = (timezone.now() - host.heartbeat_at).total_seconds() if host.heartbeat_at else None
            if host.state != Host.DOWN and (silent is None or silent > down_after_seconds):
                host.state, host.state_reason = Host.DOWN, f"libvirt not answering: {exc}"
                host.save(update_fields=["state", "state_reason"])
        return host
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host_id)
        _apply_capacity(host, capacity)
        if host.state == Host.DOWN:
            host.state, host.state_reason = Host.ENABLED, ""
        host.save()
    return host


# Periodic or hypervisor-driven, not user actions (what they change is recorded as "system").
UNAUDITED = ("refresh_host", "apply_domain_event", "reconcile_host", "instance_status_recorded",
             "purge_recycled_instances")


# --- flavors ------------------------------------------------------------------------------

@audited("flavor.create", area="compute")
def create_flavor(actor: Actor, *, name: str, vcpus: int, ram_mb: int, disk_gb: int = 0, is_public: bool = True,
                  description: str = "", gpu_count: int = 0, gpu_type: str = "", extra_specs=None) -> Flavor:
    require_operator(actor)
    errors = {}
    if vcpus < 1:
        errors["vcpus"] = ["At least 1."]
    if ram_mb < 64:
        errors["ram_mb"] = ["At least 64 MiB."]
    if gpu_count and not gpu_type:
        errors["gpu_type"] = ["Say which GPU (PCI vendor:product)."]
    if errors:
        raise ValidationFailed("The flavor is not valid.", fields=errors)
    if Flavor.objects.filter(name=name).exists():
        raise Conflict(f"Flavor {name} exists.", fields={"name": ["Already used."]})
    return Flavor.objects.create(
        name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb, is_public=is_public, description=description,
        gpu_count=gpu_count, gpu_type=gpu_type, extra_specs=extra_specs or {},
    )


@audited("flavor.update", area="compute")
def update_flavor(actor: Actor, *, flavor: Flavor, description: str, is_public: bool, is_active: bool) -> Flavor:
    """Sizes are immutable (instances and prices refer to them); offer, retire, describe."""
    require_operator(actor)
    flavor = Flavor.objects.select_for_update().get(pk=flavor.pk)
    flavor.description, flavor.is_public, flavor.is_active = description, is_public, is_active
    flavor.save(update_fields=["description", "is_public", "is_active"])
    return flavor


# --- images -------------------------------------------------------------------------------


def _seed_files(directory: Path, roles: tuple[str, ...]) -> tuple[dict, dict]:
    """The manifest.json of a seed image folder (scripts/build_tiny_image.sh) and its files for
    `roles`, each checked against its SHA-256."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"No readable manifest in {directory.name}: {exc}")
    files = {}
    for role in roles:
        entry = manifest.get(role)
        path = directory / entry["name"] if entry else None
        if path is None or not path.is_file() or imagestore.sha256_of(path) != entry["sha256"]:
            raise ValidationFailed(f"The {role} of {directory.name} is missing or does not match its checksum.")
        files[role] = (path, entry)
    return manifest, files


def _registered(rows, manifest: dict) -> Image | None:
    """The image registered from these files before, if any, following what the manifest says
    its guest reads now (a rebuilt initramfs may have learnt the cloud-init seed)."""
    image = rows.filter(deleted_at__isnull=True).first()
    if image is not None and image.cloud_init != manifest.get("cloud_init", False):
        image.cloud_init = manifest.get("cloud_init", False)
        image.save(update_fields=["cloud_init"])
    return image


@audited("image.register_kernel", area="compute")
def register_kernel_image(actor: Actor, *, name: str, directory: Path, os_distro: str = "", os_version: str = "",
                          visibility: str = Image.PUBLIC) -> Image:
    """A platform image that boots a kernel + initrd directly (no disk), from a folder with a
    manifest.json (files, sha256, cmdline, cloud_init). Registering the same files again returns
    the existing image."""
    require_operator(actor)
    manifest, files = _seed_files(directory, ("kernel", "initrd"))
    existing = _registered(Image.objects.filter(
        boot=Image.KERNEL, kernel_file=str(files["kernel"][0]), initrd_file=str(files["initrd"][0]),
        checksum_sha256=files["kernel"][1]["sha256"],
    ), manifest)
    if existing is not None:
        return existing
    return Image.objects.create(
        name=clean_name(name), visibility=visibility, status=Image.ACTIVE, os_type="linux", os_distro=os_distro,
        os_version=os_version or manifest.get("kernel_version", ""), arch=manifest.get("arch", "x86_64"),
        boot=Image.KERNEL, kernel_file=str(files["kernel"][0]), initrd_file=str(files["initrd"][0]),
        cmdline=manifest.get("cmdline", ""), size_bytes=sum(entry["size"] for _, entry in files.values()),
        checksum_sha256=files["kernel"][1]["sha256"], min_ram_mb=manifest.get("min_ram_mb", 96),
        cloud_init=manifest.get("cloud_init", False), created_by=actor.user,
    )


@audited("image.register_disk", area="compute")
def register_disk_image(actor: Actor, *, name: str, directory: Path, os_distro: str = "", os_version: str = "",
                        visibility: str = Image.PUBLIC) -> Image:
    """A platform disk image (instances boot from a copy-on-write clone of it), from a seed
    image folder's manifest entry `disk`; the file stays where it is."""
    require_operator(actor)
    manifest, files = _seed_files(directory, ("disk",))
    path, entry = files["disk"]
    existing = _registered(Image.objects.filter(boot=Image.DISK, disk_file=str(path), checksum_sha256=entry["sha256"]),
                           manifest)
    if existing is not None:
        return existing
    return Image.objects.create(
        name=clean_name(name), visibility=visibility, status=Image.ACTIVE, os_type="linux", os_distro=os_distro,
        os_version=os_version or manifest.get("kernel_version", ""), arch=manifest.get("arch", "x86_64"),
        boot=Image.DISK, disk_format=entry.get("format", "qcow2"), disk_file=str(path), size_bytes=entry["size"],
        checksum_sha256=entry["sha256"], min_disk_gb=-(-entry.get("virtual_size", 1) // (1 << 30)),
        min_ram_mb=manifest.get("min_ram_mb", 96), cloud_init=manifest.get("cloud_init", False), created_by=actor.user,
    )


@audited("image.upload", area="compute")
def upload_image(actor: Actor, *, name: str, chunks, checksum_sha256: str = "", os_type: str = "linux",
                 os_distro: str = "", os_version: str = "", arch: str = "x86_64", min_disk_gb: int = 0,
                 min_ram_mb: int = 64, description: str = "") -> Image:
    """A tenant's private disk image from an uploaded stream: size limit, SHA-256 (checked
    against `checksum_sha256` when given), format detected from the content. The image row is
    written only once the file is complete and valid: a refused upload leaves nothing."""
    from apps.core.ids import new_public_id
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, "compute", "create")
    name = clean_name(name)
    if arch not in ("x86_64", "aarch64"):
        raise ValidationFailed("Unknown architecture.", fields={"arch": ["x86_64 or aarch64."]})
    quotas.consume(tenant, amounts={"images": 1})
    public_id = new_public_id(Image.public_id_prefix)
    folder = imagestore.image_dir(public_id)
    info = imagestore.receive(chunks, folder / "disk", max_bytes=settings.PORTAL_IMAGE_MAX_MB << 20,
                              expected_sha256=checksum_sha256)
    try:
        min_disk = max(min_disk_gb, -(-info.virtual_size // (1 << 30)))
        return Image.objects.create(
            public_id=public_id, owner=tenant, name=name, description=description, visibility=Image.PRIVATE,
            status=Image.ACTIVE, os_type=os_type, os_distro=os_distro, os_version=os_version, arch=arch,
            boot=Image.DISK, disk_format=info.format, disk_file=str(folder / "disk"), size_bytes=info.size,
            checksum_sha256=info.sha256, min_disk_gb=min_disk, min_ram_mb=min_ram_mb, created_by=actor.user,
        )
    except BaseException:
        imagestore.remove(public_id)
        raise


@audited("image.import", area="compute")
def import_image(actor: Actor, *, name: str, url: str, checksum_sha256: str = "", os_type: str = "linux",
                 os_distro: str = "", os_version: str = "", arch: str = "x86_64", min_ram_mb: int = 64,
                 description: str = "") -> Image:
    """Import a disk image from a URL the operators allow: the image is `queued` at once and
    a task downloads it (progress in an operation), checks it like an upload and makes it
    `active` — or `error` with the reason."""
    from apps.compute import tasks
    from apps.core.services import start_operation
    from apps.core.tasks import enqueue_on_commit
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, "compute", "create")
    allowed = settings.PORTAL_IMAGE_IMPORT_ALLOWED
    if not allowed:
        raise Conflict("Image import is not enabled on this platform.", code="unsupported")
    if not any(url.startswith(prefix) for prefix in allowed):
        raise ValidationFailed("This URL is not an allowed image source.",
                               fields={"url": [f"Allowed sources: {', '.join(allowed)}"]})
    if arch not in ("x86_64", "aarch64"):
        raise ValidationFailed("Unknown architecture.", fields={"arch": ["x86_64 or aarch64."]})
    quotas.consume(tenant, amounts={"images": 1})
    image = Image.objects.create(
        owner=tenant, name=clean_name(name), description=description, visibility=Image.PRIVATE,
        status=Image.QUEUED, os_type=os_type, os_distro=os_distro, os_version=os_version, arch=arch, boot=Image.DISK,
        min_ram_mb=min_ram_mb, checksum_sha256=checksum_sha256.lower(), created_by=actor.user,
    )
    operation = start_operation(actor, area="compute", kind="image.import", name=f"Import {image.name}",
                                resource_id=image.public_id, params={"url": url})
    enqueue_on_commit(tasks.import_image, image.pk, operation.pk)
    return image


@audited("image.create_from_instance", area="compute")
def create_image_from_instance(actor: Actor, *, instance: Instance, name: str, description: str = "") -> Image:
    """A private disk image of the instance's root disk as it is now (a running guest's QEMU
    takes the snapshot it is copied from), made by a task with progress. Instances that boot a
    kernel directly have no disk to copy: 409."""
    from apps.compute import tasks
    from apps.core.services import start_operation
    from apps.core.tasks import enqueue_on_commit
    from apps.storage.services import root_volume
    from apps.tenants import quotas
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require(actor, instance, "create_image")
    permissions.require_area(actor, "compute", "create")
    if instance.status not in (Instance.RUNNING, Instance.STOPPED):
        raise Conflict(f"Instance {instance.public_id} is {instance.status}: make images of running or stopped "
                       "instances.", code="invalid_state")
    root = root_volume(instance)
    if root is None:
        raise Conflict(f"{instance.public_id} boots a kernel directly and has no disk to make an image of.",
                       code="unsupported")
    quotas.consume(tenant, amounts={"images": 1})
    source = instance.image
    image = Image.objects.create(
        owner=tenant, name=clean_name(name), description=description.strip()[:1000] or f"From {instance.public_id}",
        visibility=Image.PRIVATE, status=Image.SAVING, os_type=source.os_type, os_distro=source.os_distro,
        os_version=source.os_version, arch=source.arch, boot=Image.DISK, min_disk_gb=root.size_gb,
        min_ram_mb=source.min_ram_mb, cloud_init=source.cloud_init, guest_agent=source.guest_agent,
        created_by=actor.user,
    )
    operation = start_operation(actor, area="compute", kind="image.capture", name=f"Image of {instance.name}",
                                resource_id=image.public_id, params={"instance": instance.public_id})
    enqueue_on_commit(tasks.capture_image, image.pk, instance.pk, operation.pk)
    return image


@audited("image.delete", area="compute")
def delete_image(actor: Actor, *, image: Image) -> Image:
    """Delete a tenant's own image; refused while instances use it."""
    from apps.tenants import quotas

    image = Image.objects.select_for_update().get(pk=image.pk)
    if image.owner_id is None or not Image.objects.for_actor(actor, "delete").filter(pk=image.pk).exists():
        raise PermissionDenied("Only the owning tenant deletes an image.")
    users = Instance.objects.filter(image=image, deleted_at__isnull=True).count()
    if users:
        raise Conflict(f"{users} instances use image {image.public_id}.")
    image.deleted_at = timezone.now()
    image.save(update_fields=["deleted_at"])
    quotas.release(image.owner, amounts={"images": 1})
    transaction.on_commit(lambda: imagestore.remove(image.public_id))
    return image


# --- instances ----------------------------------------------------------------------------

MAX_BATCH = 20
USER_DATA_LIMIT = 16 * 1024  # bytes, as EC2
BILLING_MODES = ("on_demand", "monthly", "yearly")  # apps.billing.models.Order's modes
MAX_PERIODS = 36


def _instance_usage(flavor: Flavor, count: int = 1, *, boot_disk: bool = False) -> dict[str, int]:
    """Quota an instance takes; one booting from a disk image also takes its root volume."""
    usage = {"instances": count, "vcpus": flavor.vcpus * count, "ram_mb": flavor.ram_mb * count}
    if boot_disk:
        usage.update(volumes=count, volume_gb=flavor.disk_gb * count)
    return usage


@audited("instance.create", area="compute")
def create_instances(actor: Actor, *, name: str, flavor: str, image: str, key_pair: str | None = None,
                     count: int = 1, availability_zone: str | None = None, user_data: str = "",
                     description: str = "", isolation_group: str | None = None, subnet: str | None = None,
                     security_groups: list[str] | None = None, ip_address: str | None = None,
                     password: str = "", billing_mode: str = "on_demand", periods: int = 1,
                     auto_renew: bool = False) -> list[Instance]:
    """Create `count` instances: validate, check the wallet, count quota, place each on a host
    (claims under row locks), write them `pending` with an operation and their order, and queue
    their provisioning on commit. With a `subnet`, each gets its primary interface there
    (`security_groups`, default the VPC's default group; `ip_address` for a single instance). A
    root `password` (images that run cloud-init) is kept only as a hash and reaches the guest in
    its seed (cloudinit.py). On demand (`billing_mode`), a priced flavor must have its first
    hours covered (402 before anything is written); `monthly` or `yearly` buys `periods` of
    each instance now (402 before anything is written when the wallet cannot pay them), renewed
    at expiry with `auto_renew`."""
    from apps.billing import metering
    from apps.network import services as network
    from apps.compute.tasks import provision_instance
    from apps.core.services import start_operation
    from apps.core.tasks import enqueue_on_commit
    from apps.tenants import quotas
    from apps.tenants.models import KeyPair
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, "compute", "create")
    name = clean_name(name)
    errors = {}
    if not 1 <= count <= MAX_BATCH:
        errors["count"] = [f"Between 1 and {MAX_BATCH}."]
    if len(user_data.encode()) > USER_DATA_LIMIT:
        errors["user_data"] = [f"At most {USER_DATA_LIMIT // 1024} KiB."]
    if password and (problems := cloudinit.password_errors(password)):
        errors["password"] = problems
    if ip_address and count != 1:
        errors["ip_address"] = ["One address fits one instance; leave it out for a batch."]
    if (security_groups is not None or ip_address) and not subnet:
        errors["subnet"] = ["Security groups and addresses need a subnet."]
    if billing_mode not in BILLING_MODES:
        errors["billing_mode"] = [f"One of {', '.join(BILLING_MODES)}."]
    elif billing_mode != BILLING_MODES[0] and not (isinstance(periods, int) and 1 <= periods <= MAX_PERIODS):
        errors["periods"] = [f"Between 1 and {MAX_PERIODS}."]
    if errors:
        raise ValidationFailed("The request is not valid.", fields=errors)
    flavor_obj = lookup(actor, Flavor.objects, flavor, field="flavor", label="flavor", key="name")
    image_obj = lookup(actor, Image.objects, image, field="image", label="image")
    key_pair_obj = lookup(actor, KeyPair.objects, key_pair, field="key_pair", label="key pair") if key_pair else None
    group = None
    if isolation_group:
        group = lookup(actor, InstanceGroup.objects, isolation_group, field="isolation_group", label="isolation group")
        # Creates into one group queue here, so two of them never pick the same host unseen.
        group = InstanceGroup.objects.select_for_update().get(pk=group.pk)
    zone = None
    if availability_zone:
        zone = Cluster.objects.filter(code=availability_zone, region__code=settings.PORTAL_DEFAULT_REGION).first()
        if zone is None:
            raise NotFound(f"No availability zone {availability_zone}.", fields={"availability_zone": ["Unknown."]})
    _check_fit(flavor_obj, image_obj)
    if password and not image_obj.cloud_init:
        # Only cloud-init reads the seed's chpasswd; a guest agent sets passwords of running guests.
        hint = " Set it with reset-password once the instance runs." if image_obj.guest_agent else ""
        raise ValidationFailed(f"Image {image_obj.name} runs no cloud-init.{hint}",
                               fields={"password": ["This image cannot take a password at create."]})
    password_hash = cloudinit.hash_password(password) if password else ""
    subnet_obj = network.resolve_subnet(actor, subnet) if subnet else None
    if subnet_obj and subnet_obj.vpc.region.code != settings.PORTAL_DEFAULT_REGION:
        raise ValidationFailed(f"Subnet {subnet_obj.public_id} is in region {subnet_obj.vpc.region.code}.",
                               fields={"subnet": [f"Not in region {settings.PORTAL_DEFAULT_REGION}."]})

    metering.require_funds(tenant, metering.estimate_instance(tenant, flavor=flavor_obj, count=count,
                                                              region=settings.PORTAL_DEFAULT_REGION),
                           term=billing_mode, periods=periods)
    quotas.consume(tenant, region=settings.PORTAL_DEFAULT_REGION,
                   amounts=_instance_usage(flavor_obj, count, boot_disk=image_obj.boot == Image.DISK))
    request = scheduler.Request(vcpus=flavor_obj.vcpus, ram_mb=flavor_obj.ram_mb, arch=image_obj.arch,
                                region=settings.PORTAL_DEFAULT_REGION, cluster=zone, group=group,
                                gpu_count=flavor_obj.gpu_count, gpu_type=flavor_obj.gpu_type)
    created = []
    for n in range(count):
        host = scheduler.claim(request)
        instance = Instance.objects.create(
            tenant=tenant, created_by=actor.user, name=name if count == 1 else f"{name}-{n + 1}",
            description=description, region=settings.PORTAL_DEFAULT_REGION, availability_zone=zone, host=host,
            flavor=flavor_obj, image=image_obj, key_pair=key_pair_obj, group=group, vcpus=flavor_obj.vcpus,
            ram_mb=flavor_obj.ram_mb, user_data=user_data, password_hash=password_hash,
            pci_addresses=scheduler.claim_devices(host, request),
        )
        if subnet_obj:
            network.create_instance_port(actor, instance=instance, subnet=subnet_obj,
                                         security_groups=security_groups, ip_address=ip_address)
        _buy(actor, instance, billing_mode=billing_mode, periods=periods, auto_renew=auto_renew)
        operation = start_operation(actor, area="compute", kind="instance.create", name=f"Create {instance.name}",
                                    resource_id=instance.public_id)
        enqueue_on_commit(provision_instance, instance.pk, operation.pk, resource=instance)
        instance_status_recorded(instance)
        created.append(instance)
    return created


def _buy(actor: Actor, instance: Instance, *, billing_mode: str, periods: int, auto_renew: bool) -> None:
    """The new instance's order: on demand (usage bills it once it runs), or its prepaid periods."""
    from apps.billing import metering

    if billing_mode == BILLING_MODES[0]:
        metering.order_created(actor, instance)
        return
    from apps.billing import subscription_services

    [charge] = metering.instance_charges(instance.flavor)
    subscription_services.subscribe(actor, resource=instance, product_code=charge.product_code,
                                    quantity=charge.quantity, term=billing_mode, periods=periods,
                                    auto_renew=auto_renew, idempotency_key=f"subscribe:{instance.public_id}")


def _check_fit(flavor: Flavor, image: Image) -> None:
    problems = {}
    if image.status != Image.ACTIVE:
        problems["image"] = [f"Image {image.public_id} is {image.status}, not active."]
    elif image.boot == Image.DISK and not flavor.disk_gb:
        problems["flavor"] = [f"{image.name} boots from a disk; {flavor.name} has no root disk."]
    if flavor.ram_mb < image.min_ram_mb:
        problems["flavor"] = [f"{image.name} needs at least {image.min_ram_mb} MiB of RAM; {flavor.name} has "
                              f"{flavor.ram_mb}."]
    if image.min_disk_gb and flavor.disk_gb < image.min_disk_gb:
        problems["flavor"] = [f"{image.name} needs a {image.min_disk_gb} GB disk; {flavor.name} has {flavor.disk_gb}."]
    if problems:
        raise ValidationFailed(" ".join(m for ms in problems.values() for m in ms), fields=problems)


def instance_status_recorded(instance: Instance) -> None:
    """Every recorded status of an instance passes here (services, tasks, hypervisor events,
    failed tasks): meter it (running is billed, stopped, error, recycled and deleted are not:
    apps.billing.metering), and tell the tenant's open pages (on commit)."""
    from apps.billing import metering

    metering.instance_changed(instance)
    events.publish(instance.tenant_id, {"type": "instance", "id": instance.public_id, "status": instance.status,
                                        "reason": instance.status_reason})


def _transition(actor: Actor, instance: Instance, action: str, allowed: tuple[str, ...], new_status: str, *,
                permission: str = "") -> Instance:
    """Check the action (or `permission`) against role/grants and the state machine, then move
    to `new_status`."""
    permissions.require(actor, instance, permission or action)
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if instance.status not in allowed:
        raise Conflict(f"Cannot {action} instance {instance.public_id} while it is {instance.status}.",
                       code="invalid_state")
    instance.status, instance.status_reason = new_status, ""
    instance.save(update_fields=["status", "status_reason", "updated_at"])
    instance_status_recorded(instance)
    return instance


@audited("instance.start", area="compute")
def start_instance(actor: Actor, *, instance: Instance) -> Instance:
    from apps.billing import policy
    from apps.compute import tasks
    from apps.core.tasks import enqueue_on_commit

    policy.check_can_start(actor, instance)
    instance = _transition(actor, instance, "start", (Instance.STOPPED,), Instance.STARTING)
    enqueue_on_commit(tasks.start_instance, instance.pk, resource=instance)
    return instance


@audited("instance.stop", area="compute")
def stop_instance(actor: Actor, *, instance: Instance, force: bool = False) -> Instance:
    """ACPI shutdown, powered off by force after PORTAL_STOP_TIMEOUT (or at once with `force`)."""
    from apps.compute import tasks
    from apps.core.tasks import enqueue_on_commit

    instance = _transition(actor, instance, "stop", (Instance.RUNNING,), Instance.STOPPING)
    enqueue_on_commit(tasks.stop_instance, instance.pk, int(force), resource=instance)
    return instance


@audited("instance.reboot", area="compute")
def reboot_instance(actor: Actor, *, instance: Instance, hard: bool = False) -> Instance:
    from apps.compute import tasks
    from apps.core.tasks import enqueue_on_commit

    instance = _transition(actor, instance, "reboot", (Instance.RUNNING,), Instance.REBOOTING)
    enqueue_on_commit(tasks.reboot_instance, instance.pk, int(hard), resource=instance)
    return instance


@audited("instance.delete", area="compute")
def delete_instance(actor: Actor, *, instance: Instance, force: bool = False) -> Instance:
    """To the recycle bin for PlatformSettings.recycle_bin_hours: shut down, with its host
    claim, addresses, volumes and quota kept, restorable. At once (the domain removed, the
    claim and quota given back by the task) with `force`, when the retention is 0, from the
    recycle bin, or for an instance that is not running or stopped."""
    from apps.compute import tasks
    from apps.core.models import PlatformSettings
    from apps.core.tasks import enqueue_on_commit

    hours = PlatformSettings.load().recycle_bin_hours
    status = Instance.objects.select_for_update().values_list("status", flat=True).get(pk=instance.pk)
    if hours and not force and status in (Instance.RUNNING, Instance.STOPPED):
        instance = _transition(actor, instance, "delete", (Instance.RUNNING, Instance.STOPPED), Instance.RECYCLING)
        enqueue_on_commit(tasks.recycle_instance, instance.pk, resource=instance)
        return instance
    allowed = tuple(s for s, _ in Instance.STATUS_CHOICES if s not in (Instance.DELETING, Instance.DELETED))
    instance = _transition(actor, instance, "delete", allowed, Instance.DELETING)
    enqueue_on_commit(tasks.destroy_instance, instance.pk, resource=instance)
    return instance


@audited("instance.restore", area="compute")
def restore_instance(actor: Actor, *, instance: Instance) -> Instance:
    """Back from the recycle bin, started again (its claim and resources were kept)."""
    from apps.billing import policy
    from apps.compute import tasks
    from apps.core.tasks import enqueue_on_commit

    policy.check_can_start(actor, instance)
    instance = _transition(actor, instance, "restore", (Instance.RECYCLED,), Instance.STARTING, permission="delete")
    instance.recycled_at = None
    instance.save(update_fields=["recycled_at"])
    enqueue_on_commit(tasks.start_instance, instance.pk, resource=instance)
    return instance


def purge_recycled_instances() -> int:
    """Delete the instances whose time in the recycle bin is over (scheduled)."""
    from apps.compute import tasks
    from apps.core.tasks import purge_recycle_bin

    return purge_recycle_bin(Instance, delete_task=tasks.destroy_instance, publish=instance_status_recorded)


@audited("instance_group.create", area="compute")
def create_instance_group(actor: Actor, *, name: str, policy: str) -> InstanceGroup:
    from apps.tenants.services import require_writable_tenant

    tenant = require_writable_tenant(actor)
    permissions.require_area(actor, "compute", "create")
    if policy not in (InstanceGroup.AFFINITY, InstanceGroup.ANTI_AFFINITY):
        raise ValidationFailed("Unknown policy.", fields={"policy": ["affinity or anti-affinity."]})
    return InstanceGroup.objects.create(tenant=tenant, name=clean_name(name), policy=policy, created_by=actor.user)


@audited("instance_group.delete", area="compute")
def delete_instance_group(actor: Actor, *, group: InstanceGroup) -> InstanceGroup:
    permissions.require(actor, group, "delete")
    group = InstanceGroup.objects.select_for_update().get(pk=group.pk)
    live = group.instances.filter(deleted_at__isnull=True).count()
    if live:
        raise Conflict(f"Group {group.public_id} still has {live} instances.")
    group.deleted_at = timezone.now()
    group.save(update_fields=["deleted_at"])
    return group


@audited("instance.rebuild", area="compute")
def rebuild_instance(actor: Actor, *, instance: Instance, image: str | None = None) -> Instance:
    """Reinstall from the same or another image of the same boot type: the domain is
    recreated (a disk-image instance's boot volume cloned again from the image; data volumes
    stay attached); the id, size, addresses and host stay. A stopped instance comes back
    running, as after a fresh create."""
    from apps.compute import tasks
    from apps.core.tasks import enqueue_on_commit

    permissions.require(actor, instance, "rebuild")
    new_image = lookup(actor, Image.objects, image, field="image", label="image") if image else instance.image
    flavor = Flavor.objects.get(pk=instance.flavor_id)
    _check_fit(flavor, new_image)
    if new_image.boot != instance.image.boot:
        raise ValidationFailed(f"{instance.public_id} boots from a {instance.image.get_boot_display()}; a rebuild "
                               "keeps that.", fields={"image": [f"Choose a {instance.image.boot} image."]})
    if instance.image.boot == Image.DISK:
        from apps.storage import services as storage

        # The boot disk is cloned again: snapshots inside it would be lost with the old data.
        root = storage.root_volume(instance)
        taken = list(root.snapshots.exclude(status="deleted").values_list("public_id", flat=True)) if root else []
        if taken:
            raise Conflict(f"The boot disk {root.public_id} has snapshots ({', '.join(taken)}); a rebuild replaces "
                           "its data: delete them (or copy them to volumes) first.", code="has_snapshots")
    instance = _transition(actor, instance, "rebuild", (Instance.RUNNING, Instance.STOPPED, Instance.ERROR),
                           Instance.REBUILDING)
    if instance.host_id is None:
        raise Conflict("The instance has no host (its build failed); delete it and create a new one.")
    instance.image = new_image
    instance.save(update_fields=["image"])
    enqueue_on_commit(tasks.rebuild_instance, instance.pk, resource=instance)
    return instance


@audited("instance.resize", area="compute")
def resize_instance(actor: Actor, *, instance: Instance, flavor: str) -> Instance:
    """Change the flavor on the instance's host: quota and host claim follow the difference,
    checked under their row locks. A stopped instance gets its definition redone (it may
    shrink); a running one only grows, in place (vCPUs and memory DIMMs plugged into the
    live guest) within the room its domain was started with. A bigger root disk grows the
    boot volume; root disks never shrink."""
    from apps.billing import metering
    from apps.compute import tasks
    from apps.compute.drivers.base import Unsupported, check_hot_resize
    from apps.core.tasks import enqueue_on_commit
    from apps.tenants import quotas

    permissions.require(actor, instance, "resize")
    new = lookup(actor, Flavor.objects, flavor, field="flavor", label="flavor", key="name")
    locked = Instance.objects.select_for_update(of=("self",)).select_related("image", "host", "flavor").get(
        pk=instance.pk)
    if locked.status not in (Instance.STOPPED, Instance.RUNNING):
        raise Conflict(f"Cannot resize instance {locked.public_id} while it is {locked.status}.",
                       code="invalid_state")
    if new.pk == locked.flavor_id:
        raise ValidationFailed("That is the current flavor.", fields={"flavor": ["Choose another flavor."]})
    _check_fit(new, locked.image)
    if (new.gpu_count, new.gpu_type) != (locked.flavor.gpu_count, locked.flavor.gpu_type):
        raise Conflict(f"{locked.public_id} has {locked.flavor.gpu_count} GPU(s) passed through; a resize keeps "
                       "them: choose a flavor with the same GPUs (or create a new instance).", code="unsupported")
    boot_disk = locked.image.boot == Image.DISK
    if boot_disk and new.disk_gb < locked.flavor.disk_gb:
        raise ValidationFailed(f"Root disks do not shrink: {new.name} has {new.disk_gb} GB, the instance "
                               f"{locked.flavor.disk_gb} GB.", fields={"flavor": ["Choose a flavor with a disk "
                                                                                 "at least as large."]})
    live = locked.status == Instance.RUNNING
    if live:
        try:
            domain = get_compute_driver(locked.host.uri).domain_info(locked.public_id)
            check_hot_resize(domain, vcpus=new.vcpus, memory_mb=new.ram_mb)
        except Unsupported as exc:
            raise Conflict(f"{new.name} cannot be applied to the running instance: {exc}. Stop it to resize it.",
                           code="unsupported")
        except DriverError as exc:
            raise Conflict(f"The host did not answer about {locked.public_id}: {exc}", code="host_error")
    metering.resize_instance(actor, locked, flavor=new, running=live)
    dv, dm = new.vcpus - locked.vcpus, new.ram_mb - locked.ram_mb
    grow = {k: v for k, v in {"vcpus": dv, "ram_mb": dm}.items() if v > 0}
    shrink = {k: -v for k, v in {"vcpus": dv, "ram_mb": dm}.items() if v < 0}
    if grow:
        quotas.consume(locked.tenant, region=locked.region, amounts=grow)
    if shrink:
        quotas.release(locked.tenant, region=locked.region, amounts=shrink)
    host = Host.objects.select_for_update().get(pk=locked.host_id)
    if host.vcpus_used + dv > host.vcpus_capacity or host.memory_mb_used + dm > host.memory_mb_capacity:
        raise Conflict(f"Host {host.name} has no room for {new.name}; no migration is done by a resize.",
                       code="no_valid_host")
    host.vcpus_used += dv
    host.memory_mb_used += dm
    host.save(update_fields=["vcpus_used", "memory_mb_used"])
    if boot_disk and new.disk_gb > locked.flavor.disk_gb:
        from apps.storage import services as storage

        storage.resize_volume(actor, volume=storage.root_volume(locked), size_gb=new.disk_gb)
    locked.flavor, locked.vcpus, locked.ram_mb = new, new.vcpus, new.ram_mb
    locked.status, locked.status_reason = Instance.RESIZING, ""
    locked.save(update_fields=["flavor", "vcpus", "ram_mb", "status", "status_reason", "updated_at"])
    instance_status_recorded(locked)
    enqueue_on_commit(tasks.resize_instance, locked.pk, int(live), resource=locked)
    return locked


@audited("instance.reset_password", area="compute")
def reset_password(actor: Actor, *, instance: Instance, user: str, password: str) -> Instance:
    """Set a guest account's password through the QEMU guest agent (running instances of
    images that run it); other images answer a clear 409."""
    permissions.require(actor, instance, "reset_password")
    if not instance.image.guest_agent:
        raise Conflict(f"Image {instance.image.name} runs no guest agent: resetting the password is unsupported "
                       "by this image.", code="unsupported")
    if instance.status != Instance.RUNNING:
        raise Conflict(f"Instance {instance.public_id} is {instance.status}; the guest must be running.",
                       code="invalid_state")
    if not user or len(password) < 8:
        raise ValidationFailed("A user and a password of at least 8 characters are needed.",
                               fields={"password": ["At least 8 characters."]})
    try:
        get_compute_driver(instance.host.uri).set_user_password(instance.public_id, user, password)
    except DriverError as exc:
        raise Conflict(f"The guest agent did not set the password: {exc}", code="guest_agent_error")
    return instance


# --- migration and evacuation (operators) -------------------------------------------------

def _check_movable(instance: Instance) -> None:
    """Only disks the target reaches move with the instance: RBD volumes (network storage). A
    dir pool's files stay on their host (a kernel-boot instance may have no disk at all)."""
    if instance.pci_addresses:
        raise Conflict(f"{instance.public_id} holds PCI devices (GPUs) of its host, which do not move with it.",
                       code="unsupported")
    local = selectors.host_bound_volume(instance)
    if local is not None:
        pool = local.volume.pool
        raise Conflict(f"{instance.public_id} has volume {local.volume.public_id} in pool {pool.name} on host "
                       f"{pool.host.name if pool.host_id else '?'}; moving it needs shared block storage (RBD).",
                       code="unsupported")


def _start_move(actor: Actor, instance: Instance, target: Host | None, *, live: bool = False,
                from_down_host: bool = False) -> Instance:
    """Claim the target now (under its row lock) and queue the move, live (the guest runs on;
    its progress in an operation) or cold; the source claim is given back by the task once the
    domain left the source."""
    from apps.compute import tasks
    from apps.core.services import start_operation
    from apps.core.tasks import enqueue_on_commit

    source_id = instance.host_id
    _check_movable(instance)
    new_host = scheduler.claim(scheduler.request_for(instance, exclude=(source_id,)), host=target)
    was = instance.status
    instance.status, instance.status_reason = Instance.MIGRATING, f"{'live ' if live else ''}to {new_host.name}"
    instance.save(update_fields=["status", "status_reason", "updated_at"])
    instance_status_recorded(instance)
    if live:
        operation = start_operation(actor, area="compute", kind="instance.live_migrate", tenant=instance.tenant,
                                    name=f"Live-migrate {instance.name}", resource_id=instance.public_id,
                                    params={"source": instance.host.name, "target": new_host.name})
        enqueue_on_commit(tasks.live_migrate_instance, instance.pk, source_id, new_host.pk, operation.pk,
                          resource=instance)
    else:
        enqueue_on_commit(tasks.move_instance, instance.pk, source_id, new_host.pk, int(was == Instance.RUNNING),
                          int(from_down_host), resource=instance)
    return instance


@audited("instance.migrate", area="compute")
def migrate_instance(actor: Actor, *, instance: Instance, host: Host | None = None, live: bool = False) -> Instance:
    """An operator moves an instance to another host (chosen by the scheduler unless given).
    Cold: the guest is powered off, defined on the target and powered on again if it was
    running. Live (running instances only): its memory is copied while it runs, and it pauses
    only for the switch-over; a failed live migration leaves it running where it was."""
    require_operator(actor)
    instance = (Instance.objects.select_for_update(of=("self",)).select_related("image", "host", "tenant")
                .get(pk=instance.pk))
    if instance.status not in ((Instance.RUNNING,) if live else (Instance.RUNNING, Instance.STOPPED)):
        hint = " A cold migration moves a stopped instance." if live and instance.status == Instance.STOPPED else ""
        raise Conflict(f"Cannot {'live-' if live else ''}migrate instance {instance.public_id} while it is "
                       f"{instance.status}.{hint}", code="invalid_state")
    if host is not None and host.pk == instance.host_id:
        raise ValidationFailed("The instance is on that host already.", fields={"host": ["Choose another host."]})
    return _start_move(actor, instance, host, live=live)


@audited("host.drain", area="compute")
def drain_host(actor: Actor, *, host: Host) -> Host:
    """Take a host out of service: no new instances, and every instance moved elsewhere, the
    running ones live (a guest whose live migration fails keeps running here)."""
    require_operator(actor)
    host = Host.objects.select_for_update().get(pk=host.pk)
    host.state, host.state_reason = Host.DISABLED, "draining"
    host.save(update_fields=["state", "state_reason"])
    for instance in Instance.objects.select_for_update(of=("self",)).select_related("image", "host", "tenant").filter(
            host=host, deleted_at__isnull=True, status__in=(Instance.RUNNING, Instance.STOPPED)):
        _start_move(actor, instance, None, live=instance.status == Instance.RUNNING)
    return host


@audited("host.evacuate", area="compute")
def evacuate_host(actor: Actor, *, host: Host) -> Host:
    """Rebuild the instances of a host that is down on other hosts (their disks must not live
    on the dead host: kernel images have none, RBD volumes are reached from anywhere)."""
    require_operator(actor)
    host = Host.objects.select_for_update().get(pk=host.pk)
    if host.state != Host.DOWN:
        raise Conflict(f"Host {host.name} is {host.state}; only a host that is down is evacuated (drain it instead).")
    for instance in Instance.objects.select_for_update(of=("self",)).select_related("image").filter(
            host=host, deleted_at__isnull=True).exclude(status__in=(Instance.DELETING, Instance.MIGRATING)):
        _start_move(actor, instance, None, from_down_host=True)
    return host


CONSOLE_LOG_LIMIT = 64 * 1024


@audited("instance.console_log", area="compute")
def console_log(actor: Actor, *, instance: Instance) -> str:
    """The tail of the instance's serial console (boot messages, kernel panics)."""
    from apps.compute.drivers.base import Unsupported
    from apps.compute.tasks import serial_log_path

    permissions.require(actor, instance, "view")
    if instance.host_id is None:
        return ""
    try:
        return get_compute_driver(instance.host.uri).console_log(str(serial_log_path(instance)),
                                                                 limit=CONSOLE_LOG_LIMIT)
    except Unsupported as exc:
        raise Conflict(str(exc), code="unsupported")


@audited("instance.update", area="compute")
def update_instance(actor: Actor, *, instance: Instance, name: str | None = None, description: str | None = None,
                    tags: list[str] | None = None, metadata: dict | None = None) -> Instance:
    permissions.require(actor, instance, "change")
    instance = Instance.objects.select_for_update().get(pk=instance.pk)
    if name is not None:
        instance.name = clean_name(name)
    if description is not None:
        instance.description = description.strip()[:255]
    if tags is not None:
        instance.tags = sorted({clean_name(t, "tags") for t in tags})
    if metadata is not None:
        if len(metadata) > 50 or any(len(str(k)) > 128 or len(str(v)) > 256 for k, v in metadata.items()):
            raise ValidationFailed("Metadata: at most 50 keys, keys 128 and values 256 characters.",
                                   fields={"metadata": ["Too large."]})
        instance.metadata = {str(k): str(v) for k, v in metadata.items()}
    instance.save()
    return instance


# --- hypervisor state (events and reconcile; system actions) ------------------------------

def _observed(instance: Instance, status: str, reason: str, action: str = "instance.observed") -> None:
    """Record a status change the hypervisor caused (not a user): row, audit, live event."""
    from apps.core.audit import record

    instance.status, instance.status_reason = status, reason[:512]
    instance.save(update_fields=["status", "status_reason", "updated_at"])
    record(Actor.system(tenant=instance.tenant), action=action, area="compute", resource=instance,
           details={"status": status, "reason": reason})
    instance_status_recorded(instance)


@transaction.atomic
def apply_domain_event(event, *, host_uri: str = "") -> Instance | None:
    """A libvirt lifecycle event: follow changes made outside the portal (the guest powered
    itself off, crashed, or was started by an operator). Transitional states belong to the
    task that is driving them, so events never race a task. An event from another host than
    the instance's (`host_uri`, when the listener says it) is stale: the source of a finished
    migration reports its copy stopped after the instance moved on."""
    from apps.compute.drivers.base import CRASHED, RUNNING, SHUTOFF

    instance = Instance.objects.select_for_update(of=("self",)).select_related("tenant", "host").filter(
        public_id=event.name, deleted_at__isnull=True).first()
    stale = host_uri and instance is not None and instance.host_id and instance.host.uri != host_uri
    if instance is None or instance.is_transitional or stale:
        return instance
    if instance.status == Instance.RUNNING and event.state == SHUTOFF:
        _observed(instance, Instance.STOPPED, f"Powered off outside the portal ({event.detail}).")
    elif instance.status == Instance.RUNNING and event.state == CRASHED:
        _observed(instance, Instance.ERROR, "The guest crashed.")
    elif instance.status in (Instance.STOPPED, Instance.ERROR) and event.state == RUNNING:
        _observed(instance, Instance.RUNNING, f"Started outside the portal ({event.detail}).")
    return instance


def reconcile_host(host_id: int) -> dict[str, list[str]]:
    """Compare one host's domains with the database and repair the drift:
    - a running instance whose domain vanished is defined and started again;
    - a stable instance whose domain is in another power state follows the domain;
    - a domain labelled as ours with no live instance (an orphan) is removed.
    Foreign domains (no portal label) are never touched. Returns what was done."""
    from apps.compute.drivers.base import RUNNING, SHUTOFF
    from apps.compute.tasks import domain_spec

    host = Host.objects.get(pk=host_id)
    driver = get_compute_driver(host.uri)
    domains = {d.name: d for d in driver.list_domains()}
    report: dict[str, list[str]] = {"recreated": [], "status_fixed": [], "orphans_removed": []}
    instances = Instance.objects.filter(host=host, deleted_at__isnull=True).select_related(
        "tenant", "image", "host", "host__cluster")
    for instance in instances:
        if instance.is_transitional:
            continue
        domain = domains.get(instance.public_id)
        if domain is None and instance.status == Instance.RUNNING:
            driver.ensure_domain(domain_spec(instance))
            with transaction.atomic():
                locked = Instance.objects.select_for_update().get(pk=instance.pk)
                if locked.status == Instance.RUNNING:
                    _observed(locked, Instance.RUNNING, "Domain was missing on the host; recreated.",
                              action="instance.reconcile")
            report["recreated"].append(instance.public_id)
        elif domain is not None:
            wanted = {RUNNING: Instance.RUNNING, SHUTOFF: Instance.STOPPED}.get(domain.state)
            if wanted and wanted != instance.status and instance.status in (Instance.RUNNING, Instance.STOPPED):
                with transaction.atomic():
                    locked = Instance.objects.select_for_update().get(pk=instance.pk)
                    if locked.status == instance.status:
                        _observed(locked, wanted, f"Host reports the domain {domain.state}.",
                                  action="instance.reconcile")
                report["status_fixed"].append(instance.public_id)
    live = set(Instance.objects.filter(deleted_at__isnull=True).values_list("public_id", flat=True))
    for name, domain in domains.items():
        if ("instance", name) in domain.labels and name not in live:
            driver.delete_domain(name)
            report["orphans_removed"].append(name)
    return report
