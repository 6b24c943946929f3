//! One consumed Kafka record and what it says: the handler's metadata in headers and
//! the raw body as the event. Pure, so every rule is unit tested without a broker.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use hookline_core::headers;
use rdkafka::Message;
use rdkafka::message::Headers;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

/// A Kafka partition, named by topic and number.
pub type PartitionKey = (String, i32);

/// A record copied out of the consumer, so it can wait in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Where an event first entered the events topic. Retry copies carry it along, so a
/// dead letter is identified by it however many copies were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl Consumed {
    pub fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|all| {
                all.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        }
    }

    pub fn partition_key(&self) -> PartitionKey {
        (self.topic.clone(), self.partition)
    }

    /// The value of header `name` as UTF-8 (the last one if it repeats).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The webhook id from its header, else from the record key (the handler sets both).
    pub fn webhook_id(&self) -> Option<&str> {
        self.header(headers::WEBHOOK_ID)
            .or_else(|| {
                self.key
                    .as_deref()
                    .and_then(|k| std::str::from_utf8(k).ok())
            })
            .filter(|id| !id.is_empty())
    }

    /// Retries done so far. A missing or unreadable header counts as none, so a bad
    /// header cannot make an event retry forever: the copy gets a valid one.
    pub fn retries_done(&self) -> u32 {
        self.header(headers::RETRY_COUNT)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The earliest time a retry copy may be processed, if it says.
    pub fn not_before(&self) -> Option<DateTime<Utc>> {
        self.header(headers::NOT_BEFORE).and_then(parse_time)
    }

    /// The origin headers when all three are present and valid, else this record itself.
    pub fn origin(&self) -> Origin {
        let carried = (|| {
            Some(Origin {
                topic: self.header(headers::ORIGIN_TOPIC)?.to_owned(),
                partition: self.header(headers::ORIGIN_PARTITION)?.parse().ok()?,
                offset: self.header(headers::ORIGIN_OFFSET)?.parse().ok()?,
            })
        })();
        carried.unwrap_or_else(|| Origin {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        })
    }
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An event ready for the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub webhook_id: String,
    pub message_id: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub source_timestamp: Option<DateTime<Utc>>,
    pub invoice_id: Option<String>,
    /// The body, known to be JSON.
    pub payload: String,
    pub received_at: DateTime<Utc>,
    pub attempts: i32,
}

/// Why an event cannot be stored. Each of these goes the retry way, never the outage way.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EventError {
    #[error("the event has no {0} header")]
    MissingHeader(&'static str),
    #[error("header {name} is not {expected}")]
    InvalidHeader {
        name: &'static str,
        expected: &'static str,
    },
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    #[error("field `timestamp` is not an RFC 3339 time")]
    BadTimestamp,
    #[error("webhook {0} is not in the registry")]
    UnknownWebhook(String),
    #[error("PostgreSQL cannot store the event: {0}")]
    Unstorable(String),
    #[error("failure injected by --inject-failure-rate")]
    Injected,
}

impl EventError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::NotJson(_) => "not_json",
            Self::BadTimestamp => "bad_timestamp",
            Self::UnknownWebhook(_) => "unknown_webhook",
            Self::Unstorable(_) => "unstorable",
            Self::Injected => "injected",
        }
    }
}

/// Reads the event a record carries. Any JSON is accepted; the prototype's fields
/// (`event_id`, `event_type`, `timestamp`, `data.invoice_id`) are extracted when they
/// are strings. One rule rejects: a `timestamp` string that is not RFC 3339, since the
/// prototype's contract promises RFC 3339 and a wrong time would be stored as true.
pub fn decode(consumed: &Consumed) -> Result<EventRow, EventError> {
    let webhook_id = consumed
        .webhook_id()
        .ok_or(EventError::MissingHeader(headers::WEBHOOK_ID))?;
    let message_id = consumed
        .header(headers::MESSAGE_ID)
        .filter(|id| !id.is_empty())
        .ok_or(EventError::MissingHeader(headers::MESSAGE_ID))?;
    let received_at = consumed
        .header(headers::RECEIVED_AT)
        .ok_or(EventError::MissingHeader(headers::RECEIVED_AT))
        .and_then(|value| {
            parse_time(value).ok_or(EventError::InvalidHeader {
                name: headers::RECEIVED_AT,
                expected: "an RFC 3339 time",
            })
        })?;
    let text = std::str::from_utf8(&consumed.payload)
        .map_err(|_| EventError::NotJson("the body is not UTF-8".into()))?;
    let fields: PrototypeFields<'_> =
        serde_json::from_str(text).map_err(|err| EventError::NotJson(err.to_string()))?;
    let source_timestamp = match fields.timestamp {
        Some(value) => Some(parse_time(&value).ok_or(EventError::BadTimestamp)?),
        None => None,
    };
    let attempts = i32::try_from(consumed.retries_done().saturating_add(1)).unwrap_or(i32::MAX);
    Ok(EventRow {
        webhook_id: webhook_id.to_owned(),
        message_id: message_id.to_owned(),
        event_id: fields.event_id.map(Cow::into_owned),
        event_type: fields.event_type.map(Cow::into_owned),
        source_timestamp,
        invoice_id: fields.invoice_id.map(Cow::into_owned),
        payload: text.to_owned(),
        received_at,
        attempts,
    })
}

