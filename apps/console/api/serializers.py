from django.conf import settings
from rest_framework import serializers

from apps.console.endpoints import SUBPROTOCOL_PREFIX, websocket_urls


class ConsoleTicketSerializer(serializers.Serializer):
    """A one-time console ticket. Open `url` (or `websockify_url`) within `expires_at` with the
    websocket subprotocols `protocols` (or append `?ticket=<ticket>` when a client cannot set
    subprotocols; query strings may end up in proxy logs), then speak RFB."""

    ticket = serializers.CharField(source="secret")
    session = serializers.CharField(source="session.public_id")
    instance = serializers.CharField(source="session.instance.public_id")
    expires_at = serializers.DateTimeField(source="session.expires_at")
    protocols = serializers.SerializerMethodField()
    proxy = serializers.SerializerMethodField(help_text="The proxy the console page uses: channels or websockify.")
    url = serializers.SerializerMethodField(help_text="The portal's own websocket proxy (same origin).")
    websockify_url = serializers.SerializerMethodField(help_text="The console process (websockify).")

    def get_protocols(self, ticket) -> list[str]:
        return ["binary", f"{SUBPROTOCOL_PREFIX}{ticket.secret}"]

    def get_proxy(self, ticket) -> str:
        return settings.PORTAL_CONSOLE_PROXY

    def _urls(self, ticket) -> dict[str, str]:
        return websocket_urls(self.context["request"], ticket.session.instance.public_id)

    def get_url(self, ticket) -> str:
        return self._urls(ticket)["channels"]

    def get_websockify_url(self, ticket) -> str:
        return self._urls(ticket)["websockify"]
