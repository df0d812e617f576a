"""Real guests in integration tests: waiting on what they report on their serial log (BOOT-OK,
the disk agent's DISK-ADDED/-RESIZED/-REMOVED, the DHCP client's NET-UP), typing commands into
their serial console, waiting on rows their tasks move, and removing a test tenant's instances
and domains afterwards."""

from __future__ import annotations

import re
import time

import pytest

from apps.compute import services, tasks
from apps.compute.drivers.base import NotFound
from apps.compute.models import Instance
from apps.compute.tasks import serial_log_path
from apps.core.policies import OWNER
from apps.tenants.models import Membership
from tests.factories.tenants import actor_for

AGENT_TIMEOUT = 30  # seconds: the disk agent looks every second; hot plug under TCG takes a few


def serial(instance) -> str:
    path = serial_log_path(instance)
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_line(instance, pattern: str, timeout: float = AGENT_TIMEOUT) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, serial(instance))
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"no {pattern!r} from {instance.public_id} in {timeout}s:\n{serial(instance)[-2000:]}")


def type_on_serial(domain: str, line: str, *, connect_wait: float = 1.5, uri: str = "") -> None:
    """Type a line into the guest's serial console (a pty; its root shell answers), as
    `virsh console` would; what the guest prints lands in the serial log. QEMU notices a
    pty reader within a second (before that it reads no input), and output is drained while
    connected so the guest never blocks on a full pty. `uri`: the libvirt host running it
    (default PORTAL_LIBVIRT_URI)."""
    import os
    import xml.etree.ElementTree as ET

    import libvirt
    from django.conf import settings

    conn = libvirt.open(uri or settings.PORTAL_LIBVIRT_URI)
    try:
        xml = conn.lookupByName(domain).XMLDesc(0)
    finally:
        conn.close()
    pty = ET.fromstring(xml).find("./devices/serial/source").get("path")
    fd = os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        _drain(fd, connect_wait)
        os.write(fd, (line + "\r").encode())
        _drain(fd, 1.0)
    finally:
        os.close(fd)


def _drain(fd: int, seconds: float) -> None:
    import os

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.05)


def settled(obj, timeout: float = 90):
    """Re-read a row until it leaves its transitional state (tasks run inline in these tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj.refresh_from_db()
        if not getattr(obj, "is_transitional", False):
            return obj
        time.sleep(0.2)
    raise AssertionError(f"{obj.public_id} stayed {obj.status}")


def remove_instances(tenant, driver) -> list:
    """Delete (through the service, as the owner) every instance of the tenant that the test did
    not delete, then make sure libvirt has no domain for any of them. Returns them."""
    owner = actor_for(Membership.objects.get(tenant=tenant, role=OWNER))
    instances = list(Instance.objects.filter(tenant=tenant))
    for instance in instances:
        # A POST still provisioning in the server: let it finish, so its domain is not
        # defined again after the one below is removed.
        deadline = time.monotonic() + 60
        while instance.status in (Instance.PENDING, Instance.BUILDING) and time.monotonic() < deadline:
            time.sleep(0.5)
            instance.refresh_from_db()
        try:
            if instance.status == Instance.DELETING:
                tasks.destroy_instance(instance.pk)  # a delete that did not finish
            elif instance.status != Instance.DELETED:
                services.delete_instance(owner, instance=instance)  # tasks run inline in this process
        finally:
            driver.delete_domain(instance.public_id, missing_ok=True)
    for instance in instances:
        with pytest.raises(NotFound):
            driver.domain_info(instance.public_id)
    return instances
