#!/usr/bin/env bash
# Run a benchmark program with libvirtd answering (as bench/with_libvirt.sh) and a throwaway
# Ceph cluster up (scripts/lib.sh ceph_start: one mon, one in-memory OSD, pool `rbd`, user
# client.portal, on free local ports). The program finds the cluster in PORTAL_TEST_CEPH_CONF,
# _USER, _POOL and _KEYRING, as the tests do. The cluster is stopped (by the PIDs in its pid
# files) and its directory removed when the program ends, fails or is interrupted.
#
#   bench/with_ceph.sh bench/volume_ops.py --runs 3
#   bench/with_ceph.sh bench/boot_disk_clone.py
#
# The cluster lives in $PORTAL_SERVICES_DIR/ceph. Unless the caller sets PORTAL_SERVICES_DIR,
# a new directory under /tmp is used (and removed at the end): ceph_start wipes the directory it
# starts in, so the default var/test-services of `make test` would kill a test run's cluster.
# Ceph's packages are not installed here (scripts/test.sh does: ceph_packages in lib.sh).
set -euo pipefail

own_services_dir=""
if [[ -z "${PORTAL_SERVICES_DIR:-}" ]]; then
    own_services_dir="$(mktemp -d /tmp/portal-bench-services-XXXXXX)"
    export PORTAL_SERVICES_DIR="$own_services_dir"
fi

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$PORTAL_ROOT"
install_cleanup_traps
# hooks run in reverse order: this one after ceph_stop (registered by ceph_start)
if [[ -n "$own_services_dir" ]]; then on_exit "rm -rf '$own_services_dir'"; fi

[[ $# -ge 1 ]] || die "usage: bench/with_ceph.sh bench/PROGRAM.py [ARGS...]"

libvirt_ready
ensure_ceph_bindings || die "the Ceph bindings are not importable from .venv"
ceph_start || die "the throwaway Ceph cluster did not start"

rc=0
"$PORTAL_PY" "$@" || rc=$?
exit "$rc"
