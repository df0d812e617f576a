"""Compute inventory: regions, clusters (availability zones), hypervisor hosts, flavors and
images. Instances build on these."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.models import PublicIdModel, ScopedQuerySet, TenantOwned

AUTO, KVM, QEMU = "auto", "kvm", "qemu"
VIRT_TYPE_CHOICES = [(AUTO, "auto (KVM when really usable)"), (KVM, "KVM"), (QEMU, "QEMU software emulation")]


class Region(models.Model):
    """A geographic or administrative region; quotas and prices are per region."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name or self.code


class Cluster(models.Model):
    """A group of hosts sharing a network and storage: an availability zone of its region."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="clusters")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=128)
    tags = models.JSONField(default=list, blank=True, help_text="e.g. x86, arm, gpu, ssd")
    virt_type = models.CharField(max_length=8, choices=VIRT_TYPE_CHOICES, default=AUTO)

    class Meta:
        ordering = ["region__code", "code"]
        constraints = [models.UniqueConstraint(fields=["region", "code"], name="cluster_code_unique_in_region")]

    def __str__(self) -> str:
        return f"{self.region.code}/{self.code}"


class Host(PublicIdModel):
    """A hypervisor reached by a libvirt URI. Capacity is read from libvirt; overcommit ratios
    and state are the operator's. `*_used` are the claims of the instances placed here."""

    public_id_prefix = "host"
    ENABLED, DISABLED, MAINTENANCE, DOWN = "enabled", "disabled", "maintenance", "down"
    STATE_CHOICES = [(s, s) for s in (ENABLED, DISABLED, MAINTENANCE, DOWN)]

    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="hosts")
    name = models.CharField(max_length=128, unique=True)
    uri = models.CharField(max_length=255, unique=True, help_text="qemu:///system, qemu+ssh://host/system, qemu+tls://…")
    management_address = models.GenericIPAddressField(
        default="127.0.0.1", help_text="Address VNC consoles listen on; never a public one."
    )
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=ENABLED)
    state_reason = models.CharField(max_length=255, blank=True)
    virt_type = models.CharField(max_length=8, choices=VIRT_TYPE_CHOICES, default=AUTO)
    cpu_allocation_ratio = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("4.0"), validators=[MinValueValidator(Decimal("0.1"))]
    )
    ram_allocation_ratio = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("1.0"), validators=[MinValueValidator(Decimal("0.1"))]
    )
    reserved_memory_mb = models.PositiveIntegerField(default=512, help_text="Kept for the host itself.")

    # Read from libvirt (refreshed by the heartbeat).
    hostname = models.CharField(max_length=255, blank=True)
    arch = models.CharField(max_length=16, blank=True)
    cpu_model = models.CharField(max_length=128, blank=True)
    vcpus = models.PositiveIntegerField(default=0)
    memory_mb = models.PositiveBigIntegerField(default=0)
    numa_nodes = models.PositiveSmallIntegerField(default=1)
    kvm_usable = models.BooleanField(default=False)
    pci_devices = models.JSONField(default=list, blank=True)
    hypervisor_version = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    # Claims.
    vcpus_used = models.PositiveIntegerField(default=0)
    memory_mb_used = models.PositiveBigIntegerField(default=0)
    instances_count = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["cluster__region__code", "cluster__code", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_virt_type(self) -> str:
        """The host's setting, else its cluster's; `auto` means KVM only when really usable."""
        wanted = self.virt_type if self.virt_type != AUTO else self.cluster.virt_type
        if wanted == AUTO:
            return KVM if self.kvm_usable else QEMU
        return wanted

    @property
    def vcpus_capacity(self) -> int:
        return int(self.vcpus * self.cpu_allocation_ratio)

    @property
    def memory_mb_capacity(self) -> int:
        return int(max(0, self.memory_mb - self.reserved_memory_mb) * self.ram_allocation_ratio)


class FlavorQuerySet(models.QuerySet):
    def for_actor(self, actor, action: str = "view"):
        """Public flavors, plus the private ones shared with the actor's tenant."""
        if actor.is_privileged:
            return self
        rows = self.filter(is_active=True)
        if actor.tenant is None:
            return rows.filter(is_public=True)
        return rows.filter(Q(is_public=True) | Q(tenants=actor.tenant)).distinct()


class Flavor(models.Model):
    """An instance size. Public, or offered only to chosen tenants."""

    name = models.SlugField(max_length=64, unique=True, help_text="e.g. s1.small")
    description = models.CharField(max_length=255, blank=True)
    vcpus = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    ram_mb = models.PositiveIntegerField(validators=[MinValueValidator(64)])
    disk_gb = models.PositiveIntegerField(default=0, help_text="Root disk; 0 for direct-kernel-boot images.")
    gpu_count = models.PositiveSmallIntegerField(default=0)
    gpu_type = models.CharField(max_length=64, blank=True, help_text="PCI vendor:product, e.g. 10de:1eb8")
    extra_specs = models.JSONField(default=dict, blank=True)
    is_public = models.BooleanField(default=True)
    tenants = models.ManyToManyField("tenants.Tenant", blank=True, related_name="+")
    is_active = models.BooleanField(default=True)

    objects = FlavorQuerySet.as_manager()

    class Meta:
        ordering = ["vcpus", "ram_mb", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.vcpus} vCPU, {self.ram_mb} MiB, {self.disk_gb} GB)"


class ImageQuerySet(ScopedQuerySet):
    def for_actor(self, actor, action: str = "view"):
        """Public images, the tenant's own, and those shared with it; writes only the own."""
        if actor.is_privileged:
            return self
        if actor.tenant is None or actor.user is None:
            return self.filter(visibility=Image.PUBLIC, status=Image.ACTIVE) if action == "view" else self.none()
        own = Q(owner_id=actor.tenant.pk)
        if action != "view":
            return self.filter(own) if actor.allows("compute", action) else self.none()
        return self.filter(own | Q(visibility=Image.PUBLIC) | Q(shared_with=actor.tenant)).distinct()


