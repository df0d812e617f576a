import pytest
from django.contrib.auth import get_user_model
from guardian.shortcuts import get_perms

from apps.core.actor import Actor
from apps.core.exceptions import Conflict, PermissionDenied, QuotaExceeded, TenantFrozen, ValidationFailed
from apps.core.models import AuditRecord, PlatformSettings
from apps.core.policies import ADMIN, MEMBER, OWNER, READONLY
from apps.tenants import quotas, selectors, services
from apps.tenants.models import KeyPair, Membership, Quota, Tenant
from tests.factories.tenants import PASSWORD

User = get_user_model()
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 me@laptop"
RSA_1024 = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDM62PuAkptLlnHKnaAvxdtD7zbE85qNcTKI1+YEeuDEMR4Yhy6XcrgNY06uOHMcpGK5jc"
    "rm2tZVXUXYTwA9cH2IARp57CRHlngKUkqKoLf58SS+4LE6+oL7ZVoFsBfxDEMb2nFVaXtTpMG7gDUvDsXfyu3xMXUyMqONUSQFzDTQQ=="
)


def anonymous():
    return Actor.anonymous(client_ip="192.0.2.7", request_id="req-signup-0001")


# --- sign-up and tenants ------------------------------------------------------------------

def test_sign_up_creates_user_tenant_and_owner_membership(db):
    tenant = services.sign_up(
        anonymous(), username="carol", email="carol@example.test", password=PASSWORD, tenant_name=" Carol Co "
    )
    membership = Membership.objects.get(tenant=tenant)
    assert (tenant.name, membership.user.username, membership.role) == ("Carol Co", "carol", OWNER)
    record = AuditRecord.objects.get(action="tenant.signup")
    assert (record.result, record.resource_id, record.client_ip) == ("ok", tenant.public_id, "192.0.2.7")
    assert (record.username, record.actor_kind) == ("carol", "user")


def test_sign_up_refused_when_operators_close_it(db):
    PlatformSettings.objects.update_or_create(pk=1, defaults={"signup_enabled": False, "signup_message": "Invite only."})
    with pytest.raises(PermissionDenied, match="Invite only."):
        services.sign_up(anonymous(), username="dave", email="d@example.test", password=PASSWORD, tenant_name="D")
    assert not User.objects.filter(username="dave").exists()
    assert AuditRecord.objects.get(action="tenant.signup").result == "error"


def test_sign_up_rejects_weak_password_and_taken_username_with_field_messages(tenant_a):
    with pytest.raises(ValidationFailed) as exc:
        services.sign_up(anonymous(), username="alice", email="not-an-email", password="123", tenant_name="X")
    assert set(exc.value.fields) == {"username", "email", "password"}
    assert "This password is too short. It must contain at least 10 characters." in exc.value.fields["password"]
    assert Tenant.objects.count() == 1


def test_a_user_can_own_several_tenants_and_switch(a_owner, actor):
    second = services.create_tenant(actor(a_owner), name="Side project")
    ids = [m.tenant.public_id for m in selectors.memberships_of(a_owner.user)]
    assert sorted(ids) == sorted([a_owner.tenant.public_id, second.public_id])
    switched = selectors.resolve_actor(Actor(user=a_owner.user), tenant_public_id=second.public_id, strict=True)
    assert (switched.tenant, switched.role) == (second, OWNER)


def test_only_operators_create_tenants_for_someone_else(a_owner, b_owner, actor):
    with pytest.raises(PermissionDenied):
        services.create_tenant(actor(a_owner), name="For Bob", owner=b_owner.user)


# --- sub-accounts and roles ---------------------------------------------------------------

def test_owner_creates_sub_account_with_role(a_owner, actor):
    membership = services.create_sub_account(
        actor(a_owner), username="viewer", email="v@example.test", password=PASSWORD, role=READONLY
    )
    assert (membership.tenant, membership.role, membership.created_by) == (a_owner.tenant, READONLY, a_owner.user)
    assert User.objects.get(username="viewer").check_password(PASSWORD)


@pytest.mark.parametrize("role", [MEMBER, READONLY])
def test_members_and_readonly_cannot_create_sub_accounts(request, role, actor):
    who = request.getfixturevalue("a_member" if role == MEMBER else "a_readonly")
    with pytest.raises(PermissionDenied):
        services.create_sub_account(actor(who), username="x1", email="", password=PASSWORD, role=READONLY)
    assert not User.objects.filter(username="x1").exists()
    record = AuditRecord.objects.filter(action="member.create").latest("id")
    assert (record.result, record.error_code, record.username) == ("error", "permission_denied", who.user.username)


