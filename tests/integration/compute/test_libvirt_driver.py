"""The compute driver against the real libvirtd with real QEMU guests (software emulation)."""

import secrets
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.compute.drivers.base import DomainSpec, KernelBoot
from tests.contracts import compute_driver as contract
from tests.integration.guests import type_on_serial

pytestmark = [pytest.mark.libvirt, pytest.mark.integration]

BOOT_TIMEOUT = 90  # seconds; ~5 s is typical under TCG, CI machines are noisy


@pytest.fixture
def driver(libvirt_driver):
    return libvirt_driver


@pytest.fixture
def domain_name(driver):
    name = f"i-test{secrets.token_hex(3)}"
    yield name
    driver.delete_domain(name)


def test_host_capacity_and_kvm_detection(driver):
    contract.check_host_capacity(driver)
    capacity = driver.host_capacity()
    flags = Path("/proc/cpuinfo").read_text().split()
    if "vmx" not in flags and "svm" not in flags:
        # /dev/kvm may exist (nested PVM) but guests hang under it: never "usable" without the CPU flag.
        assert capacity.kvm_usable is False


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_libvirt_keeps_the_contract(driver, domain_name, check):
    check(driver, domain_name)


def test_libvirt_migrates_between_two_hosts(driver, second_libvirt_host, domain_name):
    from apps.compute.drivers.libvirt import LibvirtDriver

    target = LibvirtDriver(second_libvirt_host.uri)
    try:
        contract.check_migration(driver, target, domain_name)
    finally:
        target.delete_domain(domain_name)


def test_libvirt_holds_ceph_secrets(driver):
    contract.check_ceph_secret(driver)
    secret = driver._conn().secretLookupByUUIDString("5f0c1b9e-7d1a-4c35-9a0e-000000c0ffee")
    try:
        assert "private='yes'" in secret.XMLDesc(0) or "private=\"yes\"" in secret.XMLDesc(0)
    finally:
        secret.undefine()


def test_libvirt_takes_a_seed_cdrom(driver, domain_name):
    from apps.compute import cloudinit

    iso = Path(settings.PORTAL_LIBVIRT_DIR) / "scratch" / f"{domain_name}-seed.iso"
    cloudinit.write_seed(iso, cloudinit.Seed(instance_id=domain_name, hostname="contract"))
    try:
        contract.check_cdrom(driver, domain_name, str(iso))
    finally:
        driver.delete_domain(domain_name)
        iso.unlink(missing_ok=True)


def test_libvirt_plugs_disks(driver, domain_name):
    import json
    import subprocess

    scratch = Path(settings.PORTAL_LIBVIRT_DIR) / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    disk = scratch / f"{domain_name}-vdb.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(disk), "64M"], check=True, capture_output=True)
    try:
        contract.check_disk_hot_plug(driver, domain_name, str(disk))
        info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(disk)], check=True,
                                         capture_output=True, text=True).stdout)
        assert info["virtual-size"] == 128 * 1024 * 1024  # grown under the running guest
        assert not info.get("snapshots")  # taken and dropped through the guest's QEMU
    finally:
        driver.delete_domain(domain_name)
        disk.unlink(missing_ok=True)


def test_tiny_image_boots_to_a_shell(driver, domain_name):
    image = Path(settings.PORTAL_LIBVIRT_DIR) / "images" / "tiny"
    if not (image / "manifest.json").exists():
        pytest.skip("the tiny image is not built; `make test` builds it (scripts/build_tiny_image.sh)")
    logs = Path(settings.PORTAL_LIBVIRT_DIR) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    serial = logs / f"{domain_name}.log"
    serial.unlink(missing_ok=True)
    spec = DomainSpec(
        name=domain_name, vcpus=1, memory_mb=128, virt_type="qemu",
        kernel=KernelBoot(str(image / "vmlinuz"), str(image / "initramfs.cpio.gz"),
                          "console=tty0 console=ttyS0 loglevel=3 panic=-1"),
        serial_log=str(serial),
    )
    started = time.monotonic()
    info = driver.ensure_domain(spec)
    assert info.state == "running" and info.vnc_port
    while time.monotonic() - started < BOOT_TIMEOUT:
        if serial.exists() and "BOOT-OK" in serial.read_text(errors="replace"):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no BOOT-OK on the serial console after {BOOT_TIMEOUT}s: {serial.read_text(errors='replace')[-500:]}")
    print(f"define -> BOOT-OK in {time.monotonic() - started:.1f}s")
    # The serial console takes input too: its shell answers in the log.
    deadline = time.monotonic() + 30
    while "SERIAL-42" not in serial.read_text(errors="replace"):
        assert time.monotonic() < deadline, serial.read_text(errors="replace")[-500:]
        type_on_serial(domain_name, "echo SERIAL-$((6 * 7))")
        time.sleep(1)
