"""Live events for pages and API clients: joins `tenant-<id>` for the current tenant (checked
against the user's memberships) and `user-<id>`, then forwards `portal.event` messages as JSON.
The current tenant is the session's (tenant switcher) for pages; for API tokens, the token's
tenant, else the `X-Tenant-ID` header, else the user's first, as in the REST API. No business
logic here."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.events import tenant_group, user_group

CLOSE_UNAUTHENTICATED = 4401


class EventsConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self):
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        tenant_id = await self._current_tenant_id(user)
        self.groups_joined = [user_group(user.pk)] + ([tenant_group(tenant_id)] if tenant_id else [])
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def portal_event(self, message):
        await self.send_json(message["payload"])

    @database_sync_to_async
    def _current_tenant_id(self, user) -> int | None:
        from apps.core.actor import Actor
        from apps.core.middleware import SESSION_TENANT_KEY
        from apps.tenants.selectors import resolve_actor

        token = self.scope.get("api_token")
        if token is not None:
            headers = dict(self.scope.get("headers", ()))
            wanted = token.tenant.public_id if token.tenant_id else headers.get(b"x-tenant-id", b"").decode() or None
            actor = resolve_actor(Actor(user=user, via="token"), tenant_public_id=wanted, strict=False)
            # A tenant the user is not in gets no tenant events (the REST API answers 400).
            if wanted and (actor.tenant is None or actor.tenant.public_id != wanted):
                return None
            return actor.tenant_id
        session = self.scope.get("session")
        wanted = session.get(SESSION_TENANT_KEY) if session is not None else None
        return resolve_actor(Actor(user=user, via="web"), tenant_public_id=wanted, strict=False).tenant_id
