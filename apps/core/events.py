"""Live events for open pages: published to the channels group `tenant-<id>` (and
`user-<id>`) after the transaction commits, so a page never sees a state that rolled back."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def tenant_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def _send(group: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "portal.event", "payload": payload})
    except Exception:  # live updates are best effort: the page reloads state on reconnect
        log.warning("could not publish event to %s", group, exc_info=True)


def publish(tenant_id: int | None, payload: dict) -> None:
    """Send `payload` (JSON-able, with a `type`) to the tenant's open pages on commit."""
    if tenant_id is None:
        return
    transaction.on_commit(lambda: _send(tenant_group(tenant_id), payload))
