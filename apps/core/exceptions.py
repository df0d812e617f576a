"""Domain errors raised by services and selectors. One handler (apps.core.api.errors) turns
them into `{"code", "message", "fields"}` responses; pages show `message`."""


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code


class ValidationFailed(DomainError):
    status = 400
    code = "invalid"


class NotFound(DomainError):
    """Also what another tenant's object looks like: it does not exist for this actor."""

    status = 404
    code = "not_found"


class PermissionDenied(DomainError):
    """Same tenant, but the actor's role, policies or grants do not allow the action."""

    status = 403
    code = "permission_denied"


class TenantFrozen(PermissionDenied):
    code = "tenant_frozen"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class QuotaExceeded(Conflict):
    code = "quota_exceeded"


class Unavailable(DomainError):
    """A backend the change needs did not answer; nothing was changed. Retry later."""

    status = 503
    code = "unavailable"
