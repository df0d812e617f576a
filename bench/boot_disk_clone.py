"""Benchmark: a disk-image instance from create to BOOT-OK with its root disk made as a
copy-on-write clone of the image (what the portal does), against the same with the root disk a
full copy of the image (baseline), per storage backend, in the same run.

Portal path ("clone"): services.create_instances(flavor t1.micro, image "Tiny Linux (busybox,
disk)") with the provisioning task run inline (django-q2 sync mode) → provision_instance →
storage.ensure_root_volume: import_image (the image base, once per pool) then clone_image (a
qcow2 overlay on the base in a dir pool; an RBD clone of the base's protected snapshot) → the
domain is defined and started → SeaBIOS → SYSLINUX → the kernel, read from the root volume →
BOOT-OK on the serial log.

Baseline ("full copy", BASELINE ONLY): the same call, but in this process the pool's driver object
gets its clone_image replaced by copy_volume(name, base, size): the root disk is a full,
independent copy of the image base (ensure_root_volume still runs import_image first). No app
code is changed; the patch is removed after each baseline run.

Backends: a libvirt dir pool in the throwaway libvirt dir; and, when PORTAL_TEST_CEPH_* is set
(bench/with_ceph.sh), an RBD pool of the throwaway Ceph cluster, in the same run. Only the pool
being measured is enabled, so the portal puts the root disk there. If a guest cannot boot from
RBD, the RBD figures stop at "root volume ready" and the output says why.

One untimed warm-up round (it imports the image base into each pool), then N rounds; each round
runs every (backend, method) once, one guest at a time, in an order that rotates every round.
Every instance is deleted through the portal; then the root volumes and image bases, the
libvirt pool, the libvirt secret the RBD pool made, and any domain left are removed.

    bench/with_ceph.sh bench/boot_disk_clone.py [--runs 5]      # dir and RBD
    bench/with_libvirt.sh bench/boot_disk_clone.py [--runs 5]   # dir only

Prints figures only; timings are never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import secrets
import statistics
import sys
import time

from _setup import (Throwaway, allocated_bytes, ceph_config, close_storage_driver, machine, mib,
                    remove_libvirt_leftovers, remove_volumes, table)
from create_to_running import wait_for_boot

IMAGE_NAME = "Tiny Linux (busybox, disk)"
METHODS = ("clone", "copy")
LABELS = {"clone": "clone (portal)", "copy": "full copy (baseline)"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (N)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--flavor", default="t1.micro")
    parser.add_argument("--boot-timeout", type=float, default=120.0, help="seconds to wait for BOOT-OK")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between serial log reads")
    parser.add_argument("--no-rbd", action="store_true", help="the dir pool only, even with Ceph")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    with Throwaway(name="bootclone", libvirt=True) as state:
        return Bench(args, state).run()


@contextlib.contextmanager
def full_copy_root_disks(driver):
    """BASELINE ONLY: this driver object makes "clones" as full copies of the image base."""
    driver.clone_image = lambda name, base, size_bytes: driver.copy_volume(name, base, size_bytes)
    try:
        yield
    finally:
        del driver.clone_image  # the class's clone_image again


class Bench:
    def __init__(self, args, state):
        self.args, self.state = args, state
        self.tag = secrets.token_hex(3)
        self.pools: dict = {}  # backend → StoragePool
        self.libvirt_pools: list[str] = []
        self.rbd_problem = ""
        self.image = None
        self.base_allocated: dict[str, int] = {}  # backend → bytes of the image base in the pool

    def setup(self) -> None:
        from django.conf import settings
        from django.core.management import call_command
        from django_q.conf import Conf

        from apps.compute.models import Flavor, Host, Image
        from apps.core.actor import Actor
        from apps.storage import services as storage
        from apps.storage.models import StoragePool
        from apps.tenants.models import Membership
        from tests.factories.tenants import actor_for, make_tenant

        if not (self.state.tiny_source / "disk.qcow2").exists():
            raise RuntimeError("the tiny disk image is not built: run scripts/build_tiny_image.sh")
        Conf.SYNC = True  # tasks run inline, on commit (Throwaway drops PORTAL_TASKS_SYNC)
        call_command("seed_compute", stdout=io.StringIO(), stderr=(err := io.StringIO()))
        self.host = Host.objects.select_related("cluster__region").filter(uri=settings.PORTAL_LIBVIRT_URI).first()
        if self.host is None:
            raise RuntimeError(f"libvirt at {settings.PORTAL_LIBVIRT_URI} did not answer: {err.getvalue().strip()}")
        self.image = Image.objects.get(boot=Image.DISK, name=IMAGE_NAME)
        self.flavor = Flavor.objects.get(name=self.args.flavor)
        tenant = make_tenant("Bench tenant", owner_username="bench-owner")
        self.actor = actor_for(Membership.objects.get(tenant=tenant))
        system, region = Actor.system(), self.host.cluster.region
        # Pools of our own (not seed_storage's `local`: its libvirt name portal-local is per machine).
        name = f"bench-dir-{self.tag}"
        self.libvirt_pools.append(f"portal-{name}")  # defined in libvirt by add_storage_pool
        configs = {"dir": {"path": str(settings.PORTAL_LIBVIRT_DIR / f"pool-{self.tag}")}}
        if (ceph := None if self.args.no_rbd else ceph_config()) is not None:
            configs["rbd"] = ceph
        for backend, config in configs.items():
            pool = storage.add_storage_pool(system, name=f"bench-{backend}-{self.tag}", backend=backend,
                                            region=region, host=self.host if backend == "dir" else None,
                                            config=config)
            storage.create_volume_type(system, name=pool.name, pool=pool)
            self.pools[backend] = pool
        StoragePool.objects.exclude(pk__in=[p.pk for p in self.pools.values()]).update(enabled=False)
        print(f"disk-image instance → BOOT-OK, root disk cloned vs fully copied: host {self.host.name} "
              f"({self.host.uri}, virt type {self.host.effective_virt_type}), flavor {self.flavor.name} "
              f"({self.flavor.ram_mb} MiB, {self.flavor.disk_gb} GB root disk), image {self.image.name} "
              f"({mib(self.image.size_bytes)} MiB qcow2), backends {', '.join(self.pools)}"
              f"{'' if ceph else ' (no Ceph: PORTAL_TEST_CEPH_CONF unset; use bench/with_ceph.sh)'}, "
              f"{self.args.runs} rounds + {self.args.warmup} warm-up, {self.state.describe()}, {machine()}")

    def driver(self, backend: str):
        from apps.storage.backends import get_storage_driver

        return get_storage_driver(self.pools[backend])

    def use_backend(self, backend: str) -> None:
        """Only this pool is enabled, so ensure_root_volume picks it; heartbeat the host (untimed)."""
        from django.conf import settings

        from apps.compute import services as compute
        from apps.storage.models import StoragePool

        for name, pool in self.pools.items():
            StoragePool.objects.filter(pk=pool.pk).update(enabled=name == backend)
        compute.refresh_host(self.host.pk, down_after_seconds=settings.PORTAL_HOST_DOWN_AFTER)

    # -- one instance -----------------------------------------------------------------------
    def run_one(self, backend: str, method: str, n: int) -> dict:
        from apps.compute import services as compute
        from apps.compute.models import Instance
        from apps.compute.tasks import serial_log_path
        from apps.storage import services as storage
        from apps.storage.drivers.base import NotFound

        self.use_backend(backend)
        driver, marks = self.driver(backend), {}
        ensure_root_volume = storage.ensure_root_volume

        def timed_ensure_root_volume(instance):  # provision_instance calls it through the module
            marks["volume"] = ensure_root_volume(instance)
            marks["root"] = time.perf_counter() - started
            return marks["volume"]

        storage.ensure_root_volume = timed_ensure_root_volume
        try:
            with full_copy_root_disks(driver) if method == "copy" else contextlib.nullcontext():
                started = time.perf_counter()
                [instance] = compute.create_instances(self.actor, name=f"bench-{backend}-{method}-{n}",
                                                      flavor=self.flavor.name, image=self.image.public_id)
                running = time.perf_counter() - started
        finally:
            storage.ensure_root_volume = ensure_root_volume
        instance.refresh_from_db()
        result = {"root": marks.get("root"), "running": None, "booted": None}
        if "volume" not in marks:
            raise RuntimeError(f"{instance.public_id} has no root volume: {instance.status_reason}")
        volume = marks["volume"].public_id
        parent = driver.volume_info(volume).parent
        self.base_allocated.setdefault(backend, allocated_bytes(driver, self.image.public_id))
        if bool(parent) != (method == "clone"):
            raise RuntimeError(f"{volume} has parent {parent!r}: not a {method}")
        if instance.status == Instance.RUNNING:
            result["running"] = running
            if not (backend == "rbd" and self.rbd_problem):
                try:
                    result["booted"] = wait_for_boot(serial_log_path(instance), started, self.args.boot_timeout,
                                                     self.args.poll)
                except TimeoutError as exc:
                    if backend != "rbd":
                        raise
                    self.rbd_problem = f"the guest did not boot from RBD ({exc})"
        elif backend == "rbd":
            self.rbd_problem = f"the instance did not start from RBD: {instance.status_reason}"
        else:
            raise RuntimeError(f"{instance.public_id} is {instance.status}: {instance.status_reason}")
        result["allocated"] = allocated_bytes(driver, volume)
        result["removal"] = self.remove(instance.pk)
        with contextlib.suppress(NotFound):
            driver.volume_info(volume)
            raise RuntimeError(f"the root volume {volume} is still in the pool after the delete")
        return result

    def remove(self, pk: int) -> float:
        from apps.compute import services as compute
        from apps.compute.models import Instance

        started = time.perf_counter()
        instance = Instance.objects.get(pk=pk)
        if instance.status not in (Instance.DELETING, Instance.DELETED):
            compute.delete_instance(self.actor, instance=instance)
        seconds = time.perf_counter() - started
        instance.refresh_from_db()
        if instance.status != Instance.DELETED:
            raise RuntimeError(f"{instance.public_id} is {instance.status} after the delete")
        return seconds

    # -- cleanup ----------------------------------------------------------------------------
    def cleanup(self) -> None:
        from django.conf import settings

        from apps.compute.models import Instance
        from apps.storage.models import Volume

        # Every instance in the throwaway database is ours (also one interrupted mid-create).
        for instance in Instance.objects.exclude(status=Instance.DELETED):
            try:
                self.remove(instance.pk)
            except Exception as exc:
                print(f"  cleanup: portal delete of {instance.public_id} failed ({exc}); removing what is left")
        secret_uuids = []
        try:
            domains = Instance.objects.values_list("public_id", flat=True)
            if left := remove_libvirt_leftovers(settings.PORTAL_LIBVIRT_URI, domains=list(domains)):
                print(f"  cleanup: removed {len(left)} leftover domains: {', '.join(left)}")
            for backend, pool in self.pools.items():
                driver = self.driver(backend)
                names = [*Volume.objects.filter(pool=pool).values_list("public_id", flat=True)]
                names += [self.image.public_id] if self.image else []
                if left := remove_volumes(driver, *names):
                    print(f"  cleanup: could not remove {', '.join(left)} from pool {pool.name}")
                if uuid := getattr(driver, "secret_uuid", ""):  # made on the host by the portal for RBD disks
                    secret_uuids.append(uuid)
                close_storage_driver(driver)
        finally:
            remove_libvirt_leftovers(settings.PORTAL_LIBVIRT_URI, pools=tuple(self.libvirt_pools),
                                     secrets=tuple(secret_uuids))

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> int:
        results: dict = {}
        failed = False
        try:
            self.setup()
            modes = [(backend, method) for backend in self.pools for method in METHODS]
            for n in range(self.args.warmup + self.args.runs):
                label = "warm-up" if n < self.args.warmup else f"round {n - self.args.warmup + 1}"
                for backend, method in modes[n % len(modes):] + modes[:n % len(modes)]:
                    r = self.run_one(backend, method, n)
                    print(f"  {label:<8} {backend:<3} {LABELS[method]:<20} root ready {r['root']:.3f}s, running "
                          f"{fmt(r['running'], '.3f')}, BOOT-OK {fmt(r['booted'], '.2f')}, allocated "
                          f"{mib(r['allocated'])} MiB (removal {r['removal']:.2f}s)")
                    if n >= self.args.warmup:
                        results.setdefault((backend, method), []).append(r)
        except Exception as exc:
            failed = True
            print(f"FAILED: {type(exc).__name__}: {exc}")
        except BaseException:
            print("interrupted: removing what this program created")
            raise
        finally:
            self.cleanup()
        for backend in self.pools:
            if all((backend, m) in results for m in METHODS):
                self.report(backend, results)
        return 1 if failed else 0

    def report(self, backend: str, results) -> None:
        def values(method, key):
            return [r[key] for r in results[backend, method] if r.get(key) is not None]

        def cell(vals, form):
            return f"{statistics.median(vals):{form}} ({min(vals):{form}}-{max(vals):{form}})" if vals else "n/a"

        rows = []
        for label, key, form in (("→ root volume ready (ensure_root_volume returned), s", "root", ".3f"),
                                 ("→ running (create_instances returned, row running), s", "running", ".3f"),
                                 ("→ BOOT-OK on the serial log, s", "booted", ".2f"),
                                 ("root volume allocated in the pool, MiB", "allocated", ".2f"),
                                 ("removal (delete_instance: domain + root volume), s", "removal", ".3f")):
            clone, copy = values("clone", key), values("copy", key)
            if key == "allocated":
                clone, copy = [v / (1 << 20) for v in clone], [v / (1 << 20) for v in copy]
            ratio = (f"{statistics.median(clone) / statistics.median(copy):.2f}x"
                     if clone and copy and statistics.median(copy) else "n/a")
            rows.append([label, cell(clone, form), cell(copy, form), ratio])
        print(f"\n{backend} pool {self.pools[backend].name}: median (min-max) of {len(results[backend, 'clone'])} "
              f"runs each; the image base {self.image.public_id} (imported once, in the warm-up) takes "
              f"{mib(self.base_allocated[backend])} MiB in it")
        print(table(rows, ["measure (from the create call)", LABELS["clone"], LABELS["copy"], "clone/copy"]))
        if backend == "rbd" and self.rbd_problem:
            print(f"RBD: measured only up to 'root volume ready': {self.rbd_problem}")


def fmt(value, form: str) -> str:
    return "n/a" if value is None else f"{value:{form}}s"


if __name__ == "__main__":
    sys.exit(main())
