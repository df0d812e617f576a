"""A private OVN northbound ovsdb-server for tests, started the way scripts/lib.sh's ovn_nb_start
starts the one of `make run` (ovsdb-tool create, ovsdb-server --detach on a unix socket,
ovn-nbctl init), but with a fresh database every time and nothing exported: the caller gets the
connection string.

    server = start_nb(tmp_path / "ovn")
    server.nbctl("ls-add", "sw0")
    ...
    server.stop()

The `ovn_nb` fixture (tests/conftest.py) does this per test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")  # Debian's ovn-central
START_TIMEOUT = 15.0  # seconds until the socket answers (~0.02 s is typical)
STOP_TIMEOUT = 10.0  # seconds after SIGTERM, then SIGKILL
MAX_SOCKET_PATH = 107  # bytes: sun_path is 108 with the terminating NUL


class OvnNotInstalled(RuntimeError):
    """ovsdb-server, ovsdb-tool, ovn-nbctl or the NB schema is missing."""


class NbctlError(RuntimeError):
    """ovn-nbctl failed; the message holds its stderr."""


def _require_tools() -> None:
    for tool in ("ovsdb-server", "ovsdb-tool", "ovn-nbctl"):
        if shutil.which(tool) is None:
            raise OvnNotInstalled(f"{tool} missing")
    if not NB_SCHEMA.is_file():
        raise OvnNotInstalled(f"{NB_SCHEMA} missing")


def _pid_is(pid: int, pidfile: Path) -> bool:
    """PID is a live (not zombie) process whose command line names PIDFILE: a recycled PID is
    not taken for our server. The detached server is not our child, so we cannot wait() for it;
    init reaps it, maybe late."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X") and os.fsencode(f"--pidfile={pidfile}") in cmdline.split(b"\0")


@dataclass
class NbServer:
    directory: Path  # database, pid file, log
    socket_dir: Path  # nb.sock and nb.ctl: `directory`, or a short temporary one
    pid: int | None = None
    _own_socket_dir: bool = False  # socket_dir is a mkdtemp() of ours, removed by stop()

    @property
    def connection(self) -> str:
        """For ovn-nbctl --db= and ovsdbapp's OvsdbIdl.from_server()."""
        return f"unix:{self.socket_dir / 'nb.sock'}"

    @property
    def pidfile(self) -> Path:
        return self.directory / "nb.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "nb.log"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def nbctl(self, *args: str) -> str:
        """`ovn-nbctl --db=<connection> --timeout=10 ARGS...`; its stdout."""
        command = ["ovn-nbctl", f"--db={self.connection}", "--timeout=10", *args]
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        if done.returncode != 0:
            raise NbctlError(f"{' '.join(command)} failed (exit {done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def answers(self) -> bool:
        try:
            self.nbctl("show")
        except (NbctlError, subprocess.TimeoutExpired):
            return False
        return True

    def stop(self) -> None:
        """Stop the server (SIGTERM by PID, SIGKILL after STOP_TIMEOUT) and wait until it is gone;
        remove the temporary socket directory. Idempotent."""
        pid, self.pid = self.pid, None
        if pid is not None and _pid_is(pid, self.pidfile):
            for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + timeout
                while _pid_is(pid, self.pidfile) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not _pid_is(pid, self.pidfile):
                    break
        if self._own_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self._own_socket_dir = False


def _socket_dir(directory: Path) -> tuple[Path, bool]:
    """DIRECTORY, or a new short temporary directory when DIRECTORY/nb.sock would be too long a
    unix socket path (ovsdb-server copes, ovsdbapp's Python ovs library may not)."""
    if len(os.fsencode(str(directory / "nb.sock"))) <= MAX_SOCKET_PATH:
        return directory, False
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) > 60:  # TMPDIR itself may be long
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="ovn-nb-", dir=base)), True


def start_nb(directory: Path) -> NbServer:
    """Start an OVN northbound ovsdb-server with a fresh database in DIRECTORY (created if
    missing), wait until it answers, `ovn-nbctl init` it. Raises OvnNotInstalled when OVN is not
    installed, RuntimeError when the server does not come up (it is stopped then)."""
    _require_tools()
    directory = Path(directory).absolute()  # --detach chdirs to /
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "ovnnb_db.db"
    for stale in (db, directory / f".{db.name}.~lock~", directory / "nb.log"):
        stale.unlink(missing_ok=True)
    socket_dir, own_socket_dir = _socket_dir(directory)
    server = NbServer(directory=directory, socket_dir=socket_dir, _own_socket_dir=own_socket_dir)
    try:
        done = subprocess.run(["ovsdb-tool", "create", str(db), str(NB_SCHEMA)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"ovsdb-tool create {db} failed (exit {done.returncode}): {done.stderr.strip()}")
        # --detach returns once the server listens and has written its pid file; the daemon keeps
        # no stdio open, so capturing its output does not wait for it
        done = subprocess.run(
            ["ovsdb-server", str(db), f"--remote=punix:{socket_dir / 'nb.sock'}", f"--pidfile={server.pidfile}",
             f"--unixctl={socket_dir / 'nb.ctl'}", f"--log-file={server.log_path}", "--detach"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"ovsdb-server did not start (exit {done.returncode}): {done.stderr.strip()}")
        server.pid = int(server.pidfile.read_text().split()[0])
        deadline = time.monotonic() + START_TIMEOUT
        while not server.answers():
            if not _pid_is(server.pid, server.pidfile):
                raise RuntimeError(f"ovsdb-server exited:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ovsdb-server does not answer on {server.connection} after {START_TIMEOUT}s:\n"
                                   f"{server.log_tail()}")
            time.sleep(0.05)
        server.nbctl("init")  # the NB_Global row
    except BaseException:
        server.stop()
        raise
    return server
