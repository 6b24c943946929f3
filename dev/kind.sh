#!/usr/bin/env bash
# Hookline on a kind cluster (needs Docker; this is the quickstart for machines that have it).
#
#   dev/kind.sh up     create the cluster, build and load the images, install Traefik as
#                      the ingress controller, helm install Hookline, apply
#                      examples/webhook.yaml and wait until it is Ready
#   dev/kind.sh down   delete the cluster
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=hookline
NAMESPACE=hookline
RELEASE=hookline
TAG=0.1.0
IMAGES=(operator handler consumer emitter)

require_tools() {
  local missing=()
  for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (install Docker, kind, kubectl and helm first)"
  docker info >/dev/null 2>&1 || die "docker is installed but its engine does not answer (is the daemon running?)"
}

up() {
  require_tools
  if kind get clusters | grep -qx "$CLUSTER"; then
    log "kind cluster $CLUSTER exists"
  else
    kind create cluster --config "$REPO_ROOT/kind-config.yaml" --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
  for image in "${IMAGES[@]}"; do
    log "building hookline-$image:$TAG"
    docker build --target "$image" -t "hookline-$image:$TAG" "$REPO_ROOT"
    kind load docker-image --name "$CLUSTER" "hookline-$image:$TAG"
  done

  # ingress-nginx was retired in March 2026; Traefik is maintained and serves the
  # standard Ingress API. It runs on the ingress-ready node with host ports 80/443.
  helm repo add traefik https://traefik.github.io/charts >/dev/null
  helm repo update traefik >/dev/null
  # Unpinned: no chart registry is reachable from where this script was written, so no
  # version could be checked; pin one (--version) once it is known to work for you.
  helm upgrade --install traefik traefik/traefik \
    --namespace traefik --create-namespace \
    --set ingressClass.enabled=true --set ingressClass.name=traefik \
    --set ports.web.hostPort=80 --set ports.websecure.hostPort=443 \
    --set service.type=ClusterIP \
    --set 'nodeSelector.ingress-ready=true' \
    --set 'tolerations[0].key=node-role.kubernetes.io/control-plane' \
    --set 'tolerations[0].operator=Exists' --set 'tolerations[0].effect=NoSchedule' \
    --wait --timeout 5m

  helm upgrade --install "$RELEASE" "$REPO_ROOT/helm/hookline" \
    --namespace "$NAMESPACE" --create-namespace \
    --set image.tag="$TAG" --set handler.ingress.className=traefik \
    --wait --timeout 10m
  kubectl -n "$NAMESPACE" apply -f "$REPO_ROOT/examples/webhook.yaml"
  kubectl -n "$NAMESPACE" wait webhook/invoices --for=condition=Ready --timeout=180s
  cat <<INFO

Hookline runs on kind. The emitter of examples/webhook.yaml sends an event every 5 seconds.

  kubectl -n $NAMESPACE get webhooks
  kubectl -n $NAMESPACE exec -it statefulset/$RELEASE-postgres -- psql -U hookline -d hookline \\
    -c 'select event_type, count(*) from events group by 1'
  kubectl -n $NAMESPACE exec -it statefulset/$RELEASE-kafka -- /opt/kafka/bin/kafka-console-consumer.sh \\
    --bootstrap-server localhost:9092 --topic hookline.events --from-beginning
  kubectl -n $NAMESPACE scale deployment/$RELEASE-handler --replicas=5
  curl -i http://hooks.localtest.me/webhooks/\$(kubectl -n $NAMESPACE get webhook invoices -o jsonpath='{.status.webhookId}')

make kind-down removes it all.
INFO
}

down() {
  command -v kind >/dev/null || die "kind is not installed"
  kind delete cluster --name "$CLUSTER"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
