#!/usr/bin/env bash
# Checks the Helm chart against the local stack's kube-apiserver: lint, render with
# built-in and external Kafka/PostgreSQL, install (the server validates every object),
# scale the handler, the operator's permissions, uninstall. Ends with "N passed, N failed".
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set +e

[ -f "$STACK_DIR/env" ] || die "the local stack is not running: make stack-up"
# shellcheck source=/dev/null
source "$STACK_DIR/env"
CHART="$REPO_ROOT/helm/hookline"
PYTHON=$(bash "$DEV_DIR/pyenv.sh") || die "no Python environment (dev/pyenv.sh)"
RELEASE="chart-$(date +%s)"
NAMESPACE="$RELEASE"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
check() {
  local name=$1; shift
  if "$@" >"$WORK/out" 2>&1; then
    passed=$((passed + 1))
    printf 'ok      %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAILED  %s\n' "$name"
    sed 's/^/        /' "$WORK/out" | tail -20
  fi
}

helm_() { "$HELM" --kubeconfig "$KUBECONFIG" "$@"; }
kubectl_() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }

# Prints the kinds of a rendered manifest, one per line, sorted.
kinds() { "$PYTHON" -c 'import sys, yaml; print("\n".join(sorted(d["kind"] for d in yaml.safe_load_all(open(sys.argv[1])) if d)))' "$1"; }

render_default() {
  helm_ template "$RELEASE" "$CHART" --namespace "$NAMESPACE" >"$WORK/default.yaml" &&
    [ "$(kinds "$WORK/default.yaml" | grep -c StatefulSet)" = 2 ]
}

render_external() {
  helm_ template "$RELEASE" "$CHART" --namespace "$NAMESPACE" \
    --set kafka.builtIn=false --set kafka.bootstrapServers=kafka-0.kafka:9092 \
    --set postgres.builtIn=false --set postgres.external.existingSecret=pg-dsn \
    --set console.database.existingSecret=console-dsn >"$WORK/external.yaml" &&
    ! kinds "$WORK/external.yaml" | grep -q StatefulSet &&
    grep -q 'kafka-0.kafka:9092' "$WORK/external.yaml" &&
    grep -q 'name: pg-dsn' "$WORK/external.yaml" &&
    grep -q 'name: console-dsn' "$WORK/external.yaml"
}

external_needs_its_settings() {
  ! helm_ template "$RELEASE" "$CHART" --set kafka.builtIn=false 2>"$WORK/err" &&
    grep -q 'kafka.bootstrapServers is required' "$WORK/err" &&
    ! helm_ template "$RELEASE" "$CHART" --set postgres.builtIn=false \
      --set postgres.external.existingSecret=pg-dsn 2>"$WORK/err" &&
    grep -q 'console.database.existingSecret' "$WORK/err"
}

console_reads_with_its_own_login() {
  "$PYTHON" - "$WORK/default.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
console = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-console"))
env = {e["name"]: e for e in console["spec"]["template"]["spec"]["containers"][0]["env"]}
ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
assert ref["key"] == "CONSOLE_DATABASE_URL", ref
secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-console"))
assert "users" not in secret["stringData"], "the chart makes no sign-ins (it cannot hash a password)"
assert console["spec"]["replicas"] == 0, "no sign-ins, no console replica"
assert env["CONSOLE_SECURE_COOKIE"]["value"] == "true", env["CONSOLE_SECURE_COOKIE"]
rules = [d["rules"] for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].startswith(console["metadata"]["name"])]
assert rules == [[{"apiGroups": ["hookline.io"], "resources": ["webhooks"], "verbs": ["get", "list", "watch"]}]], rules
PY
}

# A throwaway password's argon2id hash (cheap parameters): the chart only checks its form.
# Single quotes on purpose: the hash's $ fields are text.
# shellcheck disable=SC2016
CONSOLE_USERS='admin:operator:$argon2id$v=19$m=8,t=1,p=1$QErFKibxy7Fs53hkLhOo0w$DIhiL3yAXYBImGGvetCNaagFC5sm6+URPfuq8B/6Vos'