/// The prototype's fields of any JSON document, read in one pass without building a
/// tree (a 1 KiB body costs microseconds): string values are taken, others ignored.
#[derive(Debug, Default, PartialEq)]
struct PrototypeFields<'a> {
    event_id: Option<Cow<'a, str>>,
    event_type: Option<Cow<'a, str>>,
    timestamp: Option<Cow<'a, str>>,
    invoice_id: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for PrototypeFields<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldsVisitor { nested: false })
    }
}

/// Visits the top-level document (`nested: false`) or the `data` object (`nested: true`).
struct FieldsVisitor {
    nested: bool,
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = PrototypeFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = PrototypeFields::default();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let key = key.unwrap_or_default();
            match (self.nested, key.as_ref()) {
                (false, "event_id") => fields.event_id = map.next_value::<Text<'de>>()?.0,
                (false, "event_type") => fields.event_type = map.next_value::<Text<'de>>()?.0,
                (false, "timestamp") => fields.timestamp = map.next_value::<Text<'de>>()?.0,
                (false, "data") => {
                    let data = map.next_value_seed(NestedSeed)?;
                    fields.invoice_id = data.invoice_id;
                }
                (true, "invoice_id") => fields.invoice_id = map.next_value::<Text<'de>>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(PrototypeFields::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(PrototypeFields::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(PrototypeFields::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(PrototypeFields::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(PrototypeFields::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(PrototypeFields::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(PrototypeFields::default())
    }
}

struct NestedSeed;

impl<'de> de::DeserializeSeed<'de> for NestedSeed {
    type Value = PrototypeFields<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(FieldsVisitor { nested: true })
    }
}

