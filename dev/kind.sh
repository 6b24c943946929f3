#!/usr/bin/env bash
# Hookline on a kind cluster, in one of two modes:
#
#   connected  a machine whose Docker engine answers and can pull public images: kind's own
#              node image, the Traefik chart, Hookline's images compiled by the Dockerfile
#   offline    no container registry: Debian's Docker engine started on a socket of its own,
#              and every image built here (dev/kind/): a kind node image, the cluster's parts,
#              Kafka, PostgreSQL, Traefik and Hookline's four binaries
#
# The mode is connected when the default Docker engine answers and kind is installed, offline
# otherwise; HOOKLINE_KIND_MODE=connected|offline chooses it. The chart and kind-config.yaml
# are the same in both.
#
#   dev/kind.sh up       create the cluster, build and load the images, install Traefik and
#                        Hookline, apply examples/webhook.yaml, wait for it to be Ready and
#                        for its events to be stored
#   dev/kind.sh test     the end-to-end test on that cluster (e2e/tests/kind_cluster)
#   dev/kind.sh bench    fixed rates (RATES, default 500,1000,2000 per second) through the
#                        Ingress to 3 handler pods: bench/results/kind.json, then
#                        latest.json and docs/BENCHMARKS.md (hookline-bench kind)
#   dev/kind.sh down     delete the cluster; offline, also stop the engine and put the
#                        machine's network back as it was
#   dev/kind.sh env      print the exports that point kubectl, helm and docker at the cluster
#   dev/kind.sh cached   succeed when `up` can start without the first offline build (a
#                        connected Docker and kind, or every offline tool already built);
#                        otherwise print what is missing and fail (.ci/run asks)
# shellcheck source=dev/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=hookline
NAMESPACE=hookline
RELEASE=hookline
INGRESS_HOST=hooks.localtest.me
CONSOLE_HOST=console.localtest.me
KIND_STATE="$STACK_DIR/kind"
MODE_FILE="$KIND_STATE/mode"
export KUBECONFIG="$KIND_STATE/kubeconfig"
# Offline, the commands kind, kubectl, helm and docker are links gathered here (kind calls
# `docker` itself, and the Debian engine wants its own client).
TOOL_PATH="$CACHE_DIR/kind/path"

mode() {
  local mode=${HOOKLINE_KIND_MODE:-}
  [ -z "$mode" ] && [ -f "$MODE_FILE" ] && mode=$(cat "$MODE_FILE")
  if [ -z "$mode" ]; then
    if command -v kind >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1; then
      mode=connected
    else
      mode=offline
    fi
  fi
  case "$mode" in
    connected | offline) echo "$mode" ;;
    *) die "HOOKLINE_KIND_MODE must be connected or offline, not '$mode'" ;;
  esac
}

# Puts the offline engine's client, kind, kubectl and helm first on PATH.
offline_env() {
  eval "$(bash "$DEV_DIR/kind/engine.sh" env)"
  export PATH="$TOOL_PATH:$PATH"
}

offline_tools() {
  mkdir -p "$TOOL_PATH"
  ln -sfn /usr/bin/docker "$TOOL_PATH/docker"
  ln -sfn "$(bash "$DEV_DIR/kind/tools.sh" path kind)" "$TOOL_PATH/kind"
  ln -sfn "$CACHE_DIR/kube/$KUBERNETES_VERSION/bin/kubectl" "$TOOL_PATH/kubectl"
  ln -sfn "$CACHE_DIR/helm/$HELM_VERSION/bin/helm" "$TOOL_PATH/helm"
}

require_connected_tools() {
  local missing=()
  for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (install Docker, kind, kubectl and helm, or run HOOKLINE_KIND_MODE=offline make kind-up)"
  docker info >/dev/null 2>&1 || die "docker is installed but its engine does not answer (is the daemon running?)"
}

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; }
api_answers() { kubectl get --raw /readyz >/dev/null 2>&1; }

# --- the cluster ---------------------------------------------------------------------------

create_cluster() {
  local config=$1 image=${2:-}
  if cluster_exists; then
    kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
    if api_answers; then
      log "kind cluster $CLUSTER exists"
      return 0
    fi
    log "kind cluster $CLUSTER exists but its API server does not answer: recreating it"
    kind delete cluster --name "$CLUSTER"
  fi
  local args=(--name "$CLUSTER" --config "$config" --kubeconfig "$KUBECONFIG")
  [ -n "$image" ] && args+=(--image "$image")
  # Offline, nodes become Ready only once dev/kind.sh has set up the pod network.
  [ "$(mode)" = connected ] && args+=(--wait 180s)
  kind create cluster "${args[@]}"
}

