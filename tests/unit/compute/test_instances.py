"""Instance lifecycle through services and the API with the fake hypervisor (tasks run inline)."""

import pytest

from apps.compute import services
from apps.compute.drivers.base import DriverError
from apps.compute.drivers.base import NotFound as DomainNotFound
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Host, Instance
from apps.core.exceptions import Conflict, NotFound, PermissionDenied, QuotaExceeded, ValidationFailed
from apps.core.models import AuditRecord, Operation
from apps.tenants.models import Quota
from tests.factories.compute import make_inventory


@pytest.fixture
def inventory(db):
    return make_inventory()


def create(run_tasks, actor, inventory, **overrides):
    values = {"name": "web", "flavor": "t1.nano", "image": inventory["image"].public_id}
    values.update(overrides)
    return run_tasks(services.create_instances, actor, **values)


def test_create_runs_the_instance_and_claims_the_host(a_owner, actor, inventory, run_tasks):
    [instance] = create(run_tasks, actor(a_owner), inventory)
    instance.refresh_from_db()
    assert (instance.status, instance.host.name, instance.launched_at is not None) == ("running", "hv1", True)
    host = Host.objects.get()
    assert (host.vcpus_used, host.memory_mb_used, host.instances_count) == (1, 128, 1)
    assert FakeDriver("fake:///hv1").domain_info(instance.public_id).state == "running"
    operation = Operation.objects.get(resource_id=instance.public_id)
    assert (operation.status, operation.progress) == ("succeeded", 100)
    quota = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (quota["instances"], quota["vcpus"], quota["ram_mb"]) == (1, 1, 128)


def test_power_actions_follow_the_state_machine(a_owner, actor, inventory, run_tasks):
    owner = actor(a_owner)
    [instance] = create(run_tasks, owner, inventory)
    with pytest.raises(Conflict, match="while it is running"):
        services.start_instance(owner, instance=instance)
    run_tasks(services.stop_instance, owner, instance=instance)
    assert Instance.objects.get(pk=instance.pk).status == "stopped"
    with pytest.raises(Conflict):
        services.reboot_instance(owner, instance=instance)
    run_tasks(services.start_instance, owner, instance=instance)
    run_tasks(services.reboot_instance, owner, instance=instance, hard=True)
    assert Instance.objects.get(pk=instance.pk).status == "running"


def test_delete_gives_back_host_claim_and_quota(a_owner, actor, inventory, run_tasks):
    owner = actor(a_owner)
    [instance] = create(run_tasks, owner, inventory)
    run_tasks(services.delete_instance, owner, instance=instance)
    instance.refresh_from_db()
    assert (instance.status, instance.deleted_at is not None, instance.host) == ("deleted", True, None)
    assert (Host.objects.get().vcpus_used, Host.objects.get().instances_count) == (0, 0)
    assert Quota.objects.get(tenant=a_owner.tenant, resource="instances").in_use == 0
    with pytest.raises(DomainNotFound):
        FakeDriver("fake:///hv1").domain_info(instance.public_id)
    with pytest.raises(Conflict):
        services.delete_instance(owner, instance=instance)


def test_failed_build_releases_the_claim_and_says_why(a_owner, actor, inventory, run_tasks):
    FakeDriver("fake:///hv1").fail_next("ensure_domain", DriverError("qemu: could not open kernel"))
    [instance] = create(run_tasks, actor(a_owner), inventory)
    instance.refresh_from_db()
    assert (instance.status, instance.status_reason) == (
        "error", "Build failed: qemu: could not open kernel (no other host could take it after 1)")
    assert Host.objects.get().vcpus_used == 0
    assert Operation.objects.get(resource_id=instance.public_id).status == "failed"


