//! A Kafka producer whose sends resolve when the broker has answered, served by one
//! thread that sleeps until librdkafka has a delivery report.
//!
//! rdkafka's `FutureProducer` polls every 100 ms and ends each poll spinning on the
//! clock for up to a millisecond (its deadline is rounded down to whole milliseconds):
//! about 1 % of a core per idle process, measured with perf on the handler. Here the
//! thread waits up to `POLL_TIMEOUT` for an event, so an idle producer barely wakes,
//! and a report is still served the moment it arrives.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{DeliveryResult, Message, ToBytes};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{BaseProducer, BaseRecord, FutureRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use tokio::sync::oneshot;

/// How long the delivery thread sleeps when nothing happens; also how long it may
/// outlive the last handle of its producer.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a send waiting for room in a full queue tries again.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(50);

/// The broker's answer for one record.
pub type Acknowledgement = Result<Delivery, KafkaError>;

/// Completes each record's waiting future with the broker's answer.
pub struct Acknowledger;

impl ClientContext for Acknowledger {}

impl ProducerContext for Acknowledger {
    type DeliveryOpaque = Box<oneshot::Sender<Acknowledgement>>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Self::DeliveryOpaque) {
        let answer = match result {
            Ok(message) => Ok(Delivery {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp(),
            }),
            Err((error, _)) => Err(error.clone()),
        };
        // The sender may have stopped waiting (its request was dropped): nothing to tell.
        let _ = waiter.send(answer);
    }
}

/// Stops the delivery thread once the last handle is gone.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A producer whose [`AckedProducer::send`] resolves with the broker's answer. Cheap
/// to clone: clones share one librdkafka client and one delivery thread.
#[derive(Clone)]
pub struct AckedProducer {
    producer: Arc<BaseProducer<Acknowledger>>,
    _stop: Arc<StopOnDrop>,
}

impl AckedProducer {
    /// Creates the client and its delivery thread, named `thread_name`.
    pub fn new(config: &ClientConfig, thread_name: &str) -> KafkaResult<Self> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, Acknowledger)?);
        let stop = Arc::new(AtomicBool::new(false));
        let polled = producer.clone();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name(thread_name.to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(POLL_TIMEOUT);
                }
            })
            .map_err(|err| KafkaError::ClientCreation(format!("delivery thread: {err}")))?;
        Ok(Self {
            producer,
            _stop: Arc::new(StopOnDrop(stop)),
        })
    }

    /// Queues `record` and returns what resolves with the broker's answer. A full queue
    /// fails at once (`QueueFull`) rather than waiting for room.
    pub fn send<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
    ) -> Result<impl Future<Output = Acknowledgement> + Send + 'static, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (waiter, answer) = oneshot::channel();
        self.producer
            .send(with_waiter(record, Box::new(waiter)))
            .map_err(|(error, _)| error)?;
        Ok(async move { answer.await.unwrap_or(Err(KafkaError::Canceled)) })
    }

    /// Like [`AckedProducer::send`], but waits up to `queue_timeout` for room in a full
    /// queue, then for the broker's answer.
    pub async fn send_when_room<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: Duration,
    ) -> Acknowledgement
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let started = Instant::now();
        let (waiter, answer) = oneshot::channel();
        let mut record = with_waiter(record, Box::new(waiter));
        loop {
            match self.producer.send(record) {
                Ok(()) => return answer.await.unwrap_or(Err(KafkaError::Canceled)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < queue_timeout =>
                {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// librdkafka's fatal error, if the idempotent producer hit one it cannot recover
    /// from: every later record would fail too.
    pub fn fatal_error(&self) -> Option<String> {
        self.producer
            .client()
            .fatal_error()
            .map(|(code, reason)| format!("{code:?}: {reason}"))
    }

    /// Waits, off the async runtime, up to `timeout` for every queued record to be
    /// answered.
    pub async fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout)))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }
}

fn with_waiter<'a, K, P>(
    record: FutureRecord<'a, K, P>,
    waiter: Box<oneshot::Sender<Acknowledgement>>,
) -> BaseRecord<'a, K, P, Box<oneshot::Sender<Acknowledgement>>>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    BaseRecord {
        topic: record.topic,
        partition: record.partition,
        payload: record.payload,
        key: record.key,
        timestamp: record.timestamp,
        headers: record.headers,
        delivery_opaque: waiter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer whose broker never answers: nothing listens on port 1.
    fn unanswered(queue_capacity: &str) -> AckedProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "300")
            .set("queue.buffering.max.messages", queue_capacity);
        AckedProducer::new(&config, "test-deliveries").expect("a client needs no broker")
    }

    #[tokio::test]
    async fn an_unanswered_record_resolves_with_the_timeout_not_never() {
        let producer = unanswered("10");
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            producer
                .send(FutureRecord::to("t").key("k").payload("v"))
                .expect("queued"),
        )
        .await
        .expect("the delivery thread reports the timeout");
        assert!(
            matches!(
                answer,
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut
                ))
            ),
            "{answer:?}"
        );
    }

    #[tokio::test]
    async fn a_full_queue_fails_at_once_or_after_the_wait_for_room() {
        let producer = unanswered("1");
        let _first = producer
            .send(FutureRecord::to("t").key("k").payload("1"))
            .expect("room for one");
        let refused = producer
            .send(FutureRecord::to("t").key("k").payload("2"))
            .err();
        assert_eq!(
            refused,
            Some(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull))
        );
        let waited = producer
            .send_when_room(
                FutureRecord::to("t").key("k").payload("3"),
                Duration::from_millis(1),
            )
            .await;
        assert!(waited.is_err(), "{waited:?}");
    }
}
