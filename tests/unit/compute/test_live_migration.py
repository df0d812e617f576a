"""Live migration by operators with the fake hypervisor: the service claims the target, the task
moves the running guest (progress in an operation), gives the claims back exactly once, and a
re-run after a dead worker finishes what the hypervisor did."""

import pytest

from apps.compute import services, tasks
from apps.compute.drivers.base import DomainEvent, DriverError
from apps.compute.drivers.base import NotFound as DomainNotFound
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Host, Instance
from apps.core.actor import Actor
from apps.core.exceptions import Conflict, PermissionDenied
from apps.core.models import AuditRecord, Operation
from tests.factories.compute import make_inventory


@pytest.fixture
def running(a_owner, actor, run_tasks, db):
    inventory = make_inventory(hosts=2)
    [instance] = run_tasks(services.create_instances, actor(a_owner), name="web", flavor="t1.nano",
                           image=inventory["image"].public_id)
    return Instance.objects.select_related("host").get(pk=instance.pk)


def other_host(instance) -> Host:
    return Host.objects.exclude(pk=instance.host_id).get()


def claims(host) -> tuple[int, int, int]:
    host.refresh_from_db()
    return host.vcpus_used, host.memory_mb_used, host.instances_count


def test_a_running_instance_moves_live_with_its_claim(running, operator, run_tasks):
    source, target = running.host, other_host(running)
    run_tasks(services.migrate_instance, operator, instance=running, live=True)
    moved = Instance.objects.get(pk=running.pk)
    assert (moved.status, moved.host_id, moved.status_reason) == ("running", target.pk,
                                                                  f"live-migrated from {source.name}")
    assert FakeDriver(target.uri).domain_info(running.public_id).state == "running"
    with pytest.raises(DomainNotFound):
        FakeDriver(source.uri).domain_info(running.public_id)
    assert (claims(source), claims(target)) == ((0, 0, 0), (1, 128, 1))
    operation = Operation.objects.get(kind="instance.live_migrate")
    assert (operation.status, operation.progress, operation.tenant_id, operation.resource_id) == (
        "succeeded", 100, running.tenant_id, running.public_id)
    assert (operation.result["target"], operation.result["downtime_ms"]) == (target.name, 0)
    assert AuditRecord.objects.filter(action="instance.migrate", resource_id=running.public_id).count() == 1


def test_live_migration_is_for_operators_and_running_guests(running, a_owner, actor, operator, run_tasks):
    with pytest.raises(PermissionDenied):
        services.migrate_instance(actor(a_owner), instance=running, live=True)
    run_tasks(services.stop_instance, actor(a_owner), instance=running, force=True)
    with pytest.raises(Conflict, match="A cold migration moves a stopped instance") as refused:
        services.migrate_instance(operator, instance=Instance.objects.get(pk=running.pk), live=True)
    assert refused.value.code == "invalid_state"
    assert (claims(running.host), claims(other_host(running))) == ((1, 128, 1), (0, 0, 0))
    assert not Operation.objects.filter(kind="instance.live_migrate").exists()


def test_a_failed_live_migration_leaves_the_guest_running_where_it_was(running, operator, run_tasks):
    source, target = running.host, other_host(running)
    FakeDriver(source.uri).fail_next("migrate_domain", DriverError("migration stream broke"))
    run_tasks(services.migrate_instance, operator, instance=running, host=target, live=True)
    stayed = Instance.objects.get(pk=running.pk)
    assert (stayed.status, stayed.host_id, stayed.status_reason) == (
        "running", source.pk, f"live migration to {target.name} failed: migration stream broke; still running on "
                              f"{source.name}")
    assert FakeDriver(source.uri).domain_info(running.public_id).state == "running"
    assert (claims(source), claims(target)) == ((1, 128, 1), (0, 0, 0))
    assert Operation.objects.get(kind="instance.live_migrate").status == "failed"


def test_a_rerun_after_a_dead_worker_finishes_a_move_the_hypervisor_made(running, operator,
                                                                          django_capture_on_commit_callbacks):
    source, target = running.host, other_host(running)
    with django_capture_on_commit_callbacks() as queued:
        services.migrate_instance(operator, instance=running, live=True)
    # The worker died after the switch-over: the guest runs on the target, the row still migrates.
    FakeDriver(source.uri).migrate_domain(running.public_id, FakeDriver(target.uri), live=True, address="127.0.0.1")
    for callback in queued:
        callback()
    operation = Operation.objects.get(kind="instance.live_migrate")
    for _ in range(2):  # and a second delivery of the task changes nothing
        tasks.live_migrate_instance(running.pk, source.pk, target.pk, operation.pk)
        moved = Instance.objects.get(pk=running.pk)
        assert (moved.status, moved.host_id) == ("running", target.pk)
        assert (claims(source), claims(target)) == ((0, 0, 0), (1, 128, 1))
    assert FakeDriver(target.uri).domain_info(running.public_id).state == "running"


