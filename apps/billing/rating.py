"""Rating: usage intervals × price timelines → exact costs for any window of time.

Pure: no database, no settings, no Django (a unit test checks the imports), so settlement,
statements and price quotes share it, the property tests drive it directly and the bench
measures it alone.

Everything is an integer, so sums are exact and the cost of a window is the sum of the costs of
its pieces, however it is cut:
- time: whole seconds since the epoch, UTC (metering stamps events to the second);
- quantity: thousandths of the product's unit (a 20 GB volume = 20,000; one instance = 1,000);
- rate: 10^-10 currency units per unit-hour (prices carry 6 decimal places, discounts are in
  hundredths of a percent, so a discounted price is exact in 10 places);
- cost: 1/COST_SCALE currency units (rate × quantity × seconds, never divided).
Money appears only in `to_money`, which rounds a cost once, half up, to a currency's places.
Usage is split at every price change, override change and period (calendar month, UTC) boundary.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

PRICE_PLACES = 6  # an hourly price is charged per second: it may carry more places than money
QUANTITY_PLACES = 3
PERCENT_PLACES = 2
PRICE_SCALE = 10 ** PRICE_PLACES
QUANTITY_SCALE = 10 ** QUANTITY_PLACES
FULL_PRICE = 100 * 10 ** PERCENT_PLACES  # 100.00 % in hundredths of a percent
RATE_SCALE = PRICE_SCALE * FULL_PRICE
COST_SCALE = RATE_SCALE * QUANTITY_SCALE * 3600

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)

Rate = int | None  # None: no price in force (the usage is shown, and costs nothing)
Steps = Sequence[tuple[int, Rate]]  # (from second, rate in force from then on), sorted


@dataclass(frozen=True, slots=True)
class Usage:
    """A resource's use of a product at a quantity from `start` until `end` (None: still open,
    rated up to the window's end). `region` and `product` select the price timeline."""

    resource: str
    product: str
    region: str
    quantity: int
    start: int
    end: int | None


@dataclass(frozen=True, slots=True)
class Override:
    """A tenant's price from `start` on: a fixed rate (price units) or a discount (hundredths of
    a percent), or neither: the list price again."""

    start: int
    fixed: int | None = None
    discount: int | None = None


@dataclass(frozen=True, slots=True)
class LineItem:
    resource: str
    product: str
    period: int  # start of the calendar month (UTC) the piece belongs to
    start: int
    end: int
    quantity: int
    rate: Rate
    cost: int


def seconds(moment: datetime) -> int:
    """Whole seconds since the epoch of an aware datetime (floored)."""
    return (moment - EPOCH) // SECOND


def moment(second: int) -> datetime:
    return EPOCH + timedelta(seconds=second)


def _units(value: Decimal, places: int) -> int:
    """`value` in 10^-places; more places than that is a caller's bug."""
    units = value.scaleb(places)
    if units != units.to_integral_value():
        raise ValueError(f"{value} has more than {places} decimal places")
    return int(units)


def price_units(price: Decimal) -> int:
    """An hourly price in millionths."""
    return _units(price, PRICE_PLACES)


def quantity_units(quantity: Decimal) -> int:
    return _units(quantity, QUANTITY_PLACES)


def percent_units(percent: Decimal) -> int:
    return _units(percent, PERCENT_PLACES)


def period_start(second: int) -> int:
    """The first second of the calendar month (UTC) holding `second`."""
    day = moment(second)
    return seconds(datetime(day.year, day.month, 1, tzinfo=UTC))


def next_period(second: int) -> int:
    """The first second of the month after the one holding `second`."""
    day = moment(second)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return seconds(datetime(year, month, 1, tzinfo=UTC))


