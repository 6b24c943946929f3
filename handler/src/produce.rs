//! Producing verified events to Kafka (the record is `hookline_core::event_record`'s)
//! with a producer that reports only the broker's answer.

use std::time::Duration;

use hookline_core::event_record::EventRecord;
use hookline_core::event_record::VerifiedEvent;
use hookline_runtime::kafka::{self, KafkaConnection, reliable_producer_config};
use hookline_runtime::producer::AckedProducer;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

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
    pub async fn produce(&self, event: &VerifiedEvent<'_>) -> Result<(), ProduceError> {
        let record = EventRecord::verified(event);
        let acknowledgement = self
            .producer
            .send(kafka::future_record(&self.topic, &record))
            .map_err(|err| match err {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    ProduceError::QueueFull
                }
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
