"""Every websocket route of the portal; the isolation test walks this list."""
from django.urls import path

from apps.core.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi(), name="ws-events"),
]