console_takes_hashed_users_and_an_auth_proxy_in_the_way() {
  printf '%s\n' "$CONSOLE_USERS" >"$WORK/users" &&
    helm_ template "$RELEASE" "$CHART" --set-file console.auth.users="$WORK/users" \
      --set console.ingress.enabled=true --set console.ingress.host=console.localtest.me \
      --set console.ingress.authProxyService.name=oauth2-proxy \
      --set console.ingress.authProxyService.port=4180 >"$WORK/users.yaml" &&
    helm_ template "$RELEASE" "$CHART" --set console.listenAddr=127.0.0.1:8080 \
      --set console.auth.proxy.userHeader=X-Forwarded-User --set 'console.auth.proxy.trustedCidrs={127.0.0.1/32}' \
      --set console.service.targetPort=auth-proxy \
      --set 'console.extraContainers[0].name=oauth2-proxy' --set 'console.extraContainers[0].image=oauth2-proxy' \
      --set console.ingress.enabled=true --set console.ingress.host=console.localtest.me >"$WORK/sidecar.yaml" &&
    ! helm_ template "$RELEASE" "$CHART" --set 'console.auth.users=admin:operator:in clear' 2>/dev/null &&
    ! helm_ template "$RELEASE" "$CHART" --set console.replicas=2 2>/dev/null &&
    "$PYTHON" - "$WORK/users.yaml" "$WORK/sidecar.yaml" "$CONSOLE_USERS" <<'PY'
import sys, yaml
def console(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    return {d["kind"]: d for d in docs if d["metadata"]["name"].endswith("-console")}
users, sidecar = console(sys.argv[1]), console(sys.argv[2])
assert users["Secret"]["stringData"]["users"].strip() == sys.argv[3]
assert users["Deployment"]["spec"]["replicas"] == 1
backend = users["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
assert backend == {"name": "oauth2-proxy", "port": {"number": 4180}}, backend
pod = sidecar["Deployment"]["spec"]["template"]["spec"]
assert [c["name"] for c in pod["containers"]] == ["console", "oauth2-proxy"]
env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
assert env["CONSOLE_LISTEN_ADDR"] == "127.0.0.1:8080" and env["CONSOLE_AUTH_PROXY_TRUSTED_CIDRS"] == "127.0.0.1/32", env
assert "CONSOLE_USERS_FILE" not in env and sidecar["Deployment"]["spec"]["replicas"] == 1
assert sidecar["Service"]["spec"]["ports"][0]["targetPort"] == "auth-proxy"
assert sidecar["NetworkPolicy"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "auth-proxy"}]
PY
}

console_ingress_needs_a_host() {
  ! helm_ template "$RELEASE" "$CHART" --set console.ingress.enabled=true 2>"$WORK/err" &&
    grep -q 'console.ingress.host is required' "$WORK/err" &&
    helm_ template "$RELEASE" "$CHART" --set console.ingress.enabled=true \
      --set console.ingress.host=console.localtest.me | grep -q 'host: "console.localtest.me"'
}

bad_values_are_refused() {
  ! helm_ template "$RELEASE" "$CHART" --set handler.replicas=-1 2>"$WORK/err" &&
    grep -q 'handler/replicas' "$WORK/err" &&
    ! helm_ template "$RELEASE" "$CHART" --set logFormat=xml 2>/dev/null &&
    ! helm_ template "$RELEASE" "$CHART" --set handler.unknownValue=1 2>/dev/null
}

autoscaling_leaves_replicas_to_the_hpa() {
  helm_ template "$RELEASE" "$CHART" --set handler.autoscaling.enabled=true >"$WORK/hpa.yaml" &&
    "$PYTHON" - "$WORK/hpa.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
handler = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-handler"))
assert "replicas" not in handler["spec"], "the HPA owns spec.replicas"
assert any(d["kind"] == "HorizontalPodAutoscaler" for d in docs)
PY
}

keda_only_with_its_crds() {
  helm_ template "$RELEASE" "$CHART" --set consumer.keda.enabled=true >"$WORK/keda.yaml" &&
    ! grep -q ScaledObject "$WORK/keda.yaml" &&
    helm_ template "$RELEASE" "$CHART" --set consumer.keda.enabled=true --api-versions keda.sh/v1alpha1 | grep -q 'kind: ScaledObject'
}

consumer_retention_and_membership() {
  helm_ template "$RELEASE" "$CHART" --set consumer.retention.eventsDays=7 \
    --set consumer.retention.dedupWindowDays=1 >"$WORK/retention.yaml" &&
    helm_ template "$RELEASE" "$CHART" --set consumer.staticMembership=true >"$WORK/static.yaml" &&
    ! helm_ template "$RELEASE" "$CHART" --set consumer.retention.partitionsAheadDays=0 2>/dev/null &&
    "$PYTHON" - "$WORK/default.yaml" "$WORK/retention.yaml" "$WORK/static.yaml" <<'PY'
import sys, yaml
def consumer_env(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-consumer"))
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
default, retention, static = (consumer_env(p) for p in sys.argv[1:])
assert default["CONSUMER_EVENTS_RETENTION_DAYS"] == "30" and default["CONSUMER_DEDUP_WINDOW_DAYS"] == "3", default
assert default["CONSUMER_SESSION_TIMEOUT"] == "10s"
assert "CONSUMER_GROUP_INSTANCE_ID" not in default, "static membership is opt-in: a scale-down would stall"
assert retention["CONSUMER_EVENTS_RETENTION_DAYS"] == "7" and retention["CONSUMER_DEDUP_WINDOW_DAYS"] == "1"
assert static["CONSUMER_GROUP_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
PY
}

# Prints {component: {env name: value or valueFrom}} of every container of a rendering.
ENV_PY='
import sys, yaml
def envs(path):
    out = {}
    for d in yaml.safe_load_all(open(path)):
        if d and d["kind"] in ("Deployment", "Job"):
            component = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            c = d["spec"]["template"]["spec"]["containers"][0]
            out[component] = {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}
            out[component]["__volumes"] = d["spec"]["template"]["spec"].get("volumes", [])
    return out
'

releases_are_apart_and_kafka_is_secured() {
  helm_ template team-a "$CHART" >"$WORK/a.yaml" &&
    helm_ template team-b "$CHART" --set topicPrefix=shop >"$WORK/b.yaml" &&
    helm_ template team-c "$CHART" --set kafka.builtIn=false --set kafka.bootstrapServers=kafka:9093 \
      --set kafka.security.protocol=sasl_ssl --set kafka.security.sasl.existingSecret=kafka-logins \
      --set kafka.security.tls.caSecret=kafka-ca >"$WORK/c.yaml" &&
    ! helm_ template team-d "$CHART" --set kafka.security.protocol=sasl_ssl 2>"$WORK/err" &&
    grep -q 'kafka.security.sasl.existingSecret is required' "$WORK/err" &&
    ! helm_ template team-d "$CHART" --set kafka.security.protocol=sasl_plaintext 2>/dev/null &&
    "$PYTHON" - "$WORK/a.yaml" "$WORK/b.yaml" "$WORK/c.yaml" <<PY
$ENV_PY
a, b, c = (envs(p) for p in sys.argv[1:])
topics = lambda e: {k: v for comp in e.values() for k, v in comp.items() if k.endswith(("_TOPIC", "GROUP_ID"))}
ta, tb = topics(a), topics(b)
assert ta and all(v.startswith("team-a.") for v in ta.values()), ta
assert all(v.startswith("shop.") for v in tb.values()), tb
assert not set(ta.values()) & set(tb.values()), "two releases share a topic or group"
assert a["consumer"]["CONSUMER_GROUP_ID"] == "team-a.hookline-consumer"
assert a["handler"]["HANDLER_EVENTS_TOPIC"] == a["consumer"]["CONSUMER_EVENTS_TOPIC"] == a["operator"]["HOOKLINE_EVENTS_TOPIC"] == a["console"]["CONSOLE_EVENTS_TOPIC"] == "team-a.hookline.events"
assert a["handler"]["HANDLER_REGISTRY_TOPIC"] == a["consumer"]["CONSUMER_REGISTRY_TOPIC"] == a["operator"]["HOOKLINE_REGISTRY_TOPIC"] == "team-a.hookline.registry"
for comp in ("operator", "handler", "consumer", "console"):
    env = c[comp]
    assert env["KAFKA_SECURITY_PROTOCOL"] == "sasl_ssl", comp
    assert env["KAFKA_SASL_USERNAME"] == {"secretKeyRef": {"name": "kafka-logins", "key": f"{comp}-username"}}, (comp, env)
    assert env["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": "kafka-logins", "key": f"{comp}-password"}}, comp
    assert env["KAFKA_SSL_CA_LOCATION"] == "/etc/hookline/kafka-ca/ca.crt", comp
    assert any(v.get("secret", {}).get("secretName") == "kafka-ca" for v in env["__volumes"]), comp
    assert a[comp]["KAFKA_SECURITY_PROTOCOL"] == "plaintext", comp
PY
}

tracing_reaches_the_handler_and_consumer() {
  helm_ template "$RELEASE" "$CHART" --set tracing.otlpEndpoint=http://collector:4318 \
    --set tracing.sampleRatio=0.25 >"$WORK/traced.yaml" &&
    ! helm_ template "$RELEASE" "$CHART" --set tracing.sampleRatio=1.5 2>/dev/null &&
    ! helm_ template "$RELEASE" "$CHART" --set tracing.otlpEndpoint=https://collector 2>/dev/null &&
    "$PYTHON" - "$WORK/default.yaml" "$WORK/traced.yaml" <<PY
$ENV_PY
default, traced = (envs(p) for p in sys.argv[1:])
for comp in ("handler", "consumer"):
    assert traced[comp]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318", (comp, traced[comp])
    assert traced[comp]["HOOKLINE_TRACE_SAMPLE_RATIO"] == "0.25", comp
for comp, env in default.items():
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env, ("traces are off by default", comp)
PY
}

registry_keys_only_where_needed() {
  "$PYTHON" - "$WORK/default.yaml" <<PY
$ENV_PY
import base64
e = envs(sys.argv[1])
keys = {comp for comp, env in e.items() for v in env["__volumes"] if v.get("secret", {}).get("secretName", "").endswith("-registry-keys")}
assert keys == {"operator", "handler"}, f"the registry keyring is mounted by {keys}"
assert e["operator"]["HOOKLINE_REGISTRY_KEYS_DIR"] == e["handler"]["HOOKLINE_REGISTRY_KEYS_DIR"]
secret = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Secret" and d["metadata"]["name"].endswith("-registry-keys"))
primary = base64.b64decode(secret["data"]["primary"]).decode()
assert len(base64.b64decode(base64.b64decode(secret["data"][primary]))) == 32, "a 32-byte key"
PY
}

consumer_least_privilege() {
  helm_ template "$RELEASE" "$CHART" --set kafka.builtIn=false --set kafka.bootstrapServers=k:1 \
    --set postgres.builtIn=false --set postgres.external.existingSecret=owner-dsn \
    --set console.database.existingSecret=console-dsn >"$WORK/owner.yaml" &&
    helm_ template "$RELEASE" "$CHART" --set kafka.builtIn=false --set kafka.bootstrapServers=k:1 \
      --set postgres.builtIn=false --set postgres.external.existingSecret=owner-dsn \
      --set console.database.existingSecret=console-dsn \
      --set consumer.database.existingSecret=consumer-dsn >"$WORK/login.yaml" &&
    helm_ template "$RELEASE" "$CHART" --set consumer.database.migrations=none >"$WORK/nojob.yaml" &&
    "$PYTHON" - "$WORK/default.yaml" "$WORK/owner.yaml" "$WORK/login.yaml" "$WORK/nojob.yaml" <<PY
$ENV_PY
builtin, owner, login, nojob = (envs(p) for p in sys.argv[1:])
dsn = lambda e: e["DATABASE_URL"]["secretKeyRef"]
assert builtin["consumer"]["CONSUMER_SCHEMA"] == "verify" and dsn(builtin["consumer"])["key"] == "CONSUMER_DATABASE_URL"
assert dsn(builtin["migrate"])["key"] == "DATABASE_URL", "the Job migrates as the owner"
assert owner["consumer"]["CONSUMER_SCHEMA"] == "migrate" and dsn(owner["consumer"])["name"] == "owner-dsn"
assert "migrate" not in owner, "no Job where the consumer owns the schema"
assert login["consumer"]["CONSUMER_SCHEMA"] == "verify" and dsn(login["consumer"])["name"] == "consumer-dsn"
assert dsn(login["migrate"])["name"] == "owner-dsn"
assert "migrate" not in nojob and nojob["consumer"]["CONSUMER_SCHEMA"] == "verify"
PY
}

crd_matches_the_generated_one() { cmp "$CHART/crds/webhook.yaml" "$REPO_ROOT/crds/webhook.yaml"; }

rbac_matches_operator_rules() {
  "$PYTHON" - "$WORK/default.yaml" "$REPO_ROOT/operator/rbac.yaml" <<'PY'
import sys, yaml
chart = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
wanted = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
operator = next(d["metadata"]["name"] for d in chart if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator"))
def named(rules, name):
    # operator/rbac.yaml names the operator's Deployment hookline-operator; the chart, its own.
    return [{**r, "resourceNames": [name]} if "resourceNames" in r else r for r in rules]
for kind in ("ClusterRole", "Role"):
    got = [d["rules"] for d in chart if d["kind"] == kind and "-operator" in d["metadata"]["name"]]
    want = [named(d["rules"], operator) for d in wanted if d["kind"] == kind]
    assert got == want, f"{kind} rules differ from operator/rbac.yaml:\n{got}\n{want}"
PY
}

# The operator's grants as `kubectl auth can-i` answers them, for a cluster-wide install (the
# release installed above) and one with operator.watchNamespace (its RBAC applied alone): the
# namespaced operator can read Secrets and make Deployments only in the namespace it watches.
# Writes the matrix to $WORK/can-i.txt; the last line of the run prints it.
operator_rbac_follows_the_watched_namespace() {
  local namespaced="$RELEASE-ns" watched="$RELEASE-tenant-a" other="$RELEASE-tenant-b" ns
  for ns in "$namespaced" "$watched" "$other"; do
    kubectl_ create namespace "$ns" >/dev/null || return 1
  done
  helm_ template "$RELEASE" "$CHART" --namespace "$namespaced" --set operator.watchNamespace="$watched" \
    --show-only templates/operator.yaml --show-only templates/admission-policy.yaml >"$WORK/namespaced.yaml" || return 1
  "$PYTHON" - "$WORK/namespaced.yaml" "$watched" "$namespaced" >"$WORK/namespaced-rbac.yaml" <<'PY' || return 1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = [d["kind"] for d in docs]
assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds, kinds
roles = {(d["kind"], d["metadata"].get("namespace")) for d in docs if d["kind"] in ("Role", "RoleBinding")}
assert ("Role", sys.argv[2]) in roles and ("RoleBinding", sys.argv[2]) in roles, roles
binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": sys.argv[2]}
rbac = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
for d in rbac:
    d["metadata"].setdefault("namespace", sys.argv[3])
print(yaml.safe_dump_all(rbac))
PY
  kubectl_ apply -f "$WORK/namespaced-rbac.yaml" >/dev/null || return 1
  local install as where want verb resource got wrong=0
  : >"$WORK/can-i.txt"
  while read -r install want verb resource where; do
    case "$install" in
      cluster) as="system:serviceaccount:$NAMESPACE:$RELEASE-hookline-operator" ;;
      namespaced) as="system:serviceaccount:$namespaced:$RELEASE-hookline-operator" ;;
    esac
    case "$where" in
      watched) ns=(-n "$watched") ;;
      other) ns=(-n "$other") ;;
      all) ns=(--all-namespaces) ;;
    esac
    got=$(kubectl_ auth can-i "$verb" "$resource" "${ns[@]}" --as "$as" 2>/dev/null | head -1)
    printf '%-10s %-6s %-36s %-8s %s\n' "$install" "$verb" "$resource" "$where" "$got" >>"$WORK/can-i.txt"
    [ "$got" = "$want" ] || { echo "$install operator: can-i $verb $resource in $where: got '$got', want '$want'"; wrong=1; }
  done <<'LIST'
