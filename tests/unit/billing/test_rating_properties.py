"""Properties of rating, for any usage, prices and cuts: the pieces add up to the whole, to the
unit of cost and to the second, and cumulative rounding never drifts."""

from datetime import UTC, datetime
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.billing import rating
from apps.billing.rating import Override, Usage, costs, line_items, tariff_steps, to_money

START = rating.seconds(datetime(2026, 1, 20, tzinfo=UTC))
END = rating.seconds(datetime(2026, 4, 10, tzinfo=UTC))  # three month boundaries inside
PRODUCTS = ("vm", "vol")
REGIONS = ("r1", "r2")

moments = st.integers(min_value=START - 86400 * 30, max_value=END + 86400 * 30)
inside = st.integers(min_value=START, max_value=END)


@st.composite
def usages(draw):
    start = draw(moments)
    end = draw(st.none() | st.integers(min_value=start, max_value=END + 86400 * 30))
    return Usage(draw(st.sampled_from(("i-1", "i-2", "vol-1"))), draw(st.sampled_from(PRODUCTS)),
                 draw(st.sampled_from(REGIONS)), draw(st.integers(min_value=1, max_value=10 ** 7)), start, end)


@st.composite
def price_lists(draw):
    starts = sorted(draw(st.sets(moments, max_size=4)))
    return [(start, draw(st.integers(min_value=0, max_value=10 ** 8))) for start in starts]


@st.composite
def override_lists(draw):
    starts = sorted(draw(st.sets(moments, max_size=3)))
    return [draw(st.sampled_from((
        Override(start),
        Override(start, fixed=draw(st.integers(min_value=0, max_value=10 ** 8))),
        Override(start, discount=draw(st.integers(min_value=0, max_value=rating.FULL_PRICE))),
    ))) for start in starts]


@st.composite
def tariff_maps(draw):
    return {(region, product): tariff_steps(draw(price_lists()), draw(override_lists()))
            for region in REGIONS for product in PRODUCTS}


def piecewise(usage_list, tariffs, cuts):
    """Rate window by window and add up, per (resource, product, period)."""
    bounds = [START, *sorted(set(cuts)), END]
    total: dict = {}
    for low, high in zip(bounds, bounds[1:]):
        for key, cost in costs(usage_list, tariffs, low, high).items():
            total[key] = total.get(key, 0) + cost
    return {key: cost for key, cost in total.items() if cost}


@settings(max_examples=150, deadline=None)
@given(st.lists(usages(), max_size=12), tariff_maps(), st.lists(inside, max_size=6))
def test_rating_any_split_of_the_window_equals_rating_it_whole(usage_list, tariffs, cuts):
    whole = {key: cost for key, cost in costs(usage_list, tariffs, START, END).items() if cost}

    assert piecewise(usage_list, tariffs, cuts) == whole
    # and so does the money, per group and in total
    assert {k: to_money(c, 2) for k, c in piecewise(usage_list, tariffs, cuts).items()} == \
        {k: to_money(c, 2) for k, c in whole.items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(usages(), max_size=12), tariff_maps())
def test_no_second_is_lost_or_counted_twice(usage_list, tariffs):
    items = list(line_items(usage_list, tariffs, START, END))

    def overlap(u):
        return max(0, min(END if u.end is None else u.end, END) - max(u.start, START))

    assert sum(i.end - i.start for i in items) == sum(overlap(u) for u in usage_list)
    assert all(i.start < i.end and rating.period_start(i.start) == i.period == rating.period_start(i.end - 1)
               for i in items)
    assert sum(i.cost for i in items) == sum(costs(usage_list, tariffs, START, END).values())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10 ** 24), min_size=1, max_size=20), st.sampled_from((0, 2, 3)))
def test_cumulative_charges_telescope_to_the_rounded_total(increments, places):
    """Settlement charges round(cost so far) − charged so far: whatever the steps, no charge is
    negative, they add up to the rounded total, and that is within half a unit of the exact."""
    charged = 0
    so_far = 0
    for step in increments:
        so_far += step
        charge = to_money(so_far, places) - charged
        assert charge >= 0
        charged += charge
    assert charged == to_money(so_far, places)
    assert abs(Fraction(charged) - Fraction(so_far, rating.COST_SCALE)) <= Fraction(1, 2 * 10 ** places)
