import xml.etree.ElementTree as ET

from apps.compute.drivers import domain_xml
from apps.compute.drivers.base import DiskSpec, DomainSpec, KernelBoot, NicSpec


def test_kernel_boot_domain_xml():
    spec = DomainSpec(
        name="i-abc", vcpus=2, memory_mb=256, virt_type="qemu",
        kernel=KernelBoot("/img/vmlinuz", "/img/initrd.gz", "console=ttyS0"),
        serial_log="/logs/i-abc.log", vnc_listen="10.0.0.5", labels=(("tenant", "tn-1"),),
    )
    root = ET.fromstring(domain_xml.build(spec))
    assert root.get("type") == "qemu" and root.findtext("name") == "i-abc"
    assert (root.findtext("memory"), root.find("memory").get("unit"), root.findtext("vcpu")) == ("256", "MiB", "2")
    assert root.findtext("os/kernel") == "/img/vmlinuz" and root.findtext("os/cmdline") == "console=ttyS0"
    assert root.find("os/boot") is None
    assert root.find("cpu") is None  # no host-model CPU under software emulation
    serial = root.find("devices/serial")
    assert serial.get("type") == "pty" and serial.find("log").get("file") == "/logs/i-abc.log"
    graphics = root.find("devices/graphics")
    assert (graphics.get("type"), graphics.get("listen"), graphics.get("autoport")) == ("vnc", "10.0.0.5", "yes")
    assert domain_xml.labels(domain_xml.build(spec)) == (("tenant", "tn-1"),)
    assert root.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"


def test_disk_boot_kvm_domain_xml():
    spec = DomainSpec(name="i-d", vcpus=1, memory_mb=512, virt_type="kvm", disks=(DiskSpec("/pool/i-d.qcow2"),))
    root = ET.fromstring(domain_xml.build(spec))
    assert root.find("os/boot").get("dev") == "hd" and root.find("cpu").get("mode") == "host-model"
    disk = root.find("devices/disk")
    assert (disk.find("driver").get("type"), disk.find("source").get("file"), disk.find("target").get("dev")) == (
        "qcow2", "/pool/i-d.qcow2", "vda")


def test_vnc_endpoint_of_live_and_stopped_domains():
    live = "<domain><devices><graphics type='vnc' port='5901' listen='127.0.0.1'/></devices></domain>"
    off = "<domain><devices><graphics type='vnc' port='-1' listen='127.0.0.1'/></devices></domain>"
    assert domain_xml.vnc_endpoint(live) == ("127.0.0.1", 5901)
    assert domain_xml.vnc_endpoint(off) == ("127.0.0.1", None)


def test_capabilities_and_pci_parsing():
    caps = """<capabilities><host><cpu><arch>x86_64</arch><model>EPYC</model><feature name='svm'/></cpu>
      <topology><cells num='2'/></topology></host></capabilities>"""
    assert domain_xml.capabilities_summary(caps) == {
        "arch": "x86_64", "cpu_model": "EPYC", "features": {"svm"}, "numa_nodes": 2}
    pci = """<device><name>pci_0000_65_00_0</name><capability type='pci'><class>0x030000</class><domain>0</domain>
      <bus>101</bus><slot>0</slot><function>0</function><product id='0x1eb8'>T4</product>
      <vendor id='0x10de'>NVIDIA</vendor></capability></device>"""
    device = domain_xml.pci_device(pci)
    assert (device.address, device.vendor, device.device_class) == ("0000:65:00.0", "NVIDIA", "0x030000")
    assert (device.vendor_id, device.product_id) == ("10de", "1eb8")


def test_gpus_pass_through_as_managed_hostdevs():
    spec = DomainSpec(name="i-g", vcpus=4, memory_mb=8192, pci_devices=("0000:65:00.0", "0000:b3:00.1"))
    hostdevs = ET.fromstring(domain_xml.build(spec)).findall("devices/hostdev")
    assert [(h.get("type"), h.get("managed")) for h in hostdevs] == [("pci", "yes"), ("pci", "yes")]
    assert hostdevs[1].find("source/address").attrib == {"domain": "0x0000", "bus": "0xb3", "slot": "0x00",
                                                          "function": "0x1"}