def tariff_steps(prices: Steps, overrides: Sequence[Override] = ()) -> list[tuple[int, Rate]]:
    """The rate in force from each change on, merging list prices (`(from, price units)`,
    sorted) with a tenant's overrides (sorted). Before the first list price and without a fixed
    override there is no price; consecutive equal rates are merged."""
    changes = sorted({start for start, _ in prices} | {o.start for o in overrides})
    steps: list[tuple[int, Rate]] = []
    p = o = -1
    for start in changes:
        while p + 1 < len(prices) and prices[p + 1][0] <= start:
            p += 1
        while o + 1 < len(overrides) and overrides[o + 1].start <= start:
            o += 1
        list_price = prices[p][1] if p >= 0 else None
        override = overrides[o] if o >= 0 else None
        if override is not None and override.fixed is not None:
            rate = override.fixed * FULL_PRICE
        elif list_price is None:
            rate = None
        elif override is not None and override.discount is not None:
            rate = list_price * (FULL_PRICE - override.discount)
        else:
            rate = list_price * FULL_PRICE
        if not steps or steps[-1][1] != rate:
            steps.append((start, rate))
    return steps


class _Segments:
    """One price timeline cut into pieces of constant rate inside one period, over a window."""

    __slots__ = ("starts", "ends", "rates", "periods")

    def __init__(self, steps: Steps, start: int, end: int):
        cuts = {start}
        boundary = next_period(start)
        while boundary < end:
            cuts.add(boundary)
            boundary = next_period(boundary)
        cuts.update(s for s, _ in steps if start < s < end)
        self.starts = sorted(cuts)
        self.ends = [*self.starts[1:], end]
        step_starts = [s for s, _ in steps]
        self.rates = []
        self.periods = []
        for cut in self.starts:
            i = bisect_right(step_starts, cut) - 1
            self.rates.append(steps[i][1] if i >= 0 else None)
            self.periods.append(period_start(cut))


def _pieces(usages: Iterable[Usage], tariffs: Mapping[tuple[str, str], Steps], start: int, end: int) -> Iterator[tuple]:
    segments: dict[tuple[str, str], _Segments] = {}
    for usage in usages:
        low = usage.start if usage.start > start else start
        high = end if usage.end is None or usage.end > end else usage.end
        if high <= low:
            continue
        key = (usage.region, usage.product)
        cut = segments.get(key)
        if cut is None:
            cut = segments[key] = _Segments(tariffs.get(key, ()), start, end)
        i = bisect_right(cut.starts, low) - 1
        count = len(cut.starts)
        while i < count and cut.starts[i] < high:
            a = cut.starts[i] if cut.starts[i] > low else low
            b = cut.ends[i] if cut.ends[i] < high else high
            rate = cut.rates[i]
            cost = rate * usage.quantity * (b - a) if rate else 0
            yield usage.resource, usage.product, cut.periods[i], a, b, usage.quantity, rate, cost
            i += 1


def line_items(usages: Iterable[Usage], tariffs: Mapping[tuple[str, str], Steps], start: int,
               end: int) -> Iterator[LineItem]:
    """The pieces of `usages` inside [start, end), one per constant rate and period.
    `tariffs` maps (region, product) to its steps (`tariff_steps`); a missing one: no price."""
    for piece in _pieces(usages, tariffs, start, end):
        yield LineItem(*piece)


def costs(usages: Iterable[Usage], tariffs: Mapping[tuple[str, str], Steps], start: int,
          end: int) -> dict[tuple[str, str, int], int]:
    """The exact cost of `usages` inside [start, end) per (resource, product, period)."""
    totals: dict[tuple[str, str, int], int] = {}
    for resource, product, period, _a, _b, _q, _r, cost in _pieces(usages, tariffs, start, end):
        key = (resource, product, period)
        totals[key] = totals.get(key, 0) + cost
    return totals


def to_money(cost: int, places: int) -> Decimal:
    """A cost rounded half up to `places` decimal places: the only rounding in billing."""
    units, rest = divmod(cost * 10 ** places, COST_SCALE)
    if 2 * rest >= COST_SCALE:
        units += 1
    return Decimal(units).scaleb(-places)
