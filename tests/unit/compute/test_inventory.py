"""Hosts, flavors and images through the services, with the fake hypervisor."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.compute import services
from apps.compute.drivers.base import Transient
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Flavor, Host, Image
from apps.core.exceptions import Conflict, PermissionDenied, ValidationFailed
from apps.core.models import AuditRecord


@pytest.fixture
def cluster(operator):
    region = services.create_region(operator, code="eu-1", name="Europe 1")
    return services.create_cluster(operator, region=region, code="az-a", name="Zone A", tags=["x86"])


def test_add_host_reads_capacity_from_the_hypervisor(operator, cluster):
    host = services.add_host(operator, cluster=cluster, name="hv1", uri="fake:///hv1")
    assert (host.vcpus, host.memory_mb, host.arch, host.kvm_usable) == (8, 16384, "x86_64", False)
    assert host.heartbeat_at is not None and host.public_id.startswith("host-")
    assert host.effective_virt_type == "qemu"  # auto: KVM only when really usable
    assert host.vcpus_capacity == 32 and host.memory_mb_capacity == 15872  # ratios 4.0 and 1.0, 512 MiB kept


def test_unreachable_host_is_refused_and_not_half_added(operator, cluster):
    FakeDriver("fake:///dead").fail_next("host_capacity", Transient("connection refused"))
    with pytest.raises(ValidationFailed, match="connection refused"):
        services.add_host(operator, cluster=cluster, name="dead", uri="fake:///dead")
    assert not Host.objects.exists()
    assert AuditRecord.objects.get(action="host.add").result == "error"


def test_only_operators_manage_hosts(a_owner, actor, cluster):
    with pytest.raises(PermissionDenied):
        services.add_host(actor(a_owner), cluster=cluster, name="x", uri="fake:///x")


def test_duplicate_and_bad_host_names(operator, cluster):
    services.add_host(operator, cluster=cluster, name="hv1", uri="fake:///hv1")
    with pytest.raises(Conflict):
        services.add_host(operator, cluster=cluster, name="hv2", uri="fake:///hv1")
    with pytest.raises(ValidationFailed):
        services.add_host(operator, cluster=cluster, name="bad\x07name", uri="fake:///hv3")


def test_cluster_or_host_setting_overrides_auto_virt_type(operator, cluster):
    host = services.add_host(operator, cluster=cluster, name="hv1", uri="fake:///hv1")
    host.kvm_usable = True
    assert host.effective_virt_type == "kvm"
    host.cluster.virt_type = "qemu"
    assert host.effective_virt_type == "qemu"
    host.virt_type = "kvm"
    assert host.effective_virt_type == "kvm"


def test_heartbeat_marks_a_silent_host_down_after_the_grace_period_and_back(operator, cluster):
    host = services.add_host(operator, cluster=cluster, name="hv1", uri="fake:///hv1")
    driver = FakeDriver("fake:///hv1")
    driver.fail_next("host_capacity", Transient("no route"))
    assert services.refresh_host(host.pk, down_after_seconds=60).state == Host.ENABLED  # within grace
    Host.objects.filter(pk=host.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=120))
    driver.fail_next("host_capacity", Transient("no route"))
    down = services.refresh_host(host.pk, down_after_seconds=60)
    assert (down.state, down.state_reason) == (Host.DOWN, "libvirt not answering: no route")
    assert services.refresh_host(host.pk, down_after_seconds=60).state == Host.ENABLED


def test_host_states_and_removal(operator, cluster):
    host = services.add_host(operator, cluster=cluster, name="hv1", uri="fake:///hv1",
                             cpu_allocation_ratio=Decimal("2.0"))
    assert services.set_host_state(operator, host=host, state="maintenance", reason="BIOS").state == "maintenance"
    with pytest.raises(ValidationFailed):
        services.set_host_state(operator, host=host, state="down")
    Host.objects.filter(pk=host.pk).update(instances_count=1)
    with pytest.raises(Conflict, match="drain it first"):
        services.remove_host(operator, host=Host.objects.get(pk=host.pk))
    Host.objects.filter(pk=host.pk).update(instances_count=0)
    services.remove_host(operator, host=host)
    assert not Host.objects.exists()


def test_flavors(operator, a_owner, actor):
    small = services.create_flavor(operator, name="s1.small", vcpus=1, ram_mb=256)
    private = services.create_flavor(operator, name="g1.large", vcpus=8, ram_mb=32768, gpu_count=1,
                                     gpu_type="10de:1eb8", is_public=False)
    with pytest.raises(ValidationFailed) as exc:
        services.create_flavor(operator, name="bad", vcpus=0, ram_mb=16, gpu_count=1)
    assert set(exc.value.fields) == {"vcpus", "ram_mb", "gpu_type"}
    assert list(Flavor.objects.for_actor(actor(a_owner))) == [small]
    private.tenants.add(a_owner.tenant)
    assert set(Flavor.objects.for_actor(actor(a_owner))) == {small, private}
    services.update_flavor(operator, flavor=small, description="retired", is_public=True, is_active=False)
    assert list(Flavor.objects.for_actor(actor(a_owner))) == [private]


def test_kernel_image_registration_verifies_checksums(operator, tmp_path, a_owner, b_owner, actor):
    import hashlib
    import json

    for name, data in (("vmlinuz", b"kernel"), ("initramfs.cpio.gz", b"initrd")):
        (tmp_path / name).write_bytes(data)
    manifest = {
        "kernel": {"name": "vmlinuz", "sha256": hashlib.sha256(b"kernel").hexdigest(), "size": 6},
        "initrd": {"name": "initramfs.cpio.gz", "sha256": hashlib.sha256(b"initrd").hexdigest(), "size": 6},
        "cmdline": "console=ttyS0", "kernel_version": "6.1.0-test",
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    image = services.register_kernel_image(operator, name="Tiny Linux", directory=tmp_path)
    assert (image.boot, image.status, image.cmdline, image.os_version, image.size_bytes) == (
        "kernel", "active", "console=ttyS0", "6.1.0-test", 12)
    assert services.register_kernel_image(operator, name="Tiny Linux", directory=tmp_path) == image
    assert list(Image.objects.for_actor(actor(a_owner))) == [image]  # public
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "cloud_init": True}))  # a rebuilt initramfs
    again = services.register_kernel_image(operator, name="Tiny Linux", directory=tmp_path)
    assert (again, image.cloud_init, again.cloud_init) == (image, False, True)

    (tmp_path / "vmlinuz").write_bytes(b"tampered")
    with pytest.raises(ValidationFailed, match="checksum"):
        services.register_kernel_image(operator, name="Tiny 2", directory=tmp_path)


def test_private_images_stay_in_their_tenant(a_owner, b_owner, actor):
    own = Image.objects.create(name="mine", owner=a_owner.tenant, visibility=Image.PRIVATE, status=Image.ACTIVE)
    assert list(Image.objects.for_actor(actor(a_owner))) == [own]
    assert list(Image.objects.for_actor(actor(b_owner))) == []
    own.visibility = Image.SHARED
    own.save()
    own.shared_with.add(b_owner.tenant)
    assert list(Image.objects.for_actor(actor(b_owner))) == [own]
    assert list(Image.objects.for_actor(actor(b_owner), "delete")) == []


def test_seed_compute_is_idempotent(db, settings, tmp_path):
    from django.core.management import call_command

    settings.PORTAL_LIBVIRT_URI = "fake:///local"
    settings.PORTAL_LIBVIRT_DIR = tmp_path
    call_command("seed_compute")
    call_command("seed_compute")
    host = Host.objects.get()
    assert (host.name, host.uri, host.cluster.region.code) == ("local", "fake:///local", settings.PORTAL_DEFAULT_REGION)
    assert Flavor.objects.filter(is_public=True).count() == 5


def test_disk_image_registration_reads_the_disk_entry(operator, tmp_path):
    import hashlib
    import json

    (tmp_path / "disk.qcow2").write_bytes(b"qcow2 bytes")
    manifest = {"disk": {"name": "disk.qcow2", "sha256": hashlib.sha256(b"qcow2 bytes").hexdigest(), "size": 11,
                         "format": "qcow2", "virtual_size": 32 << 20}, "kernel_version": "6.1.0-test"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    image = services.register_disk_image(operator, name="Tiny disk", directory=tmp_path)
    assert (image.boot, image.disk_format, image.disk_file, image.min_disk_gb) == (
        "disk", "qcow2", str(tmp_path / "disk.qcow2"), 1)
    assert services.register_disk_image(operator, name="Tiny disk", directory=tmp_path) == image
    (tmp_path / "manifest.json").write_text(json.dumps({"kernel_version": "x"}))
    with pytest.raises(ValidationFailed, match="disk of .* is missing"):
        services.register_disk_image(operator, name="Tiny 2", directory=tmp_path)
