"""The contract every ComputeDriver keeps. Run against the fake (tests/unit) and against real
libvirt with QEMU (tests/integration), so the fake cannot drift from the real thing."""

import pytest

from apps.compute.drivers.base import RUNNING, SHUTOFF, ComputeDriver, DiskSpec, DomainSpec, DriverError, NotFound


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


CHECKS = [check_ensure_domain_is_idempotent, check_power_cycle, check_delete, check_redefine]


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



def check_ceph_secret(driver: ComputeDriver) -> None:
    """A cephx key held under a UUID; setting it again (a rotated key) is fine."""
    uuid = "5f0c1b9e-7d1a-4c35-9a0e-000000c0ffee"
    driver.ensure_ceph_secret(uuid, "contract", b"0123456789abcdef")
    driver.ensure_ceph_secret(uuid, "contract", b"fedcba9876543210")
