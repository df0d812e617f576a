"""The storage driver contract against the throwaway Ceph cluster (RBD), as client.portal."""

import pytest

from apps.storage.drivers.rbd import RbdDriver
from tests.contracts import storage_driver as contract
from tests.integration.storage.probes import QemuIoProbe, RbdProbe

pytestmark = [pytest.mark.ceph, pytest.mark.integration]


@pytest.fixture
def rbd_driver(ceph_cluster):
    driver = RbdDriver({"conf": ceph_cluster.conf, "user": ceph_cluster.user, "pool": ceph_cluster.pool,
                        "keyring": ceph_cluster.keyring})
    yield driver
    for volume in driver.list_volumes("vol-ct-") + driver.list_volumes("img-ct-"):  # after a failed check
        driver.delete_volume(volume.name)


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



@pytest.mark.libvirt
def test_rbd_and_dir_pools_copy_both_ways(rbd_driver, make_dir_pool):
    """Backups across backends: a dir pool's volume into RBD and back, and the other way."""
    local = make_dir_pool()
    contract.check_copy_between_pools(local, QemuIoProbe(local), rbd_driver, RbdProbe(rbd_driver))
    contract.check_copy_between_pools(rbd_driver, RbdProbe(rbd_driver), local, QemuIoProbe(local))
