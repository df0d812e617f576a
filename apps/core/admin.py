"""Back office: audit log with filters, operations, platform settings."""

from django.contrib import admin, messages

from apps.core.actor import Actor
from apps.core.exceptions import DomainError
from apps.core.middleware import base_actor
from apps.core.models import AuditRecord, Operation, PlatformSettings


def operator(request) -> Actor:
    """The back office acts as an operator (staff user), across tenants."""
    actor = base_actor(request, via="backoffice")
    return Actor(user=actor.user, is_operator=True, client_ip=actor.client_ip, request_id=actor.request_id,
                 via="backoffice")


def call(request, service, *, success: str, **kwargs) -> bool:
    """Run a service from an admin page or action; its refusal becomes an admin message."""
    try:
        service(operator(request), **kwargs)
    except DomainError as exc:
        messages.error(request, exc.message)
        return False
    messages.success(request, success)
    return True


class ReadOnlyInline(admin.TabularInline):
    """Rows shown on their parent's page; changed through the parent's actions (services)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "username", "actor_kind", "action", "resource_id", "result", "reason",
                    "client_ip"]
    list_filter = ["result", "actor_kind", "via", "service", "action", ("created_at", admin.DateFieldListFilter),
                   "tenant"]
    search_fields = ["resource_id", "username", "action", "request_id", "reason", "tenant__name", "tenant__public_id"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]


@admin.register(Operation)
class OperationAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "tenant", "kind", "status", "progress", "step", "created_at", "finished_at"]
    list_filter = ["status", "kind", "area"]
    search_fields = ["public_id", "resource_id", "tenant__name"]
    list_select_related = ["tenant"]


@admin.register(PlatformSettings)
class PlatformSettingsAdmin(admin.ModelAdmin):
    fields = ["signup_enabled", "signup_message", "recycle_bin_hours"]

    def has_add_permission(self, request):
        return not PlatformSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        from apps.tenants import services

        call(request, services.update_platform_settings, signup_enabled=obj.signup_enabled,
             signup_message=obj.signup_message, recycle_bin_hours=obj.recycle_bin_hours,
             success="Platform settings saved.")
