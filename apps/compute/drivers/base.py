"""The compute driver interface: one hypervisor host.

Plain data in, plain data out (frozen dataclasses), no Django, no models, no settings. Domains
are named by our public ids (`i-3k9x2m7q`); libvirt's own ids never leave the driver. Every
verb is idempotent: `ensure_domain` on an existing domain with the same name is a no-op that
returns its state, `delete_domain(missing_ok=True)` on a missing one does nothing."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, ClassVar

# Virtualisation types: `kvm` (hardware) or `qemu` (software emulation, TCG).
KVM, QEMU = "kvm", "qemu"

# Domain power states as the portal sees them.
RUNNING, SHUTOFF, PAUSED, CRASHED, MISSING = "running", "shutoff", "paused", "crashed", "missing"

# Hot-added memory comes in DIMMs of whole guest memory blocks (128 MiB on x86-64 Linux).
HOTPLUG_MEMORY_STEP_MB = 128
HOTPLUG_MEMORY_SLOTS = 16

# Migration bounds: the longest pause of a live guest at the switch-over, the longest copy.
MIGRATION_MAX_DOWNTIME_MS = 500
MIGRATION_TIMEOUT = 300  # seconds


class DriverError(Exception):
    """Base of driver failures; the message is safe to show to operators."""


class NotFound(DriverError):
    pass


class AlreadyExists(DriverError):
    pass


class Transient(DriverError):
    """Retry later: the host did not answer, a lock was busy."""


class Unsupported(DriverError):
    pass


@dataclass(frozen=True)
class PciDevice:
    address: str  # 0000:65:00.0
    vendor: str  # names, as the host's PCI database has them
    product: str
    device_class: str  # e.g. 0x030000 for a display controller
    vendor_id: str = ""  # 10de: flavors ask for a device type as vendor_id:product_id
    product_id: str = ""


@dataclass(frozen=True)
class HostCapacity:
    hostname: str
    arch: str
    cpu_model: str
    vcpus: int
    memory_mb: int
    numa_nodes: int
    kvm_usable: bool  # hardware virtualisation really usable (CPU flags + libvirt's domain caps)
    pci_devices: tuple[PciDevice, ...] = ()
    hypervisor_version: str = ""


@dataclass(frozen=True)
class DiskSpec:
    """A disk of a domain: a file, or an RBD image over the network (`protocol="rbd"`, `path`
    is then `pool/image`) with a cephx user whose key libvirt keeps as a secret. A `cdrom`
    device is a read-only medium (an ISO file: the cloud-init seed)."""

    path: str
    format: str = "qcow2"  # qcow2 or raw
    target: str = "vda"
    bus: str = "virtio"  # virtio; ide or sata for a cdrom (no virtio CD-ROMs exist)
    device: str = "disk"  # disk or cdrom
    read_only: bool = False
    serial: str = ""  # the volume's public id: /dev/disk/by-id/virtio-<serial> in the guest
    protocol: str = ""  # "" for a file, "rbd"
    hosts: tuple[tuple[str, int], ...] = ()  # rbd monitors
    auth_user: str = ""  # rbd: cephx user without "client."
    secret_uuid: str = ""  # rbd: the libvirt secret holding its key


@dataclass(frozen=True)
class NicSpec:
    """A network interface plugged into the host's integration bridge (Open vSwitch), bound to
    the SDN's logical port `port_id` (a UUID) by the switch's controller."""

    mac: str
    port_id: str
    bridge: str = "br-int"
    mtu: int = 0  # 0: the bridge's
    model: str = "virtio"
    # Checksum/segmentation offload between guest and host. Off for Open vSwitch's userspace
    # (netdev) datapath, which forwards packets with the checksums the guest left to the host.
    offload: bool = True


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (no disk to boot from): kernel, initrd, command line."""

    kernel: str
    initrd: str = ""
    cmdline: str = ""


