"""ASGI entry point: HTTP through Django, websockets through channels.

The websocket stack checks the Origin against ALLOWED_HOSTS and authenticates with the Django
session (or an API token header, for API clients); consumers derive their groups from the authenticated user, never from client input."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloudportal.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.tenants.authentication import WebsocketTokenMiddleware  # noqa: E402
from cloudportal.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(WebsocketTokenMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
