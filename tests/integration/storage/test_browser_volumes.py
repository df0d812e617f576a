"""End-to-end: block storage in a real Chromium against the real ASGI app under daphne
(tests/integration/conftest.py), with the real libvirtd and the seeded dir pool behind it.

A tenant owner has one running instance of the tiny image (made through the service in this
process). In the browser, on /volumes/, the owner creates a 1 GiB volume through the
`#create-volume` form and lands on its detail page, where it is `available`; attaches it to the
instance through `#attach-volume` (the page shows `in-use` and `/dev/vdb`, and the guest's disk
agent reports the new disk, by its serial — the volume id — on the serial console); takes a
snapshot through `#snapshot-volume` and sees its row in `#snapshots` turn `available` without
the page reloading; and finds, back on /volumes/, the instance in the row's "Attached to"
column. The server runs tasks inline (PORTAL_TASKS_SYNC=1), so each action is done when its
POST answers; the pages still wait with generous timeouts. Whatever happens, the instance is
deleted, no libvirt domain is left behind and the volume's file (its snapshots live inside it,
qcow2 internal snapshots) is removed from the pool."""

from __future__ import annotations

import pytest
from django.core.management import call_command

expect = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed").expect

from apps.compute import services as compute
from apps.compute.models import Instance
from apps.core.policies import OWNER
from apps.storage.backends import get_storage_driver
from apps.storage.models import Snapshot, Volume
from apps.tenants.models import Membership
from tests.factories.tenants import PASSWORD, actor_for, make_tenant
from tests.integration.guests import AGENT_TIMEOUT, remove_instances, settled, wait_for_line
from tests.integration.pages import expect_landed, sign_in, submit

LIVE = "●"  # #live-status once /ws/events/ is connected (static/js/live.js)
BOOT_TIMEOUT = 90  # seconds: the tiny guest under TCG, until BOOT-OK on its console
TASK_TIMEOUT_MS = 60_000  # a POST whose task (libvirt, qemu-img) runs inside it, then its page
USERNAME = "volowner"
INSTANCE_NAME = "vol-browser-vm"
VOLUME_NAME = "browser-data"
SNAPSHOT_NAME = "browser-snap"


def _remove_leftovers(tenant, libvirt_driver) -> None:
    """Delete the tenant's instances through the service (which frees their volumes) and their
    domains, then the volumes' files (with the qcow2 snapshots inside them) from the pool."""
    try:
        for instance in remove_instances(tenant, libvirt_driver):
            assert not instance.volume_attachments.exists(), "deleting the instance did not free its volumes"
    finally:
        for volume in Volume.objects.filter(tenant=tenant).select_related("pool", "pool__host"):
            driver = get_storage_driver(volume.pool)
            try:
                for snapshot in Snapshot.objects.filter(volume=volume):
                    driver.delete_snapshot(volume.public_id, snapshot.public_id, missing_ok=True)
            finally:
                driver.delete_volume(volume.public_id, missing_ok=True)


