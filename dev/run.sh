#!/usr/bin/env bash
# Hookline on this machine, without Docker: the local stack, the chart installed into
# its kube-apiserver (with external Kafka and PostgreSQL: the stack's), dev-pod-runner
# playing the kubelet for every Pod, nginx in front of the handler replicas, and
# examples/webhook.yaml applied.
#
#   dev/run.sh          all of that, then a live view until Ctrl-C, which stops what it started
#   dev/run.sh up       start it all and return (tests use this)
#   dev/run.sh down     stop what `up` started
#   dev/run.sh watch    the live view
#
# HOOKLINE_RUN_NAMESPACE (default hookline), HOOKLINE_PROXY_PORT (default 18080) and
# HOOKLINE_RUN_BIN_DIR (default target/release, built here) change where it runs;
# HOOKLINE_OTLP_ENDPOINT (an OTLP/HTTP base URL, e.g. http://127.0.0.1:4318) turns on
# the handlers' and consumers' traces (the chart's tracing.otlpEndpoint).
# HOOKLINE_CONSOLE_MAX_FAILURES_PER_USER and _PER_SOURCE (default 5 and 50) are the
# console's console.auth.throttle limits: every browser here is 127.0.0.1, and the API
# fuzzing of the console's test signs in with wrong credentials by the hundred.
# The console is served over plain HTTP on loopback: its cookie is not marked Secure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAMESPACE="${HOOKLINE_RUN_NAMESPACE:-hookline}"
RELEASE=hookline
BIN_DIR="${HOOKLINE_RUN_BIN_DIR:-$REPO_ROOT/target/release}"
RUN_STATE="$STACK_DIR/run-$NAMESPACE"
NGINX_DIR="$RUN_STATE/nginx"
PODS_DIR="$RUN_STATE/pods"
PROXY_URL="http://127.0.0.1:$PROXY_PORT"

load_env() {
  # shellcheck source=/dev/null
  source "$STACK_DIR/env"
}

write_nginx_config() {
  mkdir -p "$NGINX_DIR/logs" "$NGINX_DIR/tmp"
  [ -f "$NGINX_DIR/upstreams.conf" ] ||
    printf 'upstream handlers {\n    server 127.0.0.1:1 down;\n}\n' >"$NGINX_DIR/upstreams.conf"
  cat >"$NGINX_DIR/nginx.conf" <<CONF
# Stands in for the Ingress: /webhooks/ to the ready handler replicas, whose list
# dev-pod-runner keeps in upstreams.conf.
daemon off;
worker_processes 1;
error_log $NGINX_DIR/logs/error.log warn;
pid $NGINX_DIR/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $NGINX_DIR/tmp/body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;
    client_max_body_size 2m;
    # Bodies stay in memory: the workers need not write temp files anywhere.
    client_body_buffer_size 2m;
    include $NGINX_DIR/upstreams.conf;
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location /webhooks/ {
            proxy_pass http://handlers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            # A replica that went away (scaled down, killed) is skipped: the request goes
            # to the next one. Safe for POSTs: the consumer stores a message id once.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
        }
    }
}
CONF
}