/// A string value (borrowed from the body when it has no escapes), or nothing for any
/// other JSON value, which is read and ignored.
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Borrowed(value))))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(value.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(value))))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record as the handler produces it.
    pub(crate) fn consumed(payload: &str) -> Consumed {
        Consumed {
            topic: "hookline.events".into(),
            partition: 2,
            offset: 41,
            key: Some(b"wh-1".to_vec()),
            payload: payload.as_bytes().to_vec(),
            headers: vec![
                (headers::WEBHOOK_ID.into(), b"wh-1".to_vec()),
                (headers::MESSAGE_ID.into(), b"msg-1".to_vec()),
                (
                    headers::RECEIVED_AT.into(),
                    b"2026-03-01T10:00:00.250Z".to_vec(),
                ),
                (headers::SCHEME.into(), b"standard".to_vec()),
                (headers::CONTENT_TYPE.into(), b"application/json".to_vec()),
            ],
        }
    }

    const PROTOTYPE: &str = r#"{"event_id":"e-1","event_type":"PAID","timestamp":"2026-03-01T09:59:59Z","data":{"invoice_id":"inv-7","amount":3}}"#;

    #[test]
    fn the_prototype_event_fills_its_columns() {
        let row = decode(&consumed(PROTOTYPE)).unwrap();
        assert_eq!(row.webhook_id, "wh-1");
        assert_eq!(row.message_id, "msg-1");
        assert_eq!(row.event_id.as_deref(), Some("e-1"));
        assert_eq!(row.event_type.as_deref(), Some("PAID"));
        assert_eq!(row.invoice_id.as_deref(), Some("inv-7"));
        assert_eq!(
            row.source_timestamp.unwrap().to_rfc3339(),
            "2026-03-01T09:59:59+00:00"
        );
        assert_eq!(row.received_at.timestamp_subsec_millis(), 250);
        assert_eq!(row.payload, PROTOTYPE);
        assert_eq!(row.attempts, 1);
    }

    #[test]
    fn any_json_is_an_event_and_odd_field_types_are_ignored() {
        for body in [
            "[1,2]",
            "\"text\"",
            "42",
            "null",
            "true",
            r#"{"x":{"y":[]}}"#,
        ] {
            let row = decode(&consumed(body)).unwrap();
            assert_eq!(row.event_id, None, "{body}");
            assert_eq!(row.payload, body);
        }
        let row = decode(&consumed(
            r#"{"event_id":7,"event_type":["A"],"data":"x","timestamp":1700000000}"#,
        ))
        .unwrap();
        assert_eq!(
            (row.event_id, row.event_type, row.invoice_id),
            (None, None, None)
        );
        assert_eq!(row.source_timestamp, None);
        let escaped = decode(&consumed(
            r#"{"event_type":"P\u0041ID","nested":{"event_id":"no"}}"#,
        ))
        .unwrap();
        assert_eq!(escaped.event_type.as_deref(), Some("PAID"));
        assert_eq!(escaped.event_id, None, "only top-level fields count");
    }

    #[test]
    fn bodies_that_are_not_json_are_event_errors() {
        for body in ["", "{", "{\"a\":1} trailing", "not json"] {
            let err = decode(&consumed(body)).unwrap_err();
            assert_eq!(err.reason(), "not_json", "{body:?}");
        }
        let mut binary = consumed("{}");
        binary.payload = vec![b'"', 0xff, b'"'];
        assert_eq!(decode(&binary).unwrap_err().reason(), "not_json");
    }

    #[test]
    fn a_timestamp_that_is_not_rfc3339_is_rejected() {
        let err = decode(&consumed(r#"{"timestamp":"yesterday"}"#)).unwrap_err();
        assert_eq!(err, EventError::BadTimestamp);
    }

    #[test]
    fn envelope_headers_are_required_and_checked() {
        let mut no_id = consumed("{}");
        no_id.headers.retain(|(k, _)| k != headers::MESSAGE_ID);
        assert_eq!(
            decode(&no_id).unwrap_err(),
            EventError::MissingHeader(headers::MESSAGE_ID)
        );
        let mut bad_time = consumed("{}");
        bad_time
            .headers
            .push((headers::RECEIVED_AT.into(), b"noon".to_vec()));
        assert_eq!(decode(&bad_time).unwrap_err().reason(), "invalid_header");
        let mut key_only = consumed("{}");
        key_only.headers.retain(|(k, _)| k != headers::WEBHOOK_ID);
        assert_eq!(decode(&key_only).unwrap().webhook_id, "wh-1");
        key_only.key = None;
        assert_eq!(
            decode(&key_only).unwrap_err(),
            EventError::MissingHeader(headers::WEBHOOK_ID)
        );
    }

    #[test]
    fn retry_bookkeeping_is_read_leniently_and_origin_defaults_to_the_record() {
        let mut c = consumed("{}");
        assert_eq!(c.retries_done(), 0);
        assert_eq!(c.not_before(), None);
        assert_eq!(
            c.origin(),
            Origin {
                topic: "hookline.events".into(),
                partition: 2,
                offset: 41
            }
        );
        c.headers.push((headers::RETRY_COUNT.into(), b"3".to_vec()));
        c.headers
            .push((headers::NOT_BEFORE.into(), b"2026-03-01T10:00:01Z".to_vec()));
        c.headers
            .push((headers::ORIGIN_TOPIC.into(), b"hookline.events".to_vec()));
        c.headers
            .push((headers::ORIGIN_PARTITION.into(), b"0".to_vec()));
        c.headers
            .push((headers::ORIGIN_OFFSET.into(), b"9".to_vec()));
        assert_eq!(c.retries_done(), 3);
        assert_eq!(decode(&c).unwrap().attempts, 4);
        assert!(c.not_before().is_some());
        assert_eq!(c.origin().offset, 9);
        c.headers
            .push((headers::RETRY_COUNT.into(), b"many".to_vec()));
        assert_eq!(c.retries_done(), 0, "an unreadable count starts over");
    }
}
