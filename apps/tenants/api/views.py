"""Tenancy API: thin viewsets calling selectors and services."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from apps.core.actor import Actor
from apps.core.api.views import PortalViewSet, SingletonViewSet, TenantScopedViewSet, validated
from apps.core.exceptions import NotFound
from apps.core.policies import ROLE_CHOICES, ROLE_POLICIES, policies
from apps.tenants import selectors, services
from apps.tenants.api import serializers as s
from apps.tenants.models import ApiToken, KeyPair, Membership, Tenant



class SignUpThrottle(AnonRateThrottle):
    scope = "signup"
    rate = "10/hour"


class SignUpViewSet(PortalViewSet):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [SignUpThrottle]

    @extend_schema(request=s.SignUpSerializer, responses={201: s.TenantSerializer}, summary="Sign up")
    def create(self, request):
        data = validated(s.SignUpSerializer, request)
        actor = Actor.anonymous(client_ip=request._request.client_ip, request_id=request._request.request_id)
        tenant = services.sign_up(actor, **data)
        return Response(s.TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)


class CurrentTenantViewSet(SingletonViewSet):
    """The tenant this request acts in (X-Tenant-ID header, the token's tenant, or the first)."""

    def _current(self):
        tenant = selectors.get_tenant(self.actor)
        tenant.role, tenant.policies = self.actor.role, sorted(self.actor.policies)
        return tenant

    @extend_schema(responses=s.CurrentTenantSerializer, summary="Current tenant")
    def list(self, request):
        return Response(s.CurrentTenantSerializer(self._current()).data)

    @extend_schema(request=s.TenantNameSerializer, responses=s.CurrentTenantSerializer, summary="Rename tenant")
    def partial_update(self, request, pk=None):
        data = validated(s.TenantNameSerializer, request)
        services.rename_tenant(self.actor, tenant=selectors.get_tenant(self.actor), name=data["name"])
        return Response(s.CurrentTenantSerializer(self._current()).data)


class MyTenantsViewSet(PortalViewSet):
    """The tenants the user belongs to; create another one (you become its owner)."""

    serializer_class = s.MyTenantSerializer

    def get_queryset(self):
        if self.schema_only:
            return Membership.objects.none()
        return selectors.memberships_of(self.request.user)

    @extend_schema(responses=s.MyTenantSerializer(many=True), summary="My tenants")
    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.MyTenantSerializer(page, many=True).data)

    @extend_schema(request=s.TenantNameSerializer, responses={201: s.TenantSerializer}, summary="Create a tenant")
    def create(self, request):
        data = validated(s.TenantNameSerializer, request)
        tenant = services.create_tenant(self.actor, name=data["name"])
        return Response(s.TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Sub-accounts of the current tenant and their roles."""

    model = Membership
    serializer_class = s.MemberSerializer
    list_selector = staticmethod(selectors.list_members)
    action_permissions = {
        "list": "view",
        "retrieve": "view",
        "create": "create",
        "partial_update": "change",
        "grant": "change",
        "revoke": "change",
    }
    filterset_fields = ["role", "is_active"]

    @extend_schema(request=s.SubAccountCreateSerializer, responses={201: s.MemberSerializer})
    def create(self, request):
        membership = services.create_sub_account(self.actor, **validated(s.SubAccountCreateSerializer, request))
        return Response(s.MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MemberUpdateSerializer, responses=s.MemberSerializer)
    def partial_update(self, request, id=None):
        membership = self.get_object()
        data = validated(s.MemberUpdateSerializer, request)
        membership = services.update_member(self.actor, membership=membership, **data)
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(request=s.GrantSerializer, responses=s.MemberSerializer, summary="Grant one resource")
    @action(detail=True, methods=["post"])
    def grant(self, request, id=None):
        membership = self.get_object()
        membership = services.grant_resource(self.actor, membership=membership, **validated(s.GrantSerializer, request))
        return Response(s.MemberSerializer(membership).data)

    @extend_schema(request=s.GrantSerializer, responses=s.MemberSerializer, summary="Revoke one resource")
    @action(detail=True, methods=["post"])
    def revoke(self, request, id=None):
        membership = self.get_object()
        membership = services.revoke_resource(self.actor, membership=membership, **validated(s.GrantSerializer, request))
        return Response(s.MemberSerializer(membership).data)


class RoleViewSet(SingletonViewSet):
    @extend_schema(responses=s.RoleSerializer(many=True), summary="Roles and their policies")
    def list(self, request):
        data = [{"role": r, "label": label, "policies": list(ROLE_POLICIES[r])} for r, label in ROLE_CHOICES]
        return Response(s.RoleSerializer(data, many=True).data)


class PolicyViewSet(SingletonViewSet):
    @extend_schema(responses=s.PolicySerializer(many=True), summary="Named policies")
    def list(self, request):
        return Response(s.PolicySerializer(list(policies().values()), many=True).data)


class QuotaViewSet(SingletonViewSet):
    @extend_schema(responses=s.QuotaUsageSerializer(many=True), summary="Quota limits and usage")
    def list(self, request):
        usage = selectors.quota_usage(self.actor, region=request.query_params.get("region"))
        return Response(s.QuotaUsageSerializer(usage, many=True).data)


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Your personal API tokens. The secret is returned once, at creation."""

    serializer_class = s.ApiTokenSerializer
    lookup_url_kwarg = "id"

    def get_queryset(self):
        if self.schema_only:
            return ApiToken.objects.none()
        return selectors.list_api_tokens(self.actor)

    def get_object(self):
        return selectors.get_api_token(self.actor, self.kwargs["id"])

    @extend_schema(request=s.ApiTokenCreateSerializer, responses={201: s.ApiTokenCreatedSerializer})
    def create(self, request):
        data = validated(s.ApiTokenCreateSerializer, request)
        tenant = None
        if data["tenant"]:
            tenant = Tenant.objects.filter(public_id=data["tenant"]).first()
            if tenant is None:
                raise NotFound("No such tenant.", fields={"tenant": ["Not one of your tenants."]})
        token, secret = services.create_api_token(
            self.actor, name=data["name"], scope=data["scope"], tenant=tenant, expires_in_days=data["expires_in_days"]
        )
        token.secret = secret
        return Response(s.ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None}, summary="Revoke a token")
    def destroy(self, request, id=None):
        services.revoke_api_token(self.actor, token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyPairViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """SSH key pairs: import a public key, or generate a pair and get the private key once."""

    model = KeyPair
    serializer_class = s.KeyPairSerializer
    list_selector = staticmethod(selectors.list_key_pairs)
    action_permissions = {"list": "view", "retrieve": "view", "create": "create", "destroy": "delete"}
    filterset_fields = ["name", "key_type"]

    @extend_schema(request=s.KeyPairCreateSerializer, responses={201: s.KeyPairCreatedSerializer})
    def create(self, request):
        data = validated(s.KeyPairCreateSerializer, request)
        if data.get("public_key"):
            key_pair = services.import_key_pair(self.actor, name=data["name"], public_key=data["public_key"])
            key_pair.private_key = None
        else:
            key_pair, key_pair.private_key = services.generate_key_pair(
                self.actor, name=data["name"], key_type=data["key_type"]
            )
        return Response(s.KeyPairCreatedSerializer(key_pair).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, id=None):
        services.delete_key_pair(self.actor, key_pair=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
