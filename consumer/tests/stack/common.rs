//! A consumer under test with topics and a database of its own, and helpers to feed it
//! events as the handler produces them and to read what came out.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use clap::Parser;
use hookline_api::topics::TopicSpec;
use hookline_consumer::config::{Cli, Command};
use hookline_core::provider;
use hookline_core::record_headers;
use hookline_core::registry::{self, RegistryEntry};
use hookline_core::retry::{BackoffPolicy, DeliveryPolicy};
use hookline_core::signature::Scheme;
use hookline_runtime::kafka::{
    KafkaConnection, client_config, ensure_topics, reliable_producer_config,
};
use hookline_runtime::metrics::MetricDef;
use hookline_runtime::shutdown::Shutdown;
use hookline_testkit::{fixtures, http};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;

/// Retry tiers short enough for tests: 100 ms doubling, as an exponential policy with
/// a 100 ms base asks, so five retries visit every tier.
pub const FAST_TIERS: &str = "100ms,200ms,400ms,800ms,1600ms";
pub const TIER_COUNT: usize = hookline_api::topics::RETRY_TIER_COUNT;

#[derive(Clone)]
pub struct Harness {
    pub kafka: KafkaConnection,
    pub events_topic: String,
    pub dead_letter_topic: String,
    pub registry_topic: String,
    pub group_id: String,
    pub database_url: String,
    pub pool: PgPool,
    producer: FutureProducer,
}

impl Harness {
    /// Topics of its own (events, retry tiers, dead letters, registry) on the stack's
    /// broker and a fresh database on the stack's PostgreSQL.
    pub async fn new(prefix: &str, partitions: i32) -> Self {
        let database_url = hookline_testkit::fresh_database(&prefix.replace('-', "_")).await;
        Self::with_database(prefix, partitions, database_url).await
    }

