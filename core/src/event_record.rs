//! The Kafka record of an event, written once and read once: key = webhook id, value =
//! the body as the provider sent it, everything else in headers ([`record_headers`]).
//! The handler writes it ([`EventRecord::verified`]), the consumer reads it
//! ([`EventRecord::fields`]) and makes its retry and dead-letter copies, replay makes a
//! fresh copy of a stored dead letter, the bench writes what the handler would. Kafka's
//! own types stay in `hookline-runtime`; this is the record as bytes.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::ids::{MessageId, WebhookId};
use crate::provider::EventIdentity;
use crate::record_headers;
use crate::signature::Scheme;

/// A record's header: a name and its bytes.
pub type Header<'a> = (Cow<'static, str>, Cow<'a, [u8]>);

/// A record of the events topic (or of a retry tier, or of the dead-letter topic),
/// borrowed from a request while the handler writes it, owned once read from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord<'a> {
    pub key: Option<Cow<'a, [u8]>>,
    pub payload: Cow<'a, [u8]>,
    /// In the order written; a name may repeat, the last one counts.
    pub headers: Vec<Header<'a>>,
}

/// What the handler knows about an event it verified, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedEvent<'a> {
    pub webhook_id: &'a WebhookId,
    pub message_id: &'a MessageId,
    pub received_at: DateTime<Utc>,
    pub scheme: Scheme,
    pub content_type: Option<&'a [u8]>,
    /// The W3C trace context the consumer continues (`record_headers::TRACEPARENT`).
    pub traceparent: Option<&'a [u8]>,
    pub tracestate: Option<&'a [u8]>,
    /// What the provider says about the event.
    pub identity: &'a EventIdentity,
    /// The kept request headers (`provider::kept_headers`) as a JSON object, if any.
    pub request_headers: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// Where an event first entered the events topic. Retry copies carry it along, so a
/// dead letter is identified by it however many copies were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What a record says about its event, for the events table.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFields<'r> {
    pub webhook_id: &'r str,
    pub message_id: &'r str,
    pub received_at: DateTime<Utc>,
    pub event_id: Option<&'r str>,
    pub event_type: Option<&'r str>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub content_type: Option<&'r str>,
    pub request_headers: Option<&'r str>,
    /// The first attempt plus the retries done.
    pub attempts: u32,
}

/// Why a record is not an event: a header the handler always writes is missing or
/// garbled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the event has no {0} header")]
    MissingHeader(&'static str),
    #[error("header {name} is not {expected}")]
    InvalidHeader {
        name: &'static str,
        expected: &'static str,
    },
}

/// The retry bookkeeping each copy sets afresh; every other header is the handler's.
const BOOKKEEPING: [&str; 7] = [
    record_headers::RETRY_COUNT,
    record_headers::NOT_BEFORE,
    record_headers::ERROR,
    record_headers::ATTEMPTS,
    record_headers::ORIGIN_TOPIC,
    record_headers::ORIGIN_PARTITION,
    record_headers::ORIGIN_OFFSET,
];

impl<'a> EventRecord<'a> {
    /// The record the handler produces for `event`; absent optional headers are left out.
    pub fn verified(event: &VerifiedEvent<'a>) -> Self {
        let mut headers: Vec<Header<'a>> = Vec::with_capacity(10);
        let mut push = |name: &'static str, value: Cow<'a, [u8]>| {
            headers.push((Cow::Borrowed(name), value));
        };
        push(
            record_headers::WEBHOOK_ID,
            Cow::Borrowed(event.webhook_id.as_bytes()),
        );
        push(
            record_headers::MESSAGE_ID,
            Cow::Borrowed(event.message_id.as_bytes()),
        );
        push(
            record_headers::RECEIVED_AT,
            Cow::Owned(
                event
                    .received_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
                    .into_bytes(),
            ),
        );
        push(
            record_headers::SCHEME,
            Cow::Borrowed(event.scheme.as_str().as_bytes()),
        );
        let optional = [
            (record_headers::CONTENT_TYPE, event.content_type),
            (record_headers::TRACEPARENT, event.traceparent),
            (record_headers::TRACESTATE, event.tracestate),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                push(name, Cow::Borrowed(value));
            }
        }
        let identity = event.identity;
        if let Some(event_id) = &identity.event_id {
            push(record_headers::EVENT_ID, Cow::Borrowed(event_id.as_bytes()));
        }
        if let Some(event_type) = &identity.event_type {
            push(
                record_headers::EVENT_TYPE,
                Cow::Borrowed(event_type.as_bytes()),
            );
        }
        if let Some(occurred_at) = identity.occurred_at {
            let occurred_at = occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            push(
                record_headers::OCCURRED_AT,
                Cow::Owned(occurred_at.into_bytes()),
            );
        }
        if let Some(request_headers) = event.request_headers {
            push(
                record_headers::REQUEST_HEADERS,
                Cow::Borrowed(request_headers),
            );
        }
        Self {
            key: Some(Cow::Borrowed(event.webhook_id.as_bytes())),
            payload: Cow::Borrowed(event.body),
            headers,
        }
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

