"""Reads of platform records: the audit log and operations, scoped to the actor."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.actor import Actor
from apps.core.exceptions import NotFound
from apps.core.models import AuditRecord, Operation


def list_audit_records(actor: Actor) -> QuerySet[AuditRecord]:
    return AuditRecord.objects.for_actor(actor, "view").select_related("tenant")


def list_operations(actor: Actor) -> QuerySet[Operation]:
    return Operation.objects.for_actor(actor, "view").select_related("created_by")


def get_operation(actor: Actor, public_id: str) -> Operation:
    operation = list_operations(actor).filter(public_id=public_id).first()
    if operation is None:
        raise NotFound(f"No operation {public_id}.")
    return operation
