"""End-to-end fixtures: the real ASGI application (cloudportal.asgi:application, HTTP and
websockets) served by daphne in a subprocess against the test database, and Debian's
Chromium driven by Playwright's sync API.

- `daphne_server` (per module): `python -m daphne cloudportal.asgi:application`, the same
  command as the Procfile's `web`, with DJANGO_SETTINGS_MODULE=tests.integration.live_settings
  (the project settings pointed at the pytest test database, SQLite file or PostgreSQL). The
  listening socket is bound here on a free loopback port and handed to daphne (`--fd`), so
  there is no port race. Its output goes to var/test-output/daphne-<module>.log and the tail
  of it is added to the report of a failing test. `serve_portal(name, **env)` starts one with
  other settings (a module may override `daphne_server` with it).
- `browser` (per module): Chromium; always closed, even when a test fails.
- `browser_context` / `page` (per test): a fresh browser profile (cookies) per test. On
  failure a screenshot of every open page is kept in var/test-output/. Uncaught JavaScript
  errors, failed static files and 5xx responses fail the test.

Tests using these need the committed data the server can see: mark them
`@pytest.mark.django_db(transaction=True)`.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from apps.compute.drivers.base import Transient
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.models import Host, Image
from tests.integration import second_host
from tests.processes import log_tail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 60  # seconds
DEFAULT_TIMEOUT_MS = 15_000  # Playwright actions and expectations

_reports_key = pytest.StashKey[dict]()


def _output_dir() -> Path:
    path = Path(settings.VAR_DIR) / "test-output"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (fixtures look at it) and add the tail of the
    daphne log to the report of a failed test."""
    report = yield
    item.stash.setdefault(_reports_key, {})[report.when] = report
    server = getattr(item, "funcargs", {}).get("daphne_server")
    if report.failed and isinstance(server, LiveServer):
        report.sections.append((f"daphne log (tail of {server.log_path})", server.log_tail()))
    return report


def _failed(request) -> bool:
    reports = request.node.stash.get(_reports_key, {})
    return any(r.failed for r in reports.values())


@pytest.fixture(autouse=True)
def _server_password_hashers(settings):
    """Hash passwords in this process as the daphne process does. tests/conftest.py switches the
    unit tests to a fast MD5 hasher, which the server (project settings) does not accept: a
    user made here with the factories could not sign in there."""
    import cloudportal.settings as project
    from django.conf import global_settings

    settings.PASSWORD_HASHERS = getattr(project, "PASSWORD_HASHERS", global_settings.PASSWORD_HASHERS)


# --- the server --------------------------------------------------------------------------------

@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 80) -> str:
        return log_tail(self.log_path, lines)


