//! Events are stored exactly as expected, once, and the registry is mirrored.

use hookline_testkit::eventually;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_consumer::metrics::{CONSUMED, DEAD_LETTERS, DUPLICATES, EVENT_FAILURES, LAG, STORED};
use hookline_core::record_headers;
use hookline_core::retry::DeliveryPolicy;
use sqlx::Row;

use crate::common::{
    Harness, assert_dead_letter, entry, header_of, payload_of, policy, prototype_event, series,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_stored_exactly_once_and_the_registry_is_mirrored() {
    let h = Harness::new("consumer-happy", 3).await;
    h.register(&entry("wh-a", DeliveryPolicy::default())).await;
    h.register(&entry("wh-b", DeliveryPolicy::default())).await;
    let consumer = h.start(&[]).await;

    let mut expected = Vec::new();
    for i in 0..20 {
        let webhook = if i % 2 == 0 { "wh-a" } else { "wh-b" };
        let event_type = ["CREATED", "PENDING", "PAID", "FAILED"][i % 4];
        let message_id = format!("msg-{i:02}");
        h.produce(
            webhook,
            &message_id,
            &prototype_event(&format!("e{i:02}"), event_type),
        )
        .await;
        expected.push((
            webhook.to_owned(),
            message_id.clone(),
            message_id,
            event_type.to_owned(),
        ));
    }
    // The same message produced again (a handler retry after a lost ack) and a plain
    // JSON array (any JSON is an event).
    h.produce("wh-a", "msg-00", &prototype_event("e00", "CREATED"))
        .await;
    h.produce("wh-b", "msg-array", b"[1,2,3]").await;
    h.wait_for_events(21, Duration::from_secs(20)).await;
    // Give a second copy time to show up, if the idempotency key failed.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rows = sqlx::query(
        "select webhook_id, message_id, event_id, event_type, source_timestamp, \
                attempts, body, payload, received_at, stored_at \
         from events where message_id <> 'msg-array' order by message_id",
    )
    .fetch_all(&h.pool)
    .await
    .expect("read events");
    assert_eq!(rows.len(), 20, "one row per message, the repeat included");
    for (row, (webhook, message_id, event_id, event_type)) in rows.iter().zip(&expected) {
        assert_eq!(row.get::<String, _>("webhook_id"), *webhook);
        assert_eq!(row.get::<String, _>("message_id"), *message_id);
        assert_eq!(
            row.get::<Option<String>, _>("event_id").as_deref(),
            Some(event_id.as_str())
        );
        assert_eq!(
            row.get::<Option<String>, _>("event_type").as_deref(),
            Some(event_type.as_str())
        );
        assert_eq!(
            row.get::<Option<DateTime<Utc>>, _>("source_timestamp")
                .map(|t| t.to_rfc3339()),
            Some("2026-03-01T10:00:00+00:00".to_owned())
        );
        assert_eq!(row.get::<i32, _>("attempts"), 1);
        let payload: serde_json::Value = row.get("payload");
        let body: Vec<u8> = row.get("body");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).ok(),
            Some(payload)
        );
        let received: DateTime<Utc> = row.get("received_at");
        let stored: DateTime<Utc> = row.get("stored_at");
        assert!(received <= stored && stored - received < chrono::Duration::seconds(10));
    }
    let array: serde_json::Value =
        sqlx::query_scalar("select payload from events where message_id = 'msg-array'")
            .fetch_one(&h.pool)
            .await
            .expect("the array event");
    assert_eq!(array, serde_json::json!([1, 2, 3]));
    assert_eq!(
        consumer.metric(&series(STORED, r#"webhook="wh-a""#)).await,
        10.0
    );
    assert_eq!(
        consumer.metric(&series(STORED, r#"webhook="wh-b""#)).await,
        11.0
    );
    assert_eq!(consumer.metric(&DUPLICATES.exported()).await, 1.0);
    assert_eq!(
        consumer
            .metric(&series(CONSUMED, r#"source="events""#))
            .await,
        22.0
    );

    // Lag comes from librdkafka's statistics (every 5 s): caught up, it is zero.
    let lag = |partition: i32| {
        series(
            LAG,
            &format!(r#"topic="{}",partition="{partition}""#, h.events_topic),
        )
    };
    eventually(
        "lag reported as caught up on every partition",
        Duration::from_secs(15),
        || async {
            let body = consumer.metrics_text().await;
            (0..3)
                .all(|p| hookline_testkit::prometheus::sample(&body, &lag(p)) == Some(0.0))
                .then_some(())
        },
    )
    .await;

    // The mirror: both webhooks, no secrets anywhere; a deletion record marks one deleted.
    let webhooks: Vec<(String, String, String)> =
        sqlx::query_as("select webhook_id, status, customer_id from webhooks order by 1")
            .fetch_all(&h.pool)
            .await
            .expect("read webhooks");
    assert_eq!(
        webhooks,
        [
            ("wh-a".into(), "active".into(), "ben@webhooksystem".into()),
            ("wh-b".into(), "active".into(), "ben@webhooksystem".into())
        ]
    );
    let secret_columns: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.columns \
         where table_schema = 'public' and column_name like '%secret%'",
    )
    .fetch_one(&h.pool)
    .await
    .expect("columns");
    assert_eq!(secret_columns, 0);
    let mirrored: String = sqlx::query_scalar("select row_to_json(w)::text from webhooks w")
        .fetch_one(&h.pool)
        .await
        .expect("a row");
    assert!(!mirrored.contains("whsec_"), "{mirrored}");

    h.unregister("wh-b").await;
    eventually("the deletion mirrored", Duration::from_secs(10), || async {
        let status: String =
            sqlx::query_scalar("select status from webhooks where webhook_id = 'wh-b'")
                .fetch_one(&h.pool)
                .await
                .expect("status");
        (status == "deleted").then_some(())
    })
    .await;
    // An event of a deleted webhook was accepted while it existed: it is stored.
    h.produce("wh-b", "msg-late", b"{}").await;
    h.wait_for_events(22, Duration::from_secs(10)).await;
    consumer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_postgres_refuses_is_dead_lettered_and_its_batch_is_stored() {
    let h = Harness::new("consumer-refused", 1).await;
    h.register(&entry("wh-z", policy(0, 100, true))).await;
    let consumer = h.start(&["--batch-max-wait", "300ms"]).await;

    // A text column cannot hold NUL: PostgreSQL refuses that row alone (SQLSTATE
    // 22021). Bodies are bytes: JSON that jsonb cannot hold (\u0000, a lone surrogate,
    // numbers beyond numeric's range) and bodies that are not JSON at all are stored
    // as received, with a null payload.
    h.produce("wh-z", "good-1", b"{\"n\":1}").await;
    let (partition, offset) = h.produce("wh-z", "nul\0id", b"{\"n\":0}").await;
    h.produce("wh-z", "good-2", b"{\"n\":2}").await;
    h.produce("wh-z", "huge-number", br#"{"amount":1e999999}"#)
        .await;
    h.produce("wh-z", "lone-surrogate", br#"{"name":"\ud800"}"#)
        .await;
    h.produce("wh-z", "not-json", b"<xml/>").await;
    h.produce("wh-z", "nul-json", br#"{"note":"\u0000"}"#).await;
    h.produce("wh-z", "tiny-number", br#"[1e-16384]"#).await;
    h.wait_for_events(7, Duration::from_secs(20)).await;

    let dead = h
        .read_topic(&h.dead_letter_topic, 1, Duration::from_secs(20))
        .await;
    assert_eq!(
        dead.len(),
        1,
        "the refused event is a dead letter (no retries in its policy)"
    );
    let nul = &dead[0];
    assert_eq!(header_of(nul, record_headers::MESSAGE_ID), Some("nul\0id"));
    assert_eq!(payload_of(nul), b"{\"n\":0}");
    assert_dead_letter(
        nul,
        &h.events_topic,
        (partition, offset),
        1,
        "PostgreSQL cannot store",
    );

    let stored: Vec<(String, Vec<u8>, Option<serde_json::Value>)> =
        sqlx::query_as("select message_id, body, payload from events order by 1")
            .fetch_all(&h.pool)
            .await
            .expect("events");
    let expected: [(&str, &[u8], Option<serde_json::Value>); 7] = [
        ("good-1", b"{\"n\":1}", Some(serde_json::json!({"n": 1}))),
        ("good-2", b"{\"n\":2}", Some(serde_json::json!({"n": 2}))),
        ("huge-number", br#"{"amount":1e999999}"#, None),
        ("lone-surrogate", br#"{"name":"\ud800"}"#, None),
        ("not-json", b"<xml/>", None),
        ("nul-json", br#"{"note":"\u0000"}"#, None),
        ("tiny-number", br#"[1e-16384]"#, None),
    ];
    assert_eq!(stored.len(), expected.len());
    for ((id, body, payload), (want_id, want_body, want_payload)) in stored.iter().zip(&expected) {
        assert_eq!((id.as_str(), body.as_slice()), (*want_id, *want_body));
        assert_eq!(payload, want_payload, "{id}");
    }
    let dead_rows: Vec<(String, i32, String)> =
        sqlx::query_as("select message_id, attempts, reason from dead_letters")
            .fetch_all(&h.pool)
            .await
            .expect("dead letters");
    assert_eq!(dead_rows.len(), 1);
    assert_eq!(
        (dead_rows[0].0.as_str(), dead_rows[0].1),
        ("nul\u{fffd}id", 1)
    );
    assert!(
        dead_rows[0].2.contains("PostgreSQL cannot store"),
        "{}",
        dead_rows[0].2
    );
    assert_eq!(
        consumer
            .metric(&series(EVENT_FAILURES, r#"reason="unstorable""#))
            .await,
        1.0
    );
    assert_eq!(consumer.metric_sum(DEAD_LETTERS).await, 1.0);
    consumer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_of_one_partition_written_side_by_side_are_stored_once() {
    // One partition, as one busy Webhook's events are: the batch is split by key into
    // four transactions, and every copy of a key must go to the same one.
    let h = Harness::new("consumer-key-split", 1).await;
    h.register(&entry("wh-k", DeliveryPolicy::default())).await;
    // Produced before the consumer starts, so they arrive together: repeats within a batch.
    for i in 0..30 {
        let message_id = format!("m-{i:02}");
        for _ in 0..2 {
            h.produce("wh-k", &message_id, &prototype_event(&message_id, "PAID"))
                .await;
        }
    }
    let consumer = h
        .start(&[
            "--batch-max-wait",
            "1s",
            "--database-parallel-transactions",
            "4",
            "--database-max-connections",
            "10",
        ])
        .await;
    h.wait_for_events(30, Duration::from_secs(20)).await;
    // Repeats in a later batch, and one new message.
    for i in 0..10 {
        let message_id = format!("m-{i:02}");
        h.produce("wh-k", &message_id, &prototype_event(&message_id, "PAID"))
            .await;
    }
    h.produce("wh-k", "m-30", &prototype_event("m-30", "PAID"))
        .await;
    eventually(
        "every record consumed and settled",
        Duration::from_secs(20),
        || async {
            let settled =
                consumer.metric_sum(STORED).await + consumer.metric(&DUPLICATES.exported()).await;
            (settled >= 71.0).then_some(())
        },
    )
    .await;
    assert_eq!(h.count_events().await, 31, "one row per message");
    assert_eq!(consumer.metric_sum(STORED).await, 31.0);
    assert_eq!(
        consumer.metric(&DUPLICATES.exported()).await,
        40.0,
        "30 repeats within the first batch, 10 in a later one"
    );
    consumer.stop().await;
}
