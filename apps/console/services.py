"""Console tickets and sessions: the one place both proxies (the channels consumer and the
websockify process) ask whether a connection may open, stay open, and how it ended.

A ticket is minted after the permission check, is random (256 bits), single-use, must be used
within PORTAL_CONSOLE_TICKET_TTL seconds, is bound to the user, the instance and the address
it was minted for, and only its hash is stored. While a session is open the relay calls
`touch_session` every PORTAL_CONSOLE_RECHECK seconds: a frozen tenant, a removed member, a
withdrawn grant, a stopped instance or an operator's "terminate" ends it there."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.compute.models import Instance
from apps.console.models import ConsoleSession
from apps.core import permissions
from apps.core.audit import audited, record
from apps.core.exceptions import Conflict, DomainError

if TYPE_CHECKING:
    from apps.core.actor import Actor

# Called by the proxies with no actor (the ticket is the credential); each writes its own
# audit record: the session's end, or the refused attempt.
UNAUDITED = ("redeem_ticket", "touch_session", "close_session", "sweep_sessions")

# Websocket close codes (4000-4999 are the application's), the same from both proxies.
CLOSE_BAD_TICKET = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408
CLOSE_NOT_RUNNING = 4409
CLOSE_TOO_MANY = 4429
CLOSE_UNREACHABLE = 4502


class ConsoleRefused(DomainError):
    """Why a console connection may not open or must close; `close_code` for the websocket."""

    status = 403
    code = "console_refused"
    session: ConsoleSession | None = None  # the ticket's session, when the ticket was real

    def __init__(self, message: str, *, close_code: int, code: str | None = None, status: int | None = None):
        super().__init__(message, code=code)
        self.close_code = close_code
        if status:
            self.status = status


@dataclass(frozen=True)
class Ticket:
    session: ConsoleSession
    secret: str  # shown once to the caller, never stored or logged


@dataclass(frozen=True)
class Target:
    """Where the relay connects once a ticket is redeemed."""

    session_id: int
    session_public_id: str
    instance_public_id: str
    host: str
    port: int


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _stale_before():
    """Open sessions whose relay has not reported since then lost their proxy."""
    return timezone.now() - timedelta(seconds=max(30, 3 * settings.PORTAL_CONSOLE_RECHECK))


def _check_limits(user_id: int, instance_id: int, *, opening: ConsoleSession | None = None) -> None:
    """Minting counts open sessions and tickets still waiting; opening a session counts the
    other open sessions only."""
    rows = ConsoleSession.objects.filter(status=ConsoleSession.OPEN, last_seen_at__gt=_stale_before())
    if opening is None:
        rows = rows | ConsoleSession.objects.filter(status=ConsoleSession.ISSUED, expires_at__gt=timezone.now())
    else:
        rows = rows.exclude(pk=opening.pk)
    if rows.filter(user_id=user_id).count() >= settings.PORTAL_CONSOLE_MAX_PER_USER:
        raise ConsoleRefused(f"You have {settings.PORTAL_CONSOLE_MAX_PER_USER} console sessions open already; "
                             "close one first.", close_code=CLOSE_TOO_MANY, code="too_many_sessions", status=429)
    if rows.filter(instance_id=instance_id).count() >= settings.PORTAL_CONSOLE_MAX_PER_INSTANCE:
        raise ConsoleRefused(f"This instance has {settings.PORTAL_CONSOLE_MAX_PER_INSTANCE} console sessions open "
                             "already.", close_code=CLOSE_TOO_MANY, code="too_many_sessions", status=429)


def _require_running(instance: Instance) -> None:
    if instance.status != Instance.RUNNING or instance.host_id is None or instance.deleted_at is not None:
        raise ConsoleRefused(f"Instance {instance.public_id} is {instance.status}: start it to use its console.",
                             close_code=CLOSE_NOT_RUNNING, code="invalid_state", status=409)


@audited("instance.console", area="compute")
def issue_ticket(actor: Actor, *, instance: Instance) -> Ticket:
    """Mint a console ticket for a running instance the actor may open the console of."""
    from apps.tenants.services import require_writable_tenant

    permissions.require(actor, instance, "console")
    if not actor.is_privileged:
        require_writable_tenant(actor)
    _require_running(instance)
    _check_limits(actor.user_id, instance.pk)
    secret = secrets.token_urlsafe(32)
    now = timezone.now()
    session = ConsoleSession.objects.create(
        tenant_id=instance.tenant_id, instance=instance, user=actor.user, ticket_hash=_hash(secret),
        client_ip=actor.client_ip, issued_at=now,
        expires_at=now + timedelta(seconds=settings.PORTAL_CONSOLE_TICKET_TTL),
    )
    return Ticket(session=session, secret=secret)


# --- the proxies' side ----------------------------------------------------------------------

def _session_actor(session: ConsoleSession) -> Actor:
    """The session's user as the actor it is now (membership, role and grants re-read)."""
    from apps.core.actor import Actor
    from apps.tenants.selectors import resolve_actor

    user = session.user
    base = Actor(user=user, is_operator=user.is_staff, client_ip=session.peer_ip or session.client_ip, via="console")
    if user.is_staff:
        return base
    return resolve_actor(base, tenant_public_id=session.tenant.public_id, strict=False)


