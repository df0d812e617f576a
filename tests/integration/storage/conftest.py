"""Storage fixtures: the throwaway Ceph cluster that `make test` starts once for both runs
(ceph_start in scripts/lib.sh): one mon, one in-memory OSD, no mgr, the pool `rbd`, and
client.portal with `profile rbd` on that pool only, as the portal will have.

- `image` (per test): a small qcow2 file whose first 64 KiB hold 0x7E.
- `make_dir_pool` (per test): throwaway libvirt dir pools under PORTAL_LIBVIRT_DIR/test-pools,
  emptied and undefined after the test.
- `ceph_cluster` (per session): how to reach it, from the PORTAL_TEST_CEPH_* variables the test
  command exports; the test is skipped when there is none (Ceph not installable, or pytest run
  by hand without `make test`). The `rados` and `rbd` bindings are Debian's, made importable in
  .venv by ensure_ceph_bindings; import them inside the tests, so collection works without them.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from apps.compute.drivers.base import Transient
from apps.compute.drivers.libvirt import connection
from apps.storage.drivers.dirpool import DirPoolDriver


@dataclass(frozen=True)
class CephCluster:
    """Connect with ``rados.Rados(conffile=conf, name=f"client.{user}", conf={"keyring": keyring})``."""

    conf: str  # ceph.conf path
    user: str  # client name without "client."
    pool: str
    keyring: str  # the user's keyring path


@pytest.fixture(scope="session")
def ceph_cluster() -> CephCluster:
    conf = os.environ.get("PORTAL_TEST_CEPH_CONF", "")
    if not conf:
        pytest.skip("no Ceph cluster: PORTAL_TEST_CEPH_CONF is unset; `make test` starts one")
    # Set but wrong is a broken environment (a stale export from a stopped cluster), not a skip.
    missing = [name for name in ("PORTAL_TEST_CEPH_USER", "PORTAL_TEST_CEPH_POOL", "PORTAL_TEST_CEPH_KEYRING")
               if not os.environ.get(name)]
    if missing:
        pytest.fail(f"PORTAL_TEST_CEPH_CONF is set but {', '.join(missing)} is not")
    if not Path(conf).is_file():
        pytest.fail(f"PORTAL_TEST_CEPH_CONF={conf} does not exist (a cluster that was stopped?)")
    return CephCluster(
        conf=conf,
        user=os.environ["PORTAL_TEST_CEPH_USER"],
        pool=os.environ["PORTAL_TEST_CEPH_POOL"],
        keyring=os.environ["PORTAL_TEST_CEPH_KEYRING"],
    )


@pytest.fixture
def make_dir_pool():
    """make_dir_pool() -> a throwaway pool under PORTAL_LIBVIRT_DIR (QEMU's user must reach
    it); every pool made is emptied and undefined after the test."""
    try:
        conn = connection(settings.PORTAL_LIBVIRT_URI)
    except Transient as exc:
        pytest.skip(f"libvirtd not reachable at {settings.PORTAL_LIBVIRT_URI} ({exc}); `make test` starts it")
    names = []

    def make() -> DirPoolDriver:
        name = f"contract-{uuid.uuid4().hex[:8]}"
        names.append(name)
        path = settings.PORTAL_LIBVIRT_DIR / "test-pools" / name
        return DirPoolDriver({"uri": settings.PORTAL_LIBVIRT_URI, "path": str(path), "name": name})

    yield make
    for name in names:
        try:
            pool = conn.storagePoolLookupByName(name)
        except Exception:  # never defined: the test failed before using it
            continue
        for volume in pool.listAllVolumes():
            volume.delete(0)
        pool.destroy()
        pool.delete(0)
        pool.undefine()


@pytest.fixture
def image(tmp_path):
    """A small qcow2 with a known first 64 KiB (0x7E)."""
    path = tmp_path / "image.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), "32M"], check=True, capture_output=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 126 0 64k", str(path)], check=True, capture_output=True)
    return str(path)
