"""Throwaway OVN for tests.

`start_nb`: a private OVN northbound ovsdb-server, started the way scripts/lib.sh's ovn_nb_start
starts the one of `make run` (ovsdb-tool create, ovsdb-server --detach on a unix socket,
ovn-nbctl init), but with a fresh database every time and nothing exported: the caller gets the
connection string.

    server = start_nb(tmp_path / "ovn")
    server.nbctl("ls-add", "sw0")
    ...
    server.stop()

`start_stack`: the full OVN stack on userspace Open vSwitch (no kernel module needed): NB and SB
ovsdb-servers, ovn-northd, OVS's ovsdb-server and ovs-vswitchd (datapath `netdev`) with br-int,
and ovn-controller; one at a time on the machine (STACK_LOCK). Guests (libvirt
`<virtualport type='openvswitch'>` on br-int) and network namespaces (`add_netns_port`) bound to
logical switch ports get real traffic through OVN's switches, routers and ACLs.

    stack = start_stack(tmp_path / "ovn-stack")
    stack.nb.nbctl("ls-add", "sw0", "--", "lsp-add", "sw0", "p1", ...)
    a = stack.add_netns_port("a", "p1", "52:54:00:00:00:01", "10.0.0.1/24")
    stack.wait_port_up("p1")
    stack.ping(a, "10.0.0.2")
    ...
    stack.stop()

The `ovn_nb` and `ovn_stack` fixtures (tests/conftest.py) do this per test.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import log_tail

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")  # Debian's ovn-central
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")  # Debian's openvswitch-common
# Where libvirt's ovs-vsctl looks for the Open vSwitch database (it passes no --db)
DEFAULT_OVS_DB = Path("/var/run/openvswitch/db.sock")
# Held (flock) by the one stack of this machine: there is one DEFAULT_OVS_DB, and ovs-vswitchd's
# netdev datapath makes taps named br-int and ovs-netdev in the host's network namespace
STACK_LOCK = Path("/var/run/portal-test-ovn-stack.lock")
LOCK_TIMEOUT = 120.0  # seconds to wait for another test run's stack to stop
NB_TOOLS = ("ovsdb-server", "ovsdb-tool", "ovn-nbctl")
STACK_TOOLS = (*NB_TOOLS, "ovn-sbctl", "ovn-northd", "ovs-vsctl", "ovs-vswitchd", "ovn-controller", "ip")
START_TIMEOUT = 15.0  # seconds until the socket answers (~0.02 s is typical)
STACK_TIMEOUT = 30.0  # seconds until the chassis is in the SB and has caught up with the NB
STOP_TIMEOUT = 10.0  # seconds after SIGTERM, then SIGKILL
MAX_SOCKET_PATH = 107  # bytes: sun_path is 108 with the terminating NUL

_port_numbers = itertools.count(1)  # veth names, unique in this process across stacks


class OvnNotInstalled(RuntimeError):
    """An OVN or Open vSwitch program or schema is missing."""


class StackUnavailable(RuntimeError):
    """The full stack cannot run here: not root, the default Open vSwitch database path belongs
    to another Open vSwitch, or another test run's stack did not stop within LOCK_TIMEOUT."""


class CtlError(RuntimeError):
    """ovn-nbctl, ovn-sbctl or ovs-vsctl failed; the message holds its stderr."""


class NbctlError(CtlError):
    """ovn-nbctl failed; the message holds its stderr."""


def _require_tools(tools: tuple[str, ...], schemas: tuple[Path, ...]) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise OvnNotInstalled(f"{tool} missing")
    for schema in schemas:
        if not schema.is_file():
            raise OvnNotInstalled(f"{schema} missing")


def _run(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=timeout)


