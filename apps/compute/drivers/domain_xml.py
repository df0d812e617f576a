"""libvirt domain XML: built from a DomainSpec, read back into DomainInfo fields. Pure
functions over text, so they are tested without a hypervisor."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from apps.compute.drivers.base import KVM, DomainSpec, PciDevice

# Our labels live in the domain's <metadata> under this namespace, so the reconciler can tell
# the portal's domains (and their tenants) from anything else defined on the host.
METADATA_NS = "urn:cloud-portal:domain:1"
METADATA_PREFIX = "portal"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def build(spec: DomainSpec, *, uuid: str = "") -> str:
    """The domain XML for `spec`: VGA + VNC on the management address, a serial log file,
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
    _sub(domain, "memory", str(spec.memory_mb), unit="MiB")
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
    if spec.virt_type == KVM:
        _sub(domain, "cpu", mode="host-model")
    _sub(domain, "clock", offset="utc")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")

    devices = _sub(domain, "devices")
    for disk in spec.disks:
        disk_el = _sub(devices, "disk", type="file", device="disk")
        _sub(disk_el, "driver", name="qemu", type=disk.format)
        _sub(disk_el, "source", file=disk.path)
        _sub(disk_el, "target", dev=disk.target, bus=disk.bus)
        if disk.read_only:
            _sub(disk_el, "readonly")
    if spec.serial_log:
        serial = _sub(devices, "serial", type="file")
        _sub(serial, "source", path=spec.serial_log, append="on")
        _sub(serial, "target", port="0")
    else:
        serial = _sub(devices, "serial", type="pty")
        _sub(serial, "target", port="0")
    _sub(devices, "input", type="tablet", bus="usb")
    graphics = _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=spec.vnc_listen)
    _sub(graphics, "listen", type="address", address=spec.vnc_listen)
    video = _sub(devices, "video")
    _sub(video, "model", type="vga")
    _sub(devices, "memballoon", model="virtio")

    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(domain, encoding="unicode")


def vnc_endpoint(xml: str) -> tuple[str, int | None]:
    """(listen address, port) of the VNC display of a live domain; port None while shut off."""
    root = ET.fromstring(xml)
    graphics = root.find("./devices/graphics[@type='vnc']")
    if graphics is None:
        return "", None
    port = int(graphics.get("port", "-1"))
    return graphics.get("listen", ""), port if port > 0 else None


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
    return PciDevice(
        address=address,
        vendor=cap.findtext("vendor", default=""),
        product=cap.findtext("product", default=""),
        device_class=cap.findtext("class", default=""),
    )
