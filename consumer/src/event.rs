//! One consumed Kafka record and what it says: the handler's metadata in headers and
//! the raw body as the event. Pure, so every rule is unit tested without a broker.

use chrono::{DateTime, Utc};
use hookline_core::record_headers;
use rdkafka::Message;
use rdkafka::message::Headers;
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
        self.header(record_headers::WEBHOOK_ID)
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
        self.header(record_headers::RETRY_COUNT)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The earliest time a retry copy may be processed, if it says.
    pub fn not_before(&self) -> Option<DateTime<Utc>> {
        self.header(record_headers::NOT_BEFORE).and_then(parse_time)
    }

    /// The origin headers when all three are present and valid, else this record itself.
    pub fn origin(&self) -> Origin {
        let carried = (|| {
            Some(Origin {
                topic: self.header(record_headers::ORIGIN_TOPIC)?.to_owned(),
                partition: self
                    .header(record_headers::ORIGIN_PARTITION)?
                    .parse()
                    .ok()?,
                offset: self.header(record_headers::ORIGIN_OFFSET)?.parse().ok()?,
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
    #[error("the event has no {0} header")]
    MissingHeader(&'static str),
    #[error("header {name} is not {expected}")]
    InvalidHeader {
        name: &'static str,
        expected: &'static str,
    },
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
pub fn decode(consumed: &Consumed) -> Result<EventRow, EventError> {
    let webhook_id = consumed
        .webhook_id()
        .ok_or(EventError::MissingHeader(record_headers::WEBHOOK_ID))?;
    let message_id = consumed
        .header(record_headers::MESSAGE_ID)
        .filter(|id| !id.is_empty())
        .ok_or(EventError::MissingHeader(record_headers::MESSAGE_ID))?;
    let received_at = consumed
        .header(record_headers::RECEIVED_AT)
        .ok_or(EventError::MissingHeader(record_headers::RECEIVED_AT))
        .and_then(|value| {
            parse_time(value).ok_or(EventError::InvalidHeader {
                name: record_headers::RECEIVED_AT,
                expected: "an RFC 3339 time",
            })
        })?;
    let attempts = i32::try_from(consumed.retries_done().saturating_add(1)).unwrap_or(i32::MAX);
    let text_header = |name| {
        consumed
            .header(name)
            .filter(|value| !value.is_empty() && !value.contains('\0'))
            .map(str::to_owned)
    };
    Ok(EventRow {
        webhook_id: webhook_id.to_owned(),
        message_id: message_id.to_owned(),
        event_id: text_header(record_headers::EVENT_ID),
        event_type: text_header(record_headers::EVENT_TYPE),
        source_timestamp: consumed
            .header(record_headers::OCCURRED_AT)
            .and_then(parse_time),
        body: consumed.payload.clone(),
        payload: jsonb::storable(&consumed.payload).map(str::to_owned),
        content_type: text_header(record_headers::CONTENT_TYPE),
        request_headers: consumed
            .header(record_headers::REQUEST_HEADERS)
            .and_then(|value| jsonb::storable(value.as_bytes()))
            .filter(|value| value.trim_start().starts_with('{'))
            .map(str::to_owned),
        received_at,
        attempts,
    })
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
                (record_headers::WEBHOOK_ID.into(), b"wh-1".to_vec()),
                (record_headers::MESSAGE_ID.into(), b"msg-1".to_vec()),
                (
                    record_headers::RECEIVED_AT.into(),
                    b"2026-03-01T10:00:00.250Z".to_vec(),
                ),
                (record_headers::SCHEME.into(), b"standard".to_vec()),
                (
                    record_headers::CONTENT_TYPE.into(),
                    b"application/json".to_vec(),
                ),
            ],
        }
    }

    #[test]
    fn the_provider_identity_comes_from_the_handler_headers() {
        let body = r#"{"id":"evt_1","type":"invoice.paid","data":{"invoice_id":"inv-7"}}"#;
        let mut record = consumed(body);
        record.headers.extend([
            (record_headers::EVENT_ID.into(), b"evt_1".to_vec()),
            (record_headers::EVENT_TYPE.into(), b"invoice.paid".to_vec()),
            (
                record_headers::OCCURRED_AT.into(),
                b"2026-03-01T09:59:59Z".to_vec(),
            ),
            (
                record_headers::REQUEST_HEADERS.into(),
                br#"{"stripe-signature":"t=1,v1=ab"}"#.to_vec(),
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
        binary.payload = vec![b'"', 0xff, b'"', 0];
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
        record.headers.extend([
            (record_headers::EVENT_ID.into(), b"\xff".to_vec()),
            (record_headers::EVENT_TYPE.into(), b"nul\0".to_vec()),
            (record_headers::OCCURRED_AT.into(), b"yesterday".to_vec()),
            (record_headers::REQUEST_HEADERS.into(), b"[1]".to_vec()),
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
            .headers
            .retain(|(k, _)| k != record_headers::MESSAGE_ID);
        assert_eq!(
            decode(&no_id).unwrap_err(),
            EventError::MissingHeader(record_headers::MESSAGE_ID)
        );
        let mut bad_time = consumed("{}");
        bad_time
            .headers
            .push((record_headers::RECEIVED_AT.into(), b"noon".to_vec()));
        assert_eq!(decode(&bad_time).unwrap_err().reason(), "invalid_header");
        let mut key_only = consumed("{}");
        key_only
            .headers
            .retain(|(k, _)| k != record_headers::WEBHOOK_ID);
        assert_eq!(decode(&key_only).unwrap().webhook_id, "wh-1");
        key_only.key = None;
        assert_eq!(
            decode(&key_only).unwrap_err(),
            EventError::MissingHeader(record_headers::WEBHOOK_ID)
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
        c.headers
            .push((record_headers::RETRY_COUNT.into(), b"3".to_vec()));
        c.headers.push((
            record_headers::NOT_BEFORE.into(),
            b"2026-03-01T10:00:01Z".to_vec(),
        ));
        c.headers.push((
            record_headers::ORIGIN_TOPIC.into(),
            b"hookline.events".to_vec(),
        ));
        c.headers
            .push((record_headers::ORIGIN_PARTITION.into(), b"0".to_vec()));
        c.headers
            .push((record_headers::ORIGIN_OFFSET.into(), b"9".to_vec()));
        assert_eq!(c.retries_done(), 3);
        assert_eq!(decode(&c).unwrap().attempts, 4);
        assert!(c.not_before().is_some());
        assert_eq!(c.origin().offset, 9);
        c.headers
            .push((record_headers::RETRY_COUNT.into(), b"many".to_vec()));
        assert_eq!(c.retries_done(), 0, "an unreadable count starts over");
    }
}