def _ctl(command: list[str], *, env: dict[str, str] | None = None, error: type[CtlError] = CtlError,
         timeout: float = 30) -> str:
    """Run COMMAND; its stdout, or ERROR with its stderr."""
    done = _run(command, env=env, timeout=timeout)
    if done.returncode != 0:
        raise error(f"{' '.join(command)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


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


def _stop_pid(pid: int | None, pidfile: Path) -> None:
    """SIGTERM PID (SIGKILL after STOP_TIMEOUT) and wait until it is gone, if it is still ours."""
    if pid is None or not _pid_is(pid, pidfile):
        return
    for sig, timeout in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while _pid_is(pid, pidfile) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _pid_is(pid, pidfile):
            return


@dataclass
class _Daemon:
    name: str
    pid: int
    pidfile: Path
    log_path: Path
    exit_command: list[str] | None = None  # asks it to exit cleanly, before any signal

    def alive(self) -> bool:
        return _pid_is(self.pid, self.pidfile)

    def stop(self, env: dict[str, str] | None = None) -> None:
        if self.exit_command and self.alive():
            try:
                _run(self.exit_command, env=env, timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        _stop_pid(self.pid, self.pidfile)


def _start_daemon(name: str, command: list[str], pidfile: Path, log_path: Path,
                  env: dict[str, str] | None = None) -> _Daemon:
    """Run COMMAND with --pidfile, --log-file and --detach. --detach returns once the daemon is
    set up (listens, has written its pid file); it keeps no stdio open, so capturing its output
    does not wait for it."""
    for stale in (pidfile, log_path):
        stale.unlink(missing_ok=True)
    done = _run([*command, f"--pidfile={pidfile}", f"--log-file={log_path}", "--detach"], env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{name} did not start (exit {done.returncode}): {done.stderr.strip()}\n"
                           f"{log_tail(log_path)}")
    return _Daemon(name, int(pidfile.read_text().split()[0]), pidfile, log_path)


def _start_ovsdb(name: str, db: Path, schema: Path, sock: Path, ctl: Path, pidfile: Path, log_path: Path,
                 env: dict[str, str] | None = None) -> _Daemon:
    """A fresh database DB of SCHEMA served by ovsdb-server on the unix socket SOCK."""
    for stale in (db, db.with_name(f".{db.name}.~lock~")):
        stale.unlink(missing_ok=True)
    _ctl(["ovsdb-tool", "create", str(db), str(schema)], error=CtlError)
    return _start_daemon(name, ["ovsdb-server", str(db), f"--remote=punix:{sock}", f"--unixctl={ctl}"],
                         pidfile, log_path, env)


def _wait_until(ready, what: str, daemons: list[_Daemon], timeout: float = START_TIMEOUT) -> None:
    """Poll READY() until true; fail early when one of DAEMONS died, with its log."""
    deadline = time.monotonic() + timeout
    while not ready():
        for daemon in daemons:
            if not daemon.alive():
                raise RuntimeError(f"{daemon.name} exited while waiting until {what}:\n{log_tail(daemon.log_path)}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {d.name} ({d.log_path}):\n{log_tail(d.log_path, 10)}" for d in daemons)
            raise RuntimeError(f"not {what} after {timeout}s\n{logs}")
        time.sleep(0.02)


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
        return log_tail(self.log_path, lines)

    def nbctl(self, *args: str) -> str:
        """`ovn-nbctl --db=<connection> --timeout=10 ARGS...`; its stdout."""
        return _ctl(["ovn-nbctl", f"--db={self.connection}", "--timeout=10", *args], error=NbctlError)

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
        _stop_pid(pid, self.pidfile)
        if self._own_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self._own_socket_dir = False


def _socket_dir(directory: Path, longest: str = "nb.sock", prefix: str = "ovn-nb-") -> tuple[Path, bool]:
    """DIRECTORY, or a new short temporary directory when DIRECTORY/LONGEST would be too long a
    unix socket path (ovsdb-server copes, ovsdbapp's Python ovs library may not)."""
    if len(os.fsencode(str(directory / longest))) <= MAX_SOCKET_PATH:
        return directory, False
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) > 60:  # TMPDIR itself may be long
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base)), True


