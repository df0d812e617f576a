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
