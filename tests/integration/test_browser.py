"""End-to-end: a real Chromium against the real ASGI app under daphne (see conftest.py).

1. A new user signs up, lands on the dashboard (tenant, role, quota bars, live websocket),
   which is kept as a screenshot; creates a read-only sub-account, signs out, signs in as it,
   and is refused a key pair (403 page, nothing created, an error in the audit log).
2. The owner generates a key pair: the private key is shown once, never again.
3. Live events: a dashboard open in one tab refreshes its quota bars when another tab creates
   a key pair (websocket /ws/events/ → htmx)."""

from __future__ import annotations

import struct
import zlib

import pytest
from django.contrib.auth import get_user_model

expect = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed").expect

from apps.core.models import AuditRecord
from apps.tenants.models import KeyPair, Membership, Tenant
from tests.factories.tenants import PASSWORD, make_tenant
from tests.integration.pages import sign_in

LIVE = "●"  # #live-status once /ws/events/ is connected (static/js/live.js)

def _png_facts(path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data) of a PNG, without Pillow."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def generate_key(page, name: str):
    """Submit #generate-key; returns the POST's response."""
    form = page.locator("#generate-key")
    form.locator("input[name=name]").fill(name)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/key-pairs/")) as info:
        form.get_by_role("button", name="Generate").click()
    page.wait_for_load_state()
    return info.value


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the server process must see (and write) committed rows
def test_signup_members_and_read_only_refusal(page, daphne_server, output_dir):
    base = daphne_server.url
    tenant_name, owner, owner_password = "Acme Rockets", "wile-e", "Rocket-skates-1949!"
    viewer, viewer_password = "road-runner", "Meep-meep-Desert-77"

    # 1. Sign up: a tenant of one's own, as its owner, on the dashboard.
    page.goto("/signup/")
    form = page.locator("form:has(input[name=tenant_name])")
    form.locator("input[name=tenant_name]").fill(tenant_name)
    form.locator("input[name=username]").fill(owner)
    form.locator("input[name=email]").fill("wile@acme.test")
    form.locator("input[name=password]").fill(owner_password)
    form.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{base}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    subtitle = page.locator("p.subtitle")
    expect(subtitle).to_contain_text(tenant_name)
    expect(subtitle.locator("strong")).to_have_text("owner")
    expect(page.get_by_test_id("whoami")).to_have_text(owner)
    expect(page.get_by_role("alert").filter(has_text=f"Tenant {tenant_name} is ready")).to_have_count(1)
    quota_rows = page.locator(".quota-row")
    expect(quota_rows.first).to_be_visible()
    assert quota_rows.count() >= 2  # sub-accounts and key pairs at least
    expect(page.locator(".quota-row[data-quota=key_pairs] [data-quota-used]")).to_have_text("0")

    # 6. The live-events websocket (/ws/events/) connects: the navbar says so.
    expect(page.locator("#live-status")).to_have_text(LIVE)

    # 2. The dashboard, kept for people to look at.
    shot = output_dir / "dashboard.png"
    shot.unlink(missing_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file()
    width, height, distinct = _png_facts(shot)
    assert shot.stat().st_size > 10_000, f"suspiciously small screenshot: {shot.stat().st_size} bytes"
    assert width >= 1000 and height >= 500, (width, height)
    assert distinct > 20, "the screenshot looks blank"

    # 3. A read-only sub-account, through the members page.
    page.goto("/members/")
    create = page.locator("#create-member")
    create.locator("input[name=username]").fill(viewer)
    create.locator("input[name=email]").fill("runner@acme.test")
    create.locator("input[name=password]").fill(viewer_password)
    create.locator("select[name=role]").select_option("readonly")
    create.get_by_role("button", name="Create").click()
    expect(page).to_have_url(f"{base}/members/")
    expect(page.get_by_role("alert").filter(has_text="Sub-account created")).to_have_count(1)
    row = page.locator(f"tr[data-member='{viewer}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("Read-only")
    expect(page.locator(f"tr[data-member='{owner}']")).to_contain_text("Owner")

    # 4. Sign out (the navbar button posts to /logout/), sign in as the sub-account.
    page.locator("nav").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base}/login/")
    expect(page.get_by_test_id("whoami")).to_have_count(0)
    sign_in(page, viewer, viewer_password)
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("p.subtitle")).to_contain_text(tenant_name)
    expect(page.locator("p.subtitle strong")).to_have_text("readonly")

    # 5. A read-only member cannot generate a key pair: 403 page with the reason, no key.
    page.goto("/key-pairs/")
    response = generate_key(page, "runner-key")
    assert response.status == 403
    expect(page.get_by_role("alert").filter(has_text="does not allow")).to_have_count(1)
    expect(page.get_by_test_id("private-key")).to_have_count(0)
    key_table = page.locator("table").first
    expect(key_table.locator("tbody tr")).to_have_count(1)
    expect(key_table.locator("tbody tr")).to_have_text("No key pairs.")
    expect(key_table).not_to_contain_text("runner-key")

    # ... and in the database: no key pair, one audited refusal for that user.
    tenant = Tenant.objects.get(name=tenant_name)
    user = get_user_model().objects.get(username=viewer)
    assert Membership.objects.get(tenant=tenant, user=user).role == "readonly"
    assert not KeyPair.objects.filter(tenant=tenant).exists()
    refusals = AuditRecord.objects.filter(action="keypair.generate", result=AuditRecord.RESULT_ERROR, user=user)
    assert refusals.count() == 1, list(AuditRecord.objects.values_list("action", "result", "username"))
    refusal = refusals.get()
    assert refusal.tenant_id == tenant.pk
    assert refusal.error_code == "permission_denied"
    assert "does not allow" in refusal.reason
    assert refusal.via == "web"


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the server process must see (and write) committed rows
def test_generated_private_key_is_shown_once(page, daphne_server):
    tenant = make_tenant("Key Tenant", owner_username="keyowner")
    sign_in(page, "keyowner", PASSWORD)

    page.goto("/key-pairs/")
    response = generate_key(page, "laptop")
    assert response.status == 200
    secret = page.get_by_test_id("private-key")
    expect(secret).to_contain_text("BEGIN OPENSSH PRIVATE KEY")
    expect(secret).to_contain_text("laptop")
    key_pair = KeyPair.objects.get(tenant=tenant, name="laptop")
    expect(page.locator("table").first.locator("tbody tr", has_text=key_pair.public_id)).to_have_count(1)
    assert "PRIVATE" not in key_pair.public_key

    # Reload. The key was shown on the POST's response, so the browser posts the form again;
    # that must neither show a private key nor make a second key pair.
    page.reload()
    expect(page.get_by_test_id("private-key")).to_have_count(0)
    assert KeyPair.objects.filter(tenant=tenant).count() == 1

    # Back on the page (a fresh GET of /key-pairs/): the key pair is listed, the key is gone.
    page.goto("/key-pairs/")
    expect(page.locator("table").first.locator("tbody tr", has_text=key_pair.public_id)).to_have_count(1)
    expect(page.get_by_test_id("private-key")).to_have_count(0)
    assert "PRIVATE KEY" not in page.content()
    assert KeyPair.objects.filter(tenant=tenant).count() == 1


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the server process must see (and write) committed rows
def test_dashboard_follows_live_events(browser_context, daphne_server):
    make_tenant("Live Tenant", owner_username="liveowner")
    dashboard = browser_context.new_page()
    sign_in(dashboard, "liveowner", PASSWORD)
    used = dashboard.locator(".quota-row[data-quota=key_pairs] [data-quota-used]")
    expect(used).to_have_text("0")
    expect(dashboard.locator("#live-status")).to_have_text(LIVE)

    other_tab = browser_context.new_page()  # same session
    other_tab.goto("/key-pairs/")
    assert generate_key(other_tab, "from-other-tab").status == 200

    # The event reaches the dashboard's websocket: a toast, and htmx re-fetches the quota bars.
    expect(dashboard.locator("#toasts")).to_contain_text("created")
    expect(used).to_have_text("1")