@dataclass(frozen=True)
class DomainSpec:
    name: str  # the instance public id
    vcpus: int
    memory_mb: int
    virt_type: str = QEMU
    arch: str = "x86_64"
    kernel: KernelBoot | None = None
    # Room for hot resize, fixed while the domain runs: vCPUs can be hot-added up to max_vcpus,
    # memory up to max_memory_mb in DIMMs of HOTPLUG_MEMORY_STEP_MB. 0: no room.
    max_vcpus: int = 0
    max_memory_mb: int = 0
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    pci_devices: tuple[str, ...] = ()  # host PCI addresses passed through (GPUs), 0000:65:00.0
    serial_log: str = ""  # file that receives the serial console output
    vnc_listen: str = "127.0.0.1"  # the host's management address; never a public one
    title: str = ""
    # Free-form labels kept in the domain metadata (tenant id, flavor...) for reconcile.
    labels: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class DomainInfo:
    name: str
    state: str
    vcpus: int
    memory_mb: int
    vnc_host: str = ""
    vnc_port: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    disks: tuple[str, ...] = ()  # targets (vda, vdb…) of the disks it has now
    nics: tuple[str, ...] = ()  # MAC addresses of the interfaces it has now
    max_vcpus: int = 0  # what hot resize may reach (0: no room)
    max_memory_mb: int = 0


@dataclass(frozen=True)
class DomainEvent:
    """A lifecycle change the hypervisor reported for one domain."""

    name: str
    state: str  # RUNNING, SHUTOFF, PAUSED or CRASHED after the event
    detail: str = ""  # e.g. "destroyed", "shutdown", "booted"


