"""In-process compute driver for unit tests only: dict state, deterministic, with failure
injection (`fail_next("ensure_domain", Transient("boom"))`). The contract suite in
tests/contracts runs against it and against real libvirt, so it cannot drift."""

from __future__ import annotations

import threading
from dataclasses import replace

from apps.compute.drivers.base import (
    MIGRATION_MAX_DOWNTIME_MS,
    MIGRATION_TIMEOUT,
    RUNNING,
    SHUTOFF,
    AlreadyExists,
    ComputeDriver,
    DiskSpec,
    DomainInfo,
    DomainSpec,
    NicSpec,
    DriverError,
    HostCapacity,
    MigrationProgress,
    NotFound,
    check_hot_resize,
)

# Shared by every FakeDriver of a URI in the process, like a real host would be.
_hosts: dict[str, dict[str, DomainInfo]] = {}
_secrets: dict[tuple[str, str], bytes] = {}  # (uri, uuid) → key
_failures: dict[tuple[str, str], list[Exception]] = {}
_lock = threading.Lock()


def reset() -> None:
    with _lock:
        _hosts.clear()
        _failures.clear()
        _secrets.clear()


def _defined(spec: DomainSpec) -> DomainInfo:
    return DomainInfo(
        name=spec.name, state=SHUTOFF, vcpus=spec.vcpus, memory_mb=spec.memory_mb, vnc_host=spec.vnc_listen,
        labels=spec.labels, disks=tuple(d.target for d in spec.disks), nics=tuple(n.mac for n in spec.nics),
        max_vcpus=max(spec.max_vcpus, spec.vcpus),
        max_memory_mb=spec.max_memory_mb if spec.max_memory_mb > spec.memory_mb else 0,
    )


