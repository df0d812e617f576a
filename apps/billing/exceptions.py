"""Billing's domain errors (the rest are apps.core.exceptions)."""

from apps.core.exceptions import DomainError


class InsufficientFunds(DomainError):
    """A purchase the balance plus the credit limit cannot cover; nothing was charged."""

    status = 402
    code = "insufficient_funds"
