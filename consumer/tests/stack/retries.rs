//! Failed events walk the retry tiers with their delays honoured, then become dead
//! letters; fresh events never wait behind them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_consumer::metrics::{DEAD_LETTERS, DROPPED, EVENT_FAILURES, RETRIES};
use hookline_core::record_headers;
use hookline_testkit::eventually;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use sqlx::Row;

use crate::common::{
    Harness, TIER_COUNT, assert_dead_letter, entry, header_of, payload_of, policy, prototype_event,
    series,
};

fn not_before(message: &OwnedMessage) -> DateTime<Utc> {
    let text = header_of(message, record_headers::NOT_BEFORE).expect("a not-before header");
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn produced_at(message: &OwnedMessage) -> DateTime<Utc> {
    let millis = message.timestamp().to_millis().expect("a create time");
    DateTime::from_timestamp_millis(millis).expect("a valid time")
}

fn with_message_id<'m>(messages: &'m [OwnedMessage], id: &str) -> Vec<&'m OwnedMessage> {
    messages
        .iter()
        .filter(|m| header_of(m, record_headers::MESSAGE_ID) == Some(id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_walks_every_tier_then_becomes_a_dead_letter() {
    let h = Harness::new("consumer-tiers", 2).await;
    // Five retries, exponential from 100 ms: 100, 200, 400, 800, 1600 ms, one per tier.
    h.register(&entry("wh-p", policy(5, 100, true))).await;
    // One retry, then dropped: this webhook turned dead-lettering off.
    h.register(&entry("wh-q", policy(1, 100, false))).await;
    let consumer = h.start(&[]).await;

    let body = b"not json {";
    let (partition, offset) = h.produce_poison("wh-p", "poison", body).await;
    h.produce_poison("wh-q", "dropped", b"nope").await;
    h.produce("wh-p", "fresh", &prototype_event("f1", "PAID"))
        .await;
    // The fresh event is not held up by the poison one ahead of it in the same webhook.
    h.wait_for_events(1, Duration::from_secs(2)).await;

    let dead = h
        .read_topic(&h.dead_letter_topic, 1, Duration::from_secs(20))
        .await;
    let [letter] = dead.as_slice() else {
        panic!("one dead letter expected, got {}", dead.len());
    };
    assert_eq!(payload_of(letter), body);
    assert_eq!(
        header_of(letter, record_headers::MESSAGE_ID),
        Some("poison")
    );
    assert_eq!(header_of(letter, record_headers::WEBHOOK_ID), Some("wh-p"));
    assert_eq!(header_of(letter, record_headers::RETRY_COUNT), Some("5"));
    assert_dead_letter(
        letter,
        &h.events_topic,
        (partition, offset),
        6,
        "not an RFC 3339 time",
    );
    assert!(header_of(letter, record_headers::RECEIVED_AT).is_some());

    // One copy per tier, each with the delay its retry asks for, each taken up no
    // earlier than its not-before time (and not much later).
    let mut previous: Option<DateTime<Utc>> = None;
    for tier in 0..TIER_COUNT {
        let expected = if tier == 0 { 2 } else { 1 };
        // Every copy is in its tier by now (the dead letter came last): read as many as
        // the tier holds, so a connection slow to start (TLS, SCRAM) cannot hide one.
        let held = usize::try_from(h.records_in(&h.tier_topic(tier)).await).expect("a count");
        let copies = h
            .read_topic(&h.tier_topic(tier), held, Duration::from_secs(20))
            .await;
        assert_eq!(copies.len(), expected, "copies in tier {tier}");
        let poison = with_message_id(&copies, "poison");
        let [copy] = poison.as_slice() else {
            panic!("tier {tier}: one copy of the poison event");
        };
        assert_eq!(payload_of(copy), body);
        assert_eq!(
            header_of(copy, record_headers::RETRY_COUNT),
            Some((tier + 1).to_string().as_str())
        );
        assert_eq!(
            header_of(copy, record_headers::ORIGIN_OFFSET),
            Some(offset.to_string().as_str())
        );
        let delay = (not_before(copy) - produced_at(copy)).num_milliseconds();
        let wanted = 100 << tier;
        assert!(
            (wanted - 150..=wanted + 2).contains(&delay),
            "tier {tier}: not-before {delay} ms after the copy, policy says {wanted} ms"
        );
        if let Some(due) = previous {
            let late = (produced_at(copy) - due).num_milliseconds();
            assert!(
                (0..1_000).contains(&late),
                "tier {tier}: the previous copy was processed {late} ms after it was due"
            );
        }
        previous = Some(not_before(copy));
    }
    let late = (produced_at(letter) - previous.expect("five tiers")).num_milliseconds();
    assert!(
        (0..1_000).contains(&late),
        "dead-lettered {late} ms after due"
    );

    let row = sqlx::query(
        "select webhook_id, message_id, attempts, reason, origin_topic, origin_partition, \
                origin_offset, payload, headers, replayed_at from dead_letters",
    )
    .fetch_one(&h.pool)
    .await
    .expect("one dead_letters row");
    assert_eq!(row.get::<String, _>("webhook_id"), "wh-p");
    assert_eq!(row.get::<String, _>("message_id"), "poison");
    assert_eq!(row.get::<i32, _>("attempts"), 6);
    assert!(
        row.get::<String, _>("reason")
            .contains("not an RFC 3339 time")
    );
    assert_eq!(row.get::<String, _>("origin_topic"), h.events_topic);
    assert_eq!(row.get::<i32, _>("origin_partition"), partition);
    assert_eq!(row.get::<i64, _>("origin_offset"), offset);
    assert_eq!(row.get::<Vec<u8>, _>("payload"), body);
    let stored_headers: serde_json::Value = row.get("headers");
    assert_eq!(stored_headers[record_headers::MESSAGE_ID], "poison");
    assert!(stored_headers.get(record_headers::ERROR).is_none());
    assert!(row.get::<Option<DateTime<Utc>>, _>("replayed_at").is_none());

    // The webhook without dead-lettering: one retry, then counted and dropped.
    assert_eq!(consumer.metric_sum(DROPPED).await, 1.0);
    assert_eq!(consumer.metric_sum(DEAD_LETTERS).await, 1.0);
    assert_eq!(consumer.metric(&series(RETRIES, r#"tier="0""#)).await, 2.0);
    for tier in 1..TIER_COUNT {
        let sample = series(RETRIES, &format!(r#"tier="{tier}""#));
        assert_eq!(consumer.metric(&sample).await, 1.0, "{sample}");
    }
    assert_eq!(h.count_events().await, 1);
    consumer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_for_a_webhook_the_registry_learns_late_is_stored_on_retry() {
    let h = Harness::new("consumer-late", 1).await;
    let consumer = h.start(&[]).await;
    // Not in the registry yet: the default policy retries after 1 s.
    h.produce("wh-late", "m-1", &prototype_event("l1", "CREATED"))
        .await;
    // Registered only once its first attempt failed (under load, a fixed pause let the
    // entry arrive before the event was first read, and it was stored at once).
    let unknown = &series(EVENT_FAILURES, r#"reason="unknown_webhook""#);
    eventually(
        "the first attempt refused",
        Duration::from_secs(10),
        || async { (consumer.metric(unknown).await == 1.0).then_some(()) },
    )
    .await;
    h.register(&entry("wh-late", policy(3, 100, true))).await;
    h.wait_for_events(1, Duration::from_secs(10)).await;
    let attempts: i32 = sqlx::query_scalar("select attempts from events")
        .fetch_one(&h.pool)
        .await
        .expect("the event");
    // Stored by a retry: the first one, unless the registry update took longer than the
    // retry delay to be read, then a later one; each earlier attempt counted as a failure.
    assert!(attempts >= 2, "stored by a retry, not at once: {attempts}");
    assert_eq!(
        consumer.metric(unknown).await,
        f64::from(attempts - 1),
        "one failure per attempt before the one that stored it"
    );
    consumer.stop().await;
}
