//! Records no handler would write: no headers, garbage headers, bytes that are not
//! UTF-8, payloads that are not JSON, on the events topic and straight on a retry tier.
//! Those without the handler's required headers end as dead letters with a reason;
//! those with them are events whatever their body, stored as received; the consumer
//! keeps running and storing.

use std::time::Duration;

use hookline_core::record_headers;
use hookline_runtime::kafka::reliable_producer_config;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::common::{Harness, entry, header_of, policy, prototype_event};

struct Bad {
    /// Whether the record has what an event needs (and so is stored, not dead).
    storable: bool,
    topic: String,
    key: Option<&'static str>,
    headers: Vec<(&'static str, &'static [u8])>,
    payload: &'static [u8],
}

#[tokio::test]
async fn garbage_records_become_dead_letters_with_a_reason_and_the_consumer_carries_on() {
    let h = Harness::new("consumer-bad", 1).await;
    h.register(&entry("wh-b", policy(1, 100, true))).await;
    let consumer = h.start(&[]).await;
    let producer: FutureProducer =
        reliable_producer_config(&h.kafka, "bad-records", Duration::from_secs(10))
            .create()
            .expect("producer");

    let received_at = b"2026-11-29T12:00:00Z";
    let records = [
        // No headers at all, a JSON body: no message id.
        Bad {
            storable: false,
            topic: h.events_topic.clone(),
            key: Some("wh-b"),
            headers: vec![],
            payload: br#"{"event_id":"e1"}"#,
        },
        // Garbage in every header the consumer reads.
        Bad {
            storable: false,
            topic: h.events_topic.clone(),
            key: Some("wh-b"),
            headers: vec![
                (record_headers::WEBHOOK_ID, b"wh-b"),
                (record_headers::MESSAGE_ID, b"bad-times"),
                (record_headers::RECEIVED_AT, b"yesterday"),
                (record_headers::RETRY_COUNT, b"lots"),
                (record_headers::NOT_BEFORE, b"soon"),
                (record_headers::ORIGIN_OFFSET, b"-x"),
            ],
            payload: br#"{"event_id":"e2"}"#,
        },
        // Header values and payload that are not UTF-8: the required headers are
        // good, so it is an event.
        Bad {
            storable: true,
            topic: h.events_topic.clone(),
            key: Some("wh-b"),
            headers: vec![
                (record_headers::WEBHOOK_ID, b"wh-b"),
                (record_headers::MESSAGE_ID, b"not-utf8"),
                (record_headers::RECEIVED_AT, received_at),
                (record_headers::SCHEME, b"\xff\xfe"),
            ],
            payload: b"\xff\xfe\x00{",
        },
        // Straight onto a retry tier: a negative retry count, a not-before that is no
        // time, and a body that is not JSON: an event too, taken up at once.
        Bad {
            storable: true,
            topic: h.tier_topic(0),
            key: Some("wh-b"),
            headers: vec![
                (record_headers::WEBHOOK_ID, b"wh-b"),
                (record_headers::MESSAGE_ID, b"tier-garbage"),
                (record_headers::RECEIVED_AT, received_at),
                (record_headers::RETRY_COUNT, b"-1"),
                (record_headers::NOT_BEFORE, b"\x00\x01"),
            ],
            payload: b"<xml/>",
        },
        // No key and no headers: nobody's event.
        Bad {
            storable: false,
            topic: h.events_topic.clone(),
            key: None,
            headers: vec![],
            payload: b"not json",
        },
    ];
    for bad in &records {
        let mut record_headers = OwnedHeaders::new();
        for (name, value) in &bad.headers {
            record_headers = record_headers.insert(Header {
                key: name,
                value: Some(*value),
            });
        }
        let mut record = FutureRecord::<str, [u8]>::to(&bad.topic)
            .payload(bad.payload)
            .headers(record_headers);
        if let Some(key) = bad.key {
            record = record.key(key);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(err, _)| err)
            .expect("bad record acknowledged");
    }
    h.produce("wh-b", "good-after", &prototype_event("g1", "PAID"))
        .await;

    let unstorable = records.iter().filter(|bad| !bad.storable).count();
    let storable = i64::try_from(records.len() - unstorable).expect("count");
    h.wait_for_events(1 + storable, Duration::from_secs(20))
        .await;
    let dead = h
        .read_topic(
            &h.dead_letter_topic,
            unstorable + 1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        dead.len(),
        unstorable,
        "one dead letter per unstorable record"
    );
    for letter in &dead {
        let reason = header_of(letter, record_headers::ERROR).unwrap_or_default();
        assert!(!reason.is_empty(), "every dead letter says why");
    }
    let rows: i64 = sqlx::query_scalar("select count(*) from dead_letters")
        .fetch_one(&h.pool)
        .await
        .expect("count dead letters");
    assert_eq!(rows, i64::try_from(unstorable).expect("count"));
    let stored: Vec<(String, Vec<u8>)> =
        sqlx::query_as("select message_id, body from events order by message_id")
            .fetch_all(&h.pool)
            .await
            .expect("events");
    assert_eq!(
        stored,
        [
            ("good-after".to_owned(), prototype_event("g1", "PAID")),
            ("not-utf8".to_owned(), b"\xff\xfe\x00{".to_vec()),
            ("tier-garbage".to_owned(), b"<xml/>".to_vec()),
        ]
    );

    // Still alive and still storing.
    h.produce("wh-b", "good-last", &prototype_event("g2", "PAID"))
        .await;
    h.wait_for_events(2 + storable, Duration::from_secs(20))
        .await;
    consumer.stop().await;
}
