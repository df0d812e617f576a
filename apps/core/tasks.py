"""Task plumbing. `enqueue_on_commit` is the only way work is queued: a task never starts
before the row it reads is committed, and a rolled-back request enqueues nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from django.conf import settings

from django.db import transaction
from django_q.tasks import async_task


def task_path(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__name__}"


TRACKED_PREFIX = "tracked:"


def enqueue_on_commit(fn: Callable, *ids: int, group: str | None = None, resource=None) -> None:
    """Queue `fn(*ids)` on django-q2 once the current transaction commits. With `resource` (a
    row of a model registered with `track_failures`), the task is tracked: if it raises or is
    lost, the row ends in `error` with the reason instead of staying transitional."""
    path = task_path(fn)
    options = {"group": group} if group else {}
    if resource is not None:
        from apps.core.models import TrackedTask

        tracked = TrackedTask.objects.create(func=path, args=list(ids), resource_model=resource._meta.label_lower,
                                             resource_pk=resource.pk)
        options["task_name"] = f"{TRACKED_PREFIX}{tracked.pk}"
    transaction.on_commit(lambda: async_task(path, *ids, **options))


# model label → the function that tells open pages about a row of it
_TRACKED_MODELS: dict[str, Callable] = {}


def track_failures(model, *, publish: Callable) -> None:
    """Let tasks queued with `resource=` a row of `model` be tracked. The model has `status`,
    `status_reason`, `ERROR` and `is_transitional`."""
    _TRACKED_MODELS[model._meta.label_lower] = publish


def task_finished(sender, task: dict, **kwargs) -> None:
    """django-q2's post_execute_in_worker: a tracked task that ended well is forgotten; one that
    raised (or timed out) fails its resource with the error's last line."""
    import sys

    from apps.core.models import TrackedTask

    name = task.get("name") or ""
    if not name.startswith(TRACKED_PREFIX):
        return
    tracked = TrackedTask.objects.filter(pk=int(name[len(TRACKED_PREFIX):])).first()
    if tracked is None:
        return
    if task.get("success"):
        tracked.delete()
        return
    # In sync mode the exception is still being handled here; otherwise the result holds its text.
    error = sys.exc_info()[1]
    text = f"{type(error).__name__}: {error}" if error else str(task.get("result") or "").split(" : ")[0]
    # The error text may name hosts and paths: operators read it in the audit log, tenants don't.
    fail_tracked(tracked, f"Internal error in {tracked.func.rsplit('.', 1)[-1]}; the operators have the details.",
                 detail=text)


def fail_tracked(tracked, reason: str, *, detail: str = "") -> bool:
    """Put the tracked task's resource in `error` (if still transitional) with `reason`, fail
    its unfinished operations, record it (with `detail`), forget the task. Returns whether the
    row changed."""
    from django.apps import apps
    from django.utils import timezone

    from apps.core.actor import Actor
    from apps.core.audit import record
    from apps.core.models import AuditRecord, Operation
    from apps.core.services import operation_fail

    model = apps.get_model(tracked.resource_model)
    changed = False
    with transaction.atomic():
        row = model.objects.select_for_update().filter(pk=tracked.resource_pk).first()
        if row is not None and row.is_transitional:
            row.status, row.status_reason = model.ERROR, reason[:512]
            row.updated_at = timezone.now()
            row.save(update_fields=["status", "status_reason", "updated_at"])
            _TRACKED_MODELS[tracked.resource_model](row)
            record(Actor.system(tenant=getattr(row, "tenant", None)), action="task.failed", area=row.area,
                   resource=row, result=AuditRecord.RESULT_ERROR, details={"task": tracked.func, "reason": reason, "error": detail})
            for op_id in Operation.objects.filter(resource_id=row.public_id, status__in=(
                    Operation.PENDING, Operation.RUNNING)).values_list("pk", flat=True):
                operation_fail(op_id, error=reason)
            changed = True
        tracked.delete()
    return changed


