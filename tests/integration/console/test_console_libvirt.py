"""VNC consoles end to end, through each proxy: a real QEMU guest booted by the portal, the
portal under daphne, the `console` process (websockify) next to it, and

- a plain websocket client (websocket-client) that mints a ticket with an API token and goes
  through the RFB handshake up to ServerInit (the guest's desktop name);
- real Chromium on the console page: the noVNC canvas shows the guest's screen (not blank),
  typing a command into the busybox shell changes it, and the command's output (computed by
  the guest) reaches its serial log, so the keystrokes really arrived. Stopping the instance
  closes the console and the page says why. Screenshots stay in var/test-output/.

The module's `daphne_server` runs once per proxy (PORTAL_CONSOLE_PROXY)."""

from __future__ import annotations

import json
import struct
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websocket  # websocket-client
from django.conf import settings

expect = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed").expect

from apps.compute import services as compute  # noqa: E402
from apps.compute.drivers.base import NotFound  # noqa: E402
from apps.compute.drivers.libvirt import LibvirtDriver  # noqa: E402
from apps.compute.models import Instance  # noqa: E402
from apps.compute.tasks import serial_log_path  # noqa: E402
from apps.console.models import ConsoleSession  # noqa: E402
from apps.core.models import AuditRecord  # noqa: E402
from apps.tenants import services as tenants  # noqa: E402
from apps.tenants.models import ApiToken, Membership  # noqa: E402
from tests.factories.tenants import PASSWORD, actor_for, make_tenant  # noqa: E402
from tests.integration.conftest import _stop, live_env, loopback_listener, serve_portal, spawn  # noqa: E402
from tests.integration.pages import sign_in  # noqa: E402

