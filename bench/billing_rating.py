"""Benchmark: rating 1,000,000 usage intervals, and the memory it takes.

Rating is the pure function settlement runs on every tenant's usage (apps.billing.rating: no
database, no Django), so this program needs nothing running and no throwaway state. It builds
M seeded usage intervals (default 1,000,000) of R resources over 8 products and 2 regions (a
fifth still open, lengths from minutes to weeks, starting before or inside the window), and
price timelines with 1 to 3 list price changes (±20 %) inside the window plus a tenant discount or fixed
price on some, then rates them over a window of two months that crosses three month boundaries.

Series, interleaved by round (the order rotates every round):

- **rating.costs**: what settlement does: exact integer costs per (resource, product, month),
  split at every price, override and month boundary.
- **rating.line_items**: the same pieces as LineItem objects, consumed one by one (statements).
- **float baseline**: a naive loop: overlap hours × the price in force at the interval's start ×
  quantity, as floats, summed per (resource, product). No splits at price changes or months.
- **Decimal baseline**: the same loop with Decimal, each interval rounded to cents (the common
  per-row approach), also without splits.

Printed: intervals per second median (min-max) over rounds, pieces rated, the memory peak of one
pass (tracemalloc, measured on a separate untimed pass, after the input is built), and each
series' grand total next to the exact one (rating's, rounded once to cents): the baselines'
difference is what their shortcuts cost in money.

    .venv/bin/python bench/billing_rating.py [--intervals 1000000] [--rounds 3]
    .venv/bin/python bench/billing_rating.py --intervals 100000 --rounds 1     # quick

Prints figures only; timings are never asserted.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from bisect import bisect_right
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from _setup import machine, table

from apps.billing import rating

PRODUCTS = ["instance.flavor.t1-nano", "instance.flavor.s1-small", "instance.flavor.m1-large", "volume.gb.ssd",
            "volume.gb.standard", "snapshot.gb", "eip.hour", "eip.bandwidth_mbps"]
REGIONS = ["eu-1", "us-1"]
START = rating.seconds(datetime(2026, 2, 15, tzinfo=UTC))
END = rating.seconds(datetime(2026, 4, 15, tzinfo=UTC))
CENT = Decimal("0.01")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intervals", type=int, default=1_000_000, help="usage intervals rated (M)")
    parser.add_argument("--resources", type=int, default=100_000, help="resources they belong to (R)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def build(args):
    """Seeded usage and the tenant's price timelines (list prices merged with its overrides)."""
    rng = random.Random(args.seed)
    tariffs = {}
    for region in REGIONS:
        for product in PRODUCTS:
            steps = [(START - 90 * 86400, rng.randint(100, 200_000))]  # price units: 0.0001 to 0.2 per hour
            for at in sorted(rng.sample(range(START, END), rng.randint(1, 3))):
                steps.append((at, max(1, round(steps[-1][1] * rng.uniform(0.8, 1.2)))))  # ±20 % a change
            overrides = []
            if rng.random() < 0.3:
                overrides.append(rating.Override(rng.randrange(START, END), discount=rng.choice([500, 1250, 2000])))
            elif rng.random() < 0.2:
                fixed = round(steps[0][1] * rng.uniform(0.5, 0.9))  # a negotiated price under the list
                overrides.append(rating.Override(rng.randrange(START, END), fixed=fixed))
            tariffs[(region, product)] = rating.tariff_steps(steps, overrides)
    count = args.intervals
    starts = [rng.randrange(START - 30 * 86400, END) for _ in range(count)]
    lengths = [int(rng.expovariate(1 / (3 * 86400))) + 1 for _ in range(count)]  # 3 days on average
    still_open = [rng.random() < 0.2 for _ in range(count)]
    columns = zip(rng.choices(PRODUCTS, k=count), rng.choices(REGIONS, k=count),
                  rng.choices([1000, 1000, 20_000, 100_000, 500_000], k=count), starts, lengths, still_open)
    usages = [rating.Usage(f"r-{n % args.resources:06d}", product, region, quantity, start,
                           None if running else start + length)
              for n, (product, region, quantity, start, length, running) in enumerate(columns)]
    return usages, tariffs


def run_costs(usages, tariffs):
    totals = rating.costs(usages, tariffs, START, END)
    return len(totals), rating.to_money(sum(totals.values()), 2)


