"""The contract every ComputeDriver keeps. Run against the fake (tests/unit) and against real
libvirt with QEMU (tests/integration), so the fake cannot drift from the real thing."""

import pytest

from apps.compute.drivers.base import (
    RUNNING, SHUTOFF, ComputeDriver, DiskSpec, DomainSpec, DriverError, NotFound, Unsupported,
)


def spec(name: str, **overrides) -> DomainSpec:
    values = {"name": name, "vcpus": 1, "memory_mb": 128, "virt_type": "qemu",
              "labels": (("tenant", "tn-contract"), ("instance", name))}
    values.update(overrides)
    return DomainSpec(**values)


def check_host_capacity(driver: ComputeDriver) -> None:
    capacity = driver.host_capacity()
    assert capacity.vcpus >= 1 and capacity.memory_mb >= 256
    assert capacity.arch in ("x86_64", "aarch64")
    assert capacity.numa_nodes >= 1


def check_ensure_domain_is_idempotent(driver: ComputeDriver, name: str) -> None:
    first = driver.ensure_domain(spec(name))
    again = driver.ensure_domain(spec(name, vcpus=2))  # an existing domain is kept as it is
    assert (first.state, again.state) == (RUNNING, RUNNING)
    assert (again.name, again.vcpus, again.memory_mb) == (name, 1, 128)
    assert again.vnc_port and again.vnc_port >= 5900
    assert ("tenant", "tn-contract") in again.labels
    assert name in [d.name for d in driver.list_domains()]


def check_power_cycle(driver: ComputeDriver, name: str) -> None:
    driver.ensure_domain(spec(name))
    stopped = driver.stop_domain(name, force=True)
    assert (stopped.state, stopped.vnc_port) == (SHUTOFF, None)
    assert driver.stop_domain(name, force=True).state == SHUTOFF  # stopping a stopped domain is fine
    assert driver.start_domain(name).state == RUNNING
    assert driver.start_domain(name).state == RUNNING
    assert driver.reboot_domain(name, hard=True).state == RUNNING


def check_delete(driver: ComputeDriver, name: str) -> None:
    driver.ensure_domain(spec(name))
    driver.delete_domain(name)
    with pytest.raises(NotFound):
        driver.domain_info(name)
    driver.delete_domain(name)  # missing_ok by default
    with pytest.raises(NotFound):
        driver.delete_domain(name, missing_ok=False)
    with pytest.raises(NotFound):
        driver.start_domain(name)


def check_redefine(driver: ComputeDriver, name: str) -> None:
    driver.ensure_domain(spec(name))
    with pytest.raises(DriverError):
        driver.redefine_domain(spec(name, vcpus=2, memory_mb=192))  # running: refused
    driver.stop_domain(name, force=True)
    resized = driver.redefine_domain(spec(name, vcpus=2, memory_mb=192))
    assert (resized.state, resized.vcpus, resized.memory_mb) == (SHUTOFF, 2, 192)
    started = driver.start_domain(name)
    assert (started.state, started.vcpus, started.memory_mb) == (RUNNING, 2, 192)


def check_hot_resize(driver: ComputeDriver, name: str) -> None:
    """A running domain grows in place within the room it was defined with, never shrinks."""
    driver.ensure_domain(spec(name, max_vcpus=4, max_memory_mb=1024))
    info = driver.domain_info(name)
    assert (info.vcpus, info.memory_mb, info.max_vcpus, info.max_memory_mb) == (1, 128, 4, 1024)
    grown = driver.hot_resize(name, vcpus=2, memory_mb=384)
    assert (grown.state, grown.vcpus, grown.memory_mb) == (RUNNING, 2, 384)
    assert driver.hot_resize(name, vcpus=2, memory_mb=384).memory_mb == 384  # a re-run adds nothing
    for vcpus, memory_mb in ((1, 384), (8, 384), (2, 2048), (2, 400)):
        with pytest.raises(Unsupported):
            driver.hot_resize(name, vcpus=vcpus, memory_mb=memory_mb)
    driver.stop_domain(name, force=True)  # the definition kept the growth
    assert (driver.start_domain(name).vcpus, driver.domain_info(name).memory_mb) == (2, 384)


