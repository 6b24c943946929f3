//! The user's own path on the kind cluster of `make kind-up` (run by `make kind-test`):
//! Webhooks applied with kubectl, events signed with their secrets sent through the Ingress
//! and by an emitter pod, the handler scaled up and down, the emitter scaled through the
//! Webhook, a handler and a consumer pod deleted, a `helm upgrade` — all during traffic —
//! then every accepted event is counted in the cluster's PostgreSQL, exactly once. Last,
//! `helm uninstall` must leave nothing of Hookline but the CRD.
//!
//! First, the NetworkPolicies under enforcement (kube-router offline, kindnet connected),
//! with real pods: a pod without the allowed labels reaches none of Hookline's ports, an
//! emitter reaches DNS and its target only, the Ingress reaches the handler. Every denial
//! has a positive control: a pod that is allowed reaches the same address and port, so a
//! probe that cannot connect at all does not pass for a denial.

use std::time::Duration;

use hookline_e2e::kind::{self, EmitterLogs, KindCluster, Sender};
use hookline_testkit::eventually;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(8);

/// Patient retries, so a request refused or cut during a rollout is retried, not lost.
fn spec(emitter: bool, rate: f64) -> serde_json::Value {
    json!({
        "customerId": "kind-e2e",
        "emitter": {"enabled": emitter, "ratePerSecond": rate, "replicas": 1},
        "delivery": {"retry": 20, "backoffPolicy": "exponential", "backoffDelayMs": 200, "maxBackoffDelayMs": 2000},
        "rateLimit": {"requestsPerSecond": 1000, "burst": 1000},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the kind cluster of make kind-up: run it with make kind-test"]
async fn the_users_path_on_kind_loses_nothing() {
    let cluster = KindCluster::from_env().await;
    network_policy_matrix(&cluster).await;
    let handler = format!("deployment/{}-handler", cluster.release);
    let consumer = format!("deployment/{}-consumer", cluster.release);

    let direct_id = cluster
        .apply_webhook("kind-direct", &spec(false, 1.0))
        .await;
    let emitted_id = cluster
        .apply_webhook("kind-emitter", &spec(true, 20.0))
        .await;
    let secret = cluster.signing_secret("kind-direct").await;
    let logs = EmitterLogs::follow(&cluster, "kind-emitter");
    let sender = Sender::start(&cluster, &direct_id, secret, 4, Duration::from_millis(100));
    tokio::time::sleep(SETTLE).await;

    // The handler scaled out and back in by hand, as a user does.
    cluster.kubectl(&["scale", &handler, "--replicas=5"]);
    cluster.rollout(&handler);
    tokio::time::sleep(SETTLE).await;
    cluster.kubectl(&["scale", &handler, "--replicas=2"]);
    cluster.rollout(&handler);
    tokio::time::sleep(SETTLE).await;

    // The emitter scaled through the Webhook's scale subresource.
    cluster.kubectl(&["scale", "webhook/kind-emitter", "--replicas=3"]);
    eventually(
        "three emitter pods of kind-emitter",
        Duration::from_secs(120),
        || async {
            let ready = cluster.kubectl(&[
                "get",
                "deployment",
                "-l",
                "hookline.io/webhook=kind-emitter",
                "-o",
                "jsonpath={.items[*].status.readyReplicas}",
            ]);
            (ready.trim() == "3").then_some(())
        },
    )
    .await;
    tokio::time::sleep(SETTLE).await;

    // A handler pod and a consumer pod deleted during traffic.
    for component in ["handler", "consumer"] {
        let pods = cluster.pod_names(&format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/component={component}",
            cluster.release
        ));
        let victim = pods.first().unwrap_or_else(|| panic!("no {component} pod"));
        cluster.kubectl(&["delete", "pod", victim, "--wait=false"]);
    }
    cluster.rollout(&handler);
    cluster.rollout(&consumer);
    tokio::time::sleep(SETTLE).await;

    // A helm upgrade that changes a value rolls the consumers.
    let mut upgrade = vec![
        "upgrade",
        cluster.release.as_str(),
        cluster.chart.as_str(),
        "-n",
        cluster.namespace.as_str(),
        "--wait",
        "--timeout=10m",
    ];
    upgrade.extend(cluster.chart_values.iter().map(String::as_str));
    upgrade.push("--set=consumer.batchMaxEvents=500");
    cluster.helm(&upgrade);
    cluster.rollout(&consumer);
    tokio::time::sleep(SETTLE).await;

    let (accepted, statuses) = sender.stop().await;
    cluster.kubectl(&[
        "patch",
        "webhook",
        "kind-emitter",
        "--type=merge",
        "-p",
        r#"{"spec":{"emitter":{"enabled":false}}}"#,
    ]);
    let emitted = logs.summary().await;

    // Every event the Ingress accepted is stored, exactly once.
    let stored = eventually(
        "every accepted event stored",
        Duration::from_secs(180),
        || async {
            let stored = cluster.stored_ids(&direct_id);
            (stored.len() >= accepted.len()).then_some(stored)
        },
    )
    .await;
    let stored_set: std::collections::BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored_set.len(), stored.len(), "a message id stored twice");
    let missing: Vec<_> = accepted.difference(&stored_set).collect();
    assert!(missing.is_empty(), "accepted but not stored: {missing:?}");
    let unexpected: Vec<_> = stored_set.difference(&accepted).collect();
    assert!(
        unexpected.is_empty(),
        "stored but never accepted: {unexpected:?}"
    );

    // Every event the emitter pods delivered is stored, exactly once.
    assert!(emitted.processes >= 3, "{emitted:?}");
    assert_eq!((emitted.failed, emitted.abandoned), (0, 0), "{emitted:?}");
    let delivered = usize::try_from(emitted.delivered).expect("count");
    let emitter_rows = eventually(
        "every delivered event stored",
        Duration::from_secs(180),
        || async {
            let rows = cluster.stored_ids(&emitted_id);
            (rows.len() >= delivered).then_some(rows)
        },
    )
    .await;
    assert_eq!(
        emitter_rows.len(),
        delivered,
        "rows of kind-emitter against {emitted:?}"
    );

    // The console, through its Ingress: no answer without credentials; signed in, the
    // Webhooks with their ids, and the events of one of them.
    let (status, _) = cluster.console_get("/api/v1/webhooks", None);
    assert_eq!(status, 401, "the console answered without credentials");
    // dev/kind.sh made the sign-ins; the cluster holds only their argon2id hashes.
    let sign_ins = &cluster.console_sign_ins;
    let users = std::fs::read_to_string(sign_ins)
        .unwrap_or_else(|err| panic!("{}: {err}", sign_ins.display()));
    let admin = users
        .lines()
        .find_map(|line| line.strip_prefix("admin:operator:"))
        .expect("the admin dev/kind.sh made");
    let (status, webhooks) = cluster.console_get("/api/v1/webhooks", Some(("admin", admin)));
    assert_eq!(status, 200, "{webhooks}");
    assert!(
        webhooks.contains(&direct_id) && webhooks.contains(&emitted_id),
        "{webhooks}"
    );
    let (status, events) = cluster.console_get(
        &format!("/api/v1/events?webhook_id={direct_id}&limit=5"),
        Some(("admin", admin)),
    );
    assert_eq!(status, 200, "{events}");
    assert!(events.contains(&direct_id), "{events}");

    println!(
        "kind-test counts: through the Ingress {} accepted and {} stored (answers {statuses:?}); \
         emitter pods: {} processes, {} emitted, {} delivered, {} stored",
        accepted.len(),
        stored.len(),
        emitted.processes,
        emitted.emitted,
        emitted.delivered,
        emitter_rows.len()
    );

    // The Webhooks go first (the operator removes their parts), then the release.
    cluster.kubectl(&[
        "delete",
        "webhooks",
        "--all",
        "--wait=true",
        "--timeout=120s",
    ]);
    cluster.helm(&[
        "uninstall",
        &cluster.release,
        "-n",
        &cluster.namespace,
        "--wait",
        "--timeout=5m",
    ]);
    let kinds = "deployments,statefulsets,pods,services,ingresses,secrets,configmaps,\
                 serviceaccounts,persistentvolumeclaims,roles,rolebindings,\
                 poddisruptionbudgets,networkpolicies,leases,webhooks";
    let leftovers = || {
        let mut left = String::new();
        for selector in [
            "app.kubernetes.io/part-of=hookline".to_owned(),
            format!("app.kubernetes.io/instance={}", cluster.release),
        ] {
            left += &cluster.run(
                "kubectl",
                &["get", kinds, "-A", "-l", &selector, "-o", "name"],
                None,
            );
            left += &cluster.run(
                "kubectl",
                &[
                    "get",
                    "clusterroles,clusterrolebindings",
                    "-l",
                    &selector,
                    "-o",
                    "name",
                ],
                None,
            );
        }
        left + &cluster.kubectl(&["get", "webhooks,leases", "-o", "name"])
    };
    let mut left = leftovers();
    for _ in 0..60 {
        if left.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        left = leftovers();
    }
    assert_eq!(left.trim(), "", "left behind by helm uninstall");
    let crd = cluster.run(
        "kubectl",
        &["get", "crd", "webhooks.hookline.io", "-o", "name"],
        None,
    );
    assert_eq!(
        crd.trim(),
        "customresourcedefinition.apiextensions.k8s.io/webhooks.hookline.io"
    );
}

// --- NetworkPolicies under enforcement ------------------------------------------------------

/// How long a probe's TCP connect may take; a denial is a refused or timed-out connect.
const CONNECT_TIMEOUT_SECS: u32 = 3;
/// How long a policy engine may take to program a new pod's address into its rules.
const POLICY_PROPAGATION: Duration = Duration::from_secs(90);

/// A shell in a pod's network namespace: a pod of its own or an ephemeral container in a
/// real pod (it shares that pod's address, so the policies that select the pod apply).
struct Subject {
    name: String,
    namespace: String,
    pod: String,
    container: Option<String>,
}

impl Subject {
    fn exec(&self, cluster: &KindCluster, script: &str, args: &[&str]) -> String {
        let mut all = vec!["exec", "-n", &self.namespace, &self.pod];
        if let Some(container) = &self.container {
            all.extend(["-c", container]);
        }
        all.extend(["--", "bash", "-c", script, "probe"]);
        all.extend_from_slice(args);
        cluster.run("kubectl", &all, None).trim().to_owned()
    }

    /// Whether a TCP connect to host:port succeeds. Anything but the probe's own two
    /// answers (kubectl exec failing, no bash) panics rather than reading as a denial.
    fn connects(&self, cluster: &KindCluster, host: &str, port: u16) -> bool {
        let script = format!(
            r#"if timeout {CONNECT_TIMEOUT_SECS} bash -c "</dev/tcp/$1/$2" 2>/dev/null; then echo open; else echo closed; fi"#
        );
        match self
            .exec(cluster, &script, &[host, &port.to_string()])
            .as_str()
        {
            "open" => true,
            "closed" => false,
            other => panic!(
                "probe from {} to {host}:{port} answered {other:?}",
                self.name
            ),
        }
    }

    /// Whether the pod's resolver (the cluster DNS) answers for `name`.
    fn resolves(&self, cluster: &KindCluster, name: &str) -> bool {
        let script = format!(
            r#"if timeout {CONNECT_TIMEOUT_SECS} getent hosts "$1" >/dev/null; then echo open; else echo closed; fi"#
        );
        match self.exec(cluster, &script, &[name]).as_str() {
            "open" => true,
            "closed" => false,
            other => panic!("lookup of {name} from {} answered {other:?}", self.name),
        }
    }
}

fn probe_image() -> String {
    std::env::var("HOOKLINE_KIND_PROBE_IMAGE")
        .expect("HOOKLINE_KIND_PROBE_IMAGE is not set: run the test with make kind-test")
}

/// A pod of its own running the probe image, Ready once its container runs.
fn probe_pod(
    cluster: &KindCluster,
    namespace: &str,
    name: &str,
    labels: serde_json::Value,
    host_network_on: Option<&str>,
) -> Subject {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "containers": [{
            "name": "probe",
            "image": probe_image(),
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
        }],
    });
    if let Some(node) = host_network_on {
        spec["hostNetwork"] = json!(true);
        spec["nodeName"] = json!(node);
    }
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    });
    // A probe pod an earlier run left behind goes first.
    cluster.run(
        "kubectl",
        &[
            "delete",
            "pod",
            "-n",
            namespace,
            name,
            "--ignore-not-found",
            "--wait=true",
        ],
        None,
    );
    cluster.run("kubectl", &["create", "-f", "-"], Some(&pod.to_string()));
    cluster.run(
        "kubectl",
        &[
            "wait",
            "-n",
            namespace,
            &format!("pod/{name}"),
            "--for=condition=Ready",
            "--timeout=180s",
        ],
        None,
    );
    Subject {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        pod: name.to_owned(),
        container: None,
    }
}