cluster yes get secrets other
cluster yes create deployments.apps other
cluster yes list secrets all
namespaced yes get secrets watched
namespaced yes create secrets watched
namespaced yes create deployments.apps watched
namespaced yes watch webhooks.hookline.io watched
namespaced yes delete networkpolicies.networking.k8s.io watched
namespaced no get secrets other
namespaced no list secrets other
namespaced no create deployments.apps other
namespaced no patch deployments.apps other
namespaced no watch webhooks.hookline.io other
namespaced no list secrets all
namespaced no list webhooks.hookline.io all
namespaced no delete secrets watched
namespaced no delete deployments.apps watched
LIST
  for ns in "$namespaced" "$watched" "$other"; do
    kubectl_ delete namespace "$ns" --wait=false >/dev/null 2>&1
  done
  [ "$wrong" = 0 ]
}

# The admin's limits at admission: the chart's ValidatingAdmissionPolicy (installed with the
# release above, bound to every namespace) refuses a Webhook over each limit, naming the field
# and the chart value; a Webhook within them, and a change that leaves the spec alone, pass.
limits_are_refused_at_admission() {
  local name spec field out
  local cases=(
    'replicas|{"customerId":"c","emitter":{"replicas":6}}|spec.emitter.replicas must be at most 5|limits.maxEmitterReplicas'
    'rate|{"customerId":"c","emitter":{"ratePerSecond":50.5}}|spec.emitter.ratePerSecond must be at most 50|limits.maxEmitterRatePerSecond'
    'rps|{"customerId":"c","rateLimit":{"requestsPerSecond":1001}}|spec.rateLimit.requestsPerSecond must be at most 1000|limits.maxRateLimitPerSecond'
    'burst|{"customerId":"c","rateLimit":{"burst":2001}}|spec.rateLimit.burst must be at most 2000|limits.maxRateLimitBurst'
    'private|{"customerId":"c","url":"http://10.0.0.1/in","emitter":{"allowPrivateTargets":true}}|spec.emitter.allowPrivateTargets must not be true|limits.allowPrivateTargets'
    'lent|{"customerId":"c","url":"https://collector.example.com/in","secretRef":{"name":"s","key":"k"}}|spec.url must not be set with spec.secretRef|limits.allowReferencedSecretsToOtherTargets'
  )
  webhook_json() { printf '{"apiVersion":"hookline.io/v1alpha1","kind":"Webhook","metadata":{"name":"%s"},"spec":%s}' "$1" "$2"; }
  # The API server compiles a new policy within moments: wait for the first refusal.
  for _ in $(seq 60); do
    webhook_json limit-probe '{"customerId":"c","emitter":{"replicas":6}}' |
      kubectl_ create --dry-run=server -n "$NAMESPACE" -f - >/dev/null 2>&1 || break
    sleep 0.5
  done
  for case in "${cases[@]}"; do
    IFS='|' read -r name spec field limit <<<"$case"
    if out=$(webhook_json "limit-$name" "$spec" | kubectl_ create -n "$NAMESPACE" -f - 2>&1); then
      echo "accepted over the limit ($name): $out"
      return 1
    fi
    if ! grep -qF "$field" <<<"$out" || ! grep -qF "$limit" <<<"$out"; then
      echo "$name: $out"
      return 1
    fi
  done
  webhook_json within '{"customerId":"c","emitter":{"replicas":5,"ratePerSecond":50},"rateLimit":{"requestsPerSecond":1000,"burst":2000}}' |
    kubectl_ create -n "$NAMESPACE" -f - >/dev/null || return 1
  out=$(kubectl_ scale -n "$NAMESPACE" webhook/within --replicas=6 2>&1) && { echo "scaled past the limit: $out"; return 1; }
  grep -qF 'limits.maxEmitterReplicas' <<<"$out" || { echo "scale: $out"; return 1; }
  kubectl_ delete -n "$NAMESPACE" webhook/within >/dev/null
}

