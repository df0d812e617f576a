"""The audit log writer. Every service is wrapped by `audited`, which runs it in one
transaction and writes exactly one AuditRecord: `ok` with the resource it returned, or `error`
with the reason (written after the rollback, so the failure is kept while the change is not)."""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import TYPE_CHECKING, Any, Callable

from django.db import transaction

from apps.core.exceptions import DomainError
from apps.core.models import AuditRecord

if TYPE_CHECKING:
    from apps.core.actor import Actor

log = logging.getLogger(__name__)


def _resource_of(value: Any) -> tuple[str, str]:
    public_id = getattr(value, "public_id", None)
    if public_id:
        return value._meta.model_name, public_id
    return "", ""


def _tenant_of(actor: Actor, resource: Any) -> Any:
    if resource is not None and resource._meta.label == "tenants.Tenant":
        return resource
    if resource is not None and getattr(resource, "tenant_id", None):
        return resource.tenant
    return actor.tenant


def record(
    actor: Actor,
    *,
    action: str,
    area: str,
    resource: Any = None,
    result: str = AuditRecord.RESULT_OK,
    error: Exception | None = None,
    details: dict | None = None,
) -> AuditRecord:
    """Write one audit row. `resource` is the model instance acted on (its public id is kept)."""
    resource_type, resource_id = _resource_of(resource)
    user = actor.user if actor.user is not None and actor.user.pk else None
    return AuditRecord.objects.create(
        tenant=_tenant_of(actor, resource),
        user=user,
        username=user.get_username() if user else "",
        actor_kind=actor.kind,
        via=actor.via,
        service=area,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        result=result,
        error_code=getattr(error, "code", "internal_error") if error else "",
        reason=(error.message if isinstance(error, DomainError) else "internal error") if error else "",
        client_ip=actor.client_ip,
        request_id=actor.request_id or "",
        details=details or {},
    )


def audited(action: str, *, area: str, acting_user: Callable | None = None) -> Callable:
    """Decorate a service `fn(actor, *, ...)`: one transaction, one audit record.

    The resource recorded is the returned object, else the first keyword argument that has a
    public id (the object acted on), so denied and failed calls still say what was targeted.
    `acting_user(result)` names the user to record when the caller had none (sign-up: the
    anonymous visitor becomes the new owner)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(actor: Actor, *args: Any, **kwargs: Any) -> Any:
            target = next((v for v in kwargs.values() if getattr(v, "public_id", None)), None)
            try:
                with transaction.atomic():
                    result = fn(actor, *args, **kwargs)
                    who = actor
                    if acting_user is not None and actor.user is None:
                        who = dataclasses.replace(actor, user=acting_user(result))
                    record(who, action=action, area=area, resource=_auditable(result) or target,
                           details=_batch(result))
                return result
            except Exception as exc:
                if not isinstance(exc, DomainError):
                    log.exception("service %s failed", action)
                record(actor, action=action, area=area, resource=target, result=AuditRecord.RESULT_ERROR, error=exc)
                raise

        wrapper.audit_action = action
        return wrapper

    return decorate


def _auditable(result: Any) -> Any:
    """Services may return (obj, extra) pairs (a key pair and its one-time private key) or a
    list (a batch create: the first is recorded, all are listed in the details)."""
    if isinstance(result, (tuple, list)) and result:
        result = result[0]
    return result if getattr(result, "public_id", None) else None


def _batch(result: Any) -> dict:
    if isinstance(result, list) and len(result) > 1:
        return {"resources": [getattr(r, "public_id", "") for r in result]}
    return {}
