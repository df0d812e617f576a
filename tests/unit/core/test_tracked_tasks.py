"""Tasks that drive a resource are tracked: one that raises, or is lost with its worker, ends
the resource in `error` with the reason instead of leaving it transitional for ever."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.compute import services
from apps.compute.drivers.fake import FakeDriver
from apps.compute.models import Instance
from apps.core import tasks as core_tasks
from apps.core.models import AuditRecord, Operation, TrackedTask
from tests.factories.compute import make_inventory


@pytest.fixture
def inventory(db):
    return make_inventory()


@pytest.fixture
def running(a_owner, actor, inventory, run_tasks):
    [instance] = run_tasks(services.create_instances, actor(a_owner), name="web", flavor="t1.nano",
                           image=inventory["image"].public_id)
    return instance


def test_a_task_that_ended_well_is_forgotten(running):
    assert Instance.objects.get(pk=running.pk).status == "running"
    assert not TrackedTask.objects.exists()


def test_an_unexpected_exception_fails_the_resource_and_its_operation(a_owner, actor, inventory, run_tasks):
    FakeDriver("fake:///hv1").fail_next("ensure_domain", RuntimeError("libvirt binding exploded"))
    with pytest.raises(RuntimeError):
        run_tasks(services.create_instances, actor(a_owner), name="web", flavor="t1.nano",
                  image=inventory["image"].public_id)
    instance = Instance.objects.get()
    assert instance.status == "error"
    assert instance.status_reason == "Internal error in provision_instance; the operators have the details."
    operation = Operation.objects.get(resource_id=instance.public_id)
    assert (operation.status, operation.error) == ("failed", instance.status_reason)
    audit = AuditRecord.objects.get(action="task.failed", resource_id=instance.public_id, result="error")
    assert audit.details["error"] == "RuntimeError: libvirt binding exploded"
    assert not TrackedTask.objects.exists()


def test_the_sweeper_requeues_a_lost_task_once_then_fails_the_resource(running, a_owner, actor, run_tasks,
                                                                        monkeypatch, settings):
    lost = []
    monkeypatch.setattr(core_tasks, "async_task", lambda func, *args, **options: lost.append((func, args)))
    run_tasks(services.stop_instance, actor(a_owner), instance=running)  # queued, then lost with its worker
    assert Instance.objects.get(pk=running.pk).status == "stopping"
    assert lost == [("apps.compute.tasks.stop_instance", (running.pk, 0))]

    assert core_tasks.sweep_tracked_tasks() == {"forgotten": 0, "requeued": 0, "failed": 0}  # not late yet
    past = timezone.now() - timedelta(seconds=settings.PORTAL_TASK_LOST_AFTER + 1)
    TrackedTask.objects.update(queued_at=past)
    assert core_tasks.sweep_tracked_tasks() == {"forgotten": 0, "requeued": 1, "failed": 0}
    assert lost[-1] == ("apps.compute.tasks.stop_instance", (running.pk, 0))
    assert TrackedTask.objects.get().attempts == 2

    TrackedTask.objects.update(queued_at=past)  # lost again
    assert core_tasks.sweep_tracked_tasks() == {"forgotten": 0, "requeued": 0, "failed": 1}
    instance = Instance.objects.get(pk=running.pk)
    assert instance.status == "error"
    assert "did not finish after 2 attempts" in instance.status_reason
    assert not TrackedTask.objects.exists()


def test_a_requeued_task_finishes_the_work(running, a_owner, actor, run_tasks, monkeypatch, settings):
    dropped = []
    with monkeypatch.context() as patched:
        patched.setattr(core_tasks, "async_task", lambda *args, **options: dropped.append(args))
        run_tasks(services.stop_instance, actor(a_owner), instance=running)
    TrackedTask.objects.update(queued_at=timezone.now() - timedelta(seconds=settings.PORTAL_TASK_LOST_AFTER + 1))
    core_tasks.sweep_tracked_tasks()  # the real django-q2 (synchronous here) runs it this time
    assert Instance.objects.get(pk=running.pk).status == "stopped"
    assert not TrackedTask.objects.exists()


def test_the_sweeper_forgets_tasks_whose_resource_moved_on(running, settings):
    TrackedTask.objects.create(func="apps.compute.tasks.start_instance", args=[running.pk],
                               resource_model="compute.instance", resource_pk=running.pk,
                               queued_at=timezone.now() - timedelta(seconds=settings.PORTAL_TASK_LOST_AFTER + 1))
    assert core_tasks.sweep_tracked_tasks() == {"forgotten": 1, "requeued": 0, "failed": 0}
    assert Instance.objects.get(pk=running.pk).status == "running"


def test_every_tracked_model_can_be_failed(db):
    from django.apps import apps

    for label in core_tasks._TRACKED_MODELS:
        model = apps.get_model(label)
        fields = {f.name for f in model._meta.fields}
        assert {"status", "status_reason", "updated_at"} <= fields, label
        assert model.ERROR in dict(model._meta.get_field("status").choices), label
        assert isinstance(model.is_transitional, property), label
    assert set(core_tasks._TRACKED_MODELS) == {"compute.instance", "storage.volume", "storage.snapshot",
                                               "storage.backup"}
