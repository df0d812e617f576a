"""The storage driver contract against a real libvirt `dir` pool of qcow2 files."""

import subprocess
import uuid

import pytest
from django.conf import settings

from apps.compute.drivers.base import Transient
from apps.compute.drivers.libvirt import connection
from apps.storage.drivers.dirpool import DirPoolDriver
from tests.contracts import storage_driver as contract

pytestmark = [pytest.mark.libvirt, pytest.mark.integration]


class QemuIoProbe:
    """Content checks with qemu-io on the pool's files (64 KiB at offset 0)."""

    def __init__(self, driver: DirPoolDriver):
        self.driver = driver

    def _path(self, name: str) -> str:
        return self.driver.disk_source(name).path

    def write(self, name: str, byte: int) -> None:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {byte} 0 64k", self._path(name)], check=True,
                       capture_output=True)

    def holds(self, name: str, byte: int) -> bool:
        done = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-U", "-c", f"read -P {byte} 0 64k", self._path(name)],
                              capture_output=True, text=True)
        return done.returncode == 0 and "verification failed" not in done.stdout


@pytest.fixture
def dir_pool(tmp_path_factory):
    """A throwaway pool under PORTAL_LIBVIRT_DIR (QEMU's user must reach it), undefined after."""
    try:
        conn = connection(settings.PORTAL_LIBVIRT_URI)
    except Transient as exc:
        pytest.skip(f"libvirtd not reachable at {settings.PORTAL_LIBVIRT_URI} ({exc}); `make test` starts it")
    name = f"contract-{uuid.uuid4().hex[:8]}"
    path = settings.PORTAL_LIBVIRT_DIR / "test-pools" / name
    driver = DirPoolDriver({"uri": settings.PORTAL_LIBVIRT_URI, "path": str(path), "name": name})
    yield driver
    pool = conn.storagePoolLookupByName(name)
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


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_dir_pool_keeps_the_contract(check, dir_pool, image):
    check(dir_pool, QemuIoProbe(dir_pool), image)


def test_a_dir_pool_reports_its_filesystem(dir_pool):
    usage = dir_pool.usage()
    assert usage.capacity_bytes > 0 and 0 <= usage.available_bytes <= usage.capacity_bytes


def test_an_imported_image_keeps_its_content(dir_pool, image):
    probe = QemuIoProbe(dir_pool)
    dir_pool.import_image("img-content", image)
    clone = dir_pool.clone_image("vol-content", "img-content", 64 * contract.MiB)
    assert probe.holds("vol-content", 126) and clone.parent.endswith("img-content")
    dir_pool.delete_volume("vol-content")
    dir_pool.delete_volume("img-content")