@dataclass(frozen=True)
class MigrationProgress:
    """How far a migration is, as the hypervisor reports it (bytes of guest memory)."""

    total_bytes: int
    remaining_bytes: int
    iteration: int = 0  # passes over the guest's memory; many: the guest dirties it fast
    downtime_ms: int | None = None  # once done: how long the guest was paused for the switch-over

    @property
    def percent(self) -> int:
        if not self.total_bytes:
            return 0
        return max(0, min(100, 100 * (self.total_bytes - self.remaining_bytes) // self.total_bytes))


def check_hot_resize(info: DomainInfo, *, vcpus: int, memory_mb: int) -> int:
    """Whether a running domain can grow to `vcpus`/`memory_mb` in place; returns the memory
    to add (MiB). Raises Unsupported with the reason otherwise."""
    if vcpus < info.vcpus or memory_mb < info.memory_mb:
        raise Unsupported(f"{info.name} is running: vCPUs and memory are only added to it, never taken away")
    if vcpus > max(info.max_vcpus, info.vcpus):
        raise Unsupported(f"{info.name} was started with room for {max(info.max_vcpus, info.vcpus)} vCPUs")
    added = memory_mb - info.memory_mb
    if added and memory_mb > info.max_memory_mb:
        raise Unsupported(f"{info.name} was started with room for {max(info.max_memory_mb, info.memory_mb)} MiB")
    if added % HOTPLUG_MEMORY_STEP_MB:
        raise Unsupported(f"memory is hot-added in steps of {HOTPLUG_MEMORY_STEP_MB} MiB, not {added} MiB")
    return added


class ComputeDriver(abc.ABC):
    """One hypervisor host, reached by a URI (`qemu:///system`, `qemu+ssh://host/system`...)."""

    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, uri: str):
        self.uri = uri

    @abc.abstractmethod
    def host_capacity(self) -> HostCapacity:
        """Read what the host has: CPUs, memory, arch, CPU model, NUMA, PCI devices, KVM."""

    @abc.abstractmethod
    def ensure_domain(self, spec: DomainSpec) -> DomainInfo:
        """Define the domain if missing and start it if not running.

        :param spec: the wanted domain; an existing domain of the same name is kept as it is.
        """

    @abc.abstractmethod
    def domain_info(self, name: str) -> DomainInfo:
        """State of one domain; raises NotFound when it does not exist."""

    @abc.abstractmethod
    def list_domains(self) -> list[DomainInfo]:
        """Every domain on the host (the reconciler filters ours by name and labels)."""

    @abc.abstractmethod
    def start_domain(self, name: str) -> DomainInfo:
        """Power on; a running domain stays running."""

    @abc.abstractmethod
    def stop_domain(self, name: str, *, force: bool = False) -> DomainInfo:
        """ACPI shutdown request (returns at once), or power off with `force`."""

    @abc.abstractmethod
    def reboot_domain(self, name: str, *, hard: bool = False) -> DomainInfo:
        """ACPI reboot, or reset with `hard`."""

    @abc.abstractmethod
    def delete_domain(self, name: str, *, missing_ok: bool = True) -> None:
        """Power off and undefine; a missing domain is fine unless `missing_ok` is False."""

    @abc.abstractmethod
    def redefine_domain(self, spec: DomainSpec) -> DomainInfo:
        """Replace the definition of a shut-off domain (new size or image); the domain keeps
        its power state (off). Raises DriverError when it is running."""

    @abc.abstractmethod
    def migrate_domain(self, name: str, target: ComputeDriver, *, live: bool, address: str,
                       timeout: float = MIGRATION_TIMEOUT, max_downtime_ms: int = MIGRATION_MAX_DOWNTIME_MS,
                       progress: Callable[[MigrationProgress], None] | None = None) -> DomainInfo:
        """Move the domain to `target` (a driver of the same kind): it is defined there and
        undefined here. Only what the target reaches moves: the domain's disks must be shared
        storage (RBD) and its files (kernel, serial log folder) present there.

        :param live: a running guest keeps running while its memory is copied and pauses only
            for the last pass (at most `max_downtime_ms`; a guest dirtying memory faster than it
            is copied is slowed down until it converges). False: a running guest is paused for
            the whole copy; a shut-off domain moves its definition only (it cannot move live).
        :param address: the target's management address: the migration stream goes there and
            the guest's VNC display listens there.
        :param timeout: seconds; a migration not done by then is aborted and the guest keeps
            running here.
        :param progress: called on the caller's thread about every second while memory is
            copied, and once more when done (with the downtime).
        :returns: the domain on the target. Raises NotFound when it is not here, DriverError
            when the migration failed (the domain is then still here).
        """

    @abc.abstractmethod
    def hot_resize(self, name: str, *, vcpus: int, memory_mb: int) -> DomainInfo:
        """Grow a running domain to `vcpus` and `memory_mb`, live and in its definition: vCPUs
        are plugged up to its max_vcpus, memory comes as one DIMM of the difference (a multiple
        of HOTPLUG_MEMORY_STEP_MB) up to its max_memory_mb. What is there already is kept, so a
        re-run finishes a half-done resize. Raises Unsupported when the domain has no room for
        it or the resize would shrink it, DriverError when the hypervisor refuses."""

    @abc.abstractmethod
    def attach_disk(self, name: str, disk: DiskSpec) -> DomainInfo:
        """Plug a disk in: into the running guest (hot plug) and the persistent definition.
        A disk already at that target is kept."""

    @abc.abstractmethod
    def detach_disk(self, name: str, target: str) -> DomainInfo:
        """Unplug the disk at `target`. A running guest must release it (ACPI hot unplug):
        raises DriverError when it does not within DETACH_TIMEOUT. Missing is fine."""

    @abc.abstractmethod
    def attach_interface(self, name: str, nic: NicSpec) -> DomainInfo:
        """Plug a NIC in (hot when running; kept in the definition); no-op when its MAC is there."""

    @abc.abstractmethod
    def detach_interface(self, name: str, mac: str) -> DomainInfo:
        """Unplug the NIC with this MAC (live and from the definition); no-op when absent."""

    @abc.abstractmethod
    def resize_disk(self, name: str, target: str, size_bytes: int) -> None:
        """Grow a disk under a running guest, which sees the new size at once."""

    @abc.abstractmethod
    def snapshot_disk(self, name: str, target: str, snapshot: str) -> None:
        """An internal snapshot of a running guest's qcow2 disk, taken by its QEMU (the file
        is locked while the guest runs, so qemu-img cannot)."""

    @abc.abstractmethod
    def delete_disk_snapshot(self, name: str, target: str, snapshot: str) -> None:
        """Drop such a snapshot through the running guest's QEMU."""

    @abc.abstractmethod
    def ensure_ceph_secret(self, uuid: str, user: str, key: bytes) -> None:
        """Hold a cephx key as a libvirt secret (private: never readable back) under `uuid`,
        which RBD disks name in their <auth>. An existing secret gets the key again."""

    def console_log(self, path: str, *, limit: int) -> str:
        """The last `limit` bytes of a domain's serial console log (the file of its spec)."""
        raise Unsupported(f"{type(self).__name__} cannot read console logs")

    def set_user_password(self, name: str, user: str, password: str) -> None:
        """Set a guest account's password through the QEMU guest agent."""
        raise Unsupported(f"{type(self).__name__} cannot set guest passwords")

    def watch_events(self, on_event, stop) -> None:
        """Call `on_event(DomainEvent)` for every domain lifecycle change until `stop` (a
        threading.Event) is set. Blocks; raises Transient when the host connection is lost."""
        raise Unsupported(f"{type(self).__name__} does not report events")
