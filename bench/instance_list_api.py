"""Benchmark: GET /api/v1/instances as a tenant grows from 100 to 10,000 instances.

One tenant, its owner, an API token (Bearer, as API clients call) and the inventory of
tests/factories/compute.make_inventory on the in-process fake driver. Instance rows (and, for
the baseline, key-pair rows) are bulk-created with the models, then the list is fetched
through DRF's APIClient with page_size 50 and 500, K times each, at 100 rows and at 10,000.

Figures: p50/p95 latency of a request and the SQL queries one request runs, counted with
django.test.utils.CaptureQueriesContext on an extra (untimed) request before and after the
timed ones. The query count must not depend on the number of rows or the page size; both are
printed. Baseline, interleaved with it: GET /api/v1/key-pairs of the same tenant, same page
sizes, the same number of rows. It also prints, as the database reports them, the indexes of
both tables that lead with tenant_id (the list's (tenant, -created_at, -id) index among them)
and the tables the instance list's page query joins.

    .venv/bin/python bench/instance_list_api.py [--small 100] [--large 10000] [--requests 40]

Prints figures only; timings are never asserted. Exit status 1 only if a request failed or
the instance list's query count changed with the size or the page size.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import re
import secrets
import sys
import time
from datetime import timedelta

from _setup import Throwaway, machine, summary, table


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=100, help="rows in the first measurement")
    parser.add_argument("--large", type=int, default=10_000, help="rows in the second measurement")
    parser.add_argument("--requests", "-k", type=int, default=40, help="timed requests per series (K)")
    parser.add_argument("--page-sizes", default="50,500")
    parser.add_argument("--auth", choices=["token", "login"], default="token",
                        help="Bearer API token (default) or a Django login (cookie)")
    parser.add_argument("--last-page", action="store_true", help="also time the last page (deep OFFSET)")
    parser.add_argument("--show-queries", action="store_true", help="print the SQL of one instance-list request")
    parser.add_argument("--explain", action="store_true", help="print the database's plan for the page query")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    with Throwaway(name="instance_list", fake_driver=True) as state:
        return run(args, state)


def run(args, state) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from rest_framework.test import APIClient

    from apps.compute.models import Instance
    from apps.core.ids import new_public_id
    from apps.core.policies import OWNER
    from apps.tenants import services as tenant_services
    from apps.tenants.models import ApiToken, KeyPair, Membership
    from tests.factories.compute import make_inventory
    from tests.factories.tenants import actor_for, make_tenant

    page_sizes = [int(p) for p in args.page_sizes.split(",")]
    inventory = make_inventory("fake:///bench-hv1")
    host = inventory["zone"].hosts.get()
    tenant = make_tenant("Bench tenant", owner_username="bench-owner")
    owner = Membership.objects.get(tenant=tenant, role=OWNER)
    client = APIClient(HTTP_HOST="localhost", HTTP_ACCEPT="application/json")
    if args.auth == "token":
        _, secret = tenant_services.create_api_token(actor_for(owner), name="bench", scope=ApiToken.READ_WRITE,
                                                     tenant=tenant)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    else:
        client.force_login(owner.user)

    now = timezone.now()
    counter = itertools.count()

    def add_key_pairs(count: int) -> None:
        rows = []
        for _ in range(count):
            n = next(counter)
            blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + secrets.token_bytes(32)).decode()
            rows.append(KeyPair(
                public_id=new_public_id("kp"), tenant=tenant, name=f"key-{n:06d}", created_by=owner.user,
                created_at=now - timedelta(seconds=n), public_key=f"ssh-ed25519 {blob} bench-{n}",
                key_type="ssh-ed25519", fingerprint="SHA256:" + base64.b64encode(secrets.token_bytes(32)).decode()[:43],
            ))
        KeyPair.objects.bulk_create(rows, batch_size=1000)

    some_key_pairs = []
    statuses = [Instance.RUNNING] * 16 + [Instance.STOPPED] * 2 + [Instance.ERROR, Instance.PENDING]

    def add_instances(count: int) -> None:
        if not some_key_pairs:
            some_key_pairs.extend(KeyPair.objects.filter(tenant=tenant).order_by("id")[:10])
        flavor, image, zone = inventory["flavor"], inventory["image"], inventory["zone"]
        rows = []
        base = Instance.objects.count()
        for _ in range(count):
            n = base + len(rows)
            status = statuses[n % len(statuses)]
            rows.append(Instance(
                public_id=new_public_id("i"), tenant=tenant, name=f"vm-{n:06d}", created_by=owner.user,
                created_at=now - timedelta(seconds=n), region=zone.region.code, availability_zone=zone,
                host=host if status != Instance.ERROR else None, flavor=flavor, image=image,
                key_pair=some_key_pairs[n % len(some_key_pairs)] if n % 3 == 0 else None,
                vcpus=flavor.vcpus, ram_mb=flavor.ram_mb, status=status,
                status_reason="Build failed: bench" if status == Instance.ERROR else "",
                tags=["bench", f"group-{n % 7}"], metadata={"owner": "bench", "n": str(n)},
                launched_at=now - timedelta(seconds=n) if status == Instance.RUNNING else None,
            ))
        Instance.objects.bulk_create(rows, batch_size=1000)

    endpoints = {"instances": "/api/v1/instances", "key-pairs": "/api/v1/key-pairs"}

    def series_list(size: int) -> list[tuple[str, int, int]]:
        out = []
        for page_size in page_sizes:
            for endpoint in endpoints:
                out.append((endpoint, page_size, 1))
                last = max(1, -(-size // page_size))
                if args.last_page and last > 1:
                    out.append((endpoint, page_size, last))
        return out

    def get(endpoint: str, page_size: int, page: int):
        return client.get(endpoints[endpoint], {"page_size": page_size, "page": page})

    failures = []

    def checked(response, endpoint, page_size, page, size):
        if response.status_code != 200:
            failures.append(f"{endpoint} page_size={page_size}: HTTP {response.status_code} {response.content[:200]!r}")
            return 0
        data = response.json()
        expected = min(page_size, size - (page - 1) * page_size)
        if data["count"] != size or len(data["results"]) != expected:
            failures.append(f"{endpoint} page_size={page_size} page={page}: count {data['count']} (want {size}), "
                            f"{len(data['results'])} rows (want {expected})")
        return len(data["results"])

    def count_queries(endpoint, page_size, page, size):
        with CaptureQueriesContext(connection) as recorded:
            response = get(endpoint, page_size, page)
        rows = checked(response, endpoint, page_size, page, size)
        return len(recorded), rows, [q["sql"] for q in recorded.captured_queries]

    measured = {}  # (size, endpoint, page_size, page) -> dict
    print(f"instance list API: sizes {args.small} and {args.large}, page sizes {page_sizes}, K={args.requests} "
          f"timed requests per series, auth {args.auth}, {state.describe()}, {machine()}")
    plans = {}

    def explain(sql: list[str]) -> list[tuple[str, list[str]]]:
        """The database's plan of the page query and the count query of one request."""
        page_query = max((q for q in sql if "compute_instance" in q and "LIMIT" in q.upper()), key=len, default=None)
        count_query = next((q for q in sql if "COUNT(" in q.upper() and "compute_instance" in q), None)
        out = []
        for label, query in (("page", page_query), ("count", count_query)):
            if query:
                with connection.cursor() as cursor:
                    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ANALYZE "
                    cursor.execute(prefix + query)
                    out.append((label, [" | ".join(str(c) for c in row) for row in cursor.fetchall()]))
        return out

    def tenant_indexes(model) -> str:
        """The indexes of a table that lead with tenant_id, as the database reports them."""
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        out = []
        for name, c in sorted(constraints.items()):
            if c.get("index") and c["columns"] and c["columns"][0] == "tenant_id":
                orders = c.get("orders") or []
                cols = [f"{col} DESC" if i < len(orders) and orders[i] == "DESC" else col
                        for i, col in enumerate(c["columns"])]
                out.append(f"{name} ({', '.join(cols)})")
        return "; ".join(out) or "none"

    for model in (Instance, KeyPair):
        print(f"  indexes on {model._meta.db_table} leading with tenant_id: {tenant_indexes(model)}")

    def analyze() -> None:
        """PostgreSQL plans from statistics, which autovacuum would have gathered after a bulk
        load by the time a tenant has this many rows; gather them now. (SQLite: none kept.)"""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE compute_instance")
                cursor.execute("ANALYZE tenants_keypair")

    def measure(size: int, size_key) -> None:
        series = series_list(size)
        for key in series:  # warm up (first request of a URL compiles regexes, fills caches)
            get(*key)
        before = {key: count_queries(*key, size) for key in series}
        timings = {key: [] for key in series}
        for rep in range(args.requests):
            # Interleaved, rotating the order: drift of the machine hits every series alike.
            shift = rep % len(series)
            for key in series[shift:] + series[:shift]:
                started = time.perf_counter()
                response = get(*key)
                timings[key].append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(f"{key}: HTTP {response.status_code}")
        after = {key: count_queries(*key, size) for key in series}
        for key in series:
            measured[(size_key, *key)] = {"ms": [t * 1000 for t in timings[key]],
                                          "queries": (before[key][0], after[key][0]),
                                          "rows": before[key][1], "sql": before[key][2]}
        if args.explain and size_key == args.large:
            plans[size_key] = explain(measured[(size_key, "instances", page_sizes[0], 1)]["sql"])

    for size in (args.small, args.large):
        add_key_pairs(size - KeyPair.objects.filter(tenant=tenant).count())
        add_instances(size - Instance.objects.filter(tenant=tenant).count())
        analyze()
        measure(size, size)

    # --- figures ---------------------------------------------------------------------------
    rows = []
    for (size, endpoint, page_size, page), m in measured.items():
        s = summary(m["ms"])
        q_before, q_after = m["queries"]
        rows.append([f"GET /api/v1/{endpoint}", size, page_size, page if page > 1 else "1", m["rows"],
                     f"{s['median']:.1f}", f"{s['p95']:.1f}", f"{s['min']:.1f}",
                     str(q_before) if q_before == q_after else f"{q_before}/{q_after}"])
    print()
    print(table(rows, ["request", "rows in tenant", "page_size", "page", "rows returned", "p50 ms", "p95 ms",
                       "min ms", "SQL queries/request"]))
    print()
    bad_counts = []
    for page_size in page_sizes:
        for endpoint in endpoints:
            small = measured[(args.small, endpoint, page_size, 1)]
            large = measured[(args.large, endpoint, page_size, 1)]
            qs, ql = small["queries"][0], large["queries"][0]
            same = qs == ql
            if endpoint == "instances" and not same:
                bad_counts.append(page_size)
            growth = summary(large["ms"])["median"] / summary(small["ms"])["median"]
            print(f"{endpoint:<9} page_size {page_size:>3}: {qs} queries at {args.small} rows, {ql} at "
                  f"{args.large} rows ({'same' if same else 'DIFFERENT'}); p50 x{growth:.2f} from {args.small} "
                  f"to {args.large} rows")
    for size in (args.small, args.large):
        for page_size in page_sizes:
            inst = summary(measured[(size, "instances", page_size, 1)]["ms"])["median"]
            keys = summary(measured[(size, "key-pairs", page_size, 1)]["ms"])["median"]
            print(f"{size:>6} rows, page_size {page_size:>3}: instances/key-pairs p50 = {inst:.1f}/{keys:.1f} ms "
                  f"= {inst / keys:.2f}x")
    page_sql = max((q for q in measured[(args.large, "instances", page_sizes[0], 1)]["sql"]
                    if "compute_instance" in q and "LIMIT" in q.upper()), key=len, default="")
    joined = re.findall(r'JOIN\s+"?(\w+)"?', page_sql, re.I)
    print(f"instance list page query joins {len(joined)} tables: {', '.join(joined) or 'none'}")
    per_size = {ps: {measured[(s, "instances", ps, 1)]["queries"][0] for s in (args.small, args.large)}
                for ps in page_sizes}
    all_counts = set().union(*per_size.values())
    print(f"instance list query count independent of rows and page size: "
          f"{'yes' if len(all_counts) == 1 else 'NO'} ({sorted(all_counts)})")

    if args.show_queries:
        print()
        print(f"SQL of GET /api/v1/instances?page_size={page_sizes[0]} at {args.large} rows:")
        for n, text in enumerate(measured[(args.large, "instances", page_sizes[0], 1)]["sql"], 1):
            print(f"  {n}. {text[:300]}{'...' if len(text) > 300 else ''}")
    for label, lines in plans.get(args.large, []):
        print()
        print(f"plan of the {label} query at {args.large} rows ({connection.vendor}):")
        for line in lines:
            print("  " + line)

    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures or bad_counts else 0


if __name__ == "__main__":
    sys.exit(main())
