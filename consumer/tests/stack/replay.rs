//! `hookline-consumer replay` puts dead letters back with a fresh retry budget, and
//! replaying an event that is already stored stores nothing twice.

use hookline_testkit::eventually;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_consumer::metrics::DUPLICATES;

use crate::common::{Harness, entry, policy, prototype_event};

const BIN: &str = env!("CARGO_BIN_EXE_hookline-consumer");

/// Runs the replay subcommand; returns its stdout.
async fn replay(h: &Harness, selection: &[&str]) -> String {
    let output = tokio::process::Command::new(BIN)
        .args([
            "--log-format",
            "text",
            "--database-url",
            &h.database_url,
            "replay",
        ])
        .args(h.kafka.cli_args())
        .args(["--events-topic", &h.events_topic])
        .args(selection)
        .output()
        .await
        .expect("run replay");
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn dead_letter_count(h: &Harness) -> i64 {
    sqlx::query_scalar("select count(*) from dead_letters")
        .fetch_one(&h.pool)
        .await
        .expect("count dead letters")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_stores_a_dead_letter_once() {
    let h = Harness::new("consumer-replay", 1).await;
    h.register(&entry("wh-r", policy(1, 100, true))).await;
    h.register(&entry("wh-other", policy(0, 100, true))).await;

    // Every attempt fails on purpose: one retry, then the dead-letter topic.
    let failing = h.start(&["--inject-failure-rate", "1"]).await;
    h.produce("wh-r", "m-1", &prototype_event("r1", "PAID"))
        .await;
    h.produce("wh-other", "m-2", &prototype_event("o1", "PAID"))
        .await;
    eventually("two dead letters", Duration::from_secs(15), || async {
        (dead_letter_count(&h).await >= 2).then_some(())
    })
    .await;
    failing.stop().await;
    assert_eq!(h.count_events().await, 0);

    let consumer = h.start(&[]).await;
    let future = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert!(
        replay(&h, &["--since", &future])
            .await
            .contains("replayed 0 ")
    );
    let out = replay(&h, &["--webhook", "wh-r"]).await;
    assert!(out.contains("replayed 1 dead letters"), "{out}");
    h.wait_for_events(1, Duration::from_secs(10)).await;
    let (message_id, attempts): (String, i32) =
        sqlx::query_as("select message_id, attempts from events")
            .fetch_one(&h.pool)
            .await
            .expect("the replayed event");
    assert_eq!(
        (message_id.as_str(), attempts),
        ("m-1", 1),
        "a fresh retry budget"
    );
    let replayed: Vec<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as("select webhook_id, replayed_at from dead_letters order by webhook_id")
            .fetch_all(&h.pool)
            .await
            .expect("dead letters");
    assert!(
        replayed[0].0 == "wh-other" && replayed[0].1.is_none(),
        "the filter held"
    );
    assert!(
        replayed[1].0 == "wh-r" && replayed[1].1.is_some(),
        "marked replayed"
    );
    assert!(
        replay(&h, &["--webhook", "wh-r"])
            .await
            .contains("replayed 0 ")
    );

    // Replaying what is already stored (say, a replay interrupted before it marked its
    // page) stores nothing twice.
    sqlx::query("update dead_letters set replayed_at = null where webhook_id = 'wh-r'")
        .execute(&h.pool)
        .await
        .expect("unmark");
    assert!(
        replay(&h, &["--webhook", "wh-r"])
            .await
            .contains("replayed 1 ")
    );
    eventually(
        "the second replay processed (a duplicate)",
        Duration::from_secs(10),
        || async { (consumer.metric(&DUPLICATES.exported()).await >= 1.0).then_some(()) },
    )
    .await;
    assert_eq!(h.count_events().await, 1);

    let out = replay(&h, &["--all"]).await;
    assert!(out.contains("replayed 1 "), "{out}");
    h.wait_for_events(2, Duration::from_secs(10)).await;
    consumer.stop().await;
}
