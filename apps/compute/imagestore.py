"""Image files on the portal's image store (PORTAL_LIBVIRT_DIR/images/<id>/): copy a stream in
while hashing and counting, and inspect what it really is with `qemu-img info` — the format is
detected from the content, never trusted from a name or a field."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from django.conf import settings

from apps.core.exceptions import ValidationFailed

ACCEPTED_FORMATS = ("qcow2", "raw")
CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageFileInfo:
    format: str
    virtual_size: int
    size: int
    sha256: str


def image_dir(public_id: str) -> Path:
    return Path(settings.PORTAL_LIBVIRT_DIR) / "images" / public_id


def _invalid(message: str, field: str = "file") -> ValidationFailed:
    return ValidationFailed(message, fields={field: [message]})


def receive(chunks: Iterable[bytes], destination: Path, *, max_bytes: int, expected_sha256: str = "") -> ImageFileInfo:
    """Write `chunks` to `destination` (a new file), enforcing the size limit, then check the
    checksum and the real format. On any refusal the file is removed."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with destination.open("xb") as handle:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise _invalid(f"The image is larger than the {max_bytes // (1 << 20)} MiB limit.")
                digest.update(chunk)
                handle.write(chunk)
        if size == 0:
            raise _invalid("The file is empty.")
        sha256 = digest.hexdigest()
        if expected_sha256 and expected_sha256.lower() != sha256:
            raise _invalid(f"Checksum mismatch: the file's SHA-256 is {sha256}.", "checksum_sha256")
        fmt, virtual_size = _inspect(destination)
        return ImageFileInfo(format=fmt, virtual_size=virtual_size, size=size, sha256=sha256)
    except BaseException:
        shutil.rmtree(destination.parent, ignore_errors=True)
        raise


def _inspect(path: Path) -> tuple[str, int]:
    result = subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise _invalid("qemu-img cannot read this file as a disk image.")
    info = json.loads(result.stdout)
    fmt = info.get("format", "")
    if fmt not in ACCEPTED_FORMATS:
        raise _invalid(f"Unsupported image format '{fmt}'; upload qcow2 or raw.")
    # A qcow2 backing file would make QEMU open a path on the host: refused outright.
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise _invalid("Images with a backing file are refused; flatten it first (qemu-img convert).")
    return fmt, int(info.get("virtual-size", 0))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(path: Path) -> ImageFileInfo:
    """What a file written on the store (an image captured from an instance) is."""
    fmt, virtual_size = _inspect(path)
    return ImageFileInfo(format=fmt, virtual_size=virtual_size, size=path.stat().st_size, sha256=sha256_of(path))


def remove(public_id: str) -> None:
    shutil.rmtree(image_dir(public_id), ignore_errors=True)
