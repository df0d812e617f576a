"""The audit log: one record per service call, ok or error, visible per tenant."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.actor import Actor
from apps.core.audit import audited
from apps.core.exceptions import Conflict
from apps.core.models import AuditRecord
from apps.tenants import services
from apps.tenants.models import Tenant


def test_ok_record_names_who_what_which_and_where(a_owner, actor):
    who = Actor(user=a_owner.user, client_ip="203.0.113.9", request_id="req-00000042", via="web")
    who = who.with_tenant(a_owner.tenant, "owner", frozenset())
    key_pair, _ = services.generate_key_pair(who, name="k")
    record = AuditRecord.objects.get(action="keypair.generate")
    assert (record.tenant, record.user, record.username, record.actor_kind) == (
        a_owner.tenant, a_owner.user, a_owner.user.username, "user")
    assert (record.service, record.resource_type, record.resource_id, record.result) == (
        "compute", "keypair", key_pair.public_id, "ok")
    assert (record.client_ip, record.request_id, record.via) == ("203.0.113.9", "req-00000042", "web")


def test_failed_call_keeps_its_record_but_not_its_changes(tenant_a):
    @audited("test.explode", area="iam")
    def rename_then_fail(actor, *, tenant):
        Tenant.objects.filter(pk=tenant.pk).update(name="changed")
        raise Conflict("it went wrong")

    with pytest.raises(Conflict):
        rename_then_fail(Actor.system(tenant=tenant_a), tenant=tenant_a)
    assert Tenant.objects.get(pk=tenant_a.pk).name == "Tenant A"
    record = AuditRecord.objects.get(action="test.explode")
    assert (record.result, record.error_code, record.reason, record.resource_id) == (
        "error", "conflict", "it went wrong", tenant_a.public_id)
    assert record.actor_kind == "system"


def test_unexpected_errors_are_recorded_without_leaking_details(tenant_a):
    @audited("test.crash", area="iam")
    def crash(actor):
        raise RuntimeError("password=hunter2")

    with pytest.raises(RuntimeError):
        crash(Actor.system(tenant=tenant_a))
    record = AuditRecord.objects.get(action="test.crash")
    assert (record.error_code, record.reason) == ("internal_error", "internal error")


def test_operator_actions_are_recorded_under_the_tenant_they_touch(a_owner, operator):
    services.freeze_tenant(operator, tenant=a_owner.tenant, reason="abuse report")
    record = AuditRecord.objects.get(action="tenant.freeze")
    assert (record.tenant, record.actor_kind, record.resource_id) == (a_owner.tenant, "operator", a_owner.tenant.public_id)


def test_tenants_see_only_their_records_and_can_filter(api, a_owner, b_owner, actor):
    services.generate_key_pair(actor(a_owner), name="a1")
    kp, _ = services.generate_key_pair(actor(a_owner), name="a2")
    services.generate_key_pair(actor(b_owner), name="b1")
    client = api(a_owner)
    everything = client.get("/api/v1/audit-log").json()
    assert {r["tenant"] for r in everything["results"]} == {a_owner.tenant.public_id}
    by_resource = client.get(f"/api/v1/audit-log?resource={kp.public_id}").json()
    assert [r["resource_id"] for r in by_resource["results"]] == [kp.public_id]
    by_action = client.get("/api/v1/audit-log?action=keypair.&result=ok").json()
    assert by_action["count"] == 2
    by_user = client.get(f"/api/v1/audit-log?user={a_owner.user.username}").json()
    assert by_user["count"] >= 2
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert client.get("/api/v1/audit-log", {"since": later}).json()["count"] == 0
    assert client.get("/api/v1/audit-log", {"since": "yesterday"}).status_code == 400


def test_operators_see_every_tenants_records(a_owner, b_owner, operator, actor):
    from apps.core.selectors import list_audit_records

    services.generate_key_pair(actor(a_owner), name="a1")
    services.generate_key_pair(actor(b_owner), name="b1")
    tenants = set(list_audit_records(operator).filter(action="keypair.generate").values_list("tenant", flat=True))
    assert tenants == {a_owner.tenant.pk, b_owner.tenant.pk}


def test_every_service_is_audited():
    """Guard: each public function in an app's services modules (`services`, `*_services`) is
    wrapped by `audited`."""
    import importlib
    import inspect
    import pkgutil

    import apps

    unaudited = []
    modules = [importlib.import_module(f"apps.{app.name}.{m.name}")
               for app in pkgutil.iter_modules(apps.__path__)
               for m in pkgutil.iter_modules([f"{apps.__path__[0]}/{app.name}"])
               if m.name == "services" or m.name.endswith("_services")]
    assert len(modules) >= 5
    for module in modules:
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != module.__name__ or name.startswith("_") or name.startswith("require_"):
                continue
            if name in getattr(module, "UNAUDITED", ()):
                continue
            if not hasattr(fn, "audit_action"):
                unaudited.append(f"{module.__name__}.{name}")
    assert unaudited == []
