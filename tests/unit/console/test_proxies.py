"""Both console proxies against a stand-in VNC server: the channels consumer (through the
whole ASGI stack) and the websockify handler (a real server on a loopback port)."""

import threading

import pytest
import websocket  # websocket-client
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.console import services
from apps.console.models import ConsoleSession
from apps.console.relay import InputWatcher, Meter
from apps.console.websockify_proxy import ConsoleProxyServer
from apps.core.models import AuditRecord
from apps.tenants import services as tenants
from cloudportal.asgi import application
from tests.fakevnc import BANNER

# The consumer reaches the database from worker threads (database_sync_to_async), which
# close connections a test transaction would hold: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


def session_headers(membership, origin=ORIGIN):
    client = Client()
    client.force_login(membership.user)
    return [origin, (b"cookie", f"sessionid={client.session.session_key}".encode())]


def channels_socket(instance, membership, ticket, *, origin=ORIGIN):
    protocols = ["binary", f"ticket.{ticket}"]
    return WebsocketCommunicator(application, f"/ws/console/{instance.public_id}/",
                                 headers=session_headers(membership, origin), subprotocols=protocols)


async def closed_with(communicator) -> int:
    message = await communicator.receive_output(timeout=5)
    while message["type"] != "websocket.close":
        assert message["type"] != "websocket.send", f"relayed bytes after a refusal: {message}"
        message = await communicator.receive_output(timeout=5)
    return message.get("code")


def test_channels_relays_both_ways_and_records_the_session(a_owner, actor, running, vnc):
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret

    socket = channels_socket(running, a_owner, ticket)

    async def scenario():
        connected, protocol = await socket.connect()
        assert (connected, protocol) == (True, "binary")
        assert await socket.receive_from(timeout=5) == BANNER
        await socket.send_to(bytes_data=BANNER)
        assert await socket.receive_from(timeout=5) == BANNER  # the stand-in echoes
        await socket.disconnect()

    async_to_sync(scenario)()
    session = ConsoleSession.objects.get()
    assert (session.status, session.proxy, session.bytes_to_guest, session.bytes_to_client) == (
        "closed", "channels", len(BANNER), 2 * len(BANNER))
    record = AuditRecord.objects.get(action="instance.console_session")
    assert record.details["reason"] == "Closed by the client."


@pytest.mark.parametrize("case", ["forged", "used", "other_user", "anonymous"])
def test_channels_refuses_bad_tickets_with_a_code_and_relays_nothing(case, a_owner, a_member, actor, running, vnc):
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret
    if case == "used":
        services.redeem_ticket(ticket, instance_public_id=None, user_id=None, peer_ip=None, proxy="channels")
    ticket = "f" * 43 if case == "forged" else ticket
    who = a_member if case == "other_user" else a_owner

    if case == "anonymous":
        socket = WebsocketCommunicator(application, f"/ws/console/{running.public_id}/", headers=[ORIGIN],
                                       subprotocols=["binary", f"ticket.{ticket}"])
    else:
        socket = channels_socket(running, who, ticket)

    async def scenario():
        connected, _ = await socket.connect()
        assert connected  # accepted first, so that the refusal carries its code
        assert await closed_with(socket) == services.CLOSE_BAD_TICKET

    async_to_sync(scenario)()
    assert vnc.connections == 0


def test_channels_refuses_a_foreign_origin(a_owner, actor, running, vnc):
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret

    socket = channels_socket(running, a_owner, ticket, origin=(b"origin", b"http://evil.example"))

    async def scenario():
        connected, _ = await socket.connect()
        assert not connected

    async_to_sync(scenario)()
    assert vnc.connections == 0
    assert ConsoleSession.objects.get().status == "issued"


def test_channels_closes_when_the_tenant_is_frozen(a_owner, actor, operator, running, settings, vnc):
    settings.PORTAL_CONSOLE_RECHECK = 0  # recheck at every watch tick (1 s)
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret

    socket = channels_socket(running, a_owner, ticket)

    async def scenario():
        assert (await socket.connect())[0]
        assert await socket.receive_from(timeout=5) == BANNER
        await sync_to_async(tenants.freeze_tenant)(operator, tenant=a_owner.tenant, reason="unpaid")
        assert await closed_with(socket) == services.CLOSE_FORBIDDEN
        await socket.disconnect()

    async_to_sync(scenario)()
    assert "frozen" in ConsoleSession.objects.get().close_reason


def test_channels_says_when_the_screen_does_not_answer(a_owner, actor, running, dead_vnc):
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret

    socket = channels_socket(running, a_owner, ticket)

    async def scenario():
        assert (await socket.connect())[0]
        assert await closed_with(socket) == services.CLOSE_UNREACHABLE

    async_to_sync(scenario)()
    assert "did not answer" in ConsoleSession.objects.get().close_reason


# --- websockify -----------------------------------------------------------------------------

