"""Every websocket route of the portal; the isolation test walks this list."""
from django.urls import path

from apps.console.consumers import ConsoleConsumer
from apps.core.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi(), name="ws-events"),
    path("ws/console/<str:instance>/", ConsoleConsumer.as_asgi(), name="ws-console"),
]