every_pod_is_hardened() {
  "$PYTHON" - "$WORK/default.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] not in ("Deployment", "StatefulSet", "Job"):
        continue
    pod = d["spec"]["template"]["spec"]
    name = d["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert "resources" in c and c["resources"].get("limits"), name
        if not name.endswith("-kafka"):
            assert sc["readOnlyRootFilesystem"] is True, name
        if d["kind"] != "Job" and not name.endswith(("-kafka", "-postgres")):
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            # Probes on the ops port, never the one a Service or Ingress exposes.
            assert c["livenessProbe"]["httpGet"]["port"] == c["readinessProbe"]["httpGet"]["port"] == "ops", name
    labels = d["spec"]["template"]["metadata"]["labels"]
    for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"):
        assert key in labels, (name, key)
PY
}

# NetworkPolicies (networkPolicy.*). Rendered and installed only: no policy engine runs
# here (the stack has no kubelet or CNI; the offline kind cluster's bridge CNI enforces
# none), so these show what the policies say, not that a plugin enforces it.
network_policies_by_default() {
  "$PYTHON" - "$WORK/default.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
policies = {d["metadata"]["name"].rsplit("-", 1)[1]: d for d in docs if d["kind"] == "NetworkPolicy"}
assert sorted(policies) == ["console", "consumer", "handler", "kafka", "operator", "postgres"], sorted(policies)
workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
def pods_of(selector):
    return [w for w in workloads
            if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.get("matchLabels", {}).items())
            and all(w["spec"]["template"]["metadata"]["labels"].get(e["key"]) in e["values"]
                    for e in selector.get("matchExpressions", []) if e["operator"] == "In")]
def ports_of(component):
    w = next(w for w in workloads if w["metadata"]["name"].endswith("-" + component))
    return {p["containerPort"] for c in w["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
for component, policy in policies.items():
    spec = policy["spec"]
    selected = pods_of(spec["podSelector"])
    assert [w["metadata"]["name"].rsplit("-", 1)[1] for w in selected] == [component], (component, selected)
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec, component
    for rule in spec["ingress"]:
        for port in rule["ports"]:
            assert port["protocol"] == "TCP" and port["port"] in ports_of(component), (component, port)
def rules(component):
    return [([p["port"] for p in r["ports"]], r["from"]) for r in policies[component]["spec"]["ingress"]]
emitters = {"namespaceSelector": {}, "podSelector": {"matchLabels": {
    "app.kubernetes.io/component": "emitter", "app.kubernetes.io/managed-by": "hookline-operator"}}}
traefik = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}
assert rules("handler") == [([8080], [traefik, emitters])], rules("handler")
# No monitoring namespace by default: the ops ports take nobody.
assert rules("operator") == [] and rules("consumer") == [], (rules("operator"), rules("consumer"))
assert rules("console") == [([8080], [{"podSelector": {}}])], rules("console")
def clients(component):
    [(ports, peers)] = rules(component)
    [peer] = peers
    assert "namespaceSelector" not in peer, "this namespace only"
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == policies[component]["metadata"]["labels"]["app.kubernetes.io/instance"]
    return ports, sorted(w["metadata"]["name"].rsplit("-", 1)[1] for w in pods_of(peer["podSelector"]))
assert clients("kafka") == ([9092], ["console", "consumer", "handler", "operator"]), clients("kafka")
assert clients("postgres") == ([5432], ["console", "consumer"]), clients("postgres")
operator = next(w for w in workloads if w["metadata"]["name"].endswith("-operator"))
env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
assert env["HOOKLINE_EMITTER_NETWORK_POLICY"] == "true", env
assert int(env["HOOKLINE_HANDLER_POD_PORT"]) in ports_of("handler"), env
PY
}

network_policies_off_with_a_value() {
  helm_ template "$RELEASE" "$CHART" --set networkPolicy.enabled=false >"$WORK/nonetpol.yaml" &&
    ! kinds "$WORK/nonetpol.yaml" | grep -q NetworkPolicy &&
    "$PYTHON" - "$WORK/nonetpol.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
operator = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator"))
env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
assert env["HOOKLINE_EMITTER_NETWORK_POLICY"] == "false", "the operator writes no emitter policy either"
PY
}

network_policies_follow_the_values() {
  helm_ template "$RELEASE" "$CHART" --namespace "$NAMESPACE" \
    --set-json 'networkPolicy.monitoring.namespaceSelector={"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}' \
    --set-json 'networkPolicy.monitoring.podSelector={"matchLabels":{"app":"prometheus"}}' \
    --set-json 'networkPolicy.ingressController.podSelector={"matchLabels":{"app.kubernetes.io/name":"traefik"}}' \
    --set-json 'networkPolicy.handler.extraFrom=[{"ipBlock":{"cidr":"192.0.2.0/24"}}]' \
    --set-json 'networkPolicy.kafka.extraFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"keda"}}}]' \
    --set console.ingress.enabled=true --set console.ingress.host=console.localtest.me \
    --set operator.watchNamespace=shop >"$WORK/netpol.yaml" &&
    ! helm_ template "$RELEASE" "$CHART" --set-json 'networkPolicy.handler.extraFrom=[{"cidr":"192.0.2.0/24"}]' 2>/dev/null &&
    "$PYTHON" - "$WORK/netpol.yaml" "$WORK/external.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
policies = {d["metadata"]["name"].rsplit("-", 1)[1]: d for d in docs if d["kind"] == "NetworkPolicy"}
def rules(component):
    return [([p["port"] for p in r["ports"]], r["from"]) for r in policies[component]["spec"]["ingress"]]
monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app": "prometheus"}}}
traefik = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}}
emitters = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}, "podSelector": {"matchLabels": {
    "app.kubernetes.io/component": "emitter", "app.kubernetes.io/managed-by": "hookline-operator"}}}
