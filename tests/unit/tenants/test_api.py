"""The tenancy API end to end through DRF: auth, tenant selection, errors, tokens."""

import pytest
from rest_framework.test import APIClient

from apps.core.models import AuditRecord
from apps.tenants.models import ApiToken, KeyPair
from tests.factories.tenants import PASSWORD

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 me@laptop"


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_anonymous_gets_401_in_the_error_format(db):
    response = APIClient().get("/api/v1/key-pairs")
    assert response.status_code in (401, 403)
    assert set(response.json()) == {"code", "message", "fields"}


def test_current_tenant_shows_role_and_policies(api, a_readonly):
    body = api(a_readonly).get("/api/v1/tenant").json()
    assert (body["id"], body["role"], body["policies"]) == (a_readonly.tenant.public_id, "readonly", ["ReadOnlyAccess"])


def test_tenant_header_selects_among_my_tenants(api, a_owner):
    client = api(a_owner)
    second = client.post("/api/v1/tenants", {"name": "Second"}).json()
    assert client.get("/api/v1/tenant", HTTP_X_TENANT_ID=second["id"]).json()["name"] == "Second"
    listed = client.get("/api/v1/tenants").json()
    assert listed["count"] == 2 and {t["role"] for t in listed["results"]} == {"owner"}


def test_unknown_tenant_header_is_400(api, a_owner):
    response = api(a_owner).get("/api/v1/tenant", HTTP_X_TENANT_ID="tn-nothere2")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_create_key_pair_returns_private_key_once(api, a_owner):
    client = api(a_owner)
    created = client.post("/api/v1/key-pairs", {"name": "gen"})
    assert created.status_code == 201
    assert created.json()["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    fetched = client.get(f"/api/v1/key-pairs/{created.json()['id']}").json()
    assert "private_key" not in fetched
    assert fetched["fingerprint"].startswith("SHA256:")


def test_bad_payloads_are_400_with_field_messages(api, a_owner):
    client = api(a_owner)
    missing = client.post("/api/v1/key-pairs", {})
    assert missing.status_code == 400
    assert missing.json() == {"code": "invalid", "message": "name: This field is required.",
                              "fields": {"name": ["This field is required."]}}
    bad_key = client.post("/api/v1/key-pairs", {"name": "x", "public_key": "ssh-rsa nope"})
    assert bad_key.status_code == 400 and "public_key" in bad_key.json()["fields"]
    bad_role = client.post("/api/v1/members", {"username": "u", "password": PASSWORD, "role": "god"})
    assert bad_role.status_code == 400 and "role" in bad_role.json()["fields"]
    weak = client.post("/api/v1/members", {"username": "u", "password": "password", "role": "readonly"})
    assert weak.status_code == 400 and "password" in weak.json()["fields"]


def test_readonly_member_gets_403_on_writes_and_sees_lists(api, a_owner, a_readonly):
    api(a_owner).post("/api/v1/key-pairs", {"name": "owned"})
    client = api(a_readonly)
    assert client.get("/api/v1/key-pairs").json()["count"] == 1
    kp_id = KeyPair.objects.get().public_id
    assert client.delete(f"/api/v1/key-pairs/{kp_id}").status_code == 403
    denied = client.post("/api/v1/key-pairs", {"name": "mine"})
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    assert KeyPair.objects.count() == 1


def test_frozen_tenant_create_is_403_with_reason(api, a_owner, operator):
    from apps.tenants.services import freeze_tenant

    freeze_tenant(operator, tenant=a_owner.tenant, reason="Payment overdue")
    response = api(a_owner).post("/api/v1/key-pairs", {"name": "k"})
    assert response.status_code == 403
    assert response.json()["code"] == "tenant_frozen" and "Payment overdue" in response.json()["message"]
    assert api(a_owner).get("/api/v1/key-pairs").status_code == 200


def test_members_api_creates_and_updates_sub_accounts(api, a_owner):
    client = api(a_owner)
    created = client.post("/api/v1/members", {"username": "ro", "email": "ro@example.test", "password": PASSWORD,
                                              "role": "readonly"})
    assert created.status_code == 201
    member_id = created.json()["id"]
    updated = client.patch(f"/api/v1/members/{member_id}", {"role": "member", "is_active": False})
    assert (updated.json()["role"], updated.json()["is_active"]) == ("member", False)
    assert client.get("/api/v1/members?is_active=false").json()["count"] == 1


def test_token_lifecycle_and_scopes(api, a_owner):
    client = api(a_owner)
    created = client.post("/api/v1/tokens", {"name": "ci", "scope": "read", "tenant": a_owner.tenant.public_id})
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert ApiToken.objects.get().token_hash != secret and secret not in str(ApiToken.objects.values().get())
    assert "secret" not in client.get(f"/api/v1/tokens/{created.json()['id']}").json()

    reader = bearer(secret)
    assert reader.get("/api/v1/key-pairs").status_code == 200
    refused = reader.post("/api/v1/key-pairs", {"name": "nope"})
    assert refused.status_code == 403
    assert reader.get("/api/v1/tenant", HTTP_X_TENANT_ID="tn-other999").status_code == 400

    assert client.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 204
    assert bearer(secret).get("/api/v1/key-pairs").status_code == 401


def test_read_write_token_writes_with_the_members_role(api, a_owner, a_readonly):
    secret = api(a_readonly).post("/api/v1/tokens", {"name": "rw", "scope": "read-write"}).json()["secret"]
    assert bearer(secret).post("/api/v1/key-pairs", {"name": "x"}).status_code == 403
    owner_secret = api(a_owner).post("/api/v1/tokens", {"name": "rw"}).json()["secret"]
    assert bearer(owner_secret).post("/api/v1/key-pairs", {"name": "x"}).status_code == 201


def test_garbage_token_is_401(db):
    assert bearer("cpt_forged").get("/api/v1/tenant").status_code == 401
    assert bearer("not-even-ours").get("/api/v1/tenant").status_code == 401


def test_session_writes_need_csrf(a_owner):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(a_owner.user)
    response = client.post("/api/v1/key-pairs", {"name": "csrf"})
    assert response.status_code == 403 and "CSRF" in response.json()["message"]
    assert not KeyPair.objects.exists()


def test_lists_are_paginated(api, a_owner):
    client = api(a_owner)
    for n in range(3):
        client.post("/api/v1/key-pairs", {"name": f"k{n}"})
    page = client.get("/api/v1/key-pairs?page_size=2").json()
    assert (page["count"], len(page["results"]), page["next"] is not None) == (3, 2, True)


def test_key_pair_list_query_count_does_not_grow_with_rows(api, a_owner, django_assert_max_num_queries):
    client = api(a_owner)
    for n in range(5):
        client.post("/api/v1/key-pairs", {"name": f"k{n}"})
    with django_assert_max_num_queries(8):
        assert client.get("/api/v1/key-pairs").json()["count"] == 5


def test_quotas_api(api, a_owner):
    api(a_owner).post("/api/v1/key-pairs", {"name": "k"})
    rows = {q["resource"]: q for q in api(a_owner).get("/api/v1/quotas").json()}
    assert (rows["key_pairs"]["in_use"], rows["key_pairs"]["limit"]) == (1, 20)


def test_roles_and_policies_api(api, a_owner):
    roles = {r["role"]: r["policies"] for r in api(a_owner).get("/api/v1/roles").json()}
    assert roles["readonly"] == ["ReadOnlyAccess"]
    names = {p["name"] for p in api(a_owner).get("/api/v1/policies").json()}
    assert {"AdministratorAccess", "ReadOnlyAccess", "ComputeFullAccess", "IAMReadOnlyAccess"} <= names


def test_signup_api(db):
    response = APIClient().post("/api/v1/signup", {"username": "erin", "email": "e@example.test",
                                                   "password": PASSWORD, "tenant_name": "Erin"}, format="json")
    assert response.status_code == 201 and response.json()["name"] == "Erin"


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_are_served(client, path):
    assert client.get(path).status_code == 200


def test_every_api_call_is_audited_with_request_id_and_ip(api, a_owner):
    response = api(a_owner).post("/api/v1/key-pairs", {"name": "k"}, HTTP_X_REQUEST_ID="req-abcdef123",
                                 REMOTE_ADDR="198.51.100.4")
    record = AuditRecord.objects.get(action="keypair.generate")
    assert (record.result, record.resource_id, record.request_id, record.client_ip, record.via) == (
        "ok", response.json()["id"], "req-abcdef123", "198.51.100.4", "api")
    assert response["X-Request-ID"] == "req-abcdef123"