def test_drivers_import_no_django():
    """Drivers are plain Python: no Django, no models, no sibling driver imports."""
    import ast
    import pathlib

    for path in pathlib.Path("apps").glob("*/drivers/*.py"):
        tree = ast.parse(path.read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        bad = [m for m in imported if m.startswith("django") or ".models" in m
               or (m.startswith(f"apps.{path.parts[1]}.drivers.") and m.split(".")[-1] not in ("base", "domain_xml"))]
        assert bad == [], f"{path}: {bad}"


def test_interfaces_plug_into_the_integration_bridge_bound_by_port_uuid():
    nic = NicSpec(mac="02:00:00:00:00:01", port_id="3f1c2d8e-0000-4000-8000-000000000001", mtu=1442)
    spec = DomainSpec(name="i-n", vcpus=1, memory_mb=128, nics=(nic,))
    xml = domain_xml.build(spec)
    interface = ET.fromstring(xml).find("devices/interface")
    assert interface.get("type") == "bridge" and interface.find("source").get("bridge") == "br-int"
    assert interface.find("virtualport").get("type") == "openvswitch"
    assert interface.find("virtualport/parameters").get("interfaceid") == nic.port_id
    assert (interface.find("model").get("type"), interface.find("mtu").get("size")) == ("virtio", "1442")
    assert domain_xml.nic_macs(xml) == (nic.mac,)
    assert ET.fromstring(domain_xml.nic_by_mac(xml, nic.mac.upper())).find("mac").get("address") == nic.mac
    assert domain_xml.nic_by_mac(xml, "02:00:00:00:00:02") is None


def test_a_cdrom_is_a_read_only_raw_medium_on_its_bus():
    seed = DiskSpec("/seeds/i-c.iso", format="raw", target="hdc", bus="ide", read_only=True, device="cdrom")
    spec = DomainSpec(name="i-c", vcpus=1, memory_mb=128, disks=(DiskSpec("/pool/i-c.qcow2"), seed))
    root = ET.fromstring(domain_xml.build(spec))
    disk, cdrom = root.findall("devices/disk")
    assert disk.get("device") == "disk" and disk.find("readonly") is None
    assert (cdrom.get("type"), cdrom.get("device"), cdrom.find("driver").get("type")) == ("file", "cdrom", "raw")
    assert (cdrom.find("source").get("file"), cdrom.find("target").get("dev"), cdrom.find("target").get("bus")) == (
        "/seeds/i-c.iso", "hdc", "ide")
    assert cdrom.find("readonly") is not None
    assert domain_xml.disk_targets(domain_xml.build(spec)) == ("vda", "hdc")


def test_room_for_hot_resize():
    spec = DomainSpec(name="i-h", vcpus=2, memory_mb=512, virt_type="kvm", max_vcpus=8, max_memory_mb=4096)
    root = ET.fromstring(domain_xml.build(spec))
    vcpu = root.find("vcpu")
    assert (vcpu.text, vcpu.get("current")) == ("8", "2")
    assert (root.findtext("maxMemory"), root.find("maxMemory").get("slots"), root.findtext("memory")) == (
        "4096", "16", "512")
    cpu = root.find("cpu")  # one element: the host-model CPU holds the NUMA cell the DIMMs plug into
    cell = cpu.find("numa/cell")
    assert (cpu.get("mode"), cell.get("cpus"), cell.get("memory")) == ("host-model", "0-7", "512")
    libvirt_xml = "<domain><maxMemory slots='16' unit='KiB'>4194304</maxMemory><vcpu current='2'>8</vcpu></domain>"
    assert domain_xml.hotplug_limits(libvirt_xml) == (8, 4096)
    dimm = ET.fromstring(domain_xml.dimm_xml(256))
    assert (dimm.get("model"), dimm.findtext("target/size"), dimm.findtext("target/node")) == ("dimm", "256", "0")


def test_no_room_no_hotplug_elements():
    root = ET.fromstring(domain_xml.build(DomainSpec(name="i-n", vcpus=1, memory_mb=128, max_memory_mb=128)))
    assert root.find("maxMemory") is None and root.find("cpu") is None and root.find("vcpu").get("current") is None
    assert domain_xml.hotplug_limits(domain_xml.build(DomainSpec(name="i-n", vcpus=1, memory_mb=128))) == (1, 0)


def test_a_moving_domain_gets_the_targets_display_address():
    xml = domain_xml.build(DomainSpec(name="i-m", vcpus=1, memory_mb=128, vnc_listen="10.0.0.1",
                                      labels=(("instance", "i-m"),)))
    moved = domain_xml.with_vnc_listen(xml, "10.0.0.2")
    assert domain_xml.vnc_endpoint(moved) == ("10.0.0.2", None)
    assert 'address="10.0.0.2"' in moved and "10.0.0.1" not in moved
    assert domain_xml.labels(moved) == (("instance", "i-m"),)
