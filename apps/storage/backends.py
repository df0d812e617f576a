"""The storage driver of a pool, one per pool and process (an RBD driver holds its cluster
connection). Which class serves which backend is PORTAL_STORAGE_DRIVERS; the fake one is
refused outside tests, like the fake hypervisor."""

from __future__ import annotations

import json
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.storage.drivers.base import StorageDriver

_drivers: dict[tuple[str, str], StorageDriver] = {}
_lock = threading.Lock()


def get_storage_driver(pool) -> StorageDriver:
    path = settings.PORTAL_STORAGE_DRIVERS[pool.backend]
    if "fake" in path.lower() and not settings.PORTAL_ALLOW_FAKE_DRIVERS:
        raise ImproperlyConfigured("The fake storage driver is for tests only.")
    config = pool.driver_config
    key = (path, json.dumps(config, sort_keys=True))
    with _lock:
        driver = _drivers.get(key)
        if driver is None:
            cls = import_string(path)
            if not issubclass(cls, StorageDriver):
                raise ImproperlyConfigured(f"{path} is not a StorageDriver")
            driver = _drivers[key] = cls(config)
        return driver


def forget_drivers() -> None:
    """Tests switch driver classes; drop the cached instances."""
    with _lock:
        _drivers.clear()
