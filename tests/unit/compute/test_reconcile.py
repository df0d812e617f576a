"""Hypervisor-driven changes: lifecycle events and the reconciler, with the fake hypervisor."""

import pytest

from apps.compute import services
from apps.compute.drivers.base import DomainEvent, DomainSpec
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Host, Instance
from apps.core.models import AuditRecord
from tests.factories.compute import make_inventory


@pytest.fixture
def running(a_owner, actor, django_capture_on_commit_callbacks):
    inventory = make_inventory()
    with django_capture_on_commit_callbacks(execute=True):
        [instance] = services.create_instances(actor(a_owner), name="vm", flavor="t1.nano",
                                               image=inventory["image"].public_id)
    return Instance.objects.get(pk=instance.pk)


def test_guest_power_off_is_followed(running):
    services.apply_domain_event(DomainEvent(running.public_id, "shutoff", "stopped"))
    running.refresh_from_db()
    assert (running.status, running.status_reason) == ("stopped", "Powered off outside the portal (stopped).")
    record = AuditRecord.objects.get(action="instance.observed")
    assert (record.actor_kind, record.resource_id, record.tenant_id) == ("system", running.public_id,
                                                                           running.tenant_id)
    services.apply_domain_event(DomainEvent(running.public_id, "running", "started"))
    assert Instance.objects.get(pk=running.pk).status == "running"


def test_events_do_not_race_tasks(running):
    Instance.objects.filter(pk=running.pk).update(status=Instance.STOPPING)
    services.apply_domain_event(DomainEvent(running.public_id, "shutoff", "stopped"))
    assert Instance.objects.get(pk=running.pk).status == "stopping"
    assert services.apply_domain_event(DomainEvent("i-unknown1", "running", "started")) is None


def test_crash_is_an_error(running):
    services.apply_domain_event(DomainEvent(running.public_id, "crashed", "crashed"))
    assert Instance.objects.get(pk=running.pk).status == "error"


def test_reconcile_recreates_vanished_domains_and_removes_orphans(running):
    driver = FakeDriver("fake:///hv1")
    driver.delete_domain(running.public_id)  # behind the portal's back
    driver.ensure_domain(DomainSpec(name="i-orphan01", vcpus=1, memory_mb=128,
                                    labels=(("instance", "i-orphan01"),)))
    driver.ensure_domain(DomainSpec(name="someone-elses-vm", vcpus=1, memory_mb=128))
    report = services.reconcile_host(Host.objects.get().pk)
    assert report == {"recreated": [running.public_id], "status_fixed": [], "orphans_removed": ["i-orphan01"]}
    assert driver.domain_info(running.public_id).state == "running"
    assert {d.name for d in driver.list_domains()} == {running.public_id, "someone-elses-vm"}
    assert services.reconcile_host(Host.objects.get().pk) == {"recreated": [], "status_fixed": [],
                                                              "orphans_removed": []}


def test_reconcile_fixes_status_when_events_were_missed(running):
    FakeDriver("fake:///hv1").stop_domain(running.public_id, force=True)
    report = services.reconcile_host(Host.objects.get().pk)
    assert report["status_fixed"] == [running.public_id]
    assert Instance.objects.get(pk=running.pk).status == "stopped"
