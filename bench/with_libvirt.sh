#!/usr/bin/env bash
# Run a benchmark program with the machine's libvirtd answering, the way scripts/test.sh does:
# virtlogd and libvirtd are started only if they are not running, and then stopped (by PID,
# only those started here) when the program ends, fails or is interrupted. The tiny guest image
# is built first if it is missing (scripts/build_tiny_image.sh, idempotent).
#
#   bench/with_libvirt.sh bench/create_to_running.py --runs 3
#
# Guests the program left running would survive a libvirtd stop: the programs remove their
# own domains before they exit.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$PORTAL_ROOT"
install_cleanup_traps

[[ $# -ge 1 ]] || die "usage: bench/with_libvirt.sh bench/PROGRAM.py [ARGS...]"

libvirt_ready

rc=0
"$PORTAL_PY" "$@" || rc=$?
exit "$rc"