    /// The message id the events table deduplicates on.
    pub fn message_id(&self) -> Option<&str> {
        self.header(record_headers::MESSAGE_ID)
            .filter(|id| !id.is_empty())
    }

    /// Retries done so far. A missing or unreadable header counts as none, so a bad
    /// header cannot make an event retry forever: the copy gets a valid one.
    pub fn retries_done(&self) -> u32 {
        self.header(record_headers::RETRY_COUNT)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The earliest time a retry copy may be processed, if it is one.
    pub fn not_before(&self) -> Option<DateTime<Utc>> {
        self.header(record_headers::NOT_BEFORE).and_then(parse_time)
    }

    /// Where the event first entered the events topic: carried by a copy, else the
    /// record's own position.
    pub fn origin(&self, topic: &str, partition: i32, offset: i64) -> Origin {
        let carried = || {
            Some(Origin {
                topic: self.header(record_headers::ORIGIN_TOPIC)?.to_owned(),
                partition: self
                    .header(record_headers::ORIGIN_PARTITION)?
                    .parse()
                    .ok()?,
                offset: self.header(record_headers::ORIGIN_OFFSET)?.parse().ok()?,
            })
        };
        carried().unwrap_or_else(|| Origin {
            topic: topic.to_owned(),
            partition,
            offset,
        })
    }

    /// What the record says about its event; text headers that are empty or hold NUL
    /// (PostgreSQL text cannot) are left out.
    pub fn fields(&self) -> Result<EventFields<'_>, RecordError> {
        let webhook_id = self
            .webhook_id()
            .ok_or(RecordError::MissingHeader(record_headers::WEBHOOK_ID))?;
        let message_id = self
            .message_id()
            .ok_or(RecordError::MissingHeader(record_headers::MESSAGE_ID))?;
        let received_at = self
            .header(record_headers::RECEIVED_AT)
            .ok_or(RecordError::MissingHeader(record_headers::RECEIVED_AT))
            .and_then(|value| {
                parse_time(value).ok_or(RecordError::InvalidHeader {
                    name: record_headers::RECEIVED_AT,
                    expected: "an RFC 3339 time",
                })
            })?;
        let text = |name| {
            self.header(name)
                .filter(|value| !value.is_empty() && !value.contains('\0'))
        };
        Ok(EventFields {
            webhook_id,
            message_id,
            received_at,
            event_id: text(record_headers::EVENT_ID),
            event_type: text(record_headers::EVENT_TYPE),
            occurred_at: self
                .header(record_headers::OCCURRED_AT)
                .and_then(parse_time),
            content_type: text(record_headers::CONTENT_TYPE),
            request_headers: self.header(record_headers::REQUEST_HEADERS),
            attempts: self.retries_done().saturating_add(1),
        })
    }

