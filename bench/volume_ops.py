"""Benchmark: the block-storage verbs through the storage drivers, per backend, in the same run.

Each run, on each backend, through the driver directly (apps.storage.drivers: no services, no
tasks, no database), with a 1 GiB volume size:

    create            create_volume(A, 1 GiB): empty, thin
    (untimed)         write --data-mib MiB of a pattern into A (qemu-io on the dir pool's qcow2
                      file, librbd on RBD), so that what follows has data to carry
    snapshot          create_snapshot(A, s)
    from snapshot     copy_volume(B, A, 1 GiB, snapshot=s): a full, independent copy of the 1 GiB
                      volume as it was at s (the data written above)
    clone             clone_image(C, base, 1 GiB): copy-on-write over the image base
    full image copy   copy_volume(D, base, 1 GiB): the clone's baseline, a full copy of the base
    resize            resize_volume(B, 2 GiB): grow the copy
    delete ×4         delete_volume: B (the copy, with data), C (the clone), D (the full image
                      copy), A (with its data and its snapshot)

The image base is the seeded tiny disk image (qcow2, 32 MiB virtual), imported once per pool
(import_image, untimed) before the runs. Backends: a libvirt dir pool of our own in the
throwaway libvirt dir (the driver defines, builds and starts it); and, when PORTAL_TEST_CEPH_*
is set (bench/with_ceph.sh), the RBD pool of the throwaway Ceph cluster (one in-memory OSD), where
every image this program makes is named vol-bench<tag>-… / img-bench<tag>, so nothing else in
the pool is touched. One untimed warm-up run per backend, then N runs; the backends alternate
which goes first. At the end every volume and image base with those names is deleted, the
libvirt pool is stopped and undefined, and the RBD connection is closed (also on failure,
Ctrl-C and SIGTERM).

    bench/with_ceph.sh bench/volume_ops.py [--runs 10]        # dir and RBD
    .venv/bin/python bench/volume_ops.py [--runs 10]           # dir only (libvirtd running)

Prints figures only; timings are never asserted.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _setup import (Throwaway, allocated_bytes, ceph_config, close_storage_driver, machine, mib,
                    remove_libvirt_leftovers, remove_volumes, table)

GiB = 1 << 30
STEPS = ("create", "snapshot", "from snapshot", "clone", "full image copy", "resize",
         "delete copy", "delete clone", "delete full image copy", "delete source")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per backend (N)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per backend first")
    parser.add_argument("--data-mib", type=int, default=64, help="MiB written into the source volume")
    parser.add_argument("--no-rbd", action="store_true", help="the dir pool only, even with Ceph")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    with Throwaway(name="volops", libvirt=True) as state:
        return Bench(args, state).run()


def write_pattern(driver, name: str, size: int) -> None:
    """`size` bytes of 0x5a at the start of the volume, outside the timed steps."""
    if driver.backend == "rbd":
        chunk = b"\x5a" * (4 << 20)

        def write(rbd, ioctx):
            with rbd.Image(ioctx, name) as image:
                for offset in range(0, size, len(chunk)):
                    image.write(chunk[:size - offset], offset)

        driver._run(write)
    else:
        path = driver.disk_source(name).path
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {size}", path], check=True,
                       capture_output=True)


class Bench:
    def __init__(self, args, state):
        self.args, self.state = args, state
        tag = secrets.token_hex(3)
        self.vol_prefix, self.base = f"vol-bench{tag}-", f"img-bench{tag}"
        self.tag = tag
        self.drivers: dict = {}  # backend → driver
        self.libvirt_pool = f"portal-bench-ops-{tag}"
        self.allocated: dict = {}  # (backend, object) → bytes, from the last run

    def setup(self) -> None:
        from django.conf import settings

        from apps.storage.drivers.dirpool import DirPoolDriver
        from apps.storage.drivers.rbd import RbdDriver

        image = self.state.tiny_source / "disk.qcow2"
        if not image.exists():
            raise RuntimeError("the tiny disk image is not built: run scripts/build_tiny_image.sh")
        copy = Path(settings.PORTAL_LIBVIRT_DIR) / "images" / "tiny" / "disk.qcow2"  # the throwaway copy
        self.drivers["dir"] = DirPoolDriver({"uri": settings.PORTAL_LIBVIRT_URI, "name": self.libvirt_pool,
                                             "path": str(Path(settings.PORTAL_LIBVIRT_DIR) / f"pool-{self.tag}")})
        ceph = None if self.args.no_rbd else ceph_config()
        if ceph is not None:
            self.drivers["rbd"] = RbdDriver(ceph)
        for driver in self.drivers.values():
            driver.import_image(self.base, str(copy))
        where = {"dir": f"dir pool {self.libvirt_pool} ({settings.PORTAL_LIBVIRT_URI})"}
        if ceph:
            where["rbd"] = f"RBD pool {ceph['pool']} as client.{ceph['user']} ({ceph['conf']})"
        print(f"storage driver verbs, 1 GiB volumes, {self.args.data_mib} MiB of data in the source: "
              f"{'; '.join(where.values())}"
              f"{'' if ceph else '; no Ceph (PORTAL_TEST_CEPH_CONF unset: use bench/with_ceph.sh)'}; image base "
              f"{self.base} = tiny disk.qcow2 ({mib(image.stat().st_size)} MiB); {self.args.runs} runs + "
              f"{self.args.warmup} warm-up per backend; {machine()}")

    # -- one run on one backend ---------------------------------------------------------------
    def run_one(self, backend: str, n: int) -> dict[str, float]:
        driver = self.drivers[backend]
        a, b, c, d = (f"{self.vol_prefix}{n}{x}" for x in "abcd")
        snap = f"snap-bench{self.tag}-{n}"
        times: dict[str, float] = {}

        def timed(step, fn, *args, **kwargs):
            started = time.perf_counter()
            fn(*args, **kwargs)
            times[step] = time.perf_counter() - started

        timed("create", driver.create_volume, a, GiB)
        write_pattern(driver, a, self.args.data_mib << 20)
        timed("snapshot", driver.create_snapshot, a, snap)
        timed("from snapshot", driver.copy_volume, b, a, GiB, snapshot=snap)
        timed("clone", driver.clone_image, c, self.base, GiB)
        timed("full image copy", driver.copy_volume, d, self.base, GiB)
        timed("resize", driver.resize_volume, b, 2 * GiB)
        if driver.volume_info(b).size_bytes != 2 * GiB or not driver.volume_info(c).parent:
            raise RuntimeError(f"{b} did not grow to 2 GiB, or {c} is not a clone")
        for name, what in ((a, "source"), (b, "copy"), (c, "clone"), (d, "full image copy")):
            self.allocated[backend, what] = allocated_bytes(driver, name)
        timed("delete copy", driver.delete_volume, b)
        timed("delete clone", driver.delete_volume, c)
        timed("delete full image copy", driver.delete_volume, d)
        timed("delete source", driver.delete_volume, a)
        return times

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> int:
        results: dict = {}
        failed = False
        try:
            self.setup()
            backends = list(self.drivers)
            for n in range(self.args.warmup + self.args.runs):
                for backend in backends if n % 2 == 0 else backends[::-1]:
                    times = self.run_one(backend, n)
                    label = "warm-up" if n < self.args.warmup else f"run {n - self.args.warmup + 1}"
                    print(f"  {label:<7} {backend:<3} " + ", ".join(f"{s} {times[s] * 1000:.1f}" for s in STEPS)
                          + " ms")
                    if n >= self.args.warmup:
                        for step in STEPS:
                            results.setdefault((backend, step), []).append(times[step])
        except Exception as exc:
            failed = True
            print(f"FAILED: {type(exc).__name__}: {exc}")
        except BaseException:
            print("interrupted: removing what this program created")
            raise
        finally:
            self.cleanup()
        if results:
            self.report(results)
        return 1 if failed else 0

    def cleanup(self) -> None:
        from django.conf import settings

        try:
            for backend, driver in self.drivers.items():
                try:
                    if left := remove_volumes(driver, self.vol_prefix, self.base):
                        print(f"  cleanup: could not remove {', '.join(left)} from the {backend} pool")
                finally:
                    close_storage_driver(driver)
        finally:
            remove_libvirt_leftovers(settings.PORTAL_LIBVIRT_URI, pools=(self.libvirt_pool,))

    def report(self, results) -> None:
        backends = [b for b in self.drivers if (b, STEPS[0]) in results]
        size = {"from snapshot": f"1 GiB, {self.args.data_mib} MiB of data", "clone": "copy-on-write",
                "full image copy": "1 GiB, the base's data", "resize": "1 → 2 GiB"}
        rows = []
        for step in STEPS:
            row = [f"{step} ({size[step]})" if step in size else step]
            medians = []
            for backend in backends:
                ms = [v * 1000 for v in results[backend, step]]
                medians.append(statistics.median(ms))
                row.append(f"{medians[-1]:.1f} ({min(ms):.1f}-{max(ms):.1f})")
            if len(backends) == 2:
                row.append(f"{medians[1] / medians[0]:.2f}x")
            rows.append(row)
        header = ["driver verb", *(f"{b} p50 (min-max) ms" for b in backends)]
        header += [f"{backends[1]}/{backends[0]}"] if len(backends) == 2 else []
        print(f"\nmilliseconds, p50 (min-max) of {len(results[backends[0], STEPS[0]])} runs per backend")
        print(table(rows, header))
        for backend in backends:
            held = ", ".join(f"{what} {mib(self.allocated[backend, what])}" for what in
                             ("source", "copy", "clone", "full image copy"))
            clone_vs_copy = [statistics.median(results[backend, s]) for s in ("clone", "full image copy")]
            print(f"{backend}: allocated in the pool before the deletes (MiB, last run): {held}; clone/full image "
                  f"copy time {clone_vs_copy[0] / clone_vs_copy[1]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
