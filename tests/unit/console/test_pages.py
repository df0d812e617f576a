"""The console page and the back office around consoles."""

from django.test import Client
from guardian.shortcuts import assign_perm

from apps.compute.models import Instance
from apps.console import services
from apps.console.models import ConsoleSession


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_console_page_is_the_tenants_own(a_owner, a_readonly, b_owner, running):
    url = f"/instances/{running.public_id}/console/"
    page = signed_in(a_owner.user).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-ticket-url="/api/v1/instances/{running.public_id}/console"' in html
    assert 'data-running="1"' in html and "vendor/novnc" not in html  # the module imports noVNC itself
    assert signed_in(b_owner.user).get(url).status_code == 404
    denied = signed_in(a_readonly.user).get(url)
    assert denied.status_code == 403 and "console" in denied.content.decode()
    assign_perm("compute.console_instance", a_readonly.user, running)
    assert signed_in(a_readonly.user).get(url).status_code == 200


def test_a_stopped_instance_says_so_instead_of_connecting(a_owner, running):
    Instance.objects.filter(pk=running.pk).update(status=Instance.STOPPED)
    html = signed_in(a_owner.user).get(f"/instances/{running.public_id}/console/").content.decode()
    assert "The instance is stopped: start it to use its console." in html
    assert 'data-running=""' in html


def test_operators_open_consoles_and_end_sessions_from_the_back_office(a_owner, actor, admin_client, running, vnc):
    backoffice = admin_client
    listing = backoffice.get("/backoffice/compute/instance/").content.decode()
    assert f'href="/instances/{running.public_id}/console/"' in listing
    assert backoffice.get(f"/instances/{running.public_id}/console/").status_code == 200

    ticket = services.issue_ticket(actor(a_owner), instance=running)
    services.redeem_ticket(ticket.secret, instance_public_id=None, user_id=None, peer_ip=None, proxy="channels")
    session = ConsoleSession.objects.get()
    response = backoffice.post("/backoffice/console/consolesession/",
                               {"action": "terminate", "_selected_action": [session.pk]}, follow=True)
    assert response.status_code == 200
    session.refresh_from_db()
    assert session.terminate_reason == "Closed by an operator."
    assert services.touch_session(session.pk, bytes_to_guest=0, bytes_to_client=0).close_code == 4403
    detail = backoffice.get(f"/backoffice/console/consolesession/{session.pk}/change/").content.decode()
    assert ticket.secret not in detail
