"""Long work as an Operation: the audit export runs as a task, reports progress, and its
file is downloadable by the tenant only."""

import asyncio
import csv
import io

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.core import events
from apps.core.models import Operation
from apps.core.services import export_audit_log
from apps.tenants import services


def test_audit_export_runs_to_completion_and_downloads(api, a_owner, actor, django_capture_on_commit_callbacks):
    owner = actor(a_owner)
    for n in range(3):
        services.generate_key_pair(owner, name=f"k{n}")
    with django_capture_on_commit_callbacks(execute=True):
        response = api(a_owner).post("/api/v1/audit-log/export", {"action": "keypair."})
    assert response.status_code == 202
    op_id = response.json()["id"]
    body = api(a_owner).get(f"/api/v1/operations/{op_id}").json()
    assert (body["status"], body["progress"], body["result"]["records"]) == ("succeeded", 100, 3)
    assert "3 records to write" in body["log"]

    download = api(a_owner).get(f"/api/v1/operations/{op_id}/download")
    rows = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["keypair.generate"] * 3


def test_export_with_bad_filters_is_400(api, a_owner):
    response = api(a_owner).post("/api/v1/audit-log/export", {"since": "not a date"})
    assert response.status_code == 400 and "since" in response.json()["fields"]
    assert not Operation.objects.exists()


async def receive_within(layer, channel, seconds):
    return await asyncio.wait_for(layer.receive(channel), seconds)


def test_progress_is_published_to_the_tenant_group(a_owner, actor, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.tenant_group(a_owner.tenant.pk), channel)
    with django_capture_on_commit_callbacks(execute=True):
        operation = export_audit_log(actor(a_owner), filters={})
    statuses = []
    while not statuses or statuses[-1][1] != "succeeded":
        message = async_to_sync(receive_within)(layer, channel, 5)
        statuses.append((message["payload"]["id"], message["payload"]["status"]))
    assert statuses[0] == (operation.public_id, "running")
    assert statuses[-1] == (operation.public_id, "succeeded")


def test_events_are_not_sent_when_the_transaction_rolls_back(a_owner, actor, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks() as callbacks:
        try:
            with transaction.atomic():
                events.publish(a_owner.tenant.pk, {"type": "x"})
                raise RuntimeError
        except RuntimeError:
            pass
    assert callbacks == []
