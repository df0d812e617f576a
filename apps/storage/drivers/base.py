"""The block storage driver interface: one storage pool (a libvirt `dir` pool on a host, or a
Ceph RBD pool).

Plain data in, plain data out, no Django. Backend objects are named by our public ids
(`vol-3k9x2m7q`, snapshots `snap-…`, image bases `img-…`), so a reconcile can tell the portal's
objects from anything else in the pool. Every verb is idempotent: creating what exists with the
same name returns it, deleting what is missing does nothing unless asked to complain."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, ClassVar

from apps.compute.drivers.base import DiskSpec

GiB = 1024 ** 3


class StorageError(Exception):
    """Base of driver failures; the message is safe to show to operators."""


class NotFound(StorageError):
    pass


class InUse(StorageError):
    """The object has dependants (clones of a snapshot) or is held by a running guest."""


class NoSpace(StorageError):
    pass


class Transient(StorageError):
    """Retry later: the backend did not answer."""


@dataclass(frozen=True)
class PoolUsage:
    """0 capacity: the backend does not report it (a Ceph cluster without its manager daemon)."""

    capacity_bytes: int
    allocated_bytes: int
    available_bytes: int


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    size_bytes: int  # what the guest sees
    allocated_bytes: int = 0  # what it takes in the pool (thin provisioning, copy-on-write)
    parent: str = ""  # the image base (or snapshot) a copy-on-write clone depends on
    snapshots: tuple[str, ...] = ()


class StorageDriver(abc.ABC):
    """One pool. `config` is the pool's backend settings (path, URI, cluster conf...)."""

    backend: ClassVar[str] = ""

    def __init__(self, config: dict):
        self.config = config

    @abc.abstractmethod
    def usage(self) -> PoolUsage:
        """Capacity and use, read from the backend."""

    @abc.abstractmethod
    def create_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        """An empty (zeroed, thin) volume."""

    @abc.abstractmethod
    def import_image(self, name: str, source_path: str) -> VolumeInfo:
        """Copy an image file (qcow2 or raw) into the pool once, as the base that volumes are
        cloned from; an existing base of that name is kept."""

    @abc.abstractmethod
    def read_args(self, name: str, *, snapshot: str = "") -> list[str]:
        """qemu-img input arguments that read `name` (at `snapshot`): how another pool copies
        from this one (backups and their restores cross pools and backends)."""

    @abc.abstractmethod
    def receive(self, name: str, source: list[str], *, progress: Callable[[int], None] | None = None) -> VolumeInfo:
        """A new object `name` copied by qemu-img from `source` (read_args of any pool);
        `progress(percent)` follows the copy. An existing one is kept."""

    def export(self, name: str, path: str, *, snapshot: str = "", progress: Callable[[int], None] | None = None):
        """Write `name` (at `snapshot`) into a qcow2 file outside the pool: an image of it."""
        from apps.storage.drivers import qemuimg

        qemuimg.convert(self.read_args(name, snapshot=snapshot), path, target_format="qcow2", progress=progress)

    @abc.abstractmethod
    def clone_image(self, name: str, base: str, size_bytes: int) -> VolumeInfo:
        """A copy-on-write volume over the image base `base`, grown to `size_bytes`."""

    @abc.abstractmethod
    def copy_volume(self, name: str, source: str, size_bytes: int, *, snapshot: str = "") -> VolumeInfo:
        """A full, independent copy of `source` (or of its snapshot `snapshot`), grown to
        `size_bytes`."""

    @abc.abstractmethod
    def resize_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        """Grow (never shrink) a volume that no guest holds; see ComputeDriver.resize_disk for
        attached ones."""

    @abc.abstractmethod
    def delete_volume(self, name: str, *, missing_ok: bool = True) -> None:
        """Remove a volume and its snapshots; InUse while clones depend on it."""

    @abc.abstractmethod
    def volume_info(self, name: str) -> VolumeInfo:
        """Raises NotFound."""

    @abc.abstractmethod
    def list_volumes(self, prefix: str = "") -> list[VolumeInfo]:
        """Every volume (and image base) whose name starts with `prefix`; one deleted by another
        worker while the list is read is left out."""

    def _infos(self, names) -> list[VolumeInfo]:
        infos = []
        for name in names:
            try:
                infos.append(self.volume_info(name))
            except NotFound:  # deleted since the names were listed
                continue
        return infos

    @abc.abstractmethod
    def create_snapshot(self, volume: str, snapshot: str) -> None:
        """A point-in-time snapshot of a volume that no guest holds (attached volumes are
        snapshotted through the compute driver, which asks the guest's QEMU)."""

    @abc.abstractmethod
    def delete_snapshot(self, volume: str, snapshot: str, *, missing_ok: bool = True) -> None:
        """InUse while volumes cloned from it depend on it."""

    @abc.abstractmethod
    def rollback_snapshot(self, volume: str, snapshot: str) -> None:
        """Put the volume back to the snapshot; the volume must not be attached."""

    def host_secret(self) -> tuple[str, str, bytes] | None:
        """(libvirt secret UUID, cephx user, key) every hypervisor needs before it opens this
        pool's disks; None when the backend needs none (files)."""
        return None

    @abc.abstractmethod
    def disk_source(self, name: str) -> DiskSpec:
        """What the compute driver needs to attach the volume (the caller sets target/serial)."""
