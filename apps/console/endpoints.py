"""Websocket URLs of the two console proxies, as a browser or an API client reaches them, and
how a ticket rides along: as a subprotocol `ticket.<secret>` next to `binary`."""

from __future__ import annotations

from django.conf import settings
from django.http.request import split_domain_port


def websocket_urls(request, instance_public_id: str) -> dict[str, str]:
    """`channels`: the portal's own origin. `websockify`: PORTAL_CONSOLE_PROXY_URL, or the
    portal's host name with the console process's port."""
    scheme = "wss" if request.is_secure() else "ws"
    websockify = settings.PORTAL_CONSOLE_PROXY_URL
    if not websockify:
        hostname = split_domain_port(request.get_host())[0]
        websockify = f"{scheme}://{hostname}:{settings.PORTAL_CONSOLE_PROXY_LISTEN.rsplit(':', 1)[1]}/"
    return {
        "channels": f"{scheme}://{request.get_host()}/ws/console/{instance_public_id}/",
        "websockify": websockify,
    }


SUBPROTOCOL_PREFIX = "ticket."


def ticket_from_subprotocols(protocols: list[str]) -> str | None:
    return next((p[len(SUBPROTOCOL_PREFIX):] for p in protocols if p.startswith(SUBPROTOCOL_PREFIX)), None)