    /// The handler's headers, without the retry bookkeeping.
    pub fn event_headers(&self) -> impl Iterator<Item = &Header<'a>> {
        self.headers
            .iter()
            .filter(|(name, _)| !BOOKKEEPING.contains(&name.as_ref()))
    }

    /// The handler's headers as a JSON object of strings (kept with a dead letter, the
    /// source of its replay), NUL replaced, since PostgreSQL text cannot hold it.
    pub fn event_headers_json(&self) -> Value {
        let object: Map<String, Value> = self
            .event_headers()
            .map(|(name, value)| {
                (
                    pg_text(name),
                    Value::String(pg_text(&String::from_utf8_lossy(value))),
                )
            })
            .collect();
        Value::Object(object)
    }

    /// A copy for retry tier `retry_count`, to be processed at `not_before` at the
    /// earliest.
    pub fn retry_copy(
        &self,
        origin: &Origin,
        retry_count: u32,
        not_before: DateTime<Utc>,
        error: &str,
    ) -> EventRecord<'static> {
        self.copy(
            origin,
            [
                (record_headers::RETRY_COUNT, retry_count.to_string()),
                (
                    record_headers::NOT_BEFORE,
                    not_before.to_rfc3339_opts(SecondsFormat::Millis, true),
                ),
                (record_headers::ERROR, error.to_owned()),
            ],
        )
    }

    /// A copy for the dead-letter topic, after `attempts` attempts.
    pub fn dead_letter_copy(
        &self,
        origin: &Origin,
        attempts: u32,
        error: &str,
    ) -> EventRecord<'static> {
        self.copy(
            origin,
            [
                (record_headers::RETRY_COUNT, self.retries_done().to_string()),
                (record_headers::ATTEMPTS, attempts.to_string()),
                (record_headers::ERROR, error.to_owned()),
            ],
        )
    }

    fn copy(
        &self,
        origin: &Origin,
        bookkeeping: [(&'static str, String); 3],
    ) -> EventRecord<'static> {
        let carried = [
            (record_headers::ORIGIN_TOPIC, origin.topic.clone()),
            (
                record_headers::ORIGIN_PARTITION,
                origin.partition.to_string(),
            ),
            (record_headers::ORIGIN_OFFSET, origin.offset.to_string()),
        ];
        let headers = self
            .event_headers()
            .map(|(name, value)| (name.clone(), Cow::Owned(value.to_vec())))
            .chain(
                carried
                    .into_iter()
                    .chain(bookkeeping)
                    .map(|(name, value)| (Cow::Borrowed(name), Cow::Owned(value.into_bytes()))),
            )
            .collect();
        EventRecord {
            key: self.key.as_ref().map(|key| Cow::Owned(key.to_vec())),
            payload: Cow::Owned(self.payload.to_vec()),
            headers,
        }
    }
}