    pub async fn with_database(prefix: &str, partitions: i32, database_url: String) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            hookline_runtime::telemetry::init(hookline_runtime::telemetry::LogFormat::Text);
        }
        let bootstrap = KafkaConnection::from_vars(&hookline_testkit::stack().vars)
            .expect("the stack's Kafka settings");
        let events_topic = hookline_testkit::unique_name(prefix);
        let dead_letter_topic = format!("{events_topic}.dlq");
        let registry_topic = format!("{events_topic}.registry");
        let mut specs = vec![
            TopicSpec::events(events_topic.clone(), partitions, 1),
            TopicSpec::events(dead_letter_topic.clone(), 1, 1),
            TopicSpec::registry(registry_topic.clone(), 1),
        ];
        specs.extend(
            (0..TIER_COUNT)
                .map(|n| TopicSpec::events(format!("{events_topic}.retry.{n}"), partitions, 1)),
        );
        ensure_topics(&bootstrap, &specs, Duration::from_secs(20))
            .await
            .expect("create topics");
        let producer = reliable_producer_config(&bootstrap, "test", Duration::from_secs(10))
            .create()
            .expect("producer");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect(&database_url)
            .await
            .expect("connect to the test database");
        hookline_store::schema::migrate(&pool)
            .await
            .expect("apply the schema");
        Self {
            kafka: bootstrap,
            group_id: format!("{events_topic}-group"),
            events_topic,
            dead_letter_topic,
            registry_topic,
            database_url,
            pool,
            producer,
        }
    }

    pub fn tier_topic(&self, tier: usize) -> String {
        format!("{}.retry.{tier}", self.events_topic)
    }

    /// Publishes a registry entry, as the operator does (sealed under a key the
    /// consumer never gets: it needs none). Returns the record's value, for a test to
    /// replay.
    pub async fn register(&self, entry: &RegistryEntry) -> Vec<u8> {
        let value = registry::encode(
            entry,
            registry::version_at(Utc::now()),
            &fixtures::keyring(),
        );
        self.put_registry_value(&entry.webhook_id, &value).await;
        value
    }

    /// Publishes the deletion of `webhook_id`, as the operator does.
    pub async fn unregister(&self, webhook_id: &str) {
        let value = registry::encode_deletion(
            &webhook_id.into(),
            registry::version_at(Utc::now()),
            &fixtures::keyring(),
        );
        self.put_registry_value(webhook_id, &value).await;
    }

    /// Writes `value` as the registry record of `webhook_id`, as it is.
    pub async fn put_registry_value(&self, webhook_id: &str, value: &[u8]) {
        self.producer
            .send(
                FutureRecord::to(&self.registry_topic)
                    .key(webhook_id)
                    .payload(value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(err, _)| err)
            .expect("registry record acknowledged");
    }

    /// Produces an event as the handler does; returns (partition, offset).
    pub async fn produce(&self, webhook_id: &str, message_id: &str, body: &[u8]) -> (i32, i64) {
        produce_event(
            &self.producer,
            &self.events_topic,
            webhook_id,
            message_id,
            body,
        )
        .await
    }

    /// Produces an event no consumer can store: its received-at header is not a time
    /// (every attempt fails the same way, so it walks the retry tiers).
    pub async fn produce_poison(
        &self,
        webhook_id: &str,
        message_id: &str,
        body: &[u8],
    ) -> (i32, i64) {
        let delivery = self
            .producer
            .send(
                FutureRecord::to(&self.events_topic)
                    .key(webhook_id)
                    .payload(body)
                    .headers(event_headers(webhook_id, message_id, "not a time", body)),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(err, _)| err)
            .expect("event acknowledged");
        (delivery.partition, delivery.offset)
    }

    /// Produces `count` small events for `webhook_ids` (round robin) at about
    /// `per_second`, waiting for every acknowledgement at the end; returns the message
    /// ids (`<prefix>-<n>`).
    pub async fn produce_paced(
        &self,
        prefix: &str,
        webhook_ids: &[&str],
        count: usize,
        per_second: usize,
    ) -> Vec<String> {
        const TICK: Duration = Duration::from_millis(10);
        let per_tick = (per_second / 100).max(1);
        let started = tokio::time::Instant::now();
        let mut deliveries = Vec::with_capacity(count);
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let webhook_id = webhook_ids[i % webhook_ids.len()];
            let message_id = format!("{prefix}-{i:06}");
            let body = prototype_event(&format!("p{i}"), "PAID");
            let received_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
            let record = FutureRecord::to(&self.events_topic)
                .key(webhook_id)
                .payload(&body)
                .headers(event_headers(webhook_id, &message_id, &received_at, &body));
            deliveries.push(
                self.producer
                    .send_result(record)
                    .map_err(|(err, _)| err)
                    .expect("queued"),
            );
            ids.push(message_id);
            if (i + 1) % per_tick == 0 {
                let tick = u32::try_from((i + 1) / per_tick).expect("small");
                tokio::time::sleep_until(started + TICK * tick).await;
            }
        }
        for delivery in deliveries {
            delivery
                .await
                .expect("delivery report")
                .map_err(|(err, _)| err)
                .expect("acknowledged");
        }
        ids
    }

    /// The `run` flags for this harness, then `extra`.
    pub fn run_args(&self, ops_port: u16, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--database-url",
            &self.database_url,
            "run",
            "--events-topic",
            &self.events_topic,
            "--dead-letter-topic",
            &self.dead_letter_topic,
            "--registry-topic",
            &self.registry_topic,
            "--group-id",
            &self.group_id,
            "--retry-tier-delays",
            FAST_TIERS,
            "--ops-addr",
            &format!("127.0.0.1:{ops_port}"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(self.kafka.cli_args());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// Starts the consumer in this process and waits until it is ready.
    pub async fn start(&self, extra: &[&str]) -> Running {
        let running = self.spawn(extra);
        running.wait_ready().await;
        running
    }

    /// Starts the consumer in this process without waiting for it to be ready.
    pub fn spawn(&self, extra: &[&str]) -> Running {
        let ops_port = http::free_port();
        let mut argv = vec!["hookline-consumer".to_owned()];
        argv.extend(self.run_args(ops_port, extra));
        let cli = Cli::try_parse_from(argv).expect("valid flags");
        let Command::Run(args) = cli.command else {
            panic!("run expected");
        };
        let shutdown = Shutdown::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { hookline_consumer::service::run(&cli.database_url, *args, shutdown).await }
        });
        Running {
            ops_port,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("select count(*) from events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    /// Waits until `events` has `expected` rows; panics after `timeout`.
    pub async fn wait_for_events(&self, expected: i64, timeout: Duration) {
        hookline_testkit::eventually(&format!("{expected} events stored"), timeout, || async {
            (self.count_events().await >= expected).then_some(())
        })
        .await;
    }

    /// Reads `topic` from its beginning until `expected` records arrived or `timeout`
    /// passed; returns what arrived (so a test can also prove that nothing did).
    pub async fn read_topic(
        &self,
        topic: &str,
        expected: usize,
        timeout: Duration,
    ) -> Vec<OwnedMessage> {
        let consumer: StreamConsumer = client_config(&self.kafka, "test-reader")
            .set("group.id", hookline_testkit::unique_name("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = tokio::time::Instant::now() + timeout;
        let mut records = Vec::new();
        while records.len() < expected {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => records.push(message.detach()),
                Ok(Err(err)) => panic!("reading {topic}: {err}"),
                Err(_) => break,
            }
        }
        records
    }
}

impl Harness {
    /// How many records `topic` holds (the sum of its partitions' end offsets).
    pub async fn records_in(&self, topic: &str) -> i64 {
        let kafka = self.kafka.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let probe: BaseConsumer = client_config(&kafka, "test-probe").create().expect("probe");
            let timeout = Duration::from_secs(10);
            let metadata = probe
                .fetch_metadata(Some(&topic), timeout)
                .expect("metadata");
            metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions())
                .map(|p| {
                    probe
                        .fetch_watermarks(&topic, p.id(), timeout)
                        .expect("watermarks")
                        .1
                })
                .sum()
        })
        .await
        .expect("probe task")
    }
}