def _access_problem(session: ConsoleSession) -> ConsoleRefused | None:
    """Why this session's user may not (or no longer) use this console; None when allowed."""
    if session.terminate_reason:
        return ConsoleRefused(session.terminate_reason, close_code=CLOSE_FORBIDDEN, code="terminated")
    if not session.user.is_active:
        return ConsoleRefused("Your account is disabled.", close_code=CLOSE_FORBIDDEN)
    actor = _session_actor(session)
    tenant = session.tenant
    if not actor.is_privileged:
        if actor.tenant_id != tenant.pk:
            return ConsoleRefused(f"You are no longer a member of {tenant.name}.", close_code=CLOSE_FORBIDDEN)
        if tenant.is_frozen:
            return ConsoleRefused(f"Tenant {tenant.name} is frozen: {tenant.frozen_reason or 'no reason given'}.",
                                  close_code=CLOSE_FORBIDDEN, code="tenant_frozen")
    if not permissions.allows(actor, session.instance, "console"):
        return ConsoleRefused("You are no longer allowed to open this console.", close_code=CLOSE_FORBIDDEN)
    try:
        _require_running(session.instance)
    except ConsoleRefused as exc:
        return exc
    return None


def _vnc_endpoint(instance: Instance) -> tuple[str, int]:
    from apps.compute.drivers.base import DriverError
    from apps.compute.hypervisors import get_compute_driver

    unreachable = f"The screen of {instance.public_id} is not reachable"
    try:
        info = get_compute_driver(instance.host.uri).domain_info(instance.public_id)
    except DriverError as exc:
        raise ConsoleRefused(f"{unreachable}: {exc}", close_code=CLOSE_UNREACHABLE, code="unreachable", status=502)
    if info.vnc_port is None:
        raise ConsoleRefused(f"{unreachable}: the domain has no VNC display.", close_code=CLOSE_UNREACHABLE,
                             code="unreachable", status=502)
    listen = info.vnc_host
    if listen in ("", "0.0.0.0", "::"):
        listen = instance.host.management_address
    return listen, info.vnc_port


def _refused(session: ConsoleSession | None, exc: ConsoleRefused, *, peer_ip: str | None, proxy: str) -> None:
    """Keep a refused attempt in the audit log (outside the rolled-back transaction)."""
    from apps.core.actor import Actor

    actor = Actor(user=session.user if session else None, tenant=session.tenant if session else None,
                  is_operator=bool(session and session.user.is_staff), client_ip=peer_ip, via="console")
    record(actor, action="instance.console_connect", area="compute", resource=session.instance if session else None,
           result="error", error=exc, details={"proxy": proxy})


def redeem_ticket(secret: str | None, *, instance_public_id: str | None, user_id: int | None, peer_ip: str | None,
                  proxy: str) -> Target:
    """Use a ticket: once, in time, for its instance, by its user (when the proxy knows the
    user), from its address. Opens the session and returns where to relay to. A refusal is
    kept in the audit log; a ticket that was taken stays used even when the session is refused."""
    session = None
    try:
        with transaction.atomic():
            session = _take(secret, instance_public_id=instance_public_id, user_id=user_id, peer_ip=peer_ip,
                            proxy=proxy)
            problem = _access_problem(session) or _limit_problem(session)
            if problem is not None:
                _close(session, reason=problem.message, audit=False)
        if problem is not None:
            raise problem
        host, port = _vnc_endpoint(session.instance)
    except ConsoleRefused as exc:
        session = session or exc.session
        if session is not None and session.status == ConsoleSession.OPEN:
            close_session(session.pk, reason=exc.message, audit=False)
        _refused(session, exc, peer_ip=peer_ip, proxy=proxy)
        raise
    return Target(session_id=session.pk, session_public_id=session.public_id,
                  instance_public_id=session.instance.public_id, host=host, port=port)


def _take(secret, *, instance_public_id, user_id, peer_ip, proxy) -> ConsoleSession:
    """Mark the ticket's session open, or refuse the ticket."""
    def refuse(message: str, code: str = "ticket_invalid") -> ConsoleRefused:
        exc = ConsoleRefused(message, close_code=CLOSE_BAD_TICKET, code=code)
        exc.session = session
        return exc

    session = None
    if not secret:
        raise refuse("No console ticket was given.", "ticket_missing")
    session = (ConsoleSession.objects.select_related("instance__host", "tenant", "user")
               .filter(ticket_hash=_hash(secret)).first())
    if session is None:
        raise refuse("The console ticket is not valid.")
    if session.status != ConsoleSession.ISSUED:
        raise refuse("The console ticket was used already.", "ticket_used")
    if session.expires_at <= timezone.now():
        raise refuse("The console ticket expired; open the console again.", "ticket_expired")
    if instance_public_id is not None and session.instance.public_id != instance_public_id:
        if not Instance.objects.for_actor(_session_actor(session)).filter(public_id=instance_public_id).exists():
            exc = refuse(f"No instance {instance_public_id}.", "not_found")
            exc.close_code = CLOSE_NOT_FOUND
            raise exc
        raise refuse("The console ticket is for another instance.")
    if user_id is not None and session.user_id != user_id:
        raise refuse("The console ticket belongs to another user.")
    if session.client_ip and peer_ip and session.client_ip != peer_ip:
        raise refuse("The console ticket was issued to another address.")
    # Serialise sessions per user and per instance so two redemptions cannot both pass the limit.
    get_user_model().objects.select_for_update().filter(pk=session.user_id).first()
    Instance.objects.select_for_update().filter(pk=session.instance_id).first()
    now = timezone.now()
    taken = ConsoleSession.objects.filter(pk=session.pk, status=ConsoleSession.ISSUED).update(
        status=ConsoleSession.OPEN, opened_at=now, last_seen_at=now, peer_ip=peer_ip, proxy=proxy)
    if not taken:  # another connection redeemed it a moment ago
        raise refuse("The console ticket was used already.", "ticket_used")
    session.refresh_from_db()
    return session