/// An ephemeral container running the probe image in a real pod of the release's namespace,
/// as that pod's user (the restricted profile: no capabilities, non-root).
async fn probe_in(cluster: &KindCluster, name: &str, pod: &str) -> Subject {
    let container = format!(
        "np-probe-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    );
    cluster.kubectl(&[
        "debug",
        &format!("pod/{pod}"),
        "-c",
        &container,
        &format!("--image={}", probe_image()),
        "--image-pull-policy=IfNotPresent",
        "--profile=restricted",
        "--",
        "sleep",
        "3600",
    ]);
    let path = format!(
        "jsonpath={{.status.ephemeralContainerStatuses[?(@.name==\"{container}\")].state.running.startedAt}}"
    );
    eventually(
        &format!("the probe container of {pod} running"),
        Duration::from_secs(120),
        || async {
            (!cluster
                .kubectl(&["get", "pod", pod, "-o", &path])
                .trim()
                .is_empty())
            .then_some(())
        },
    )
    .await;
    Subject {
        name: name.to_owned(),
        namespace: cluster.namespace.clone(),
        pod: pod.to_owned(),
        container: Some(container),
    }
}

/// A destination: an address and port, or (port 0) a name to look up.
struct Target {
    name: String,
    host: String,
    port: u16,
}

impl Target {
    fn new(name: &str, host: &str, port: u16) -> Self {
        Self {
            name: name.to_owned(),
            host: host.to_owned(),
            port,
        }
    }

    fn reached_by(&self, cluster: &KindCluster, subject: &Subject) -> bool {
        if self.port == 0 {
            subject.resolves(cluster, &self.host)
        } else {
            subject.connects(cluster, &self.host, self.port)
        }
    }
}

/// Waits until `subject` reaches `target` (a new pod's address may not be in the engine's
/// rules yet); false when it never does.
async fn reaches_eventually(cluster: &KindCluster, subject: &Subject, target: &Target) -> bool {
    let deadline = tokio::time::Instant::now() + POLICY_PROPAGATION;
    loop {
        if target.reached_by(cluster, subject) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn service(cluster: &KindCluster, namespace: &str, name: &str) -> (String, u16) {
    let out = cluster.run(
        "kubectl",
        &[
            "get",
            "service",
            "-n",
            namespace,
            name,
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[0].port}",
        ],
        None,
    );
    let mut parts = out.split_whitespace();
    let ip = parts.next().expect("a cluster IP").to_owned();
    let port = parts
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a Service port");
    (ip, port)
}

/// The pod name and address of the first pod the selector matches (in `namespace`).
fn pod_of(cluster: &KindCluster, namespace: &str, selector: &str) -> (String, String, String) {
    let out = cluster.run(
        "kubectl",
        &[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            selector,
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[0].metadata.name} {.items[0].status.podIP} {.items[0].spec.nodeName}",
        ],
        None,
    );
    let parts: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        parts.len(),
        3,
        "no running pod for {selector} in {namespace}: {out:?}"
    );
    (
        parts[0].to_owned(),
        parts[1].to_owned(),
        parts[2].to_owned(),
    )
}

