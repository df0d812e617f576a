"""A second libvirt host on this machine, for tests that move guests between two hypervisors.

A second libvirtd (with its own virtlogd) runs in a private mount namespace in which folders of
its own are mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
/var/log/libvirt: it keeps its own definitions, sockets, QEMU monitors, capabilities cache and
logs, and never sees the system daemon's. The rest is shared, as between two hosts on one
network with one shared file system: the network namespace (guests plug into the same Open
vSwitch bridge; the daemon listens on loopback TCP), the guests' files (kernel, serial logs,
seeds under PORTAL_LIBVIRT_DIR, which must not lie under one of the folders above), /dev/pts.

It differs from the system daemon wherever libvirt tells hosts apart or hands out host
resources: its own host UUID (libvirt refuses to migrate a guest to the "same host"), its own
VNC and migration port ranges (both daemons' QEMUs listen in one network namespace), and no
cgroups for its guests (both daemons would name a guest's machine cgroup `qemu-<id>-<name>`,
and their domain ids collide). Its URI is qemu+tcp://127.0.0.1:<port>/system (no auth, loopback).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port, log_tail

START_TIMEOUT = 30  # seconds until the daemon answers
STOP_TIMEOUT = 15  # seconds a daemon gets to exit on SIGTERM

# Folder of the state directory → where the daemon sees it.
MOUNTS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt", "cache": "/var/cache/libvirt",
          "log": "/var/log/libvirt"}

# Ranges away from the system daemon's defaults (VNC from 5900, migration 49152-49215).
QEMU_CONF = """\
remote_display_port_min = 15900
remote_display_port_max = 15999
migration_port_min = 49400
migration_port_max = 49499
cgroup_controllers = [ ]
"""

# Runs in the new mount namespace (unshare without --fork execs it, and it execs libvirtd, so the
# process we started is libvirtd itself). virtlogd first: QEMU's output goes through it.
START_SCRIPT = """\
set -e
state="$1"; shift
while [ "$#" -gt 0 ]; do mount --bind "$state/$1" "$2"; shift 2; done
mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu
virtlogd -p "$state/virtlogd.pid" &
exec libvirtd --listen -p "$state/libvirtd.pid"
"""


class CannotStart(Exception):
    pass


@dataclass
class SecondHost:
    uri: str
    state_dir: Path
    libvirtd: subprocess.Popen
    virtlogd_pid: int | None
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def _write_config(state: Path, port: int) -> None:
    for name in MOUNTS:
        (state / name).mkdir()
        # QEMU runs as libvirt-qemu and walks into /var/lib/libvirt/qemu/domain-*: 0755 like the originals.
        (state / name).chmod(0o755)
    for sub in ("qemu", "secrets", "storage", "nwfilter"):
        (state / "etc" / sub).mkdir()
    (state / "etc" / "libvirtd.conf").write_text(
        f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "127.0.0.1"\ntcp_port = "{port}"\nauth_tcp = "none"\n'
        f'host_uuid = "{uuid.uuid4()}"\n')
    (state / "etc" / "qemu.conf").write_text(QEMU_CONF)


def _alive(pid: int) -> bool:
    """Running, and not a zombie (an init that does not reap leaves those)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def start(log_path: Path) -> SecondHost:
    """Start the second daemon and wait until it answers; raises CannotStart with the reason."""
    import libvirt

    missing = [tool for tool in ("unshare", "mount", "libvirtd", "virtlogd") if shutil.which(tool) is None]
    if missing:
        raise CannotStart(f"not installed: {', '.join(missing)}")
    if os.geteuid() != 0:
        raise CannotStart("mount namespaces and a system libvirtd need root")
    libvirt.registerErrorHandler(lambda _ctx, _error: None, None)  # refusals while it starts are expected
    state = Path(tempfile.mkdtemp(prefix="portal-second-libvirt-"))
    port = free_port()
    _write_config(state, port)
    mounts = [arg for name, target in MOUNTS.items() for arg in (name, target)]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", START_SCRIPT, "sh", str(state), *mounts],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    host = SecondHost(uri=f"qemu+tcp://127.0.0.1:{port}/system", state_dir=state, libvirtd=process,
                      virtlogd_pid=None, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        pid_file = state / "virtlogd.pid"
        if host.virtlogd_pid is None and pid_file.exists() and pid_file.read_text().strip():
            host.virtlogd_pid = int(pid_file.read_text().strip())
        try:
            libvirt.open(host.uri).close()
            answers = True
        except libvirt.libvirtError:
            answers = False
        if answers and host.virtlogd_pid is not None:
            return host
        if process.poll() is not None or time.monotonic() > deadline:
            why = (f"libvirtd exited with {process.returncode}" if process.poll() is not None
                   else f"after {START_TIMEOUT}s: libvirtd {'answers' if answers else 'does not answer'}, "
                        f"virtlogd {'runs' if host.virtlogd_pid else 'wrote no PID file'}")
            stop(host)
            raise CannotStart(f"{host.uri}: {why}\n{host.log_tail()}")
        time.sleep(0.1)


def stop(host: SecondHost) -> None:
    """Destroy the guests left on it (their QEMUs would outlive the daemon), stop libvirtd and
    virtlogd by PID, remove the state folder."""
    import libvirt

    if host.libvirtd.poll() is None:
        try:
            conn = libvirt.open(host.uri)
        except libvirt.libvirtError:
            conn = None
        if conn is not None:
            for dom in conn.listAllDomains(0):
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
            conn.close()
        host.libvirtd.terminate()
        try:
            host.libvirtd.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            host.libvirtd.kill()
            host.libvirtd.wait(timeout=STOP_TIMEOUT)
    if host.virtlogd_pid is not None and _alive(host.virtlogd_pid):
        os.kill(host.virtlogd_pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(host.virtlogd_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    shutil.rmtree(host.state_dir, ignore_errors=True)