def _get_status(host: str, port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()  # daphne stops gracefully on SIGTERM
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def live_env(**extra: str) -> dict[str, str]:
    """Environment of a portal process the tests start: the project settings on the test
    database (tests.integration.live_settings), tasks run inline."""
    env = {k: v for k, v in os.environ.items() if k not in {"PORTAL_BEHIND_TLS_PROXY", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.integration.live_settings",
        PORTAL_LIVE_TEST_DB_NAME=str(connections["default"].settings_dict["NAME"]),
        PORTAL_VAR_DIR=str(settings.VAR_DIR),
        PORTAL_TASKS_SYNC="1",  # no qcluster next to it: tasks run in the web process
        PORTAL_SIGNUP_ENABLED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(settings.BASE_DIR), env.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def loopback_listener() -> socket.socket:
    """A listening loopback socket on a free port, to hand to a server process (no port race)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener


def spawn(command: list[str], *, log_name: str, env: dict[str, str], pass_fds=()) -> tuple[subprocess.Popen, Path]:
    """Start a server process; its output goes to var/test-output/<log_name>.log."""
    log_path = _output_dir() / f"{log_name}.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT, pass_fds=pass_fds)
    return process, log_path


@contextmanager
def serve_portal(name: str, **extra_env: str) -> Iterator[LiveServer]:
    """The portal's ASGI app under daphne (the Procfile's `web`) on the test database."""
    listener = loopback_listener()
    host, port = listener.getsockname()
    command = [sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), "cloudportal.asgi:application"]
    try:
        process, log_path = spawn(command, log_name=f"daphne-{name}", env=live_env(**extra_env),
                                  pass_fds=(listener.fileno(),))
    finally:
        listener.close()  # daphne holds its own copy
    server = LiveServer(url=f"http://{host}:{port}", process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while _get_status(host, port, "/healthz") != 200:
            if process.poll() is not None:
                raise RuntimeError(f"daphne exited with {process.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not answer /healthz in {SERVER_START_TIMEOUT}s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def daphne_server(request, django_db_setup) -> Iterator[LiveServer]:
    """The portal under daphne for this test module, on the test database the session created."""
    with serve_portal(request.module.__name__.rsplit(".", 1)[-1]) as server:
        yield server


# --- the browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (never a Playwright download), closed when the module is done."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")

    # Playwright's sync API keeps its asyncio loop marked as running in this thread, so Django's
    # async-safety guard would refuse the plain, synchronous ORM calls of the test body and the
    # database flush after each test. There is no real async code in this process (the server
    # is another process), so the guard is lifted while the browser is up, and restored after.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
            try:
                yield chromium
            finally:
                chromium.close()
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        page.on("pageerror", lambda exc: self.items.append(f"JavaScript error on {page.url}: {exc}"))

        def on_response(response):
            if response.status >= 500 or ("/static/" in response.url and response.status >= 400):
                self.items.append(f"{response.status} for {response.request.method} {response.url}")

        page.on("response", on_response)


@pytest.fixture
def browser_context(request, browser, daphne_server):
    """A fresh browser profile on the live server (relative URLs work: page.goto("/members/"))."""
    context = browser.new_context(base_url=daphne_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    problems = _Problems()
    context.on("page", problems.watch)
    try:
        yield context
        if not _failed(request) and problems.items:
            pytest.fail("the browser saw errors:\n" + "\n".join(problems.items))
    finally:
        if _failed(request):
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            for i, open_page in enumerate(context.pages):
                try:
                    open_page.screenshot(path=str(_output_dir() / f"failure-{name}-{i}.png"), full_page=True)
                except Exception:  # the page may be gone; the screenshot is only a help
                    pass
        context.close()


@pytest.fixture
def page(browser_context):
    return browser_context.new_page()


# --- real libvirt ------------------------------------------------------------------------------
# The driver, and the seeded inventory with the tiny image; both skip with the reason when the
# test command did not provide them.

@pytest.fixture
def libvirt_driver() -> LibvirtDriver:
    driver = LibvirtDriver(settings.PORTAL_LIBVIRT_URI)
    try:
        driver.host_capacity()
    except Transient as exc:
        pytest.skip(f"libvirtd not reachable at {settings.PORTAL_LIBVIRT_URI} ({exc}); `make test` starts it")
    return driver


@pytest.fixture(scope="session")
def second_libvirt_host() -> Iterator[second_host.SecondHost]:
    """A second libvirtd on this machine (tests/integration/second_host.py), reached at its
    `uri`, for moves between two real hypervisors; stopped (by PID) after the session."""
    try:
        LibvirtDriver(settings.PORTAL_LIBVIRT_URI).host_capacity()
    except Transient as exc:
        pytest.skip(f"libvirtd not reachable at {settings.PORTAL_LIBVIRT_URI} ({exc}); `make test` starts it")
    try:
        host = second_host.start(_output_dir() / "second-libvirtd.log")
    except second_host.CannotStart as exc:
        pytest.fail(f"the second libvirt host did not start: {exc}", pytrace=False)
    try:
        yield host
    finally:
        second_host.stop(host)


@pytest.fixture
def tiny_image(libvirt_driver) -> Image:
    """Region, zone, the local libvirt host, flavors and the tiny image in the test database
    (`seed_compute`). The test marks its database access (django_db)."""
    call_command("seed_compute")
    image = Image.objects.filter(boot=Image.KERNEL, status=Image.ACTIVE).first()
    if image is None:
        pytest.skip("the tiny image is not built; `make test` builds it (scripts/build_tiny_image.sh)")
    assert Host.objects.filter(uri=settings.PORTAL_LIBVIRT_URI).exists(), "seed_compute did not add the local host"
    return image
