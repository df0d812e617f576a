import pytest

from apps.storage.drivers import fake
from tests.contracts import storage_driver as contract


@pytest.fixture
def driver():
    fake.reset()
    yield fake.FakeStorageDriver({"name": "contract"})
    fake.reset()


@pytest.mark.parametrize("check", contract.CHECKS, ids=lambda c: c.__name__)
def test_fake_keeps_the_contract(check, driver):
    check(driver, fake.Probe(driver), "/nonexistent/image.qcow2")


def test_fake_pools_copy_between_them(driver):
    other = fake.FakeStorageDriver({"name": "contract-2"})
    contract.check_copy_between_pools(driver, fake.Probe(driver), other, fake.Probe(other))