# The pod network of the offline mode: on each node a bridge CNI config for the node's pod
# CIDR and a route to every other node's pod CIDR through that node (what kindnet does).
setup_pod_network() {
  local nodes node ip cidr other
  declare -A node_ip node_cidr
  mapfile -t nodes < <(kind get nodes --name "$CLUSTER")
  for node in "${nodes[@]}"; do
    ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$node")
    cidr=""
    for _ in $(seq 120); do
      cidr=$(kubectl get node "$node" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
      [ -n "$cidr" ] && break
      sleep 1
    done
    [ -n "$cidr" ] || die "node $node got no pod CIDR"
    node_ip[$node]=$ip
    node_cidr[$node]=$cidr
  done
  for node in "${nodes[@]}"; do
    sed "s#POD_CIDR#${node_cidr[$node]}#" "$DEV_DIR/kind/cni.conflist" |
      docker exec -i "$node" sh -c 'cat > /etc/cni/net.d/10-hookline.conflist.tmp && mv /etc/cni/net.d/10-hookline.conflist.tmp /etc/cni/net.d/10-hookline.conflist'
    # Bridged pod traffic must pass iptables, or a Service reply between pods of one node
    # skips kube-proxy's reverse NAT.
    docker exec "$node" sysctl -qw net.bridge.bridge-nf-call-iptables=1
    for other in "${nodes[@]}"; do
      [ "$other" = "$node" ] && continue
      docker exec "$node" ip route replace "${node_cidr[$other]}" via "${node_ip[$other]}"
    done
  done
  log "pod network: ${#nodes[@]} nodes, routes between their pod CIDRs"
}

wait_nodes_ready() {
  kubectl wait node --all --for=condition=Ready --timeout=300s >/dev/null ||
    die "the nodes did not become Ready: kubectl describe nodes"
  log "every node is Ready"
}

# --- Hookline ------------------------------------------------------------------------------

# The chart's values for this mode, as --set arguments.
chart_values() {
  echo "--set=handler.ingress.className=traefik"
  echo "--set=handler.ingress.host=$INGRESS_HOST"
  echo "--set=console.ingress.enabled=true"
  echo "--set=console.ingress.host=$CONSOLE_HOST"
  # Made by console_sign_ins (install_hookline); the console's Ingress is plain HTTP here.
  echo "--set-file=console.auth.users=$KIND_STATE/console-users"
  echo "--set=console.secureCookie=false"
  if [ "$(mode)" = offline ]; then
    echo "--set-string=image.tag=$(bash "$DEV_DIR/kind/images.sh" hookline-tag)"
    echo "--set=kafka.image=hookline-kind/kafka"
    echo "--set-string=kafka.tag=$KAFKA_VERSION"
    echo "--set=postgres.image=hookline-kind/postgres"
    echo "--set-string=postgres.tag=$POSTGRES_MAJOR"
  else
    echo "--set-string=image.tag=$(chart_app_version)"
  fi
}

chart_app_version() { awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' "$REPO_ROOT/helm/hookline/Chart.yaml"; }

install_hookline() {
  local values console="$REPO_ROOT/target/release/hookline-console"
  if [ ! -x "$console" ]; then
    log "release build of hookline-console (its hash-password hashes the console's sign-ins)"
    (cd "$REPO_ROOT" && dev/build-release.sh -p hookline-console) || die "building hookline-console failed"
  fi
  console_sign_ins "$console" "$KIND_STATE"
  mapfile -t values < <(chart_values)
  log "helm install $RELEASE (helm/hookline) into namespace $NAMESPACE"
  helm upgrade --install "$RELEASE" "$REPO_ROOT/helm/hookline" \
    --namespace "$NAMESPACE" --create-namespace "${values[@]}" \
    --wait --timeout 10m >/dev/null || {
    kubectl -n "$NAMESPACE" get pods >&2 || true
    die "helm install did not finish: kubectl -n $NAMESPACE get pods; kubectl -n $NAMESPACE describe pods"
  }
  kubectl -n "$NAMESPACE" apply -f "$REPO_ROOT/examples/webhook.yaml" >/dev/null
  kubectl -n "$NAMESPACE" wait webhook/invoices --for=condition=Ready --timeout=180s >/dev/null ||
    die "the Webhook invoices did not become Ready: kubectl -n $NAMESPACE describe webhook invoices"
  log "Webhook invoices is Ready"
}

stored_events() {
  kubectl -n "$NAMESPACE" exec "statefulset/$RELEASE-postgres" -- \
    psql -U hookline -d hookline -tAc "select count(*) from events e join webhooks w using (webhook_id) where w.name = 'invoices'" 2>/dev/null |
    tr -d '[:space:]'
}

wait_stored() {
  local n=""
  for _ in $(seq 90); do
    n=$(stored_events || true)
    [ -n "$n" ] && [ "$n" -gt 0 ] && break
    sleep 2
  done
  if [ -z "$n" ] || [ "$n" -eq 0 ]; then
    die "no event of invoices was stored within 3 minutes: kubectl -n $NAMESPACE logs deployment/$RELEASE-consumer"
  fi
  log "$n events of invoices stored in the cluster's PostgreSQL"
}

# --- the modes -----------------------------------------------------------------------------

up_connected() {
  local image
  require_connected_tools
  create_cluster "$REPO_ROOT/kind-config.yaml"
  for image in operator handler consumer emitter console; do
    log "building hookline-$image:$(chart_app_version)"
    DOCKER_BUILDKIT=1 docker build --target "$image" -t "hookline-$image:$(chart_app_version)" "$REPO_ROOT"
    kind load docker-image --name "$CLUSTER" "hookline-$image:$(chart_app_version)"
  done
  # ingress-nginx was retired in March 2026; Traefik is maintained and serves the standard
  # Ingress API. It runs on the ingress-ready node with host port 80.
  helm repo add traefik https://traefik.github.io/charts >/dev/null
  helm repo update traefik >/dev/null
  helm upgrade --install traefik traefik/traefik --version "$TRAEFIK_CHART_VERSION" \
    --namespace traefik --create-namespace \
    --set ingressClass.enabled=true --set ingressClass.name=traefik \
    --set ports.web.hostPort=80 \
    --set service.type=ClusterIP \
    --set 'nodeSelector.ingress-ready=true' \
    --set 'tolerations[0].key=node-role.kubernetes.io/control-plane' \
    --set 'tolerations[0].operator=Exists' --set 'tolerations[0].effect=NoSchedule' \
    --wait --timeout 5m
}

# The NetworkPolicy engine of the offline mode (the bridge CNI enforces nothing): kube-router's
# firewall on every node. Waits until each node's pod runs and its iptables chains are in place,
# so Hookline's pods start under enforcement.
start_policy_engine() {
  local nodes node
  sed "s/KUBE_ROUTER_VERSION/$KUBE_ROUTER_VERSION/" "$DEV_DIR/kind/manifests/kube-router.yaml" | kubectl apply -f - >/dev/null
  kubectl -n kube-system rollout status daemonset/kube-router --timeout=180s >/dev/null || {
    kubectl -n kube-system logs daemonset/kube-router --tail=20 >&2 || true
    die "kube-router did not start: kubectl -n kube-system describe pods -l k8s-app=kube-router"
  }
  mapfile -t nodes < <(kind get nodes --name "$CLUSTER")
  for node in "${nodes[@]}"; do
    # The jump from FORWARD, not just the chain: a chain outlives the pod that made it.
    wait_for "$node's FORWARD chain jumps to kube-router's" 120 \
      docker exec "$node" sh -c 'iptables -w -S FORWARD | grep -q -- "-j KUBE-ROUTER-FORWARD"'
  done
  log "NetworkPolicies are enforced (kube-router $KUBE_ROUTER_VERSION, firewall only, on ${#nodes[@]} nodes)"
}

# The offline config: kind-config.yaml plus dev/kind/offline-config.yaml, versions filled in.
offline_config() {
  local out="$KIND_STATE/kind-config.yaml" key
  for key in networking containerdConfigPatches kubeadmConfigPatches; do
    grep -q "^$key:" "$REPO_ROOT/kind-config.yaml" &&
      die "kind-config.yaml has a top-level $key: merge it with dev/kind/offline-config.yaml by hand"
  done
  {
    cat "$REPO_ROOT/kind-config.yaml"
    sed -e "s/PAUSE_VERSION/$PAUSE_VERSION/" -e "s/ETCD_NODE_VERSION/$ETCD_NODE_VERSION/" \
      -e "s/COREDNS_VERSION/$COREDNS_VERSION/" "$DEV_DIR/kind/offline-config.yaml"
  } >"$out"
  echo "$out"
}

up_offline() {
  local start=$SECONDS images
  [ "$(id -u)" = 0 ] || die "the offline mode installs packages and starts a Docker engine of its own: run it as root"
  log "offline mode: everything is built here; the first run takes about an hour on 2 cores, later ones a few minutes"
  bash "$DEV_DIR/kind/engine.sh" install
  bash "$DEV_DIR/stack.sh" install
  bash "$DEV_DIR/kind/tools.sh" all
  bash "$DEV_DIR/kind/engine.sh" start
  offline_env
  offline_tools
  bash "$DEV_DIR/kind/images.sh" all
  log "everything built in $((SECONDS - start))s"
  create_cluster "$(offline_config)" "$(bash "$DEV_DIR/kind/images.sh" node-image)"
  setup_pod_network
  wait_nodes_ready
  mapfile -t images < <(bash "$DEV_DIR/kind/images.sh" names)
  log "loading ${#images[@]} images into the nodes"
  kind load docker-image --name "$CLUSTER" "${images[@]}" >"$KIND_STATE/kind-load.log" 2>&1 || {
    tail -n 20 "$KIND_STATE/kind-load.log" >&2
    die "kind load docker-image failed (log $KIND_STATE/kind-load.log)"
  }
  start_policy_engine
  sed "s/TRAEFIK_VERSION/$TRAEFIK_VERSION/" "$DEV_DIR/kind/manifests/traefik.yaml" | kubectl apply -f - >/dev/null
  kubectl -n traefik rollout status deployment/traefik --timeout=180s >/dev/null ||
    die "Traefik did not start: kubectl -n traefik describe pods"
  log "Traefik serves the Ingress on 127.0.0.1:80"
}

cmd_up() {
  local mode start=$SECONDS
  mode=$(mode)
  mkdir -p "$KIND_STATE"
  echo "$mode" >"$MODE_FILE"
  if [ "$mode" = offline ]; then up_offline; else up_connected; fi
  install_hookline
  wait_stored
  log "make kind-up took $((SECONDS - start))s"
  kubectl -n "$NAMESPACE" get webhooks
  print_usage
}

print_usage() {
  cat <<INFO

Hookline runs on kind ($(mode) mode). The emitter of examples/webhook.yaml sends an event every
5 seconds through the handler Service; the Ingress answers on 127.0.0.1:80.

  eval "\$(dev/kind.sh env)"    # kubectl and helm reach the cluster (run from the repository)
  kubectl -n $NAMESPACE get webhooks
  kubectl -n $NAMESPACE exec statefulset/$RELEASE-postgres -- psql -U hookline -d hookline \\
    -c 'select event_type, count(*) from events group by 1'
  kubectl -n $NAMESPACE scale deployment/$RELEASE-handler --replicas=5
  # through the Ingress: unsigned, so the handler answers 401 and names the missing header
  curl -si --resolve $INGRESS_HOST:80:127.0.0.1 -X POST -d '{}' \\
    http://$INGRESS_HOST/webhooks/\$(kubectl -n $NAMESPACE get webhook invoices -o jsonpath='{.status.webhookId}')

The console answers on http://$CONSOLE_HOST (127.0.0.1, through the Ingress); its sign-ins
(admin may replay, viewer may look; the cluster holds only their argon2id hashes):
  cat $KIND_STATE/console-sign-ins

make kind-test runs the end-to-end test on it; make kind-down removes it all.
INFO
}

cmd_env() {
  [ -f "$MODE_FILE" ] || die "no kind cluster was made from this checkout: make kind-up"
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG"
  if [ "$(mode)" = offline ]; then
    bash "$DEV_DIR/kind/engine.sh" env
    # shellcheck disable=SC2016 # $PATH expands where the line is eval'ed
    printf 'export PATH=%q:"$PATH"\n' "$TOOL_PATH"
  fi
}

cmd_test() {
  [ -f "$MODE_FILE" ] || die "no kind cluster was made from this checkout: make kind-up first"
  [ "$(mode)" = offline ] && offline_env
  api_answers || die "the kind cluster does not answer: make kind-up"
  local values probe_image engine
  mapfile -t values < <(chart_values)
  # The NetworkPolicy matrix's probe pods: the Debian base offline (in every node's
  # containerd), Debian from Docker Hub connected (the nodes pull it).
  if [ "$(mode)" = offline ]; then
    probe_image="hookline-kind/debian:$DEBIAN_SUITE"
    engine="kube-router $KUBE_ROUTER_VERSION (firewall only, iptables and ipset)"
  else
    probe_image="debian:$DEBIAN_SUITE-slim"
    engine="kindnet (kube-network-policies)"
  fi
  (cd "$REPO_ROOT" &&
    HOOKLINE_KIND_PROBE_IMAGE=$probe_image HOOKLINE_KIND_POLICY_ENGINE=$engine \
      HOOKLINE_KIND_NAMESPACE=$NAMESPACE HOOKLINE_KIND_RELEASE=$RELEASE HOOKLINE_KIND_INGRESS="127.0.0.1:80" \
      HOOKLINE_KIND_INGRESS_HOST=$INGRESS_HOST HOOKLINE_KIND_CONSOLE_HOST=$CONSOLE_HOST \
      HOOKLINE_KIND_CHART="$REPO_ROOT/helm/hookline" \
      HOOKLINE_KIND_CHART_VALUES="${values[*]}" \
      HOOKLINE_KIND_CONSOLE_SIGN_INS="$KIND_STATE/console-sign-ins" \
      cargo test --locked -p hookline-e2e --test kind_cluster -- --ignored --nocapture) || die "make kind-test failed"
  # The test ends with helm uninstall: put Hookline back as make kind-up left it.
  install_hookline
}

cmd_bench() {
  [ -f "$MODE_FILE" ] || die "no kind cluster was made from this checkout: make kind-up first"
  [ "$(mode)" = offline ] && offline_env
  api_answers || die "the kind cluster does not answer: make kind-up"
  (cd "$REPO_ROOT" && dev/build-release.sh -p hookline-bench) || die "building hookline-bench failed"
  (cd "$REPO_ROOT" &&
    HOOKLINE_KIND_NAMESPACE=$NAMESPACE HOOKLINE_KIND_RELEASE=$RELEASE HOOKLINE_KIND_INGRESS="127.0.0.1:80" \
      HOOKLINE_KIND_INGRESS_HOST=$INGRESS_HOST \
      target/release/hookline-bench --results bench/results kind --rates "${RATES:-500,1000,2000}" &&
    python3 dev/bench_merge.py bench/results &&
    python3 dev/bench_report.py bench/results) || die "make kind-bench failed"
}

cmd_down() {
  local mode
  [ -f "$MODE_FILE" ] || log "no kind cluster was made from this checkout; cleaning up what the $(mode) mode would have left"
  mode=$(mode)
  if [ "$mode" = offline ]; then
    offline_env
    if bash "$DEV_DIR/kind/engine.sh" status >/dev/null 2>&1 && [ -x "$TOOL_PATH/kind" ]; then
      kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
    fi
    bash "$DEV_DIR/kind/engine.sh" stop
  else
    command -v kind >/dev/null || die "kind is not installed"
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
  fi
  rm -rf "$KIND_STATE"
}

# The programs the offline mode builds from Go modules (an hour on 2 cores the first time);
# the images are rebuilt from them in minutes.
cmd_cached() {
  local tool path
  if [ "$(mode)" = connected ]; then
    echo "connected mode: Docker and kind answer"
    return 0
  fi
  for tool in kind etcd coredns local-path-provisioner traefik pause kube-router; do
    path=$(bash "$DEV_DIR/kind/tools.sh" path "$tool")
    [ -x "$path" ] || { echo "the offline kind cache is cold: no $tool at $path"; return 1; }
  done
  for tool in kubelet kubeadm kube-proxy kube-scheduler; do
    path="$CACHE_DIR/kube/$KUBERNETES_VERSION/node-bin/$tool"
    [ -x "$path" ] || { echo "the offline kind cache is cold: no $tool at $path"; return 1; }
  done
  echo "the offline kind cache is warm ($CACHE_DIR/kind)"
}

case "${1:-}" in
  up) cmd_up ;;
  test) cmd_test ;;
  bench) cmd_bench ;;
  down) cmd_down ;;
  env) cmd_env ;;
  cached) cmd_cached ;;
  *)
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
