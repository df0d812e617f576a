"""Billing fixtures: a pinned clock, a small catalog priced in the default region, and resources
to meter (rows only: metering needs a public id, a tenant and a region, not a hypervisor)."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from apps.billing import gateways, services
from apps.billing.gateways.base import SUCCEEDED, CheckoutSession, GatewayEventData, PaymentGateway
from apps.billing.models import Order, Payment, Product, Transaction
from apps.compute.models import Instance
from tests.factories.compute import make_inventory

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """`timezone.now()` answers `clock.now` (T0 until a test moves it): prices are never set in
    the past, so tests start their story at a known moment."""
    pinned = Clock(T0)
    monkeypatch.setattr(timezone, "now", pinned)
    return pinned


# (code, unit, meter, hourly USD price)
PRODUCTS = [
    ("instance.flavor.t1-nano", Product.HOUR, "instance.flavor", "0.036"),
    ("instance.flavor.s1-large", Product.HOUR, "instance.flavor", "0.144"),
    ("volume.gb.standard", Product.GB_HOUR, "volume.gb", "0.0001"),
    ("eip.hour", Product.HOUR, "", "0.005"),
    ("eip.bandwidth_mbps", Product.MBPS_HOUR, "", "0.01"),
]


@pytest.fixture
def catalog(operator, clock) -> dict[str, Product]:
    """The products above, priced in USD in the region `default` from T0."""
    make_inventory()
    products = {}
    for code, unit, meter, hourly in PRODUCTS:
        product = services.create_product(operator, code=code, name=code, unit=unit, meter=meter)
        services.add_price(operator, product=product, region="default", currency="USD", hourly=hourly)
        products[code] = product
    return products


@pytest.fixture
def make_instance(tenant_a):
    """make_instance(name, tenant=tenant_a) -> an Instance row in the region `default`."""
    inventory = make_inventory()

    def make(name: str = "vm", tenant=None) -> Instance:
        return Instance.objects.create(tenant=tenant or tenant_a, name=name, region="default",
                                       flavor=inventory["flavor"], image=inventory["image"], vcpus=1, ram_mb=128)

    return make


class CheckoutStandIn(PaymentGateway):
    """A configured gateway whose checkouts live in a dict and succeed when `paid` says so."""

    code = "stripe"
    sessions: dict[str, str] = {}

    def is_configured(self):
        return True

    def create_customer(self, customer):
        return f"cus_{customer.reference}"

    def create_checkout(self, checkout, *, success_url, cancel_url):
        external_id = f"cs_{checkout.reference}"
        self.sessions[external_id] = checkout
        return CheckoutSession(external_id=external_id, url=f"https://checkout.test/{external_id}")

    def retrieve(self, external_id):
        checkout = self.sessions[external_id]
        return GatewayEventData(id="", type="checkout.session.completed", external_id=external_id,
                                reference=checkout.reference, status=SUCCEEDED, amount=checkout.amount,
                                currency=checkout.currency)

    def parse_event(self, payload, headers):
        raise NotImplementedError


@pytest.fixture
def gateway(settings, monkeypatch):
    settings.PORTAL_STRIPE_SECRET_KEY = "sk_test_unit"
    monkeypatch.setitem(gateways.GATEWAYS, "stripe", CheckoutStandIn)
    monkeypatch.setattr(CheckoutStandIn, "sessions", {})
    return CheckoutStandIn


@pytest.fixture
def ledger_clock(clock, monkeypatch):
    """Ledger entries, orders and payments are stamped by the pinned clock too (their
    `created_at` default was bound before the clock was pinned)."""
    for model in (Transaction, Order, Payment):
        monkeypatch.setattr(model._meta.get_field("created_at"), "_get_default", lambda: clock.now)
    return clock


@pytest.fixture
def no_gateway(settings):
    settings.PORTAL_STRIPE_SECRET_KEY = ""
