#!/usr/bin/env bash
# Run the portal (`make run`): embedded single-machine mode by default (SQLite in var/,
# django-q2 on the ORM broker, in-memory channel layer). Safe to run again and again.
#
#   PORTAL_HOST=0.0.0.0 PORTAL_PORT=8080 scripts/run.sh
#
# Settings come from the environment; a `.env` file in the checkout (see .env.example) is read
# too, and variables already set by the caller win over it.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PORTAL_ROOT"
install_cleanup_traps

load_env_file "$PORTAL_ROOT/.env"
export PORTAL_HOST="${PORTAL_HOST:-127.0.0.1}"
export PORTAL_PORT="${PORTAL_PORT:-8000}"

# --- system packages -------------------------------------------------------------------------
# Debian packages the running portal needs: libvirt_packages (lib.sh) for compute, before
# ensure_venv because libvirt-python builds against libvirt-dev; ovn_packages (lib.sh) for
# networks (the local OVN stack below).
run_apt_packages=("${libvirt_packages[@]}" "${ovn_packages[@]}")
if ((${#run_apt_packages[@]})); then ensure_apt "${run_apt_packages[@]}"; fi

# --- Python ----------------------------------------------------------------------------------
ensure_venv
mkdir -p "$PORTAL_STATE"

# --- helper daemons --------------------------------------------------------------------------
# Daemons the portal talks to but that are not Procfile processes. Each is started only if it
# is not running already, with its pid file under var/ or the system's, and the ones started
# here are stopped when this script ends (on_exit).
# virtlogd + libvirtd: started (and stopped at the end) only if they are not running already and
# PORTAL_LIBVIRT_URI is unset or qemu:///system. The tiny guest image is built once.
libvirt_ready
# The local OVN stack: the northbound ovsdb-server the network pages write to (var/ovn/nb.sock;
# exports OVN_NB_CONNECTION=unix:<checkout>/var/ovn/nb.sock), and the dataplane instances on a
# subnet plug into: southbound DB, ovn-northd, userspace Open vSwitch with br-int and
# ovn-controller (exports PORTAL_OVS_DATAPATH=netdev; /var/run/openvswitch/db.sock links to its
# database for libvirt). Databases, pid files and logs in var/ovn, the databases kept across runs;
# a stack still running from an earlier run is reused and left running. Without root, or when
# another Open vSwitch holds /var/run/openvswitch/db.sock (e.g. a `make test` run's), only the
# northbound database runs (a warning says why). A caller's (or .env's) OVN_NB_CONNECTION, e.g. a
# real OVN cluster whose hosts run their own ovn-controller, is used as is: no OVN daemon starts.
ovn_local_stack_start "$PORTAL_STATE/ovn" || die "the local OVN stack did not start (see the logs in var/ovn)"

# --- database, static files, demo data, schedules (all idempotent) ---------------------------
manage() { "$PORTAL_PY" manage.py "$@"; }
manage migrate --noinput
manage collectstatic --noinput --verbosity 0
manage seed_demo
manage seed_compute
manage seed_storage
manage seed_network   # the demo tenant's default VPC and subnet (a warning without OVN)
manage seed_billing   # products and list prices for the flavors and volume types, the demo's welcome credit
manage setup_schedules

# --- processes -------------------------------------------------------------------------------
# The Procfile lists them: web, worker, events (libvirt event listener), console (websockify).
if port_in_use "$PORTAL_HOST" "$PORTAL_PORT" 2>/dev/null; then
    die "something already listens on $PORTAL_HOST:$PORTAL_PORT (set PORTAL_PORT to another port)"
fi
console_listen="${PORTAL_CONSOLE_PROXY_LISTEN:-127.0.0.1:6080}"
if port_in_use "${console_listen%:*}" "${console_listen##*:}" 2>/dev/null; then
    die "something already listens on $console_listen (set PORTAL_CONSOLE_PROXY_LISTEN to another HOST:PORT)"
fi
log "starting the portal on http://$PORTAL_HOST:$PORTAL_PORT/ (Ctrl-C stops it)"
# `-e /dev/null`: the environment is already complete (honcho's own .env reading would
# override variables the caller set).
"$PORTAL_VENV/bin/honcho" start -e /dev/null -f Procfile
