"""The contract every StorageDriver keeps. Run against the fake (tests/unit), the libvirt dir
pool and Ceph RBD (tests/integration), so the fake cannot drift from the real backends.

Each check gets the driver, a probe that writes a byte pattern into a volume and tells whether
a volume holds it (through the backend's own tools), and the path of a small qcow2 image."""

from typing import Protocol

import pytest

from apps.storage.drivers.base import InUse, NotFound, StorageDriver

MiB = 1024 ** 2


class Probe(Protocol):
    def write(self, name: str, byte: int) -> None: ...

    def holds(self, name: str, byte: int) -> bool: ...


def check_create_grow_delete(driver: StorageDriver, probe: Probe, image: str) -> None:
    created = driver.create_volume("vol-ct-a", 64 * MiB)
    assert (created.name, created.size_bytes, created.parent) == ("vol-ct-a", 64 * MiB, "")
    assert driver.create_volume("vol-ct-a", 32 * MiB).size_bytes == 64 * MiB  # exists: kept as it is
    assert driver.resize_volume("vol-ct-a", 128 * MiB).size_bytes == 128 * MiB
    assert driver.resize_volume("vol-ct-a", 64 * MiB).size_bytes == 128 * MiB  # never shrinks
    assert "vol-ct-a" in [v.name for v in driver.list_volumes("vol-ct-")]
    usage = driver.usage()
    # 0 capacity: the backend does not tell (Ceph reports usage through its manager daemon).
    assert usage.capacity_bytes == 0 or 0 <= usage.available_bytes <= usage.capacity_bytes
    source = driver.disk_source("vol-ct-a")
    assert source.path.endswith("vol-ct-a") and source.protocol in ("", "rbd")
    driver.delete_volume("vol-ct-a")
    with pytest.raises(NotFound):
        driver.volume_info("vol-ct-a")
    driver.delete_volume("vol-ct-a")  # missing is fine by default
    with pytest.raises(NotFound):
        driver.delete_volume("vol-ct-a", missing_ok=False)


def check_clone_over_an_image_base(driver: StorageDriver, probe: Probe, image: str) -> None:
    base = driver.import_image("img-ct-base", image)
    assert driver.import_image("img-ct-base", image).name == base.name  # imported once
    clone = driver.clone_image("vol-ct-boot", "img-ct-base", 256 * MiB)
    assert clone.size_bytes == 256 * MiB and clone.parent
    probe.write("vol-ct-boot", 0x5A)
    assert probe.holds("vol-ct-boot", 0x5A) and not probe.holds("img-ct-base", 0x5A)  # copy-on-write
    with pytest.raises(InUse):
        driver.delete_volume("img-ct-base")
    driver.delete_volume("vol-ct-boot")
    driver.delete_volume("img-ct-base")
    assert driver.list_volumes("img-ct-") == []


def check_snapshot_copy_rollback(driver: StorageDriver, probe: Probe, image: str) -> None:
    driver.create_volume("vol-ct-s", 64 * MiB)
    probe.write("vol-ct-s", 0x11)
    driver.create_snapshot("vol-ct-s", "snap-ct-1")
    driver.create_snapshot("vol-ct-s", "snap-ct-1")  # idempotent
    assert driver.volume_info("vol-ct-s").snapshots == ("snap-ct-1",)
    probe.write("vol-ct-s", 0x22)

    copy = driver.copy_volume("vol-ct-from-snap", "vol-ct-s", 96 * MiB, snapshot="snap-ct-1")
    assert (copy.size_bytes, copy.parent) == (96 * MiB, "")  # independent of its source
    assert probe.holds("vol-ct-from-snap", 0x11)
    clone = driver.copy_volume("vol-ct-clone", "vol-ct-s", 64 * MiB)
    assert probe.holds("vol-ct-clone", 0x22)

    driver.rollback_snapshot("vol-ct-s", "snap-ct-1")
    assert probe.holds("vol-ct-s", 0x11)
    with pytest.raises(NotFound):
        driver.rollback_snapshot("vol-ct-s", "snap-ct-none")
    driver.delete_snapshot("vol-ct-s", "snap-ct-1")
    driver.delete_snapshot("vol-ct-s", "snap-ct-1")  # missing is fine by default
    with pytest.raises(NotFound):
        driver.delete_snapshot("vol-ct-s", "snap-ct-1", missing_ok=False)
    assert driver.volume_info("vol-ct-s").snapshots == ()
    for name in ("vol-ct-s", "vol-ct-from-snap", clone.name):
        driver.delete_volume(name)


CHECKS = [check_create_grow_delete, check_clone_over_an_image_base, check_snapshot_copy_rollback]


def check_copy_between_pools(source: StorageDriver, source_probe: Probe, target: StorageDriver,
                             target_probe: Probe) -> None:
    """What a backup and its restore do: qemu-img reads one pool's object (a snapshot of it, or
    its head) and writes a new object in another pool, of any backend."""
    source.create_volume("vol-ct-src", 64 * MiB)
    source_probe.write("vol-ct-src", 0x33)
    source.create_snapshot("vol-ct-src", "snap-ct-bak")
    source_probe.write("vol-ct-src", 0x44)
    seen = []
    copied = target.receive("bak-ct-1", source.read_args("vol-ct-src", snapshot="snap-ct-bak"), progress=seen.append)
    assert copied.size_bytes == 64 * MiB and target_probe.holds("bak-ct-1", 0x33)
    assert seen and seen[-1] == 100
    target.receive("bak-ct-2", source.read_args("vol-ct-src"))
    assert target_probe.holds("bak-ct-2", 0x44)
    assert target.receive("bak-ct-2", ["/nonexistent"]).size_bytes == 64 * MiB  # exists: kept
    back = source.receive("vol-ct-restored", target.read_args("bak-ct-1"))
    assert back.size_bytes == 64 * MiB and source_probe.holds("vol-ct-restored", 0x33)
    for driver, name in ((target, "bak-ct-1"), (target, "bak-ct-2"), (source, "vol-ct-restored"),
                         (source, "vol-ct-src")):
        driver.delete_volume(name)
