"""The storage driver contract against the throwaway Ceph cluster (RBD), as client.portal."""

import subprocess

import pytest

from apps.storage.drivers.rbd import RbdDriver
from tests.contracts import storage_driver as contract

pytestmark = [pytest.mark.ceph, pytest.mark.integration]


class RbdProbe:
    """Content checks with librbd (64 KiB at offset 0)."""

    def __init__(self, driver: RbdDriver):
        self.driver = driver

    def _with_image(self, name: str, fn):
        return self.driver._run(lambda rbd, ioctx: _use(rbd, ioctx, name, fn))

    def write(self, name: str, byte: int) -> None:
        self._with_image(name, lambda image: image.write(bytes([byte]) * 65536, 0))

    def holds(self, name: str, byte: int) -> bool:
        return self._with_image(name, lambda image: image.read(0, 65536) == bytes([byte]) * 65536)


def _use(rbd, ioctx, name, fn):
    with rbd.Image(ioctx, name) as image:
        return fn(image)


@pytest.fixture
def rbd_driver(ceph_cluster):
    driver = RbdDriver({"conf": ceph_cluster.conf, "user": ceph_cluster.user, "pool": ceph_cluster.pool,
                        "keyring": ceph_cluster.keyring})
    yield driver
    for volume in driver.list_volumes("vol-ct-") + driver.list_volumes("img-ct-"):  # after a failed check
        driver.delete_volume(volume.name)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), "32M"], check=True, capture_output=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 126 0 64k", str(path)], check=True, capture_output=True)
    return str(path)


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_rbd_keeps_the_contract(check, rbd_driver, image):
    check(rbd_driver, RbdProbe(rbd_driver), image)


def test_rbd_disks_are_network_disks_with_the_monitors(rbd_driver, image):
    rbd_driver.create_volume("vol-ct-disk", 64 * contract.MiB)
    disk = rbd_driver.disk_source("vol-ct-disk")
    assert (disk.protocol, disk.format, disk.path) == ("rbd", "raw", f"{rbd_driver.config['pool']}/vol-ct-disk")
    assert disk.hosts and all(port > 0 for _host, port in disk.hosts)
    rbd_driver.import_image("img-ct-content", image)
    rbd_driver.clone_image("vol-ct-content", "img-ct-content", 64 * contract.MiB)
    assert RbdProbe(rbd_driver).holds("vol-ct-content", 126)  # the image's data, through the clone
    rbd_driver.delete_volume("vol-ct-content")
    rbd_driver.delete_volume("img-ct-content")
    rbd_driver.delete_volume("vol-ct-disk")