def sweep_tracked_tasks() -> dict[str, int]:
    """Scheduled: a tracked task older than PORTAL_TASK_LOST_AFTER whose resource is still
    transitional was lost (its worker died more often than django-q2 hands a task out again,
    or the broker lost it): queue it once more, then give up and fail the resource."""
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone

    from apps.core.models import TrackedTask

    cutoff = timezone.now() - timedelta(seconds=settings.PORTAL_TASK_LOST_AFTER)
    report = {"forgotten": 0, "requeued": 0, "failed": 0}
    for tracked in TrackedTask.objects.filter(queued_at__lt=cutoff).order_by("pk"):
        row = apps.get_model(tracked.resource_model).objects.filter(pk=tracked.resource_pk).first()
        if row is None or not row.is_transitional:
            tracked.delete()
            report["forgotten"] += 1
        elif tracked.attempts <= settings.PORTAL_TASK_REQUEUES:
            tracked.attempts += 1
            tracked.queued_at = timezone.now()
            tracked.save(update_fields=["attempts", "queued_at"])
            async_task(tracked.func, *tracked.args, task_name=f"{TRACKED_PREFIX}{tracked.pk}")
            report["requeued"] += 1
        else:
            fail_tracked(tracked, f"The task {tracked.func.rsplit('.', 1)[-1]} did not finish after "
                                  f"{tracked.attempts} attempts (its worker stopped); try again.")
            report["failed"] += 1
    return report


def record_status(model, pk: int, status: str, reason: str = "", *, publish: Callable, **fields):
    """Write a task's outcome on its row (status, reason, other fields) under the row lock,
    and tell the open pages."""
    with transaction.atomic():
        row = model.objects.select_for_update().get(pk=pk)
        row.status, row.status_reason = status, reason[:512]
        for key, value in fields.items():
            setattr(row, key, value)
        row.save()
        publish(row)
    return row


EXPORT_CHUNK = 500


def export_path(operation) -> Path:
    return settings.VAR_DIR / "exports" / f"{operation.public_id}.csv"


def export_audit_records(operation_id: int) -> None:
    """Write the audit export of an Operation to a CSV file. A re-run rewrites the file from
    the start, so a worker killed half-way leaves nothing a later run cannot finish."""
    import csv

    from apps.core import services
    from apps.core.actor import Actor
    from apps.core.filters import AuditRecordFilter
    from apps.core.models import Operation
    from apps.core.selectors import list_audit_records

    operation = Operation.objects.select_related("tenant").get(pk=operation_id)
    if operation.is_finished:
        return
    try:
        actor = Actor.system(tenant=operation.tenant)
        rows = AuditRecordFilter(operation.params, queryset=list_audit_records(actor)).qs
        rows = rows.filter(tenant=operation.tenant, created_at__lte=operation.created_at)
        total = rows.count()
        path = export_path(operation)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = ["created_at", "username", "actor_kind", "via", "service", "action", "resource_type",
                   "resource_id", "result", "error_code", "reason", "client_ip", "request_id"]
        services.operation_step(operation_id, step="writing", progress=1, log=f"{total} records to write")
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            done = 0
            for record in rows.order_by("created_at", "id").iterator(chunk_size=EXPORT_CHUNK):
                writer.writerow([getattr(record, c) for c in columns])
                done += 1
                if done % EXPORT_CHUNK == 0:
                    services.operation_step(operation_id, step="writing", progress=round(99 * done / total))
        services.operation_finish(operation_id, result={"records": total, "file": path.name}, log=f"{total} records")
    except Exception as exc:
        services.operation_fail(operation_id, error=str(exc) or exc.__class__.__name__)
        raise


def purge_recycle_bin(model, *, delete_task: Callable, publish: Callable) -> int:
    """Send the rows of `model` whose time in the recycle bin (PlatformSettings.recycle_bin_hours)
    is over to `deleting`, audited `<model>.purge`, and queue `delete_task(pk)` for each."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.actor import Actor
    from apps.core.audit import record
    from apps.core.models import PlatformSettings

    hours = PlatformSettings.load().recycle_bin_hours
    due = model.objects.filter(status=model.RECYCLED, recycled_at__lte=timezone.now() - timedelta(hours=hours))
    count = 0
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            row = model.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=pk)
            if row.status != model.RECYCLED:
                continue
            row.status, row.status_reason = model.DELETING, "Its time in the recycle bin is over"
            row.save(update_fields=["status", "status_reason", "updated_at"])
            record(Actor.system(tenant=row.tenant), action=f"{model._meta.model_name}.purge", area=row.area,
                   resource=row)
            publish(row)
            enqueue_on_commit(delete_task, row.pk, resource=row)
            count += 1
    return count


OPERATION_RETENTION_DAYS = 30


def purge_operations() -> int:
    """Delete finished operations (and their export files) older than the retention period."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.core.models import Operation

    cutoff = timezone.now() - timedelta(days=OPERATION_RETENTION_DAYS)
    old = Operation.objects.filter(finished_at__lt=cutoff)
    for operation in old:
        export_path(operation).unlink(missing_ok=True)
    return old.delete()[0]
