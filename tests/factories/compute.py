"""Compute inventory for tests: a region, a zone, a fake host, flavors and a kernel image."""

from apps.compute import services
from apps.compute.models import Cluster, Flavor, Host, Image, Region
from apps.core.actor import Actor


def make_inventory(uri: str = "fake:///hv1", *, hosts: int = 1) -> dict:
    system = Actor.system()
    region = Region.objects.filter(code="default").first() or services.create_region(
        system, code="default", name="Default")
    zone = Cluster.objects.filter(code="az1").first() or services.create_cluster(
        system, region=region, code="az1", name="Zone 1")
    for n in range(hosts):
        host_uri = uri if hosts == 1 else f"{uri}-{n}"
        if not Host.objects.filter(uri=host_uri).exists():
            services.add_host(system, cluster=zone, name=host_uri.rsplit("/", 1)[-1], uri=host_uri)
    flavor = Flavor.objects.filter(name="t1.nano").first() or services.create_flavor(
        system, name="t1.nano", vcpus=1, ram_mb=128)
    image = Image.objects.filter(name="tiny").first() or Image.objects.create(
        name="tiny", visibility=Image.PUBLIC, status=Image.ACTIVE, boot=Image.KERNEL, kernel_file="/k",
        initrd_file="/i", cmdline="console=ttyS0", min_ram_mb=96)
    return {"region": region, "zone": zone, "flavor": flavor, "image": image}
