"""Payment gateways by code (`Payment.gateway`, the webhook's `/billing/webhooks/<code>`).
Another provider is one module implementing gateways.base.PaymentGateway and a line here."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.utils.module_loading import import_string

from apps.billing.gateways.base import PaymentGateway

# code → the gateway's class (a dotted path, imported on first use) or a factory.
GATEWAYS: dict[str, str | Callable[[], PaymentGateway]] = {
    "stripe": "apps.billing.gateways.stripe.StripeGateway",
}


class UnknownGateway(LookupError):
    """No gateway of that code."""


def get_gateway(code: str | None = None) -> PaymentGateway:
    """The gateway of `code`, or the portal's (PORTAL_PAYMENT_GATEWAY), with today's settings."""
    code = code or settings.PORTAL_PAYMENT_GATEWAY
    factory = GATEWAYS.get(code)
    if factory is None:
        raise UnknownGateway(f"No payment gateway {code!r}.")
    gateway = (import_string(factory) if isinstance(factory, str) else factory)()
    if not isinstance(gateway, PaymentGateway):
        raise TypeError(f"{code}: {type(gateway).__name__} is not a PaymentGateway")
    return gateway
