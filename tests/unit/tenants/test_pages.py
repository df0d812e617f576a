"""Console pages and the back office, through Django's test client."""

import re

from django.core import mail
from django.test import Client

from apps.core.models import AuditRecord, PlatformSettings
from apps.tenants.models import KeyPair, Membership, Tenant
from tests.factories.tenants import PASSWORD


def logged_in(membership) -> Client:
    client = Client()
    client.force_login(membership.user)
    return client


def test_signup_page_creates_tenant_and_lands_on_dashboard(db):
    client = Client()
    response = client.post("/signup/", {"tenant_name": "Fern Labs", "username": "fern", "email": "f@example.test",
                                        "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Fern Labs" in page and "Quota usage" in page and 'class="quota-row"' in page
    assert Membership.objects.get(user__username="fern").role == "owner"


def test_signup_page_shows_field_errors(db):
    response = Client().post("/signup/", {"tenant_name": "X", "username": "g", "email": "g@example.test",
                                          "password": "short"})
    assert response.status_code == 400
    assert "This password is too short" in response.content.decode()
    assert not Tenant.objects.exists()


def test_signup_closed_by_operator(db):
    PlatformSettings.objects.update_or_create(pk=1, defaults={"signup_enabled": False, "signup_message": "Closed."})
    assert "Closed." in Client().get("/signup/").content.decode()
    response = Client().post("/signup/", {"tenant_name": "X", "username": "g", "email": "g@example.test",
                                          "password": PASSWORD})
    assert response.status_code == 403 and not Tenant.objects.exists()


def test_login_is_throttled_after_repeated_failures(a_owner, settings):
    settings.PORTAL_LOGIN_ATTEMPTS = 3
    client = Client()
    for _ in range(3):
        assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_and_logout(a_owner):
    client = Client()
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    assert AuditRecord.objects.filter(action="session.login", user=a_owner.user).exists()
    assert client.get("/logout/").status_code == 405  # state changes only on POST
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_pages_need_login(db):
    response = Client().get("/key-pairs/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_password_reset_sends_a_working_link(a_owner):
    a_owner.user.email = "alice@example.test"
    a_owner.user.save()
    Client().post("/password-reset/", {"email": "alice@example.test"})
    assert len(mail.outbox) == 1
    link = re.search(r"http://[^/]+(/password-reset/\S+/)", mail.outbox[0].body).group(1)
    client = Client()
    form_page = client.get(link, follow=True)
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": "a-brand-new-pass-7", "new_password2": "a-brand-new-pass-7"})
    assert done.status_code == 302
    a_owner.user.refresh_from_db()
    assert a_owner.user.check_password("a-brand-new-pass-7")


def test_owner_creates_sub_account_on_the_members_page(a_owner):
    response = logged_in(a_owner).post("/members/", {"username": "sub1", "email": "", "password": PASSWORD,
                                                     "role": "readonly"}, follow=True)
    assert 'data-member="sub1"' in response.content.decode()


def test_readonly_member_is_refused_writes_with_a_message(a_readonly):
    client = logged_in(a_readonly)
    response = client.post("/key-pairs/", {"mode": "generate", "name": "x", "key_type": "ed25519"})
    assert response.status_code == 403
    assert "does not allow" in response.content.decode()
    assert not KeyPair.objects.exists()
    response = client.post("/members/", {"username": "sub2", "email": "", "password": PASSWORD, "role": "owner"})
    assert response.status_code == 403


def test_generated_private_key_is_shown_once(a_owner):
    client = logged_in(a_owner)
    response = client.post("/key-pairs/", {"mode": "generate", "name": "web", "key_type": "ed25519"})
    assert "BEGIN OPENSSH PRIVATE KEY" in response.content.decode()
    again = client.get("/key-pairs/").content.decode()
    assert "BEGIN OPENSSH PRIVATE KEY" not in again and "web" in again


def test_token_secret_is_shown_once(a_owner):
    client = logged_in(a_owner)
    page = client.post("/tokens/", {"name": "cli", "scope": "read-write", "bind_to_tenant": "on"}).content.decode()
    secret = re.search(r"(cpt_[A-Za-z0-9_-]+)", page).group(1)
    assert secret not in client.get("/tokens/").content.decode()


def test_tenant_switcher_changes_the_current_tenant(a_owner):
    client = logged_in(a_owner)
    client.post("/tenant/", {"mode": "create", "name": "Second Co"})
    assert "Second Co" in client.get("/").content.decode().split("Dashboard</h1>")[1]
    client.post("/switch-tenant", {"tenant": a_owner.tenant.public_id})
    assert "Tenant A" in client.get("/").content.decode().split("Dashboard</h1>")[1]
    assert client.get("/switch-tenant").status_code == 405


def test_frozen_tenant_pages_say_so_and_refuse_creates(a_owner, operator):
    from apps.tenants.services import freeze_tenant

    freeze_tenant(operator, tenant=a_owner.tenant, reason="Billing review")
    client = logged_in(a_owner)
    assert "This tenant is frozen: Billing review" in client.get("/").content.decode()
    response = client.post("/key-pairs/", {"mode": "generate", "name": "x", "key_type": "ed25519"})
    assert response.status_code == 403 and "Billing review" in response.content.decode()


def test_audit_page_filters(a_owner):
    client = logged_in(a_owner)
    client.post("/key-pairs/", {"mode": "generate", "name": "audited", "key_type": "ed25519"})
    page = client.get("/audit/?action=keypair.").content.decode()
    assert "keypair.generate" in page and "tenant.create" not in page


def test_back_office_freeze_action_calls_the_service(a_owner, admin_client):
    response = admin_client.post(
        "/backoffice/tenants/tenant/",
        {"action": "freeze", "_selected_action": [a_owner.tenant.pk], "apply": "1", "reason": "Chargeback"},
        follow=True,
    )
    assert response.status_code == 200
    tenant = Tenant.objects.get(pk=a_owner.tenant.pk)
    assert (tenant.status, tenant.frozen_reason) == ("frozen", "Chargeback")
    record = AuditRecord.objects.get(action="tenant.freeze")
    assert (record.via, record.actor_kind) == ("backoffice", "operator")


def test_back_office_pages_render(a_owner, admin_client):
    for url in ["/backoffice/", "/backoffice/tenants/tenant/", f"/backoffice/tenants/tenant/{a_owner.tenant.pk}/change/",
                "/backoffice/core/auditrecord/?result=ok", "/backoffice/tenants/quotadefault/add/",
                "/backoffice/core/platformsettings/"]:
        assert admin_client.get(url).status_code == 200, url


def test_tenants_cannot_open_the_back_office(a_owner):
    response = logged_in(a_owner).get("/backoffice/")
    assert response.status_code == 302 and "/backoffice/login/" in response["Location"]


def test_back_office_host_settings_go_through_the_service(admin_client):
    from apps.compute.models import Host
    from tests.factories.compute import make_inventory

    make_inventory()
    host = Host.objects.get()
    url = f"/backoffice/compute/host/{host.pk}/change/"
    assert admin_client.get(url).status_code == 200
    admin_client.post(url, {"management_address": "10.0.0.9", "virt_type": "qemu", "cpu_allocation_ratio": "2.5",
                            "ram_allocation_ratio": "1.0", "reserved_memory_mb": 1024})
    host.refresh_from_db()
    assert (host.management_address, str(host.cpu_allocation_ratio), host.reserved_memory_mb) == ("10.0.0.9", "2.50",
                                                                                               1024)
    assert AuditRecord.objects.get(action="host.update").via == "backoffice"