pub async fn produce_event(
    producer: &FutureProducer,
    topic: &str,
    webhook_id: &str,
    message_id: &str,
    body: &[u8],
) -> (i32, i64) {
    let received_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let headers = event_headers(webhook_id, message_id, &received_at, body);
    let delivery = producer
        .send(
            FutureRecord::to(topic)
                .key(webhook_id)
                .payload(body)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(err, _)| err)
        .expect("event acknowledged");
    (delivery.partition, delivery.offset)
}

/// The headers the handler puts on a Standard Webhooks event with this message id.
fn event_headers(
    webhook_id: &str,
    message_id: &str,
    received_at: &str,
    body: &[u8],
) -> OwnedHeaders {
    let identity = provider::identify(Scheme::Standard, &[("webhook-id", message_id)], body);
    let mut kafka_headers = OwnedHeaders::new()
        .insert(header(record_headers::WEBHOOK_ID, webhook_id))
        .insert(header(record_headers::MESSAGE_ID, message_id))
        .insert(header(record_headers::RECEIVED_AT, received_at))
        .insert(header(record_headers::SCHEME, "standard"))
        .insert(header(record_headers::CONTENT_TYPE, "application/json"));
    let occurred_at = identity.occurred_at.map(|at| at.to_rfc3339());
    for (name, value) in [
        (record_headers::EVENT_ID, identity.event_id.as_deref()),
        (record_headers::EVENT_TYPE, identity.event_type.as_deref()),
        (record_headers::OCCURRED_AT, occurred_at.as_deref()),
    ] {
        if let Some(value) = value {
            kafka_headers = kafka_headers.insert(header(name, value));
        }
    }
    kafka_headers
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// The value of header `name` of a record read back.
pub fn header_of<'m>(message: &'m OwnedMessage, name: &str) -> Option<&'m str> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Checks a dead letter's bookkeeping: where it first entered (`topic`, `origin`), how
/// many attempts it had, and that its error says `reason`.
pub fn assert_dead_letter(
    letter: &OwnedMessage,
    topic: &str,
    origin: (i32, i64),
    attempts: u32,
    reason: &str,
) {
    let (partition, offset) = origin;
    assert_eq!(
        header_of(letter, record_headers::ATTEMPTS),
        Some(attempts.to_string().as_str())
    );
    assert_eq!(header_of(letter, record_headers::ORIGIN_TOPIC), Some(topic));
    assert_eq!(
        header_of(letter, record_headers::ORIGIN_PARTITION),
        Some(partition.to_string().as_str())
    );
    assert_eq!(
        header_of(letter, record_headers::ORIGIN_OFFSET),
        Some(offset.to_string().as_str())
    );
    let error = header_of(letter, record_headers::ERROR);
    assert!(error.is_some_and(|e| e.contains(reason)), "{error:?}");
}

