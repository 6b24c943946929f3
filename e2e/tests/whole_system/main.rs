//! The whole system on this machine, as `make run` starts it: Webhooks applied through
//! the API server, emitters delivering through nginx to three handlers, two consumers
//! storing in PostgreSQL. One test, in phases, because the phases change the system
//! (handler replicas, the consumers' injected failure rate).

use std::time::Duration;

use hookline_e2e::system::{Summary, System};
use hookline_testkit::eventually;
use serde_json::json;

const NAMESPACE: &str = "hookline-e2e";

const WAIT: Duration = Duration::from_secs(90);

/// A fast emitter with a patient retry policy, so that a refused or dropped attempt is
/// retried rather than lost.
fn spec(rate: f64) -> serde_json::Value {
    json!({
        "customerId": "e2e",
        "emitter": {"enabled": true, "ratePerSecond": rate, "replicas": 1},
        "delivery": {"retry": 10, "backoffPolicy": "exponential", "backoffDelayMs": 100, "maxBackoffDelayMs": 1000},
        "rateLimit": {"requestsPerSecond": 5000, "burst": 5000},
    })
}

async fn every_delivered_event_is_stored_once(system: &System, webhook_id: &str, summary: Summary) {
    assert_eq!(summary.failed, 0, "{summary:?}");
    assert_eq!(summary.abandoned, 0, "{summary:?}");
    assert!(summary.delivered > 0);
    let delivered = i64::try_from(summary.delivered).expect("count");
    let stored = eventually("every delivered event stored", WAIT, || async {
        let stored = system.stored(webhook_id).await;
        (stored >= delivered).then_some(stored)
    })
    .await;
    assert_eq!(
        stored, delivered,
        "rows for {webhook_id} (the primary key forbids duplicates)"
    );
}

fn post(port: u16, path: &str) -> u16 {
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    hookline_testkit::http::post(port, path, &headers, b"{}")
        .expect("the proxy answers")
        .0
}

