import pytest

from apps.compute.drivers.base import Transient
from apps.compute.drivers.fake import FakeDriver
from tests.contracts import compute_driver as contract


def test_fake_host_capacity():
    contract.check_host_capacity(FakeDriver("fake:///a"))


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_fake_keeps_the_contract(check):
    check(FakeDriver("fake:///a"), "i-contract1")


def test_fake_plugs_disks():
    contract.check_disk_hot_plug(FakeDriver("fake:///a"), "i-contract2", "/fake/vol-contract")


def test_fake_takes_a_cdrom():
    contract.check_cdrom(FakeDriver("fake:///a"), "i-contract3", "/fake/seed.iso")


def test_fake_holds_ceph_secrets():
    driver = FakeDriver("fake:///a")
    contract.check_ceph_secret(driver)
    assert driver.has_secret("5f0c1b9e-7d1a-4c35-9a0e-000000c0ffee")


def test_fake_injects_failures_once():
    driver = FakeDriver("fake:///a")
    driver.fail_next("ensure_domain", Transient("host busy"))
    with pytest.raises(Transient):
        driver.ensure_domain(contract.spec("i-x"))
    assert driver.ensure_domain(contract.spec("i-x")).state == "running"


def test_fake_migrates_between_hosts():
    contract.check_migration(FakeDriver("fake:///a"), FakeDriver("fake:///b"), "i-contract3")
