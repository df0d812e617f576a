"""Who is acting: built once per request (middleware / API authentication) or by a task.

Services take an Actor, never a request, so the same code runs from the API, the pages, the
back office and background workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apps.core import policies

if TYPE_CHECKING:
    from apps.tenants.models import Tenant


@dataclass(frozen=True)
class Actor:
    user: Any = None  # django.contrib.auth User, None for the system
    tenant: Tenant | None = None
    role: str | None = None
    policies: frozenset[str] = field(default_factory=frozenset)
    is_operator: bool = False
    is_system: bool = False
    # An API token with the read-only scope narrows the actor to reads, whatever its role.
    read_only: bool = False
    client_ip: str | None = None
    request_id: str | None = None
    via: str = "web"  # web, api, token, backoffice, task

    @classmethod
    def system(cls, *, tenant: Tenant | None = None, request_id: str | None = None) -> Actor:
        return cls(tenant=tenant, is_system=True, via="task", request_id=request_id)

    @classmethod
    def anonymous(cls, *, client_ip: str | None = None, request_id: str | None = None) -> Actor:
        return cls(client_ip=client_ip, request_id=request_id)

    @property
    def user_id(self) -> int | None:
        return self.user.pk if self.user is not None else None

    @property
    def tenant_id(self) -> int | None:
        return self.tenant.pk if self.tenant is not None else None

    @property
    def is_privileged(self) -> bool:
        """Operators and the system act across tenants."""
        return self.is_operator or self.is_system

    @property
    def kind(self) -> str:
        if self.is_system:
            return "system"
        if self.is_operator:
            return "operator"
        return "user" if self.user is not None else "anonymous"

    def level(self, area: str) -> str | None:
        if self.is_privileged:
            return policies.FULL
        if self.tenant is None:
            return None
        return policies.level_for(self.policies, area)

    def allows(self, area: str, action: str) -> bool:
        """Whether role + policies allow `action` on every resource of `area` in the tenant."""
        level = self.level(area)
        if policies.is_read_action(action):
            return level is not None
        if self.read_only:
            return False
        return level == policies.FULL

    def with_tenant(self, tenant: Tenant | None, role: str | None, extra: frozenset[str]) -> Actor:
        role_policies = frozenset(policies.ROLE_POLICIES.get(role, ())) if role else frozenset()
        return Actor(
            user=self.user,
            tenant=tenant,
            role=role,
            policies=role_policies | extra,
            is_operator=self.is_operator,
            is_system=self.is_system,
            read_only=self.read_only,
            client_ip=self.client_ip,
            request_id=self.request_id,
            via=self.via,
        )