/// The handler through the Ingress, unsigned: only the handler answers 401 (Traefik says
/// 404 without a route and 502/504 when it cannot reach the pods).
fn ingress_status(cluster: &KindCluster, webhook_id: &str) -> u16 {
    let request = format!(
        "POST /webhooks/{webhook_id} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        cluster.ingress_host
    );
    kind::exchange(&cluster.ingress, &request)
}

struct Row {
    from: String,
    to: String,
    expected: bool,
    measured: bool,
    control: String,
}

fn word(open: bool) -> &'static str {
    if open { "reached" } else { "denied" }
}

async fn network_policy_matrix(cluster: &KindCluster) {
    let release = &cluster.release;
    let ns = cluster.namespace.clone();
    let name = |component: &str| format!("{release}-{component}");
    let component =
        |c: &str| format!("app.kubernetes.io/instance={release},app.kubernetes.io/component={c}");

    // The targets.
    let (handler_ip, handler_port) = service(cluster, &ns, &name("handler"));
    let (_, handler_pod_ip, handler_node) = pod_of(cluster, &ns, &component("handler"));
    let (kafka_ip, kafka_port) = service(cluster, &ns, &name("kafka"));
    let (postgres_ip, postgres_port) = service(cluster, &ns, &name("postgres"));
    let (console_ip, console_port) = service(cluster, &ns, &name("console"));
    let (consumer_pod, consumer_pod_ip, consumer_node) =
        pod_of(cluster, &ns, &component("consumer"));
    let (api_ip, api_port) = service(cluster, "default", "kubernetes");
    let (_, traefik_pod_ip, _) = pod_of(cluster, "traefik", "app.kubernetes.io/name=traefik");
    let handler_svc = Target::new(
        &format!("handler Service {handler_ip}:{handler_port}"),
        &handler_ip,
        handler_port,
    );
    let handler_pod = Target::new(
        &format!("handler pod {handler_pod_ip}:8080"),
        &handler_pod_ip,
        8080,
    );
    let handler_ops = Target::new(
        &format!("handler ops {handler_pod_ip}:9090"),
        &handler_pod_ip,
        9090,
    );
    let kafka = Target::new(
        &format!("Kafka {kafka_ip}:{kafka_port}"),
        &kafka_ip,
        kafka_port,
    );
    let postgres = Target::new(
        &format!("PostgreSQL {postgres_ip}:{postgres_port}"),
        &postgres_ip,
        postgres_port,
    );
    let console = Target::new(
        &format!("console {console_ip}:{console_port}"),
        &console_ip,
        console_port,
    );
    let consumer_ops = Target::new(
        &format!("consumer ops {consumer_pod_ip}:9090"),
        &consumer_pod_ip,
        9090,
    );
    let api = Target::new(
        &format!("API server {api_ip}:{api_port}"),
        &api_ip,
        api_port,
    );
    // Traefik's web entry point: 8000 in dev/kind/manifests/traefik.yaml and in Traefik's chart.
    let traefik_web = Target::new(
        &format!("Traefik pod {traefik_pod_ip}:8000"),
        &traefik_pod_ip,
        8000,
    );
    let handler_dns_name = format!("{}.{ns}.svc.cluster.local", name("handler"));
    let dns = Target::new(&format!("DNS ({handler_dns_name})"), &handler_dns_name, 0);

    // The subjects: a stranger (no label any policy names) beside Hookline, a pod in the
    // ingress controller's namespace, a host-network pod on the consumer's node (kubelet's
    // place), and probes inside the real consumer and emitter pods.
    let stranger = probe_pod(
        cluster,
        &ns,
        "np-stranger",
        json!({"hookline-e2e": "np-stranger"}),
        None,
    );
    let ingress_side = probe_pod(
        cluster,
        "traefik",
        "np-ingress-side",
        json!({"hookline-e2e": "np-ingress-side"}),
        None,
    );
    let node_side = probe_pod(
        cluster,
        &ns,
        "np-node-side",
        json!({"hookline-e2e": "np-node-side"}),
        Some(&consumer_node),
    );
    // The kubelet's place on the handler's node: only a node reaches its own pods' ops port.
    let handler_node_side = probe_pod(
        cluster,
        &ns,
        "np-handler-node-side",
        json!({"hookline-e2e": "np-handler-node-side"}),
        Some(&handler_node),
    );
    let consumer = probe_in(cluster, "consumer pod", &consumer_pod).await;
    let (emitter_pod, _, _) = pod_of(
        cluster,
        &ns,
        "app.kubernetes.io/component=emitter,hookline.io/webhook=invoices",
    );
    let emitter = probe_in(cluster, "emitter pod (Webhook invoices)", &emitter_pod).await;

    // (subject, target, expected, the allowed subject that must reach the target of a denial)
    let plan: Vec<(&Subject, &Target, bool, Option<&Subject>)> = vec![
        (&stranger, &handler_svc, false, Some(&ingress_side)),
        (&stranger, &handler_pod, false, Some(&ingress_side)),
        (&stranger, &kafka, false, Some(&consumer)),
        (&stranger, &postgres, false, Some(&consumer)),
        (&stranger, &console, false, Some(&ingress_side)),
        (&stranger, &consumer_ops, false, Some(&node_side)),
        (&stranger, &handler_ops, false, Some(&handler_node_side)),
        (&ingress_side, &handler_ops, false, Some(&handler_node_side)),
        (&emitter, &dns, true, None),
        (&emitter, &handler_svc, true, None),
        (&emitter, &handler_pod, true, None),
        (&emitter, &handler_ops, false, Some(&handler_node_side)),
        (&emitter, &kafka, false, Some(&consumer)),
        (&emitter, &postgres, false, Some(&consumer)),
        (&emitter, &api, false, Some(&stranger)),
        (&emitter, &traefik_web, false, Some(&stranger)),
    ];

    // The positive controls and the allowed rows first: once a new pod's address is in the
    // engine's rules, the denials are measured against settled rules.
    let mut rows = Vec::new();
    for (subject, target, expected, control) in &plan {
        let control = match control {
            Some(allowed) => {
                let reached = reaches_eventually(cluster, allowed, target).await;
                format!("{}: {}", allowed.name, word(reached))
            }
            None => "-".to_owned(),
        };
        let measured = if *expected {
            reaches_eventually(cluster, subject, target).await
        } else {
            false
        };
        rows.push(Row {
            from: subject.name.clone(),
            to: target.name.clone(),
            expected: *expected,
            measured,
            control,
        });
    }
    for (row, (subject, target, expected, _)) in rows.iter_mut().zip(&plan) {
        if !expected {
            row.measured = target.reached_by(cluster, subject);
        }
    }
    let webhook_id = cluster.kubectl(&[
        "get",
        "webhook",
        "invoices",
        "-o",
        "jsonpath={.status.webhookId}",
    ]);
    let status = ingress_status(cluster, webhook_id.trim());
    rows.push(Row {
        from: format!("host {} (Host {})", cluster.ingress, cluster.ingress_host),
        to: "handler, through Traefik's Ingress".to_owned(),
        expected: true,
        measured: status == 401,
        control: format!("unsigned POST answered {status} (401 is the handler's)"),
    });

    let width = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    let (wf, wt) = (width(|r| r.from.len()), width(|r| r.to.len()));
    println!(
        "NetworkPolicy matrix (engine: {}):",
        std::env::var("HOOKLINE_KIND_POLICY_ENGINE").unwrap_or_default()
    );
    println!(
        "| {:wf$} | {:wt$} | expected | measured | positive control |",
        "from", "to"
    );
    println!(
        "| {} | {} | -------- | -------- | ---------------- |",
        "-".repeat(wf),
        "-".repeat(wt)
    );
    for row in &rows {
        println!(
            "| {:wf$} | {:wt$} | {:8} | {:8} | {} |",
            row.from,
            row.to,
            word(row.expected),
            word(row.measured),
            row.control
        );
    }

    for subject in [&stranger, &ingress_side, &node_side, &handler_node_side] {
        cluster.run(
            "kubectl",
            &[
                "delete",
                "pod",
                "-n",
                &subject.namespace,
                &subject.pod,
                "--wait=false",
            ],
            None,
        );
    }
    let wrong: Vec<&Row> = rows
        .iter()
        .filter(|r| r.expected != r.measured || r.control.ends_with("denied"))
        .collect();
    assert!(
        wrong.is_empty(),
        "NetworkPolicy matrix: {} rows differ from what the policies say (or their positive control failed): {:?}",
        wrong.len(),
        wrong
            .iter()
            .map(|r| format!("{} -> {}: {}", r.from, r.to, word(r.measured)))
            .collect::<Vec<_>>()
    );
}
