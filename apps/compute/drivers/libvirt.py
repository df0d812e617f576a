"""The real compute driver: libvirt (QEMU/KVM) through libvirt-python.

One connection per host URI per process, kept open and reopened when libvirt reports it dead.
The `libvirt` module is imported lazily so the package imports on machines without it."""

from __future__ import annotations

import atexit
import json
import threading
import time
from urllib.parse import urlsplit
from typing import Any

from apps.compute.drivers import domain_xml
from apps.compute.drivers.base import (
    CRASHED,
    MIGRATION_MAX_DOWNTIME_MS,
    MIGRATION_TIMEOUT,
    PAUSED,
    RUNNING,
    SHUTOFF,
    AlreadyExists,
    ComputeDriver,
    DomainInfo,
    DiskSpec,
    DomainEvent,
    DomainSpec,
    NicSpec,
    DriverError,
    HostCapacity,
    MigrationProgress,
    NotFound,
    Transient,
    Unsupported,
    check_hot_resize,
)

DETACH_TIMEOUT = 30  # seconds a running guest gets to release a hot-unplugged disk
MIGRATION_POLL = 0.5  # seconds between two looks at a running migration

_connections: dict[str, Any] = {}
_lock = threading.Lock()


def _libvirt():
    import libvirt

    return libvirt


def _quiet(_ctx, _error) -> None:
    """libvirt prints every error to stderr by default; ours become exceptions instead."""


def close_all() -> None:
    """Close the cached connections (at exit: libvirt's own finaliser fails at shutdown)."""
    with _lock:
        for conn in _connections.values():
            try:
                conn.close()
            except Exception:  # closing a dead connection: nothing left to release
                pass
        _connections.clear()


atexit.register(close_all)


def connection(uri: str):
    """The process-wide connection to `uri`, opened on first use and after it died."""
    libvirt = _libvirt()
    with _lock:
        conn = _connections.get(uri)
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
        libvirt.registerErrorHandler(_quiet, None)
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise Transient(f"cannot connect to {uri}: {exc.get_error_message()}") from exc
        _connections[uri] = conn
        return conn


def _state_name(code: int) -> str:
    libvirt = _libvirt()
    return {
        libvirt.VIR_DOMAIN_RUNNING: RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED: RUNNING,
        libvirt.VIR_DOMAIN_SHUTDOWN: RUNNING,  # shutting down: still running until it is off
        libvirt.VIR_DOMAIN_PAUSED: PAUSED,
        libvirt.VIR_DOMAIN_PMSUSPENDED: PAUSED,
        libvirt.VIR_DOMAIN_CRASHED: CRASHED,
    }.get(code, SHUTOFF)


_event_loop_started = False


def _start_event_loop() -> None:
    """libvirt delivers events through its default event loop, which must be registered
    before the connection that listens is opened, and run by one thread per process."""
    global _event_loop_started
    libvirt = _libvirt()
    with _lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


_EVENT_DETAILS = {
    # virDomainEventType values in words for people.
    0: "defined", 1: "undefined", 2: "started", 3: "suspended", 4: "resumed", 5: "stopped", 6: "shutdown",
    7: "pmsuspended", 8: "crashed",
}


def _migration_progress(stats: dict, *, completed: bool = False) -> MigrationProgress:
    """libvirt's job statistics (virDomainGetJobStats) as plain data; while the job runs, its
    "downtime" is only the expected one."""
    return MigrationProgress(total_bytes=stats.get("data_total", 0), remaining_bytes=stats.get("data_remaining", 0),
                             iteration=stats.get("memory_iteration", 0),
                             downtime_ms=stats.get("downtime") if completed else None)


