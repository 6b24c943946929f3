//! One consumed Kafka record, where it was read, and the row it makes: the record
//! itself is core's `EventRecord` (the handler's metadata in headers, the raw body as
//! the event). Pure, so every rule is unit tested without a broker.

use chrono::{DateTime, Utc};
use hookline_core::event_record::{EventRecord, Origin, RecordError};
use hookline_runtime::kafka;
use rdkafka::Message;
use thiserror::Error;

use crate::jsonb;

/// A Kafka partition, named by topic and number.
pub type PartitionKey = (String, i32);

/// A record copied out of the consumer, so it can wait in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub record: EventRecord<'static>,
}

impl Consumed {
    pub fn from_message<M: Message>(message: &M) -> Self {
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            record: kafka::event_record_of(message),
        }
    }

    pub fn partition_key(&self) -> PartitionKey {
        (self.topic.clone(), self.partition)
    }

    /// Where the event first entered the events topic.
    pub fn origin(&self) -> Origin {
        self.record.origin(&self.topic, self.partition, self.offset)
    }
}

/// An event ready for the `events` table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub webhook_id: String,
    pub message_id: String,
    /// The provider's event id, type and time, as the handler read them.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub source_timestamp: Option<DateTime<Utc>>,
    /// The body exactly as received and signed, whatever it is.
    pub body: Vec<u8>,
    /// The body as JSON text, when it is JSON that PostgreSQL's `jsonb` can hold.
    pub payload: Option<String>,
    pub content_type: Option<String>,
    /// The request headers the handler kept, as a JSON object.
    pub request_headers: Option<String>,
    pub received_at: DateTime<Utc>,
    pub attempts: i32,
}

/// Why an event cannot be stored. Each of these goes the retry way, never the outage way.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EventError {
    #[error(transparent)]
    Record(#[from] RecordError),
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
            Self::Record(RecordError::MissingHeader(_)) => "missing_header",
            Self::Record(RecordError::InvalidHeader { .. }) => "invalid_header",
            Self::UnknownWebhook(_) => "unknown_webhook",
            Self::Unstorable(_) => "unstorable",
            Self::Injected => "injected",
        }
    }
}

