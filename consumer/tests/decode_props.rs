//! Property tests of the decoder of Kafka records (`event::decode`): whatever bytes a
//! record holds, nothing panics; what decodes is exactly what the record said, with a
//! body that is JSON; what is missing or garbled is a named error.

use hookline_consumer::event::{Consumed, EventError, decode};
use hookline_core::event_record::{EventRecord, RecordError};
use hookline_core::record_headers;
use proptest::prelude::*;

fn consumed(key: Option<Vec<u8>>, headers: Vec<(String, Vec<u8>)>, payload: Vec<u8>) -> Consumed {
    Consumed {
        topic: "hookline.events".into(),
        partition: 0,
        offset: 7,
        record: EventRecord {
            key: key.map(Into::into),
            payload: payload.into(),
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        },
    }
}

/// Header names the consumer reads, and some it does not know.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(record_headers::WEBHOOK_ID.to_owned()),
        Just(record_headers::MESSAGE_ID.to_owned()),
        Just(record_headers::RECEIVED_AT.to_owned()),
        Just(record_headers::RETRY_COUNT.to_owned()),
        Just(record_headers::NOT_BEFORE.to_owned()),
        Just(record_headers::ORIGIN_TOPIC.to_owned()),
        Just(record_headers::ORIGIN_PARTITION.to_owned()),
        Just(record_headers::ORIGIN_OFFSET.to_owned()),
        "[a-z-]{1,20}",
    ]
}

/// Header values: arbitrary bytes, plausible text, times, numbers.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        Just(b"2026-11-29T12:00:00Z".to_vec()),
        "-?[0-9]{1,25}".prop_map(String::into_bytes),
    ]
}

/// Bodies: arbitrary bytes, JSON-looking text, deeply nested arrays.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        r#"\{"event_id":"[a-z0-9]{0,8}","timestamp":"[ -~]{0,30}","data":\{"invoice_id":[0-9]{1,5}\}\}"#
            .prop_map(String::into_bytes),
        (1usize..5000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
    ]
}

fn valid_headers() -> Vec<(String, Vec<u8>)> {
    vec![
        (record_headers::WEBHOOK_ID.into(), b"wh-1".to_vec()),
        (record_headers::MESSAGE_ID.into(), b"msg-1".to_vec()),
        (
            record_headers::RECEIVED_AT.into(),
            b"2026-11-29T12:00:00Z".to_vec(),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any record: no panic; a decoded row repeats the record's own ids and its body
    /// byte for byte, and holds it as JSON text only when it is JSON.
    #[test]
    fn any_record_decodes_faithfully_or_is_a_named_error(
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
        headers in prop::collection::vec((header_name(), header_value()), 0..10),
        payload in body(),
    ) {
        let record = consumed(key, headers, payload.clone());
        match decode(&record) {
            Ok(row) => {
                prop_assert_eq!(Some(row.webhook_id.as_str()), record.record.webhook_id());
                prop_assert_eq!(Some(row.message_id.as_str()), record.record.header(record_headers::MESSAGE_ID));
                prop_assert!(!row.message_id.is_empty());
                prop_assert_eq!(row.body.as_slice(), payload.as_slice());
                if let Some(json) = &row.payload {
                    prop_assert_eq!(json.as_bytes(), payload.as_slice());
                    prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_ok());
                }
                prop_assert!(row.attempts >= 1);
            }
            Err(err) => prop_assert!(!err.reason().is_empty() && !err.to_string().is_empty()),
        }
    }

    /// Good headers and a body that is not JSON: an event all the same, kept as bytes.
    #[test]
    fn bodies_that_are_not_json_are_kept_as_bytes(payload in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assume!(serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err());
        let record = consumed(None, valid_headers(), payload.clone());
        let row = decode(&record).expect("a body that is not JSON is still an event");
        prop_assert_eq!(row.body, payload);
        prop_assert_eq!(row.payload, None);
    }

    /// Each required header left out, or garbled, is named.
    #[test]
    fn a_missing_or_garbled_required_header_is_named(
        drop in 0usize..3,
        garbage in prop::collection::vec(any::<u8>(), 0..30),
    ) {
        let mut without = valid_headers();
        let (name, _) = without.remove(drop);
        let record = consumed(None, without, br#"{"event_id":"e"}"#.to_vec());
        let named = match decode(&record) {
            Err(EventError::Record(RecordError::MissingHeader(missing))) => missing == name,
            _ => false,
        };
        prop_assert!(named, "dropping {} is not reported", name);

        let mut garbled = valid_headers();
        garbled[2].1 = garbage.clone();
        let record = consumed(None, garbled, b"{}".to_vec());
        let time_ok = std::str::from_utf8(&garbage)
            .ok()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).is_ok());
        if !time_ok {
            prop_assert!(decode(&record).is_err());
        }
    }
}
