"""End-to-end: a real Chromium against the real ASGI app under daphne (tests/integration/conftest.py)
with the real libvirtd behind it.

Two tabs of one signed-in owner: the second creates an instance through the `#create-instance`
form; the first, left alone on /instances/, shows the new row turn `running` without reloading
(the server runs tasks synchronously, so provisioning happens inside the POST and its events
reach the first tab over /ws/events/, whose tbody re-fetches on `portal:instance`). Then, in the
first tab, the instance is resized while it runs, force-stopped and deleted from its detail page,
which puts it in the list's recycle bin, and deleted for good from there. Whatever happens, no
libvirt domain is left behind."""

from __future__ import annotations

import pytest
from django.conf import settings

expect = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed").expect

from apps.compute.drivers.base import NotFound
from apps.compute.drivers.libvirt import LibvirtDriver
from apps.compute.models import Host, Instance
from apps.compute.services import create_flavor
from apps.core.actor import Actor
from apps.core.models import PlatformSettings
from tests.factories.tenants import PASSWORD, make_tenant
from tests.integration.guests import remove_instances
from tests.integration.pages import sign_in

LIVE = "●"  # #live-status once /ws/events/ is connected (static/js/live.js)
RUNNING_TIMEOUT_MS = 60_000  # create → domain started, inside the POST, seen through the websocket
INSTANCE_NAME = "browser-vm"


