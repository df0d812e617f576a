"""qemu-img, which both backends use for what their own APIs lack: converting images and
copying between pools (a file, or an RBD image through QEMU's rbd driver)."""

from __future__ import annotations

import re
import subprocess
from typing import Callable

from apps.storage.drivers.base import InUse, NoSpace, StorageError

TIMEOUT = 6 * 3600  # seconds; copying a big volume takes a while
_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


def _error(command: str, message: str) -> StorageError:
    if "lock" in message.lower():
        return InUse(f"the volume is in use by a running guest ({message})")
    if "No space left" in message:
        return NoSpace(message)
    return StorageError(f"qemu-img {command}: {message}")


def run(*args: str) -> str:
    try:
        done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"qemu-img {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise _error(args[0], done.stderr.strip() or done.stdout.strip())
    return done.stdout


def convert(source: list[str], target: str, *, target_format: str,
            progress: Callable[[int], None] | None = None) -> None:
    """Copy `source` (qemu-img input arguments) to `target`, reporting whole percents."""
    command = ["qemu-img", "convert", "-p", "-O", target_format, *source, target]
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise StorageError(f"qemu-img convert: {exc}") from exc
    last = -1
    buffer = b""
    while chunk := process.stdout.read1(4096) if process.stdout else b"":
        buffer = (buffer + chunk)[-256:]  # -p rewrites one line with \r
        found = _PERCENT.findall(buffer)
        if found and progress is not None and int(float(found[-1])) > last:
            last = int(float(found[-1]))
            progress(last)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.wait(timeout=TIMEOUT) != 0:
        raise _error("convert", stderr.strip())
