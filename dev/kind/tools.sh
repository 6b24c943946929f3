#!/usr/bin/env bash
# The programs the offline kind mode builds from Go modules, each once into the cache:
#
#   dev/kind/tools.sh all        kind, the node's kube binaries, etcd, CoreDNS,
#                                local-path-provisioner, Traefik, kube-router (the
#                                NetworkPolicy engine) and the pause binary
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
    kube-router) echo "$TOOLS_DIR/kube-router-$KUBE_ROUTER_VERSION/kube-router" ;;
    pause) echo "$TOOLS_DIR/pause-$KUBERNETES_VERSION/pause" ;;
    *) die "no tool named $1" ;;
  esac
}

# Prints the modules MODULE_GOMOD requires whose go.mod the Go module proxy does not serve.
unserved_requirements() {
  local gomod=$1 dir
  dir=$(mktemp -d)
  awk '/^require \(/ { inside = 1; next } inside && /^\)/ { inside = 0 }
       inside && NF >= 2 && $1 !~ /^\/\// { print $1 "@" $2 }
       /^require [^(]/ { print $2 "@" $3 }' "$gomod" |
    xargs -P 8 -I{} sh -c "cd '$dir' && GOWORK=off '$GO' mod download -json {} >/dev/null 2>&1 || echo {}" |
    sed 's/@.*//' | LC_ALL=C sort
  rm -rf "$dir"
}

# Traefik's go.mod names modules the Go module proxy does not serve: a go-http-auth fork (a
# version it does serve stands in) and the SDKs of a dozen DNS providers of lego, its ACME
# library. Those providers (DNS-01 certificates from Alibaba, Akamai, Huawei, Oracle, ...;
# nothing the kind cluster uses) are left out of a copy of lego, and the SDKs they alone
# import replaced by empty modules, so the rest builds from the published sources.
build_traefik() {
  local out src module_src lego_version lego_src missing=() m i provider dropped=()
  out=$(tool_path traefik)
  [ -x "$out" ] && return 0
  find_go
  module_src=$(module_dir github.com/traefik/traefik/v3 "$TRAEFIK_VERSION")
  [ -d "$module_src/cmd/traefik" ] || die "cannot download github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
  src="$TOOLS_DIR/traefik-$TRAEFIK_VERSION/src"
  rm -rf "$src"
  mkdir -p "$src/ext" "$src/stubs"
  # Traefik's own main (cmd/traefik), read from the module cache at build time.
  find "$module_src/cmd/traefik" -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} "$src/" \;
  cp "$DEV_DIR/go/traefik-ext/"* "$src/ext/"
  lego_version=$(awk '$1 == "github.com/go-acme/lego/v5" { print $2; exit }' "$module_src/go.mod")
  lego_src=$(module_dir github.com/go-acme/lego/v5 "$lego_version")
  [ -d "$lego_src/providers/dns" ] || die "cannot download github.com/go-acme/lego/v5@$lego_version"
  cp -R "$lego_src" "$src/lego"
  chmod -R u+w "$src"
  mapfile -t missing < <(unserved_requirements "$module_src/go.mod" | grep -vx 'github.com/traefik/traefik/dynamic/ext\|github.com/abbot/go-http-auth\|github.com/gorilla/mux')
  i=0
  for m in "${missing[@]}"; do
    i=$((i + 1))
    mkdir -p "$src/stubs/$i"
    printf 'module %s\n' "$m" >"$src/stubs/$i/go.mod"
    while IFS= read -r provider; do
      dropped+=("$provider")
      rm -rf "${src:?}/lego/providers/dns/$provider"
    done < <(grep -rl --include='*.go' "\"${m}[/\"]" "$src/lego/providers/dns" | sed "s#$src/lego/providers/dns/##; s#/.*##" | sort -u)
  done
  mapfile -t dropped < <(printf '%s\n' "${dropped[@]}" | sort -u | sed '/^$/d')
  if [ ${#dropped[@]} -gt 0 ]; then
    # The generated registry of providers: drop their imports and their case/return pairs.
    awk -v dropped="$(printf '%s ' "${dropped[@]}")" '
      BEGIN { n = split(dropped, list, " "); for (k = 1; k <= n; k++) skip[list[k]] = 1 }
      /providers\/dns\// { p = $0; gsub(/.*providers\/dns\/|".*/, "", p); if (p in skip) next }
      /^[[:space:]]*return [a-z0-9]+\.NewDNSProvider\(\)/ {
        p = $0; gsub(/^[[:space:]]*return |\..*/, "", p)
        if (p in skip) { held = ""; next }
      }
      { if (held != "") print held; held = "" }
      /^[[:space:]]*case "/ { held = $0; next }
      { print }
      END { if (held != "") print held }' "$src/lego/providers/dns/zz_gen_dns_providers.go" >"$src/lego/zz.tmp"
    mv "$src/lego/zz.tmp" "$src/lego/providers/dns/zz_gen_dns_providers.go"
    log "traefik: lego without the DNS providers whose SDKs the module proxy lacks: ${dropped[*]}"
  fi
  {
    echo "replace github.com/traefik/traefik/dynamic/ext => ./ext"
    echo "replace github.com/go-acme/lego/v5 => ./lego"
    # gateway-api's conformance module requires gateway-api at v0.0.0 (a local replace upstream).
    echo "replace sigs.k8s.io/gateway-api v0.0.0-00010101000000-000000000000 => sigs.k8s.io/gateway-api $(awk '$1 == "sigs.k8s.io/gateway-api" { print $2; exit }' "$module_src/go.mod")"
    i=0
    for m in "${missing[@]}"; do
      i=$((i + 1))
      echo "replace $m => ./stubs/$i"
    done
    sed -n '/^replace (/,/^)/p' "$module_src/go.mod" |
      sed -E "s#(github.com/containous/go-http-auth) v[^[:space:]]+#\\1 $TRAEFIK_GO_HTTP_AUTH_FORK#"
    grep '^exclude ' "$module_src/go.mod" || true
  } >"$src/go.mod.extra"
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
  # The NetworkPolicy engine: no replace directives in its go.mod, so a plain go install.
  go_install_build "$(tool_path kube-router)" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION"
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
