"""Console relay: what the two VNC console proxies cost, against the guest's own VNC server
measured in the same run, on one t1.nano guest of the tiny image made through the services.

(a) Click Console → first screen: real Chromium (Playwright, headless), signed in as the owner on
the instance's page, from the click on `open-console` until the noVNC canvas shows the guest's
text (lit pixels) and until the page says "Connected"; daphne with PORTAL_CONSOLE_PROXY=channels,
and with =websockify next to `manage.py console_proxy`. Baseline: a socket to the guest's VNC
port, RFB handshake (≈ "Connected") up to the first complete FramebufferUpdate.

(b) Relay throughput: a small RFB client (websocket-client through each proxy, a socket direct)
asks K times for the full screen in Raw and reads each update to its last byte; MB/s overall and
while an update streams, proxy/direct. bench/README.md has the details.

    .venv/bin/python bench/console_relay.py [--runs 5] [--updates 30]     # libvirtd running

Prints figures only; timings are never asserted. Everything it starts or creates is removed on
exit, also on failure and SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from statistics import median

from _setup import ROOT, Throwaway, machine, table

PROXIES = ("channels", "websockify")
PATHS = ("direct", *PROXIES)
BOOT_TIMEOUT = 180  # seconds; a TCG guest boots in ~6
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Before the page's scripts, on every page: the wall-clock time the state tag turns "Connected".
CONNECTED_WATCH = """new MutationObserver(() => {
  const tag = document.querySelector('[data-testid=console-state]');
  if (tag && tag.textContent === 'Connected' && !window.__connectedAt) window.__connectedAt = Date.now();
}).observe(document, {subtree: true, childList: true, characterData: true});"""
# Polled every animation frame: more than 500 lit pixels on the canvas is the guest's text.
LIT_CANVAS = """() => {
  const canvas = document.querySelector('#console-screen canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0, lit = 0; i < data.length; i += 4) {
    if (data[i] + data[i + 1] + data[i + 2] > 60 && ++lit > 500) return (window.__litAt = Date.now());
  }
  return false;
}"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed console openings per path (N)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed openings per path first")
    parser.add_argument("--updates", type=int, default=30, help="full-screen updates per series (K)")
    parser.add_argument("--rounds", type=int, default=3, help="throughput series per path")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a screen")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    # Playwright's sync API keeps an asyncio loop running in this thread; the ORM calls here are
    # plain synchronous ones (the children do not get this variable).
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    # Room over the session limits (read at settings import, here and in the children): a
    # session a proxy closes late must not fail the next run.
    for name in ("PORTAL_CONSOLE_MAX_PER_USER", "PORTAL_CONSOLE_MAX_PER_INSTANCE"):
        os.environ.setdefault(name, "50")
    with Throwaway(name="console", libvirt=True) as state:
        return Bench(args, state).run()


class Rfb:
    """Just enough of an RFB 3.8 client: security None, shared, Raw only, full-screen updates.
    `streaming` adds up, per update, the time from its first chunk to its last byte; the rest of
    an update's time is the wait for the server's answer (QEMU answers on its display refresh)."""

    def __init__(self, recv, send, close):
        self.recv, self.send, self.close = recv, send, close
        self.buffer, self.received, self.streaming = bytearray(), 0, 0.0

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            chunk = self.recv()
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
            self.received += len(chunk)

    def read(self, size: int) -> bytes:
        self._fill(size)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def handshake(self) -> None:
        version = self.read(12)
        self.send(b"RFB 003.008\n")
        types = self.read(self.read(1)[0])
        self.send(b"\x01")  # security type None
        if not version.startswith(b"RFB 003.") or self.read(4) != bytes(4):
            raise RuntimeError(f"RFB handshake failed ({version!r}, security types {list(types)})")
        self.send(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", self.read(4))
        self.pixel_bytes = self.read(16)[0] // 8  # bits per pixel of the server's format
        self.read(struct.unpack(">I", self.read(4))[0])  # desktop name
        self.send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only

    def update(self) -> None:
        """One non-incremental full-screen update, read to its last byte."""
        self.send(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))
        self._fill(1)
        first_chunk = time.perf_counter()
        while (kind := self.read(1)[0]) != 0:
            if kind != 2:  # Bell carries nothing; nothing else comes unasked
                raise RuntimeError(f"unexpected RFB server message {kind}")
        for _ in range(struct.unpack(">xH", self.read(3))[0]):
            _, _, width, height, encoding = struct.unpack(">HHHHi", self.read(12))
            if encoding != 0:
                raise RuntimeError(f"rectangle in encoding {encoding}; only Raw was asked for")
            self._fill(size := width * height * self.pixel_bytes)
            del self.buffer[:size]
        self.streaming += time.perf_counter() - first_chunk