def test_a_rerun_replaces_the_incoming_copy_of_an_attempt_that_died(running, operator,
                                                                     django_capture_on_commit_callbacks):
    source, target = running.host, other_host(running)
    with django_capture_on_commit_callbacks() as queued:
        services.migrate_instance(operator, instance=running, live=True)
    FakeDriver(target.uri).redefine_domain(tasks.domain_spec(Instance.objects.get(pk=running.pk)))  # left shut off
    for callback in queued:
        callback()
    assert (Instance.objects.get(pk=running.pk).host_id, claims(source)) == (target.pk, (0, 0, 0))
    assert FakeDriver(target.uri).domain_info(running.public_id).state == "running"


def test_only_disks_the_target_reaches_move(a_owner, actor, operator, run_tasks, db):
    from apps.compute.services import create_flavor
    from apps.storage import services as storage
    from apps.storage.models import StoragePool
    from tests.factories.storage import make_storage

    system = Actor.system()
    inventory = make_storage()  # a dir pool on hv1, the only host yet
    create_flavor(system, name="t1.disk", vcpus=1, ram_mb=128, disk_gb=4)
    [local] = run_tasks(services.create_instances, actor(a_owner), name="local", flavor="t1.disk",
                        image=inventory["disk_image"].public_id)
    storage.update_storage_pool(system, pool=inventory["pool"], enabled=False)
    ceph = storage.add_storage_pool(system, name="ceph", backend=StoragePool.RBD, region=inventory["region"],
                                    config={"conf": "/c", "user": "portal", "pool": "rbd"})
    storage.create_volume_type(system, name="ceph", pool=ceph)
    [shared] = run_tasks(services.create_instances, actor(a_owner), name="shared", flavor="t1.disk",
                         image=inventory["disk_image"].public_id)
    make_inventory("fake:///hv2")
    for live in (True, False):
        with pytest.raises(Conflict, match="in pool local on host hv1; moving it needs shared block storage") as no:
            services.migrate_instance(operator, instance=Instance.objects.get(pk=local.pk), live=live)
        assert no.value.code == "unsupported"
    run_tasks(services.migrate_instance, operator, instance=Instance.objects.get(pk=shared.pk), live=True)
    moved = Instance.objects.select_related("host").get(pk=shared.pk)
    assert (moved.status, moved.host.name) == ("running", "hv2")
    assert FakeDriver("fake:///hv2").domain_info(moved.public_id).disks == ("vda",)


def test_drain_moves_running_instances_live_and_stopped_ones_cold(a_owner, actor, operator, run_tasks, db):
    inventory = make_inventory()  # one host: both instances land there
    owner = actor(a_owner)
    busy, idle = run_tasks(services.create_instances, owner, name="vm", flavor="t1.nano", count=2,
                           image=inventory["image"].public_id)
    run_tasks(services.stop_instance, owner, instance=idle, force=True)
    make_inventory("fake:///hv2")
    run_tasks(services.drain_host, operator, host=Host.objects.get(name="hv1"))
    assert {(i.public_id, i.status, i.host.name) for i in Instance.objects.select_related("host")} == {
        (busy.public_id, "running", "hv2"), (idle.public_id, "stopped", "hv2")}
    assert Operation.objects.get(kind="instance.live_migrate").resource_id == busy.public_id


def test_migrate_api_takes_live(api, running, operator, django_capture_on_commit_callbacks):
    client = api(operator.user)
    target = other_host(running)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/instances/{running.public_id}/migrate",
                               {"live": True, "host": target.public_id}, format="json")
    assert (response.status_code, response.json()["status"]) == (202, "migrating")
    assert Instance.objects.get(pk=running.pk).host_id == target.pk
    Instance.objects.filter(pk=running.pk).update(status=Instance.STOPPED)
    refused = client.post(f"/api/v1/instances/{running.public_id}/migrate", {"live": True}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (409, "invalid_state")


def test_events_from_the_source_of_a_finished_migration_are_stale(running, operator, run_tasks):
    source = running.host
    run_tasks(services.migrate_instance, operator, instance=running, live=True)
    services.apply_domain_event(DomainEvent(running.public_id, "shutoff", "stopped"), host_uri=source.uri)
    assert Instance.objects.get(pk=running.pk).status == "running"
    services.apply_domain_event(DomainEvent(running.public_id, "shutoff", "stopped"),
                                host_uri=other_host(running).uri)
    assert Instance.objects.get(pk=running.pk).status == "stopped"


def test_back_office_live_migrates_and_says_what_it_refused(running, admin_client,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        page = admin_client.post("/backoffice/compute/instance/", {
            "action": "live_migrate", "_selected_action": [running.pk]}, follow=True).content.decode()
    assert f"{running.public_id}: live-migrating." in page.lower()  # the admin capitalises messages
    assert Instance.objects.get(pk=running.pk).host_id == other_host(running).pk
    Instance.objects.filter(pk=running.pk).update(status=Instance.STOPPED)
    page = admin_client.post("/backoffice/compute/instance/", {
        "action": "live_migrate", "_selected_action": [running.pk]}, follow=True).content.decode()
    assert "A cold migration moves a stopped instance." in page