def run_line_items(usages, tariffs):
    pieces = 0
    total = 0
    for item in rating.line_items(usages, tariffs, START, END):
        pieces += 1
        total += item.cost
    return pieces, rating.to_money(total, 2)


def _rate_at(steps, starts, moment) -> int:
    """The rate in force at `moment` (every timeline here starts before the window)."""
    return steps[bisect_right(starts, moment) - 1][1]


def run_float(usages, tariffs):
    starts = {key: [s for s, _ in steps] for key, steps in tariffs.items()}
    totals: dict = {}
    for u in usages:
        low, high = max(u.start, START), min(END if u.end is None else u.end, END)
        if high <= low:
            continue
        key = (u.region, u.product)
        price = _rate_at(tariffs[key], starts[key], low) / rating.RATE_SCALE
        group = (u.resource, u.product)
        totals[group] = totals.get(group, 0.0) + (high - low) / 3600 * price * u.quantity / rating.QUANTITY_SCALE
    return len(totals), Decimal(repr(sum(totals.values()))).quantize(CENT, ROUND_HALF_UP)


def run_decimal(usages, tariffs):
    starts = {key: [s for s, _ in steps] for key, steps in tariffs.items()}
    scale, per_hour = Decimal(rating.RATE_SCALE * rating.QUANTITY_SCALE), Decimal(3600)
    totals: dict = {}
    for u in usages:
        low, high = max(u.start, START), min(END if u.end is None else u.end, END)
        if high <= low:
            continue
        key = (u.region, u.product)
        price = Decimal(_rate_at(tariffs[key], starts[key], low))
        cost = (price * u.quantity * (high - low) / per_hour / scale).quantize(CENT, ROUND_HALF_UP)
        group = (u.resource, u.product)
        totals[group] = totals.get(group, Decimal(0)) + cost
    return len(totals), sum(totals.values(), Decimal(0))


SERIES = [("rating.costs", run_costs), ("rating.line_items", run_line_items), ("float baseline", run_float),
          ("Decimal baseline", run_decimal)]


def peak_of(fn, *inputs) -> int:
    gc.collect()
    tracemalloc.start()
    fn(*inputs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> int:
    args = parse_args()
    print(f"billing rating: {args.intervals:,} intervals of {args.resources:,} resources, {len(PRODUCTS)} products × "
          f"{len(REGIONS)} regions, window {rating.moment(START):%Y-%m-%d} – {rating.moment(END):%Y-%m-%d}, "
          f"{args.rounds} rounds, {machine()}")
    started = time.perf_counter()
    tracemalloc.start()
    inputs = build(args)
    input_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"  input built in {time.perf_counter() - started:.1f}s, {input_bytes / 2 ** 20:.0f} MiB (traced)")

    durations = {name: [] for name, _ in SERIES}
    results = {}
    for round_no in range(args.rounds):
        order = SERIES[round_no % len(SERIES):] + SERIES[:round_no % len(SERIES)]
        for name, fn in order:
            gc.collect()
            began = time.perf_counter()
            results[name] = fn(*inputs)
            durations[name].append(time.perf_counter() - began)
        print(f"  round {round_no + 1}: " + ", ".join(f"{name} {durations[name][-1]:.2f}s" for name, _ in SERIES))

    exact = results["rating.costs"][1]
    rows = []
    for name, fn in SERIES:
        rates = [args.intervals / d for d in durations[name]]
        count, total = results[name]
        rows.append([name, f"{statistics.median(rates):,.0f}", f"{min(rates):,.0f}", f"{max(rates):,.0f}",
                     f"{count:,}", f"{peak_of(fn, *inputs) / 2 ** 20:.1f}", f"{total:,.2f}", f"{total - exact:+,.2f}"])
    print()
    print(table(rows, ["series", "intervals/s med", "min", "max", "rows out", "peak MiB", "total", "vs exact"]))
    ratio = statistics.median(durations["rating.costs"]) / statistics.median(durations["float baseline"])
    drift = results["Decimal baseline"][1] - results["float baseline"][1]
    print()
    print("rows out: (resource, product, month) groups for rating.costs, pieces for rating.line_items, "
          "(resource, product) groups for the baselines")
    print(f"rating.costs takes {ratio:.1f}x the float loop's time. The baselines price a whole interval at the "
          f"rate in force at its start (no split at price changes): {results['float baseline'][1] - exact:+,.2f} "
          f"against the exact total; rounding each interval to cents moves the Decimal loop a further "
          f"{drift:+,.2f} from the float one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
