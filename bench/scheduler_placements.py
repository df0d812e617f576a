"""Benchmark: the scheduler's placements per second on a large inventory.

1,000 hosts (rows created directly with the model: fake URIs, heartbeat now, enabled, various
capacities and overcommit ratios) in one region, then M instance requests (a mix of sizes)
placed one by one with `apps.compute.scheduler.claim(Request(...))`, each in its own
`transaction.atomic()`, as `create_instances` does.

Baseline, in the same run: the same placements replayed as bare row-lock + update statements
(`Host.objects.select_for_update().get(pk=...)` + `update(... F() + n ...)`), on the hosts the
scheduler chose; the difference is the scheduler's own cost (its candidates query, which
filters and weighs the hosts in SQL, and the re-check of the locked row). Series are
interleaved by round; each starts from empty hosts. The program also measures how many host
rows the candidates query returns and which LIMIT its SQL carries.

    .venv/bin/python bench/scheduler_placements.py [--hosts 1000] [--instances 2000] [--rounds 3]

Prints figures only; timings are never asserted. The capacity check (no host past its vCPU or
RAM capacity) is printed as PASS/FAIL and sets the exit status.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time

from _setup import Throwaway, machine, summary, table

# Sizes asked for (vCPUs, MiB) and how often: the seeded flavors plus a large one.
SIZES = [((1, 128), 20), ((1, 256), 20), ((1, 1024), 25), ((2, 2048), 20), ((4, 4096), 10), ((8, 16384), 5)]
# Host shapes (vCPUs, MiB, cpu ratio, ram ratio, reserved MiB) and how often.
SHAPES = [
    ((4, 8192, "4.0", "1.0", 512), 10),
    ((8, 16384, "4.0", "1.0", 512), 20),
    ((16, 32768, "4.0", "1.0", 1024), 25),
    ((32, 65536, "2.0", "1.0", 2048), 20),
    ((64, 131072, "1.0", "1.5", 4096), 15),
    ((96, 262144, "4.0", "1.0", 4096), 10),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=2000, help="placements per series (M)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (scheduler, baseline)")
    parser.add_argument("--zones", type=int, default=4, help="availability zones the hosts spread over")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--candidates-sample", type=int, default=200,
                        help="calls of scheduler.candidates() timed alone after each scheduler series")
    return parser.parse_args()


def weighted(rng: random.Random, choices):
    values, weights = zip(*choices)
    return rng.choices(values, weights=weights)[0]


def main() -> int:
    args = parse_args()
    with Throwaway(name="scheduler") as state:
        return run(args, state)


def run(args, state) -> int:
    from decimal import Decimal

    from django.conf import settings
    from django.db import connection, transaction
    from django.db.models import F
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from apps.compute import scheduler
    from apps.compute.models import Cluster, Host, Region
    from apps.core.exceptions import Conflict
    from apps.core.ids import new_public_id

    rng = random.Random(args.seed)
    region = Region.objects.create(code=settings.PORTAL_DEFAULT_REGION, name="Bench region")
    zones = [Cluster.objects.create(region=region, code=f"az{n + 1}", name=f"Zone {n + 1}")
             for n in range(args.zones)]
    now = timezone.now()
    hosts = []
    for n in range(args.hosts):
        vcpus, memory_mb, cpu_ratio, ram_ratio, reserved = weighted(rng, SHAPES)
        hosts.append(Host(
            public_id=new_public_id("host"), cluster=zones[n % len(zones)], name=f"hv{n:05d}",
            uri=f"qemu+ssh://hv{n:05d}.bench.invalid/system", state=Host.ENABLED, arch="x86_64",
            hostname=f"hv{n:05d}", cpu_model="bench", vcpus=vcpus, memory_mb=memory_mb,
            cpu_allocation_ratio=Decimal(cpu_ratio), ram_allocation_ratio=Decimal(ram_ratio),
            reserved_memory_mb=reserved, kvm_usable=True, heartbeat_at=now,
        ))
    Host.objects.bulk_create(hosts, batch_size=500)
    requests = [scheduler.Request(vcpus=v, ram_mb=m, arch="x86_64", region=region.code)
                for v, m in (weighted(rng, SIZES) for _ in range(args.instances))]
    all_hosts = list(Host.objects.all())
    capacity_vcpus = sum(h.vcpus_capacity for h in all_hosts)
    capacity_mb = sum(h.memory_mb_capacity for h in all_hosts)
    asked_vcpus = sum(r.vcpus for r in requests)
    asked_mb = sum(r.ram_mb for r in requests)

    print(f"scheduler placements: {args.hosts} hosts in {args.zones} zones, {args.instances} placements/series, "
          f"{args.rounds} rounds, {state.describe()}, {machine()}")
    print(f"  inventory capacity {capacity_vcpus} vCPUs / {capacity_mb / 1024:.0f} GiB; the requests ask for "
          f"{asked_vcpus} vCPUs ({100 * asked_vcpus / capacity_vcpus:.1f}%) / {asked_mb / 1024:.0f} GiB "
          f"({100 * asked_mb / capacity_mb:.1f}%)")

    def reset() -> None:
        Host.objects.update(vcpus_used=0, memory_mb_used=0, instances_count=0, heartbeat_at=timezone.now())

    class Heartbeat:
        """Hosts older than PORTAL_HOST_DOWN_AFTER are not candidates: a long series refreshes
        the heartbeats (outside the timed blocks), as the periodic refresh_hosts would."""

        def __init__(self):
            self.last = time.monotonic()

        def tick(self):
            if time.monotonic() - self.last > min(60, settings.PORTAL_HOST_DOWN_AFTER / 3):
                Host.objects.update(heartbeat_at=timezone.now())
                self.last = time.monotonic()

    # --- the series ----------------------------------------------------------------------
    def place(claim) -> dict:
        beat, durations, chosen, failures = Heartbeat(), [], [], 0
        for request in requests:
            beat.tick()
            started = time.perf_counter()
            try:
                with transaction.atomic():
                    host = claim(request)
                chosen.append(host.pk)
            except Conflict:
                chosen.append(None)
                failures += 1
            durations.append(time.perf_counter() - started)
        return {"durations": durations, "chosen": chosen, "failures": failures}

    def baseline(chosen) -> dict:
        beat, durations = Heartbeat(), []
        for request, pk in zip(requests, chosen):
            if pk is None:
                continue
            beat.tick()
            started = time.perf_counter()
            with transaction.atomic():
                Host.objects.select_for_update().get(pk=pk)
                Host.objects.filter(pk=pk).update(
                    vcpus_used=F("vcpus_used") + request.vcpus, memory_mb_used=F("memory_mb_used") + request.ram_mb,
                    instances_count=F("instances_count") + 1,
                )
            durations.append(time.perf_counter() - started)
        return {"durations": durations, "chosen": list(chosen), "failures": 0}

    def snapshot() -> dict[int, tuple[int, int, int]]:
        return {h.pk: (h.vcpus_used, h.memory_mb_used, h.instances_count) for h in Host.objects.all()}

    # One claim under the query recorder: what a placement costs in SQL, and how many host rows
    # its candidates query returns (counted on what scheduler.candidates() handed to claim()).
    returned = []
    real_candidates = scheduler.candidates

    def counting_candidates(request, *rest, **options):
        rows = real_candidates(request, *rest, **options)
        returned.append(len(rows))
        return rows

    reset()
    scheduler.candidates = counting_candidates
    try:
        with CaptureQueriesContext(connection) as recorded:
            with transaction.atomic():
                scheduler.claim(requests[0])
    finally:
        scheduler.candidates = real_candidates
    claim_queries = len(recorded)
    host_queries = [q["sql"] for q in recorded.captured_queries
                    if "compute_host" in q["sql"] and "ORDER BY" in q["sql"].upper()]
    limit = re.search(r"\bLIMIT\s+(\d+)", host_queries[0], re.I) if host_queries else None
    if not host_queries:
        sql_side = "no host query with ORDER BY: sorted outside SQL"
    else:
        sql_side = f"filtered and ordered in SQL, {f'LIMIT {limit.group(1)}' if limit else 'no LIMIT'}"
    reset()
    alive = list(Host.objects.filter(state=Host.ENABLED, arch=requests[0].arch, cluster__region__code=region.code))
    fitting = sum(1 for h in alive if scheduler._fits(h, requests[0]))
    print(f"  one scheduler.claim() on empty hosts: {claim_queries} SQL queries; its candidates query "
          f"({sql_side}) returned {returned[0] if returned else '?'} host rows; {fitting} of the region's "
          f"{len(alive)} enabled, alive hosts fit that request")

    series_names = ["scheduler", "baseline"]
    results = {name: [] for name in series_names}
    candidates_alone = []
    candidates_rows = []
    reference_chosen = None
    reference_state = None
    checks = []
    for round_no in range(args.rounds):
        order = series_names[round_no % len(series_names):] + series_names[:round_no % len(series_names)]
        if reference_chosen is None:
            order = series_names  # the baseline replays what the scheduler chose
        for name in order:
            reset()
            if name == "scheduler":
                result = place(scheduler.claim)
                state_after = snapshot()
                if reference_chosen is None:
                    reference_chosen, reference_state = result["chosen"], state_after
                elif result["chosen"] != reference_chosen:
                    print(f"  note: round {round_no + 1}: the scheduler chose differently from round 1")
                checks.append(("scheduler", round_no, capacity_check()))
                # The candidates query alone, on the loaded inventory (read only).
                sample = requests[: args.candidates_sample]
                started = time.perf_counter()
                for request in sample:
                    candidates_rows.append(len(scheduler.candidates(request)))
                candidates_alone.append((time.perf_counter() - started) / max(1, len(sample)))
            else:
                result = baseline(reference_chosen)
                if snapshot() != reference_state:
                    print("  WARNING: the baseline replay did not end in the scheduler's state")
            results[name].append(result)
            per = statistics.median(result["durations"]) * 1000
            total = sum(result["durations"])
            print(f"  round {round_no + 1} {name:<9}: {len(result['durations'])} in {total:6.2f}s "
                  f"= {len(result['durations']) / total:8.1f}/s, median {per:6.2f} ms"
                  + (f", {result['failures']} no_valid_host" if result["failures"] else ""))

    # --- figures ---------------------------------------------------------------------------
    print()
    rows = []
    medians = {}
    for name in series_names:
        rates = [len(r["durations"]) / sum(r["durations"]) for r in results[name]]
        per_claim = [d * 1000 for r in results[name] for d in r["durations"]]
        s = summary(per_claim)
        medians[name] = s["median"]
        rows.append([name, f"{statistics.median(rates):.1f}", f"{min(rates):.1f}", f"{max(rates):.1f}",
                     f"{s['median']:.3f}", f"{s['p95']:.3f}", f"{s['max']:.3f}"])
    print(table(rows, ["series", "placements/s med", "min", "max", "ms/placement p50", "p95", "max"]))
    base = medians["baseline"]
    print()
    print(f"scheduler overhead over the bare lock+update: {medians['scheduler'] - base:.3f} ms per placement "
          f"(scheduler/baseline = {medians['scheduler'] / base:.1f}x)")
    if candidates_alone:
        print(f"scheduler.candidates() alone (loaded inventory, {args.candidates_sample} calls/round): "
              f"median {statistics.median(candidates_alone) * 1000:.3f} ms per call, "
              f"{spread(candidates_rows)} host rows returned per call")

    # Distribution after the scheduler's series (the reference state).
    hosts_by_pk = {h.pk: h for h in Host.objects.all()}
    counts = [c for _, _, c in reference_state.values()]
    mem_share = [m / hosts_by_pk[pk].memory_mb_capacity for pk, (_, m, _) in reference_state.items()]
    cpu_share = [v / hosts_by_pk[pk].vcpus_capacity for pk, (v, _, _) in reference_state.items()]
    failures = results["scheduler"][0]["failures"]
    print()
    print(f"distribution after the scheduler's series ({args.instances - failures} placed, {failures} "
          f"no_valid_host):")
    print(f"  instances per host: max {max(counts)}, min {min(counts)}, mean {statistics.mean(counts):.2f}; "
          f"{sum(1 for c in counts if c == 0)} hosts empty")
    print(f"  RAM used/capacity:  max {100 * max(mem_share):.1f}%, min {100 * min(mem_share):.1f}%, "
          f"mean {100 * statistics.mean(mem_share):.1f}%")
    print(f"  vCPU used/capacity: max {100 * max(cpu_share):.1f}%, min {100 * min(cpu_share):.1f}%, "
          f"mean {100 * statistics.mean(cpu_share):.1f}%")
    failed = [c for c in checks if not c[2][0]]
    for series, round_no, (ok, over, detail) in checks:
        if not ok:
            print(f"  capacity check FAIL ({series}, round {round_no + 1}): {over} hosts over capacity: {detail}")
    total_checks = len(checks)
    print(f"capacity check (vcpus_used <= vcpus_capacity and memory_mb_used <= memory_mb_capacity on every "
          f"host, after each of the {total_checks} scheduler series): {'PASS' if not failed else 'FAIL'}")
    return 1 if failed else 0


def spread(values) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def capacity_check():
    """(ok, hosts over, a few of them) for the current host rows."""
    from apps.compute.models import Host

    over = [h for h in Host.objects.all()
            if h.vcpus_used > h.vcpus_capacity or h.memory_mb_used > h.memory_mb_capacity]
    detail = ", ".join(f"{h.name} {h.vcpus_used}/{h.vcpus_capacity} vCPU {h.memory_mb_used}/"
                       f"{h.memory_mb_capacity} MiB" for h in over[:5])
    return not over, len(over), detail


if __name__ == "__main__":
    sys.exit(main())