def _start_nb(directory: Path, socket_dir: Path, own_socket_dir: bool) -> NbServer:
    server = NbServer(directory=directory, socket_dir=socket_dir, _own_socket_dir=own_socket_dir)
    try:
        daemon = _start_ovsdb("ovsdb-server (NB)", directory / "ovnnb_db.db", NB_SCHEMA, socket_dir / "nb.sock",
                              socket_dir / "nb.ctl", server.pidfile, server.log_path)
        server.pid = daemon.pid
        _wait_until(server.answers, f"ovsdb-server answers on {server.connection}", [daemon])
        server.nbctl("init")  # the NB_Global row
    except BaseException:
        server.stop()
        raise
    return server


def start_nb(directory: Path) -> NbServer:
    """Start an OVN northbound ovsdb-server with a fresh database in DIRECTORY (created if
    missing), wait until it answers, `ovn-nbctl init` it. Raises OvnNotInstalled when OVN is not
    installed, RuntimeError when the server does not come up (it is stopped then)."""
    _require_tools(NB_TOOLS, (NB_SCHEMA,))
    directory = Path(directory).absolute()  # --detach chdirs to /
    directory.mkdir(parents=True, exist_ok=True)
    return _start_nb(directory, *_socket_dir(directory))


def _answers(path: Path) -> bool:
    """Something listens on the unix socket PATH (symlinks followed)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def default_ovs_db_taken() -> str | None:
    """Why DEFAULT_OVS_DB cannot point at a test stack's database, or None when it is free:
    absent, a dangling symlink, or a symlink to a socket nobody listens on (a crashed run)."""
    if not os.path.lexists(DEFAULT_OVS_DB):
        return None
    if not DEFAULT_OVS_DB.is_symlink():
        return f"{DEFAULT_OVS_DB} exists and is not a symlink: a system Open vSwitch runs (or ran) here"
    if _answers(DEFAULT_OVS_DB):
        return f"{DEFAULT_OVS_DB} links to {os.readlink(DEFAULT_OVS_DB)}, where an ovsdb-server answers " \
               "(another test's OVN stack, or `make run`'s in var/ovn?)"
    return None


# Turns off eth0's TX checksum offload (ethtool -K eth0 tx off; ethtool is not installed here):
# the kernel would leave TCP/UDP checksums to the "hardware", but ovs-vswitchd's netdev datapath
# reads the veth with a packet socket and forwards the packets with their checksums unfilled, so
# the receiver drops them (ICMP still works, TCP times out).
_TX_CSUM_OFF = r"""
import array, fcntl, socket, struct
value = array.array("B", struct.pack("II", 0x17, 0))  # struct ethtool_value {ETHTOOL_STXCSUM, off}
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    fcntl.ioctl(sock.fileno(), 0x8946, struct.pack("16sP", b"eth0", value.buffer_info()[0]))  # SIOCETHTOOL
"""

# ICMP echo from inside a network namespace: iputils-ping is not installed on these machines, and
# a raw socket needs only Python (the tests run as root).
_PING = r"""
import os, socket, struct, sys, time
address, count, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
ident, payload, received = os.getpid() & 0xFFFF, b"portal-test-ping", 0
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
    for seq in range(1, count + 1):
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        sock.sendto(struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload, (address, 0))
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (source, _) = sock.recvfrom(2048)
            except socket.timeout:
                break
            icmp = data[(data[0] & 0x0F) * 4:]
            if source == address and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq):
                received += 1
                break
