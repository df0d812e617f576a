"""Benchmark: from the portal's create request to a booted guest, against libvirt alone.

Portal path, per run: POST /api/v1/instances (DRF APIClient, Bearer API token of the tenant's
owner) → the service validates, counts quota, claims a host, writes the row and the operation
and enqueues `provision_instance` on commit (django-q2's ORM broker, in the throwaway database)
→ this program acts as the worker: it takes the queued task off the broker and runs it
in-process → the row is `running` → the guest prints BOOT-OK on its serial log
(apps.compute.tasks.serial_log_path).

Direct path, per run: the same DomainSpec (apps.compute.tasks.domain_spec on an unsaved
Instance of the same host, image and size) → domain_xml.build → virConnect.defineXML →
virDomain.create → BOOT-OK in its serial log.

Real libvirtd (PORTAL_LIBVIRT_URI, default qemu:///system) and the real tiny image, seeded
with `manage.py seed_compute` into the throwaway database. Runs are interleaved (portal first
on odd runs, direct first on even ones) after one untimed warm-up pair; one guest at a time.
Every domain created is removed: portal ones through services.delete_instance (and the
destroy task), direct ones with destroy + undefine, and a final sweep catches leftovers.

    bench/with_libvirt.sh bench/create_to_running.py [--runs 5]
    .venv/bin/python bench/create_to_running.py [--runs 5]      # libvirtd already running

Prints figures only; timings are never asserted.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from pathlib import Path

from _setup import Throwaway, machine, table

BOOT_MARK = b"BOOT-OK"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each path (N)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each path first")
    parser.add_argument("--flavor", default="t1.nano")
    parser.add_argument("--boot-timeout", type=float, default=180.0, help="seconds to wait for BOOT-OK")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between serial log reads")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    with Throwaway(name="boot", libvirt=True) as state:
        return Bench(args, state).run()


def wait_for_boot(path: Path, started: float, timeout: float, poll: float) -> float:
    """Seconds from `started` until the serial log holds BOOT-OK."""
    deadline = started + timeout
    while True:
        try:
            if BOOT_MARK in path.read_bytes():
                return time.perf_counter() - started
        except FileNotFoundError:
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no BOOT-OK in {path.name} after {timeout:.0f}s")
        time.sleep(poll)


class Bench:
    def __init__(self, args, state):
        self.args = args
        self.state = state
        self.portal_instances: list[str] = []  # public ids, deleted through the portal
        self.domain_names: set[str] = set()  # every domain this program may have created

    # -- setup ----------------------------------------------------------------------------
    def setup(self) -> bool:
        import io

        import libvirt
        from django.conf import settings
        from django.core.management import call_command
        from rest_framework.test import APIClient

        from apps.compute.models import Flavor, Host, Image
        from apps.core.policies import OWNER
        from apps.tenants import services as tenant_services
        from apps.tenants.models import ApiToken, Membership
        from tests.factories.tenants import actor_for, make_tenant

        if not (self.state.tiny_source / "manifest.json").exists():
            print("the tiny image is not built: run scripts/build_tiny_image.sh (or bench/with_libvirt.sh)")
            return False
        out, err = io.StringIO(), io.StringIO()
        call_command("seed_compute", stdout=out, stderr=err)
        self.host = Host.objects.select_related("cluster").filter(uri=settings.PORTAL_LIBVIRT_URI).first()
        if self.host is None:
            print(f"libvirt at {settings.PORTAL_LIBVIRT_URI} did not answer ({err.getvalue().strip()}); "
                  f"start it with bench/with_libvirt.sh")
            return False
        self.image = Image.objects.get(boot=Image.KERNEL, status=Image.ACTIVE)
        self.flavor = Flavor.objects.get(name=self.args.flavor)
        tenant = make_tenant("Bench tenant", owner_username="bench-owner")
        self.owner = Membership.objects.get(tenant=tenant, role=OWNER)
        self.actor = actor_for(self.owner)
        self.tenant = tenant
        _, secret = tenant_services.create_api_token(self.actor, name="bench", scope=ApiToken.READ_WRITE,
                                                     tenant=tenant)
        self.client = APIClient(HTTP_HOST="localhost", HTTP_ACCEPT="application/json")
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.conn = libvirt.open(settings.PORTAL_LIBVIRT_URI)
        self.uri = settings.PORTAL_LIBVIRT_URI
        print(f"create → running → BOOT-OK: host {self.host.name} ({self.uri}, {self.host.vcpus} CPUs, "
              f"{self.host.memory_mb} MiB, virt type {self.host.effective_virt_type}), flavor {self.flavor.name} "
              f"({self.flavor.vcpus} vCPU, {self.flavor.ram_mb} MiB), image {self.image.name}, "
              f"{self.args.runs} runs + {self.args.warmup} warm-up, {self.state.describe()}, {machine()}")
        return True

    # -- the bench is the worker ----------------------------------------------------------
    def run_queued_tasks(self) -> list[tuple[str, float]]:
        """Take every queued django-q2 task off the ORM broker and run it here, as a worker
        would (without its process pool and result bookkeeping)."""
        from django.utils.module_loading import import_string
        from django_q.models import OrmQ

        ran = []
        while rows := list(OrmQ.objects.order_by("id")):
            for row in rows:
                task = row.task
                row.delete()  # acknowledged before it runs: a failing task is not run again
                func = task["func"]
                fn = import_string(func) if isinstance(func, str) else func
                started = time.perf_counter()
                fn(*task.get("args", ()), **task.get("kwargs", {}))
                ran.append((func if isinstance(func, str) else fn.__name__, time.perf_counter() - started))
        return ran

    def heartbeat(self) -> None:
        """What the periodic refresh_hosts does: a host silent for PORTAL_HOST_DOWN_AFTER is
        not a candidate any more, and a long benchmark outlives that. Untimed."""
        from django.conf import settings

        from apps.compute import services

        services.refresh_host(self.host.pk, down_after_seconds=settings.PORTAL_HOST_DOWN_AFTER)

    # -- the two paths --------------------------------------------------------------------
    def portal_run(self, n: int) -> dict:
        from apps.compute.models import Instance
        from apps.compute.tasks import serial_log_path

        started = time.perf_counter()
        response = self.client.post("/api/v1/instances", {"name": f"bench-{n}", "flavor": self.flavor.name,
                                                          "image": self.image.public_id}, format="json")
        accepted = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"POST /api/v1/instances: HTTP {response.status_code} {response.content[:300]!r}")
        public_id = response.json()[0]["id"]
        self.portal_instances.append(public_id)
        self.domain_names.add(public_id)
        ran = self.run_queued_tasks()
        instance = Instance.objects.get(public_id=public_id)
        running = time.perf_counter() - started
        if instance.status != Instance.RUNNING:
            raise RuntimeError(f"{public_id} is {instance.status}: {instance.status_reason}")
        booted = wait_for_boot(serial_log_path(instance), started, self.args.boot_timeout, self.args.poll)
        task_seconds = sum(seconds for name, seconds in ran if name.endswith("provision_instance"))
        removed = self.portal_delete(public_id)
        return {"accepted": accepted, "task": task_seconds, "running": running, "booted": booted,
                "deleted": removed}

    def portal_delete(self, public_id: str) -> float:
        from apps.compute import services
        from apps.compute.models import Instance

        started = time.perf_counter()
        instance = Instance.objects.get(public_id=public_id)
        if instance.status not in (Instance.DELETING, Instance.DELETED):
            services.delete_instance(self.actor, instance=instance)
        self.run_queued_tasks()
        seconds = time.perf_counter() - started
        status = Instance.objects.get(public_id=public_id).status
        if status != Instance.DELETED:
            raise RuntimeError(f"{public_id} is {status} after the delete")
        self.portal_instances.remove(public_id)
        return seconds

    def direct_run(self, n: int) -> dict:
        from apps.compute.drivers import domain_xml
        from apps.compute.models import Instance
        from apps.compute.tasks import domain_spec

        name = f"bench-direct-{n}-{secrets.token_hex(3)}"
        # The same DomainSpec the provisioning task builds, from an unsaved row of the same shape.
        template = Instance(public_id=name, name=name, tenant=self.tenant, host=self.host, image=self.image,
                            flavor=self.flavor, vcpus=self.flavor.vcpus, ram_mb=self.flavor.ram_mb)
        spec = domain_spec(template)
        log = Path(spec.serial_log)
        self.domain_names.add(name)
        started = time.perf_counter()
        dom = self.conn.defineXML(domain_xml.build(spec))
        dom.create()
        running = time.perf_counter() - started
        booted = wait_for_boot(log, started, self.args.boot_timeout, self.args.poll)
        removed = self.direct_delete(name)
        log.unlink(missing_ok=True)
        return {"running": running, "booted": booted, "deleted": removed}

    def direct_delete(self, name: str) -> float:
        import libvirt

        started = time.perf_counter()
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return 0.0
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                          | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        return time.perf_counter() - started

    # -- cleanup --------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Portal instances still there go through the portal's delete; then every domain name
        this program used is looked up and destroyed + undefined if it still exists."""
        import libvirt

        for public_id in list(self.portal_instances):
            try:
                self.portal_delete(public_id)
            except Exception as exc:
                print(f"  cleanup: portal delete of {public_id} failed ({exc}); removing the domain directly")
        conn = getattr(self, "conn", None)
        if conn is None:
            if not self.domain_names:
                return
            conn = libvirt.open(self.uri)
        leftovers = []
        for name in sorted(self.domain_names):
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            leftovers.append(name)
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                  | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            except libvirt.libvirtError as exc:
                print(f"  cleanup: could not remove domain {name}: {exc}")
        if leftovers:
            print(f"  cleanup: removed {len(leftovers)} leftover domains: {', '.join(leftovers)}")
        try:
            conn.close()
        except Exception:
            pass
        self.conn = None

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> int:
        results = {"portal": [], "direct": []}
        failed = False
        try:
            if not self.setup():
                return 2
            total = self.args.warmup + self.args.runs
            for n in range(total):
                warm = n < self.args.warmup
                self.heartbeat()
                order = ["portal", "direct"] if n % 2 == 0 else ["direct", "portal"]
                for kind in order:
                    result = self.portal_run(n) if kind == "portal" else self.direct_run(n)
                    label = "warm-up" if warm else f"run {n - self.args.warmup + 1}"
                    if kind == "portal":
                        print(f"  {label:<8} portal: POST→202 {result['accepted']:.3f}s, provision task "
                              f"{result['task']:.3f}s, →running {result['running']:.3f}s, →BOOT-OK "
                              f"{result['booted']:.2f}s (delete {result['deleted']:.2f}s)")
                    else:
                        print(f"  {label:<8} direct: define+create {result['running']:.3f}s, →BOOT-OK "
                              f"{result['booted']:.2f}s (destroy+undefine {result['deleted']:.2f}s)")
                    if not warm:
                        results[kind].append(result)
        except Exception as exc:
            failed = True
            print(f"FAILED: {type(exc).__name__}: {exc}")
        finally:
            self.cleanup()
        if results["portal"] and results["direct"]:
            self.report(results)
        return 1 if failed else 0

    def report(self, results) -> None:
        def stats(kind, key):
            values = [r[key] for r in results[kind]]
            return statistics.median(values), min(values), max(values)

        def cell(values):
            med, low, high = values
            return f"{med:.3f} ({low:.3f}-{high:.3f})"

        rows = []
        for label, portal_key, direct_key in (
            ("until running (portal: row running; direct: create() returned)", "running", "running"),
            ("until BOOT-OK on the serial log", "booted", "booted"),
            ("removal (portal: delete + task; direct: destroy+undefine)", "deleted", "deleted"),
        ):
            p, d = stats("portal", portal_key), stats("direct", direct_key)
            rows.append([label, cell(p), cell(d), f"{p[0] / d[0]:.2f}x", f"{p[0] - d[0]:+.3f}"])
        print()
        print(f"seconds, median (min-max) of {len(results['portal'])} runs each")
        print(table(rows, ["measure", "portal", "direct libvirt", "portal/direct", "portal-direct s"]))
        accepted, task = stats("portal", "accepted"), stats("portal", "task")
        guest_p = statistics.median(r["booted"] - r["running"] for r in results["portal"])
        guest_d = statistics.median(r["booted"] - r["running"] for r in results["direct"])
        print()
        print(f"portal breakdown: POST→202 {cell(accepted)} s, provision task {cell(task)} s")
        print(f"guest boot after start (BOOT-OK minus running): portal {guest_p:.3f} s, direct {guest_d:.3f} s")


if __name__ == "__main__":
    sys.exit(main())
