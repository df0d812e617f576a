"""A local stand-in for Stripe, for tests: the portal's stripe client reaches it through
PORTAL_STRIPE_API_BASE.

- `/v1/checkout/sessions` (create, retrieve, expire) is served here (localstripe has no Checkout),
  honouring idempotency keys as Stripe does: the same key on the same path gets the first answer.
- every other `/v1/...` request (customers...) is passed to a real `localstripe` process, bound to
  127.0.0.1 on a free port, with a fresh store (its pickle file is never read or written).
- the hosted checkout page is `/pay/<session id>` (the session's `url`): the amount and a "Pay"
  button (id `pay`). Paying marks the session paid, POSTs a signed `checkout.session.completed`
  event to `webhook_url` (as Stripe signs: HMAC-SHA256 of "{t}.{body}" in `Stripe-Signature`),
  then redirects the browser to the session's success_url.

Every `/v1` request is recorded (method, path, form fields, Idempotency-Key, Authorization), and
every webhook delivery with the portal's answer:

    with StripeStandIn(tmp_path, webhook_url=live_server.url + "/billing/webhooks/stripe") as stand_in:
        settings.PORTAL_STRIPE_API_BASE = stand_in.api_base
        settings.PORTAL_STRIPE_SECRET_KEY = stand_in.secret_key
        settings.PORTAL_STRIPE_WEBHOOK_SECRET = stand_in.webhook_secret
        ...                                       # the portal opens a checkout
        stand_in.checkout_creates()               # what it asked for
        stand_in.pay(session_id)                  # what the Pay button does, without a browser
        stand_in.redeliver()                      # the last event again (same id)
"""

from __future__ import annotations

import html
import http.client
import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from tests.processes import free_port, log_tail

# localstripe's aiohttp app on 127.0.0.1 only (its own `start()` listens on every interface),
# with its store kept in memory (by default it shares one pickle file in the temp folder with any other run).
LAUNCHER = """
import sys
from aiohttp import web
from localstripe import resources, server
resources.Store.dump_to_disk = lambda self: None
web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
START_TIMEOUT = 20  # seconds
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf",
                "xof", "xpf"}


@dataclass(frozen=True)
class Recorded:
    """One API request the stand-in received."""

    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str
    authorization: str


@dataclass(frozen=True)
class Delivery:
    """One webhook POST: the event sent and the portal's answer."""

    event: dict[str, Any]
    status: int
    body: str


