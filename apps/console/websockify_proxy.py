"""The scale-out console proxy: websockify's websocket server with the portal's token plugin.

`manage.py console_proxy` runs it (the `console` process). It redeems the same tickets through
the same service as the channels consumer, checks the Origin against ALLOWED_HOSTS with the
same rule as channels, and relays with the same byte counting, idle timeout and access
recheck. One thread per connection; Django's database connection is per thread and closed
when the connection ends. The ticket never reaches a log line: query strings are cut out."""

from __future__ import annotations

import logging
import re
import select
import socket
from http.server import HTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.db import close_old_connections, connection
from websockify.websockifyserver import WebSockifyRequestHandler

from apps.console import services
from apps.console.endpoints import ticket_from_subprotocols
from apps.console.models import ConsoleSession
from apps.console.relay import Meter
from apps.core.middleware import forwarded_client_ip

log = logging.getLogger(__name__)

READ_CHUNK = 65536
SELECT_TIMEOUT = 1.0  # seconds; also the idle/recheck granularity
CONNECT_TIMEOUT = 5.0
_QUERY = re.compile(r"\?\S*")


class TicketPlugin:
    """websockify token plugin: a token is a console ticket, redeemed by the console service."""

    def __init__(self, src: str | None = None):
        self.source = src  # websockify passes --token-source; tickets live in the database

    def redeem(self, token: str | None, *, peer_ip: str | None) -> services.Target:
        return services.redeem_ticket(token, instance_public_id=None, user_id=None, peer_ip=peer_ip,
                                      proxy=ConsoleSession.WEBSOCKIFY)


def origin_allowed(origin: str | None) -> bool:
    """The channels proxy's rule (AllowedHostsOriginValidator): the Origin's host must be one
    of ALLOWED_HOSTS."""
    hosts = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return OriginValidator(None, hosts).valid_origin(urlparse(origin.lower()) if origin else None)


class ConsoleRequestHandler(WebSockifyRequestHandler):
    def log_message(self, format, *args):
        log.info("%s %s", self.client_address[0], _QUERY.sub("?…", format % args))

    def handle_upgrade(self):
        if not origin_allowed(self.headers.get("Origin")):
            self.send_error(403, "Origin not allowed")
            return
        super().handle_upgrade()

    def _ticket(self) -> str | None:
        protocols = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        ticket = ticket_from_subprotocols(protocols)
        if ticket is None:
            query = parse_qs(urlparse(self.path).query)
            ticket = (query.get("ticket") or query.get("token") or [None])[0]
        return ticket

    def new_websocket_client(self):
        close_old_connections()
        try:
            self._serve()
        finally:
            connection.close()

    def _serve(self) -> None:
        peer = forwarded_client_ip(self.client_address[0], self.headers.get("X-Forwarded-For", ""))
        try:
            target = self.server.token_plugin.redeem(self._ticket(), peer_ip=peer)
        except services.ConsoleRefused as exc:
            raise self.CClose(exc.close_code, exc.message)
        meter = Meter()
        reason = "Closed by the client."
        try:
            guest = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            reason = f"The instance's VNC endpoint did not answer ({exc})."
            services.close_session(target.session_id, reason=reason)
            raise self.CClose(services.CLOSE_UNREACHABLE, reason)
        try:
            guest.settimeout(None)
            guest.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reason = self._relay(guest, meter, target)
        except self.CClose as close:
            reason = close.args[1]
            raise
        finally:
            guest.close()
            services.close_session(target.session_id, reason=reason, bytes_to_guest=meter.to_guest,
                                   bytes_to_client=meter.to_client)

    def _relay(self, guest: socket.socket, meter: Meter, target: services.Target) -> str:
        """Move bytes both ways; return when the client closed, raise CClose to close it."""
        to_guest = bytearray()
        while True:
            writers = ([guest] if to_guest else []) + ([self.request] if self.send_parts else [])
            readable, writable, _ = select.select([self.request, guest], writers, [], SELECT_TIMEOUT)
            if self.request in writable:
                self.send_frames()
            if guest in writable:
                del to_guest[:guest.send(to_guest)]
            if self.request in readable:
                frames, closed = self.recv_frames()
                for frame in frames:
                    meter.from_client(frame)
                    to_guest += frame
                if closed:
                    guest.sendall(to_guest)
                    return "Closed by the client."
            if guest in readable:
                data = guest.recv(READ_CHUNK)
                if not data:
                    while self.send_frames():
                        select.select([], [self.request], [], SELECT_TIMEOUT)
                    raise self.CClose(1000, "The instance's display closed the connection.")
                meter.from_guest(data)
                self.send_frames([data])
            if meter.idle:
                raise self.CClose(services.CLOSE_IDLE, meter.idle_message())
            if meter.recheck_due():
                problem = services.touch_session(target.session_id, bytes_to_guest=meter.to_guest,
                                                 bytes_to_client=meter.to_client)
                if problem is not None:
                    raise self.CClose(problem.close_code, problem.message)


class ConsoleProxyServer(ThreadingMixIn, HTTPServer):
    """websockify's request handler on a threading HTTP server (no fork: Django stays sane)."""

    daemon_threads = True
    allow_reuse_address = True
    only_upgrade = True  # websockets only, no static files

    def __init__(self, address: tuple[str, int] | None, *, fd: int | None = None,
                 token_plugin: TicketPlugin | None = None):
        """Listen on `address`, or on the already listening socket `fd` (a supervisor's)."""
        self.token_plugin = token_plugin or TicketPlugin()
        super().__init__(address or ("127.0.0.1", 0), ConsoleRequestHandler, bind_and_activate=fd is None)
        if fd is not None:
            self.socket.close()
            self.socket = socket.socket(fileno=fd)
            self.server_address = self.socket.getsockname()
