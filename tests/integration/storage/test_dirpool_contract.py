"""The storage driver contract against a real libvirt `dir` pool of qcow2 files."""

import pytest

from tests.contracts import storage_driver as contract
from tests.integration.storage.probes import QemuIoProbe

pytestmark = [pytest.mark.libvirt, pytest.mark.integration]


@pytest.fixture
def dir_pool(make_dir_pool):
    return make_dir_pool()


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


def test_dir_pools_copy_between_them(make_dir_pool):
    source, target = make_dir_pool(), make_dir_pool()
    contract.check_copy_between_pools(source, QemuIoProbe(source), target, QemuIoProbe(target))


def test_workers_share_a_pool(dir_pool):
    """Two workers on one pool: while one creates and deletes volumes (libvirt jobs on the
    pool), the other's lookups refresh the pool, which libvirt refuses during a job; the driver
    waits for the job instead of failing (seen with `make run`'s two task workers)."""
    import threading

    errors = []
    dir_pool.create_volume("vol-ct-seen", 16 * contract.MiB)

    def churn():
        try:
            for n in range(40):
                dir_pool.create_volume(f"vol-ct-churn{n}", 16 * contract.MiB)
                dir_pool.delete_volume(f"vol-ct-churn{n}")
        except Exception as exc:  # the assertion below reports it
            errors.append(exc)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        while worker.is_alive():
            dir_pool.list_volumes("vol-ct-")  # refreshes the pool
            dir_pool.usage()
    finally:
        worker.join()
    assert errors == []
    dir_pool.delete_volume("vol-ct-seen")
