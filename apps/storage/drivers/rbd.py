"""The production backend: Ceph RBD through Debian's `rados`/`rbd` bindings (imported lazily: they
exist only where Ceph's client packages are installed, see scripts/lib.sh ensure_ceph_bindings).

One cluster connection per pool and process, opened on first use and reopened after an error.
Image bases are imported once (raw, by qemu-img straight into RBD) with a protected snapshot
`base`; volumes of an image are clones of it (copy-on-write). Full copies are deep copies.
Guests reach volumes over the network (`<disk type='network'>` with a libvirt secret holding
the cephx key), so every host of the region can use them.

Config: {"conf": "/etc/ceph/ceph.conf", "user": "portal", "pool": "volumes",
         "keyring": "/etc/ceph/ceph.client.portal.keyring", "secret_uuid": "…"}."""

from __future__ import annotations

import base64
import re
import threading
import uuid

from apps.compute.drivers.base import DiskSpec
from apps.storage.drivers import qemuimg
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

BASE_SNAPSHOT = "base"  # the protected snapshot of an image base that volumes are cloned from
CONNECT_TIMEOUT = 10  # seconds


def _bindings():
    try:
        import rados
        import rbd
    except ImportError as exc:
        raise StorageError("the Ceph client bindings (python3-rados, python3-rbd) are not installed") from exc
    return rados, rbd


