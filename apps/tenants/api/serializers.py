"""Input serializers validate shape only; output serializers speak public ids."""

from rest_framework import serializers

from apps.core.policies import ROLE_CHOICES
from apps.tenants.models import ApiToken, KeyPair, Membership, Tenant
from apps.tenants.sshkeys import GENERATED_TYPES


class TenantSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "name", "status", "frozen_reason", "created_at"]
        read_only_fields = fields


class CurrentTenantSerializer(TenantSerializer):
    role = serializers.CharField(allow_null=True)
    policies = serializers.ListField(child=serializers.CharField())

    class Meta(TenantSerializer.Meta):
        fields = TenantSerializer.Meta.fields + ["role", "policies"]
        read_only_fields = fields


class MyTenantSerializer(serializers.ModelSerializer):
    """A tenant the user belongs to, with the user's role in it."""

    id = serializers.CharField(source="tenant.public_id")
    name = serializers.CharField(source="tenant.name")
    status = serializers.CharField(source="tenant.status")

    class Meta:
        model = Membership
        fields = ["id", "name", "status", "role"]
        read_only_fields = fields


class TenantNameSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)


class SignUpSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    tenant_name = serializers.CharField(max_length=128)


class MemberSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    username = serializers.CharField(source="user.username")
    email = serializers.EmailField(source="user.email")
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "policies", "is_active", "created_by", "created_at"]
        read_only_fields = fields


class SubAccountCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    role = serializers.ChoiceField(choices=ROLE_CHOICES)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLE_CHOICES, required=False)
    is_active = serializers.BooleanField(required=False)
    policies = serializers.ListField(child=serializers.CharField(), required=False)


class GrantSerializer(serializers.Serializer):
    resource_id = serializers.CharField(max_length=64)
    action = serializers.CharField(max_length=32, default="view")


class PolicySerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class RoleSerializer(serializers.Serializer):
    role = serializers.CharField()
    label = serializers.CharField()
    policies = serializers.ListField(child=serializers.CharField())


class QuotaUsageSerializer(serializers.Serializer):
    resource = serializers.CharField()
    label = serializers.CharField()
    unit = serializers.CharField()
    region = serializers.CharField()
    limit = serializers.IntegerField()
    in_use = serializers.IntegerField()
    reserved = serializers.IntegerField()
    percent = serializers.IntegerField()


class ApiTokenSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    tenant = serializers.CharField(source="tenant.public_id", default=None)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "scope", "tenant", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    secret = serializers.CharField(help_text="The token itself. Shown only in this response.")

    class Meta(ApiTokenSerializer.Meta):
        fields = ApiTokenSerializer.Meta.fields + ["secret"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    scope = serializers.ChoiceField(choices=ApiToken.SCOPE_CHOICES, default=ApiToken.READ_WRITE)
    tenant = serializers.CharField(required=False, allow_null=True, default=None, help_text="Bind to this tenant.")
    expires_in_days = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class KeyPairSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)

    class Meta:
        model = KeyPair
        fields = ["id", "name", "key_type", "fingerprint", "public_key", "created_at"]
        read_only_fields = fields


class KeyPairCreatedSerializer(KeyPairSerializer):
    private_key = serializers.CharField(allow_null=True, help_text="Only for generated pairs, only in this response.")

    class Meta(KeyPairSerializer.Meta):
        fields = KeyPairSerializer.Meta.fields + ["private_key"]
        read_only_fields = fields


class KeyPairCreateSerializer(serializers.Serializer):
    """Give `public_key` to import a key, or leave it out to generate one (`key_type`)."""

    name = serializers.CharField(max_length=128)
    public_key = serializers.CharField(required=False, allow_blank=False)
    key_type = serializers.ChoiceField(choices=GENERATED_TYPES, default="ed25519")