def test_admin_cannot_create_or_promote_owners(a_admin, a_readonly, actor):
    with pytest.raises(PermissionDenied, match="Only an owner"):
        services.create_sub_account(actor(a_admin), username="x2", email="", password=PASSWORD, role=OWNER)
    with pytest.raises(PermissionDenied, match="Only an owner"):
        services.update_member(actor(a_admin), membership=a_readonly, role=OWNER)
    assert Membership.objects.get(pk=a_readonly.pk).role == READONLY


def test_owner_disables_a_sub_account_and_it_loses_the_tenant(a_owner, a_readonly, actor):
    services.update_member(actor(a_owner), membership=a_readonly, is_active=False)
    resolved = selectors.resolve_actor(Actor(user=a_readonly.user), tenant_public_id=None, strict=False)
    assert resolved.tenant is None
    assert not KeyPair.objects.for_actor(resolved).exists()


def test_the_last_owner_stays_an_active_owner(a_owner, a_admin, actor):
    services.update_member(actor(a_owner), membership=a_admin, role=OWNER)
    with pytest.raises(PermissionDenied, match="your own"):
        services.update_member(actor(a_owner), membership=a_owner, role=READONLY)
    promoted = Membership.objects.get(pk=a_admin.pk)
    services.update_member(actor(promoted), membership=a_owner, role=ADMIN)
    with pytest.raises(Conflict, match="at least one active owner"):
        services.update_member(Actor.system(tenant=a_owner.tenant), membership=promoted, is_active=False)


def test_unknown_policy_is_refused(a_owner, a_readonly, actor):
    with pytest.raises(ValidationFailed) as exc:
        services.update_member(actor(a_owner), membership=a_readonly, policies=["GodMode"])
    assert exc.value.fields == {"policies": ["Unknown: GodMode."]}


def test_extra_area_policy_lets_a_readonly_member_write_that_area(a_owner, a_readonly, actor):
    updated = services.update_member(actor(a_owner), membership=a_readonly, policies=["ComputeFullAccess"])
    key_pair = services.import_key_pair(actor(updated), name="ok", public_key=ED25519)
    assert key_pair.created_by == a_readonly.user
    with pytest.raises(PermissionDenied):
        services.create_sub_account(actor(updated), username="nope", email="", password=PASSWORD, role=READONLY)


def test_guardian_grant_allows_one_resource_only(a_owner, a_readonly, actor):
    owner = actor(a_owner)
    mine = services.import_key_pair(owner, name="shared", public_key=ED25519)
    other, _ = services.generate_key_pair(owner, name="other")
    services.grant_resource(owner, membership=a_readonly, resource_id=mine.public_id, action="delete")
    assert get_perms(a_readonly.user, mine) == ["delete_keypair"]

    services.delete_key_pair(actor(a_readonly), key_pair=mine)
    with pytest.raises(PermissionDenied):
        services.delete_key_pair(actor(a_readonly), key_pair=other)
    assert KeyPair.objects.get(pk=mine.pk).deleted_at is not None
    assert KeyPair.objects.get(pk=other.pk).deleted_at is None


def test_grant_of_another_tenants_resource_is_not_found(a_owner, a_readonly, b_owner, actor):
    theirs = services.import_key_pair(actor(b_owner), name="b-key", public_key=ED25519)
    from apps.core.exceptions import NotFound

    with pytest.raises(NotFound):
        services.grant_resource(actor(a_owner), membership=a_readonly, resource_id=theirs.public_id, action="view")


# --- frozen tenants -----------------------------------------------------------------------

def test_frozen_tenant_reads_but_cannot_create(a_owner, operator, actor):
    services.import_key_pair(actor(a_owner), name="before", public_key=ED25519)
    services.freeze_tenant(operator, tenant=a_owner.tenant, reason="Unpaid invoice 2026-10")
    with pytest.raises(TenantFrozen, match="Unpaid invoice 2026-10"):
        services.generate_key_pair(actor(a_owner), name="after")
    assert [k.name for k in selectors.list_key_pairs(actor(a_owner))] == ["before"]
    services.unfreeze_tenant(operator, tenant=a_owner.tenant)
    assert services.generate_key_pair(actor(a_owner), name="after")[0].name == "after"


def test_only_operators_freeze(a_owner, actor):
    with pytest.raises(PermissionDenied):
        services.freeze_tenant(actor(a_owner), tenant=a_owner.tenant, reason="x")
    assert not Tenant.objects.get(pk=a_owner.tenant.pk).is_frozen


def test_freeze_needs_a_reason(a_owner, operator):
    with pytest.raises(ValidationFailed):
        services.freeze_tenant(operator, tenant=a_owner.tenant, reason="  ")


# --- key pairs ----------------------------------------------------------------------------