@pytest.mark.browser
@pytest.mark.libvirt
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the server process must see (and write) committed rows
def test_volume_created_attached_and_snapshotted_in_the_browser(tiny_image, libvirt_driver, page, daphne_server,
                                                                 output_dir):
    base = daphne_server.url
    call_command("seed_storage")  # the local dir pool and the default volume type
    tenant = make_tenant("Volume Tenant", owner_username=USERNAME)
    owner = actor_for(Membership.objects.get(tenant=tenant, role=OWNER))
    try:
        # The instance, running, its guest booted (its disk agent watches for new disks).
        [instance] = compute.create_instances(owner, name=INSTANCE_NAME, flavor="t1.nano", image=tiny_image.public_id)
        instance = settled(instance)
        assert instance.status == Instance.RUNNING, instance.status_reason
        wait_for_line(instance, r"BOOT-OK", BOOT_TIMEOUT)

        # /volumes/: empty; create a 1 GiB empty volume through the form.
        sign_in(page, USERNAME, PASSWORD)
        page.goto("/volumes/")
        expect(page.get_by_role("heading", name="Volumes", exact=True)).to_be_visible()
        expect(page.locator("#volumes tbody tr")).to_have_text("No volumes.")
        expect(page.locator("#live-status")).to_have_text(LIVE)
        form = page.locator("#create-volume")
        form.locator("input[name=name]").fill(VOLUME_NAME)
        form.locator("input[name=size_gb]").fill("1")
        expect(form.locator("select[name=image]")).to_have_value("")  # empty, no source
        expect(form.locator("select[name=snapshot]")).to_have_value("")
        submit(page, form, "Create", f"{base}/volumes/", timeout_ms=TASK_TIMEOUT_MS)

        # Its detail page: available.
        volume = Volume.objects.get(tenant=tenant, name=VOLUME_NAME)
        detail = f"{base}/volumes/{volume.public_id}/"
        expect(page).to_have_url(detail, timeout=TASK_TIMEOUT_MS)
        expect_landed(page, "Volume creation started.", timeout_ms=TASK_TIMEOUT_MS)
        expect(page.get_by_role("heading", name=VOLUME_NAME)).to_be_visible()
        status = page.locator("#volume-status > p [data-status]")  # the volume's own tag, not its snapshots'
        expect(status).to_have_attribute("data-status", "available", timeout=TASK_TIMEOUT_MS)
        attachments = page.locator("#attachments")
        expect(attachments).to_contain_text("1 GiB")
        expect(attachments.locator("tr", has_text="Attached to")).to_contain_text("—")
        expect(page.locator("#snapshots")).to_contain_text("No snapshots.")
        volume.refresh_from_db()
        assert (volume.status, volume.size_gb) == (Volume.AVAILABLE, 1), volume.status_reason

        # Attach it to the instance: in-use as /dev/vdb, and the guest sees the disk.
        attach = page.locator("#attach-volume")
        attach.locator("select[name=instance]").select_option(instance.public_id)
        submit(page, attach, "Attach", f"{detail}attach", timeout_ms=TASK_TIMEOUT_MS)
        expect_landed(page, "Attaching.", timeout_ms=TASK_TIMEOUT_MS)
        expect(page).to_have_url(detail)
        expect(status).to_have_attribute("data-status", "in-use", timeout=TASK_TIMEOUT_MS)
        expect(attachments).to_contain_text("/dev/vdb")
        expect(attachments.locator("tr", has_text="Attached to")).to_contain_text(f"{INSTANCE_NAME} as /dev/vdb")
        volume.refresh_from_db()
        assert volume.status == Volume.IN_USE, volume.status_reason
        assert list(volume.attachments.values_list("instance_id", "device")) == [(instance.pk, "vdb")]
        wait_for_line(instance, rf"DISK-ADDED vd\w serial={volume.public_id}\b", AGENT_TIMEOUT)

        # Take a snapshot (of the attached volume: the guest's QEMU takes it); its row turns
        # available on the page the POST landed on, without that page reloading.
        snap = page.locator("#snapshot-volume")
        snap.locator("input[name=name]").fill(SNAPSHOT_NAME)
        submit(page, snap, "Take snapshot", f"{detail}snapshot", timeout_ms=TASK_TIMEOUT_MS)
        expect_landed(page, "Taking a snapshot.", timeout_ms=TASK_TIMEOUT_MS)
        expect(page).to_have_url(detail)
        expect(page.locator("#live-status")).to_have_text(LIVE)
        page.evaluate("window.__marker = 1")  # gone if the page navigates or reloads
        snapshot = Snapshot.objects.get(volume=volume, name=SNAPSHOT_NAME)
        row = page.locator(f"#snapshots tr[data-snapshot='{snapshot.public_id}']")
        expect(row.locator("[data-status]")).to_have_attribute("data-status", "available", timeout=TASK_TIMEOUT_MS)
        expect(row).to_contain_text(SNAPSHOT_NAME)
        expect(row).to_contain_text("1 GiB")
        expect(status).to_have_attribute("data-status", "in-use")
        assert page.evaluate("window.__marker") == 1, "the volume page reloaded instead of updating live"
        assert page.url == detail
        snapshot.refresh_from_db()
        assert snapshot.status == Snapshot.AVAILABLE, snapshot.status_reason
        assert snapshot.public_id in get_storage_driver(volume.pool).volume_info(volume.public_id).snapshots

        shot = output_dir / "volumes.png"
        shot.unlink(missing_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.is_file() and shot.stat().st_size > 10_000, "the screenshot is missing or blank"

        # Back on /volumes/: the row, in-use, attached to the instance.
        page.goto("/volumes/")
        expect(page.locator("#volumes thead th").nth(5)).to_have_text("Attached to")
        listed = page.locator(f"#volumes tbody tr[data-volume='{volume.public_id}']")
        expect(listed.locator("[data-status]")).to_have_attribute("data-status", "in-use")
        expect(listed.locator("td").nth(0)).to_have_text(VOLUME_NAME)
        expect(listed.locator("td").nth(3)).to_have_text("1 GiB")
        expect(listed.locator("td").nth(5)).to_have_text(f"{INSTANCE_NAME} (vdb)")
        expect(listed.locator("td").nth(5).get_by_role("link", name=INSTANCE_NAME)).to_have_attribute(
            "href", f"/instances/{instance.public_id}/")
    finally:
        _remove_leftovers(tenant, libvirt_driver)