# The handler's webhook port takes no monitoring; its ops port (webhook ids in /readyz and
# /metrics) takes monitoring only.
assert rules("handler") == [([8080], [traefik, emitters, {"ipBlock": {"cidr": "192.0.2.0/24"}}]), ([9090], [monitoring])], rules("handler")
assert rules("operator") == [([9090], [monitoring])] and rules("consumer") == [([9090], [monitoring])]
assert rules("console") == [([8080], [traefik]), ([9090], [monitoring])], rules("console")
kafka_peers = rules("kafka")[0][1]
assert kafka_peers[1:] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}], kafka_peers
external = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d]
names = sorted(d["metadata"]["name"].rsplit("-", 1)[1] for d in external if d["kind"] == "NetworkPolicy")
assert names == ["console", "consumer", "handler", "operator"], "no policy for external Kafka or PostgreSQL: " + str(names)
PY
}

network_policies_are_installed() {
  local names
  names=$(kubectl_ -n "$NAMESPACE" get networkpolicy -l "app.kubernetes.io/instance=$RELEASE" -o name | sort | tr '\n' ' ')
  [ "$names" = "networkpolicy.networking.k8s.io/$RELEASE-hookline-console networkpolicy.networking.k8s.io/$RELEASE-hookline-consumer networkpolicy.networking.k8s.io/$RELEASE-hookline-handler networkpolicy.networking.k8s.io/$RELEASE-hookline-kafka networkpolicy.networking.k8s.io/$RELEASE-hookline-operator networkpolicy.networking.k8s.io/$RELEASE-hookline-postgres " ] ||
    { echo "installed NetworkPolicies: $names"; return 1; }
}