class Image(PublicIdModel):
    """A bootable image. A disk image (qcow2/raw) is the root disk's base; a kernel image
    boots its kernel + initrd + command line directly (the seeded tiny image)."""

    public_id_prefix = "img"
    area = "compute"

    PUBLIC, PRIVATE, SHARED = "public", "private", "shared"
    QUEUED, SAVING, ACTIVE, ERROR = "queued", "saving", "active", "error"
    DISK, KERNEL = "disk", "kernel"

    owner = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Blank: a platform image.",
    )
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True)
    visibility = models.CharField(
        max_length=8, choices=[(v, v) for v in (PUBLIC, PRIVATE, SHARED)], default=PRIVATE
    )
    shared_with = models.ManyToManyField("tenants.Tenant", blank=True, related_name="+")
    status = models.CharField(max_length=8, choices=[(s, s) for s in (QUEUED, SAVING, ACTIVE, ERROR)], default=QUEUED)
    os_type = models.CharField(max_length=16, default="linux")
    os_distro = models.CharField(max_length=64, blank=True)
    os_version = models.CharField(max_length=64, blank=True)
    arch = models.CharField(max_length=16, default="x86_64")
    boot = models.CharField(max_length=8, choices=[(DISK, "disk"), (KERNEL, "direct kernel boot")], default=DISK)
    disk_format = models.CharField(max_length=8, blank=True, help_text="qcow2 or raw; detected from the file.")
    kernel_file = models.CharField(max_length=255, blank=True)
    initrd_file = models.CharField(max_length=255, blank=True)
    cmdline = models.CharField(max_length=512, blank=True)
    disk_file = models.CharField(max_length=255, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    checksum_sha256 = models.CharField(max_length=64, blank=True)
    min_disk_gb = models.PositiveIntegerField(default=0)
    min_ram_mb = models.PositiveIntegerField(default=64)
    cloud_init = models.BooleanField(default=False, help_text="The image runs cloud-init (NoCloud).")
    guest_agent = models.BooleanField(default=False, help_text="The image runs the QEMU guest agent.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class InstanceGroup(TenantOwned):
    """An isolation group: its instances are spread over distinct hosts (anti-affinity) or
    kept on one host (affinity). Both are hard rules: no host that keeps them → no create."""

    public_id_prefix = "ig"
    area = "compute"
    AFFINITY, ANTI_AFFINITY = "affinity", "anti-affinity"
    POLICY_CHOICES = [(AFFINITY, "affinity (same host)"), (ANTI_AFFINITY, "anti-affinity (distinct hosts)")]

    policy = models.CharField(max_length=16, choices=POLICY_CHOICES)

    class Meta(TenantOwned.Meta):
        pass


class Instance(TenantOwned):
    """A virtual machine. The row holds what is wanted (status, flavor, image); tasks make the
    hypervisor match it and record what happened (`status_reason`)."""

    public_id_prefix = "i"
    area = "compute"

    PENDING, BUILDING, RUNNING, STOPPING, STOPPED, STARTING, REBOOTING, ERROR, DELETING, DELETED = (
        "pending", "building", "running", "stopping", "stopped", "starting", "rebooting", "error", "deleting",
        "deleted",
    )
    REBUILDING, RESIZING, MIGRATING = "rebuilding", "resizing", "migrating"
    # Deleted by its owner, powered off, everything kept and restorable until recycled_at + the retention.
    RECYCLING, RECYCLED = "recycling", "recycled"
    STATUS_CHOICES = [(s, s) for s in (PENDING, BUILDING, RUNNING, STOPPING, STOPPED, STARTING, REBOOTING,
                                       REBUILDING, RESIZING, MIGRATING, ERROR, RECYCLING, RECYCLED, DELETING,
                                       DELETED)]
    TRANSITIONAL = (PENDING, BUILDING, STOPPING, STARTING, REBOOTING, REBUILDING, RESIZING, MIGRATING, RECYCLING,
                    DELETING)

    description = models.CharField(max_length=255, blank=True)
    region = models.CharField(max_length=64)
    availability_zone = models.ForeignKey(Cluster, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, null=True, blank=True, related_name="instances")
    flavor = models.ForeignKey(Flavor, on_delete=models.PROTECT, related_name="+")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    key_pair = models.ForeignKey("tenants.KeyPair", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    group = models.ForeignKey(InstanceGroup, on_delete=models.PROTECT, null=True, blank=True, related_name="instances")
    # The size claimed on the host and counted in quotas (copied: flavors can be retired).
    vcpus = models.PositiveSmallIntegerField()
    ram_mb = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=PENDING, db_index=True)
    status_reason = models.CharField(max_length=512, blank=True)
    user_data = models.TextField(blank=True)
    # The root password given at create, as a SHA-512 crypt hash ($6$…) for the cloud-init seed;
    # the clear text is never stored.
    password_hash = models.CharField(max_length=128, blank=True, editable=False)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    recycled_at = models.DateTimeField(null=True, blank=True)
    pci_addresses = models.JSONField(default=list, blank=True, help_text="Host PCI devices (GPUs) passed through.")

    class Meta(TenantOwned.Meta):
        permissions = [("console_instance", "Open the instance's console")]
        indexes = [*TenantOwned.Meta.indexes, models.Index(fields=["tenant", "status"])]

    @property
    def is_transitional(self) -> bool:
        return self.status in self.TRANSITIONAL
