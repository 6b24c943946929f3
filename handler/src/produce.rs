//! Producing verified events to Kafka: the record (key = webhook id, value = the raw
//! body, metadata in headers) and a producer that reports only the broker's answer.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hookline_core::provider::EventIdentity;
use hookline_core::record_headers;
use hookline_core::signature::Scheme;
use hookline_runtime::kafka::{KafkaConnection, reliable_producer_config};
use hookline_runtime::producer::AckedProducer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

/// A verified event, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub webhook_id: &'a str,
    pub message_id: &'a str,
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

impl Event<'_> {
    /// The Kafka headers of the event; absent request headers are left out.
    pub fn headers(&self) -> OwnedHeaders {
        let received_at = self
            .received_at
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut kafka_headers = OwnedHeaders::new_with_capacity(6)
            .insert(header(
                record_headers::WEBHOOK_ID,
                self.webhook_id.as_bytes(),
            ))
            .insert(header(
                record_headers::MESSAGE_ID,
                self.message_id.as_bytes(),
            ))
            .insert(header(record_headers::RECEIVED_AT, received_at.as_bytes()))
            .insert(header(
                record_headers::SCHEME,
                self.scheme.as_str().as_bytes(),
            ));
        if let Some(content_type) = self.content_type {
            kafka_headers =
                kafka_headers.insert(header(record_headers::CONTENT_TYPE, content_type));
        }
        if let Some(traceparent) = self.traceparent {
            kafka_headers = kafka_headers.insert(header(record_headers::TRACEPARENT, traceparent));
        }
        if let Some(tracestate) = self.tracestate {
            kafka_headers = kafka_headers.insert(header(record_headers::TRACESTATE, tracestate));
        }
        let identity = self.identity;
        if let Some(event_id) = &identity.event_id {
            kafka_headers =
                kafka_headers.insert(header(record_headers::EVENT_ID, event_id.as_bytes()));
        }
        if let Some(event_type) = &identity.event_type {
            kafka_headers =
                kafka_headers.insert(header(record_headers::EVENT_TYPE, event_type.as_bytes()));
        }
        if let Some(occurred_at) = identity.occurred_at {
            let occurred_at = occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            kafka_headers =
                kafka_headers.insert(header(record_headers::OCCURRED_AT, occurred_at.as_bytes()));
        }
        if let Some(request_headers) = self.request_headers {
            kafka_headers =
                kafka_headers.insert(header(record_headers::REQUEST_HEADERS, request_headers));
        }
        kafka_headers
    }
}

fn header<'a>(key: &'a str, value: &'a [u8]) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value),
    }
}

#[derive(Debug, Error)]
pub enum ProduceError {
    #[error("the producer queue is full")]
    QueueFull,
    #[error("the broker did not acknowledge: {0}")]
    NotAcknowledged(#[source] KafkaError),
    #[error("the delivery report was lost")]
    Canceled,
    /// The idempotent producer hit an error it cannot recover from (librdkafka's
    /// fatal error): every later event would fail too.
    #[error("the producer failed for good: {0}")]
    Fatal(String),
}

#[derive(Debug, Error)]
#[error("cannot create the Kafka producer for {bootstrap}: {source}")]
pub struct ProducerSetupError {
    bootstrap: String,
    #[source]
    source: KafkaError,
}

/// Produces events to one topic with `acks=all` and idempotence.
#[derive(Clone)]
pub struct EventProducer {
    producer: AckedProducer,
    topic: String,
}

impl EventProducer {
    /// `delivery_timeout` bounds how long an event may wait for the broker's ack, so a
    /// sender learns of an outage within it; `linger` is how long an event waits for
    /// others to share its produce request.
    pub fn new(
        connection: &KafkaConnection,
        topic: String,
        delivery_timeout: Duration,
        linger: Duration,
    ) -> Result<Self, ProducerSetupError> {
        let mut config = reliable_producer_config(connection, "hookline-handler", delivery_timeout);
        config.set("linger.ms", linger.as_millis().to_string());
        let producer = AckedProducer::new(&config, "kafka-deliveries").map_err(|source| {
            ProducerSetupError {
                bootstrap: connection.bootstrap_servers().to_owned(),
                source,
            }
        })?;
        Ok(Self { producer, topic })
    }

    /// The topic events are produced to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Resolves once the broker acknowledged the event, or with why it did not.
    /// A full queue fails at once rather than waiting for room.
    pub async fn produce(&self, event: &Event<'_>) -> Result<(), ProduceError> {
        let record = FutureRecord::to(&self.topic)
            .key(event.webhook_id)
            .payload(event.body)
            .headers(event.headers());
        let acknowledgement = self.producer.send(record).map_err(|err| match err {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull,
            other => self.classify(other),
        })?;
        match acknowledgement.await {
            Ok(_) => Ok(()),
            Err(KafkaError::Canceled) => Err(ProduceError::Canceled),
            Err(err) => Err(self.classify(err)),
        }
    }

    fn classify(&self, err: KafkaError) -> ProduceError {
        match self.producer.fatal_error() {
            Some(reason) => ProduceError::Fatal(reason),
            None => ProduceError::NotAcknowledged(err),
        }
    }

    /// Waits up to `timeout` for every queued event to be acknowledged or to fail.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rdkafka::message::Headers;

    #[test]
    fn headers_carry_the_metadata_and_only_present_request_headers() {
        let event = Event {
            webhook_id: "wh-1",
            message_id: "msg_1",
            received_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            scheme: Scheme::LegacyHex,
            content_type: Some(b"application/json"),
            traceparent: None,
            tracestate: None,
            identity: &EventIdentity::default(),
            request_headers: None,
            body: b"{}",
        };
        let kafka_headers = event.headers();
        let pairs: Vec<(&str, &[u8])> = kafka_headers
            .iter()
            .map(|h| (h.key, h.value.unwrap_or_default()))
            .collect();
        assert_eq!(
            pairs,
            [
                (record_headers::WEBHOOK_ID, &b"wh-1"[..]),
                (record_headers::MESSAGE_ID, b"msg_1"),
                (record_headers::RECEIVED_AT, b"2026-01-02T03:04:05.000Z"),
                (record_headers::SCHEME, b"legacy-hex"),
                (record_headers::CONTENT_TYPE, b"application/json"),
            ]
        );
        let identity = EventIdentity {
            message_id: Some("evt_1".into()),
            event_id: Some("evt_1".into()),
            event_type: Some("invoice.paid".into()),
            occurred_at: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 0).unwrap()),
        };
        let described = Event {
            identity: &identity,
            request_headers: Some(br#"{"webhook-id":"msg_1"}"#),
            ..event
        };
        let kafka_headers = described.headers();
        let extra: Vec<(&str, &[u8])> = kafka_headers
            .iter()
            .skip(5)
            .map(|h| (h.key, h.value.unwrap_or_default()))
            .collect();
        assert_eq!(
            extra,
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
}