pytestmark = [pytest.mark.libvirt, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BOOT_TIMEOUT = 90  # seconds until BOOT-OK under TCG
SCREEN_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def console_proxy(django_db_setup):
    """`manage.py console_proxy` (the Procfile's `console`) on a loopback socket handed over."""
    listener = loopback_listener()
    port = listener.getsockname()[1]
    try:
        process, log_path = spawn([sys.executable, "manage.py", "console_proxy", "--fd", str(listener.fileno())],
                                  log_name="console-proxy", env=live_env(), pass_fds=(listener.fileno(),))
    finally:
        listener.close()
    deadline = time.monotonic() + 30
    while "listening" not in log_path.read_text(errors="replace"):
        assert process.poll() is None, log_path.read_text(errors="replace")
        assert time.monotonic() < deadline, "the console proxy did not start"
        time.sleep(0.1)
    yield f"ws://127.0.0.1:{port}/"
    _stop(process)


@pytest.fixture(scope="module", params=["channels", "websockify"])
def daphne_server(request, django_db_setup, console_proxy):
    with serve_portal(f"console-{request.param}", PORTAL_CONSOLE_PROXY=request.param,
                      PORTAL_CONSOLE_PROXY_URL=console_proxy) as server:
        server.proxy = request.param
        yield server


@pytest.fixture
def booted(tiny_image, libvirt_driver):
    """A tenant whose owner has a running tiny guest that reached its shell (BOOT-OK)."""
    tenant = make_tenant("Console Tenant", owner_username="consoleowner")
    owner = actor_for(Membership.objects.get(tenant=tenant))
    [instance] = compute.create_instances(owner, name="console-vm", flavor="t1.nano", image=tiny_image.public_id)
    instance.refresh_from_db()
    try:
        assert instance.status == Instance.RUNNING, (instance.status, instance.status_reason)
        log = serial_log_path(instance)
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not (log.exists() and "BOOT-OK" in log.read_text(errors="replace")):
            assert time.monotonic() < deadline, "the guest did not boot"
            time.sleep(0.5)
        yield owner, instance
    finally:
        instance.refresh_from_db()
        if instance.status not in (Instance.DELETING, Instance.DELETED):
            compute.delete_instance(owner, instance=instance)
        libvirt_driver.delete_domain(instance.public_id, missing_ok=True)
        with pytest.raises(NotFound):
            LibvirtDriver(settings.PORTAL_LIBVIRT_URI).domain_info(instance.public_id)


class Stream:
    """Exact reads over a websocket whose binary messages split the RFB stream anywhere."""

    def __init__(self, ws):
        self.ws, self.buffer = ws, b""

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self.ws.recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def test_rfb_handshake_with_an_api_token(booted, daphne_server):
    owner, instance = booted
    _, secret = tenants.create_api_token(owner, name="vnc client", scope=ApiToken.READ_WRITE)
    request = urllib.request.Request(f"{daphne_server.url}/api/v1/instances/{instance.public_id}/console",
                                     method="POST", headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        grant = json.load(response)
    url = grant["url"] if daphne_server.proxy == "channels" else grant["websockify_url"]
    ws = websocket.create_connection(url, subprotocols=grant["protocols"], origin=daphne_server.url, timeout=10,
                                     header=[f"Authorization: Bearer {secret}"])
    try:
        rfb = Stream(ws)
        assert rfb.read(12) == b"RFB 003.008\n"
        ws.send_binary(b"RFB 003.008\n")
        types = rfb.read(rfb.read(1)[0])
        assert 1 in types, f"QEMU offers no 'None' security: {types!r}"  # VNC listens on loopback only
        ws.send_binary(b"\x01")
        assert rfb.read(4) == b"\x00\x00\x00\x00"  # SecurityResult OK
        ws.send_binary(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", rfb.read(4))
        rfb.read(16)  # pixel format
        name = rfb.read(struct.unpack(">I", rfb.read(4))[0]).decode()
        print(f"{daphne_server.proxy}: ServerInit {width}x{height} {name!r}")
        assert width > 0 and height > 0 and instance.public_id in name
    finally:
        ws.close()
    session = _closed_session(instance)
    assert (session.proxy, session.status) == (daphne_server.proxy, "closed")
    assert session.bytes_to_guest >= 14 and session.bytes_to_client > 24
    assert AuditRecord.objects.filter(action="instance.console_session", resource_id=instance.public_id).exists()


def _closed_session(instance, timeout: float = 10) -> ConsoleSession:
    deadline = time.monotonic() + timeout
    while True:
        session = ConsoleSession.objects.filter(instance=instance).exclude(status="issued").first()
        if session is not None and session.status == "closed" or time.monotonic() > deadline:
            return session
        time.sleep(0.2)


CANVAS_STATS = """() => {
  const canvas = document.querySelector('#console-screen canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0, hash = 0;
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i] + data[i + 1] + data[i + 2];
    if (v > 60) lit++;
    hash = (hash * 31 + v) | 0;
  }
  return {width: canvas.width, height: canvas.height, lit, hash};
}"""


def _serial_has(instance, text: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in serial_log_path(instance).read_text(errors="replace"):
            return True
        time.sleep(0.3)
    return False


# Playwright's keyboard.type() sends "$" as Digit4 without Shift; noVNC forwards scancodes to
# QEMU, which would then see "4". A person holds Shift: so do we.
SHIFTED = {"$": "Digit4", "(": "Digit9", ")": "Digit0", "*": "Digit8", ">": "Period", "|": "Backslash"}


def type_like_a_person(page, text: str) -> None:
    for char in text:
        if char in SHIFTED or char.isupper():
            page.keyboard.press(f"Shift+{SHIFTED.get(char) or 'Key' + char}")
        else:
            page.keyboard.press("Enter" if char == "\n" else char)
        page.wait_for_timeout(20)


@pytest.mark.browser
def test_console_page_shows_and_drives_the_guest_screen(booted, daphne_server, page, output_dir: Path):
    owner, instance = booted
    sign_in(page, "consoleowner", PASSWORD)
    page.goto(f"/instances/{instance.public_id}/")
    page.get_by_test_id("open-console").click()
    expect(page).to_have_url(f"{daphne_server.url}/instances/{instance.public_id}/console/")
    expect(page.get_by_test_id("console-state")).to_have_text("Connected", timeout=SCREEN_TIMEOUT_MS)

    # The guest's text console: some pixels lit (text), on a screen of the guest's size.
    page.wait_for_function(f"({CANVAS_STATS})().lit > 500", timeout=SCREEN_TIMEOUT_MS)
    before = page.evaluate(CANVAS_STATS)
    assert before["width"] >= 640 and before["height"] >= 400, before
    page.screenshot(path=str(output_dir / f"console-{daphne_server.proxy}-connected.png"))

    # Keystrokes into the canvas reach the busybox shell on tty1; the guest computes the answer.
    page.locator("#console-screen canvas").click()
    type_like_a_person(page, f"echo typed-$((6*7))-{daphne_server.proxy} > /dev/ttyS0\n")
    assert _serial_has(instance, f"typed-42-{daphne_server.proxy}"), "the typed command never ran in the guest"
    page.wait_for_function(f"({CANVAS_STATS})().hash !== {before['hash']}", timeout=SCREEN_TIMEOUT_MS)

    # The same through "Send text" (keysyms, not scancodes).
    page.locator("#console-text").fill("echo sent-$((2+3)) > /dev/ttyS0\n")
    page.get_by_role("button", name="Send text").click()
    assert _serial_has(instance, "sent-5"), "the text sent from the page never ran in the guest"
    page.screenshot(path=str(output_dir / f"console-{daphne_server.proxy}-typed.png"))

    # Stopped behind the console: it closes, and reconnecting says why.
    compute.stop_instance(owner, instance=instance, force=True)
    expect(page.get_by_test_id("console-state")).to_have_text("Disconnected", timeout=SCREEN_TIMEOUT_MS)
    page.get_by_role("button", name="Reconnect").click()
    expect(page.get_by_test_id("console-message")).to_have_text(
        f"Instance {instance.public_id} is stopped: start it to use its console.")
    page.screenshot(path=str(output_dir / f"console-{daphne_server.proxy}-stopped.png"))

    session = _closed_session(instance)
    assert session.proxy == daphne_server.proxy
    assert session.bytes_to_client > 2_000 and session.bytes_to_guest > 100