print(received)
"""


@dataclass
class OvnStack:
    directory: Path  # databases, pid files, logs
    socket_dir: Path  # every unix socket (OVS_RUNDIR, OVN_RUNDIR): `directory`, or a short temporary one
    chassis: str
    env: dict[str, str]  # for the daemons and the ctl tools: nothing under /var/run, /etc
    nb: NbServer | None = None
    startup_seconds: float = 0.0  # start_stack's time, without waiting for STACK_LOCK
    _daemons: list[_Daemon] = field(default_factory=list)  # in start order, without the NB server
    _netns: list[str] = field(default_factory=list)
    _veths: list[str] = field(default_factory=list)
    _bridges: list[str] = field(default_factory=list)  # add_provider_bridge's
    _own_socket_dir: bool = False
    _default_link: Path | None = None  # the target of the DEFAULT_OVS_DB symlink we made
    _lock_fd: int | None = None  # STACK_LOCK, held until stop()
    _made_link_dir: bool = False

    @property
    def sb_connection(self) -> str:
        return f"unix:{self.socket_dir / 'sb.sock'}"

    @property
    def ovs_connection(self) -> str:
        return f"unix:{self.socket_dir / 'db.sock'}"

    def sbctl(self, *args: str) -> str:
        """`ovn-sbctl --db=<sb> --timeout=10 ARGS...`; its stdout."""
        return _ctl(["ovn-sbctl", f"--db={self.sb_connection}", "--timeout=10", *args], env=self.env)

    def vsctl(self, *args: str) -> str:
        """`ovs-vsctl --db=<ovs> --timeout=10 ARGS...` on this stack's Open vSwitch; its stdout."""
        return _ctl(["ovs-vsctl", f"--db={self.ovs_connection}", "--timeout=10", *args], env=self.env)

    def wait_hv(self, timeout: int = 30) -> None:
        """Return once ovn-controller has applied the latest northbound change (flows installed)."""
        _ctl(["ovn-nbctl", f"--db={self.nb.connection}", f"--timeout={timeout}", "--wait=hv", "sync"],
             env=self.env, error=NbctlError, timeout=timeout + 10)

    def wait_port_up(self, *lsp_names: str, timeout: int = 30) -> None:
        """Return once each logical switch port is bound and its flows are installed (`up` true).
        wait_hv alone may come before ovn-controller has seen a new OVS interface."""
        for lsp in lsp_names:
            _ctl(["ovn-nbctl", f"--db={self.nb.connection}", f"--timeout={timeout}",
                  "wait-until", "Logical_Switch_Port", lsp, "up=true"], env=self.env, error=NbctlError,
                 timeout=timeout + 10)

    def netns_name(self, name: str) -> str:
        """NAME as this process's namespace name (prefixed, so runs side by side do not clash);
        a name that is already one is returned as is."""
        prefix = f"ptest-{os.getpid()}-"
        return name if name.startswith(prefix) else prefix + name

    def add_netns_port(self, name: str, lsp_name: str, mac: str, cidr_address: str, gateway: str | None = None) -> str:
        """A network namespace with eth0 (MAC, CIDR_ADDRESS, a default route via GATEWAY) bound to
        the logical switch port LSP_NAME: a veth pair whose other end is on br-int with
        external_ids:iface-id=LSP_NAME (not an internal port: the netdev datapath's are taps that
        ovs-vswitchd handles by name in its own namespace). eth0 computes its own checksums (see
        _TX_CSUM_OFF), so TCP and UDP work too. Returns the namespace name."""
        netns, host_end = self._netns_veth(name, mac, cidr_address, gateway)
        self.vsctl("add-port", "br-int", host_end, "--", "set", "Interface", host_end,
                   f"external_ids:iface-id={lsp_name}")
        return netns

    def _netns_veth(self, name: str, mac: str, cidr_address: str, gateway: str | None) -> tuple[str, str]:
        """A namespace with eth0 (checksum offload off) and the host end of its veth, up."""
        netns = self.netns_name(name)
        number = next(_port_numbers)
        host_end, guest_end = f"pv{os.getpid()}-{number}", f"pg{os.getpid()}-{number}"  # at most 15 characters
        _ctl(["ip", "netns", "add", netns])
        self._netns.append(netns)
        _ctl(["ip", "link", "add", host_end, "type", "veth", "peer", "name", guest_end])
        self._veths.append(host_end)
        _ctl(["ip", "link", "set", guest_end, "netns", netns])
        _ctl(["ip", "-n", netns, "link", "set", guest_end, "name", "eth0", "address", mac])
        _ctl(["ip", "-n", netns, "addr", "add", cidr_address, "dev", "eth0"])
        _ctl(["ip", "-n", netns, "link", "set", "eth0", "up"])
        _ctl(["ip", "-n", netns, "link", "set", "lo", "up"])
        _ctl(["ip", "netns", "exec", netns, sys.executable, "-c", _TX_CSUM_OFF])
        if gateway:
            _ctl(["ip", "-n", netns, "route", "add", "default", "via", gateway])
        _ctl(["ip", "link", "set", host_end, "up"])
        return netns, host_end

    def add_provider_bridge(self, physnet: str = "physnet1", bridge: str = "br-ex") -> str:
        """An Open vSwitch bridge (netdev datapath, a learning switch) for the physical network
        PHYSNET, added to external_ids:ovn-bridge-mappings: ovn-controller patches PHYSNET's
        localnet ports to it. Deleted by stop(). Returns BRIDGE."""
        self.vsctl("add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev")
        self._bridges.append(bridge)
        mappings = [m for m in self._bridge_mappings() if not m.startswith(f"{physnet}:")]
        self.vsctl("set", "Open_vSwitch", ".",
                   f'external_ids:ovn-bridge-mappings="{",".join([*mappings, f"{physnet}:{bridge}"])}"')
        return bridge

    def _bridge_mappings(self) -> list[str]:
        found = self.vsctl("--if-exists", "get", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings")
        return [m for m in found.strip().strip('"').split(",") if m]

    def add_netns_on_bridge(self, name: str, bridge: str, mac: str, cidr_address: str, gateway: str | None = None,
                            vlan: int | None = None) -> str:
        """A network namespace with eth0 (as add_netns_port's) plugged into BRIDGE, as an access
        port of VLAN when given: a host on a provider network, such as an external network's
        upstream router. Returns the namespace name."""
        netns, host_end = self._netns_veth(name, mac, cidr_address, gateway)
        self.vsctl("add-port", bridge, host_end, *(["--", "set", "Port", host_end, f"tag={vlan}"] if vlan else []))
        return netns

    def netns_exec(self, name: str, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """`ip netns exec NAME COMMAND...` (output captured as text; a failure is not raised)."""
        return _run(["ip", "netns", "exec", self.netns_name(name), *command], timeout=timeout)

    def ping(self, name: str, address: str, count: int = 3, wait: float = 2.0) -> int:
        """Send COUNT ICMP echo requests from namespace NAME to the IPv4 ADDRESS, waiting up to WAIT
        seconds for each reply; the number of replies."""
        done = self.netns_exec(name, sys.executable, "-c", _PING, address, str(count), str(wait),
                               timeout=count * wait + 30)
        if done.returncode != 0:
            raise RuntimeError(f"ping from {name} to {address} failed: {done.stderr.strip()}")
        return int(done.stdout)

    def log_tails(self, lines: int = 10) -> str:
        """The end of every daemon's log, for a failing test's report."""
        parts = [f"--- {d.name} ({d.log_path}):\n{log_tail(d.log_path, lines)}" for d in self._daemons]
        if self.nb is not None:
            parts.insert(0, f"--- ovsdb-server (NB) ({self.nb.log_path}):\n{self.nb.log_tail(lines)}")
        return "\n".join(parts)

    def _link_default_db(self) -> None:
        """Point DEFAULT_OVS_DB at our database, so that libvirt's ovs-vsctl finds it."""
        if reason := default_ovs_db_taken():
            raise StackUnavailable(reason)
        if not DEFAULT_OVS_DB.parent.is_dir():
            DEFAULT_OVS_DB.parent.mkdir(parents=True)
            self._made_link_dir = True
        if DEFAULT_OVS_DB.is_symlink():  # dangling, or to a dead socket: a crashed run's
            DEFAULT_OVS_DB.unlink()
        target = self.socket_dir / "db.sock"
        try:
            os.symlink(target, DEFAULT_OVS_DB)
        except FileExistsError:
            raise StackUnavailable(f"{DEFAULT_OVS_DB} appeared meanwhile (another test's OVN stack?)") from None
        self._default_link = target

    def _unlink_default_db(self) -> None:
        target, self._default_link = self._default_link, None
        if target is not None and DEFAULT_OVS_DB.is_symlink() and Path(os.readlink(DEFAULT_OVS_DB)) == target:
            DEFAULT_OVS_DB.unlink()
        if self._made_link_dir:
            self._made_link_dir = False
            try:
                DEFAULT_OVS_DB.parent.rmdir()
            except OSError:  # something else put files there meanwhile
                pass

    def stop(self) -> None:
        """Delete the namespaces (and so their veths), stop the daemons in reverse order (by PID,
        SIGKILL after STOP_TIMEOUT), remove the DEFAULT_OVS_DB symlink we made and the temporary
        socket directory, release STACK_LOCK. Idempotent."""
        for netns in reversed(self._netns):
            _run(["ip", "netns", "delete", netns])
        self._netns.clear()
        for veth in self._veths:  # left in our namespace when add_netns_port failed half-way
            if os.path.lexists(f"/sys/class/net/{veth}"):
                _run(["ip", "link", "delete", veth])
        self._veths.clear()
        for bridge in reversed(self._bridges):  # while ovs-vswitchd runs, which deletes its tap
            try:
                self.vsctl("--if-exists", "del-br", bridge)
            except (CtlError, subprocess.TimeoutExpired):
                pass
        self._bridges.clear()
        for daemon in reversed(self._daemons):
            daemon.stop(self.env)
        self._daemons.clear()
        if self.nb is not None:
            self.nb.stop()
        self._unlink_default_db()
        if self._own_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self._own_socket_dir = False
        if self._lock_fd is not None:  # closing releases the flock
            os.close(self._lock_fd)
            self._lock_fd = None


def _lock_stack(timeout: float) -> int:
    """Take STACK_LOCK, waiting up to TIMEOUT seconds for another stack to stop; its fd."""
    fd = os.open(STACK_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                holder = os.pread(fd, 100, 0).decode(errors="replace").strip()
                os.close(fd)
                raise StackUnavailable(f"another OVN test stack (pid {holder or '?'}) still holds {STACK_LOCK} "
                                       f"after {timeout:.0f}s") from None
            time.sleep(0.1)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the message above
        return fd


def start_stack(directory: Path, *, chassis: str = "portal-test", lock_timeout: float = LOCK_TIMEOUT) -> OvnStack:
    """Start the full OVN stack with fresh databases in DIRECTORY (created if missing) and wait
    until ovn-controller has registered CHASSIS in the southbound database and caught up with the
    northbound one (br-int exists then).
    DEFAULT_OVS_DB links to its Open vSwitch database while it runs (libvirt's ovs-vsctl uses that
    path); nothing else outside DIRECTORY (and a short socket directory) is touched.
    One stack runs on the machine at a time: this waits up to LOCK_TIMEOUT seconds for another
    test run's to stop (STACK_LOCK).
    Raises OvnNotInstalled when a program or schema is missing, StackUnavailable when not root,
    DEFAULT_OVS_DB is another Open vSwitch's or another stack runs too long, RuntimeError when a
    part does not come up (all is stopped then)."""
    _require_tools(STACK_TOOLS, (NB_SCHEMA, SB_SCHEMA, OVS_SCHEMA))
    if os.geteuid() != 0:
        raise StackUnavailable("needs root (network namespaces, veths, br-int taps, /var/run/openvswitch)")
    directory = Path(directory).absolute()  # --detach chdirs to /
    directory.mkdir(parents=True, exist_ok=True)
    # ovs-vswitchd puts br-int.mgmt and br-int.snoop next to db.sock, ovn-controller connects to them
    socket_dir, own_socket_dir = _socket_dir(directory, "br-int.snoop", "ovn-stack-")
    env = dict(os.environ)
    for kind in ("OVS", "OVN"):  # every default path of the daemons and ctl tools
        env.update({f"{kind}_RUNDIR": str(socket_dir), f"{kind}_LOGDIR": str(directory),
                    f"{kind}_DBDIR": str(directory), f"{kind}_SYSCONFDIR": str(directory)})
    stack = OvnStack(directory=directory, socket_dir=socket_dir, chassis=chassis, env=env,
                     _own_socket_dir=own_socket_dir)
    try:
        stack._lock_fd = _lock_stack(lock_timeout)
        started = time.monotonic()
        if reason := default_ovs_db_taken():  # before starting anything
            raise StackUnavailable(reason)
        stack.nb = _start_nb(directory, socket_dir, own_socket_dir=False)

        sb = _start_ovsdb("ovsdb-server (SB)", directory / "ovnsb_db.db", SB_SCHEMA, socket_dir / "sb.sock",
                          socket_dir / "sb.ctl", directory / "sb.pid", directory / "sb.log", env)
        stack._daemons.append(sb)
        _wait_until(lambda: _answers(socket_dir / "sb.sock"), "the SB ovsdb-server answers", [sb])
        stack.sbctl("init")

        stack._daemons.append(_start_daemon(
            "ovn-northd", ["ovn-northd", f"--ovnnb-db={stack.nb.connection}", f"--ovnsb-db={stack.sb_connection}",
                           f"--unixctl={socket_dir / 'northd.ctl'}"],
            directory / "northd.pid", directory / "northd.log", env))

        ovsdb = _start_ovsdb("ovsdb-server (OVS)", directory / "conf.db", OVS_SCHEMA, socket_dir / "db.sock",
                             socket_dir / "ovsdb-server.ctl", directory / "ovsdb-server.pid",
                             directory / "ovsdb-server.log", env)
        stack._daemons.append(ovsdb)
        _wait_until(lambda: _answers(socket_dir / "db.sock"), "the OVS ovsdb-server answers", [ovsdb])
        stack.vsctl("--no-wait", "init")
        # ovn-bridge-datapath-type=netdev: ovn-controller keeps br-int (and any bridge it makes) in
        # userspace, there is no kernel datapath module here
        stack.vsctl("--no-wait", "set", "Open_vSwitch", ".", f"external_ids:system-id={chassis}",
                    f"external_ids:ovn-remote={stack.sb_connection}", "external_ids:ovn-encap-type=geneve",
                    "external_ids:ovn-encap-ip=127.0.0.1", "external_ids:ovn-bridge-datapath-type=netdev")
        stack._link_default_db()

        vswitchd_ctl = socket_dir / "ovs-vswitchd.ctl"
        vswitchd = _start_daemon("ovs-vswitchd", ["ovs-vswitchd", stack.ovs_connection, f"--unixctl={vswitchd_ctl}"],
                                 directory / "ovs-vswitchd.pid", directory / "ovs-vswitchd.log", env)
        # the netdev datapath's taps (br-int, ovs-netdev) are persistent: only `exit --cleanup`
        # deletes them, SIGTERM leaves them behind
        vswitchd.exit_command = ["ovs-appctl", "-t", str(vswitchd_ctl), "--timeout=5", "exit", "--cleanup"]
        stack._daemons.append(vswitchd)
        # br-int made here (as ovn-controller would make it) rather than by ovn-controller: then
        # br-int.mgmt exists when ovn-controller starts, which otherwise fails to connect to it and
        # retries only a second later. Without --no-wait, ovs-vsctl returns once vswitchd made it.
        stack.vsctl("add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev", "fail_mode=secure",
                    "other_config:disable-in-band=true")
        # ovn-controller 23.03 has no --unixctl: its ovn-controller.PID.ctl goes to OVN_RUNDIR
        stack._daemons.append(_start_daemon(
            "ovn-controller", ["ovn-controller", stack.ovs_connection],
            directory / "ovn-controller.pid", directory / "ovn-controller.log", env))

        def registered() -> bool:
            return stack.sbctl("--bare", "--columns=name", "find", "Chassis", f"name={chassis}").strip() == chassis

        _wait_until(registered, f"chassis {chassis} is in the SB", stack._daemons, STACK_TIMEOUT)
        stack.wait_hv(int(STACK_TIMEOUT))  # and has installed its flows
    except BaseException:
        stack.stop()
        raise
    stack.startup_seconds = time.monotonic() - started
    return stack