nginx_cmd() { nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" "$@"; }

up() {
  "$DEV_DIR/stack.sh" up
  load_env
  command -v nginx >/dev/null || apt_install nginx-light
  if [ "$BIN_DIR" = "$REPO_ROOT/target/release" ]; then
    log "building the release binaries"
    "$DEV_DIR/build-release.sh"
  fi
  for binary in hookline-operator hookline-handler hookline-consumer hookline-emitter hookline-console dev-pod-runner; do
    [ -x "$BIN_DIR/$binary" ] || die "no $BIN_DIR/$binary (build it first)"
  done
  # The pods of an earlier run (their logs and Secret files) go: a new run starts clean.
  daemon_running "pod-runner-$NAMESPACE" || rm -rf "$PODS_DIR"
  mkdir -p "$RUN_STATE" "$PODS_DIR"

  namespace_not_terminating() {
    [ "$("$KUBECTL" get namespace "$NAMESPACE" -o jsonpath='{.status.phase}' 2>/dev/null)" != Terminating ]
  }
  wait_for "the old namespace $NAMESPACE is gone" 180 namespace_not_terminating
  "$KUBECTL" get namespace "$NAMESPACE" >/dev/null 2>&1 || "$KUBECTL" create namespace "$NAMESPACE" >/dev/null
  "$KUBECTL" -n "$NAMESPACE" create secret generic hookline-database \
    --from-literal=DATABASE_URL="$DATABASE_URL" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  "$KUBECTL" -n "$NAMESPACE" create secret generic hookline-console-database \
    --from-literal=DATABASE_URL="$CONSOLE_DATABASE_URL" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  # The consumer runs as hookline_consumer_login (no DROP, ALTER or TRUNCATE); the owner
  # migrates first, as the chart's migrate Job does in a cluster.
  "$KUBECTL" -n "$NAMESPACE" create secret generic hookline-consumer-database \
    --from-literal=DATABASE_URL="$CONSUMER_DATABASE_URL" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  "$BIN_DIR/hookline-consumer" --log-format text --database-url "$DATABASE_URL" migrate ||
    die "the schema migrations failed (above)"
  # Every namespace's release is named hookline: its topics and consumer group take the
  # namespace as their prefix, so runs in two namespaces share no topic on the stack's Kafka.
  # Each component logs in to Kafka as its own SCRAM principal, over TLS to the stack's CA.
  "$KUBECTL" -n "$NAMESPACE" create secret generic hookline-kafka-logins \
    --from-literal=operator-username=hookline-operator --from-literal=operator-password="$KAFKA_SASL_PASSWORD_OPERATOR" \
    --from-literal=handler-username=hookline-handler --from-literal=handler-password="$KAFKA_SASL_PASSWORD_HANDLER" \
    --from-literal=consumer-username=hookline-consumer --from-literal=consumer-password="$KAFKA_SASL_PASSWORD_CONSUMER" \
    --from-literal=console-username=hookline-console --from-literal=console-password="$KAFKA_SASL_PASSWORD_CONSOLE" \
    --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  "$KUBECTL" -n "$NAMESPACE" create secret generic hookline-kafka-ca --from-file=ca.crt="$KAFKA_SSL_CA_LOCATION" \
    --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  # The stack's broker allows only what an ACL allows: grant those principals this release's
  # ACLs (its topic prefix is the namespace) before anything logs in.
  "$DEV_DIR/components/kafka.sh" acls "$NAMESPACE"
  console_sign_ins "$BIN_DIR/hookline-console" "$RUN_STATE"
  log "helm upgrade --install $RELEASE into namespace $NAMESPACE"
  # make run's admin lets Webhooks ask for up to the CRD's own maxima (limits.*): the load
  # tests and the bench drive emitters and rate limits far past the chart's defaults.
  "$HELM" upgrade --install "$RELEASE" "$REPO_ROOT/helm/hookline" --namespace "$NAMESPACE" \
    --set logFormat=text \
    --set topicPrefix="$NAMESPACE" \
    --set kafka.builtIn=false --set kafka.bootstrapServers="$KAFKA_BOOTSTRAP_SERVERS" \
    --set kafka.security.protocol=sasl_ssl --set kafka.security.sasl.existingSecret=hookline-kafka-logins \
    --set kafka.security.tls.caSecret=hookline-kafka-ca \
    --set postgres.builtIn=false --set postgres.external.existingSecret=hookline-database \
    --set console.database.existingSecret=hookline-console-database \
    --set-file console.auth.users="$RUN_STATE/console-users" --set console.secureCookie=false \
    --set console.auth.throttle.maxFailuresPerUser="${HOOKLINE_CONSOLE_MAX_FAILURES_PER_USER:-5}" \
    --set console.auth.throttle.maxFailuresPerSource="${HOOKLINE_CONSOLE_MAX_FAILURES_PER_SOURCE:-50}" \
    --set consumer.database.existingSecret=hookline-consumer-database --set consumer.database.migrations=none \
    --set handler.replicas=3 --set consumer.replicas=2 \
    --set limits.maxRateLimitPerSecond=1000000 --set limits.maxRateLimitBurst=1000000 \
    --set limits.maxEmitterRatePerSecond=10000 --set limits.maxEmitterReplicas=100 \
    --set operator.watchNamespace="$NAMESPACE" \
    --set operator.publicBaseUrl="$PROXY_URL" --set operator.handlerUrl="$PROXY_URL" \
    --set handler.trustedProxies='{127.0.0.1/32}' \
    --set-string tracing.otlpEndpoint="${HOOKLINE_OTLP_ENDPOINT:-}" >/dev/null

  write_nginx_config
  start_daemon "nginx-$NAMESPACE" nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf"
  start_daemon "pod-runner-$NAMESPACE" "$BIN_DIR/dev-pod-runner" \
    --namespace "$NAMESPACE" --bin-dir "$BIN_DIR" --state-dir "$PODS_DIR" \
    --proxy-upstreams "$NGINX_DIR/upstreams.conf" \
    --proxy-reload "nginx -p $NGINX_DIR -c $NGINX_DIR/nginx.conf -s reload"
  wait_for "the operator is available" 120 "$KUBECTL" -n "$NAMESPACE" wait deployment/$RELEASE-operator --for=condition=Available --timeout=2s
  wait_for "the handlers are available" 120 "$KUBECTL" -n "$NAMESPACE" wait deployment/$RELEASE-handler --for=condition=Available --timeout=2s
  wait_for "the consumers are available" 120 "$KUBECTL" -n "$NAMESPACE" wait deployment/$RELEASE-consumer --for=condition=Available --timeout=2s
  wait_for "the console is available" 120 "$KUBECTL" -n "$NAMESPACE" wait deployment/$RELEASE-console --for=condition=Available --timeout=2s
  local console_url
  console_url=$(console_url)
  {
    echo "export HOOKLINE_RUN_NAMESPACE=$NAMESPACE"
    echo "export HOOKLINE_PROXY_URL=$PROXY_URL"
    echo "export HOOKLINE_PODS_FILE=$PODS_DIR/pods.json"
    echo "export HOOKLINE_CONSOLE_URL=$console_url"
    echo "export HOOKLINE_CONSOLE_SIGN_INS=$RUN_STATE/console-sign-ins"
  } >"$RUN_STATE/env"
  log "Hookline runs in namespace $NAMESPACE; the proxy is $PROXY_URL (env in $RUN_STATE/env)"
  log "the console: $console_url  sign in as one of (username:role:password):"
  sed 's/^/    /' "$RUN_STATE/console-sign-ins" >&2
}

# The console's local address: dev-pod-runner gave its container port 8080 a port of its own.
console_url() {
  local python
  python=$(bash "$DEV_DIR/pyenv.sh")
  "$python" - "$PODS_DIR/pods.json" <<'PY'
import json, sys
pods = json.load(open(sys.argv[1]))["pods"]
ports = [p["ports"]["8080"] for p in pods.values() if p.get("component") == "console" and "8080" in p.get("ports", {})]
if not ports:
    sys.exit("no console pod in " + sys.argv[1])
print(f"http://127.0.0.1:{ports[0]}")
PY
}

down() {
  if [ -f "$STACK_DIR/env" ]; then
    load_env
    # Webhooks first, while the operator runs: their finalizers remove the registry
    # entries. A Webhook no operator finalizes in time keeps its entry (a warning says so).
    if "$KUBECTL" get namespace "$NAMESPACE" >/dev/null 2>&1; then
      "$KUBECTL" -n "$NAMESPACE" delete webhooks --all --wait=true --timeout=60s >/dev/null 2>&1 || {
        log "warning: Webhooks in $NAMESPACE were not finalized; removing their finalizers (registry entries stay)"
        for webhook in $("$KUBECTL" -n "$NAMESPACE" get webhooks -o name 2>/dev/null); do
          "$KUBECTL" -n "$NAMESPACE" patch "$webhook" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        done
      }
    fi
  fi
  stop_daemon "pod-runner-$NAMESPACE" 60
  stop_daemon "nginx-$NAMESPACE" 10
  if [ -f "$STACK_DIR/env" ]; then
    "$HELM" uninstall "$RELEASE" --namespace "$NAMESPACE" >/dev/null 2>&1 || true
    "$KUBECTL" delete namespace "$NAMESPACE" --wait=false >/dev/null 2>&1 || true
  fi
}

watch_live() {
  load_env
  local python
  python=$(bash "$DEV_DIR/pyenv.sh")
  "$python" "$DEV_DIR/dashboard.py" --pods "$PODS_DIR/pods.json" --database-url "$DATABASE_URL" \
    --psql "$PG_BIN/psql" --namespace "$NAMESPACE" --console-url "$(console_url)"
}

case "${1:-run}" in
  up) up ;;
  down) down ;;
  watch) watch_live ;;
  run)
    stack_was_up=$("$DEV_DIR/stack.sh" status >/dev/null 2>&1 && echo yes || echo no)
    up
    "$KUBECTL" -n "$NAMESPACE" apply -f "$REPO_ROOT/examples/webhook.yaml"
    stop_all() {
      trap - INT TERM EXIT
      log "stopping what make run started"
      down
      [ "$stack_was_up" = yes ] || "$DEV_DIR/stack.sh" down
    }
    trap stop_all INT TERM EXIT
    log "live view; Ctrl-C stops everything this started"
    watch_live || true
    ;;
  *)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
