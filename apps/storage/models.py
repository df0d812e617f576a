"""Block storage: pools and volume types (operators), volumes, their attachments and snapshots
(tenants).

A volume lives in one pool. A `dir` pool is a folder of qcow2 files on one hypervisor host, so
its volumes attach only to instances on that host; an RBD pool is shared by every host of its
region (or zone). Backend objects are named by public ids (`vol-…`, `snap-…`, `img-…` for
image bases)."""

from __future__ import annotations

import hashlib
import json

from django.db import models
from django.utils import timezone

from apps.core.models import PublicIdModel, TenantOwned

GiB = 1024 ** 3


class StoragePool(PublicIdModel):
    public_id_prefix = "sp"

    DIR, RBD = "dir", "rbd"
    BACKEND_CHOICES = [(DIR, "libvirt dir pool (qcow2 files)"), (RBD, "Ceph RBD")]

    name = models.SlugField(max_length=64, unique=True)
    backend = models.CharField(max_length=8, choices=BACKEND_CHOICES)
    region = models.ForeignKey("compute.Region", on_delete=models.PROTECT, related_name="storage_pools")
    # Only this zone's instances use it (empty: the whole region). A dir pool names its host.
    availability_zone = models.ForeignKey("compute.Cluster", on_delete=models.PROTECT, null=True, blank=True,
                                          related_name="storage_pools")
    host = models.ForeignKey("compute.Host", on_delete=models.PROTECT, null=True, blank=True,
                             related_name="storage_pools", help_text="dir pools: the host holding the files")
    # dir: {"path": …}; rbd: {"conf": …, "user": …, "pool": …, "keyring": …, "secret_uuid": …}
    config = models.JSONField(default=dict)
    tags = models.JSONField(default=list, blank=True, help_text="e.g. ssd, sata")
    enabled = models.BooleanField(default=True)
    holds_backups = models.BooleanField(default=False, help_text="Backups of the region's volumes go here.")
    capacity_bytes = models.BigIntegerField(default=0)
    allocated_bytes = models.BigIntegerField(default=0)
    available_bytes = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    state_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["region__code", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def driver_config(self) -> dict:
        """What the driver gets: the pool's settings plus the name its backend objects carry
        (libvirt pool, secret), unique to this configuration so two installations sharing a
        hypervisor never share them."""
        digest = hashlib.sha256(json.dumps([self.backend, self.config], sort_keys=True).encode()).hexdigest()
        config = {**self.config, "name": f"portal-{self.name}-{digest[:8]}"}
        if self.host_id:
            config.setdefault("uri", self.host.uri)
        return config


class VolumeTypeQuerySet(models.QuerySet):
    def for_actor(self, actor, action: str = "view"):
        """Public types; operators see the private ones too."""
        return self if actor.is_privileged else self.filter(is_public=True)


class VolumeType(models.Model):
    """What tenants choose (`standard`, `ssd`…): which pool, and what the volumes may do."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    pool = models.ForeignKey(StoragePool, on_delete=models.PROTECT, related_name="volume_types")
    multi_attach = models.BooleanField(default=False, help_text="Volumes may attach to several instances at once.")
    is_public = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)

    objects = VolumeTypeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Volume(TenantOwned):
    public_id_prefix = "vol"
    area = "storage"

    CREATING, AVAILABLE, ATTACHING, IN_USE, DETACHING, EXTENDING, RESTORING, ERROR, DELETING, DELETED = (
        "creating", "available", "attaching", "in-use", "detaching", "extending", "restoring", "error", "deleting",
        "deleted",
    )
    RECYCLED = "recycled"  # deleted by its owner, still restorable until recycled_at + the retention
    STATUS_CHOICES = [(s, s) for s in (CREATING, AVAILABLE, ATTACHING, IN_USE, DETACHING, EXTENDING, RESTORING,
                                       ERROR, RECYCLED, DELETING, DELETED)]
    TRANSITIONAL = (CREATING, ATTACHING, DETACHING, EXTENDING, RESTORING, DELETING)

    description = models.CharField(max_length=255, blank=True)
    size_gb = models.PositiveIntegerField()
    volume_type = models.ForeignKey(VolumeType, on_delete=models.PROTECT, related_name="+")
    pool = models.ForeignKey(StoragePool, on_delete=models.PROTECT, related_name="volumes")
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=CREATING, db_index=True)
    status_reason = models.CharField(max_length=512, blank=True)
    multi_attach = models.BooleanField(default=False)
    # Where the content came from (at most one): an image (a bootable volume), a snapshot, a volume.
    image = models.ForeignKey("compute.Image", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    source_snapshot = models.ForeignKey("storage.Snapshot", on_delete=models.SET_NULL, null=True, blank=True,
                                        related_name="+")
    source_volume = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    source_backup = models.ForeignKey("storage.Backup", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+")
    tags = models.JSONField(default=list, blank=True)
    recycled_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        indexes = [*TenantOwned.Meta.indexes, models.Index(fields=["tenant", "status"])]

    @property
    def size_bytes(self) -> int:
        return self.size_gb * GiB

    @property
    def is_transitional(self) -> bool:
        return self.status in self.TRANSITIONAL


class VolumeAttachment(models.Model):
    """A volume plugged into an instance as a device (`vdb`…), kept for the volume's life on
    that instance so the guest sees the same name after a reboot."""

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="attachments")
    instance = models.ForeignKey("compute.Instance", on_delete=models.CASCADE, related_name="volume_attachments")
    device = models.CharField(max_length=8)
    is_root = models.BooleanField(default=False)
    attached_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["instance", "device"]
        constraints = [
            models.UniqueConstraint(fields=["volume", "instance"], name="attachment_once_per_instance"),
            models.UniqueConstraint(fields=["instance", "device"], name="attachment_device_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.volume.public_id} on {self.instance.public_id} as {self.device}"


class Snapshot(TenantOwned):
    public_id_prefix = "snap"
    area = "storage"

    CREATING, AVAILABLE, RESTORING, ERROR, DELETING, DELETED = (
        "creating", "available", "restoring", "error", "deleting", "deleted")
    STATUS_CHOICES = [(s, s) for s in (CREATING, AVAILABLE, RESTORING, ERROR, DELETING, DELETED)]

    description = models.CharField(max_length=255, blank=True)
    volume = models.ForeignKey(Volume, on_delete=models.PROTECT, related_name="snapshots")
    size_gb = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=CREATING, db_index=True)
    status_reason = models.CharField(max_length=512, blank=True)

    @property
    def is_transitional(self) -> bool:
        return self.status in (self.CREATING, self.RESTORING, self.DELETING)


class Backup(TenantOwned):
    """A full, independent copy of a volume in a pool (the region's backup pool, else the
    volume's own): it survives the volume, and restores into a new volume."""

    public_id_prefix = "bak"
    area = "storage"

    CREATING, AVAILABLE, ERROR, DELETING, DELETED = "creating", "available", "error", "deleting", "deleted"
    STATUS_CHOICES = [(s, s) for s in (CREATING, AVAILABLE, ERROR, DELETING, DELETED)]

    description = models.CharField(max_length=255, blank=True)
    volume = models.ForeignKey(Volume, on_delete=models.SET_NULL, null=True, blank=True, related_name="backups")
    volume_public_id = models.CharField(max_length=32, help_text="The volume it copies (kept when it is deleted).")
    pool = models.ForeignKey(StoragePool, on_delete=models.PROTECT, related_name="backups")
    size_gb = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=CREATING, db_index=True)
    status_reason = models.CharField(max_length=512, blank=True)

    @property
    def is_transitional(self) -> bool:
        return self.status in (self.CREATING, self.DELETING)
