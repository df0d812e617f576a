"""Deleted instances wait in the recycle bin, shut down with everything kept, until restored,
deleted for good, or purged when their time is over."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.compute import services
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Host, Instance
from apps.core.exceptions import Conflict
from apps.core.models import AuditRecord, PlatformSettings
from apps.tenants.models import Quota
from tests.factories.compute import make_inventory


@pytest.fixture
def inventory(db):
    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": 24})
    return make_inventory()


@pytest.fixture
def instance(a_owner, actor, inventory, run_tasks):
    [created] = run_tasks(services.create_instances, actor(a_owner), name="web", flavor="t1.nano",
                          image=inventory["image"].public_id)
    return created


def in_use(tenant) -> dict[str, int]:
    return {q.resource: q.in_use for q in Quota.objects.filter(tenant=tenant)}


def test_delete_shuts_it_down_into_the_bin_with_everything_kept(a_owner, actor, instance, run_tasks):
    run_tasks(services.delete_instance, actor(a_owner), instance=instance)
    instance.refresh_from_db()
    assert (instance.status, instance.status_reason) == ("recycled", "In the recycle bin for 24 h")
    assert instance.recycled_at is not None and instance.deleted_at is None
    assert FakeDriver("fake:///hv1").domain_info(instance.public_id).state == "shutoff"
    assert (Host.objects.get().vcpus_used, in_use(a_owner.tenant)["instances"]) == (1, 1)  # claim and quota kept
    with pytest.raises(Conflict, match="while it is recycled"):
        services.start_instance(actor(a_owner), instance=instance)

    run_tasks(services.restore_instance, actor(a_owner), instance=instance)
    instance.refresh_from_db()
    assert (instance.status, instance.recycled_at) == ("running", None)
    assert FakeDriver("fake:///hv1").domain_info(instance.public_id).state == "running"
    with pytest.raises(Conflict, match="Cannot restore"):
        services.restore_instance(actor(a_owner), instance=instance)


def test_deleting_from_the_bin_or_with_force_is_final(a_owner, actor, instance, run_tasks, inventory):
    owner = actor(a_owner)
    run_tasks(services.delete_instance, owner, instance=instance)
    run_tasks(services.delete_instance, owner, instance=instance)
    instance.refresh_from_db()
    assert (instance.status, instance.host) == ("deleted", None)
    [other] = run_tasks(services.create_instances, owner, name="db", flavor="t1.nano",
                        image=inventory["image"].public_id)
    run_tasks(services.delete_instance, owner, instance=other, force=True)
    assert Instance.objects.get(pk=other.pk).status == "deleted"
    assert (Host.objects.get().vcpus_used, in_use(a_owner.tenant)["instances"]) == (0, 0)


def test_the_purge_deletes_what_has_waited_long_enough(a_owner, actor, instance, run_tasks):
    run_tasks(services.delete_instance, actor(a_owner), instance=instance)
    assert run_tasks(services.purge_recycled_instances) == 0
    Instance.objects.filter(pk=instance.pk).update(recycled_at=timezone.now() - timedelta(hours=25))
    assert run_tasks(services.purge_recycled_instances) == 1
    instance.refresh_from_db()
    assert instance.status == "deleted"
    assert AuditRecord.objects.filter(action="instance.purge", resource_id=instance.public_id).exists()


def test_api_delete_restore_and_force(a_owner, b_owner, api, instance, django_capture_on_commit_callbacks):
    url = f"/api/v1/instances/{instance.public_id}"
    assert api(b_owner).delete(url).status_code == 404
    assert api(b_owner).post(f"{url}/restore").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        deleted = api(a_owner).delete(url)
    assert (deleted.status_code, deleted.json()["status"]) == (202, "recycling")
    assert api(a_owner).get(url).json()["status"] == "recycled"
    with django_capture_on_commit_callbacks(execute=True):
        restored = api(a_owner).post(f"{url}/restore")
    assert (restored.status_code, api(a_owner).get(url).json()["status"]) == (202, "running")
    assert api(a_owner).post(f"{url}/restore").status_code == 409
    with django_capture_on_commit_callbacks(execute=True):
        forced = api(a_owner).delete(f"{url}?force=true")
    assert (forced.status_code, forced.json()["status"]) == (202, "deleting")
    assert api(a_owner).get(url).status_code == 404


def test_the_list_page_shows_the_bin_and_restores(a_owner, client, instance, actor, run_tasks,
                                                  django_capture_on_commit_callbacks):
    run_tasks(services.delete_instance, actor(a_owner), instance=instance)
    client.force_login(a_owner.user)
    page = client.get("/instances/").content.decode()
    bin_part = page[page.index('id="recycle-bin"'):]
    assert f'data-instance="{instance.public_id}"' in bin_part and "Restore" in bin_part
    rows = client.get("/instances/", HTTP_HX_REQUEST="true").content.decode()
    assert instance.public_id not in rows  # out of the main list
    live = client.get("/instances/?part=recycle-bin", HTTP_HX_REQUEST="true").content.decode()
    assert f'data-instance="{instance.public_id}"' in live
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/instances/{instance.public_id}/restore")
    assert Instance.objects.get(pk=instance.pk).status == "running"


def test_operators_restore_from_the_back_office(a_owner, actor, instance, run_tasks, admin_client,
                                                django_capture_on_commit_callbacks):
    run_tasks(services.delete_instance, actor(a_owner), instance=instance)
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post("/backoffice/compute/instance/", {
            "action": "restore", "_selected_action": [instance.pk]}, follow=True).content.decode()
    assert f"{instance.public_id}: restoring." in page.lower()  # the admin capitalises messages
    assert Instance.objects.get(pk=instance.pk).status == "running"
    refused = admin_client.post("/backoffice/compute/instance/", {
        "action": "restore", "_selected_action": [instance.pk]}, follow=True).content.decode()
    assert "Cannot restore instance" in refused
