"""Currencies and amounts: which currencies the portal takes (settings), how many decimal places
each has, and the checks every amount entering a service passes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core import checks

from apps.core.exceptions import ValidationFailed

# Ledger columns keep 4 places: enough for every ISO 4217 currency.
MAX_PLACES = 4
# One amount, in any currency; ledger columns hold sums far beyond it.
MAX_AMOUNT = Decimal(10) ** 12


def currencies() -> dict[str, int]:
    """Currency code → decimal places (PORTAL_CURRENCIES)."""
    return settings.PORTAL_CURRENCIES


def places(currency: str) -> int:
    return currencies()[currency]


def clean_currency(currency: str, field: str = "currency") -> str:
    code = (currency or "").strip().upper()
    if code not in currencies():
        raise ValidationFailed(f"Unknown currency '{currency}'.",
                               fields={field: [f"One of {', '.join(sorted(currencies()))}."]})
    return code


def _decimal(value, field: str) -> Decimal:
    """A Decimal from a Decimal, an int or a string; floats are refused (0.1 is not a price)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise ValidationFailed("Amounts are decimal numbers.", fields={field: ["A decimal number, e.g. 10.50."]})
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise ValidationFailed("Amounts are decimal numbers.", fields={field: ["A decimal number, e.g. 10.50."]})
    return number


def clean_decimal(value, *, places: int, field: str, signed: bool = False, zero: bool = False,
                  maximum: Decimal = MAX_AMOUNT) -> Decimal:
    """`value` as a Decimal with at most `places` decimal places (trailing zeros are fine),
    positive (or non-zero when `signed`, or also zero when `zero`) and below `maximum`;
    else a 400 on `field`."""
    number = _decimal(value, field)
    if abs(number) >= maximum:
        raise ValidationFailed("The amount is too large.", fields={field: [f"Less than {maximum:,}."]})
    exact = number.quantize(Decimal(1).scaleb(-places))
    if exact != number:
        rule = f"At most {places} decimal places."
        raise ValidationFailed(rule, fields={field: [rule]})
    if signed and number == 0:
        raise ValidationFailed("The amount cannot be zero.", fields={field: ["Not zero."]})
    if not signed and (number < 0 or (number == 0 and not zero)):
        rule = "Zero or more." if zero else "More than zero."
        raise ValidationFailed(f"The amount must be {rule[:-1].lower()}.", fields={field: [rule]})
    return exact


def clean_amount(value, currency: str, *, field: str = "amount", signed: bool = False, zero: bool = False) -> Decimal:
    """An amount of money in `currency`: no more decimal places than the currency has."""
    return clean_decimal(value, places=places(currency), field=field, signed=signed, zero=zero)


def check_currencies(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """System check: the currency table and the default currency make sense."""
    errors = []
    table = getattr(settings, "PORTAL_CURRENCIES", {})
    for code, digits in table.items():
        if len(code) != 3 or not code.isalpha() or not code.isupper() or not 0 <= digits <= MAX_PLACES:
            errors.append(checks.Error(f"PORTAL_CURRENCIES: {code}:{digits} is not CODE:places (3 capital "
                                       f"letters, 0 to {MAX_PLACES} places).", id="billing.E001"))
    if settings.PORTAL_DEFAULT_CURRENCY not in table:
        errors.append(checks.Error(f"PORTAL_DEFAULT_CURRENCY {settings.PORTAL_DEFAULT_CURRENCY} is not in "
                                   "PORTAL_CURRENCIES.", id="billing.E002"))
    return errors
