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


def enqueue_on_commit(fn: Callable, *ids: int, group: str | None = None) -> None:
    """Queue `fn(*ids)` on django-q2 once the current transaction commits."""
    path = task_path(fn)
    options = {"group": group} if group else {}
    transaction.on_commit(lambda: async_task(path, *ids, **options))


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
