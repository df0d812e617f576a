"""The payment gateway interface: what the portal asks of a payment provider (a hosted checkout
page for a wallet recharge, its status, and its signed webhook events). Plain data in and out;
no Django models, so a provider is one small module and a fake fits the same shape."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

# What a payment becomes, in the portal's words (Payment.status).
PENDING, SUCCEEDED, FAILED, EXPIRED = "pending", "succeeded", "failed", "expired"


class GatewayError(Exception):
    """The gateway refused or did not answer; nothing was paid."""


class BadSignature(GatewayError):
    """A webhook whose signature does not verify (forged, altered, too old, or no secret set)."""


@dataclass(frozen=True)
class Customer:
    """The tenant as the gateway's customer: `reference` is the tenant's public id."""

    reference: str
    name: str
    email: str = ""


@dataclass(frozen=True)
class Checkout:
    """One recharge to collect: `reference` is the payment's public id (the gateway echoes it in
    its events), `customer` the gateway's id of the tenant."""

    reference: str
    tenant_reference: str
    customer: str
    amount: Decimal
    currency: str
    description: str


@dataclass(frozen=True)
class CheckoutSession:
    external_id: str
    url: str


@dataclass(frozen=True)
class GatewayEventData:
    """A verified event about a checkout. `status` is PENDING/SUCCEEDED/FAILED/EXPIRED, or None
    for events the portal does not act on; `amount` is in currency units (not minor units)."""

    id: str
    type: str
    external_id: str = ""
    reference: str = ""
    status: str | None = None
    amount: Decimal | None = None
    currency: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


class PaymentGateway(abc.ABC):
    """One payment provider. Every call that creates something is idempotent on the references
    it is given (a customer per tenant, a checkout per payment): a retry after a timeout finds
    what the first call made instead of making another."""

    code: ClassVar[str] = ""

    @abc.abstractmethod
    def is_configured(self) -> bool:
        """Whether keys are set: without them the portal refuses recharges (503)."""

    @abc.abstractmethod
    def create_customer(self, customer: Customer) -> str:
        """Make the tenant a customer of the gateway; returns the gateway's customer id."""

    @abc.abstractmethod
    def create_checkout(self, checkout: Checkout, *, success_url: str, cancel_url: str) -> CheckoutSession:
        """Open a hosted payment page for `checkout`.

        :param success_url: where the payer's browser goes after paying
        :param cancel_url: where it goes when the payer gives up
        :raises GatewayError: refused or unreachable"""

    @abc.abstractmethod
    def retrieve(self, external_id: str) -> GatewayEventData:
        """The checkout's state now (for a payer back before the webhook); `id` is empty."""

    @abc.abstractmethod
    def parse_event(self, payload: bytes, headers: Mapping[str, str]) -> GatewayEventData:
        """Verify a webhook's signature and read it.

        :raises BadSignature: the signature does not verify; nothing may be trusted"""


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by name, whatever its case (Django's request.headers or a plain dict)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), "")