@pytest.fixture
def websockify_url():
    server = ConsoleProxyServer(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def ws_connect(url, ticket, origin="http://localhost"):
    return websocket.create_connection(url, subprotocols=["binary", f"ticket.{ticket}"], origin=origin, timeout=5)


def test_websockify_relays_with_a_ticket(a_owner, actor, running, vnc, websockify_url):
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret
    ws = ws_connect(websockify_url, ticket)
    assert ws.subprotocol == "binary"
    assert ws.recv() == BANNER
    ws.send_binary(BANNER)
    assert ws.recv() == BANNER
    ws.close()
    session = ConsoleSession.objects.get()
    for _ in range(50):  # the handler thread closes the session right after the socket
        session.refresh_from_db()
        if session.status == "closed":
            break
        threading.Event().wait(0.1)
    assert (session.status, session.proxy, session.bytes_to_guest) == ("closed", "websockify", len(BANNER))


def test_websockify_refuses_used_tickets_and_foreign_origins(a_owner, actor, running, vnc, websockify_url):
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        ws_connect(websockify_url, ticket, origin="http://evil.example")
    assert refused.value.status_code == 403

    ws_connect(websockify_url, ticket).close()
    again = ws_connect(websockify_url, ticket)
    again.settimeout(5)
    opcode, frame = again.recv_data_frame(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == services.CLOSE_BAD_TICKET
    assert frame.data[2:].decode() == "The console ticket was used already."
    assert vnc.connections == 1


# --- the relay's bookkeeping -----------------------------------------------------------------

def rfb_client_handshake() -> bytes:
    return b"RFB 003.008\n" + b"\x01" + b"\x01"  # version, security None, ClientInit(shared)


def test_only_key_and_pointer_events_count_as_input():
    watcher = InputWatcher()
    assert not watcher.feed(rfb_client_handshake())
    assert not watcher.feed(b"\x02\x00\x00\x02" + b"\x00" * 8)  # SetEncodings, two encodings
    assert not watcher.feed(b"\x03\x01" + b"\x00" * 8)  # FramebufferUpdateRequest
    assert watcher.feed(b"\x04\x01\x00\x00\x00\x00\x00\x61")  # KeyEvent 'a'
    assert not watcher.feed(b"\x05\x00")  # half a PointerEvent...
    assert watcher.feed(b"\x00\x10\x00\x10")  # ...completed
    assert watcher.feed(b"\xff\x00" + b"\x00" * 10)  # QEMU extended key event
    assert not watcher.feed(b"\x03\x01" + b"\x00" * 8)


def test_an_unknown_message_makes_every_later_byte_input():
    watcher = InputWatcher()
    watcher.feed(rfb_client_handshake())
    assert watcher.feed(b"\x99\x00")
    assert watcher.feed(b"\x03\x01" + b"\x00" * 8)


def test_the_meter_times_out_idle_sessions_and_paces_rechecks(settings):
    settings.PORTAL_CONSOLE_IDLE_TIMEOUT, settings.PORTAL_CONSOLE_RECHECK = 60, 5
    now = [0.0]
    meter = Meter(clock=lambda: now[0])
    meter.from_client(rfb_client_handshake())
    now[0] = 59
    meter.from_client(b"\x03\x01" + b"\x00" * 8)  # screen updates alone do not keep it alive
    assert not meter.idle and meter.recheck_due() and not meter.recheck_due()
    now[0] = 61
    assert meter.idle
    meter.from_client(b"\x05\x00\x00\x10\x00\x10")
    assert not meter.idle
    assert (meter.to_guest, meter.to_client) == (14 + 10 + 6, 0)
    settings.PORTAL_CONSOLE_IDLE_TIMEOUT = 0
    now[0] = 10_000
    assert not meter.idle


def test_channels_closes_an_idle_session(a_owner, actor, running, settings, vnc):
    settings.PORTAL_CONSOLE_IDLE_TIMEOUT = 1
    ticket = services.issue_ticket(actor(a_owner), instance=running).secret
    socket = channels_socket(running, a_owner, ticket)

    async def scenario():
        assert (await socket.connect())[0]
        assert await socket.receive_from(timeout=5) == BANNER
        assert await closed_with(socket) == services.CLOSE_IDLE
        await socket.disconnect()

    async_to_sync(scenario)()
    assert ConsoleSession.objects.get().close_reason.startswith("Closed after")


def test_another_tenants_console_is_not_there(a_owner, b_owner, actor, launch, running, vnc):
    """B, signed in, aims at A's instance: with B's own ticket it does not exist (4404); with a
    ticket of A's it is not B's ticket (4401). Nothing reaches A's screen either way."""
    theirs = launch(b_owner, "b-vm")
    b_ticket = services.issue_ticket(actor(b_owner), instance=theirs).secret
    a_ticket = services.issue_ticket(actor(a_owner), instance=running).secret
    with_own = channels_socket(running, b_owner, b_ticket)
    with_stolen = channels_socket(running, b_owner, a_ticket)

    async def scenario():
        assert (await with_own.connect())[0]
        assert await closed_with(with_own) == services.CLOSE_NOT_FOUND
        assert (await with_stolen.connect())[0]
        assert await closed_with(with_stolen) == services.CLOSE_BAD_TICKET

    async_to_sync(scenario)()
    assert vnc.connections == 0
