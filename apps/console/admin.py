"""Back office: console sessions (who watched which screen, from where, for how long), and
ending an open one."""

from django.conf import settings
from django.contrib import admin

from apps.console import services
from apps.console.models import ConsoleSession
from apps.core.admin import ReadOnlyAdmin, call


@admin.register(ConsoleSession)
class ConsoleSessionAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "status", "instance", "tenant", "user", "proxy", "peer_ip", "opened_at",
                    "duration_seconds", "bytes_to_client", "close_reason"]
    list_filter = ["status", "proxy"]
    search_fields = ["public_id", "instance__public_id", "user__username", "tenant__name", "peer_ip"]
    list_select_related = ["instance", "tenant", "user"]
    exclude = ["ticket_hash"]
    actions = ["terminate"]

    @admin.action(description="Terminate selected open sessions")
    def terminate(self, request, queryset):
        for session in queryset.filter(status=ConsoleSession.OPEN):
            call(request, services.terminate_session, session=session,
                 success=f"{session.public_id} closes within {settings.PORTAL_CONSOLE_RECHECK} s.")
