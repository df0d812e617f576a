"""API base classes. `PortalViewSet` builds the Actor once, after DRF authentication;
`TenantScopedViewSet` is the only path from the API to tenant-owned rows: lookups go through
`for_actor(actor, "view")` (another tenant's row → 404), then the viewset's action is checked
against role, policies and grants (same tenant, not allowed → 403). An action missing from
`action_permissions` fails closed."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets

from apps.core import permissions
from apps.core.actor import Actor
from apps.core.exceptions import NotFound, PermissionDenied, ValidationFailed
from apps.core.middleware import base_actor

TENANT_HEADER = "X-Tenant-ID"


def validated(serializer_class, request, **kwargs) -> dict:
    """Validate the request body's shape with an input serializer (400 with field messages)."""
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def api_actor(request) -> Actor:
    from apps.tenants.models import ApiToken
    from apps.tenants.selectors import resolve_actor

    token = request.auth if isinstance(request.auth, ApiToken) else None
    actor = base_actor(
        request._request,
        user=request.user,
        via="token" if token else "api",
        read_only=bool(token and token.scope == ApiToken.READ),
    )
    header = request.headers.get(TENANT_HEADER)
    if token and token.tenant_id:
        if header and header != token.tenant.public_id:
            raise ValidationFailed(
                "This token is bound to another tenant.", fields={"tenant": [f"Use {token.tenant.public_id}."]}
            )
        header = token.tenant.public_id
    return resolve_actor(actor, tenant_public_id=header, strict=bool(header))


@extend_schema(
    parameters=[
        OpenApiParameter(
            TENANT_HEADER,
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            description="Tenant to act in (public id); default: the token's tenant or your first tenant.",
        )
    ]
)
class PortalViewSet(viewsets.GenericViewSet):
    actor: Actor
    # Platform endpoints (hosts, migrations): operators only, 403 for everyone else.
    operator_only = False

    @property
    def schema_only(self) -> bool:
        """True while drf-spectacular inspects the view (no request, no actor)."""
        return getattr(self, "swagger_fake_view", False)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.actor = api_actor(request)
        request._request.actor = self.actor
        if self.operator_only and not self.actor.is_operator:
            raise PermissionDenied("Only operators can use this endpoint.")

    def perform_authentication(self, request):
        request.user  # noqa: B018  (forces authentication before the actor is built)


class SingletonViewSet(PortalViewSet):
    """Endpoints that answer with one computed document or a short fixed list: no queryset,
    no pagination, no filters."""

    pagination_class = None
    filter_backends: list = []


class TenantScopedViewSet(PortalViewSet):
    """Subclasses set `model` (a scoped model), `action_permissions` (DRF action → verb checked
    on the object) and optionally `list_selector(actor)` for joins and ordering."""

    model = None
    action_permissions: dict[str, str] = {}
    list_selector = None
    lookup_field = "public_id"
    lookup_url_kwarg = "id"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # action is None for a method the viewset does not route: DRF answers 405 next.
        if self.action is not None and self.action not in self.action_permissions:
            raise ImproperlyConfigured(f"{type(self).__name__}.{self.action} has no entry in action_permissions")

    def get_queryset(self):
        if self.schema_only:
            return self.model.objects.none()
        if self.list_selector is not None:
            return type(self).list_selector(self.actor)
        return self.model.objects.for_actor(self.actor, "view")

    def get_object(self):
        queryset = self.filter_queryset(self.get_queryset())
        obj = queryset.filter(**{self.lookup_field: self.kwargs[self.lookup_url_kwarg]}).first()
        if obj is None:
            raise NotFound(f"No {queryset.model._meta.verbose_name} {self.kwargs[self.lookup_url_kwarg]}.")
        permissions.require(self.actor, obj, self.action_permissions[self.action])
        return obj
