"""Block storage for tests: a dir pool on the first fake host and a default volume type."""

from apps.compute.models import Host, Image
from apps.core.actor import Actor
from apps.storage import services
from apps.storage.models import StoragePool, VolumeType
from tests.factories.compute import make_inventory


def make_storage() -> dict:
    inventory = make_inventory()
    system = Actor.system()
    host = Host.objects.order_by("id").first()
    pool = StoragePool.objects.filter(name="local").first() or services.add_storage_pool(
        system, name="local", backend=StoragePool.DIR, region=inventory["region"], host=host,
        config={"path": "/fake/pool"})
    volume_type = VolumeType.objects.filter(name="standard").first() or services.create_volume_type(
        system, name="standard", pool=pool, is_default=True)
    shared = VolumeType.objects.filter(name="shared").first() or services.create_volume_type(
        system, name="shared", pool=pool, multi_attach=True)
    disk_image = Image.objects.filter(name="disk").first() or Image.objects.create(
        name="disk", visibility=Image.PUBLIC, status=Image.ACTIVE, boot=Image.DISK, disk_format="qcow2",
        disk_file="/fake/disk.qcow2", min_disk_gb=2)
    return {**inventory, "pool": pool, "type": volume_type, "shared": shared, "disk_image": disk_image}
