#!/usr/bin/env bash
# Shared helpers for the local stack scripts. Sourced, never run.
#
# Layout:
#   $HOOKLINE_CACHE_DIR  downloads and builds, kept across checkouts (default ~/.cache/hookline)
#   $STACK_DIR           this checkout's running stack: data, logs, pid files, env (default .stack)

set -euo pipefail

DEV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$DEV_DIR/.." && pwd)"
# shellcheck source=dev/versions.env
source "$DEV_DIR/versions.env"

CACHE_DIR="${HOOKLINE_CACHE_DIR:-$HOME/.cache/hookline}"
STACK_DIR="${HOOKLINE_STACK_DIR:-$REPO_ROOT/.stack}"
RUN_DIR="$STACK_DIR/run"
LOG_DIR="$STACK_DIR/logs"
DATA_DIR="$STACK_DIR/data"
ENV_PARTS_DIR="$STACK_DIR/env.d"
# The stack's CA and the servers' certificates and keys (dev/components/tls.sh makes them).
TLS_DIR="$DATA_DIR/tls"
# shellcheck disable=SC2034 # used by the scripts that source this file
STACK_CA="$TLS_DIR/ca.pem"
mkdir -p "$CACHE_DIR" "$RUN_DIR" "$LOG_DIR" "$DATA_DIR" "$ENV_PARTS_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command in its own session so stop_daemon can end it with all its children.
# Usage: start_daemon NAME CMD [ARGS...]; output goes to $LOG_DIR/NAME.log.
start_daemon() {
  local name=$1; shift
  if daemon_running "$name"; then
    log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
    return 0
  fi
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" >"$RUN_DIR/$name.pid"
  # Until setsid has run, the child is not yet the leader of its own session and
  # daemon_running would call it dead: wait for that moment.
  for _ in $(seq 50); do
    [ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  log "$name started (pid $pid, log $LOG_DIR/$name.log)"
}

# True when the pid file names a live process that is still the one we started
# (its session id equals its pid, as setsid made it).
daemon_running() {
  local pidfile="$RUN_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ]
}

# Stops what start_daemon started: SIGTERM to the session, SIGKILL after a grace period.
stop_daemon() {
  local name=$1 grace=${2:-20} pidfile="$RUN_DIR/$1.pid" pid
  if ! daemon_running "$name"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq $((grace * 5))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop in ${grace}s, killing"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "$name stopped"
}

# Usage: wait_for CONDITION TIMEOUT_SECONDS CMD [ARGS...]
# CONDITION is a sentence that CMD checks, e.g. "postgres accepts connections": logged
# once it holds, or named in the error when it does not within the timeout.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      die "still not true after ${timeout}s: $what"
    fi
    sleep 0.5
  done
  log "$what"
}

# Usage: write_env_part COMPONENT KEY=VALUE...; stack.sh joins the parts into $STACK_DIR/env.
# Values are single-quoted (URLs hold '&'); testkit's parse_env strips the quotes.
write_env_part() {
  local component=$1 kv; shift
  for kv in "$@"; do
    case "$kv" in *"'"*) die "env value with a single quote: ${kv%%=*}" ;; esac
    printf "export %s='%s'\n" "${kv%%=*}" "${kv#*=}"
  done >"$ENV_PARTS_DIR/$component.env"
}

# Runs apt-get install for the packages that are missing (update once per run).
# The console's sign-ins for a system run here: admin (operator) and viewer with random
# passwords, kept in DIR/console-sign-ins (username:role:password, for the person and the
# tests); DIR/console-users holds their argon2id hashes, made by CONSOLE hash-password,
# for the chart's console.auth.users. Usage: console_sign_ins CONSOLE DIR
console_sign_ins() {
  local console=$1 dir=$2 name role password hash
  if [ ! -s "$dir/console-sign-ins" ]; then
    (
      umask 077
      for user in admin:operator viewer:viewer; do
        echo "$user:$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
      done >"$dir/console-sign-ins"
    )
  fi
  while IFS=: read -r name role password; do
    hash=$(printf '%s\n' "$password" | "$console" hash-password) ||
      die "$console hash-password failed"
    printf '%s:%s:%s\n' "$name" "$role" "$hash"
  done <"$dir/console-sign-ins" >"$dir/console-users"
}

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ -z "${HOOKLINE_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    export HOOKLINE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The go command, for the scripts that build tools from Go modules. Build directories live in
# the cache, outside any workspace: GOWORK=off keeps a go.work elsewhere out of them.
find_go() {
  GO=$(command -v go || true)
  [ -n "$GO" ] || GO=/usr/local/go/bin/go
  [ -x "$GO" ] || die "Go is needed to build from Go modules (not found on PATH or at /usr/local/go/bin/go)"
  export GO GOWORK=off
}