no_network_policy_left() {
  local left
  left=$(kubectl_ -n "$NAMESPACE" get networkpolicy -l "app.kubernetes.io/instance=$RELEASE" -o name 2>&1)
  [ -z "$left" ] || { echo "left behind: $left"; return 1; }
}

install_into_the_api_server() {
  helm_ install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace --timeout 2m
}

objects_exist() {
  kubectl_ -n "$NAMESPACE" get "deployment/$RELEASE-hookline-operator" "deployment/$RELEASE-hookline-handler" \
    "deployment/$RELEASE-hookline-consumer" "statefulset/$RELEASE-hookline-kafka" "statefulset/$RELEASE-hookline-postgres" \
    "service/$RELEASE-hookline-handler" "ingress/$RELEASE-hookline-handler" "pdb/$RELEASE-hookline-handler" \
    "secret/$RELEASE-hookline-postgres" "serviceaccount/$RELEASE-hookline-operator" \
    "deployment/$RELEASE-hookline-console" "service/$RELEASE-hookline-console" "secret/$RELEASE-hookline-console" &&
    kubectl_ get crd webhooks.hookline.io
}

handler_scales_like_any_deployment() {
  local deployment="deployment/$RELEASE-hookline-handler" rs
  kubectl_ -n "$NAMESPACE" scale "$deployment" --replicas=5 || return 1
  for _ in $(seq 60); do
    rs=$(kubectl_ -n "$NAMESPACE" get rs -l app.kubernetes.io/component=handler -o jsonpath='{.items[0].spec.replicas}')
    [ "$rs" = 5 ] && break
    sleep 0.5
  done
  [ "$rs" = 5 ] || { echo "ReplicaSet replicas: $rs"; return 1; }
  kubectl_ -n "$NAMESPACE" scale "$deployment" --replicas=3
}

