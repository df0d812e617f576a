"""Which compute driver talks to a host: a dotted path from settings, one instance per URI
per process. The fake driver is refused outside tests."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.compute.drivers.base import ComputeDriver

_drivers: dict[tuple[str, str], ComputeDriver] = {}
_lock = threading.Lock()


def get_compute_driver(uri: str) -> ComputeDriver:
    path = settings.PORTAL_COMPUTE_DRIVER
    if path.endswith("FakeDriver") and not settings.PORTAL_ALLOW_FAKE_DRIVERS:
        raise ImproperlyConfigured("The fake compute driver is for tests only.")
    with _lock:
        driver = _drivers.get((path, uri))
        if driver is None:
            cls = import_string(path)
            if not issubclass(cls, ComputeDriver):
                raise ImproperlyConfigured(f"{path} is not a ComputeDriver")
            driver = _drivers[(path, uri)] = cls(uri)
        return driver