def test_a_build_the_hypervisor_refuses_is_retried_on_other_hosts_a_bounded_number_of_times(
        a_owner, actor, run_tasks, settings, db):
    inventory = make_inventory("fake:///hv", hosts=4)
    settings.PORTAL_BUILD_RESCHEDULES = 2
    for n in (0, 1):
        FakeDriver(f"fake:///hv-{n}").fail_next("ensure_domain", DriverError(f"qemu on hv-{n}: no KVM"))
    [instance] = create(run_tasks, actor(a_owner), inventory)
    instance.refresh_from_db()
    assert (instance.status, instance.host.name) == ("running", "hv-2")
    assert {h.name: h.vcpus_used for h in Host.objects.all()} == {"hv-0": 0, "hv-1": 0, "hv-2": 1, "hv-3": 0}
    operation = Operation.objects.get(resource_id=instance.public_id)
    assert operation.status == "succeeded" and "build failed on hv-1: qemu on hv-1: no KVM; retrying on hv-2" in (
        operation.log)

    for n in range(4):  # three refusals: the third host is the last one tried
        FakeDriver(f"fake:///hv-{n}").fail_next("ensure_domain", DriverError(f"qemu on hv-{n}: no KVM"))
    [second] = create(run_tasks, actor(a_owner), inventory, name="db")
    second.refresh_from_db()
    assert (second.status, second.host) == ("error", None)
    assert second.status_reason.startswith("Build failed: qemu on hv-")
    assert sum(h.vcpus_used for h in Host.objects.all()) == 1  # only the first instance's claim


def test_batch_create_and_quota_message(a_owner, operator, actor, inventory, run_tasks):
    from apps.tenants.services import set_quota

    set_quota(operator, tenant=a_owner.tenant, resource="instances", limit=3)
    created = create(run_tasks, actor(a_owner), inventory, count=3)
    assert [i.name for i in created] == ["web-1", "web-2", "web-3"]
    with pytest.raises(QuotaExceeded, match="Quota exceeded for Instances: 3 of 3 used, 1 more requested"):
        create(run_tasks, actor(a_owner), inventory)
    assert Instance.objects.count() == 3


def test_no_host_can_take_it(a_owner, actor, inventory, run_tasks, operator):
    big = services.create_flavor(operator, name="huge", vcpus=64, ram_mb=262144)
    from apps.tenants.services import set_quota

    for resource in ("vcpus", "ram_mb"):
        set_quota(operator, tenant=a_owner.tenant, resource=resource, limit=10**6)
    with pytest.raises(Conflict, match="No host in region default can take 64 vCPU") as exc:
        create(run_tasks, actor(a_owner), inventory, flavor=big.name)
    assert exc.value.code == "no_valid_host"
    assert not Instance.objects.exists()
    counted = Quota.objects.filter(tenant=a_owner.tenant, resource="instances").first()
    assert counted is None or counted.in_use == 0  # rolled back with the refused request
    assert Host.objects.get().vcpus_used == 0


def test_hosts_in_maintenance_or_down_take_nothing(a_owner, actor, inventory, run_tasks, operator):
    services.set_host_state(operator, host=Host.objects.get(), state="maintenance")
    with pytest.raises(Conflict, match="No host"):
        create(run_tasks, actor(a_owner), inventory)


def test_bad_requests(a_owner, b_owner, actor, inventory, run_tasks):
    from apps.tenants.services import generate_key_pair

    theirs, _ = generate_key_pair(actor(b_owner), name="b-key")
    with pytest.raises(NotFound):
        create(run_tasks, actor(a_owner), inventory, key_pair=theirs.public_id)
    with pytest.raises(NotFound):
        create(run_tasks, actor(a_owner), inventory, flavor="nope")
    with pytest.raises(ValidationFailed) as exc:
        create(run_tasks, actor(a_owner), inventory, count=0, user_data="x" * 20000)
    assert set(exc.value.fields) == {"count", "user_data"}
    with pytest.raises(ValidationFailed):
        create(run_tasks, actor(a_owner), inventory, name="tab\there")
    assert not Instance.objects.exists()


def test_image_needing_more_ram_than_the_flavor(a_owner, actor, inventory, run_tasks):
    inventory["image"].min_ram_mb = 512
    inventory["image"].save()
    with pytest.raises(ValidationFailed, match="needs at least 512 MiB"):
        create(run_tasks, actor(a_owner), inventory)


