"""The `console` process: websockify with the portal's ticket plugin, for operators who serve
consoles from their own hosts (next to the hypervisor network, away from the web nodes).
Stops on SIGTERM/SIGINT."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.console.websockify_proxy import ConsoleProxyServer

log = logging.getLogger("apps.console.proxy")


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--listen wants HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = "Run the websockify console proxy (tickets from the portal's database)."

    def add_arguments(self, parser):
        parser.add_argument("--listen", default=settings.PORTAL_CONSOLE_PROXY_LISTEN,
                            help="HOST:PORT to listen on (PORTAL_CONSOLE_PROXY_LISTEN)")
        parser.add_argument("--fd", type=int, help="serve a listening socket inherited from a supervisor instead")

    def handle(self, *args, listen, fd, **options):
        server = ConsoleProxyServer(None, fd=fd) if fd is not None else ConsoleProxyServer(parse_listen(listen))
        host, port = server.server_address[:2]
        stopping = threading.Event()

        def stop(signum, frame):
            if not stopping.is_set():
                stopping.set()
                threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"console proxy listening on ws://{host}:{port}/", ending="\n")
        self.stdout.flush()
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            server.server_close()