operator_can_exactly_what_it_needs() {
  local as="system:serviceaccount:$NAMESPACE:$RELEASE-hookline-operator" verb resource subresource want got
  while read -r want verb resource subresource; do
    got=$(kubectl_ auth can-i "$verb" "$resource" ${subresource:+--subresource="$subresource"} \
      -n "$NAMESPACE" --as "$as" 2>/dev/null | head -1)
    [ "$got" = "$want" ] || { echo "can the operator $verb $resource $subresource? got '$got', want '$want'"; return 1; }
  done <<'LIST'
yes watch webhooks.hookline.io
yes patch webhooks.hookline.io status
yes update webhooks.hookline.io finalizers
yes patch deployments.apps
yes create secrets
yes create events.events.k8s.io
yes update leases.coordination.k8s.io
no delete secrets
no delete deployments.apps
no update deployments.apps
no patch deployments.apps scale
no update deployments.apps scale
no patch webhooks.hookline.io scale
no create pods
no create clusterrolebindings.rbac.authorization.k8s.io
no delete webhooks.hookline.io
yes create networkpolicies.networking.k8s.io
yes patch networkpolicies.networking.k8s.io
yes delete networkpolicies.networking.k8s.io
no update networkpolicies.networking.k8s.io
LIST
}

console_can_only_read_webhooks() {
  local as="system:serviceaccount:$NAMESPACE:$RELEASE-hookline-console" verb resource want got
  while read -r want verb resource; do
    got=$(kubectl_ auth can-i "$verb" "$resource" -n "$NAMESPACE" --as "$as" 2>/dev/null | head -1)
    [ "$got" = "$want" ] || { echo "can the console $verb $resource? got '$got', want '$want'"; return 1; }
  done <<'LIST'
yes watch webhooks.hookline.io
yes list webhooks.hookline.io
no patch webhooks.hookline.io
no get secrets
no list pods
LIST
}

uninstall_leaves_nothing() {
  helm_ uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout 2m || return 1
  local left
  left=$(kubectl_ -n "$NAMESPACE" get all,ingress,pdb,secret,serviceaccount,role,rolebinding,configmap \
    -l "app.kubernetes.io/instance=$RELEASE" -o name 2>&1)
  left+=$(kubectl_ get clusterrole,clusterrolebinding -l "app.kubernetes.io/instance=$RELEASE" -o name 2>&1)
  # The pods the StatefulSets made are removed by garbage collection shortly after.
  for _ in $(seq 60); do
    [ -z "$left" ] && break
    sleep 0.5
    left=$(kubectl_ -n "$NAMESPACE" get all,ingress,pdb,secret,serviceaccount,role,rolebinding,configmap \
      -l "app.kubernetes.io/instance=$RELEASE" -o name 2>&1)
    left+=$(kubectl_ get clusterrole,clusterrolebinding -l "app.kubernetes.io/instance=$RELEASE" -o name 2>&1)
  done
  [ -z "$left" ] || { echo "left behind: $left"; return 1; }
}

check "helm lint --strict" helm_ lint --strict "$CHART"
check "render with built-in Kafka and PostgreSQL" render_default
check "render with external Kafka and PostgreSQL" render_external
check "external Kafka without bootstrap servers is refused" external_needs_its_settings
check "values.schema.json refuses bad values" bad_values_are_refused
check "the console: its own database login, no generated users, read-only RBAC" console_reads_with_its_own_login
check "the console: argon2id users only, one replica, an auth proxy in the Ingress's way" console_takes_hashed_users_and_an_auth_proxy_in_the_way
check "the console's Ingress needs a host" console_ingress_needs_a_host
check "with autoscaling the HPA owns the handler's replicas" autoscaling_leaves_replicas_to_the_hpa
check "KEDA ScaledObject only where KEDA is installed" keda_only_with_its_crds
check "consumer retention, dedup window and static membership values reach the consumer" consumer_retention_and_membership
check "releases apart: topics and consumer group under each prefix; Kafka SASL_SSL per component" releases_are_apart_and_kafka_is_secured
check "tracing.otlpEndpoint and tracing.sampleRatio reach the handler and consumer, off by default" tracing_reaches_the_handler_and_consumer
check "the registry keyring: a random 32-byte key, mounted by the operator and handlers only" registry_keys_only_where_needed
check "the consumer's least-privileged login, the migrate Job as the owner" consumer_least_privilege
check "the chart's CRD is crds/webhook.yaml" crd_matches_the_generated_one
check "the chart's RBAC is operator/rbac.yaml" rbac_matches_operator_rules
check "every pod: non-root, read-only, probes, resources, labels" every_pod_is_hardened
check "NetworkPolicies by default: who may reach each pod, on which port" network_policies_by_default
check "networkPolicy.enabled=false: no NetworkPolicy, and the operator writes none" network_policies_off_with_a_value
check "NetworkPolicies follow monitoring, ingress controller, extraFrom, console Ingress, watchNamespace" network_policies_follow_the_values
# The rules as the chart renders them: without the Prometheus Operator's CRD a ConfigMap whose
# rules file promtool accepts; with it a PrometheusRule, each alert with its runbook_url.
alerts_render_for_both_kinds_of_prometheus() {
  helm_ template "$RELEASE" "$CHART" --show-only templates/alerts.yaml >"$WORK/alerts-cm.yaml" &&
    "$PYTHON" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); assert d["kind"] == "ConfigMap", d["kind"]; open(sys.argv[2], "w").write(d["data"]["hookline.rules.yaml"])' \
      "$WORK/alerts-cm.yaml" "$WORK/rendered.rules.yaml" &&
    "$PROMTOOL" check rules "$WORK/rendered.rules.yaml" &&
    helm_ template "$RELEASE" "$CHART" --show-only templates/alerts.yaml \
      --api-versions monitoring.coreos.com/v1/PrometheusRule \
      --set alerts.runbookBaseUrl=https://docs.example.org/hookline/RUNBOOK.md >"$WORK/alerts-pr.yaml" &&
    "$PYTHON" - "$WORK/alerts-pr.yaml" "$CHART/files/alerts.yaml" <<'PY'
