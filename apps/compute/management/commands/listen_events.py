"""The `events` process: one libvirt event connection per host, lifecycle events applied to
the instances as they happen (no polling). Reconnects when a host goes away and picks up
hosts added later. Stops on SIGTERM/SIGINT."""

import logging
import signal
import threading

from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections

from apps.compute import services
from apps.compute.drivers.base import DriverError
from apps.compute.hypervisors import get_compute_driver
from apps.compute.models import Host

log = logging.getLogger("apps.compute.events")
RECONNECT_SECONDS = 5
HOST_SCAN_SECONDS = 30


def apply(event, uri: str) -> None:
    """Runs on libvirt's event-loop thread: its database connection is closed after each event
    (events are rare; a connection idling on that thread would outlive the process's own)."""
    try:
        services.apply_domain_event(event, host_uri=uri)
    except Exception:  # one bad event must not end the host's listener
        log.exception("could not apply %s", event)
    finally:
        connections.close_all()


def watch(uri: str, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            try:
                log.info("listening to %s", uri)
                get_compute_driver(uri).watch_events(lambda event: apply(event, uri), stop)
            except DriverError as exc:
                log.warning("%s: %s; retrying in %ss", uri, exc, RECONNECT_SECONDS)
                stop.wait(RECONNECT_SECONDS)
    finally:
        connections.close_all()  # this thread's database connections


class Command(BaseCommand):
    help = "Listen to libvirt domain events on every host and update instances."

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        threads: dict[str, threading.Thread] = {}
        while not stop.is_set():
            for uri in Host.objects.values_list("uri", flat=True):
                if uri not in threads or not threads[uri].is_alive():
                    threads[uri] = threading.Thread(target=watch, args=(uri, stop), name=f"events {uri}", daemon=True)
                    threads[uri].start()
            close_old_connections()
            stop.wait(HOST_SCAN_SECONDS)
        for thread in threads.values():
            thread.join(timeout=5)
