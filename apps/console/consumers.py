"""The same-origin console proxy: `/ws/console/<instance>/` relays a VNC connection.

The ASGI stack has checked the Origin (AllowedHostsOriginValidator) and authenticated the
session or API token. Here: the ticket (subprotocol `ticket.<secret>`, or `?ticket=` for
plain clients) is redeemed through the console service, then bytes flow both ways until one
side closes, the user is idle too long or the periodic recheck says access is gone. The
socket is accepted before the checks so that a refusal carries its close code."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.console import services
from apps.console.endpoints import ticket_from_subprotocols
from apps.console.models import ConsoleSession
from apps.console.relay import Meter
from apps.core.middleware import forwarded_client_ip

READ_CHUNK = 65536
WATCH_INTERVAL = 1.0  # seconds between idle/recheck looks


def _scope_ticket(scope) -> str | None:
    ticket = ticket_from_subprotocols(scope.get("subprotocols", []))
    if ticket is None:
        ticket = (parse_qs(scope.get("query_string", b"").decode(errors="replace")).get("ticket") or [None])[0]
    return ticket


def _peer_ip(scope) -> str | None:
    headers = dict(scope.get("headers", ()))
    client = scope.get("client") or (None,)
    return forwarded_client_ip(client[0], headers.get(b"x-forwarded-for", b"").decode(errors="replace"))


class ConsoleConsumer(AsyncWebsocketConsumer):
    target: services.Target | None = None
    writer: asyncio.StreamWriter | None = None

    async def connect(self):
        self.meter = Meter()
        self.tasks: list[asyncio.Task] = []
        self.end_reason = "Closed by the client."
        await self.accept(subprotocol="binary" if "binary" in self.scope.get("subprotocols", []) else None)
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._end(services.CLOSE_BAD_TICKET, "Sign in (or send an API token) to open a console.")
            return
        try:
            self.target = await database_sync_to_async(services.redeem_ticket)(
                _scope_ticket(self.scope), instance_public_id=self.scope["url_route"]["kwargs"]["instance"],
                user_id=user.pk, peer_ip=_peer_ip(self.scope), proxy=ConsoleSession.CHANNELS)
        except services.ConsoleRefused as exc:
            await self._end(exc.close_code, exc.message)
            return
        try:
            reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port)
        except OSError as exc:
            reason = f"The instance's VNC endpoint did not answer ({exc})."
            session_id, self.target = self.target.session_id, None
            await database_sync_to_async(services.close_session)(session_id, reason=reason)
            await self._end(services.CLOSE_UNREACHABLE, reason)
            return
        self.tasks = [asyncio.create_task(self._pump(reader)), asyncio.create_task(self._watch())]

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data and self.writer is not None:
            self.meter.from_client(bytes_data)
            self.writer.write(bytes_data)
            await self.writer.drain()

    async def disconnect(self, code):
        for task in self.tasks:
            task.cancel()
        if self.writer is not None:
            self.writer.close()
        if self.target is not None:
            await database_sync_to_async(services.close_session)(
                self.target.session_id, reason=self.end_reason,
                bytes_to_guest=self.meter.to_guest, bytes_to_client=self.meter.to_client)

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        """Guest → browser."""
        try:
            while data := await reader.read(READ_CHUNK):
                self.meter.from_guest(data)
                await self.send(bytes_data=data)
        except OSError:
            pass
        await self._end(1000, "The instance's display closed the connection.")

    async def _watch(self) -> None:
        """Idle timeout and the periodic access recheck."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self.meter.idle:
                await self._end(services.CLOSE_IDLE, self.meter.idle_message())
                return
            if self.meter.recheck_due():
                problem = await database_sync_to_async(services.touch_session)(
                    self.target.session_id, bytes_to_guest=self.meter.to_guest, bytes_to_client=self.meter.to_client)
                if problem is not None:
                    await self._end(problem.close_code, problem.message)
                    return

    async def _end(self, code: int, reason: str) -> None:
        self.end_reason = reason
        await self.close(code=code, reason=reason)
