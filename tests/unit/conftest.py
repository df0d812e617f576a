"""Unit tests talk to infrastructure only through the in-process fake drivers (compute,
storage and network)."""

import pytest


@pytest.fixture(autouse=True)
def fake_compute(settings):
    from apps.compute import hypervisors
    from apps.compute.drivers import fake

    settings.PORTAL_COMPUTE_DRIVER = "apps.compute.drivers.fake.FakeDriver"
    settings.PORTAL_ALLOW_FAKE_DRIVERS = True
    hypervisors._drivers.clear()
    fake.reset()
    yield fake
    fake.reset()
    hypervisors._drivers.clear()


@pytest.fixture(autouse=True)
def fake_storage(settings):
    from apps.storage import backends
    from apps.storage.drivers import fake

    path = "apps.storage.drivers.fake.FakeStorageDriver"
    settings.PORTAL_STORAGE_DRIVERS = {"dir": path, "rbd": path}
    backends.forget_drivers()
    fake.reset()
    yield fake
    fake.reset()
    backends.forget_drivers()


@pytest.fixture(autouse=True)
def fake_network(settings):
    from apps.network import backends
    from apps.network.drivers import fake

    settings.PORTAL_NETWORK_DRIVER = "apps.network.drivers.fake.FakeNetworkDriver"
    backends.forget_drivers()
    fake.reset()
    yield fake
    fake.reset()
    backends.forget_drivers()


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks):
    """Call a service and run what it queued on commit (django-q2 is synchronous here)."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run