def test_readonly_cannot_act_on_instances(a_owner, a_readonly, actor, inventory, run_tasks):
    [instance] = create(run_tasks, actor(a_owner), inventory)
    with pytest.raises(PermissionDenied):
        services.stop_instance(actor(a_readonly), instance=instance)
    with pytest.raises(PermissionDenied):
        create(run_tasks, actor(a_readonly), inventory)


def test_instance_api(api, a_owner, inventory, django_capture_on_commit_callbacks):
    client = api(a_owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/instances", {"name": "api-vm", "flavor": "t1.nano",
                                                     "image": inventory["image"].public_id})
    assert response.status_code == 202
    instance_id = response.json()[0]["id"]
    body = client.get(f"/api/v1/instances/{instance_id}").json()
    assert body["status"] == "running" and "host" not in body
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/instances/{instance_id}/stop", {"force": True}).status_code == 202
    assert client.get(f"/api/v1/instances/{instance_id}").json()["status"] == "stopped"
    conflict = client.post(f"/api/v1/instances/{instance_id}/stop")
    assert conflict.status_code == 409 and conflict.json()["code"] == "invalid_state"
    assert client.patch(f"/api/v1/instances/{instance_id}", {"tags": ["web", "prod"]}).json()["tags"] == ["prod", "web"]
    assert client.get("/api/v1/flavors").json()["results"][0]["name"] == "t1.nano"
    assert client.get("/api/v1/images").json()["count"] == 1
    bad = client.post("/api/v1/instances", {"name": "x", "flavor": "t1.nano", "image": "img-nothere1"})
    assert bad.status_code == 404 and bad.json()["fields"] == {"image": ["Unknown image."]}


def test_instance_list_query_count_is_constant(api, a_owner, inventory, run_tasks, actor,
                                               django_assert_max_num_queries):
    create(run_tasks, actor(a_owner), inventory, count=5)
    client = api(a_owner)
    with django_assert_max_num_queries(8):
        assert client.get("/api/v1/instances").json()["count"] == 5


