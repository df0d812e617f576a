"""Tenant isolation over every route: tenant B never sees or touches tenant A's objects.

The routes come from the URL resolver (API router and console pages) and the websocket
routing, so a new endpoint is covered the moment it is registered. A new resource type needs
one line in RESOURCES: how to make one for tenant A."""

import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.core import events
from apps.core.actor import Actor
from apps.core.models import Operation, TenantOwned
from apps.core.registry import tenant_owned_models
from apps.core.services import export_audit_log
from apps.tenants import services as tenant_services
from apps.compute import services as compute_services
from apps.compute.models import Image, Instance, InstanceGroup
from apps.tenants.models import ApiToken, KeyPair, Membership
from apps.storage import services as storage_services
from apps.storage.models import Backup, Snapshot, Volume
from apps.network import services as network_services
from apps.network import edge_services
from apps.network.models import VPC, ElasticIP, HaVip, LoadBalancer, NatGateway, Port, SecurityGroup, Subnet
from tests.factories.compute import make_inventory
from tests.factories.storage import make_storage
from apps.billing import notices, order_services
from apps.billing import services as billing_services
from apps.billing.models import Notice, Order, Payment, Product, Subscription, Transaction

# model -> how to make one for tenant A's owner (returns an object with a public_id).
RESOURCES = {
    KeyPair: lambda owner: tenant_services.generate_key_pair(owner, name="a-secret-key")[0],
    Operation: lambda owner: export_audit_log(owner, filters={}),
    Membership: lambda owner: tenant_services.create_sub_account(
        owner, username="a-secret-member", email="", password="correct-horse-battery-9", role="readonly"
    ),
    ApiToken: lambda owner: tenant_services.create_api_token(owner, name="a-secret-token", scope="read")[0],
    Instance: lambda owner: compute_services.create_instances(
        owner, name="a-secret-vm", flavor="t1.nano", image=make_inventory()["image"].public_id
    )[0],
    InstanceGroup: lambda owner: compute_services.create_instance_group(owner, name="a-secret-group",
                                                                        policy="anti-affinity"),
    Image: lambda owner: Image.objects.create(
        name="a-secret-image", owner=owner.tenant, visibility=Image.PRIVATE, status=Image.ACTIVE
    ),
    Volume: lambda owner: make_storage() and storage_services.create_volume(owner, name="a-secret-vol", size_gb=1),
    Snapshot: lambda owner: storage_services.create_snapshot(owner, volume=_available_volume(owner), name="a-snap"),
    Backup: lambda owner: storage_services.create_backup(owner, volume=_available_volume(owner), name="a-backup"),
    VPC: lambda owner: _vpc(owner),
    Subnet: lambda owner: _subnet(owner),
    Port: lambda owner: network_services.create_port(owner, subnet=_subnet(owner), name="a-secret-port"),
    SecurityGroup: lambda owner: network_services.create_security_group(owner, vpc=_vpc(owner), name="a-secret-sg"),
    ElasticIP: lambda owner: _eip(owner, "a-secret-eip"),
    HaVip: lambda owner: network_services.create_havip(owner, subnet=_subnet(owner), name="a-secret-vip"),
    LoadBalancer: lambda owner: _load_balancer(owner),
    NatGateway: lambda owner: edge_services.create_nat_gateway(owner, vpc=_vpc(owner), eip=_eip(owner, "a-nat-eip"),
                                                               name="a-secret-nat"),
    # Billing rows are not TenantOwned resources, but each has its routes: the walk covers them too.
    Transaction: lambda owner: billing_services.recharge(Actor.system(), tenant=owner.tenant, amount="5",
                                                         currency="USD", idempotency_key="a-secret-recharge"),
    Order: lambda owner: order_services.place_order(owner, tenant=owner.tenant, kind=Order.CREATE, lines=[],
                                                    idempotency_key="a-secret-order", resource_id="a-secret-vm"),
    Subscription: lambda owner: _subscription(owner),
    Payment: lambda owner: Payment.objects.create(tenant=owner.tenant, gateway="stripe", amount=5, currency="USD",
                                                  message="a-secret-payment"),
    Notice: lambda owner: _Numbered(notices.notify(owner.tenant, kind=Notice.LOW_BALANCE, message="a-secret notice",
                                                   key="a-secret")),
}


