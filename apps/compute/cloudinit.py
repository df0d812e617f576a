"""cloud-init NoCloud seeds, what OpenStack calls a config drive: a small ISO 9660 image with the
volume label `cidata` that the guest finds at boot on a read-only CD-ROM. It holds
- `meta-data`: instance-id (the instance's public id: cloud-init runs its once-per-instance
  modules again only when it changes), local-hostname, public-keys (the key pair's);
- `user-data`: the tenant's, byte for byte; when there is none, the portal's #cloud-config
  with the key and the root password (hashed) the instance was created with;
- `vendor-data`: that #cloud-config of the portal when the tenant brought user data of its own
  (cloud-init merges it under the user's, which wins and may switch it off).
No `network-config`: without it cloud-init configures the first NIC by DHCP, which the SDN
answers with the port's address, as the tiny image's DHCP client shows.

Also the root password rules: validated here, stored only as a SHA-512 crypt hash."""

from __future__ import annotations

import io
import os
import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

# pycdlib (pure Python, PyPI) rather than genisoimage/xorriso: it writes Rock Ridge + Joliet in
# the worker with no Debian tool on any worker or container, and the tests read images back with it.
import pycdlib
import yaml

from apps.core.exceptions import Unavailable

LABEL = "cidata"
PASSWORD_MIN, PASSWORD_MAX = 8, 72  # 72: the most any crypt scheme (bcrypt) a guest may use keeps
ROOT = "root"


def password_errors(password: str) -> list[str]:
    """What is wrong with a root password given at create (empty list: fine)."""
    errors = []
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        errors.append(f"{PASSWORD_MIN} to {PASSWORD_MAX} characters.")
    if any(unicodedata.category(c) == "Cc" for c in password):
        errors.append("No control characters (tabs, line breaks…).")
    return errors


def hash_password(password: str) -> str:
    """The SHA-512 crypt hash (`$6$<salt>$…`, as in /etc/shadow) of a password, made by
    `openssl passwd -6` (Python's `crypt` is deprecated). The password goes on stdin, never
    on a command line that other users of the machine could read."""
    try:
        done = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=f"{password}\n", capture_output=True,
                              encoding="utf-8", timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"The password could not be hashed (openssl: {exc}).") from exc
    hashed = done.stdout.strip()
    if done.returncode or not hashed.startswith("$6$"):
        raise Unavailable(f"The password could not be hashed (openssl: {done.stderr.strip()[:200]}).")
    return hashed


def hostname(name: str, fallback: str) -> str:
    """A host name label (RFC 1123) from an instance name: `Web server #1` → `web-server-1`."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or fallback


@dataclass(frozen=True)
class Seed:
    """What a seed says about one instance."""

    instance_id: str
    hostname: str
    user_data: str = ""
    public_keys: tuple[str, ...] = ()
    password_hash: str = ""


def _portal_config(seed: Seed) -> str:
    """The portal's #cloud-config: the key pair and the root password (hashed), or "" when the
    instance was created with neither."""
    config: dict = {}
    if seed.public_keys:
        config["ssh_authorized_keys"] = list(seed.public_keys)
    if seed.password_hash:
        config["chpasswd"] = {"expire": False,
                              "users": [{"name": ROOT, "password": seed.password_hash, "type": "hash"}]}
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False) if config else ""


def seed_files(seed: Seed) -> dict[str, bytes]:
    """The files of the seed, by name."""
    meta = {"instance-id": seed.instance_id, "local-hostname": seed.hostname}
    if seed.public_keys:
        meta["public-keys"] = list(seed.public_keys)
    files = {"meta-data": yaml.safe_dump(meta, sort_keys=False)}
    portal = _portal_config(seed)
    if seed.user_data:
        files["user-data"] = seed.user_data
        if portal:
            files["vendor-data"] = portal
    else:
        files["user-data"] = portal
    return {name: text.encode() for name, text in files.items()}


def build_iso(files: dict[str, bytes]) -> bytes:
    """An ISO 9660 image labelled `cidata` holding `files`. Rock Ridge and Joliet keep their
    names as cloud-init looks them up (`meta-data`, lower case, with the dash); the plain
    ISO 9660 names (`META_DATA.;1`) are only for readers without either."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    for name, data in files.items():
        iso.add_fp(io.BytesIO(data), len(data), f"/{name.upper().replace('-', '_')}.;1", rr_name=name,
                   joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def write_seed(path: Path, seed: Seed) -> None:
    """Write the seed ISO at `path`, readable by its owner only (it holds user data and the
    password hash; libvirt hands it to QEMU while the guest runs). Replaced atomically: a
    guest that has the old one open keeps reading it, and a rerun writes the same content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(build_iso(seed_files(seed)))
    os.replace(partial, path)