impl EventRecord<'static> {
    /// A dead letter put back on the events topic: the handler's headers as stored
    /// with it (see [`EventRecord::event_headers_json`]) and a retry count of zero, a
    /// fresh retry budget.
    pub fn replay(webhook_id: &str, payload: Vec<u8>, stored_headers: &Value) -> Self {
        let stored = stored_headers
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !BOOKKEEPING.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())));
        let headers = stored
            .map(|(name, value)| (Cow::Owned(name), Cow::Owned(value.into_bytes())))
            .chain([(
                Cow::Borrowed(record_headers::RETRY_COUNT),
                Cow::Borrowed(&b"0"[..]),
            )])
            .collect();
        Self {
            key: Some(Cow::Owned(webhook_id.as_bytes().to_vec())),
            payload: Cow::Owned(payload),
            headers,
        }
    }
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// PostgreSQL text cannot hold NUL; a NUL in a header would otherwise make the dead
/// letter itself unstorable.
pub fn pg_text(value: &str) -> String {
    value.replace('\0', "\u{fffd}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::LazyLock;

    fn names_and_values<'r>(record: &'r EventRecord<'_>) -> Vec<(&'r str, &'r [u8])> {
        record
            .headers
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_ref()))
            .collect()
    }

    static WEBHOOK: LazyLock<WebhookId> = LazyLock::new(|| WebhookId::from("wh-1"));
    static MESSAGE: LazyLock<MessageId> = LazyLock::new(|| MessageId::parse("msg_1").unwrap());

    fn event(identity: &EventIdentity) -> VerifiedEvent<'_> {
        VerifiedEvent {
            webhook_id: &WEBHOOK,
            message_id: &MESSAGE,
            received_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            scheme: Scheme::LegacyHex,
            content_type: Some(b"application/json"),
            traceparent: None,
            tracestate: None,
            identity,
            request_headers: None,
            body: b"{}",
        }
    }

    #[test]
    fn the_handler_writes_its_metadata_and_only_present_optional_headers() {
        let plain = EventIdentity::default();
        let record = EventRecord::verified(&event(&plain));
        assert_eq!(record.key.as_deref(), Some(&b"wh-1"[..]));
        assert_eq!(record.payload.as_ref(), b"{}");
        assert_eq!(
            names_and_values(&record),
            [
                (record_headers::WEBHOOK_ID, &b"wh-1"[..]),
                (record_headers::MESSAGE_ID, b"msg_1"),
                (record_headers::RECEIVED_AT, b"2026-01-02T03:04:05.000Z"),
                (record_headers::SCHEME, b"legacy-hex"),
                (record_headers::CONTENT_TYPE, b"application/json"),
            ]
        );
        let identity = EventIdentity {
            message_id: Some(MessageId::parse("evt_1").unwrap()),
            event_id: Some("evt_1".into()),
            event_type: Some("invoice.paid".into()),
            occurred_at: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 0).unwrap()),
        };
        let described = VerifiedEvent {
            request_headers: Some(br#"{"webhook-id":"msg_1"}"#),
            ..event(&identity)
        };
        let record = EventRecord::verified(&described);
        assert_eq!(
            names_and_values(&record)[5..],
            [
                (record_headers::EVENT_ID, &b"evt_1"[..]),
                (record_headers::EVENT_TYPE, b"invoice.paid"),
                (record_headers::OCCURRED_AT, b"2026-01-02T03:04:00Z"),
                (
                    record_headers::REQUEST_HEADERS,
                    br#"{"webhook-id":"msg_1"}"#
                ),
            ]
        );
    }

    #[test]
    fn what_the_handler_writes_the_reader_reads_back() {
        let identity = EventIdentity {
            message_id: Some(MessageId::parse("evt_1").unwrap()),
            event_id: Some("evt_1".into()),
            event_type: Some("invoice.paid".into()),
            occurred_at: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 0).unwrap()),
        };
        let written = EventRecord::verified(&VerifiedEvent {
            request_headers: Some(br#"{"webhook-id":"msg_1"}"#),
            ..event(&identity)
        });
        let read = &written;
        let fields = read.fields().expect("a record the handler wrote");
        assert_eq!(fields.webhook_id, "wh-1");
        assert_eq!(fields.message_id, "msg_1");
        assert_eq!(
            fields.received_at,
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
        );
        assert_eq!(fields.event_id, Some("evt_1"));
        assert_eq!(fields.event_type, Some("invoice.paid"));
        assert_eq!(fields.occurred_at, identity.occurred_at);
        assert_eq!(fields.content_type, Some("application/json"));
        assert_eq!(fields.request_headers, Some(r#"{"webhook-id":"msg_1"}"#));
        assert_eq!(fields.attempts, 1);
        assert_eq!(read.not_before(), None);
    }

    #[test]
    fn copies_keep_the_event_and_set_their_bookkeeping_afresh() {
        let plain = EventIdentity::default();
        let first = EventRecord::verified(&event(&plain));
        let origin = first.origin("hookline.events", 3, 41);
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 5, 0).unwrap();
        let retry = first.retry_copy(&origin, 1, at, "boom");
        assert_eq!(retry.key, first.key);
        assert_eq!(retry.payload, first.payload);
        assert_eq!(retry.retries_done(), 1);
        assert_eq!(retry.not_before(), Some(at));
        assert_eq!(retry.header(record_headers::ERROR), Some("boom"));
        assert_eq!(retry.origin("hookline.events.retry.0", 0, 7), origin);

        let again = retry.retry_copy(&origin, 2, at, "again");
        let counts: Vec<_> = again
            .headers
            .iter()
            .filter(|(name, _)| name == record_headers::RETRY_COUNT)
            .collect();
        assert_eq!(counts.len(), 1, "bookkeeping is replaced, not repeated");
        assert_eq!(again.event_headers().count(), first.headers.len());

        let dead = again.dead_letter_copy(&origin, 3, "spent");
        assert_eq!(dead.header(record_headers::ATTEMPTS), Some("3"));
        assert_eq!(dead.retries_done(), 2);
        assert_eq!(dead.not_before(), None);
    }

    #[test]
    fn a_replayed_dead_letter_keeps_the_handler_headers_and_starts_its_retries_over() {
        let stored = serde_json::json!({
            record_headers::MESSAGE_ID: "m-1",
            record_headers::RECEIVED_AT: "2026-03-01T10:00:00Z",
            record_headers::RETRY_COUNT: "3",
        });
        let replayed = EventRecord::replay("wh-1", b"{}".to_vec(), &stored);
        assert_eq!(replayed.webhook_id(), Some("wh-1"));
        assert_eq!(replayed.message_id(), Some("m-1"));
        assert_eq!(
            replayed.header(record_headers::RECEIVED_AT),
            Some("2026-03-01T10:00:00Z")
        );
        let counts: Vec<_> = replayed
            .headers
            .iter()
            .filter(|(name, _)| name == record_headers::RETRY_COUNT)
            .map(|(_, value)| value.as_ref())
            .collect();
        assert_eq!(counts, [&b"0"[..]]);
    }

    #[test]
    fn stored_headers_hold_no_nul_and_no_bookkeeping() {
        let plain = EventIdentity::default();
        let mut record = EventRecord::verified(&event(&plain));
        record
            .headers
            .push((Cow::Borrowed("x-odd"), Cow::Borrowed(&b"a\0b"[..])));
        let origin = record.origin("t", 0, 0);
        let copy = record.retry_copy(&origin, 1, Utc::now(), "e");
        let json = copy.event_headers_json();
        assert_eq!(json["x-odd"], "a\u{fffd}b");
        assert!(json.get(record_headers::RETRY_COUNT).is_none());
        assert!(json.get(record_headers::ORIGIN_TOPIC).is_none());
    }
}
