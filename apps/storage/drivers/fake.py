"""In-process stand-in for a storage pool, for unit tests: the same contract as the real
drivers (tests/contracts/storage_driver.py runs against all of them). State is per pool name
and process-wide, like the backend it imitates; `reset()` empties it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from apps.compute.drivers.base import DiskSpec
from apps.storage.drivers.base import (
    GiB,
    InUse,
    NotFound,
    PoolUsage,
    StorageDriver,
    VolumeInfo,
)

CAPACITY = 1024 * GiB


@dataclass
class _Volume:
    size: int
    parent: str = ""
    # What the volume holds, as one byte value that tests write and read (see `probe`).
    pattern: int = 0
    snapshots: dict[str, tuple[int, int]] = field(default_factory=dict)  # name → (size, pattern) when taken


_pools: dict[str, dict[str, _Volume]] = {}
_lock = threading.Lock()


def reset() -> None:
    with _lock:
        _pools.clear()


class FakeStorageDriver(StorageDriver):
    backend = "fake"

    @property
    def _volumes(self) -> dict[str, _Volume]:
        return _pools.setdefault(self.config.get("name", "fake"), {})

    def _get(self, name: str) -> _Volume:
        try:
            return self._volumes[name]
        except KeyError:
            raise NotFound(f"no volume {name}") from None

    def _info(self, name: str) -> VolumeInfo:
        volume = self._get(name)
        return VolumeInfo(name=name, size_bytes=volume.size, allocated_bytes=0, parent=volume.parent,
                          snapshots=tuple(volume.snapshots))

    def usage(self) -> PoolUsage:
        with _lock:
            used = sum(v.size for v in self._volumes.values())
        return PoolUsage(capacity_bytes=CAPACITY, allocated_bytes=used, available_bytes=CAPACITY - used)

    def create_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        with _lock:
            self._volumes.setdefault(name, _Volume(size=size_bytes))
            return self._info(name)

    def import_image(self, name: str, source_path: str) -> VolumeInfo:
        return self.receive(name, [source_path])

    def read_args(self, name: str, *, snapshot: str = "") -> list[str]:
        return ["fake", self.config.get("name", "fake"), name, snapshot]

    def receive(self, name: str, source: list[str], *, progress=None) -> VolumeInfo:
        with _lock:
            if source[0] == "fake":  # another fake pool's object
                _, pool, origin_name, snapshot = source
                origin = _pools.get(pool, {}).get(origin_name)
                if origin is None:
                    raise NotFound(f"no volume {origin_name} in {pool}")
                if snapshot and snapshot not in origin.snapshots:
                    raise NotFound(f"no snapshot {snapshot} of {origin_name}")
                size, pattern = origin.snapshots[snapshot] if snapshot else (origin.size, origin.pattern)
            else:  # a file
                size, pattern = GiB, 0
            self._volumes.setdefault(name, _Volume(size=size, pattern=pattern))
        if progress is not None:
            progress(100)
        return self.volume_info(name)

    def export(self, name: str, path: str, *, snapshot: str = "", progress=None):
        """A real (empty) qcow2 of the volume's size, so image checks downstream work."""
        from apps.storage.drivers import qemuimg

        qemuimg.run("create", "-f", "qcow2", path, str(self.volume_info(name).size_bytes))
        if progress is not None:
            progress(100)

    def clone_image(self, name: str, base: str, size_bytes: int) -> VolumeInfo:
        with _lock:
            origin = self._get(base)
            self._volumes.setdefault(name, _Volume(size=size_bytes, parent=base, pattern=origin.pattern))
            return self._info(name)

    def copy_volume(self, name: str, source: str, size_bytes: int, *, snapshot: str = "") -> VolumeInfo:
        with _lock:
            origin = self._get(source)
            if snapshot and snapshot not in origin.snapshots:
                raise NotFound(f"no snapshot {snapshot} of {source}")
            size, pattern = origin.snapshots[snapshot] if snapshot else (origin.size, origin.pattern)
            self._volumes.setdefault(name, _Volume(size=max(size_bytes, size), pattern=pattern))
            return self._info(name)

    def resize_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        with _lock:
            volume = self._get(name)
            volume.size = max(volume.size, size_bytes)
            return self._info(name)

    def delete_volume(self, name: str, *, missing_ok: bool = True) -> None:
        with _lock:
            if name not in self._volumes:
                if missing_ok:
                    return
                raise NotFound(f"no volume {name}")
            dependants = sorted(n for n, v in self._volumes.items() if v.parent == name)
            if dependants:
                raise InUse(f"{name} is the base of {', '.join(dependants)}")
            del self._volumes[name]

    def volume_info(self, name: str) -> VolumeInfo:
        with _lock:
            return self._info(name)

    def list_volumes(self, prefix: str = "") -> list[VolumeInfo]:
        with _lock:
            return [self._info(n) for n in sorted(self._volumes) if n.startswith(prefix)]

    def create_snapshot(self, volume: str, snapshot: str) -> None:
        with _lock:
            origin = self._get(volume)
            origin.snapshots.setdefault(snapshot, (origin.size, origin.pattern))

    def delete_snapshot(self, volume: str, snapshot: str, *, missing_ok: bool = True) -> None:
        with _lock:
            origin = self._volumes.get(volume)
            if origin is None or snapshot not in origin.snapshots:
                if missing_ok:
                    return
                raise NotFound(f"no snapshot {snapshot} of {volume}")
            del origin.snapshots[snapshot]

    def rollback_snapshot(self, volume: str, snapshot: str) -> None:
        with _lock:
            origin = self._get(volume)
            if snapshot not in origin.snapshots:
                raise NotFound(f"no snapshot {snapshot} of {volume}")
            origin.pattern = origin.snapshots[snapshot][1]

    def disk_source(self, name: str) -> DiskSpec:
        self.volume_info(name)
        return DiskSpec(path=f"/fake/{self.config.get('name', 'fake')}/{name}", format="qcow2")


class Probe:
    """Writes and reads a volume's content in tests (the contract's data checks)."""

    def __init__(self, driver: FakeStorageDriver):
        self.driver = driver

    def write(self, name: str, byte: int) -> None:
        with _lock:
            self.driver._get(name).pattern = byte

    def holds(self, name: str, byte: int) -> bool:
        with _lock:
            return self.driver._get(name).pattern == byte