class LibvirtDriver(ComputeDriver):
    capabilities = frozenset({"direct_kernel_boot", "vnc", "serial_log"})

    def _conn(self):
        return connection(self.uri)

    def _call(self, fn, *args):
        """Run a libvirt call, mapping its errors to driver errors."""
        libvirt = _libvirt()
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            if code == libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFound(exc.get_error_message()) from exc
            if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT):
                with _lock:
                    _connections.pop(self.uri, None)
                raise Transient(exc.get_error_message()) from exc
            raise DriverError(exc.get_error_message()) from exc

    def _domain(self, name: str):
        return self._call(self._conn().lookupByName, name)

    def _info(self, dom) -> DomainInfo:
        state, _reason = self._call(dom.state)
        _, max_mem_kib, _, vcpus, _ = self._call(dom.info)
        xml = self._call(dom.XMLDesc, 0)
        host, port = domain_xml.vnc_endpoint(xml)
        max_vcpus, max_memory_mb = domain_xml.hotplug_limits(xml)
        return DomainInfo(
            name=dom.name(),
            state=_state_name(state),
            vcpus=vcpus,
            memory_mb=max_mem_kib // 1024,
            vnc_host=host,
            vnc_port=port,
            labels=domain_xml.labels(xml),
            disks=domain_xml.disk_targets(xml),
            nics=domain_xml.nic_macs(xml),
            max_vcpus=max_vcpus,
            max_memory_mb=max_memory_mb,
        )

    def host_capacity(self) -> HostCapacity:
        libvirt = _libvirt()
        conn = self._conn()
        arch, memory_mb, cpus, *_ = self._call(conn.getInfo)
        caps = domain_xml.capabilities_summary(self._call(conn.getCapabilities))
        pci = tuple(
            domain_xml.pci_device(dev.XMLDesc(0))
            for dev in self._call(conn.listAllDevices, libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
        )
        return HostCapacity(
            hostname=self._call(conn.getHostname),
            arch=caps["arch"] or arch,
            cpu_model=caps["cpu_model"],
            vcpus=cpus,
            memory_mb=memory_mb,
            numa_nodes=caps["numa_nodes"],
            kvm_usable=self._kvm_usable(caps["features"], caps["arch"] or arch),
            pci_devices=pci,
            hypervisor_version=str(self._call(conn.getVersion)),
        )

    def _kvm_usable(self, cpu_features: set[str], arch: str) -> bool:
        """Hardware virtualisation needs the CPU flag (vmx/svm) *and* libvirt's KVM domain
        capabilities; /dev/kvm alone is not enough (nested PVM hosts have it, and guests hang)."""
        libvirt = _libvirt()
        if not cpu_features & {"vmx", "svm"}:
            return False
        try:
            self._conn().getDomainCapabilities(None, arch, None, "kvm", 0)
        except libvirt.libvirtError:
            return False
        return True

    def ensure_domain(self, spec: DomainSpec) -> DomainInfo:
        libvirt = _libvirt()
        try:
            dom = self._domain(spec.name)
        except NotFound:
            try:
                dom = self._call(self._conn().defineXML, domain_xml.build(spec))
            except DriverError:
                # Another worker defined it between our lookup and define: use theirs.
                dom = self._domain(spec.name)
        if self._call(dom.state)[0] != libvirt.VIR_DOMAIN_RUNNING:
            try:
                self._call(dom.create)
            except DriverError:
                if self._call(dom.state)[0] != libvirt.VIR_DOMAIN_RUNNING:
                    raise
        return self._info(dom)

    def domain_info(self, name: str) -> DomainInfo:
        return self._info(self._domain(name))

    def list_domains(self) -> list[DomainInfo]:
        return [self._info(dom) for dom in self._call(self._conn().listAllDomains, 0)]

    def start_domain(self, name: str) -> DomainInfo:
        dom = self._domain(name)
        if not dom.isActive():
            self._call(dom.create)
        return self._info(dom)

    def stop_domain(self, name: str, *, force: bool = False) -> DomainInfo:
        dom = self._domain(name)
        if dom.isActive():
            self._call(dom.destroy if force else dom.shutdown)
        return self._info(dom)

    def reboot_domain(self, name: str, *, hard: bool = False) -> DomainInfo:
        dom = self._domain(name)
        if not dom.isActive():
            self._call(dom.create)
        elif hard:
            self._call(dom.reset, 0)
        else:
            self._call(dom.reboot, 0)
        return self._info(dom)

    def delete_domain(self, name: str, *, missing_ok: bool = True) -> None:
        libvirt = _libvirt()
        try:
            dom = self._domain(name)
        except NotFound:
            if missing_ok:
                return
            raise
        if dom.isActive():
            self._call(dom.destroy)
        flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        try:
            self._call(dom.undefineFlags, flags)
        except NotFound:
            if not missing_ok:
                raise

    def redefine_domain(self, spec: DomainSpec) -> DomainInfo:
        uuid = ""
        try:
            dom = self._domain(spec.name)
            if dom.isActive():
                raise DriverError(f"domain {spec.name} is running; stop it first")
            uuid = dom.UUIDString()
        except NotFound:
            pass
        # defineXML with the same name and UUID replaces the persistent definition.
        return self._info(self._call(self._conn().defineXML, domain_xml.build(spec, uuid=uuid)))

    def migrate_domain(self, name: str, target: ComputeDriver, *, live: bool, address: str,
                       timeout: float = MIGRATION_TIMEOUT, max_downtime_ms: int = MIGRATION_MAX_DOWNTIME_MS,
                       progress=None) -> DomainInfo:
        """Managed direct migration (virDomainMigrate3 given a connection to each daemon), not
        peer-to-peer: the worker holds both connections, so hosts need no libvirt credentials
        for each other (only QEMU's stream goes host to host, to `address`), and a worker that
        dies mid-copy makes both daemons cancel it: the guest runs on here."""
        libvirt = _libvirt()
        if not isinstance(target, LibvirtDriver):
            raise Unsupported(f"cannot migrate a libvirt domain to {type(target).__name__}")
        dom = self._domain(name)
        state, reason = self._call(dom.state)
        if state == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_MIGRATION:
            # A migration whose client died after the copy left it paused here: it resumes here
            # unless the target runs it (then this copy is stale and must never run again).
            try:
                target.domain_info(name)
            except NotFound:
                self._call(dom.resume)
            else:
                raise AlreadyExists(f"domain {name} is on the target already; this paused copy is stale")
        active = bool(self._call(dom.isActive))
        if live and not active:
            raise DriverError(f"domain {name} is not running; it cannot move live")
        # The definitions the target keeps, with the display on the target's address.
        xml_flags = libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_SECURE
        params = {}
        if self._call(dom.isPersistent):
            params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = domain_xml.with_vnc_listen(
                self._call(dom.XMLDesc, xml_flags | libvirt.VIR_DOMAIN_XML_INACTIVE), address)
        flags = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        if not active:
            flags |= libvirt.VIR_MIGRATE_OFFLINE
        else:
            host = f"[{address}]" if ":" in address else address
            params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{host}"
            params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = address
            params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = domain_xml.with_vnc_listen(
                self._call(dom.XMLDesc, xml_flags), address)
        if live:
            flags |= libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_AUTO_CONVERGE
            self._call(dom.migrateSetMaxDowntime, max_downtime_ms, 0)
        moved = self._watch_migration(dom, target, params, flags, timeout, progress)
        if progress is not None:
            try:
                progress(_migration_progress(moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED), completed=True))
            except libvirt.libvirtError:
                pass  # the statistics are a report only; the domain has moved
        return target._info(moved)

    def _watch_migration(self, dom, target: LibvirtDriver, params: dict, flags: int, timeout: float, progress):
        """Run the migration on a thread of its own (the call blocks until the end) while this
        one reports its progress and aborts it after `timeout` seconds."""
        libvirt = _libvirt()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["domain"] = self._call(dom.migrate3, target._conn(), params, flags)
            except DriverError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"migrate {dom.name()}", daemon=True)
        thread.start()
        deadline, aborted = time.monotonic() + timeout, False
        while True:
            thread.join(MIGRATION_POLL)
            if not thread.is_alive():
                break
            if time.monotonic() > deadline and not aborted:
                aborted = True
                try:
                    dom.abortJob()
                except libvirt.libvirtError:
                    pass  # it finished meanwhile
            elif progress is not None:
                try:
                    stats = dom.jobStats()
                except libvirt.libvirtError:
                    continue  # the job ended between two looks
                if stats.get("data_total"):  # none before QEMU starts copying
                    progress(_migration_progress(stats))
        if "error" in outcome:
            if aborted:
                raise DriverError(f"the migration of {dom.name()} did not finish in {timeout:g} s and was aborted; "
                                  "the guest runs on the source") from outcome["error"]
            raise outcome["error"]
        return outcome["domain"]

    def hot_resize(self, name: str, *, vcpus: int, memory_mb: int) -> DomainInfo:
        libvirt = _libvirt()
        dom = self._domain(name)
        if not dom.isActive():
            raise DriverError(f"domain {name} is not running; resize its definition instead")
        info = self._info(dom)
        added_mb = check_hot_resize(info, vcpus=vcpus, memory_mb=memory_mb)
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if vcpus > info.vcpus:
            self._call(dom.setVcpusFlags, vcpus, flags)
        if added_mb:
            self._call(dom.attachDeviceFlags, domain_xml.dimm_xml(added_mb), flags)
        return self._info(dom)

    def console_log(self, path: str, *, limit: int) -> str:
        """Serial logs are files on the hypervisor: readable here for local URIs only."""
        parts = urlsplit(self.uri)
        if "+" in parts.scheme or parts.netloc:
            raise Unsupported("console logs of remote hosts are not collected yet")
        try:
            with open(path, "rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - limit))
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _device_flags(self, dom) -> int:
        libvirt = _libvirt()
        live = libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0
        return libvirt.VIR_DOMAIN_AFFECT_CONFIG | live

    def attach_disk(self, name: str, disk: DiskSpec) -> DomainInfo:
        dom = self._domain(name)
        if disk.target not in domain_xml.disk_targets(self._call(dom.XMLDesc, 0)):
            self._call(dom.attachDeviceFlags, domain_xml.disk_xml(disk), self._device_flags(dom))
        return self._info(dom)

    def detach_disk(self, name: str, target: str) -> DomainInfo:
        def find(xml):
            found = domain_xml.disk_by_target(xml, target)
            return found[0] if found else None

        return self._detach(name, find, lambda xml: target in domain_xml.disk_targets(xml), target)

    def _detach(self, name: str, find, still_there, what: str) -> DomainInfo:
        """Unplug the device `find(xml)` returns (its XML, or None) from the definition and,
        when running, from the guest; hot unplug completes when the guest releases the device
        (ACPI): wait for it."""
        libvirt = _libvirt()
        dom = self._domain(name)
        for flags, xml_flags in ((libvirt.VIR_DOMAIN_AFFECT_CONFIG, libvirt.VIR_DOMAIN_XML_INACTIVE),
                                 (libvirt.VIR_DOMAIN_AFFECT_LIVE, 0)):
            if flags == libvirt.VIR_DOMAIN_AFFECT_LIVE and not dom.isActive():
                break
            device = find(self._call(dom.XMLDesc, xml_flags))
            if device is not None:
                self._call(dom.detachDeviceFlags, device, flags)
        deadline = time.monotonic() + DETACH_TIMEOUT
        while dom.isActive() and still_there(self._call(dom.XMLDesc, 0)):
            if time.monotonic() > deadline:
                raise DriverError(f"the guest did not release {what} in {DETACH_TIMEOUT} s; "
                                  "stop the instance to detach it")
            time.sleep(0.2)
        return self._info(dom)

    def attach_interface(self, name: str, nic: NicSpec) -> DomainInfo:
        dom = self._domain(name)
        if nic.mac not in domain_xml.nic_macs(self._call(dom.XMLDesc, 0)):
            self._call(dom.attachDeviceFlags, domain_xml.nic_xml(nic), self._device_flags(dom))
        return self._info(dom)

    def detach_interface(self, name: str, mac: str) -> DomainInfo:
        return self._detach(name, lambda xml: domain_xml.nic_by_mac(xml, mac),
                            lambda xml: mac in domain_xml.nic_macs(xml), f"the NIC {mac}")

    def resize_disk(self, name: str, target: str, size_bytes: int) -> None:
        libvirt = _libvirt()
        dom = self._domain(name)
        self._call(dom.blockResize, target, size_bytes, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)

    def _qmp(self, name: str, command: str, arguments: dict) -> dict:
        """A QMP command for the guest's QEMU: libvirt has no API for per-disk internal
        snapshots of a running guest. (libvirt marks such a domain as tainted in its log.)"""
        import libvirt_qemu

        dom = self._domain(name)
        request = json.dumps({"execute": command, "arguments": arguments})
        reply = self._call(libvirt_qemu.qemuMonitorCommand, dom, request,
                           libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT)
        return json.loads(reply)

    def _node_name(self, name: str, target: str) -> str:
        """QEMU's block node behind the disk at `target` (found through its device alias)."""
        found = domain_xml.disk_by_target(self._call(self._domain(name).XMLDesc, 0), target)
        if found is None or not found[1]:
            raise DriverError(f"{name} has no running disk {target}")
        for block in self._qmp(name, "query-block", {}).get("return", []):
            if f"/{found[1]}/" in block.get("qdev", "") and block.get("inserted"):
                return block["inserted"]["node-name"]
        raise DriverError(f"QEMU of {name} does not show the disk {target}")

    def snapshot_disk(self, name: str, target: str, snapshot: str) -> None:
        node = self._node_name(name, target)
        reply = self._qmp(name, "blockdev-snapshot-internal-sync", {"device": node, "name": snapshot})
        if "error" in reply and "already exists" not in reply["error"].get("desc", ""):
            raise DriverError(f"snapshot of {target}: {reply['error'].get('desc')}")

    def delete_disk_snapshot(self, name: str, target: str, snapshot: str) -> None:
        node = self._node_name(name, target)
        reply = self._qmp(name, "blockdev-snapshot-delete-internal-sync", {"device": node, "name": snapshot})
        if "error" in reply and "not found" not in reply["error"].get("desc", "").lower():
            raise DriverError(f"deleting snapshot of {target}: {reply['error'].get('desc')}")

    def ensure_ceph_secret(self, uuid: str, user: str, key: bytes) -> None:
        libvirt = _libvirt()
        conn = self._conn()
        try:
            secret = conn.secretLookupByUUIDString(uuid)
        except libvirt.libvirtError:
            xml = (f"<secret ephemeral='no' private='yes'><uuid>{uuid}</uuid>"
                   f"<usage type='ceph'><name>client.{user} {uuid}</name></usage></secret>")
            secret = self._call(conn.secretDefineXML, xml, 0)
        self._call(secret.setValue, key, 0)

    def set_user_password(self, name: str, user: str, password: str) -> None:
        self._call(self._domain(name).setUserPassword, user, password, 0)

    def watch_events(self, on_event, stop: threading.Event) -> None:
        """Lifecycle events on a read-only connection of its own (events need libvirt's
        event loop registered before the connection is opened)."""
        libvirt = _libvirt()
        _start_event_loop()
        try:
            conn = libvirt.openReadOnly(self.uri)
        except libvirt.libvirtError as exc:
            raise Transient(f"cannot connect to {self.uri}: {exc.get_error_message()}") from exc
        lost = threading.Event()

        def lifecycle(_conn, dom, event, detail, _opaque):
            state, _reason = dom.state()
            on_event(DomainEvent(name=dom.name(), state=_state_name(state), detail=_EVENT_DETAILS.get(event, str(event))))

        conn.registerCloseCallback(lambda *_: lost.set(), None)
        callback_id = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
        try:
            while not stop.wait(0.5):
                if lost.is_set() or not conn.isAlive():
                    raise Transient(f"lost the event connection to {self.uri}")
        finally:
            try:
                conn.domainEventDeregisterAny(callback_id)
                conn.close()
            except libvirt.libvirtError:
                pass
