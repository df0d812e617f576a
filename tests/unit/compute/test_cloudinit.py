"""cloud-init NoCloud seeds and the root password at create: the ISO read back with pycdlib,
what the services keep (a hash, never the password), what they refuse, and the seed CD-ROM
following the instance through its tasks (fake hypervisor, tasks inline)."""

import io
import subprocess
import xml.etree.ElementTree as ET

import pycdlib
import pytest
import yaml

from apps.compute import cloudinit, services, tasks
from apps.compute.drivers import domain_xml
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Image, Instance
from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditRecord, Operation
from apps.tenants.models import Quota
from tests.factories.compute import make_inventory

PASSWORD = "Correct horse 9"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHb6dfTy3JvOqmbR7FNIbAtQpTwA6uZ3rSeL0z9sLwQd test@portal"


@pytest.fixture
def inventory(db, settings, tmp_path):
    settings.PORTAL_LIBVIRT_DIR = str(tmp_path)  # seeds and serial logs of this test only
    inventory = make_inventory()
    Image.objects.filter(pk=inventory["image"].pk).update(cloud_init=True)
    return inventory


def read_iso(data: bytes) -> tuple[str, dict[str, bytes], list[str]]:
    """(volume label, files by their Rock Ridge names, Joliet names) of an ISO image."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        files = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_file():
                name = child.rock_ridge.name().decode()
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
                files[name] = out.getvalue()
        joliet = sorted(c.file_identifier().decode("utf-16-be") for c in iso.list_children(joliet_path="/")
                        if c.is_file())
        return iso.pvd.volume_identifier.decode().strip(), files, joliet
    finally:
        iso.close()


def create(run_tasks, actor, inventory, **overrides):
    values = {"name": "Web server #1", "flavor": "t1.nano", "image": inventory["image"].public_id}
    values.update(overrides)
    return run_tasks(services.create_instances, actor, **values)


def test_seed_iso_is_labelled_cidata_and_keeps_the_names_cloud_init_reads():
    seed = cloudinit.Seed(instance_id="i-abc", hostname="web", user_data="#!/bin/sh\necho hi\n")
    label, files, joliet = read_iso(cloudinit.build_iso(cloudinit.seed_files(seed)))
    assert label == "cidata"
    assert sorted(files) == joliet == ["meta-data", "user-data"]  # no network-config: DHCP is the default
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": "i-abc", "local-hostname": "web"}
    assert files["user-data"] == b"#!/bin/sh\necho hi\n"


def test_the_portal_writes_the_cloud_config_when_the_tenant_gave_no_user_data():
    seed = cloudinit.Seed(instance_id="i-abc", hostname="web", public_keys=(KEY,), password_hash="$6$salt$hash")
    files = cloudinit.seed_files(seed)
    assert set(files) == {"meta-data", "user-data"}
    assert yaml.safe_load(files["meta-data"])["public-keys"] == [KEY]
    assert files["user-data"].startswith(b"#cloud-config\n")
    assert yaml.safe_load(files["user-data"]) == {
        "ssh_authorized_keys": [KEY],
        "chpasswd": {"expire": False, "users": [{"name": "root", "password": "$6$salt$hash", "type": "hash"}]},
    }


def test_user_data_stays_verbatim_and_the_password_goes_to_vendor_data():
    user_data = "#cloud-config\nruncmd:\n  - [touch, /tmp/x]\n\n"
    files = cloudinit.seed_files(cloudinit.Seed(instance_id="i-a", hostname="a", user_data=user_data,
                                                password_hash="$6$s$h"))
    assert files["user-data"] == user_data.encode()
    assert yaml.safe_load(files["vendor-data"])["chpasswd"]["users"][0]["password"] == "$6$s$h"
    assert cloudinit.seed_files(cloudinit.Seed(instance_id="i-a", hostname="a"))["user-data"] == b""


def test_password_hash_is_sha512_crypt_of_the_password():
    hashed = cloudinit.hash_password(PASSWORD)
    salt = hashed.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=f"{PASSWORD}\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    assert hashed.startswith("$6$") and hashed == again and PASSWORD not in hashed
    assert cloudinit.hash_password(PASSWORD) != hashed  # a new salt each time


@pytest.mark.parametrize(("name", "expected"), [("Web server #1", "web-server-1"), ("---", "i-x"),
                                              ("a" * 80, "a" * 63)])
def test_host_names_from_instance_names(name, expected):
    assert cloudinit.hostname(name, "i-x") == expected


def test_create_with_a_password_keeps_only_its_hash_and_seeds_the_guest(a_owner, actor, inventory, run_tasks):
    from apps.tenants.services import import_key_pair

    owner = actor(a_owner)
    key = import_key_pair(owner, name="laptop", public_key=KEY)
    [instance] = create(run_tasks, owner, inventory, password=PASSWORD, key_pair=key.public_id,
                        user_data="#!/bin/sh\necho hello\n")
    instance.refresh_from_db()
    assert instance.status == "running" and instance.password_hash.startswith("$6$")
    stored = [str(v) for v in Instance.objects.filter(pk=instance.pk).values().get().values()]
    stored += [str(r.details) + r.reason for r in AuditRecord.objects.all()]
    stored += [str(o.params) + o.log for o in Operation.objects.all()]
    assert not [v for v in stored if PASSWORD in v]

    label, files, _ = read_iso(tasks.seed_path(instance).read_bytes())
    meta = yaml.safe_load(files["meta-data"])
    assert (label, meta) == ("cidata", {"instance-id": instance.public_id, "local-hostname": "web-server-1",
                                        "public-keys": [key.public_key]})
    assert files["user-data"] == b"#!/bin/sh\necho hello\n"
    assert yaml.safe_load(files["vendor-data"])["chpasswd"]["users"] == [
        {"name": "root", "password": instance.password_hash, "type": "hash"}]
    assert "hdc" in FakeDriver("fake:///hv1").domain_info(instance.public_id).disks
    cdrom = ET.fromstring(domain_xml.build(tasks.domain_spec(instance))).find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == str(tasks.seed_path(instance))


def test_rebuild_writes_the_seed_again_and_delete_removes_it(a_owner, actor, inventory, run_tasks):
    owner = actor(a_owner)
    [instance] = create(run_tasks, owner, inventory)
    seed = tasks.seed_path(instance)
    assert seed.exists()  # a cloud-init image gets its seed even without user data
    seed.unlink()
    run_tasks(services.rebuild_instance, owner, instance=instance)
    assert read_iso(seed.read_bytes())[1]["user-data"] == b""
    run_tasks(services.delete_instance, owner, instance=Instance.objects.get(pk=instance.pk), force=True)
    assert not seed.exists()


def test_no_seed_for_an_image_without_cloud_init_and_nothing_to_say(a_owner, actor, inventory, run_tasks):
    Image.objects.filter(pk=inventory["image"].pk).update(cloud_init=False)
    [instance] = create(run_tasks, actor(a_owner), inventory)
    assert not tasks.seed_path(instance).exists()
    assert "hdc" not in FakeDriver("fake:///hv1").domain_info(instance.public_id).disks


@pytest.mark.parametrize(("password", "message"), [
    ("short", "8 to 72 characters."),
    ("x" * 73, "8 to 72 characters."),
    ("tab\there-ok", "No control characters (tabs, line breaks…)."),
    ("line\nbreak-ok", "No control characters (tabs, line breaks…)."),
])
def test_bad_passwords_are_refused_and_nothing_is_made(a_owner, actor, inventory, run_tasks, password, message):
    with pytest.raises(ValidationFailed) as exc:
        create(run_tasks, actor(a_owner), inventory, password=password)
    assert exc.value.fields == {"password": [message]}
    assert not Instance.objects.exists()
    assert not Quota.objects.filter(tenant=a_owner.tenant, resource="instances", in_use__gt=0).exists()


def test_an_image_without_cloud_init_cannot_take_a_password(a_owner, actor, inventory, run_tasks):
    Image.objects.filter(pk=inventory["image"].pk).update(cloud_init=False)
    with pytest.raises(ValidationFailed) as exc:
        create(run_tasks, actor(a_owner), inventory, password=PASSWORD)
    assert exc.value.fields == {"password": ["This image cannot take a password at create."]}
    assert not Instance.objects.exists()
    assert FakeDriver("fake:///hv1").list_domains() == []


def test_password_in_the_api_is_write_only_and_validated(api, a_owner, inventory, django_capture_on_commit_callbacks):
    client = api(a_owner)
    body = {"name": "api-vm", "flavor": "t1.nano", "image": inventory["image"].public_id}
    bad = client.post("/api/v1/instances", {**body, "password": "short"}, format="json")
    assert bad.status_code == 400 and bad.json()["fields"] == {"password": ["8 to 72 characters."]}
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/v1/instances", {**body, "password": PASSWORD}, format="json")
    assert created.status_code == 202 and "password" not in created.json()[0]
    assert PASSWORD not in created.content.decode()
    assert Instance.objects.get().password_hash.startswith("$6$")


def test_the_create_page_takes_a_password(a_owner, inventory, client):
    client.force_login(a_owner.user)
    Image.objects.filter(pk=inventory["image"].pk).update(cloud_init=False)
    form = {"name": "page-vm", "flavor": "t1.nano", "count": 1, "image": inventory["image"].public_id,
            "password": PASSWORD}
    refused = client.post("/instances/", form)
    page = refused.content.decode()
    assert refused.status_code == 400 and "This image cannot take a password at create." in page
    assert PASSWORD not in page  # a password field is never filled in again
    assert not Instance.objects.exists()
