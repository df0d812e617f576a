#!/usr/bin/env bash
# Run the tests (`make test`). The suite runs twice:
#   1. on PostgreSQL + Redis (throwaway instances on free local ports, started and stopped here,
#      unless the caller already exports DATABASE_URL / REDIS_URL),
#   2. on the embedded defaults (SQLite, no Redis), with DATABASE_URL and REDIS_URL unset.
# Both runs talk to the machine's libvirtd (PORTAL_LIBVIRT_URI=qemu:///system; virtlogd and
# libvirtd are started here if they are not running, and then stopped at the end) and find the
# tiny guest image in PORTAL_LIBVIRT_DIR/images/tiny (scripts/build_tiny_image.sh). They also share
# one throwaway Ceph cluster (one mon, one in-memory OSD, pool `rbd`, user client.portal; on free
# local ports, started here and stopped at the end; PORTAL_TEST_CEPH_*): if Ceph cannot be
# installed or does not come up, the run goes on without it and the tests marked `ceph` skip.
# The OVN packages are installed here; the tests marked `ovn` start their own throwaway OVN
# northbound ovsdb-server each (the `ovn_nb` fixture, tests/ovn.py), nothing is started here.
#
#   scripts/test.sh [PYTEST ARGS...]       e.g. scripts/test.sh tests/unit/test_x.py -k quota
#   PYTEST_ARGS='-x -q' scripts/test.sh    (same, from the environment / make)
#   PORTAL_TEST_DBS=sqlite|postgres        only one of the two runs
#
# When both runs happen, the tests marked libvirt, ovn or ceph (real guests, real OVN, real Ceph:
# most of the wall time, and nothing in them differs by database) run in the PostgreSQL run only;
# the SQLite run says so and deselects them, unless the arguments choose markers (-m) themselves.
#
# Exits non-zero if either run failed (pytest's "no tests collected", exit 5, is a failure).
# The last lines printed are pytest's summary of the last run.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PORTAL_ROOT"
install_cleanup_traps

case "${PORTAL_TEST_DBS:-all}" in
    all | both | "") run_pg=1 run_sqlite=1 ;;
    postgres | postgresql | pg) run_pg=1 run_sqlite=0 ;;
    sqlite) run_pg=0 run_sqlite=1 ;;
    *) die "PORTAL_TEST_DBS must be 'sqlite', 'postgres' or unset (both), not '$PORTAL_TEST_DBS'" ;;
esac

# --- system packages -------------------------------------------------------------------------
# chromium: Debian's browser, driven by Playwright through executable_path=/usr/bin/chromium
# (no `playwright install`). libvirt_packages (lib.sh): libvirtd, QEMU, and the headers that
# libvirt-python builds against, so before ensure_venv. ceph_packages (lib.sh): Ceph, its Python
# bindings and libvirt's rbd backend; optional, so a failure there does not stop the run.
# ovn_packages (lib.sh): ovsdb-server, the OVN schemas and ovn-nbctl for the `ovn_nb` fixture;
# required. Add packages the tests need here.
apt_packages=(chromium "${libvirt_packages[@]}" "${ovn_packages[@]}")
if ((run_pg)); then apt_packages+=(postgresql redis-server); fi
ensure_apt "${apt_packages[@]}"
ensure_apt "${ceph_packages[@]}" || log "the Ceph packages could not be installed"

# --- Python ----------------------------------------------------------------------------------
ensure_venv
ceph_bindings=1
ensure_ceph_bindings || ceph_bindings=0   # Debian's rados/rbd modules, importable from .venv

# --- checks that need no database ------------------------------------------------------------
compose_validate "$PORTAL_ROOT/docker/compose.yml"

# --- libvirt + QEMU, Ceph (up for both runs) -------------------------------------------------
libvirt_ready
# ceph_start says why when it fails; it stops itself on exit (on_exit), and below.
if ((!ceph_bindings)) || ! ceph_start; then
    log "running without Ceph: the tests marked ceph will skip"
fi

# --- pytest arguments ------------------------------------------------------------------------
# PYTEST_ARGS is split like a shell would (quotes work), then the script's own arguments.
pytest_args=()
if [[ -n "${PYTEST_ARGS:-}" ]]; then
    mapfile -t pytest_args < <(python3 -c 'import shlex, sys; print("\n".join(shlex.split(sys.argv[1])))' "$PYTEST_ARGS")
fi
pytest_args+=("$@")

# Run `tests` unless the arguments already name test paths (tests/unit/x.py, tests/a.py::test_b).
targets=(tests)
skip_next=0
for arg in "${pytest_args[@]}"; do
    if ((skip_next)); then skip_next=0; continue; fi
    case "$arg" in
        -k | -m | -p | -o | -c | -W | --deselect | --ignore | --ignore-glob | --rootdir | --basetemp | \
            --confcutdir | --junitxml | --junit-xml | --maxfail | --tb | --durations | -n | --dist)
            skip_next=1; continue ;;
        -*) continue ;;
    esac
    if [[ -e "${arg%%::*}" ]]; then targets=(); break; fi
done

run_pytest() {
    "$PORTAL_PY" -m pytest -p no:cacheprovider "${targets[@]}" "${pytest_args[@]}"
}

rc_pg=0
rc_sqlite=0

# --- 1. PostgreSQL + Redis ---------------------------------------------------------------------
if ((run_pg)); then
    echo "== tests on PostgreSQL + Redis =="
    if services_start; then
        run_pytest || rc_pg=$?
    else
        log "could not start PostgreSQL/Redis for the tests"
        rc_pg=1
    fi
    services_stop
fi

# --- 2. SQLite (embedded) ----------------------------------------------------------------------
if ((run_sqlite)); then
    if ((run_pg)); then
        case "$rc_pg" in
            0) echo "== PostgreSQL + Redis run: passed ==" ;;
            5) echo "== PostgreSQL + Redis run: FAILED (no tests collected, exit 5) ==" ;;
            *) echo "== PostgreSQL + Redis run: FAILED (exit $rc_pg) ==" ;;
        esac
    fi
    echo "== tests on SQLite (embedded) =="
    unset DATABASE_URL REDIS_URL
    if ((run_pg)) && ! printf '%s\n' "${pytest_args[@]}" | grep -qx -- '-m'; then
        echo "== the tests marked libvirt, ovn or ceph ran on PostgreSQL above: deselected here =="
        pytest_args+=(-m "not (libvirt or ovn or ceph)")
    fi
    run_pytest || rc_sqlite=$?
fi

ceph_stop

if ((rc_pg != 0)); then exit "$rc_pg"; fi
exit "$rc_sqlite"