pub fn payload_of(message: &OwnedMessage) -> &[u8] {
    message.payload().unwrap_or_default()
}

/// A Standard Webhooks event as the emitter sends it.
pub fn prototype_event(invoice: &str, event_type: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": event_type,
        "timestamp": "2026-03-01T10:00:00Z",
        "data": {"invoice_id": format!("inv-{invoice}")}
    }))
    .expect("json")
}

pub fn policy(retries: u32, backoff_delay_ms: u64, dead_letter: bool) -> DeliveryPolicy {
    DeliveryPolicy {
        retries,
        backoff_policy: BackoffPolicy::Exponential,
        backoff_delay_ms,
        max_backoff_delay_ms: 10_000,
        dead_letter,
    }
}

/// An active entry of `webhook_id` (customer `ben@webhooksystem`) that delivers by `delivery`.
pub fn entry(webhook_id: &str, delivery: DeliveryPolicy) -> RegistryEntry {
    RegistryEntry {
        delivery,
        ..fixtures::registry_entry(webhook_id)
    }
}

/// The series of `metric` with `labels` (e.g. `source="events"`), as a scrape names it.
pub fn series(metric: MetricDef, labels: &str) -> String {
    format!("{}{{{labels}}}", metric.exported())
}

/// A consumer running in this process.
pub struct Running {
    pub ops_port: u16,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<Result<(), hookline_consumer::service::RunError>>>,
}

impl Running {
    pub async fn wait_ready(&self) {
        let port = self.ops_port;
        hookline_testkit::eventually("the consumer ready", Duration::from_secs(30), || async {
            let answer = tokio::task::spawn_blocking(move || http::get(port, "/readyz"))
                .await
                .expect("probe");
            matches!(answer, Some((200, _))).then_some(())
        })
        .await;
    }

    /// The value of one sample of /metrics (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        hookline_testkit::prometheus::sample(&self.metrics_text().await, sample).unwrap_or(0.0)
    }

    /// The sum of every series of `metric`.
    pub async fn metric_sum(&self, metric: MetricDef) -> f64 {
        hookline_testkit::prometheus::family_sum(&self.metrics_text().await, &metric.exported())
    }

    pub async fn metrics_text(&self) -> String {
        let port = self.ops_port;
        tokio::task::spawn_blocking(move || http::get(port, "/metrics"))
            .await
            .expect("scrape")
            .expect("/metrics answers")
            .1
    }

    /// Whether the service ended on its own.
    pub fn has_exited(&self) -> bool {
        self.task
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
    }

    /// SIGTERM's path: shutdown, then the service returns.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("stopped within 30 s")
                .expect("service task")
                .expect("service ended cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Every id in `ids` is stored exactly once, by its first attempt, and nothing went
/// to a retry tier or the dead-letter topic.
pub async fn assert_stored_once_without_retries(h: &Harness, ids: &[String]) {
    let mut stored: Vec<String> = sqlx::query_scalar("select message_id from events")
        .fetch_all(&h.pool)
        .await
        .expect("read events");
    stored.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(stored.len(), expected.len(), "rows vs events produced");
    assert!(
        stored == expected,
        "the stored message ids differ from the produced ones"
    );
    let retried: i64 = sqlx::query_scalar("select count(*) from events where attempts <> 1")
        .fetch_one(&h.pool)
        .await
        .expect("count retried");
    assert_eq!(retried, 0, "events stored by a retry");
    let dead: i64 = sqlx::query_scalar("select count(*) from dead_letters")
        .fetch_one(&h.pool)
        .await
        .expect("count dead letters");
    assert_eq!(dead, 0, "dead letters");
    let mut topics = vec![h.dead_letter_topic.clone()];
    topics.extend((0..TIER_COUNT).map(|tier| h.tier_topic(tier)));
    for topic in topics {
        assert_eq!(h.records_in(&topic).await, 0, "records in {topic}");
    }
}
