"""/ws/events/ for API clients: an API token in the Authorization header, the tenant from the
token (or X-Tenant-ID), never another tenant's events."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from apps.core import events
from apps.tenants import services as tenants
from apps.tenants.models import ApiToken
from cloudportal.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)  # the consumer reads from worker threads


def token_socket(secret: str, *extra: tuple[bytes, bytes]) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"authorization", f"Bearer {secret}".encode()), *extra]
    return WebsocketCommunicator(application, "/ws/events/", headers=headers)


def hears(socket, tenant, *others) -> bool:
    """Whether `socket` gets an event of `tenant` (and none of `others`)."""

    async def scenario():
        connected, _ = await socket.connect()
        assert connected
        for other in others:
            await sync_to_async(events._send)(events.tenant_group(other.pk), {"type": "secret"})
        await sync_to_async(events._send)(events.tenant_group(tenant.pk), {"type": "mine"})
        heard = not await socket.receive_nothing(timeout=1) and await socket.receive_json_from() == {"type": "mine"}
        await socket.disconnect()
        return heard

    return async_to_sync(scenario)()


def test_an_api_token_hears_its_tenant_only(a_owner, b_owner, actor):
    _, bound = tenants.create_api_token(actor(a_owner), name="ci", scope=ApiToken.READ, tenant=a_owner.tenant)
    assert hears(token_socket(bound), a_owner.tenant, b_owner.tenant)


def test_x_tenant_id_picks_one_of_the_users_tenants_and_nothing_else(a_owner, b_owner, actor):
    _, secret = tenants.create_api_token(actor(a_owner), name="cli", scope=ApiToken.READ)
    assert hears(token_socket(secret, (b"x-tenant-id", a_owner.tenant.public_id.encode())), a_owner.tenant)
    assert not hears(token_socket(secret, (b"x-tenant-id", b_owner.tenant.public_id.encode())), b_owner.tenant)


def test_a_bad_token_is_not_a_user(a_owner):
    async def scenario():
        socket = token_socket("cpt_not-a-token")
        assert await socket.connect() == (False, 4401)

    async_to_sync(scenario)()
