"""Checks every area's services share: names people type, references to objects by id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core.exceptions import NotFound, ValidationFailed

if TYPE_CHECKING:
    from apps.core.actor import Actor

NAME_MAX = 128


def clean_name(name: str, field: str = "name") -> str:
    """A trimmed name of 1 to NAME_MAX printable characters, or a 400 on `field`."""
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationFailed(
            f"A {field} of 1 to {NAME_MAX} printable characters is required.",
            fields={field: [f"1 to {NAME_MAX} printable characters."]},
        )
    return name


def lookup(actor: Actor, queryset, ref: str, *, field: str, label: str, key: str = "public_id"):
    """The object the actor may use that `ref` names (by public id, or `key`), else a 404 on
    `field`: another tenant's object and a missing one look the same."""
    obj = queryset.for_actor(actor).filter(**{key: ref}).first()
    if obj is None:
        raise NotFound(f"No {label} {ref}.", fields={field: [f"Unknown {label}."]})
    return obj
