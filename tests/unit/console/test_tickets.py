"""Console tickets and sessions through the service and the API: minting, single use, expiry,
binding, limits, rechecks, the audit trail."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from guardian.shortcuts import assign_perm

from apps.compute.models import Instance
from apps.console import services
from apps.console.models import ConsoleSession
from apps.core.exceptions import PermissionDenied, TenantFrozen
from apps.core.models import AuditRecord
from apps.tenants import services as tenants


def redeem(ticket, instance=None, **overrides):
    values = {"instance_public_id": instance.public_id if instance else None, "user_id": None,
              "peer_ip": None, "proxy": ConsoleSession.CHANNELS}
    values.update(overrides)
    return services.redeem_ticket(ticket.secret if hasattr(ticket, "secret") else ticket, **values)


def refused(ticket, instance=None, **overrides) -> services.ConsoleRefused:
    with pytest.raises(services.ConsoleRefused) as caught:
        redeem(ticket, instance, **overrides)
    return caught.value


def test_a_ticket_is_random_stored_hashed_and_not_audited_in_clear(a_owner, actor, running, vnc):
    ticket = services.issue_ticket(actor(a_owner), instance=running)
    assert len(ticket.secret) >= 43  # 32 random bytes, URL-safe base64
    session = ConsoleSession.objects.get()
    assert session.ticket_hash == hashlib.sha256(ticket.secret.encode()).hexdigest()
    assert (session.status, session.user_id, session.instance_id) == ("issued", a_owner.user_id, running.pk)
    assert 30 <= (session.expires_at - session.issued_at).total_seconds() <= 60
    audit = AuditRecord.objects.get(action="instance.console")
    assert (audit.result, audit.resource_id) == ("ok", running.public_id)
    assert ticket.secret not in str(audit.details)
    assert services.issue_ticket(actor(a_owner), instance=running).secret != ticket.secret


def test_a_ticket_opens_its_console_once(a_owner, actor, running, vnc):
    ticket = services.issue_ticket(actor(a_owner), instance=running)
    target = redeem(ticket, running, user_id=a_owner.user_id, peer_ip="127.0.0.1")
    assert (target.host, target.port, target.instance_public_id) == (vnc.host, vnc.port, running.public_id)
    session = ConsoleSession.objects.get()
    assert (session.status, session.peer_ip, session.proxy) == ("open", "127.0.0.1", "channels")
    again = refused(ticket, running, user_id=a_owner.user_id)
    assert (again.close_code, again.code) == (services.CLOSE_BAD_TICKET, "ticket_used")


def test_expired_forged_and_misbound_tickets_are_refused(a_owner, a_member, actor, running, vnc):
    owner = actor(a_owner, client_ip="10.0.0.5")

    expired = services.issue_ticket(owner, instance=running)
    ConsoleSession.objects.filter(pk=expired.session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert refused(expired, running).code == "ticket_expired"

    assert refused("x" * 43, running).code == "ticket_invalid"
    assert refused(None, running).code == "ticket_missing"

    ticket = services.issue_ticket(owner, instance=running)
    assert "another user" in refused(ticket, running, user_id=a_member.user_id).message
    assert "another address" in refused(ticket, running, peer_ip="10.9.9.9").message
    # None of these used the ticket up: its owner, from its address, still gets in.
    assert redeem(ticket, running, user_id=a_owner.user_id, peer_ip="10.0.0.5").port == vnc.port
    assert vnc.connections == 0  # the service never touches the screen; the proxies do
    errors = AuditRecord.objects.filter(action="instance.console_connect", result="error")
    assert errors.count() == 5
    assert not any(t.secret in str(r.details) + r.reason for r in errors for t in (expired, ticket))


def test_a_ticket_for_one_instance_never_opens_another(a_owner, b_owner, actor, launch, running, vnc):
    other = launch(a_owner, "db")
    ticket = services.issue_ticket(actor(a_owner), instance=running)
    wrong = refused(ticket, other, user_id=a_owner.user_id)
    assert wrong.close_code == services.CLOSE_BAD_TICKET
    assert wrong.message == "The console ticket is for another instance."

    foreign = launch(b_owner, "b")
    ticket = services.issue_ticket(actor(a_owner), instance=running)
    hidden = refused(ticket, foreign, user_id=a_owner.user_id)
    assert (hidden.close_code, hidden.code) == (services.CLOSE_NOT_FOUND, "not_found")


def test_who_may_mint_a_ticket(a_owner, a_readonly, actor, api, running, b_owner, vnc):
    url = f"/api/v1/instances/{running.public_id}/console"
    assert api(b_owner).post(url).status_code == 404
    denied = api(a_readonly).post(url)
    assert denied.status_code == 403 and "console" in denied.json()["message"]
    assign_perm("compute.console_instance", a_readonly.user, running)
    granted = api(a_readonly).post(url)
    assert granted.status_code == 201, granted.json()
    body = granted.json()
    assert body["protocols"] == ["binary", f"ticket.{body['ticket']}"]
    assert body["url"] == f"ws://testserver/ws/console/{running.public_id}/"
    assert body["websockify_url"] == "ws://testserver:6080/"
    with pytest.raises(PermissionDenied):
        services.issue_ticket(actor(a_readonly, read_only=True), instance=running)


def test_no_ticket_for_a_stopped_instance_or_a_frozen_tenant(a_owner, actor, api, operator, running):
    Instance.objects.filter(pk=running.pk).update(status=Instance.STOPPED)
    response = api(a_owner).post(f"/api/v1/instances/{running.public_id}/console")
    assert response.status_code == 409
    assert response.json()["message"] == f"Instance {running.public_id} is stopped: start it to use its console."

    Instance.objects.filter(pk=running.pk).update(status=Instance.RUNNING)
    tenants.freeze_tenant(operator, tenant=a_owner.tenant, reason="unpaid")
    with pytest.raises(TenantFrozen):
        services.issue_ticket(actor(a_owner), instance=Instance.objects.get(pk=running.pk))
    # Operators still reach the screen of a frozen tenant's instance.
    assert services.issue_ticket(operator, instance=Instance.objects.get(pk=running.pk)).secret


def test_session_limits_per_user_and_per_instance(a_owner, a_member, actor, api, running, settings, vnc):
    settings.PORTAL_CONSOLE_MAX_PER_INSTANCE = 2
    owner = actor(a_owner)
    first = services.issue_ticket(owner, instance=running)
    redeem(first, running)
    services.issue_ticket(owner, instance=running)
    response = api(a_member).post(f"/api/v1/instances/{running.public_id}/console")
    assert response.status_code == 429 and response.json()["code"] == "too_many_sessions"

    # Sessions whose proxy went silent stop counting.
    ConsoleSession.objects.filter(pk=first.session.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    assert api(a_member).post(f"/api/v1/instances/{running.public_id}/console").status_code == 201


def test_the_limit_is_checked_again_when_a_ticket_is_used(a_owner, actor, running, settings, vnc):
    settings.PORTAL_CONSOLE_MAX_PER_USER = 2
    tickets = [services.issue_ticket(actor(a_owner), instance=running) for _ in range(2)]
    settings.PORTAL_CONSOLE_MAX_PER_USER = 1
    redeem(tickets[0], running)
    over = refused(tickets[1], running)
    assert over.close_code == services.CLOSE_TOO_MANY
    assert ConsoleSession.objects.get(pk=tickets[1].session.pk).status == "closed"


@pytest.mark.parametrize("change, code", [
    ("freeze", services.CLOSE_FORBIDDEN),
    ("disable_member", services.CLOSE_FORBIDDEN),
    ("revoke_grant", services.CLOSE_FORBIDDEN),
    ("terminate", services.CLOSE_FORBIDDEN),
    ("stop", services.CLOSE_NOT_RUNNING),
])
def test_an_open_session_loses_access_at_the_next_recheck(change, code, a_owner, a_readonly, actor, operator,
                                                          running, vnc):
    assign_perm("compute.console_instance", a_readonly.user, running)
    ticket = services.issue_ticket(actor(a_readonly), instance=running)
    target = redeem(ticket, running)
    assert services.touch_session(target.session_id, bytes_to_guest=10, bytes_to_client=20) is None

    if change == "freeze":
        tenants.freeze_tenant(operator, tenant=a_owner.tenant, reason="unpaid")
    elif change == "disable_member":
        tenants.update_member(actor(a_owner), membership=a_readonly, is_active=False)
    elif change == "revoke_grant":
        from guardian.shortcuts import remove_perm

        remove_perm("compute.console_instance", a_readonly.user, running)
    elif change == "terminate":
        services.terminate_session(operator, session=ConsoleSession.objects.get(pk=target.session_id), reason="abuse")
    else:
        Instance.objects.filter(pk=running.pk).update(status=Instance.STOPPED)

    problem = services.touch_session(target.session_id, bytes_to_guest=11, bytes_to_client=22)
    assert problem is not None and problem.close_code == code
    assert ConsoleSession.objects.get(pk=target.session_id).bytes_to_client == 22


def test_closing_writes_who_where_how_long_and_bytes(a_owner, actor, running, vnc):
    target = redeem(services.issue_ticket(actor(a_owner), instance=running), running, peer_ip="192.0.2.7")
    ConsoleSession.objects.filter(pk=target.session_id).update(opened_at=timezone.now() - timedelta(seconds=90))
    services.close_session(target.session_id, reason="Closed by the client.", bytes_to_guest=5, bytes_to_client=7)
    services.close_session(target.session_id, reason="again")  # no-op
    record = AuditRecord.objects.get(action="instance.console_session")
    assert (record.username, record.resource_id, record.client_ip, record.tenant_id) == (
        a_owner.user.username, running.public_id, "192.0.2.7", a_owner.tenant_id)
    assert record.details["seconds"] >= 90
    assert (record.details["bytes_to_guest"], record.details["bytes_to_client"], record.details["proxy"]) == (
        5, 7, "channels")
    assert ConsoleSession.objects.get(pk=target.session_id).close_reason == "Closed by the client."


def test_sweep_drops_unused_tickets_and_closes_lost_sessions(a_owner, actor, running, vnc):
    owner = actor(a_owner)
    unused = services.issue_ticket(owner, instance=running)
    ConsoleSession.objects.filter(pk=unused.session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    waiting = services.issue_ticket(owner, instance=running)
    lost = redeem(services.issue_ticket(owner, instance=running), running)
    ConsoleSession.objects.filter(pk=lost.session_id).update(last_seen_at=timezone.now() - timedelta(minutes=5))

    assert services.sweep_sessions() == {"expired_tickets": 1, "lost_sessions": 1}
    assert not ConsoleSession.objects.filter(pk=unused.session.pk).exists()
    assert ConsoleSession.objects.get(pk=waiting.session.pk).status == "issued"
    assert ConsoleSession.objects.get(pk=lost.session_id).status == "closed"
    assert AuditRecord.objects.filter(action="instance.console_session", resource_id=running.public_id).exists()


def test_an_unreachable_screen_is_a_clear_refusal(a_owner, actor, running, monkeypatch):
    import dataclasses

    from apps.compute.drivers.fake import FakeDriver

    real = FakeDriver.domain_info
    monkeypatch.setattr(FakeDriver, "domain_info", lambda self, name: dataclasses.replace(real(self, name),
                                                                                          vnc_port=None))
    problem = refused(services.issue_ticket(actor(a_owner), instance=running), running)
    assert (problem.close_code, problem.code) == (services.CLOSE_UNREACHABLE, "unreachable")
    assert ConsoleSession.objects.get().status == "closed"
