"""The volume pages: list with the create form, detail with its actions, through the services."""

from django.test import Client

from apps.storage.models import Snapshot, Volume, VolumeAttachment
from tests.factories.storage import make_storage


def signed_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def test_create_attach_snapshot_and_delete_from_the_pages(a_owner, actor, run_tasks, django_capture_on_commit_callbacks):
    from apps.compute import services as compute

    storage = make_storage()
    client = signed_in(a_owner)
    page = client.get("/volumes/")
    assert page.status_code == 200 and 'id="create-volume"' in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/volumes/", {"name": "data", "size_gb": "3", "volume_type": "", "image": "",
                                             "snapshot": ""})
    volume = Volume.objects.get(name="data")
    assert response.status_code == 302 and response["Location"] == f"/volumes/{volume.public_id}/"
    assert Volume.objects.get(pk=volume.pk).status == "available"

    [instance] = run_tasks(compute.create_instances, actor(a_owner), name="vm", flavor="t1.nano",
                           image=storage["image"].public_id)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/volumes/{volume.public_id}/attach", {"instance": instance.public_id})
    detail = client.get(f"/volumes/{volume.public_id}/").content.decode()
    assert VolumeAttachment.objects.get(volume=volume).device == "vdb"
    assert "/dev/vdb" in detail and 'data-status="in-use"' in detail

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/volumes/{volume.public_id}/snapshot", {"name": "before-upgrade"})
    snapshot = Snapshot.objects.get(volume=volume)
    live = client.get(f"/volumes/{volume.public_id}/", HTTP_HX_REQUEST="true").content.decode()
    assert snapshot.public_id in live and 'data-status="available"' in live

    refused = client.post(f"/volumes/{volume.public_id}/delete", follow=True).content.decode()
    assert f"attached to {instance.public_id} as vdb: detach it first." in refused


def test_bad_input_shows_on_the_form(a_owner):
    make_storage()
    page = signed_in(a_owner).post("/volumes/", {"name": "x", "size_gb": "999999", "volume_type": "",
                                                 "image": "", "snapshot": ""})
    assert page.status_code == 400
    assert "16384" in page.content.decode()
    assert not Volume.objects.exists()


def test_other_tenants_volumes_are_not_there(a_owner, b_owner, actor):
    from apps.storage import services

    make_storage()
    volume = services.create_volume(actor(a_owner), name="secret", size_gb=1)
    client = signed_in(b_owner)
    assert client.get(f"/volumes/{volume.public_id}/").status_code == 404
    assert client.post(f"/volumes/{volume.public_id}/delete").status_code == 404
    assert "secret" not in client.get("/volumes/").content.decode()


def test_the_recycle_bin_on_the_volume_list(a_owner, actor, run_tasks):
    from apps.core.models import PlatformSettings
    from apps.storage import services

    make_storage()
    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": 24})
    volume = run_tasks(services.create_volume, actor(a_owner), name="keepme", size_gb=1)
    client = signed_in(a_owner)
    client.post(f"/volumes/{volume.public_id}/delete")
    page = client.get("/volumes/").content.decode()
    assert 'id="recycle-bin"' in page and f'data-volume="{volume.public_id}"' in page
    assert Volume.objects.get(pk=volume.pk).status == "recycled"
    client.post(f"/volumes/{volume.public_id}/restore")
    assert Volume.objects.get(pk=volume.pk).status == "available"
    assert 'id="recycle-bin"' not in client.get("/volumes/").content.decode()
