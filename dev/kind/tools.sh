#!/usr/bin/env bash
# The programs the offline kind mode builds from Go modules, each once into the cache:
#
#   dev/kind/tools.sh all        kind, the node's kube binaries, etcd, CoreDNS,
#                                local-path-provisioner, Traefik and the pause binary
#   dev/kind/tools.sh path NAME  print where NAME is (kind, etcd, coredns, ...)
#
# Versions come from dev/versions.env; a changed version builds into a new folder.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

TOOLS_DIR="$CACHE_DIR/kind/tools"

tool_path() {
  case "$1" in
    kind) echo "$TOOLS_DIR/kind-$KIND_VERSION/kind" ;;
    etcd) echo "$TOOLS_DIR/etcd-$ETCD_NODE_VERSION/etcd" ;;
    coredns) echo "$TOOLS_DIR/coredns-$COREDNS_VERSION/coredns" ;;
    local-path-provisioner) echo "$TOOLS_DIR/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/local-path-provisioner" ;;
    traefik) echo "$TOOLS_DIR/traefik-$TRAEFIK_VERSION/traefik" ;;
    pause) echo "$TOOLS_DIR/pause-$KUBERNETES_VERSION/pause" ;;
    *) die "no tool named $1" ;;
  esac
}

build_traefik() {
  local out src module_src
  out=$(tool_path traefik)
  [ -x "$out" ] && return 0
  module_src=$(module_dir github.com/traefik/traefik/v3 "$TRAEFIK_VERSION")
  [ -d "$module_src/cmd/traefik" ] || die "cannot download github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
  # Traefik's own main (cmd/traefik), read from the module cache at build time; its go.mod's
  # replace and exclude lines, with the nested ext module it lacks stood in by dev/go/traefik-ext.
  src="$TOOLS_DIR/traefik-$TRAEFIK_VERSION/src"
  rm -rf "$src"
  mkdir -p "$src/ext"
  find "$module_src/cmd/traefik" -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} "$src/" \;
  chmod -R u+w "$src"
  cp "$DEV_DIR/go/traefik-ext/"* "$src/ext/"
  {
    echo "replace github.com/traefik/traefik/dynamic/ext => ./ext"
    sed -n '/^replace (/,/^)/p' "$module_src/go.mod"
    grep '^exclude ' "$module_src/go.mod" || true
  } >"$src/go.mod.extra"
  # The generated module keeps ./ext beside the main files: the build runs in a copy of $src.
  go_wrapper_build "$out" github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" "$src"
  rm -rf "$src"
}

# The pause container of the Kubernetes release (build/pause/linux/pause.c), static.
build_pause() {
  local out src
  out=$(tool_path pause)
  [ -x "$out" ] && return 0
  command -v gcc >/dev/null || apt_install gcc libc6-dev
  src=$(module_dir k8s.io/kubernetes "$KUBERNETES_VERSION")/build/pause/linux/pause.c
  [ -f "$src" ] || die "no build/pause/linux/pause.c in k8s.io/kubernetes@$KUBERNETES_VERSION"
  mkdir -p "$(dirname "$out")"
  gcc -Os -Wall -Werror -static -DVERSION="$KUBERNETES_VERSION-hookline" -o "$out" "$src"
  log "built pause from $src"
}

cmd_all() {
  go_install_build "$(tool_path kind)" sigs.k8s.io/kind "$KIND_VERSION"
  bash "$DEV_DIR/components/kube.sh" install-node
  go_wrapper_build "$(tool_path etcd)" go.etcd.io/etcd/server/v3 "$ETCD_NODE_VERSION" "$DEV_DIR/go/etcd"
  go_install_build "$(tool_path coredns)" github.com/coredns/coredns "$COREDNS_VERSION"
  go_install_build "$(tool_path local-path-provisioner)" github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION"
  build_traefik
  build_pause
}

case "${1:-}" in
  all) cmd_all ;;
  path) tool_path "${2:?usage: tools.sh path NAME}" ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