/// Reads the event a record carries. Any body is an event, stored as it came (Slack's
/// form-encoded commands and XML included); only the handler's own headers are
/// required. The provider's event id, type and time come from the headers the handler
/// wrote (`hookline_core::provider`); an unreadable one is left empty, not refused.
/// The row of the `events` table `consumed` makes.
pub fn decode(consumed: &Consumed) -> Result<EventRow, EventError> {
    let fields = consumed.record.fields()?;
    let payload = &consumed.record.payload;
    Ok(EventRow {
        webhook_id: fields.webhook_id.to_owned(),
        message_id: fields.message_id.to_owned(),
        event_id: fields.event_id.map(str::to_owned),
        event_type: fields.event_type.map(str::to_owned),
        source_timestamp: fields.occurred_at,
        body: payload.to_vec(),
        payload: jsonb::storable(payload).map(str::to_owned),
        content_type: fields.content_type.map(str::to_owned),
        request_headers: fields
            .request_headers
            .and_then(|value| jsonb::storable(value.as_bytes()))
            .filter(|value| value.trim_start().starts_with('{'))
            .map(str::to_owned),
        received_at: fields.received_at,
        attempts: i32::try_from(fields.attempts).unwrap_or(i32::MAX),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hookline_core::event_record::Header;
    use hookline_core::record_headers;

    /// A record as the handler produces it.
    /// A header as a record holds it.
    pub(crate) fn header(name: &'static str, value: &[u8]) -> Header<'static> {
        (name.into(), value.to_vec().into())
    }

    pub(crate) fn consumed(payload: &str) -> Consumed {
        let headers = [
            (record_headers::WEBHOOK_ID, &b"wh-1"[..]),
            (record_headers::MESSAGE_ID, b"msg-1"),
            (record_headers::RECEIVED_AT, b"2026-03-01T10:00:00.250Z"),
            (record_headers::SCHEME, b"standard"),
            (record_headers::CONTENT_TYPE, b"application/json"),
        ];
        Consumed {
            topic: "hookline.events".into(),
            partition: 2,
            offset: 41,
            record: EventRecord {
                key: Some(b"wh-1".to_vec().into()),
                payload: payload.as_bytes().to_vec().into(),
                headers: headers
                    .into_iter()
                    .map(|(name, value)| (name.into(), value.to_vec().into()))
                    .collect(),
            },
        }
    }

    #[test]
    fn the_provider_identity_comes_from_the_handler_headers() {
        let body = r#"{"id":"evt_1","type":"invoice.paid","data":{"invoice_id":"inv-7"}}"#;
        let mut record = consumed(body);
        record.record.headers.extend([
            header(record_headers::EVENT_ID, b"evt_1"),
            header(record_headers::EVENT_TYPE, b"invoice.paid"),
            header(record_headers::OCCURRED_AT, b"2026-03-01T09:59:59Z"),
            header(
                record_headers::REQUEST_HEADERS,
                br#"{"stripe-signature":"t=1,v1=ab"}"#,
            ),
        ]);
        let row = decode(&record).unwrap();
        assert_eq!(row.webhook_id, "wh-1");
        assert_eq!(row.message_id, "msg-1");
        assert_eq!(row.event_id.as_deref(), Some("evt_1"));
        assert_eq!(row.event_type.as_deref(), Some("invoice.paid"));
        assert_eq!(
            row.source_timestamp.unwrap().to_rfc3339(),
            "2026-03-01T09:59:59+00:00"
        );
        assert_eq!(row.received_at.timestamp_subsec_millis(), 250);
        assert_eq!(row.body, body.as_bytes());
        assert_eq!(row.payload.as_deref(), Some(body));
        assert_eq!(row.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            row.request_headers.as_deref(),
            Some(r#"{"stripe-signature":"t=1,v1=ab"}"#)
        );
        assert_eq!(row.attempts, 1);
    }

    #[test]
    fn any_body_is_an_event_kept_byte_for_byte() {
        for body in [
            "",
            "{",
            "token=x&command=%2Fweather&text=94070",
            "<xml/>",
            "{\"a\":1} trailing",
            r#"{"text":"nul \u0000 here"}"#,
        ] {
            let row = decode(&consumed(body)).unwrap();
            assert_eq!(row.body, body.as_bytes(), "{body:?}");
            assert_eq!(row.payload, None, "{body:?} is not storable JSON");
            assert_eq!((row.event_id, row.event_type), (None, None));
        }
        let mut binary = consumed("{}");
        binary.record.payload = vec![b'"', 0xff, b'"', 0].into();
        let row = decode(&binary).unwrap();
        assert_eq!(row.body, [b'"', 0xff, b'"', 0]);
        assert_eq!(row.payload, None);
        for body in ["[1,2]", "\"text\"", "null", r#"{"x":{"y":[]}}"#] {
            assert_eq!(
                decode(&consumed(body)).unwrap().payload.as_deref(),
                Some(body)
            );
        }
    }

    #[test]
    fn unreadable_identity_headers_are_left_empty() {
        let mut record = consumed("{}");
        record.record.headers.extend([
            header(record_headers::EVENT_ID, b"\xff"),
            header(record_headers::EVENT_TYPE, b"nul\0"),
            header(record_headers::OCCURRED_AT, b"yesterday"),
            header(record_headers::REQUEST_HEADERS, b"[1]"),
        ]);
        let row = decode(&record).unwrap();
        assert_eq!(
            (
                row.event_id,
                row.event_type,
                row.source_timestamp,
                row.request_headers
            ),
            (None, None, None, None)
        );
    }

    #[test]
    fn envelope_headers_are_required_and_checked() {
        let mut no_id = consumed("{}");
        no_id
            .record
            .headers
            .retain(|(k, _)| k != record_headers::MESSAGE_ID);
        assert_eq!(
            decode(&no_id).unwrap_err(),
            EventError::Record(RecordError::MissingHeader(record_headers::MESSAGE_ID))
        );
        let mut bad_time = consumed("{}");
        bad_time
            .record
            .headers
            .push(header(record_headers::RECEIVED_AT, b"noon"));
        assert_eq!(decode(&bad_time).unwrap_err().reason(), "invalid_header");
        let mut key_only = consumed("{}");
        key_only
            .record
            .headers
            .retain(|(k, _)| k != record_headers::WEBHOOK_ID);
        assert_eq!(decode(&key_only).unwrap().webhook_id, "wh-1");
        key_only.record.key = None;
        assert_eq!(
            decode(&key_only).unwrap_err(),
            EventError::Record(RecordError::MissingHeader(record_headers::WEBHOOK_ID))
        );
    }

    #[test]
    fn retry_bookkeeping_is_read_leniently_and_origin_defaults_to_the_record() {
        let mut c = consumed("{}");
        assert_eq!(c.record.retries_done(), 0);
        assert_eq!(c.record.not_before(), None);
        assert_eq!(
            c.origin(),
            Origin {
                topic: "hookline.events".into(),
                partition: 2,
                offset: 41
            }
        );
        c.record
            .headers
            .push(header(record_headers::RETRY_COUNT, b"3"));
        c.record
            .headers
            .push(header(record_headers::NOT_BEFORE, b"2026-03-01T10:00:01Z"));
        c.record
            .headers
            .push(header(record_headers::ORIGIN_TOPIC, b"hookline.events"));
        c.record
            .headers
            .push(header(record_headers::ORIGIN_PARTITION, b"0"));
        c.record
            .headers
            .push(header(record_headers::ORIGIN_OFFSET, b"9"));
        assert_eq!(c.record.retries_done(), 3);
        assert_eq!(decode(&c).unwrap().attempts, 4);
        assert!(c.record.not_before().is_some());
        assert_eq!(c.origin().offset, 9);
        c.record
            .headers
            .push(header(record_headers::RETRY_COUNT, b"many"));
        assert_eq!(
            c.record.retries_done(),
            0,
            "an unreadable count starts over"
        );
    }
}