class RbdDriver(StorageDriver):
    backend = "rbd"

    def __init__(self, config: dict):
        super().__init__(config)
        self._cluster = None
        self._lock = threading.Lock()

    # --- connection --------------------------------------------------------------------------

    def _ioctx(self):
        """An I/O context on the pool (the caller closes it); the cluster connection is shared."""
        rados, _rbd = _bindings()
        with self._lock:
            if self._cluster is None:
                options = {"keyring": self.config["keyring"]} if self.config.get("keyring") else {}
                cluster = rados.Rados(conffile=self.config["conf"], name=f"client.{self.config['user']}",
                                      conf=options)
                try:
                    cluster.connect(timeout=CONNECT_TIMEOUT)
                except rados.Error as exc:
                    raise Transient(f"cannot reach the Ceph cluster: {exc}") from exc
                self._cluster = cluster
            try:
                return self._cluster.open_ioctx(self.config["pool"])
            except rados.ObjectNotFound as exc:
                raise StorageError(f"no RBD pool {self.config['pool']}") from exc
            except rados.Error as exc:
                self._cluster.shutdown()
                self._cluster = None
                raise Transient(f"Ceph: {exc}") from exc

    def _run(self, fn):
        """fn(rbd, ioctx) with the pool open, librbd errors mapped to storage errors."""
        rados, rbd = _bindings()
        ioctx = self._ioctx()
        try:
            return fn(rbd, ioctx)
        except rbd.ImageNotFound as exc:
            raise NotFound(str(exc)) from exc
        except (rbd.ImageBusy, rbd.ImageHasSnapshots) as exc:
            raise InUse(str(exc)) from exc
        except rbd.NoSpace as exc:
            raise NoSpace(str(exc)) from exc
        except (rbd.Error, rados.Error) as exc:
            raise StorageError(f"Ceph: {exc}") from exc
        finally:
            ioctx.close()

    def _features(self, rbd) -> int:
        return (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK | rbd.RBD_FEATURE_OBJECT_MAP
                | rbd.RBD_FEATURE_FAST_DIFF | rbd.RBD_FEATURE_DEEP_FLATTEN)

    # --- the contract -----------------------------------------------------------------------

    def usage(self) -> PoolUsage:
        def read(rbd, ioctx):
            stats = self._cluster.get_cluster_stats()
            used = ioctx.get_stats()["num_bytes"]
            return PoolUsage(capacity_bytes=stats["kb"] * 1024, allocated_bytes=used,
                             available_bytes=stats["kb_avail"] * 1024)

        return self._run(read)

    def _exists(self, rbd, ioctx, name: str) -> bool:
        return name in rbd.RBD().list(ioctx)

    def create_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        def create(rbd, ioctx):
            if not self._exists(rbd, ioctx, name):
                rbd.RBD().create(ioctx, name, size_bytes, old_format=False, features=self._features(rbd))

        self._run(create)
        return self.volume_info(name)

    def _target(self, name: str) -> str:
        """The RBD image `name` as QEMU's rbd driver names it, with this pool's credentials."""
        uri = f"rbd:{self.config['pool']}/{name}:id={self.config['user']}:conf={self.config['conf']}"
        return uri + (f":keyring={self.config['keyring']}" if self.config.get("keyring") else "")

    def read_args(self, name: str, *, snapshot: str = "") -> list[str]:
        return ["-f", "raw", self._target(f"{name}@{snapshot}" if snapshot else name)]

    def receive(self, name: str, source: list[str], *, progress=None) -> VolumeInfo:
        """qemu-img writes the copy raw under a temporary name, renamed when complete, so a
        killed copy leaves no usable half."""
        if not self._run(lambda rbd, ioctx: self._exists(rbd, ioctx, name)):
            partial = f"{name}.part"
            self.delete_volume(partial)
            try:
                qemuimg.convert(source, self._target(partial), target_format="raw", progress=progress)
            except StorageError:
                self.delete_volume(partial)
                raise
            self._run(lambda rbd, ioctx: rbd.RBD().rename(ioctx, partial, name))
        return self.volume_info(name)

    def import_image(self, name: str, source_path: str) -> VolumeInfo:
        """The image base: the file received, then its `base` snapshot protected for clones."""
        self.receive(name, [source_path])

        def protect(rbd, ioctx):
            with rbd.Image(ioctx, name) as image:
                if BASE_SNAPSHOT not in [s["name"] for s in image.list_snaps()]:
                    image.create_snap(BASE_SNAPSHOT)
                if not image.is_protected_snap(BASE_SNAPSHOT):
                    image.protect_snap(BASE_SNAPSHOT)

        self._run(protect)
        return self.volume_info(name)

    def clone_image(self, name: str, base: str, size_bytes: int) -> VolumeInfo:
        def clone(rbd, ioctx):
            if not self._exists(rbd, ioctx, base):
                raise NotFound(f"no image base {base}")
            if not self._exists(rbd, ioctx, name):
                rbd.RBD().clone(ioctx, base, BASE_SNAPSHOT, ioctx, name, features=self._features(rbd))

        self._run(clone)
        return self.resize_volume(name, size_bytes)

    def copy_volume(self, name: str, source: str, size_bytes: int, *, snapshot: str = "") -> VolumeInfo:
        def copy(rbd, ioctx):
            if self._exists(rbd, ioctx, name):
                return
            partial = f"{name}.part"
            if self._exists(rbd, ioctx, partial):
                rbd.RBD().remove(ioctx, partial)
            # copy() takes the data only (the snapshot's, or the head's through any parent), no history.
            with rbd.Image(ioctx, source, snapshot=snapshot or None, read_only=True) as origin:
                origin.copy(ioctx, partial, features=self._features(rbd))
            rbd.RBD().rename(ioctx, partial, name)

        self._run(copy)
        return self.resize_volume(name, size_bytes)

    def resize_volume(self, name: str, size_bytes: int) -> VolumeInfo:
        def grow(rbd, ioctx):
            with rbd.Image(ioctx, name) as image:
                if image.size() < size_bytes:
                    image.resize(size_bytes)

        self._run(grow)
        return self.volume_info(name)

    def delete_volume(self, name: str, *, missing_ok: bool = True) -> None:
        def delete(rbd, ioctx):
            if not self._exists(rbd, ioctx, name):
                if missing_ok:
                    return
                raise NotFound(f"no volume {name}")
            with rbd.Image(ioctx, name) as image:
                children = [c for snap in image.list_snaps() for c in self._children(rbd, ioctx, name, snap["name"])]
                if children:
                    raise InUse(f"{name} is the base of {', '.join(sorted(children))}")
                for snap in list(image.list_snaps()):
                    if image.is_protected_snap(snap["name"]):
                        image.unprotect_snap(snap["name"])
                    image.remove_snap(snap["name"])
            rbd.RBD().remove(ioctx, name)

        self._run(delete)

    def _children(self, rbd, ioctx, name: str, snapshot: str) -> list[str]:
        with rbd.Image(ioctx, name, snapshot=snapshot, read_only=True) as image:
            return [child[1] for child in image.list_children()]

    def volume_info(self, name: str) -> VolumeInfo:
        def info(rbd, ioctx):
            with rbd.Image(ioctx, name, read_only=True) as image:
                try:
                    parent = image.parent_info()[1]
                except rbd.ImageNotFound:
                    parent = ""
                snapshots = tuple(s["name"] for s in image.list_snaps() if s["name"] != BASE_SNAPSHOT)
                return VolumeInfo(name=name, size_bytes=image.size(), allocated_bytes=self._allocated(image),
                                  parent=parent, snapshots=snapshots)

        return self._run(info)

    @staticmethod
    def _allocated(image) -> int:
        """Bytes the image holds itself (not its parent's): its extents, from the object map."""
        extents = []

        def seen(offset: int, length: int, exists: bool) -> None:
            if exists:
                extents.append(length)

        image.diff_iterate(0, image.size(), None, seen, include_parent=False, whole_object=True)
        return sum(extents)

    def list_volumes(self, prefix: str = "") -> list[VolumeInfo]:
        names = self._run(lambda rbd, ioctx: sorted(rbd.RBD().list(ioctx)))
        return self._infos(n for n in names if n.startswith(prefix) and not n.endswith(".part"))

    def create_snapshot(self, volume: str, snapshot: str) -> None:
        def create(rbd, ioctx):
            with rbd.Image(ioctx, volume) as image:
                if snapshot not in [s["name"] for s in image.list_snaps()]:
                    image.create_snap(snapshot)

        self._run(create)

    def delete_snapshot(self, volume: str, snapshot: str, *, missing_ok: bool = True) -> None:
        def delete(rbd, ioctx):
            with rbd.Image(ioctx, volume) as image:
                if snapshot not in [s["name"] for s in image.list_snaps()]:
                    if missing_ok:
                        return
                    raise NotFound(f"no snapshot {snapshot} of {volume}")
                if image.is_protected_snap(snapshot):
                    children = self._children(rbd, ioctx, volume, snapshot)
                    if children:
                        raise InUse(f"volumes cloned from {snapshot} depend on it: {', '.join(sorted(children))}")
                    image.unprotect_snap(snapshot)
                image.remove_snap(snapshot)

        try:
            self._run(delete)
        except NotFound:
            if not missing_ok:
                raise

    def rollback_snapshot(self, volume: str, snapshot: str) -> None:
        def rollback(rbd, ioctx):
            with rbd.Image(ioctx, volume) as image:
                if snapshot not in [s["name"] for s in image.list_snaps()]:
                    raise NotFound(f"no snapshot {snapshot} of {volume}")
                image.rollback_to_snap(snapshot)

        self._run(rollback)

    @property
    def secret_uuid(self) -> str:
        """The libvirt secret of this pool's key on every host (stable: derived from the pool)."""
        derived = uuid.uuid5(uuid.NAMESPACE_URL, f"cloudportal:{self.config.get('name') or self.config['pool']}")
        return self.config.get("secret_uuid") or str(derived)

    def host_secret(self) -> tuple[str, str, bytes]:
        return self.secret_uuid, self.config["user"], self._cephx_key()

    def _cephx_key(self) -> bytes:
        """The user's key from its keyring file (`key = AQ…`), decoded as libvirt wants it."""
        try:
            text = open(self.config["keyring"]).read()
        except (KeyError, OSError) as exc:
            raise StorageError(f"cannot read the keyring of client.{self.config['user']}: {exc}") from exc
        found = re.search(r"^\s*key\s*=\s*(\S+)", text, re.MULTILINE)
        if found is None:
            raise StorageError(f"no key in the keyring of client.{self.config['user']}")
        return base64.b64decode(found.group(1))

    def disk_source(self, name: str) -> DiskSpec:
        def monitors(rbd, ioctx):
            if not self._exists(rbd, ioctx, name):
                raise NotFound(f"no volume {name}")
            return self._monitors()

        return DiskSpec(path=f"{self.config['pool']}/{name}", format="raw", protocol="rbd",
                        hosts=self._run(monitors), auth_user=self.config["user"], secret_uuid=self.secret_uuid)

    def _monitors(self) -> tuple[tuple[str, int], ...]:
        """The monitors' legacy (v1) addresses, which QEMU's librbd takes as host:port (read
        from the connected cluster's configuration)."""
        value = self._cluster.conf_get("mon_host") or ""
        found = re.findall(r"v1:([\d.]+):(\d+)", value) or re.findall(r"([\d.]+):(\d+)", value)
        return tuple((host, int(port)) for host, port in found)
