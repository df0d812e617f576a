"""Shared plumbing of the benchmark programs: a throwaway portal state (a temporary VAR_DIR with
its own SQLite file, or a throwaway database on the PostgreSQL server named by DATABASE_URL),
Django set up on it and migrated, small statistics helpers, and the block-storage helpers of the
storage programs (the throwaway Ceph cluster's config, allocated bytes, removal of volumes and of
libvirt pools, secrets and domains by exact name).

Import it first, then call `Throwaway(...)` before importing anything that needs Django:

    from _setup import Throwaway
    with Throwaway(name="scheduler") as state:
        from apps.compute import scheduler
        ...

Nothing here writes outside the temporary directory (and the throwaway PostgreSQL database),
and both are removed when the `with` block ends, on failure and on Ctrl-C / SIGTERM too.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _sigterm(_signum, _frame):
    raise SystemExit(143)  # unwind: every `finally` / __exit__ cleans up what it created


def default_libvirt_dir() -> Path:
    """Where the checkout's guest images live, by the rule cloudportal/settings.py and
    scripts/lib.sh (ensure_libvirt_dir) use, computed from the environment *before* the bench
    points PORTAL_VAR_DIR elsewhere."""
    if configured := os.environ.get("PORTAL_LIBVIRT_DIR"):
        path = Path(configured)
        return path if path.is_absolute() else ROOT / path
    var = Path(os.environ.get("PORTAL_VAR_DIR") or ROOT / "var")
    var = var if var.is_absolute() else ROOT / var
    default = var.resolve() / "libvirt"
    if all(os.stat(p).st_mode & 0o001 for p in [*default.parents][:-1] if p.exists()):
        return default
    return Path("/var/lib") / f"cloudportal-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"


class Throwaway:
    """Context manager: temporary state, Django configured and migrated on it.

    :param name: shows in the temporary directory's and database's names.
    :param libvirt: also give the portal a throwaway PORTAL_LIBVIRT_DIR (readable by libvirt's
        qemu user) holding a copy of the checkout's tiny image folder (kernel, initramfs, the
        bootable disk.qcow2, manifest.json), so serial logs and dir pools land there.
    :param fake_driver: use the in-process fake compute driver (no hypervisor).
    """

    def __init__(self, *, name: str, libvirt: bool = False, fake_driver: bool = False, quiet: bool = True):
        self.name = name
        self.libvirt = libvirt
        self.fake_driver = fake_driver
        self.quiet = quiet
        self.tmp: Path | None = None
        self.database = "sqlite"
        self._drop_pg = None
        self._old_sigterm = None
        self.tiny_source: Path | None = None

    # -- set up ---------------------------------------------------------------------------
    def __enter__(self) -> "Throwaway":
        self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm)
        try:
            self._prepare_environment()
            import django

            django.setup()
            self._configure()
            from django.core.management import call_command

            call_command("migrate", verbosity=0, interactive=False)
        except BaseException:
            self._cleanup()
            raise
        return self

    def _prepare_environment(self) -> None:
        if self.libvirt:
            self.tiny_source = default_libvirt_dir() / "images" / "tiny"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"portal-bench-{self.name}-"))
        # libvirt's qemu user must traverse it to reach the image copy and the serial logs.
        self.tmp.chmod(0o755)
        var = self.tmp / "var"
        var.mkdir(mode=0o700)
        (var / "static").mkdir()  # STATIC_ROOT: whitenoise warns when it is missing
        os.environ["DJANGO_SETTINGS_MODULE"] = "cloudportal.settings"
        os.environ["PORTAL_VAR_DIR"] = str(var)
        os.environ.pop("DJANGO_SECRET_KEY", None)  # a throwaway key in the throwaway VAR_DIR
        # Embedded mode for everything but the database: the ORM broker in the throwaway
        # database, the in-memory channel layer. A REDIS_URL of a running portal would let
        # its workers pick up the bench's tasks.
        os.environ.pop("REDIS_URL", None)
        os.environ.setdefault("PORTAL_LOG_LEVEL", "WARNING")
        # The API throttle (1200/min per user) would answer 429 to a benchmark loop; its cost
        # (one cache read and write per request) stays in the figures.
        os.environ["PORTAL_API_USER_RATE"] = "1000000/min"
        os.environ.pop("PORTAL_TASKS_SYNC", None)
        if self.libvirt:
            libvirt_dir = self.tmp / "libvirt"
            (libvirt_dir / "images").mkdir(parents=True, mode=0o755)
            (libvirt_dir / "logs").mkdir(mode=0o755)
            if (self.tiny_source / "manifest.json").exists():
                shutil.copytree(self.tiny_source, libvirt_dir / "images" / "tiny")
            os.environ["PORTAL_LIBVIRT_DIR"] = str(libvirt_dir)
        else:
            os.environ["PORTAL_LIBVIRT_DIR"] = str(self.tmp / "libvirt")
        if self.fake_driver:
            os.environ["PORTAL_COMPUTE_DRIVER"] = "apps.compute.drivers.fake.FakeDriver"
        if url := os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"], self._drop_pg = _throwaway_postgres(url, self.name)
            self.database = "postgresql"

    def _configure(self) -> None:
        from django.conf import settings

        if self.fake_driver:
            settings.PORTAL_COMPUTE_DRIVER = "apps.compute.drivers.fake.FakeDriver"
            settings.PORTAL_ALLOW_FAKE_DRIVERS = True
        # One user is created per bench; PBKDF2's cost is not what is measured.
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    # -- tear down ------------------------------------------------------------------------
    def __exit__(self, *exc) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        try:
            from apps.compute.drivers import libvirt as libvirt_driver

            libvirt_driver.close_all()
        except Exception:
            pass
        if self._drop_pg is not None:
            try:
                self._drop_pg()
            except Exception as exc:  # report, never hide a leftover
                print(f"warning: could not drop the throwaway database: {exc}", file=sys.stderr)
            self._drop_pg = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # -- helpers --------------------------------------------------------------------------
    def describe(self) -> str:
        from django.db import connection

        vendor = connection.vendor
        version = ""
        try:
            with connection.cursor() as cursor:
                cursor.execute("select sqlite_version()" if vendor == "sqlite" else "show server_version")
                version = cursor.fetchone()[0]
        except Exception:
            pass
        return f"{vendor} {version}".strip()


def _throwaway_postgres(url: str, name: str):
    """CREATE a fresh database next to the one DATABASE_URL names; return its URL and a
    function that drops it (the caller's database is never touched)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    db_name = f"portal_bench_{name}_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    return urlunsplit(urlsplit(url)._replace(path=f"/{db_name}")), drop


# --- statistics --------------------------------------------------------------------------

def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(values) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "p95": percentile(values, 95),
    }


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table, columns right-aligned except the first."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, ["-" * w for w in widths], *rows]:
        cells = [str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def machine() -> str:
    import platform

    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"


# --- block storage (boot_disk_clone.py, volume_ops.py) ---------------------------------------

CEPH_VARIABLES = ("PORTAL_TEST_CEPH_CONF", "PORTAL_TEST_CEPH_USER", "PORTAL_TEST_CEPH_POOL",
                  "PORTAL_TEST_CEPH_KEYRING")


def ceph_config() -> dict | None:
    """The RBD pool config of the throwaway Ceph cluster that bench/with_ceph.sh (scripts/lib.sh
    ceph_start) exported in PORTAL_TEST_CEPH_*, or None when there is none."""
    if not os.environ.get("PORTAL_TEST_CEPH_CONF"):
        return None
    missing = [name for name in CEPH_VARIABLES if not os.environ.get(name)]
    if missing or not Path(os.environ["PORTAL_TEST_CEPH_CONF"]).is_file():
        raise RuntimeError(f"PORTAL_TEST_CEPH_CONF is set but {', '.join(missing) or 'its file is missing'} "
                           "(a stale export from a stopped cluster?)")
    return {name.rsplit("_", 1)[1].lower(): os.environ[name] for name in CEPH_VARIABLES}


def allocated_bytes(driver, name: str) -> int:
    """What a volume takes in its pool. dir: the qcow2 file's blocks (libvirt's allocation).
    RBD: the extents written in the image itself, not in the parent it was cloned from (librbd
    diff_iterate without the parent; the RBD driver reports no allocation)."""
    if driver.backend != "rbd":
        return driver.volume_info(name).allocated_bytes

    def count(rbd, ioctx) -> int:
        total = 0

        def extent(_offset, length, exists):
            nonlocal total
            total += length if exists else 0
            return 0

        with rbd.Image(ioctx, name, read_only=True) as image:
            image.diff_iterate(0, image.size(), None, extent, include_parent=False)
        return total

    return driver._run(count)


def remove_volumes(driver, *prefixes: str) -> list[str]:
    """Delete every volume and image base of the pool whose name starts with one of `prefixes`
    (clones before the bases they depend on; RBD's half-imported `.part` images too). Returns
    the names that could not be removed."""
    from apps.storage.drivers.base import InUse

    def names() -> list[str]:
        if driver.backend == "rbd":
            found = driver._run(lambda rbd, ioctx: rbd.RBD().list(ioctx))
        else:
            found = [v.name for v in driver.list_volumes()]
        return sorted(n for n in found if n.startswith(prefixes))

    for _pass in range(3):  # a base refuses to go while clones of it are there: next pass
        left = names()
        for name in left:
            try:
                driver.delete_volume(name)
            except InUse:
                pass
    return names()


def remove_libvirt_leftovers(uri: str, *, domains=(), pools=(), secrets=()) -> list[str]:
    """Remove what the bench made in libvirt, by exact name or UUID: domains (destroyed and
    undefined), storage pools (stopped and undefined; their files are in the throwaway
    directory), secrets. Missing ones are fine. Returns the domains that were still there."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(uri)
    found = []
    try:
        for name in sorted(domains):
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            found.append(name)
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        for name in pools:
            try:
                pool = conn.storagePoolLookupByName(name)
            except libvirt.libvirtError:
                continue
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        for uuid in secrets:
            try:
                conn.secretLookupByUUIDString(uuid).undefine()
            except libvirt.libvirtError:
                continue
    finally:
        conn.close()
    return found


def close_storage_driver(driver) -> None:
    """An RBD driver holds a cluster connection: shut it down (a dir driver holds nothing)."""
    cluster = getattr(driver, "_cluster", None)
    if cluster is not None:
        cluster.shutdown()
        driver._cluster = None


def mib(n_bytes: float) -> str:
    return f"{n_bytes / (1 << 20):.2f}"
