"""The network driver: one per process (the OVN driver holds its northbound connection).
The fake one is refused outside tests, like the other fake drivers."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.network.drivers.base import NetworkDriver

_drivers: dict[str, NetworkDriver] = {}
_lock = threading.Lock()


def get_network_driver() -> NetworkDriver:
    path = settings.PORTAL_NETWORK_DRIVER
    if "fake" in path.lower() and not settings.PORTAL_ALLOW_FAKE_DRIVERS:
        raise ImproperlyConfigured("The fake network driver is for tests only.")
    with _lock:
        driver = _drivers.get(path)
        if driver is None:
            cls = import_string(path)
            if not issubclass(cls, NetworkDriver):
                raise ImproperlyConfigured(f"{path} is not a NetworkDriver")
            driver = _drivers[path] = cls(
                settings.OVN_NB_CONNECTION, owner=settings.PORTAL_OVN_OWNER, timeout=settings.OVN_NB_TIMEOUT,
                private_key=settings.OVN_NB_PRIVATE_KEY, certificate=settings.OVN_NB_CERTIFICATE,
                ca_cert=settings.OVN_NB_CA_CERT, sb_connection=settings.OVN_SB_CONNECTION)
        return driver


def forget_drivers() -> None:
    """Tests switch drivers and northbound servers; close and drop the cached ones."""
    with _lock:
        for driver in _drivers.values():
            close = getattr(driver, "close", None)
            if close:
                close()
        _drivers.clear()
