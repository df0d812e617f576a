"""Small helpers for tests that run servers and daemons of their own."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    """A loopback TCP port free at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a process's log, for a failure message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"
