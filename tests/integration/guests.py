"""Waiting on real guests and on rows their tasks move: the tiny guest reports on its serial log
(BOOT-OK, the disk agent's DISK-ADDED/-RESIZED/-REMOVED), which nothing else can wait on."""

from __future__ import annotations

import re
import time

from apps.compute.tasks import serial_log_path

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


def settled(obj, timeout: float = 90):
    """Re-read a row until it leaves its transitional state (tasks run inline in these tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj.refresh_from_db()
        if not getattr(obj, "is_transitional", False):
            return obj
        time.sleep(0.2)
    raise AssertionError(f"{obj.public_id} stayed {obj.status}")