def test_import_key_pair_stores_normalised_key_and_sha256_fingerprint(a_owner, actor):
    key_pair = services.import_key_pair(actor(a_owner), name="laptop", public_key=ED25519)
    assert key_pair.public_key == ED25519.rsplit(" ", 1)[0]
    assert key_pair.key_type == "ssh-ed25519"
    assert key_pair.fingerprint == "SHA256:lbmsoA0yIEcEiVDRnMWuzm+nV+3ZEEpVIURqFoeSspg"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "Expected an OpenSSH public key"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        ("ssh-ed25519 AAAAB3NzaC1yc2E=", "Not a valid SSH public key"),
        (RSA_1024, "at least 2048 bits"),
    ],
)
def test_import_rejects_bad_keys_with_a_field_message(a_owner, actor, text, message):
    with pytest.raises(ValidationFailed) as exc:
        services.import_key_pair(actor(a_owner), name="bad", public_key=text)
    assert message in exc.value.fields["public_key"][0]
    assert not KeyPair.objects.exists()


def test_generated_private_key_matches_the_stored_public_key(a_owner, actor):
    from cryptography.hazmat.primitives import serialization

    key_pair, private_text = services.generate_key_pair(actor(a_owner), name="gen", key_type="ed25519")
    private = serialization.load_ssh_private_key(private_text.encode(), password=None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert key_pair.public_key == public.decode()
    assert private_text not in str(KeyPair.objects.filter(pk=key_pair.pk).values().get())


def test_duplicate_key_pair_name_is_a_conflict(a_owner, actor):
    services.import_key_pair(actor(a_owner), name="dup", public_key=ED25519)
    with pytest.raises(Conflict) as exc:
        services.generate_key_pair(actor(a_owner), name="dup")
    assert exc.value.fields == {"name": ["Already used in this tenant."]}


def test_readonly_member_cannot_create_key_pairs(a_readonly, actor):
    with pytest.raises(PermissionDenied, match="readonly"):
        services.generate_key_pair(actor(a_readonly), name="x")
    assert not KeyPair.objects.exists()


# --- quotas -------------------------------------------------------------------------------

def test_key_pairs_consume_and_release_quota(a_owner, operator, actor):
    services.set_quota(operator, tenant=a_owner.tenant, resource="key_pairs", limit=2)
    owner = actor(a_owner)
    first, _ = services.generate_key_pair(owner, name="k1")
    services.generate_key_pair(owner, name="k2")
    with pytest.raises(QuotaExceeded) as exc:
        services.generate_key_pair(owner, name="k3")
    assert exc.value.fields == {"key_pairs": ["Quota exceeded for Key pairs: 2 of 2 used, 1 more requested."]}
    services.delete_key_pair(owner, key_pair=first)
    services.generate_key_pair(owner, name="k3")
    usage = {q["resource"]: q for q in selectors.quota_usage(owner)}
    assert (usage["key_pairs"]["in_use"], usage["key_pairs"]["limit"]) == (2, 2)


def test_operator_defaults_apply_until_a_tenant_override(a_owner, operator, actor):
    services.set_quota_default(operator, resource="key_pairs", limit=7)
    usage = {q["resource"]: q for q in selectors.quota_usage(actor(a_owner))}
    assert usage["key_pairs"]["limit"] == 7
    services.set_quota(operator, tenant=a_owner.tenant, resource="key_pairs", limit=3)
    usage = {q["resource"]: q for q in selectors.quota_usage(actor(a_owner))}
    assert usage["key_pairs"]["limit"] == 3


def test_reservation_commit_and_cancel(tenant_a):
    quotas.register_quota("widgets", "Widgets", default=5)
    held = quotas.reserve(tenant_a, amounts={"widgets": 3})
    with pytest.raises(QuotaExceeded):
        quotas.reserve(tenant_a, amounts={"widgets": 3})
    assert quotas.commit_reservation(held.pk) is True
    assert quotas.commit_reservation(held.pk) is False  # a re-run is a no-op
    row = Quota.objects.get(tenant=tenant_a, resource="widgets")
    assert (row.in_use, row.reserved) == (3, 0)
    second = quotas.reserve(tenant_a, amounts={"widgets": 2})
    quotas.cancel_reservation(second.pk)
    row.refresh_from_db()
    assert (row.in_use, row.reserved) == (3, 0)


def test_expired_reservations_are_swept(tenant_a):
    from datetime import timedelta

    from django.utils import timezone

    quotas.register_quota("widgets", "Widgets", default=5)
    held = quotas.reserve(tenant_a, amounts={"widgets": 4})
    held.expires_at = timezone.now() - timedelta(seconds=1)
    held.save()
    assert quotas.sweep_expired_reservations() == 1
    assert Quota.objects.get(tenant=tenant_a, resource="widgets").reserved == 0


def test_only_operators_set_quotas(a_owner, actor):
    with pytest.raises(PermissionDenied):
        services.set_quota(actor(a_owner), tenant=a_owner.tenant, resource="key_pairs", limit=1000)
