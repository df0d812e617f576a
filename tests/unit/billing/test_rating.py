"""Rating, the pure function: exact costs split at price, override and month boundaries."""

import ast
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from apps.billing import rating
from apps.billing.rating import COST_SCALE, LineItem, Override, Usage, costs, line_items, tariff_steps, to_money


def s(*args) -> int:
    return rating.seconds(datetime(*args, tzinfo=UTC))


def per_hour(price: str) -> int:
    """A list price in force without discount, as a rate."""
    return rating.price_units(Decimal(price)) * rating.FULL_PRICE


MARCH, APRIL = s(2026, 3, 1), s(2026, 4, 1)


def test_an_hour_at_a_price_costs_the_price():
    tariffs = {("r1", "vm"): tariff_steps([(MARCH, rating.price_units(Decimal("0.036")))])}
    usage = Usage("i-1", "vm", "r1", 1000, s(2026, 3, 2, 10), s(2026, 3, 2, 11))

    total = costs([usage], tariffs, MARCH, APRIL)

    assert total == {("i-1", "vm", MARCH): 3600 * 1000 * per_hour("0.036")}
    assert to_money(total[("i-1", "vm", MARCH)], 2) == Decimal("0.04")  # 0.036 rounded half up
    assert to_money(total[("i-1", "vm", MARCH)], 4) == Decimal("0.0360")


def test_usage_is_split_at_a_price_change_and_at_the_month_boundary():
    change = s(2026, 3, 31, 23)
    tariffs = {("r1", "vm"): tariff_steps([(MARCH, rating.price_units(Decimal("1"))),
                                           (change, rating.price_units(Decimal("2")))])}
    usage = Usage("i-1", "vm", "r1", 1000, s(2026, 3, 31, 22), None)  # still open

    items = list(line_items([usage], tariffs, MARCH, s(2026, 4, 1, 1)))

    assert items == [
        LineItem("i-1", "vm", MARCH, s(2026, 3, 31, 22), change, 1000, per_hour("1"), 3600 * 1000 * per_hour("1")),
        LineItem("i-1", "vm", MARCH, change, APRIL, 1000, per_hour("2"), 3600 * 1000 * per_hour("2")),
        LineItem("i-1", "vm", APRIL, APRIL, s(2026, 4, 1, 1), 1000, per_hour("2"), 3600 * 1000 * per_hour("2")),
    ]
    totals = costs([usage], tariffs, MARCH, s(2026, 4, 1, 1))
    by_month = {period: to_money(cost, 2) for (_, _, period), cost in totals.items()}
    assert by_month == {MARCH: Decimal("3.00"), APRIL: Decimal("2.00")}


def test_quantity_multiplies_and_thousandths_are_exact():
    tariffs = {("r1", "vol"): tariff_steps([(MARCH, rating.price_units(Decimal("0.000139")))])}
    usage = Usage("vol-1", "vol", "r1", rating.quantity_units(Decimal("20.5")), MARCH, MARCH + 7 * 86400)

    [(key, cost)] = costs([usage], tariffs, MARCH, APRIL).items()

    # 20.5 GB × 168 h × 0.000139 = 0.478716
    assert cost * 10 ** 6 == 478716 * COST_SCALE
    assert to_money(cost, 2) == Decimal("0.48")


def test_overrides_discount_fix_and_end():
    prices = [(MARCH, rating.price_units(Decimal("0.100000")))]
    overrides = [Override(s(2026, 3, 10), discount=rating.percent_units(Decimal("12.5"))),
                 Override(s(2026, 3, 20), fixed=rating.price_units(Decimal("0.05"))),
                 Override(s(2026, 3, 25))]

    assert tariff_steps(prices, overrides) == [
        (MARCH, per_hour("0.1")),
        (s(2026, 3, 10), rating.price_units(Decimal("0.1")) * (rating.FULL_PRICE - 1250)),
        (s(2026, 3, 20), per_hour("0.05")),
        (s(2026, 3, 25), per_hour("0.1")),
    ]


def test_no_price_means_no_cost_and_the_usage_still_shows():
    later = s(2026, 3, 15)
    tariffs = {("r1", "lb"): tariff_steps([], [Override(later, fixed=rating.price_units(Decimal("1")))])}
    usage = Usage("lb-1", "lb", "r1", 1000, s(2026, 3, 14), s(2026, 3, 16))

    items = list(line_items([usage], tariffs, MARCH, APRIL))

    assert [(i.start, i.end, i.rate, i.cost) for i in items] == [
        (s(2026, 3, 14), later, None, 0),
        (later, s(2026, 3, 16), per_hour("1"), 86400 * 1000 * per_hour("1")),
    ]
    # A discount on a product without a list price is still no price.
    assert tariff_steps([], [Override(later, discount=1000)]) == [(later, None)]


def test_usage_outside_the_window_costs_nothing():
    tariffs = {("r1", "vm"): tariff_steps([(0, 10 ** 6)])}
    usages = [Usage("i-1", "vm", "r1", 1000, s(2026, 2, 1), s(2026, 3, 1)),  # ends where the window starts
              Usage("i-2", "vm", "r1", 1000, APRIL, None)]  # starts where it ends

    assert costs(usages, tariffs, MARCH, APRIL) == {}


@pytest.mark.parametrize(("cost", "places", "money"), [
    (COST_SCALE * 5 // 1000, 2, Decimal("0.01")),       # 0.005 → half up
    (COST_SCALE * 5 // 1000 - 1, 2, Decimal("0.00")),   # just under half a cent
    (COST_SCALE * 1499 // 1000, 0, Decimal("1")),       # JPY: no places
    (COST_SCALE * 1500 // 1000, 0, Decimal("2")),
    (0, 2, Decimal("0.00")),
])
def test_to_money_rounds_once_half_up(cost, places, money):
    assert to_money(cost, places) == money
    assert to_money(cost, places).as_tuple().exponent == -places


def test_month_periods_roll_over_the_year():
    assert rating.period_start(s(2026, 12, 31, 23, 59, 59)) == s(2026, 12, 1)
    assert rating.next_period(s(2026, 12, 31, 23, 59, 59)) == s(2027, 1, 1)


def test_conversions_refuse_more_places_than_the_units_hold():
    with pytest.raises(ValueError):
        rating.price_units(Decimal("0.0000001"))
    with pytest.raises(ValueError):
        rating.quantity_units(Decimal("1.0001"))


def test_rating_imports_nothing_of_django_or_the_database():
    tree = ast.parse(Path(rating.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not [name for name in imported if name.startswith(("django", "apps"))], imported
