"""libvirt domain XML: built from a DomainSpec, read back into DomainInfo fields. Pure
functions over text, so they are tested without a hypervisor."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from apps.compute.drivers.base import HOTPLUG_MEMORY_SLOTS, KVM, DiskSpec, DomainSpec, NicSpec, PciDevice

# Our labels live in the domain's <metadata> under this namespace, so the reconciler can tell
# the portal's domains (and their tenants) from anything else defined on the host.
METADATA_NS = "urn:cloud-portal:domain:1"
METADATA_PREFIX = "portal"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def disk_element(disk: DiskSpec) -> ET.Element:
    """A <disk>: a file, or an RBD image reached through its monitors with a libvirt secret;
    or a CD-ROM (an ISO file on an IDE or SATA bus, read-only)."""
    network = disk.protocol == "rbd"
    element = ET.Element("disk", {"type": "network" if network else "file", "device": disk.device})
    # No host page cache for network disks: what the guest flushed is in Ceph (and live migration is safe).
    _sub(element, "driver", name="qemu", type=disk.format, **({"cache": "none"} if network else {}))
    if network:
        if disk.auth_user:
            auth = _sub(element, "auth", username=disk.auth_user)
            _sub(auth, "secret", type="ceph", uuid=disk.secret_uuid)
        source = _sub(element, "source", protocol="rbd", name=disk.path)
        for host, port in disk.hosts:
            _sub(source, "host", name=host, port=str(port))
    else:
        _sub(element, "source", file=disk.path)
    _sub(element, "target", dev=disk.target, bus=disk.bus)
    if disk.serial:
        _sub(element, "serial", disk.serial)
    if disk.read_only:
        _sub(element, "readonly")
    return element


def disk_xml(disk: DiskSpec) -> str:
    return ET.tostring(disk_element(disk), encoding="unicode")


def nic_element(nic: NicSpec) -> ET.Element:
    """An Open vSwitch port on the integration bridge; the controller binds it to the logical
    port named `interfaceid`."""
    element = ET.Element("interface", type="bridge")
    _sub(element, "mac", address=nic.mac)
    _sub(element, "source", bridge=nic.bridge)
    virtualport = _sub(element, "virtualport", type="openvswitch")
    _sub(virtualport, "parameters", interfaceid=nic.port_id)
    _sub(element, "model", type=nic.model)
    if not nic.offload:
        driver = _sub(element, "driver")
        _sub(driver, "host", csum="off", gso="off", tso4="off", tso6="off", ecn="off", ufo="off")
        _sub(driver, "guest", csum="off", tso4="off", tso6="off", ecn="off", ufo="off")
    if nic.mtu:
        _sub(element, "mtu", size=str(nic.mtu))
    return element


def hostdev_element(address: str) -> ET.Element:
    """A host PCI device (a GPU) given to the guest; libvirt detaches it from its host driver
    (vfio-pci) while the guest runs (`managed`)."""
    domain, bus, slot_function = address.split(":")
    slot, function = slot_function.split(".")
    element = ET.Element("hostdev", mode="subsystem", type="pci", managed="yes")
    source = _sub(element, "source")
    _sub(source, "address", domain=f"0x{domain}", bus=f"0x{bus}", slot=f"0x{slot}", function=f"0x{function}")
    return element


def nic_xml(nic: NicSpec) -> str:
    return ET.tostring(nic_element(nic), encoding="unicode")


def nic_macs(xml: str) -> tuple[str, ...]:
    return tuple(m.get("address", "") for m in ET.fromstring(xml).findall("./devices/interface/mac"))


def nic_by_mac(xml: str, mac: str) -> str | None:
    """The <interface> element with this MAC, as XML, or None."""
    for nic in ET.fromstring(xml).findall("./devices/interface"):
        node = nic.find("mac")
        if node is not None and node.get("address", "").lower() == mac.lower():
            return ET.tostring(nic, encoding="unicode")
    return None


def build(spec: DomainSpec, *, uuid: str = "") -> str:
    """The domain XML for `spec`: VGA + VNC on the management address, a serial console logged
    to a file,
    direct kernel boot or disk boot, virtio disks. `uuid` keeps an existing domain's identity
    when its definition is replaced."""
    domain = ET.Element("domain", {"type": spec.virt_type})
    _sub(domain, "name", spec.name)
    if uuid:
        _sub(domain, "uuid", uuid)
    if spec.title:
        _sub(domain, "title", spec.title)
    metadata = _sub(domain, "metadata")
    labels = ET.SubElement(metadata, f"{{{METADATA_NS}}}labels")
    for key, value in spec.labels:
        _sub(labels, f"{{{METADATA_NS}}}label", value, key=key)
    max_vcpus = max(spec.max_vcpus, spec.vcpus)
    if spec.max_memory_mb > spec.memory_mb:
        _sub(domain, "maxMemory", str(spec.max_memory_mb), unit="MiB", slots=str(HOTPLUG_MEMORY_SLOTS))
    _sub(domain, "memory", str(spec.memory_mb), unit="MiB")
    if max_vcpus > spec.vcpus:
        _sub(domain, "vcpu", str(max_vcpus), placement="static", current=str(spec.vcpus))
    else:
        _sub(domain, "vcpu", str(spec.vcpus), placement="static")

    os_el = _sub(domain, "os")
    _sub(os_el, "type", "hvm", arch=spec.arch, machine="pc")
    if spec.kernel:
        _sub(os_el, "kernel", spec.kernel.kernel)
        if spec.kernel.initrd:
            _sub(os_el, "initrd", spec.kernel.initrd)
        if spec.kernel.cmdline:
            _sub(os_el, "cmdline", spec.kernel.cmdline)
    else:
        _sub(os_el, "boot", dev="hd")
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    cpu = _sub(domain, "cpu", mode="host-model") if spec.virt_type == KVM else None
    if spec.max_memory_mb > spec.memory_mb:
        # DIMMs plug into a NUMA node: the guest gets one holding all its CPUs.
        cpu = cpu if cpu is not None else _sub(domain, "cpu")
        numa = _sub(cpu, "numa")
        _sub(numa, "cell", id="0", cpus=f"0-{max_vcpus - 1}", memory=str(spec.memory_mb), unit="MiB")
    _sub(domain, "clock", offset="utc")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")

    devices = _sub(domain, "devices")
    for disk in spec.disks:
        devices.append(disk_element(disk))
    for nic in spec.nics:
        devices.append(nic_element(nic))
    for address in spec.pci_devices:
        devices.append(hostdev_element(address))
    # A pty, so the serial console takes input too; its output is also kept in the log file.
    serial = _sub(devices, "serial", type="pty")
    if spec.serial_log:
        _sub(serial, "log", file=spec.serial_log, append="on")
    _sub(serial, "target", port="0")
    # The QEMU guest agent's channel (password resets, file system freeze); libvirt picks the socket.
    agent = _sub(devices, "channel", type="unix")
    _sub(agent, "target", type="virtio", name="org.qemu.guest_agent.0")
    _sub(devices, "input", type="tablet", bus="usb")
    graphics = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=spec.vnc_listen)
    _sub(graphics, "listen", type="address", address=spec.vnc_listen)
    video = _sub(devices, "video")
    _sub(video, "model", type="vga")
    _sub(devices, "memballoon", model="virtio")

    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(domain, encoding="unicode")


def dimm_xml(size_mb: int) -> str:
    """A memory module to hot-plug into NUMA node 0."""
    element = ET.Element("memory", model="dimm")
    target = _sub(element, "target")
    _sub(target, "size", str(size_mb), unit="MiB")
    _sub(target, "node", "0")
    return ET.tostring(element, encoding="unicode")


def hotplug_limits(xml: str) -> tuple[int, int]:
    """(max vCPUs, max memory in MiB) of a domain's XML as libvirt writes it (sizes in KiB);
    memory 0 without <maxMemory>."""
    root = ET.fromstring(xml)
    return int(root.findtext("vcpu", default="0")), int(root.findtext("maxMemory", default="0")) // 1024


def vnc_endpoint(xml: str) -> tuple[str, int | None]:
    """(listen address, port) of the VNC display of a live domain; port None while shut off."""
    root = ET.fromstring(xml)
    graphics = root.find("./devices/graphics[@type='vnc']")
    if graphics is None:
        return "", None
    port = int(graphics.get("port", "-1"))
    return graphics.get("listen", ""), port if port > 0 else None


def disk_targets(xml: str) -> tuple[str, ...]:
    return tuple(t.get("dev", "") for t in ET.fromstring(xml).findall("./devices/disk/target"))


def disk_by_target(xml: str, target: str) -> tuple[str, str] | None:
    """(the <disk> element as XML, its device alias) of the disk at `target`, or None."""
    for disk in ET.fromstring(xml).findall("./devices/disk"):
        node = disk.find("target")
        if node is not None and node.get("dev") == target:
            alias = disk.find("alias")
            return ET.tostring(disk, encoding="unicode"), alias.get("name", "") if alias is not None else ""
    return None


def labels(xml: str) -> tuple[tuple[str, str], ...]:
    root = ET.fromstring(xml)
    found = root.findall(f"./metadata/{{{METADATA_NS}}}labels/{{{METADATA_NS}}}label")
    return tuple((el.get("key", ""), el.text or "") for el in found)


def capabilities_summary(xml: str) -> dict:
    """CPU model, NUMA cell count and CPU feature flags from `virConnectGetCapabilities`."""
    root = ET.fromstring(xml)
    cpu = root.find("./host/cpu")
    cells = root.find("./host/topology/cells")
    return {
        "arch": root.findtext("./host/cpu/arch", default=""),
        "cpu_model": cpu.findtext("model", default="") if cpu is not None else "",
        "features": {f.get("name", "") for f in cpu.findall("feature")} if cpu is not None else set(),
        "numa_nodes": int(cells.get("num", "1")) if cells is not None else 1,
    }


def pci_device(xml: str) -> PciDevice:
    """A PCI node device (`virNodeDeviceGetXMLDesc`) as plain data."""
    root = ET.fromstring(xml)
    cap = root.find("./capability[@type='pci']")
    if cap is None:
        return PciDevice(address=root.findtext("name", default=""), vendor="", product="", device_class="")
    address = "{:04x}:{:02x}:{:02x}.{:x}".format(
        *(int(cap.findtext(part, default="0")) for part in ("domain", "bus", "slot", "function"))
    )
    vendor, product = cap.find("vendor"), cap.find("product")
    return PciDevice(
        address=address,
        vendor=cap.findtext("vendor", default=""),
        product=cap.findtext("product", default=""),
        device_class=cap.findtext("class", default=""),
        vendor_id=_pci_id(vendor), product_id=_pci_id(product),
    )


def _pci_id(element: ET.Element | None) -> str:
    return (element.get("id", "") if element is not None else "").lower().removeprefix("0x")


def with_vnc_listen(xml: str, address: str) -> str:
    """`xml` with its VNC display listening on `address` (the domain moves to another host)."""
    root = ET.fromstring(xml)
    for graphics in root.findall("./devices/graphics[@type='vnc']"):
        graphics.set("listen", address)
        for listen in graphics.findall("listen[@type='address']"):
            listen.set("address", address)
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(root, encoding="unicode")