@dataclass
class StripeStandIn:
    workdir: Path
    webhook_url: str = ""
    secret_key: str = field(default_factory=lambda: f"sk_test_{secrets.token_hex(12)}")
    webhook_secret: str = field(default_factory=lambda: f"whsec_{secrets.token_hex(16)}")
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[int, bytes]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._localstripe: subprocess.Popen | None = None
        self.localstripe_port = 0
        self.log = self.workdir / "localstripe.log"

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> StripeStandIn:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.localstripe_port = free_port()
        with self.log.open("wb") as log:
            self._localstripe = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(self.localstripe_port)],
                                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_for_localstripe()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="stripe-stand-in", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._localstripe is not None:
            self._localstripe.terminate()
            try:
                self._localstripe.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._localstripe.kill()
                self._localstripe.wait()
            self._localstripe = None

    def _wait_for_localstripe(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._localstripe.poll() is not None:
                raise RuntimeError(f"localstripe exited ({self._localstripe.returncode}):\n{log_tail(self.log)}")
            try:
                self._localstripe_call("GET", "/v1/customers", b"", {"Authorization": f"Bearer {self.secret_key}"})
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"localstripe did not answer in {START_TIMEOUT} s:\n{log_tail(self.log)}")

    # --- what tests read and do -----------------------------------------------------------------

    def checkout_creates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/checkout/sessions"]

    def customer_creates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/customers"]

    def localstripe(self, path: str) -> dict[str, Any]:
        """GET a localstripe object or list directly (e.g. "/v1/customers")."""
        status, body, _ = self._localstripe_call("GET", path, b"", {"Authorization": f"Bearer {self.secret_key}"})
        assert status == 200, (status, body)
        return json.loads(body)

    def pay(self, session_id: str) -> Delivery:
        """What the Pay button does: the session is paid, and Stripe tells the portal."""
        with self._lock:
            session = self.sessions[session_id]
            session.update(status="complete", payment_status="paid")
        return self.send_event("checkout.session.completed", session_id)

    def expire(self, session_id: str, *, notify: bool = True) -> Delivery | None:
        with self._lock:
            self.sessions[session_id].update(status="expired")
        return self.send_event("checkout.session.expired", session_id) if notify else None

    def send_event(self, kind: str, session_id: str) -> Delivery:
        """Sign and POST an event about a session (its state now) to webhook_url."""
        event = {"id": f"evt_{secrets.token_hex(12)}", "object": "event", "type": kind, "created": int(time.time()),
                 "livemode": False, "data": {"object": dict(self.sessions[session_id])}}
        return self._deliver(event)

    def redeliver(self, index: int = -1) -> Delivery:
        """A delivery again, the same event id and body (Stripe retries and replays)."""
        return self._deliver(self.deliveries[index].event)

    def _deliver(self, event: dict[str, Any]) -> Delivery:
        assert self.webhook_url, "no webhook_url to deliver to"
        body = json.dumps(event)
        request = urllib.request.Request(self.webhook_url, data=body.encode(), method="POST", headers={
            "Content-Type": "application/json",
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body, self.webhook_secret)})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                delivery = Delivery(event, response.status, response.read().decode(errors="replace"))
        except urllib.error.HTTPError as exc:
            delivery = Delivery(event, exc.code, exc.read().decode(errors="replace"))
        self.deliveries.append(delivery)
        return delivery

    # --- serving --------------------------------------------------------------------------------

    def _localstripe_call(self, method: str, path: str, body: bytes, headers: dict[str, str]):
        connection = http.client.HTTPConnection("127.0.0.1", self.localstripe_port, timeout=30)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type", "application/json")
        finally:
            connection.close()

    def _api(self, method: str, path: str, body: bytes, headers) -> tuple[int, bytes, str]:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        if method == "GET":
            form.update(parse_qsl(urlsplit(path).query, keep_blank_values=True))
        bare = urlsplit(path).path
        key = headers.get("Idempotency-Key", "")
        with self._lock:
            self.requests.append(Recorded(method, bare, form, key, headers.get("Authorization", "")))
            if method == "POST" and key and (key, bare) in self._answers:
                return (*self._answers[key, bare], "application/json")
        if headers.get("Authorization", "") != f"Bearer {self.secret_key}":
            status, answer, kind = 401, _error("Invalid API Key provided."), "application/json"
        elif bare == "/v1/checkout/sessions" or bare.startswith("/v1/checkout/sessions/"):
            status, answer, kind = self._checkout(method, bare, form)
        else:
            passed = {name: headers[name] for name in ("Authorization", "Content-Type", "Idempotency-Key",
                                                       "Stripe-Version") if headers.get(name)}
            status, answer, kind = self._localstripe_call(method, path, body, passed)
        if method == "POST" and key:
            with self._lock:
                self._answers.setdefault((key, bare), (status, answer))
                status, answer = self._answers[key, bare]
        return status, answer, kind

    def _checkout(self, method: str, path: str, form: dict[str, str]) -> tuple[int, bytes, str]:
        parts = path.removeprefix("/v1/checkout/sessions").strip("/").split("/")
        with self._lock:
            if method == "POST" and parts == [""]:
                session = self._new_session(form)
            elif parts[0] in self.sessions and (method, parts[1:]) in (("GET", []), ("POST", ["expire"])):
                session = self.sessions[parts[0]]
                if parts[1:] == ["expire"]:
                    session["status"] = "expired"
            else:
                return 404, _error(f"No such checkout.session: '{parts[0]}'"), "application/json"
            return 200, json.dumps(session).encode(), "application/json"

    def _new_session(self, form: dict[str, str]) -> dict[str, Any]:
        session_id = f"cs_test_{secrets.token_hex(12)}"
        quantity = int(form.get("line_items[0][quantity]", "1"))
        metadata = {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")}
        self.sessions[session_id] = session = {
            "id": session_id, "object": "checkout.session", "mode": form.get("mode"), "status": "open",
            "payment_status": "unpaid", "url": f"{self.api_base}/pay/{session_id}",
            "amount_total": quantity * int(form.get("line_items[0][price_data][unit_amount]", "0")),
            "currency": form.get("line_items[0][price_data][currency]", ""),
            "description": form.get("line_items[0][price_data][product_data][name]", ""),
            "customer": form.get("customer"), "client_reference_id": form.get("client_reference_id"),
            "metadata": metadata, "success_url": form.get("success_url"), "cancel_url": form.get("cancel_url"),
            "livemode": False,
        }
        return session

    def _page(self, session_id: str) -> bytes:
        session = self.sessions[session_id]
        places = 0 if session["currency"] in ZERO_DECIMAL else 2
        amount = f"{Decimal(session['amount_total']).scaleb(-places):.{places}f} {session['currency'].upper()}"
        state = {"open": "", "complete": "<p id='state'>Paid.</p>", "expired": "<p id='state'>Expired.</p>"}
        button = (f"<form method='post' action='/pay/{session_id}'><button id='pay' type='submit'>Pay {amount}"
                  "</button></form>" if session["status"] == "open" else state[session["status"]])
        return (f"<!doctype html><title>Pay {amount}</title><h1>Stripe stand-in checkout</h1>"
                f"<p id='amount'>{html.escape(amount)}</p><p>{html.escape(session['description'])}</p>{button}"
                f"<p><a id='cancel' href='{html.escape(session['cancel_url'] or '')}'>Cancel</a></p>").encode()


def _error(message: str) -> bytes:
    return json.dumps({"error": {"type": "invalid_request_error", "message": message}}).encode()


def _handler_for(stand_in: StripeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: assertions read `requests`
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, body: bytes, kind: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _route(self, method: str) -> None:
            body = self._body() if method != "GET" else b""
            if self.path.startswith("/v1/"):
                self._send(*stand_in._api(method, self.path, body, self.headers))
                return
            session_id = self.path.removeprefix("/pay/")
            if not self.path.startswith("/pay/") or session_id not in stand_in.sessions:
                self._send(404, b"not found", "text/plain")
            elif method == "GET":
                self._send(200, stand_in._page(session_id), "text/html; charset=utf-8")
            elif stand_in.sessions[session_id]["status"] != "open":
                self._send(409, b"this checkout is not open", "text/plain")
            else:
                stand_in.pay(session_id)
                self._send(303, b"", "text/plain", Location=stand_in.sessions[session_id]["success_url"])

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_DELETE(self):
            self._route("DELETE")

    return Handler