CHECKS = [check_ensure_domain_is_idempotent, check_power_cycle, check_delete, check_redefine, check_hot_resize]


def check_disk_hot_plug(driver: ComputeDriver, name: str, disk_path: str) -> None:
    """A volume (a qcow2 file at `disk_path`) plugged into a running guest, grown and
    snapshotted under it, unplugged once the guest is off (a blank guest cannot release a
    hot-unplugged disk; the integration tests do that with a real one)."""
    driver.ensure_domain(spec(name))
    disk = DiskSpec(path=disk_path, target="vdb", serial="vol-contract")
    assert "vdb" in driver.attach_disk(name, disk).disks
    assert driver.attach_disk(name, disk).disks.count("vdb") == 1  # already there: kept
    driver.resize_disk(name, "vdb", 128 * 1024 * 1024)
    driver.snapshot_disk(name, "vdb", "snap-contract")
    driver.delete_disk_snapshot(name, "vdb", "snap-contract")
    with pytest.raises(DriverError):
        driver.snapshot_disk(name, "vdz", "snap-contract")
    driver.stop_domain(name, force=True)
    assert "vdb" not in driver.detach_disk(name, "vdb").disks
    assert "vdb" not in driver.detach_disk(name, "vdb").disks  # missing is fine
    assert "vdb" not in driver.start_domain(name).disks  # gone from the definition too



def check_cdrom(driver: ComputeDriver, name: str, iso_path: str) -> None:
    """A read-only CD-ROM (the cloud-init seed: an ISO file at `iso_path`) in the definition:
    the domain runs with it and keeps it through a power cycle."""
    cdrom = DiskSpec(path=iso_path, format="raw", target="hdc", bus="ide", read_only=True, device="cdrom")
    assert driver.ensure_domain(spec(name, disks=(cdrom,))).disks == ("hdc",)
    driver.stop_domain(name, force=True)
    assert driver.start_domain(name).disks == ("hdc",)


def check_ceph_secret(driver: ComputeDriver) -> None:
    """A cephx key held under a UUID; setting it again (a rotated key) is fine."""
    uuid = "5f0c1b9e-7d1a-4c35-9a0e-000000c0ffee"
    driver.ensure_ceph_secret(uuid, "contract", b"0123456789abcdef")
    driver.ensure_ceph_secret(uuid, "contract", b"fedcba9876543210")


def check_migration(driver: ComputeDriver, target: ComputeDriver, name: str) -> None:
    """A running domain moves live to another host and keeps running there (with its labels and
    a display), gone from here; a shut-off one cannot move live, and moves back offline."""
    driver.ensure_domain(spec(name))
    reports = []
    moved = driver.migrate_domain(name, target, live=True, address="127.0.0.1", progress=reports.append)
    assert (moved.name, moved.state, moved.vcpus, moved.memory_mb) == (name, RUNNING, 1, 128)
    assert moved.vnc_host == "127.0.0.1" and moved.vnc_port and ("tenant", "tn-contract") in moved.labels
    assert target.domain_info(name).state == RUNNING
    with pytest.raises(NotFound):
        driver.domain_info(name)
    assert reports[-1].remaining_bytes == 0 and reports[-1].downtime_ms is not None  # the last report: done
    with pytest.raises(NotFound):
        driver.migrate_domain(name, target, live=True, address="127.0.0.1")
    target.stop_domain(name, force=True)  # the target keeps a persistent definition
    with pytest.raises(DriverError):
        target.migrate_domain(name, driver, live=True, address="127.0.0.1")
    assert target.migrate_domain(name, driver, live=False, address="127.0.0.1").state == SHUTOFF
    with pytest.raises(NotFound):
        target.domain_info(name)
    assert driver.start_domain(name).state == RUNNING