@pytest.mark.browser
@pytest.mark.libvirt
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the server process must see (and write) committed rows
def test_instance_created_in_one_tab_goes_live_in_another(tiny_image, browser_context, daphne_server, output_dir):
    base = daphne_server.url
    tenant = make_tenant("Compute Tenant", owner_username="vmowner")
    PlatformSettings.objects.update_or_create(pk=1, defaults={"recycle_bin_hours": 24})
    create_flavor(Actor.system(), name="t1.hot", vcpus=2, ram_mb=256)
    driver = LibvirtDriver(settings.PORTAL_LIBVIRT_URI)
    try:
        # Tab 1: the instance list, signed in, live websocket connected.
        listing = browser_context.new_page()
        sign_in(listing, "vmowner", PASSWORD)
        listing.goto("/instances/")
        expect(listing.get_by_role("heading", name="Instances", exact=True)).to_be_visible()
        expect(listing.locator("#instances tbody tr")).to_have_text("No instances.")
        expect(listing.locator("#live-status")).to_have_text(LIVE)
        listing.evaluate("window.__marker = 1")  # gone if tab 1 navigates or reloads

        # Tab 2 (same session): create one t1.nano instance of the tiny image.
        creator = browser_context.new_page()
        creator.goto("/instances/")
        form = creator.locator("#create-instance")
        form.locator("input[name=name]").fill(INSTANCE_NAME)
        form.locator("select[name=flavor]").select_option("t1.nano")
        form.locator("select[name=image]").select_option(tiny_image.public_id)
        form.locator("input[name=count]").fill("1")
        with creator.expect_response(
            lambda r: r.request.method == "POST" and r.url == f"{base}/instances/", timeout=RUNNING_TIMEOUT_MS
        ) as info:
            form.get_by_role("button", name="Create").click()
        assert info.value.status == 302, info.value.status  # redirect back to the list
        creator.wait_for_load_state()
        expect(creator).to_have_url(f"{base}/instances/")
        expect(creator.get_by_role("alert").filter(has_text="Instance creation started")).to_have_count(1)

        instance = Instance.objects.get(tenant=tenant, name=INSTANCE_NAME)
        assert instance.status == Instance.RUNNING, (instance.status, instance.status_reason)
        assert driver.domain_info(instance.public_id).state == "running"

        # Tab 1 follows over the websocket: the new row, running, and no navigation.
        row = listing.locator(f"tr[data-instance='{instance.public_id}']")
        expect(row.locator("[data-status=running]")).to_be_visible(timeout=RUNNING_TIMEOUT_MS)
        expect(row).to_contain_text(INSTANCE_NAME)
        expect(row).to_contain_text("t1.nano")
        expect(row).to_contain_text(tiny_image.name)
        assert listing.evaluate("window.__marker") == 1, "the instance list reloaded instead of updating live"
        assert listing.url == f"{base}/instances/"

        shot = output_dir / "instances.png"
        shot.unlink(missing_ok=True)
        listing.screenshot(path=str(shot), full_page=True)
        assert shot.is_file() and shot.stat().st_size > 10_000, "the screenshot is missing or blank"

        # Tab 1: the detail page; resize the running instance (vCPUs and memory plugged in live).
        row.get_by_role("link", name=INSTANCE_NAME).click()
        expect(listing).to_have_url(f"{base}/instances/{instance.public_id}/")
        status = listing.locator("#instance-status [data-status]")
        expect(status).to_have_attribute("data-status", "running")
        listing.locator("#resize select[name=flavor]").select_option("t1.hot")
        listing.locator("#resize").get_by_role("button", name="Resize").click()
        expect(listing.get_by_role("alert").filter(has_text="Resize requested")).to_have_count(1)
        expect(status).to_have_attribute("data-status", "running", timeout=RUNNING_TIMEOUT_MS)
        resized = Instance.objects.get(pk=instance.pk)
        assert (resized.status, resized.vcpus, resized.ram_mb) == ("running", 2, 256), resized.status_reason
        assert (driver.domain_info(instance.public_id).vcpus, driver.domain_info(instance.public_id).memory_mb) == (
            2, 256)
        expect(listing.get_by_role("row", name="Flavor")).to_contain_text("t1.hot")
        detail_shot = output_dir / "instance-resized.png"
        listing.screenshot(path=str(detail_shot), full_page=True)
        assert detail_shot.stat().st_size > 10_000, "the screenshot is missing or blank"

        # Force stop.
        listing.get_by_role("button", name="Force stop", exact=True).click()
        expect(status).to_have_attribute("data-status", "stopped", timeout=RUNNING_TIMEOUT_MS)
        expect(listing.get_by_role("alert").filter(has_text="Force stop requested")).to_have_count(1)
        assert Instance.objects.get(pk=instance.pk).status == Instance.STOPPED
        assert driver.domain_info(instance.public_id).state == "shutoff"

        # Tab 1: delete, confirming the browser's dialog; back on the list, the row has moved to
        # the recycle bin, shut down; from there, "Delete now" removes it for good.
        dialogs = []

        def accept(dialog):
            dialogs.append(dialog.message)
            dialog.accept()

        listing.once("dialog", accept)
        listing.get_by_role("button", name="Delete", exact=True).click()
        expect(listing).to_have_url(f"{base}/instances/", timeout=RUNNING_TIMEOUT_MS)
        assert dialogs == [f"Delete {INSTANCE_NAME}?"], dialogs
        expect(listing.get_by_role("alert").filter(has_text="Delete requested")).to_have_count(1)
        expect(listing.locator(f"#instances tr[data-instance='{instance.public_id}']")).to_have_count(0)
        recycled = listing.locator(f"#recycle-bin tr[data-instance='{instance.public_id}']")
        expect(recycled).to_have_count(1)
        listing.screenshot(path=str(output_dir / "instances-recycle-bin.png"), full_page=True)
        assert Instance.objects.get(pk=instance.pk).status == Instance.RECYCLED
        assert driver.domain_info(instance.public_id).state == "shutoff"
        listing.once("dialog", accept)
        recycled.get_by_role("button", name="Delete now").click()
        expect(listing.get_by_role("alert").filter(has_text="Delete now requested")).to_have_count(1)
        assert dialogs[-1] == f"Delete {INSTANCE_NAME} for good?", dialogs
        expect(listing.locator(f"tr[data-instance='{instance.public_id}']")).to_have_count(0)
        assert Instance.objects.get(pk=instance.pk).status == Instance.DELETED
        with pytest.raises(NotFound):
            driver.domain_info(instance.public_id)
        assert Host.objects.get(uri=settings.PORTAL_LIBVIRT_URI).instances_count == 0
    finally:
        remove_instances(tenant, driver)
