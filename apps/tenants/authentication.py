"""API token authentication: `Authorization: Bearer cpt_…` (or `Token cpt_…`), for the API
(DRF) and for websockets (API clients that bring their own VNC client)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apps.tenants.models import ApiToken, hash_token


def usable_token(secret: str) -> ApiToken | None:
    """The live token of an active user with this secret, its use noted; None otherwise."""
    token = ApiToken.objects.usable().select_related("user", "tenant").filter(token_hash=hash_token(secret)).first()
    if token is None or not token.user.is_active:
        return None
    # At most one write a minute per token: enough to show activity, cheap under load.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2 or not header[1].startswith(ApiToken.SECRET_PREFIX):
            raise exceptions.AuthenticationFailed("Malformed API token.")
        token = usable_token(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenants.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (cpt_…)."}


class WebsocketTokenMiddleware(BaseMiddleware):
    """Websockets without a session user may authenticate with an API token header."""

    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            header = dict(scope.get("headers", ())).get(b"authorization", b"").decode(errors="replace").split()
            if len(header) == 2 and header[0].lower() in ApiTokenAuthentication.keywords:
                token = await database_sync_to_async(usable_token)(header[1])
                if token is not None:
                    scope = {**scope, "user": token.user, "api_token": token}
        return await super().__call__(scope, receive, send)