class FakeDriver(ComputeDriver):
    capabilities = frozenset({"direct_kernel_boot", "vnc", "serial_log"})
    CAPACITY = HostCapacity(
        hostname="fake-host", arch="x86_64", cpu_model="qemu64", vcpus=8, memory_mb=16384, numa_nodes=1,
        kvm_usable=False,
    )

    def fail_next(self, verb: str, error: Exception) -> None:
        with _lock:
            _failures.setdefault((self.uri, verb), []).append(error)

    def _maybe_fail(self, verb: str) -> None:
        with _lock:
            queued = _failures.get((self.uri, verb))
            error = queued.pop(0) if queued else None
        if error is not None:
            raise error

    @property
    def _domains(self) -> dict[str, DomainInfo]:
        return _hosts.setdefault(self.uri, {})

    def _get(self, name: str) -> DomainInfo:
        try:
            return self._domains[name]
        except KeyError:
            raise NotFound(f"Domain not found: no domain with matching name '{name}'") from None

    def _set(self, name: str, **changes) -> DomainInfo:
        with _lock:
            info = replace(self._get(name), **changes)
            self._domains[name] = info
            return info

    def host_capacity(self) -> HostCapacity:
        self._maybe_fail("host_capacity")
        return self.CAPACITY

    def ensure_domain(self, spec: DomainSpec) -> DomainInfo:
        self._maybe_fail("ensure_domain")
        with _lock:
            if spec.name not in self._domains:
                if spec.vcpus < 1 or spec.memory_mb < 16:
                    raise DriverError("invalid domain size")
                self._domains[spec.name] = _defined(spec)
        return self.start_domain(spec.name)

    def domain_info(self, name: str) -> DomainInfo:
        self._maybe_fail("domain_info")
        return self._get(name)

    def list_domains(self) -> list[DomainInfo]:
        return list(self._domains.values())

    def start_domain(self, name: str) -> DomainInfo:
        self._maybe_fail("start_domain")
        info = self._get(name)
        if info.state == RUNNING:
            return info
        return self._set(name, state=RUNNING, vnc_port=self._free_vnc_port())

    def _free_vnc_port(self) -> int:
        used = {d.vnc_port for d in self._domains.values() if d.vnc_port}
        return next(p for p in range(5900, 6900) if p not in used)

    def stop_domain(self, name: str, *, force: bool = False) -> DomainInfo:
        self._maybe_fail("stop_domain")
        # The fake guest honours ACPI at once; the real one may ignore it (the caller forces).
        return self._set(name, state=SHUTOFF, vnc_port=None)

    def reboot_domain(self, name: str, *, hard: bool = False) -> DomainInfo:
        self._maybe_fail("reboot_domain")
        self._get(name)
        return self.start_domain(name)

    def redefine_domain(self, spec: DomainSpec) -> DomainInfo:
        self._maybe_fail("redefine_domain")
        with _lock:
            current = self._domains.get(spec.name)
            if current is not None and current.state == RUNNING:
                raise DriverError(f"domain {spec.name} is running; stop it first")
            self._domains[spec.name] = _defined(spec)
            return self._domains[spec.name]

    def hot_resize(self, name: str, *, vcpus: int, memory_mb: int) -> DomainInfo:
        self._maybe_fail("hot_resize")
        info = self._get(name)
        if info.state != RUNNING:
            raise DriverError(f"domain {name} is not running; resize its definition instead")
        check_hot_resize(info, vcpus=vcpus, memory_mb=memory_mb)
        return self._set(name, vcpus=vcpus, memory_mb=memory_mb)

    def migrate_domain(self, name: str, target: ComputeDriver, *, live: bool, address: str,
                       timeout: float = MIGRATION_TIMEOUT, max_downtime_ms: int = MIGRATION_MAX_DOWNTIME_MS,
                       progress=None) -> DomainInfo:
        self._maybe_fail("migrate_domain")
        if not isinstance(target, FakeDriver) or target.uri == self.uri:
            raise DriverError(f"cannot migrate {name} from {self.uri} to {target.uri}")
        with _lock:
            info = self._get(name)
            if live and info.state != RUNNING:
                raise DriverError(f"domain {name} is not running; it cannot move live")
            if name in target._domains:
                raise AlreadyExists(f"domain {name} already exists on {target.uri}")
            port = target._free_vnc_port() if info.state == RUNNING else None
            moved = target._domains[name] = replace(info, vnc_host=address, vnc_port=port)
            del self._domains[name]
        if progress is not None:
            progress(MigrationProgress(total_bytes=info.memory_mb << 20, remaining_bytes=0, iteration=1,
                                       downtime_ms=0))
        return moved

    def console_log(self, path: str, *, limit: int) -> str:
        return f"fake console of {path}\n"[-limit:]

    def attach_disk(self, name: str, disk: DiskSpec) -> DomainInfo:
        self._maybe_fail("attach_disk")
        info = self._get(name)
        return info if disk.target in info.disks else self._set(name, disks=(*info.disks, disk.target))

    def detach_disk(self, name: str, target: str) -> DomainInfo:
        self._maybe_fail("detach_disk")
        info = self._get(name)
        return self._set(name, disks=tuple(t for t in info.disks if t != target))

    def attach_interface(self, name: str, nic: NicSpec) -> DomainInfo:
        self._maybe_fail("attach_interface")
        info = self._get(name)
        return info if nic.mac in info.nics else self._set(name, nics=(*info.nics, nic.mac))

    def detach_interface(self, name: str, mac: str) -> DomainInfo:
        self._maybe_fail("detach_interface")
        info = self._get(name)
        return self._set(name, nics=tuple(m for m in info.nics if m != mac))

    def resize_disk(self, name: str, target: str, size_bytes: int) -> None:
        self._maybe_fail("resize_disk")
        self._disk(name, target)

    def snapshot_disk(self, name: str, target: str, snapshot: str) -> None:
        self._maybe_fail("snapshot_disk")
        self._disk(name, target)

    def delete_disk_snapshot(self, name: str, target: str, snapshot: str) -> None:
        self._disk(name, target)

    def ensure_ceph_secret(self, uuid: str, user: str, key: bytes) -> None:
        with _lock:
            _secrets[(self.uri, uuid)] = key

    def has_secret(self, uuid: str) -> bool:
        return (self.uri, uuid) in _secrets

    def _disk(self, name: str, target: str) -> None:
        info = self._get(name)
        if info.state != RUNNING or target not in info.disks:
            raise DriverError(f"{name} has no running disk {target}")

    def delete_domain(self, name: str, *, missing_ok: bool = True) -> None:
        self._maybe_fail("delete_domain")
        with _lock:
            if name not in self._domains:
                if missing_ok:
                    return
                raise NotFound(f"Domain not found: no domain with matching name '{name}'")
            del self._domains[name]