#[tokio::test]
async fn from_kubectl_apply_to_rows_in_postgresql() {
    let system = System::start(NAMESPACE).await;

    // 1. Delivered equals stored.
    let counted = system.create_webhook("counted", spec(100.0)).await;
    system.wait_delivered("counted", 300.0).await;
    let summary = system.disable_and_collect("counted").await;
    every_delivered_event_is_stored_once(&system, &counted, summary).await;

    // 2. Handlers scaled from 3 to 5 and back to 2 during traffic: nothing lost, no
    //    failure left unretried.
    system.create_webhook("scaled", spec(150.0)).await;
    let scaled_id = system
        .webhooks
        .get("scaled")
        .await
        .expect("webhook")
        .status
        .and_then(|s| s.webhook_id)
        .expect("id");
    system.wait_delivered("scaled", 150.0).await;
    for replicas in ["5", "2"] {
        system.tool(
            "kubectl",
            &[
                "-n",
                NAMESPACE,
                "scale",
                "deployment/hookline-handler",
                &format!("--replicas={replicas}"),
            ],
        );
        system.tool(
            "kubectl",
            &[
                "-n",
                NAMESPACE,
                "rollout",
                "status",
                "deployment/hookline-handler",
                "--timeout=120s",
            ],
        );
        eventually(
            &format!("{replicas} local handler processes"),
            WAIT,
            || async {
                let handlers = system
                    .ports_of(|l| l["app.kubernetes.io/component"] == "handler", "8080")
                    .len();
                (handlers.to_string() == replicas).then_some(())
            },
        )
        .await;
        let (_, delivered, _) = system.emitter_counts("scaled");
        system.wait_delivered("scaled", delivered + 300.0).await;
    }
    let summary = system.disable_and_collect("scaled").await;
    every_delivered_event_is_stored_once(&system, &scaled_id, summary).await;
    system.tool(
        "kubectl",
        &[
            "-n",
            NAMESPACE,
            "scale",
            "deployment/hookline-handler",
            "--replicas=3",
        ],
    );

    // 3. The secret rotated during traffic: no 401 at any point (a 401 is a final failure).
    let rotated = system.create_webhook("rotated", spec(100.0)).await;
    system.wait_delivered("rotated", 200.0).await;
    system
        .patch_webhook("rotated", json!({"secretRotation": {"generation": 1}}))
        .await;
    eventually("the rotation in the status", WAIT, || async {
        let status = system.webhooks.get("rotated").await.ok()?.status?;
        (status.secret_rotation_generation == 1).then_some(())
    })
    .await;
    let (_, delivered, _) = system.emitter_counts("rotated");
    system.wait_delivered("rotated", delivered + 400.0).await;
    let summary = system.disable_and_collect("rotated").await;
    every_delivered_event_is_stored_once(&system, &rotated, summary).await;

    // 4. Suspended: the handlers refuse its events and the emitter counts the refusals.
    let suspended = system.create_webhook("suspended", spec(50.0)).await;
    system.wait_delivered("suspended", 50.0).await;
    system
        .patch_webhook("suspended", json!({"suspended": true}))
        .await;
    eventually("refusals counted by the emitter", WAIT, || async {
        (system.emitter_counts("suspended").2 >= 20.0).then_some(())
    })
    .await;
    let summary = system.disable_and_collect("suspended").await;
    assert!(
        summary.failed >= 20,
        "refusals are failures, not hidden: {summary:?}"
    );
    assert_eq!(
        summary.delivered + summary.failed + summary.abandoned,
        summary.emitted,
        "{summary:?}"
    );
    let delivered = i64::try_from(summary.delivered).expect("count");
    eventually(
        "the accepted events stored, the refused ones not",
        WAIT,
        || async { (system.stored(&suspended).await == delivered).then_some(()) },
    )
    .await;

    // 5. Failures injected into processing: every event ends stored or dead-lettered,
    //    never both, never neither; replay stores the dead letters.
    system.helm_set(&["consumer.injectFailureRate=0.3"], "hookline-consumer");
    let mut faulty_spec = spec(100.0);
    faulty_spec["delivery"] = json!({"retry": 2, "backoffPolicy": "linear", "backoffDelayMs": 100, "maxBackoffDelayMs": 200, "deadLetter": true});
    let faulty = system.create_webhook("faulty", faulty_spec).await;
    system.wait_delivered("faulty", 300.0).await;
    let summary = system.disable_and_collect("faulty").await;
    assert_eq!((summary.failed, summary.abandoned), (0, 0), "{summary:?}");
    let delivered = i64::try_from(summary.delivered).expect("count");
    let (stored, dead) = eventually("every event stored or dead-lettered", WAIT, || async {
        let (stored, dead) = (
            system.stored(&faulty).await,
            system.dead_lettered(&faulty).await,
        );
        (stored + dead >= delivered).then_some((stored, dead))
    })
    .await;
    assert_eq!(stored + dead, delivered, "stored {stored} + dead {dead}");
    assert!(
        dead > 0,
        "with 30% failures and 3 attempts some events die (expected ~3%)"
    );
    let both = system
        .count(
            "select count(*) from events e join dead_letters d using (webhook_id, message_id) where e.webhook_id = $1",
            &faulty,
        )
        .await;
    assert_eq!(both, 0, "no event both stored and dead-lettered");
    system.helm_set(&["consumer.injectFailureRate=0"], "hookline-consumer");
    let stack = hookline_testkit::stack();
    let replay = std::process::Command::new(system.bin("hookline-consumer"))
        .args(["replay", "--webhook", &faulty])
        .args(["--events-topic", &system.topics().events])
        .env("DATABASE_URL", &stack.database_url)
        .envs(
            hookline_runtime::kafka::KafkaConnection::from_vars(&stack.vars)
                .expect("the stack's Kafka settings")
                .env_vars(),
        )
        .env("HOOKLINE_LOG_FORMAT", "text")
        .output()
        .expect("run hookline-consumer replay");
    assert!(
        replay.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    eventually("the replayed dead letters stored", WAIT, || async {
        (system.stored(&faulty).await == delivered && system.dead_lettered(&faulty).await == 0)
            .then_some(())
    })
    .await;

    // 6. Deleted: the emitter goes, the handlers answer 410, the mirror says deleted.
    system
        .webhooks
        .delete("counted", &Default::default())
        .await
        .expect("delete");
    eventually("the Webhook finalized", WAIT, || async {
        system
            .webhooks
            .get_opt("counted")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    eventually("410 Gone for a deleted webhook", WAIT, || async {
        (post(system.proxy_port, &format!("/webhooks/{counted}")) == 410).then_some(())
    })
    .await;
    eventually("the webhooks row marked deleted", WAIT, || async {
        let deleted = system
            .count(
                "select count(*) from webhooks where webhook_id = $1 and status = 'deleted'",
                &counted,
            )
            .await;
        (deleted == 1).then_some(())
    })
    .await;
    assert!(
        system
            .ports_of(|l| l["hookline.io/webhook"] == "counted", "9090")
            .is_empty()
    );

    system.stop();
}
