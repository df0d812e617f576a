"""The Stripe stand-in (tests/stripe_standin.py) with localstripe behind it, and the portal's
Stripe settings pointed at it; webhooks go to the pytest-django `live_server`."""

from collections.abc import Iterator

import pytest

from tests.stripe_standin import StripeStandIn


@pytest.fixture
def stripe_standin(tmp_path, settings, live_server) -> Iterator[StripeStandIn]:
    """A started stand-in whose webhooks reach /billing/webhooks/stripe of the live server; the
    portal's PORTAL_STRIPE_* settings point at it. localstripe is stopped after the test."""
    with StripeStandIn(tmp_path / "stripe", webhook_url=f"{live_server.url}/billing/webhooks/stripe") as stand_in:
        settings.PORTAL_PAYMENT_GATEWAY = "stripe"
        settings.PORTAL_STRIPE_API_BASE = stand_in.api_base
        settings.PORTAL_STRIPE_SECRET_KEY = stand_in.secret_key
        settings.PORTAL_STRIPE_WEBHOOK_SECRET = stand_in.webhook_secret
        yield stand_in