# Usage: module_info FIELD MODULE VERSION: prints FIELD (GoMod, Dir, ...) of what
# `go mod download -json` says of MODULE@VERSION, downloading it into the module cache.
module_info() {
  local field=$1 dir
  find_go
  dir=$(mktemp -d)
  (cd "$dir" && "$GO" mod download -json "$2@$3") |
    sed -n "s/^[[:space:]]*\"$field\":[[:space:]]*\"\(.*\)\",\{0,1\}\$/\1/p" || true
  rm -rf "$dir"
}

# The path of MODULE@VERSION's go.mod, and the folder of its source.
module_gomod() { module_info GoMod "$@"; }
module_dir() { module_info Dir "$@"; }

# Usage: go_wrapper_build OUT MODULE VERSION SRC_DIR
# Builds a static binary OUT from a generated module that requires MODULE@VERSION and holds
# the Go files of SRC_DIR (a main that calls into MODULE: for modules whose own go.mod has
# replace directives, which `go install` refuses). A go.mod.extra file in SRC_DIR, if any, is
# appended to the generated go.mod (replace and exclude lines). Skipped when OUT exists.
go_wrapper_build() {
  local out=$1 module=$2 version=$3 src_dir=$4 build start
  [ -x "$out" ] && return 0
  find_go
  build="$out.build"
  rm -rf "$build"
  mkdir -p "$build" "$(dirname "$out")"
  cp -R "$src_dir/." "$build/"
  {
    echo "module hookline.local/dev/$(basename "$out")"
    echo
    echo "require $module $version"
    [ -f "$build/go.mod.extra" ] && cat "$build/go.mod.extra"
  } >"$build/go.mod"
  rm -f "$build/go.mod.extra"
  start=$SECONDS
  log "building $(basename "$out") from $module@$version (log $out.build.log)"
  (cd "$build" && "$GO" mod tidy &&
    CGO_ENABLED=0 nice -n 10 "$GO" build -trimpath -ldflags '-s -w' -o "$out" .) >"$out.build.log" 2>&1 || {
    tail -n 40 "$out.build.log" >&2
    die "building $(basename "$out") from $module@$version failed (full log: $out.build.log)"
  }
  rm -rf "$build"
  log "built $(basename "$out") in $((SECONDS - start))s"
}

# Usage: go_install_build OUT MODULE_PATH VERSION: `go install` of a main package whose
# module has no replace directives, into OUT. Skipped when OUT exists.
go_install_build() {
  local out=$1 pkg=$2 version=$3 bin_dir start
  [ -x "$out" ] && return 0
  find_go
  bin_dir="$out.gobin"
  rm -rf "$bin_dir"
  mkdir -p "$bin_dir"
  start=$SECONDS
  log "building $(basename "$out") from $pkg@$version (log $out.build.log)"
  (cd "$bin_dir" && GOBIN="$bin_dir" CGO_ENABLED=0 nice -n 10 "$GO" install -trimpath -ldflags '-s -w' "$pkg@$version") \
    >"$out.build.log" 2>&1 || {
    tail -n 40 "$out.build.log" >&2
    die "building $(basename "$out") from $pkg@$version failed (full log: $out.build.log)"
  }
  mv "$bin_dir/$(basename "${pkg%@*}")" "$out"
  rm -rf "$bin_dir"
  log "built $(basename "$out") in $((SECONDS - start))s"
}
