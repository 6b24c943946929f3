#!/usr/bin/env bash
# The Docker engine of the offline kind mode: Debian's docker.io, started as a dockerd of its
# own beside (never instead of) the machine's default one.
#
#   dev/kind/engine.sh install   apt-get install docker.io (and debootstrap) if missing
#   dev/kind/engine.sh start     save iptables and ip_forward, create the bridge, start dockerd
#   dev/kind/engine.sh stop      stop that dockerd by its pid, delete the bridges, put
#                                iptables and ip_forward back as they were before start
#   dev/kind/engine.sh status    running and answering?
#   dev/kind/engine.sh env       print the exports that point docker and kind at it
#
# Its data root lives in the cache ($CACHE_DIR/kind/docker), so images survive a stop; its
# socket, pid file and exec root under /run/hookline-kind. Containers reach each other on the
# bridges made here; the host reaches them only through ports published on 127.0.0.1.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ENGINE_RUN=/run/hookline-kind
ENGINE_DATA="$CACHE_DIR/kind/docker"
ENGINE_BIN="$CACHE_DIR/kind/bin"
ENGINE_SOCK="$ENGINE_RUN/docker.sock"
ENGINE_PID="$ENGINE_RUN/dockerd.pid"
ENGINE_LOG="$CACHE_DIR/kind/dockerd.log"
IPTABLES_BEFORE="$ENGINE_RUN/iptables.before"
FORWARD_BEFORE="$ENGINE_RUN/ip_forward.before"
# The default bridge of this dockerd and the network kind's nodes join (KIND_NETWORK).
BRIDGE=hlkind0
BRIDGE_CIDR=10.213.0.1/24
KIND_NETWORK=hookline-kind
KIND_NETWORK_BRIDGE=hlkind1
KIND_NETWORK_SUBNET=10.213.1.0/24
RUNTIME_NAME=hookline-runc
TABLES=(filter nat mangle raw)

# The Debian engine's own client: the machine may carry a newer docker CLI first on PATH.
DOCKER_CLI=/usr/bin/docker

engine_docker() { DOCKER_HOST="unix://$ENGINE_SOCK" "$DOCKER_CLI" "$@"; }

cmd_install() {
  apt_install docker.io debootstrap iptables iproute2 python3
  [ -x /usr/sbin/dockerd ] || die "docker.io is installed but /usr/sbin/dockerd is missing"
}

engine_pid() {
  local pid
  [ -f "$ENGINE_PID" ] || return 1
  pid=$(cat "$ENGINE_PID")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

engine_answers() { engine_docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

cmd_start() {
  if engine_pid >/dev/null && engine_answers; then
    log "dockerd already running (pid $(engine_pid)) on $ENGINE_SOCK"
    return 0
  fi
  [ -x /usr/sbin/dockerd ] || die "dockerd is not installed; run: dev/kind/engine.sh install"
  mkdir -p "$ENGINE_RUN" "$ENGINE_DATA" "$ENGINE_BIN"
  # What to put back on stop: taken once, before this engine first touches them.
  if [ ! -f "$IPTABLES_BEFORE" ]; then
    iptables-save >"$IPTABLES_BEFORE"
    cat /proc/sys/net/ipv4/ip_forward >"$FORWARD_BEFORE"
  fi
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    ip link set "$BRIDGE" up
  fi
  install -m 0755 "$DEV_DIR/kind/runtime-wrapper.sh" "$ENGINE_BIN/$RUNTIME_NAME"
  setsid /usr/sbin/dockerd \
    --host "unix://$ENGINE_SOCK" \
    --data-root "$ENGINE_DATA" \
    --exec-root "$ENGINE_RUN/exec" \
    --pidfile "$ENGINE_PID" \
    --bridge "$BRIDGE" \
    --storage-driver overlay2 \
    --ip 127.0.0.1 \
    --add-runtime "$RUNTIME_NAME=$ENGINE_BIN/$RUNTIME_NAME" \
    --default-runtime "$RUNTIME_NAME" \
    --log-level warn \
    >>"$ENGINE_LOG" 2>&1 </dev/null &
  wait_for "dockerd answers on $ENGINE_SOCK" 60 engine_answers
  if ! engine_docker network inspect "$KIND_NETWORK" >/dev/null 2>&1; then
    engine_docker network create --driver bridge --subnet "$KIND_NETWORK_SUBNET" \
      -o "com.docker.network.bridge.name=$KIND_NETWORK_BRIDGE" \
      -o com.docker.network.driver.mtu=1500 "$KIND_NETWORK" >/dev/null
  fi
}

# Whether TABLE was loaded when the engine first started (iptables-save lists only those).
table_was_saved() { grep -qx "\*$1" "$IPTABLES_BEFORE"; }

cmd_stop() {
  local pid
  if pid=$(engine_pid); then
    # The node containers first, so their networks can go; then dockerd itself.
    engine_docker ps -q | xargs -r "$DOCKER_CLI" -H "unix://$ENGINE_SOCK" stop -t 10 >/dev/null 2>&1 || true
    engine_docker network rm "$KIND_NETWORK" >/dev/null 2>&1 || true
    kill -TERM "$pid"
    for _ in $(seq 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd did not stop in 30s, killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "dockerd stopped"
  fi
  # Leftover shims (a SIGKILLed dockerd leaves them) hold the containers' mounts.
  pkill -f "containerd-shim-runc-v2 .*$ENGINE_RUN" 2>/dev/null || true
  pkill -f "containerd --config $ENGINE_RUN" 2>/dev/null || true
  for link in "$KIND_NETWORK_BRIDGE" "$BRIDGE"; do
    ip link show "$link" >/dev/null 2>&1 && ip link del "$link"
  done
  if [ -f "$IPTABLES_BEFORE" ]; then
    for table in "${TABLES[@]}"; do
      # (Listing a table with iptables-nft would create it: ask iptables-save what exists.)
      if ! table_was_saved "$table" && iptables-save | grep -qx "\*$table"; then
        # A table that was not there: empty, and every built-in chain back to the ACCEPT
        # policy a fresh table has (dockerd sets FORWARD to DROP).
        iptables -t "$table" -F && iptables -t "$table" -X
        iptables -t "$table" -S | awk '$1 == "-P" { print $2 }' | while read -r chain; do
          iptables -t "$table" -P "$chain" ACCEPT
        done
      fi
    done
    iptables-restore <"$IPTABLES_BEFORE"
    cat "$FORWARD_BEFORE" >/proc/sys/net/ipv4/ip_forward
    rm -f "$IPTABLES_BEFORE" "$FORWARD_BEFORE"
    log "iptables and ip_forward put back as they were"
  fi
  rm -rf "$ENGINE_RUN"
}

cmd_status() {
  local pid
  if pid=$(engine_pid) && engine_answers; then
    echo "dockerd: running (pid $pid) on unix://$ENGINE_SOCK"
  else
    echo "dockerd: stopped"
    return 1
  fi
}

cmd_env() {
  printf 'export DOCKER_HOST=%q\n' "unix://$ENGINE_SOCK"
  printf 'export KIND_EXPERIMENTAL_DOCKER_NETWORK=%q\n' "$KIND_NETWORK"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