def _limit_problem(session: ConsoleSession) -> ConsoleRefused | None:
    try:
        _check_limits(session.user_id, session.instance_id, opening=session)
    except ConsoleRefused as exc:
        return exc
    return None


def touch_session(session_id: int, *, bytes_to_guest: int, bytes_to_client: int) -> ConsoleRefused | None:
    """The relay's periodic report: byte counts in, the reason to close (or None) out."""
    now = timezone.now()
    ConsoleSession.objects.filter(pk=session_id, status=ConsoleSession.OPEN).update(
        last_seen_at=now, bytes_to_guest=bytes_to_guest, bytes_to_client=bytes_to_client)
    session = ConsoleSession.objects.select_related("instance", "tenant", "user").filter(pk=session_id).first()
    if session is None:
        return ConsoleRefused("The console session is gone.", close_code=CLOSE_FORBIDDEN)
    if session.status != ConsoleSession.OPEN:
        return ConsoleRefused(session.close_reason or "The console session was closed.", close_code=CLOSE_FORBIDDEN)
    return _access_problem(session)


def close_session(session_id: int, *, reason: str, bytes_to_guest: int | None = None,
                  bytes_to_client: int | None = None, audit: bool = True) -> None:
    """End an open session and write it to the audit log (who, instance, from where, how
    long, bytes each way). Closing twice is a no-op."""
    with transaction.atomic():
        rows = ConsoleSession.objects.select_for_update(of=("self",)).select_related("instance", "tenant", "user")
        session = rows.filter(pk=session_id).first()
        if session is None or session.status != ConsoleSession.OPEN:
            return
        if bytes_to_guest is not None:
            session.bytes_to_guest = bytes_to_guest
        if bytes_to_client is not None:
            session.bytes_to_client = bytes_to_client
        _close(session, reason=reason, audit=audit)


def _close(session: ConsoleSession, *, reason: str, audit: bool = True) -> None:
    from apps.core.actor import Actor

    session.status, session.closed_at, session.close_reason = ConsoleSession.CLOSED, timezone.now(), reason[:255]
    session.save(update_fields=["status", "closed_at", "close_reason", "bytes_to_guest", "bytes_to_client"])
    if not audit:  # refused before relaying anything: the refusal is the record
        return
    actor = Actor(user=session.user, tenant=session.tenant, is_operator=session.user.is_staff,
                  client_ip=session.peer_ip, via="console")
    record(actor, action="instance.console_session", area="compute", resource=session.instance, details={
        "session": session.public_id, "proxy": session.proxy, "from": session.peer_ip,
        "opened_at": session.opened_at.isoformat() if session.opened_at else None,
        "seconds": session.duration_seconds, "bytes_to_guest": session.bytes_to_guest,
        "bytes_to_client": session.bytes_to_client, "reason": session.close_reason,
    })


@audited("console_session.terminate", area="compute")
def terminate_session(actor: Actor, *, session: ConsoleSession, reason: str = "") -> ConsoleSession:
    """Ask the relay of an open session to close it at its next recheck (operators)."""
    from apps.tenants.services import require_operator

    require_operator(actor)
    if session.status != ConsoleSession.OPEN:
        raise Conflict(f"Console session {session.public_id} is {session.status}.", code="invalid_state")
    session.terminate_reason = (reason.strip() or "Closed by an operator.")[:255]
    session.save(update_fields=["terminate_reason"])
    return session


def sweep_sessions() -> dict[str, int]:
    """Drop tickets that were never used in time; close sessions whose proxy went away."""
    expired = ConsoleSession.objects.filter(status=ConsoleSession.ISSUED, expires_at__lte=timezone.now()).delete()[0]
    lost = 0
    stale = ConsoleSession.objects.filter(status=ConsoleSession.OPEN, last_seen_at__lte=_stale_before())
    for session_id in stale.values_list("pk", flat=True):
        close_session(session_id, reason="The console proxy stopped reporting (process ended).")
        lost += 1
    return {"expired_tickets": expired, "lost_sessions": lost}
