"""Writers for platform records: long-running operations.

A service starts an Operation in the same transaction as the work it describes; the task then
reports progress through `operation_step`/`operation_finish`/`operation_fail`, each committed
on its own and pushed to the tenant's open pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from apps.core import events
from apps.core.audit import audited
from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditRecord, Operation

if TYPE_CHECKING:
    from apps.core.actor import Actor
    from apps.tenants.models import Tenant

# Progress bookkeeping of an operation whose starting service call is itself audited.
UNAUDITED = ("start_operation", "operation_step", "operation_progress", "operation_finish", "operation_fail")


def start_operation(actor: Actor, *, area: str, kind: str, name: str, resource_id: str = "", params=None,
                    tenant: Tenant | None = None) -> Operation:
    """Record pending long work for the actor's tenant, or for `tenant` (an operator's work on a
    tenant's resource), inside the caller's service."""
    return Operation.objects.create(
        tenant=tenant or actor.tenant,
        created_by=actor.user if actor.user is not None else None,
        area=area,
        kind=kind,
        name=name,
        resource_id=resource_id,
        params=params or {},
        step="queued",
    )


def _publish(operation: Operation) -> None:
    events.publish(
        operation.tenant_id,
        {
            "type": "operation",
            "id": operation.public_id,
            "kind": operation.kind,
            "status": operation.status,
            "progress": operation.progress,
            "step": operation.step,
            "resource_id": operation.resource_id,
        },
    )


@transaction.atomic
def operation_step(operation_id: int, *, step: str, progress: int, log: str = "") -> Operation:
    """Move a running operation forward; progress never goes backwards on a re-run."""
    op = Operation.objects.select_for_update().get(pk=operation_id)
    if op.status == Operation.PENDING:
        op.status, op.started_at = Operation.RUNNING, timezone.now()
    op.step = step
    op.progress = max(op.progress, min(100, progress))
    if log:
        op.log += f"{timezone.now():%H:%M:%S} {log}\n"
    op.save(update_fields=["status", "started_at", "step", "progress", "log", "updated_at"])
    _publish(op)
    return op


def operation_progress(operation_id: int, step: str, start: int, end: int):
    """A percent callback (a copy reporting 0-100) that moves the operation from `start` to
    `end` percent."""
    return lambda percent: operation_step(operation_id, step=step, progress=start + (end - start) * percent // 100)


@transaction.atomic
def operation_finish(operation_id: int, *, result: dict | None = None, log: str = "done") -> Operation:
    op = Operation.objects.select_for_update().get(pk=operation_id)
    op.status, op.progress, op.step = Operation.SUCCEEDED, 100, "done"
    op.result = result or {}
    op.log += f"{timezone.now():%H:%M:%S} {log}\n"
    op.finished_at = timezone.now()
    op.save()
    _publish(op)
    return op


@transaction.atomic
def operation_fail(operation_id: int, *, error: str) -> Operation:
    op = Operation.objects.select_for_update().get(pk=operation_id)
    op.status, op.error, op.finished_at = Operation.FAILED, error, timezone.now()
    op.log += f"{timezone.now():%H:%M:%S} failed: {error}\n"
    op.save()
    _publish(op)
    return op


@audited("audit.export", area="audit")
def export_audit_log(actor: Actor, *, filters: dict[str, str]) -> Operation:
    """Start a CSV export of the audit records the actor can read, matching `filters`
    (the same filters as the list). The file is built by a task; the operation shows progress."""
    from apps.core import permissions
    from apps.core.filters import AuditRecordFilter
    from apps.core.tasks import enqueue_on_commit, export_audit_records

    permissions.require_area(actor, "audit", "view")
    if actor.tenant is None and not actor.is_privileged:
        raise ValidationFailed("No current tenant selected.", code="no_tenant")
    form = AuditRecordFilter(data=filters, queryset=AuditRecord.objects.none()).form
    if not form.is_valid():
        raise ValidationFailed("Invalid filters.", fields={k: list(v) for k, v in form.errors.items()})
    clean = {k: v for k, v in filters.items() if k in AuditRecordFilter.base_filters and v not in ("", None)}
    operation = start_operation(actor, area="audit", kind="audit.export", name="Audit log export", params=clean)
    enqueue_on_commit(export_audit_records, operation.pk)
    return operation
