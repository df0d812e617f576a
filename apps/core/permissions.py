"""Object-level checks: the role/policy decision for an area, narrowed or widened for single
resources by django-guardian object permissions.

`view` on a row follows from any permission on it; other actions map to a model permission
`<action>_<model>` when the model declares it (Meta.permissions), else to `change_<model>`
(`delete` maps to `delete_<model>`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from guardian.shortcuts import get_objects_for_user

from apps.core.exceptions import PermissionDenied

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

    from apps.core.actor import Actor


def perm_codename(model: type[Model], action: str) -> str:
    name = model._meta.model_name
    declared = {codename for codename, _ in model._meta.permissions}
    if action in ("view", "delete", "change", "add") or f"{action}_{name}" in declared:
        return f"{action}_{name}"
    return f"change_{name}"


def model_codenames(model: type[Model]) -> list[str]:
    content_type = ContentType.objects.get_for_model(model)
    return list(Permission.objects.filter(content_type=content_type).values_list("codename", flat=True))


def granted_rows(actor: Actor, action: str, rows: QuerySet) -> QuerySet:
    """Rows in `rows` on which the actor's user holds an object permission allowing `action`."""
    if actor.read_only and action != "view":
        return rows.none()
    codenames = model_codenames(rows.model) if action == "view" else [perm_codename(rows.model, action)]
    if not codenames:
        return rows.none()
    return get_objects_for_user(
        actor.user, codenames, klass=rows, any_perm=True, with_superuser=False, accept_global_perms=False
    )


def allows(actor: Actor, obj: Model, action: str) -> bool:
    if actor.allows(obj.area, action):
        return True
    if actor.user is None or actor.tenant is None or getattr(obj, "tenant_id", None) != actor.tenant.pk:
        return False
    if actor.read_only and action != "view":
        return False
    return actor.user.has_perm(f"{obj._meta.app_label}.{perm_codename(type(obj), action)}", obj)


def require(actor: Actor, obj: Model, action: str) -> None:
    """Raise PermissionDenied (403) unless the actor may `action` this object. Callers have
    already fetched `obj` through for_actor(actor, "view"), so it is the actor's tenant's."""
    if not allows(actor, obj, action):
        role = actor.role or "no role"
        raise PermissionDenied(f"Your role ({role}) does not allow '{action}' on {obj._meta.verbose_name}.")


def require_area(actor: Actor, area: str, action: str) -> None:
    if not actor.allows(area, action):
        role = actor.role or "no role"
        what = "read-only token" if actor.read_only and action != "view" else f"role ({role})"
        raise PermissionDenied(f"Your {what} does not allow '{action}' in {area}.")
