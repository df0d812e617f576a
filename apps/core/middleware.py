"""Per-request context: a request id, the client address and the Actor for console pages.

The API builds its actor after DRF authentication (apps.core.api.views); pages use this one,
which takes the current tenant from the session (the tenant switcher)."""

from __future__ import annotations

import re
import uuid

from django.conf import settings

from apps.core.actor import Actor

SESSION_TENANT_KEY = "tenant"
API_PREFIX = "/api/"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def forwarded_client_ip(peer: str | None, forwarded: str) -> str | None:
    """The peer address, or the address the trusted proxies saw (PORTAL_TRUSTED_PROXY_COUNT
    hops of X-Forwarded-For). Pages, the API and both console proxies use this."""
    hops = settings.PORTAL_TRUSTED_PROXY_COUNT
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return peer or None


def client_ip(request) -> str | None:
    return forwarded_client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def base_actor(request, *, user=None, via: str = "web", read_only: bool = False) -> Actor:
    user = user if user is not None else getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Actor.anonymous(client_ip=request.client_ip, request_id=request.request_id)
    return Actor(
        user=user,
        is_operator=user.is_staff,
        read_only=read_only,
        client_ip=request.client_ip,
        request_id=request.request_id,
        via=via,
    )


def page_actor(request) -> Actor:
    from apps.tenants.selectors import resolve_actor

    return resolve_actor(base_actor(request), tenant_public_id=request.session.get(SESSION_TENANT_KEY), strict=False)


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.client_ip = client_ip(request)
        # The API builds its actor after DRF authentication (token or session).
        request.actor = None if request.path.startswith(API_PREFIX) else page_actor(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response