class _Numbered:
    """A row known by its number in URLs (notices): the walk puts `public_id` in the routes."""

    unknown_id = "999999999"

    def __init__(self, row):
        self.public_id = str(row.pk)


def _subscription(owner) -> Subscription:
    from datetime import timedelta

    from django.utils import timezone

    product = Product.objects.get_or_create(code="a-secret.product", defaults={"name": "p", "unit": "hour",
                                                                               "meter": "a-secret.product"})[0]
    now = timezone.now()
    return Subscription.objects.create(tenant=owner.tenant, resource_type="instance", resource_id="a-secret-sub",
                                       product=product, region="default", term="monthly", currency="USD",
                                       price=5, starts_at=now, expires_at=now + timedelta(days=30))


def _load_balancer(owner) -> LoadBalancer:
    from apps.network import lb_services

    balancer = lb_services.create_load_balancer(owner, subnet=_subnet(owner), name="a-secret-lb")
    lb_services.add_listener(owner, load_balancer=balancer, protocol="tcp", port=80)
    return balancer


def _eip(owner, name: str) -> ElasticIP:
    from tests.factories.network import make_external_network

    make_external_network()
    return edge_services.allocate_eip(owner, name=name)


def _vpc(owner) -> VPC:
    make_inventory()
    return VPC.objects.filter(name="a-secret-vpc").first() or network_services.create_vpc(
        owner, name="a-secret-vpc", cidr="10.9.0.0/16")


def _subnet(owner) -> Subnet:
    return Subnet.objects.filter(name="a-secret-subnet").first() or network_services.create_subnet(
        owner, vpc=_vpc(owner), name="a-secret-subnet", cidr="10.9.1.0/24")


def _available_volume(owner) -> Volume:
    """A volume its task has filled (tasks run on commit, which a unit test never reaches)."""
    make_storage()
    volume = storage_services.create_volume(owner, name="a-snap-source", size_gb=1)
    Volume.objects.filter(pk=volume.pk).update(status=Volume.AVAILABLE)
    volume.refresh_from_db()
    return volume

# Routes that are not tenant data: auth flows, the schema, the back office (staff only).
SKIP = re.compile(r"^(backoffice/|api/schema/|api/docs/|healthz|login/|logout/|signup/|password-reset/|static/)")
PARAM = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def walk(patterns, prefix=""):
    for p in patterns:
        route = str(p.pattern)
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, prefix + route)
        elif isinstance(p, URLPattern):
            yield prefix + route


def normalise(route: str) -> str:
    """Turn the router's regex routes into a concrete path template with {param}s."""
    route = route.replace("^", "").replace("$", "")
    route = route.replace("/?", "").replace("\\.", ".")
    route = re.sub(r"\(\?P<format>[^)]*\)", "", route)
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return "/" + route


def all_routes() -> list[str]:
    routes = {normalise(r) for r in walk(get_resolver().url_patterns)}
    return sorted(r for r in routes if not SKIP.match(r.lstrip("/")) and "{format}" not in r)


@pytest.fixture
def a_objects(a_owner, actor):
    owner = actor(a_owner)
    return {model: make(owner) for model, make in RESOURCES.items()}


@pytest.fixture
def b_client(b_owner):
    client = Client()
    client.force_login(b_owner.user)
    return client


def test_every_tenant_owned_model_has_an_isolation_factory():
    missing = [m.__name__ for m in tenant_owned_models() if m not in RESOURCES]
    assert missing == [], f"add these to RESOURCES: {missing}"


def test_routes_are_found():
    routes = all_routes()
    assert "/api/v1/key-pairs/{id}" in routes
    assert "/key-pairs/{public_id}/delete" in routes
    assert "/operations/{public_id}/" in routes