def test_instance_pages(a_owner, inventory, client, django_capture_on_commit_callbacks):
    client.force_login(a_owner.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/instances/", {"name": "page-vm", "flavor": "t1.nano", "count": 1,
                                               "image": inventory["image"].public_id})
    assert response.status_code == 302
    assert 'data-status="running"' in client.get("/instances/").content.decode()
    instance = Instance.objects.get()
    detail = client.get(f"/instances/{instance.public_id}/").content.decode()
    assert "instance.create" in detail and "page-vm" in detail
    log = client.get(f"/instances/{instance.public_id}/console-log", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="console-log"' in log and instance.public_id in log
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/instances/{instance.public_id}/force-stop")
    assert Instance.objects.get().status == "stopped"


def test_rebuild_with_another_image(a_owner, actor, inventory, run_tasks):
    from apps.compute.models import Image

    other = Image.objects.create(name="tiny-2", visibility=Image.PUBLIC, status=Image.ACTIVE, boot=Image.KERNEL,
                                 kernel_file="/k2", initrd_file="/i2", min_ram_mb=96)
    owner = actor(a_owner)
    [instance] = create(run_tasks, owner, inventory)
    run_tasks(services.rebuild_instance, owner, instance=instance, image=other.public_id)
    instance.refresh_from_db()
    assert (instance.status, instance.image) == ("running", other)
    assert FakeDriver("fake:///hv1").domain_info(instance.public_id).state == "running"


def test_resize_of_a_stopped_instance_redefines_it_and_moves_claims_and_quota(a_owner, actor, inventory, run_tasks,
                                                                              operator):
    bigger = services.create_flavor(operator, name="t1.small", vcpus=2, ram_mb=512)
    owner = actor(a_owner)
    [instance] = create(run_tasks, owner, inventory)
    run_tasks(services.stop_instance, owner, instance=instance, force=True)
    run_tasks(services.resize_instance, owner, instance=instance, flavor=bigger.name)
    instance.refresh_from_db()
    assert (instance.status, instance.flavor, instance.vcpus, instance.ram_mb) == ("stopped", bigger, 2, 512)
    info = FakeDriver("fake:///hv1").domain_info(instance.public_id)
    assert (info.vcpus, info.memory_mb) == (2, 512)
    host = Host.objects.get()
    assert (host.vcpus_used, host.memory_mb_used) == (2, 512)
    quota = {q.resource: q.in_use for q in Quota.objects.filter(tenant=a_owner.tenant)}
    assert (quota["vcpus"], quota["ram_mb"]) == (2, 512)
    with pytest.raises(ValidationFailed, match="current flavor"):
        services.resize_instance(owner, instance=instance, flavor=bigger.name)
    # Stopped, it may shrink too.
    run_tasks(services.resize_instance, owner, instance=instance, flavor="t1.nano")
    assert (Host.objects.get().vcpus_used, Host.objects.get().memory_mb_used) == (1, 128)


def test_a_running_instance_grows_in_place_within_its_room(a_owner, actor, inventory, run_tasks, operator, settings):
    settings.PORTAL_HOTPLUG_MAX_VCPUS, settings.PORTAL_HOTPLUG_MAX_RAM_MB = 4, 1024
    services.create_flavor(operator, name="t1.small", vcpus=2, ram_mb=512)
    services.create_flavor(operator, name="t1.odd", vcpus=2, ram_mb=200)
    services.create_flavor(operator, name="t1.huge", vcpus=8, ram_mb=512)
    owner = actor(a_owner)
    [instance] = create(run_tasks, owner, inventory)
    driver = FakeDriver("fake:///hv1")
    assert (driver.domain_info(instance.public_id).max_vcpus,
            driver.domain_info(instance.public_id).max_memory_mb) == (4, 1024)

    run_tasks(services.resize_instance, owner, instance=instance, flavor="t1.small")
    instance.refresh_from_db()
    assert (instance.status, instance.vcpus, instance.ram_mb) == ("running", 2, 512)
    info = driver.domain_info(instance.public_id)
    assert (info.state, info.vcpus, info.memory_mb) == ("running", 2, 512)
    assert (Host.objects.get().vcpus_used, Host.objects.get().memory_mb_used) == (2, 512)

    refusals = {"t1.nano": "only added to it", "t1.huge": "room for 4 vCPUs", "t1.odd": "only added"}
    for flavor, reason in refusals.items():
        with pytest.raises(Conflict, match=reason) as exc:
            services.resize_instance(owner, instance=instance, flavor=flavor)
        assert exc.value.code == "unsupported"
    instance.refresh_from_db()
    assert (instance.status, instance.vcpus, Host.objects.get().vcpus_used) == ("running", 2, 2)


def test_hot_memory_comes_in_whole_blocks(a_owner, actor, inventory, run_tasks, operator):
    services.create_flavor(operator, name="t1.odd", vcpus=1, ram_mb=200)
    [instance] = create(run_tasks, actor(a_owner), inventory)
    with pytest.raises(Conflict, match="steps of 128 MiB"):
        services.resize_instance(actor(a_owner), instance=instance, flavor="t1.odd")


def test_domains_without_room_resize_only_when_stopped(a_owner, actor, inventory, run_tasks, operator, settings):
    settings.PORTAL_HOTPLUG_MAX_VCPUS = settings.PORTAL_HOTPLUG_MAX_RAM_MB = 0
    services.create_flavor(operator, name="t1.small", vcpus=2, ram_mb=512)
    [instance] = create(run_tasks, actor(a_owner), inventory)
    with pytest.raises(Conflict, match="Stop it to resize it"):
        services.resize_instance(actor(a_owner), instance=instance, flavor="t1.small")


def test_resize_and_rebuild_from_the_detail_page(a_owner, b_owner, actor, inventory, run_tasks, operator, client,
                                                django_capture_on_commit_callbacks):
    services.create_flavor(operator, name="t1.small", vcpus=2, ram_mb=256)
    [instance] = create(run_tasks, actor(a_owner), inventory)
    url = f"/instances/{instance.public_id}"
    client.force_login(b_owner.user)
    assert client.post(f"{url}/resize", {"flavor": "t1.small"}).status_code == 404
    client.force_login(a_owner.user)
    page = client.get(f"{url}/").content.decode()
    assert 'id="resize"' in page and '<option value="t1.small">' in page and 'value="t1.nano"' not in page

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(f"{url}/resize", {"flavor": "t1.small"}, follow=True)
    assert "Resize requested." in done.content.decode()
    instance.refresh_from_db()
    assert (instance.status, instance.vcpus, instance.ram_mb) == ("running", 2, 256)  # grown in place
    refused = client.post(f"{url}/resize", {"flavor": "t1.nano"}, follow=True).content.decode()
    assert "only added to it" in refused  # the service's 409, as a message on the page
    unknown = client.post(f"{url}/resize", {"flavor": "t9.none"}, follow=True).content.decode()
    assert "t9.none is not one of the available choices" in unknown
    assert Instance.objects.get(pk=instance.pk).vcpus == 2

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{url}/rebuild", {"image": inventory["image"].public_id})
    assert Instance.objects.get(pk=instance.pk).status == "running"
    assert AuditRecord.objects.filter(action="instance.rebuild", resource_id=instance.public_id).exists()


def test_reset_password_is_unsupported_without_a_guest_agent(a_owner, actor, inventory, run_tasks):
    [instance] = create(run_tasks, actor(a_owner), inventory)
    with pytest.raises(Conflict, match="unsupported by this image") as exc:
        services.reset_password(actor(a_owner), instance=instance, user="root", password="s3cret-pass")
    assert exc.value.code == "unsupported"


def test_anti_affinity_spreads_and_affinity_keeps_together(a_owner, actor, run_tasks, db):
    owner = actor(a_owner)
    inventory = make_inventory(hosts=3)
    spread = services.create_instance_group(owner, name="web", policy="anti-affinity")
    created = create(run_tasks, owner, inventory, count=3, isolation_group=spread.public_id)
    assert len({i.host_id for i in created}) == 3
    with pytest.raises(Conflict, match="anti-affinity of group"):
        create(run_tasks, owner, inventory, isolation_group=spread.public_id)
    together = services.create_instance_group(owner, name="db", policy="affinity")
    pair = create(run_tasks, owner, inventory, count=2, isolation_group=together.public_id)
    assert len({i.host_id for i in pair}) == 1
    with pytest.raises(Conflict, match="still has 2 instances"):
        services.delete_instance_group(owner, group=together)


def test_instance_group_api(api, a_owner, inventory, django_capture_on_commit_callbacks):
    client = api(a_owner)
    group = client.post("/api/v1/instance-groups", {"name": "g", "policy": "anti-affinity"}).json()
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/v1/instances", {"name": "vm", "flavor": "t1.nano", "isolation_group": group["id"],
                                                    "image": inventory["image"].public_id}).json()
    assert created[0]["isolation_group"] == group["id"]
    assert client.get(f"/api/v1/instance-groups/{group['id']}").json()["instances"] == [created[0]["id"]]
    assert client.post("/api/v1/instance-groups", {"name": "g", "policy": "random"}).status_code == 400


