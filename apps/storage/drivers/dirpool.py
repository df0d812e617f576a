"""The embedded default backend: a libvirt storage pool of type `dir` holding qcow2 files.

Volumes are created, cloned over image bases (qcow2 backing files: no copy), grown and deleted
through libvirt's storage pool API; what that API lacks (converting an image, internal qcow2
snapshots, reading a file's backing chain) is done with `qemu-img` on the pool's files, so the
pool must live on this machine (`qemu:///system`). Multi-host clouds use RBD.

Config: {"uri": "qemu:///system", "path": "/var/lib/…/pool", "name": "portal-pool-…"}."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

from apps.compute.drivers.libvirt import connection
from apps.storage.drivers import qemuimg
from apps.compute.drivers.base import DiskSpec
from apps.storage.drivers.base import (
    InUse,
    NoSpace,
    NotFound,
    PoolUsage,
    StorageDriver,
    StorageError,
    Transient,
    VolumeInfo,
)


def _libvirt():
    import libvirt

    return libvirt


REFRESH_WAIT = 30  # seconds a refresh waits for the pool's running jobs (another worker's create)


def _refresh(pool) -> None:
    """Re-read the pool's folder. libvirt refuses while a job runs on the pool (another worker
    creating a volume in it): wait for it rather than fail."""
    libvirt = _libvirt()
    deadline = time.monotonic() + REFRESH_WAIT
    while True:
        try:
            pool.refresh(0)
            return
        except libvirt.libvirtError as exc:
            if "asynchronous jobs" not in exc.get_error_message() or time.monotonic() > deadline:
                raise Transient(f"cannot refresh pool {pool.name()}: {exc.get_error_message()}") from exc
        time.sleep(0.1)


def _backing_path(volume) -> str:
    """The backing file of a libvirt volume ("" for none, or when it was deleted meanwhile)."""
    try:
        xml = volume.XMLDesc(0)
    except _libvirt().libvirtError:
        return ""
    node = ET.fromstring(xml).find("./backingStore/path")
    return node.text if node is not None and node.text else ""


class DirPoolDriver(StorageDriver):
    backend = "dir"

    @property
    def path(self) -> Path:
        return Path(self.config["path"])

    def _pool(self):
        """The libvirt pool, defined, built and started on first use (idempotent). A pool of
        that name at another path is someone else's: refused, never written into."""
        libvirt = _libvirt()
        conn = connection(self.config.get("uri", "qemu:///system"))
        name = self.config["name"]
        try:
            pool = conn.storagePoolLookupByName(name)
            target = ET.fromstring(pool.XMLDesc(0)).findtext("./target/path")
            if target and Path(target) != self.path:
                raise StorageError(f"libvirt pool {name} exists at {target}, not at {self.path}")
        except libvirt.libvirtError:
            xml = (f"<pool type='dir'><name>{escape(name)}</name>"
                   f"<target><path>{escape(str(self.path))}</path></target></pool>")
            try:
                pool = conn.storagePoolDefineXML(xml, 0)
                pool.build(0)
            except libvirt.libvirtError as exc:
                raise StorageError(f"cannot define the pool {name} at {self.path}: {exc.get_error_message()}") from exc
            pool.setAutostart(1)
        try:
            if not pool.isActive():
                pool.create(0)
        except libvirt.libvirtError as exc:
            raise Transient(f"cannot start the pool {name}: {exc.get_error_message()}") from exc
        return pool

    def _volume(self, name: str):
        libvirt = _libvirt()
        pool = self._pool()
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError:
            _refresh(pool)  # a file written by qemu-img behind libvirt's back
            try:
                return pool.storageVolLookupByName(name)
            except libvirt.libvirtError as exc:
                raise NotFound(f"no volume {name} in pool {self.config['name']}") from exc

    def _file(self, name: str) -> Path:
        return self.path / name

    def _create(self, xml: str):
        libvirt = _libvirt()
        try:
            self._pool().createXML(xml, 0)
        except libvirt.libvirtError as exc:
            message = exc.get_error_message()
            raise (NoSpace if "space" in message.lower() else StorageError)(message) from exc

    def usage(self) -> PoolUsage:
        pool = self._pool()
        _refresh(pool)
        _state, capacity, allocation, available = pool.info()
        return PoolUsage(capacity_bytes=capacity, allocated_bytes=allocation, available_bytes=available)

    def create_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        if not self._exists(name):
            self._create(f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size_bytes}</capacity>"
                         "<allocation>0</allocation><target><format type='qcow2'/></target></volume>")
        return self.volume_info(name)

    def import_image(self, name: str, source_path: str) -> VolumeInfo:
        return self.receive(name, [source_path])

    def receive(self, name: str, source: list[str], *, progress=None) -> VolumeInfo:
        if not self._exists(name):
            partial = self._file(f".{name}.part")  # a killed copy leaves no half volume behind
            qemuimg.convert(source, str(partial), target_format="qcow2", progress=progress)
            os.replace(partial, self._file(name))
            os.chmod(self._file(name), 0o644)
        return self.volume_info(name)

    def read_args(self, name: str, *, snapshot: str = "") -> list[str]:
        # -U: read an attached volume without its write lock; a snapshot's data never changes.
        return ["-U", *(["-l", f"snapshot.name={snapshot}"] if snapshot else []), self._volume(name).path()]

    def clone_image(self, name: str, base: str, size_bytes: int) -> VolumeInfo:
        if not self._exists(name):
            base_path = self._volume(base).path()
            self._create(f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size_bytes}</capacity>"
                         "<target><format type='qcow2'/></target>"
                         f"<backingStore><path>{escape(base_path)}</path><format type='qcow2'/></backingStore>"
                         "</volume>")
        return self.volume_info(name)

    def copy_volume(self, name: str, source: str, size_bytes: int, *, snapshot: str = "") -> VolumeInfo:
        info = self.receive(name, self.read_args(source, snapshot=snapshot))
        return self.resize_volume(name, size_bytes) if size_bytes > info.size_bytes else info

    def resize_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        libvirt = _libvirt()
        volume = self._volume(name)
        if volume.info()[1] < size_bytes:
            try:
                volume.resize(size_bytes, 0)
            except libvirt.libvirtError as exc:
                raise StorageError(f"cannot grow {name}: {exc.get_error_message()}") from exc
        return self.volume_info(name)

    def delete_volume(self, name: str, *, missing_ok: bool = True) -> None:
        try:
            volume = self._volume(name)
        except NotFound:
            if missing_ok:
                return
            raise
        path = volume.path()
        # libvirt has read every file's backing store already: no qemu-img per volume.
        dependants = [v.name() for v in self._pool().listAllVolumes(0) if _backing_path(v) == path]
        if dependants:
            raise InUse(f"{name} is the base of {', '.join(sorted(dependants))}")
        try:
            volume.delete(0)
        except _libvirt().libvirtError as exc:
            raise StorageError(f"cannot delete {name}: {exc.get_error_message()}") from exc

    def volume_info(self, name: str) -> VolumeInfo:
        volume = self._volume(name)
        gone = NotFound(f"no volume {name} in pool {self.config['name']}")  # deleted by another worker meanwhile
        try:
            _type, capacity, allocation = volume.info()
            path = volume.path()
        except _libvirt().libvirtError as exc:
            raise gone from exc
        try:
            details = json.loads(qemuimg.run("info", "-U", "--output=json", path))
        except StorageError:
            if not os.path.exists(path):
                raise gone from None
            raise
        return VolumeInfo(
            name=name, size_bytes=capacity, allocated_bytes=allocation,
            parent=details.get("full-backing-filename") or details.get("backing-filename") or "",
            snapshots=tuple(s["name"] for s in details.get("snapshots", [])),
        )

    def list_volumes(self, prefix: str = "") -> list[VolumeInfo]:
        pool = self._pool()
        _refresh(pool)
        return self._infos(n for n in sorted(pool.listVolumes()) if n.startswith(prefix) and not n.startswith("."))

    def _exists(self, name: str) -> bool:
        try:
            self._volume(name)
        except NotFound:
            return False
        return True

    def create_snapshot(self, volume: str, snapshot: str) -> None:
        if snapshot not in self.volume_info(volume).snapshots:
            qemuimg.run("snapshot", "-c", snapshot, self._volume(volume).path())

    def delete_snapshot(self, volume: str, snapshot: str, *, missing_ok: bool = True) -> None:
        try:
            present = snapshot in self.volume_info(volume).snapshots
        except NotFound:
            present = False
        if not present:
            if missing_ok:
                return
            raise NotFound(f"no snapshot {snapshot} of {volume}")
        qemuimg.run("snapshot", "-d", snapshot, self._volume(volume).path())

    def rollback_snapshot(self, volume: str, snapshot: str) -> None:
        if snapshot not in self.volume_info(volume).snapshots:
            raise NotFound(f"no snapshot {snapshot} of {volume}")
        qemuimg.run("snapshot", "-a", snapshot, self._volume(volume).path())

    def disk_source(self, name: str) -> DiskSpec:
        return DiskSpec(path=self._volume(name).path(), format="qcow2")