def test_tenant_b_gets_404_on_every_route_with_an_object_of_tenant_a(a_objects, b_client):
    checked = 0
    for route in all_routes():
        params = PARAM.findall(route) or re.findall(r"\{(\w+)\}", route)
        if not params:
            continue
        for obj in a_objects.values():
            cache.clear()  # this walk sends thousands of requests: keep under the API rate limit
            path = re.sub(r"\{\w+\}", obj.public_id, route)
            # The same answer as for an id that exists nowhere: B cannot even learn it exists.
            nowhere = getattr(obj, "unknown_id", obj.public_id.split("-")[0] + "-zzzzzzzz")
            unknown = re.sub(r"\{\w+\}", nowhere, route)
            statuses = {}
            for method in ("get", "post", "patch", "delete"):
                response = getattr(b_client, method)(path, content_type="application/json")
                baseline = getattr(b_client, method)(unknown, content_type="application/json")
                statuses[method] = response.status_code
                # 403 only where the baseline says the same: operator-only routes refuse any id.
                assert response.status_code in (403, 404, 405), f"{method.upper()} {path} -> {response.status_code}"
                assert response.status_code == baseline.status_code
                body = response.content.decode(errors="replace")
                assert "a-secret" not in body and "Tenant A" not in body
            assert 404 in statuses.values() or 403 in statuses.values(), f"{path}: {statuses}"
            checked += 1
    assert checked >= len(RESOURCES) * 5


def test_tenant_b_lists_show_none_of_tenant_a(a_objects, b_client):
    # A notice's number is no secret (every page has a "1"); its message is ("a-secret notice").
    secrets = [o.public_id for o in a_objects.values() if not isinstance(o, _Numbered)] + ["a-secret"]
    listed = 0
    for route in all_routes():
        if "{" in route:
            continue
        response = b_client.get(route, HTTP_ACCEPT="application/json")
        # 403: operator-only platform endpoints (hosts), which tenants cannot read at all.
        assert response.status_code in (200, 403, 405), f"GET {route} -> {response.status_code}"
        body = response.content.decode()
        for secret in secrets:
            assert secret not in body, f"{route} shows {secret}"
        listed += response.status_code == 200
    assert listed >= 10


def test_api_header_naming_tenant_a_is_refused_for_b(a_owner, b_client):
    response = b_client.get("/api/v1/key-pairs", HTTP_X_TENANT_ID=a_owner.tenant.public_id)
    assert response.status_code == 400
    assert response.json()["fields"] == {"tenant": ["Not a tenant you are a member of."]}


def test_console_switch_to_tenant_a_is_refused_for_b(a_owner, b_owner, b_client):
    b_client.post("/switch-tenant", {"tenant": a_owner.tenant.public_id})
    response = b_client.get("/")
    assert b_owner.tenant.name in response.content.decode()
    assert a_owner.tenant.name not in response.content.decode()


def test_websocket_of_b_receives_nothing_of_a(a_owner, b_owner):
    from asgiref.sync import sync_to_async

    from cloudportal.asgi import application

    a_tenant, b_tenant = a_owner.tenant, b_owner.tenant
    client = Client()
    client.force_login(b_owner.user)
    # B even asks for A's tenant in its session: the consumer ignores tenants it is not in.
    session = client.session
    session["tenant"] = a_tenant.public_id
    session.save()
    headers = [(b"origin", b"http://localhost"), (b"cookie", f"sessionid={session.session_key}".encode())]

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await sync_to_async(events._send)(events.tenant_group(a_tenant.pk), {"type": "secret"})
        await sync_to_async(events._send)(events.tenant_group(b_tenant.pk), {"type": "mine"})
        received = await communicator.receive_json_from(timeout=2)
        assert received == {"type": "mine"}
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_scoped_queryset_is_empty_for_an_actor_without_tenant(a_objects):
    nobody = Actor(user=a_objects[Membership].user)
    for model in tenant_owned_models():
        assert issubclass(model, TenantOwned)
        assert not model.objects.for_actor(nobody).exists()