import sys, yaml
rendered = yaml.safe_load(open(sys.argv[1]))
assert rendered["kind"] == "PrometheusRule", rendered["kind"]
source = yaml.safe_load(open(sys.argv[2]))
alerts = [r for g in rendered["spec"]["groups"] for r in g["rules"] if "alert" in r]
assert len(alerts) == sum(1 for g in source["groups"] for r in g["rules"] if "alert" in r)
for rule in alerts:
    section = rule["annotations"]["runbook"].split("#")[1]
    assert section == rule["alert"].lower(), rule["alert"]
    assert rule["annotations"]["runbook_url"] == "https://docs.example.org/hookline/RUNBOOK.md#" + section
PY
}

# Every alert has its section in docs/RUNBOOK.md, a heading named after it.
every_alert_has_a_runbook_section() {
  "$PYTHON" - "$CHART/files/alerts.yaml" "$REPO_ROOT/docs/RUNBOOK.md" <<'PY'
import sys, yaml
headings = {line[3:].strip() for line in open(sys.argv[2]) if line.startswith("## ")}
missing = [r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]
           if "alert" in r and r["alert"] not in headings]
assert not missing, f"no section in docs/RUNBOOK.md for {missing}"
PY
}

alert_unit_tests_pass() { "$PROMTOOL" test rules "$CHART/tests/alerts.test.yaml"; }

# The dashboard ConfigMap carries the sidecar's label and a dashboard whose every panel has
# a query on the templated data source, with the namespace and webhook variables.
dashboard_is_a_grafana_configmap() {
  helm_ template "$RELEASE" "$CHART" --show-only templates/dashboard.yaml >"$WORK/dashboard.yaml" &&
    "$PYTHON" - "$WORK/dashboard.yaml" <<'PY'
import json, sys, yaml
cm = yaml.safe_load(open(sys.argv[1]))
assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
dashboard = json.loads(cm["data"]["hookline.json"])
variables = {v["name"] for v in dashboard["templating"]["list"]}
assert {"datasource", "namespace", "webhook"} <= variables, variables
panels = [p for p in dashboard["panels"] if p["type"] != "row"]
assert len(panels) >= 15, len(panels)
for panel in panels:
    assert panel["targets"], panel["title"]
    for target in panel["targets"]:
        assert 'namespace=~"$namespace"' in target["expr"], (panel["title"], target["expr"])
PY
}

# metrics.perWebhook reaches the handler and the consumer, the two that label by Webhook.
per_webhook_metrics_follow_the_value() {
  helm_ template "$RELEASE" "$CHART" --set metrics.perWebhook=false >"$WORK/per-webhook-off.yaml" &&
    "$PYTHON" - "$WORK/default.yaml" "$WORK/per-webhook-off.yaml" <<'PY'
import sys, yaml
def env(path, component):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-" + component))
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
for component in ("handler", "consumer"):
    assert env(sys.argv[1], component)["HOOKLINE_PER_WEBHOOK_METRICS"] == "true", component
    assert env(sys.argv[2], component)["HOOKLINE_PER_WEBHOOK_METRICS"] == "false", component
PY
}

examples_are_valid() {
  local example
  for example in "$REPO_ROOT"/examples/*.yaml; do
    kubectl_ create --dry-run=server -n "$NAMESPACE" -f "$example" -o name || return 1
  done
}

check "alerts: a ConfigMap promtool checks, or a PrometheusRule with runbook URLs" alerts_render_for_both_kinds_of_prometheus
check "every alert has its section in docs/RUNBOOK.md" every_alert_has_a_runbook_section
check "promtool test rules: each alert fires, and stays quiet, when it should" alert_unit_tests_pass
check "the Grafana dashboard: a labelled ConfigMap, every panel queried by namespace" dashboard_is_a_grafana_configmap
check "metrics.perWebhook reaches the handler and the consumer" per_webhook_metrics_follow_the_value
check "helm install into kube-apiserver" install_into_the_api_server
check "examples/ are accepted by the API server" examples_are_valid
check "kubectl get shows every object" objects_exist
check "the API server accepts the NetworkPolicies" network_policies_are_installed
check "kubectl scale deployment handler: the ReplicaSet follows" handler_scales_like_any_deployment
check "kubectl auth can-i: the operator's least privilege" operator_can_exactly_what_it_needs
check "kubectl auth can-i: the console reads Webhooks, nothing else" console_can_only_read_webhooks
check "kubectl auth can-i: a namespaced operator reaches only the namespace it watches" operator_rbac_follows_the_watched_namespace
check "the admission policy refuses a Webhook over each of the admin's limits, naming it" limits_are_refused_at_admission
check "helm uninstall leaves nothing behind (the CRD stays, as Helm does)" uninstall_leaves_nothing
check "helm uninstall leaves no NetworkPolicy" no_network_policy_left
kubectl_ delete namespace "$NAMESPACE" --wait=false >/dev/null 2>&1

if [ -s "$WORK/can-i.txt" ]; then
  echo "the operator's grants as kubectl auth can-i answered (install, verb, resource, namespace, answer):"
  sed 's/^/  /' "$WORK/can-i.txt"
fi
echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
