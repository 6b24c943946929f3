//! The user's own path on the kind cluster of `make kind-up` (run by `make kind-test`):
//! Webhooks applied with kubectl, events signed with their secrets sent through the Ingress
//! and by an emitter pod, the handler scaled up and down, the emitter scaled through the
//! Webhook, a handler and a consumer pod deleted, a `helm upgrade` — all during traffic —
//! then every accepted event is counted in the cluster's PostgreSQL, exactly once. Last,
//! `helm uninstall` must leave nothing of Hookline but the CRD.

use std::time::Duration;

use hookline_e2e::kind::{EmitterLogs, KindCluster, Sender};
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
    let users = cluster.kubectl(&[
        "get",
        "secret",
        &format!("{}-console", cluster.release),
        "-o",
        "jsonpath={.data.users}",
    ]);
    let users = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, users.trim())
            .expect("base64 users"),
    )
    .expect("UTF-8 users");
    let admin = users
        .lines()
        .find_map(|line| line.strip_prefix("admin:operator:"))
        .expect("the generated admin");
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