def healthz(port: int, _log) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


class Bench:
    def __init__(self, args, state):
        self.args, self.state = args, state
        self.children: list[tuple[str, subprocess.Popen, object]] = []  # name, process, log path
        self.actor = None

    def setup(self) -> None:
        import io

        import cloudportal.settings as project
        from django.conf import global_settings, settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import override_settings
        from django_q.conf import Conf

        from apps.compute import services as compute
        from apps.compute.hypervisors import get_compute_driver
        from apps.compute.models import Host, Image, Instance
        from apps.compute.tasks import serial_log_path
        from apps.core.actor import Actor
        from apps.tenants import services as tenants
        from apps.tenants.models import ApiToken, Membership

        if not (self.state.tiny_source / "manifest.json").exists():
            raise RuntimeError("the tiny image is not built: run scripts/build_tiny_image.sh")
        Conf.SYNC = True  # PORTAL_TASKS_SYNC=1 here too (Throwaway drops it): provisioning runs inline
        call_command("seed_compute", stdout=io.StringIO(), stderr=(err := io.StringIO()))
        if (host := Host.objects.filter(uri=settings.PORTAL_LIBVIRT_URI).first()) is None:
            raise RuntimeError(f"libvirt at {settings.PORTAL_LIBVIRT_URI} did not answer: {err.getvalue().strip()}")
        self.password = secrets.token_urlsafe(16)
        # The daphnes check it with the project's hashers, not with the bench's fast MD5.
        with override_settings(PASSWORD_HASHERS=getattr(project, "PASSWORD_HASHERS",
                                                        global_settings.PASSWORD_HASHERS)):
            owner = get_user_model().objects.create_user("bench-owner", "owner@bench.test", self.password)
        tenant = tenants.create_tenant(Actor.system(), name="Bench tenant", owner=owner)
        member = Membership.objects.get(tenant=tenant, user=owner)
        self.actor = Actor(user=owner, via="bench").with_tenant(tenant, member.role, frozenset(member.policies))
        _, self.token = tenants.create_api_token(self.actor, name="bench", scope=ApiToken.READ_WRITE)
        image = Image.objects.get(boot=Image.KERNEL, status=Image.ACTIVE)
        [self.instance] = compute.create_instances(self.actor, name="console-bench", flavor="t1.nano",
                                                   image=image.public_id)
        self.instance.refresh_from_db()
        if self.instance.status != Instance.RUNNING:
            raise RuntimeError(f"{self.instance.public_id} is {self.instance.status}: {self.instance.status_reason}")
        log, deadline = serial_log_path(self.instance), time.monotonic() + BOOT_TIMEOUT
        while not (log.exists() and b"BOOT-OK" in log.read_bytes()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no BOOT-OK in {log.name} after {BOOT_TIMEOUT}s")
            time.sleep(0.2)
        info = get_compute_driver(host.uri).domain_info(self.instance.public_id)
        self.vnc = (host.management_address if info.vnc_host in ("", "0.0.0.0", "::") else info.vnc_host,
                    info.vnc_port)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.proxy_port = self.spawn("console-proxy", ["manage.py", "console_proxy", "--fd", "{fd}"],
                                     lambda _port, log: "listening" in log.read_text(errors="replace"))
        self.urls = {proxy: "http://127.0.0.1:%d" % self.spawn(
            f"daphne-{proxy}", ["-m", "daphne", "--fd", "{fd}", "cloudportal.asgi:application"], healthz,
            PORTAL_CONSOLE_PROXY=proxy, PORTAL_CONSOLE_PROXY_URL=f"ws://127.0.0.1:{self.proxy_port}/")
            for proxy in PROXIES}
        print(f"console relay: {self.instance.public_id} (t1.nano, {host.effective_virt_type}), VNC "
              f"{self.vnc[0]}:{self.vnc[1]}, {self.args.runs} runs + {self.args.warmup} warm-up, "
              f"{self.args.rounds}x{self.args.updates} updates, {self.state.describe()}, {machine()}")

    def spawn(self, name: str, command: list[str], ready, **env: str) -> int:
        """A portal process on a loopback socket bound here and handed over (no port race), on
        this process's database, VAR_DIR and libvirt dir; its port, once `ready` says so."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port, log = listener.getsockname()[1], self.state.tmp / f"{name}.log"
        child_env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE",
                                                                      "PORTAL_BEHIND_TLS_PROXY")}
        child_env.update(DJANGO_SETTINGS_MODULE="cloudportal.settings", PORTAL_TASKS_SYNC="1",
                         PYTHONUNBUFFERED="1", **env)
        try:
            with log.open("w") as out:
                process = subprocess.Popen([sys.executable, *(a.format(fd=listener.fileno()) for a in command)],
                                           cwd=ROOT, env=child_env, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),))
        finally:
            listener.close()  # the child holds its own copy
        self.children.append((name, process, log))
        deadline = time.monotonic() + 60
        while not ready(port, log):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.2)
        return port

    # -- the paths ------------------------------------------------------------------------
    def open_rfb(self, path: str) -> Rfb:
        """Straight to the guest's VNC port, or a websocket through a proxy with a new ticket."""
        import websocket  # websocket-client

        from apps.console.services import issue_ticket

        if path == "direct":
            sock = socket.create_connection(self.vnc, timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return Rfb(lambda: sock.recv(1 << 18), sock.sendall, sock.close)
        ticket = issue_ticket(self.actor, instance=self.instance)
        url = (f"ws://127.0.0.1:{self.proxy_port}/" if path == "websockify"
               else f"{self.urls[path].replace('http', 'ws', 1)}/ws/console/{self.instance.public_id}/")
        ws = websocket.create_connection(url, subprotocols=["binary", f"ticket.{ticket.secret}"], timeout=30,
                                         origin=self.urls[path], header=[f"Authorization: Bearer {self.token}"])
        return Rfb(ws.recv, ws.send_binary, ws.close)

    def wait_closed(self) -> None:
        """The proxy ends the session when its websocket closes; the next run starts without it."""
        from apps.console.models import ConsoleSession

        deadline = time.monotonic() + 15
        while ConsoleSession.objects.filter(instance=self.instance, status=ConsoleSession.OPEN).exists():
            if time.monotonic() > deadline:
                print("  warning: a console session is still open 15 s after its websocket closed")
                return
            time.sleep(0.05)

    def first_update_direct(self) -> dict:
        started = time.perf_counter()
        rfb = self.open_rfb("direct")
        try:
            rfb.handshake()
            connected = time.perf_counter() - started
            rfb.update()
            return {"connected": connected, "lit": time.perf_counter() - started}
        finally:
            rfb.close()

    def first_screen(self, page, proxy: str) -> dict:
        page.goto(f"{self.urls[proxy]}/instances/{self.instance.public_id}/")
        link = page.get_by_test_id("open-console")
        link.wait_for()
        clicked = time.time() * 1000  # the browser's Date.now() reads the same wall clock
        link.click()
        page.wait_for_url("**/console/")
        page.wait_for_function(LIT_CANVAS, polling="raf", timeout=self.args.timeout * 1000)
        lit, connected = page.evaluate("[window.__litAt, window.__connectedAt]")
        page.goto("about:blank")  # closes the websocket
        self.wait_closed()
        return {"connected": (connected - clicked) / 1000 if connected else float("nan"),
                "lit": (lit - clicked) / 1000}

    def throughput(self, path: str) -> dict:
        """K full-screen Raw updates after one untimed (which also carries the setup)."""
        rfb = self.open_rfb(path)
        try:
            rfb.handshake()
            rfb.update()
            before, rfb.streaming, started = rfb.received, 0.0, time.perf_counter()
            for _ in range(self.args.updates):
                rfb.update()
            seconds, size = time.perf_counter() - started, (rfb.received - before) / 1e6
            self.screen = (rfb.width, rfb.height, rfb.pixel_bytes)
        finally:
            rfb.close()
            if path != "direct":
                self.wait_closed()
        return {"mbs": size / seconds, "streaming": size / rfb.streaming, "update": seconds / self.args.updates,
                "wait": (seconds - rfb.streaming) / self.args.updates}

    def open_browser(self, playwright):
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                                             timeout=60_000)
        pages = {}
        for proxy in PROXIES:  # a profile per daphne: cookies ignore the port
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(self.args.timeout * 1000)
            context.add_init_script(CONNECTED_WATCH)
            page = pages[proxy] = context.new_page()
            page.goto(f"{self.urls[proxy]}/login/")
            form = page.locator("form:has(input[name=username])")
            form.locator("input[name=username]").fill("bench-owner")
            form.locator("input[name=password]").fill(self.password)
            form.get_by_role("button", name="Sign in").click()
            page.get_by_test_id("whoami").wait_for()
        return browser, pages

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> int:
        from playwright.sync_api import sync_playwright

        first, rates = {path: [] for path in PATHS}, {path: [] for path in PATHS}
        try:
            self.setup()
            with sync_playwright() as playwright:
                browser, pages = self.open_browser(playwright)
                try:
                    for n in range(self.args.warmup + self.args.runs):
                        results = {path: self.first_update_direct() if path == "direct"
                                   else self.first_screen(pages[path], path) for path in rotated(PATHS, n)}
                        label = "warm-up" if n < self.args.warmup else f"run {n - self.args.warmup + 1}"
                        print(f"  {label:<8} " + ", ".join(f"{p} {results[p]['lit']:.3f}s" for p in PATHS))
                        for path in PATHS if n >= self.args.warmup else ():
                            first[path].append(results[path])
                finally:
                    browser.close()
            for n in range(self.args.rounds):
                for path in rotated(PATHS, n):
                    rates[path].append(self.throughput(path))
        except Exception as exc:
            print(f"FAILED: {type(exc).__name__}: {exc}")
            for name, _, log in self.children:
                print(f"--- tail of {name} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
            return 1
        finally:
            self.cleanup()
        self.report(first, rates)
        return 0

    def report(self, first, rates) -> None:
        labels = {"direct": "direct VNC (TCP)", "channels": "channels proxy", "websockify": "websockify proxy"}
        base = median(r["lit"] for r in first["direct"])
        rows = []
        for path in PATHS:
            lit = [r["lit"] for r in first[path]]
            rows.append([labels[path], f"{median(lit):.3f}", f"{min(lit):.3f}", f"{max(lit):.3f}",
                         f"{median(r['connected'] for r in first[path]):.3f}",
                         f"{median(lit) - base:+.3f}"])
        print(f"\n(a) seconds to the first screen, {self.args.runs} runs each; proxies: click on Console → noVNC "
              f"canvas lit in Chromium; direct: TCP connect → first FramebufferUpdate read")
        print(table(rows, ["path", "p50", "min", "max", "Connected p50", "p50 - direct"]))
        width, height, pixel_bytes = self.screen
        base = {key: median(r[key] for r in rates["direct"]) for key in ("mbs", "streaming")}
        rows = []
        for path in PATHS:
            mbs, streaming = ([r[key] for r in rates[path]] for key in ("mbs", "streaming"))
            rows.append([labels[path], f"{median(mbs):.1f} ({min(mbs):.1f}-{max(mbs):.1f})",
                         f"{median(mbs) / base['mbs']:.2f}x", f"{median(r['update'] for r in rates[path]) * 1000:.0f}",
                         f"{median(r['wait'] for r in rates[path]) * 1000:.0f}", f"{median(streaming):.1f}",
                         f"{median(streaming) / base['streaming']:.2f}x"])
        print(f"\n(b) relay throughput: Raw {width}x{height}x{pixel_bytes} B = "
              f"{width * height * pixel_bytes / 1e6:.2f} MB per update, {self.args.updates} updates per series, "
              f"median (min-max) of {self.args.rounds} series; wait = request → first chunk, streaming = first "
              f"chunk → last byte")
        print(table(rows, ["path", "MB/s", "x direct", "ms/update", "ms wait", "MB/s streaming", "x direct"]))

    def cleanup(self) -> None:
        """Children by PID, then every instance row through the portal's delete (tasks inline),
        then each domain looked up again and removed directly if it is still there."""
        from django.conf import settings

        from apps.compute import services as compute
        from apps.compute.drivers.base import NotFound
        from apps.compute.hypervisors import get_compute_driver
        from apps.compute.models import Instance

        for name, process, _ in self.children:
            process.terminate()  # a no-op once it has exited
        for name, process, _ in self.children:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"  cleanup: {name} (pid {process.pid}) ignored SIGTERM; killing it")
                process.kill()
                process.wait(timeout=15)
        driver = get_compute_driver(settings.PORTAL_LIBVIRT_URI)
        for instance in Instance.objects.all():  # a create that failed half-way leaves a row too
            try:
                if self.actor and instance.status not in (Instance.DELETING, Instance.DELETED):
                    compute.delete_instance(self.actor, instance=instance)
                driver.domain_info(instance.public_id)
            except NotFound:
                continue
            except Exception as exc:
                print(f"  cleanup: portal delete of {instance.public_id} failed ({exc})")
            print(f"  cleanup: domain {instance.public_id} still defined; removing it directly")
            driver.delete_domain(instance.public_id, missing_ok=True)


def rotated(items, n: int):
    return items[n % len(items):] + items[:n % len(items)]


if __name__ == "__main__":
    sys.exit(main())
