"""The console page: noVNC in the browser. The page itself carries no ticket; its script asks
the API for one (POST /api/v1/instances/<id>/console) each time it connects."""

from django.conf import settings

from apps.compute import selectors
from apps.core import permissions
from apps.core.views import ConsoleView


class InstanceConsoleView(ConsoleView):
    template_name = "console/console.html"

    def get(self, request, public_id):
        instance = selectors.get_instance(self.actor, public_id)
        permissions.require(self.actor, instance, "console")
        return self.render({"instance": instance, "proxy": settings.PORTAL_CONSOLE_PROXY,
                            "idle_minutes": settings.PORTAL_CONSOLE_IDLE_TIMEOUT // 60})