def test_console_log_api(api, a_owner, inventory, django_capture_on_commit_callbacks):
    client = api(a_owner)
    with django_capture_on_commit_callbacks(execute=True):
        [created] = client.post("/api/v1/instances", {"name": "vm", "flavor": "t1.nano",
                                                      "image": inventory["image"].public_id}).json()
    response = client.get(f"/api/v1/instances/{created['id']}/console-log")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert created["id"] in response.content.decode()


def test_libvirt_console_log_is_refused_for_remote_hosts():
    from apps.compute.drivers.base import Unsupported
    from apps.compute.drivers.libvirt import LibvirtDriver

    with pytest.raises(Unsupported):
        LibvirtDriver("qemu+ssh://root@hv9/system").console_log("/x", limit=10)


def test_operator_cold_migration_and_drain(a_owner, actor, run_tasks, operator, db):
    inventory = make_inventory(hosts=2)
    owner = actor(a_owner)
    running, stopped = create(run_tasks, owner, inventory, count=2)
    run_tasks(services.stop_instance, owner, instance=stopped, force=True)
    source = Instance.objects.get(pk=running.pk).host
    with pytest.raises(PermissionDenied):
        services.migrate_instance(owner, instance=running)
    run_tasks(services.migrate_instance, operator, instance=running)
    moved = Instance.objects.get(pk=running.pk)
    assert (moved.status, moved.host != source, moved.status_reason) == ("running", True, f"moved from {source.name}")
    assert FakeDriver(moved.host.uri).domain_info(moved.public_id).state == "running"
    with pytest.raises(DomainNotFound):
        FakeDriver(source.uri).domain_info(moved.public_id)
    source.refresh_from_db()
    assert source.instances_count == (1 if Instance.objects.get(pk=stopped.pk).host_id == source.pk else 0)

    busy = Instance.objects.get(pk=moved.pk).host
    run_tasks(services.drain_host, operator, host=busy)
    busy.refresh_from_db()
    assert (busy.state, busy.instances_count, busy.vcpus_used) == ("disabled", 0, 0)
    assert set(Instance.objects.values_list("status", flat=True)) == {"running", "stopped"}


def test_evacuate_a_down_host(a_owner, actor, run_tasks, operator, db):
    inventory = make_inventory(hosts=2)
    [instance] = create(run_tasks, actor(a_owner), inventory)
    dead = Instance.objects.get(pk=instance.pk).host
    with pytest.raises(Conflict, match="only a host that is down"):
        services.evacuate_host(operator, host=dead)
    Host.objects.filter(pk=dead.pk).update(state=Host.DOWN)
    run_tasks(services.evacuate_host, operator, host=Host.objects.get(pk=dead.pk))
    rescued = Instance.objects.get(pk=instance.pk)
    assert (rescued.status, rescued.host_id != dead.pk) == ("running", True)
    assert FakeDriver(rescued.host.uri).domain_info(rescued.public_id).state == "running"


def test_host_api_is_for_operators(api, a_owner, operator, inventory):
    assert api(a_owner).get("/api/v1/hosts").status_code == 403
    client = api(operator.user)
    hosts = client.get("/api/v1/hosts").json()
    assert hosts["count"] == 1 and hosts["results"][0]["vcpus"] == 8
    host_id = hosts["results"][0]["id"]
    assert client.patch(f"/api/v1/hosts/{host_id}", {"state": "maintenance"}).json()["state"] == "maintenance"
    added = client.post("/api/v1/hosts", {"name": "hv9", "uri": "fake:///hv9", "region": "default",
                                          "availability_zone": "az1"})
    assert added.status_code == 201 and added.json()["memory_mb"] == 16384
    assert client.delete(f"/api/v1/hosts/{added.json()['id']}").status_code == 204


def test_provision_rerun_after_a_worker_died_mid_task(a_owner, actor, inventory):
    """State a killed worker leaves after defining the domain: row `building`, domain up.
    The retried task finishes it, with exactly one domain and one claim."""
    from apps.compute import tasks
    from apps.core.models import Operation

    [instance] = services.create_instances(actor(a_owner), name="crashy", flavor="t1.nano",
                                           image=inventory["image"].public_id)  # tasks not run: no commit
    operation = Operation.objects.get(resource_id=instance.public_id)
    driver = FakeDriver("fake:///hv1")
    instance = Instance.objects.select_related("host", "image", "tenant", "host__cluster").get(pk=instance.pk)
    driver.ensure_domain(tasks.domain_spec(instance))
    Instance.objects.filter(pk=instance.pk).update(status=Instance.BUILDING)

    tasks.provision_instance(instance.pk, operation.pk)
    tasks.provision_instance(instance.pk, operation.pk)  # a second retry is a no-op

    assert Instance.objects.get(pk=instance.pk).status == "running"
    assert [d.name for d in driver.list_domains()] == [instance.public_id]
    assert Host.objects.get().instances_count == 1
    assert Operation.objects.get(pk=operation.pk).status == "succeeded"
