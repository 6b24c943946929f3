//! The consumer stage: events stored per second draining a pre-filled topic, the delay
//! from produce to row at a steady rate, and the consumer's resident memory. Runs the
//! release consumer binary against the stack's broker and PostgreSQL, with topics and
//! a database of its own that it removes afterwards.
//!
//! 1. Steady: `--rate` events per second for `--rate-secs`, produced as the handler
//!    does (key, body, headers; acks=all, idempotent, linger 2 ms). Every 20th event is
//!    a probe whose row is polled for every 5 ms: produce-to-row is from the send to
//!    the row being visible (committed). `received_to_stored` is the same from the
//!    rows' own columns (received-at header vs `stored_at`, the insert's clock), for
//!    every event.
//! 2. Drain: `--events` events of `--event-bytes` (the prototype's event shape, padded)
//!    pre-filled by a batching producer while no consumer runs; then the consumer
//!    starts and stores them. Stored/s comes from its `stored_total` counter between
//!    the first sample that moved and the last event; CPU per event is the consumer
//!    process's CPU time over the same span; `drain_series` is the counter every
//!    250 ms from the consumer's start (the chart of docs/BENCHMARKS.md).
//! 3. Steady again right after the drain (`after_drain_*`), while PostgreSQL is still
//!    writing out the checkpoints of the drain's write-ahead log.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use hookline_api::topics::TopicSpec;
use hookline_core::event_record::{EventRecord, VerifiedEvent};
use hookline_core::ids::{MessageId, WebhookId};
use hookline_core::provider::EventIdentity;
use hookline_core::registry::{self, Keyring, RateLimit, RegistryEntry};
use hookline_core::signature::Scheme;
use hookline_runtime::kafka::{
    self, KafkaConnection, client_config, ensure_topics, reliable_producer_config,
};
use hookline_testkit::fixtures;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, FutureProducer, FutureRecord, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use sqlx::PgPool;
use tokio::process::Child;

use crate::local::{Process, create_database, drop_database, kafka_connection};
use crate::report::{Report, round, rss_mb};

#[derive(clap::Args)]
pub struct Args {
    /// Events pre-filled into the topic and drained.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Bytes of every event body.
    #[arg(long, default_value_t = 1024)]
    event_bytes: usize,
    /// Partitions of the events topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Events per second of the steady run.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Seconds of the steady run.
    #[arg(long, default_value_t = 30)]
    rate_secs: u64,
    /// Loopback port of the consumer's /metrics during the run.
    #[arg(long, default_value_t = 19390)]
    ops_port: u16,
    /// Keep the database and topics afterwards (for inspection).
    #[arg(long)]
    keep: bool,
}

const DRAIN_WEBHOOK: &str = "bench-drain";
const STEADY_WEBHOOK: &str = "bench-steady";
const AFTER_DRAIN_WEBHOOK: &str = "bench-after-drain";
const PROBE_EVERY: u64 = 20;
/// The message id of each steady run's first, unmeasured event.
const WARMUP: &str = "steady-warmup";

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let kafka = kafka_connection()?;
    let admin_url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set: source .stack/env (make stack-up) first")?;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let events_topic = format!("hookline-bench-consumer-{suffix}");
    let topics = Topics::new(&events_topic);
    ensure_topics(
        &kafka,
        &topics.specs(args.partitions),
        Duration::from_secs(30),
    )
    .await?;
    publish_registry(
        &kafka,
        &topics.registry,
        &[DRAIN_WEBHOOK, STEADY_WEBHOOK, AFTER_DRAIN_WEBHOOK],
    )
    .await?;
    let database = format!("hookline_bench_consumer_{suffix}");
    let database_url = create_database(&admin_url, &database).await?;

    let mut report = Report::new("consumer");
    report
        .figure("events", args.events)
        .figure("event_bytes", args.event_bytes)
        .figure("partitions", args.partitions);

    // Steady rate on a quiet database.
    let mut consumer = Consumer::start(&kafka, &database_url, &topics, args.ops_port).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url)
        .await?;
    let steady = Steady {
        kafka: &kafka,
        topic: &events_topic,
        pool: &pool,
        rate: args.rate,
        secs: args.rate_secs,
        bytes: args.event_bytes,
    };
    println!("steady {} events/s for {} s", args.rate, args.rate_secs);
    let mut quiet = steady.measure(STEADY_WEBHOOK).await?;
    let (steady_rss, _) = rss_mb(consumer.pid()?)?;
    report
        .figure("steady_rate_per_s", args.rate)
        .latencies("produce_to_row", &mut quiet.probes)
        .figure("received_to_stored_p50_ms", round(quiet.p50_ms))
        .figure("received_to_stored_p99_ms", round(quiet.p99_ms))
        .figure("steady_rss_mb", steady_rss);
    consumer.stop().await?;

    println!(
        "pre-filling {} events of {} bytes",
        args.events, args.event_bytes
    );
    let started = Instant::now();
    prefill(&kafka, &events_topic, args.events, args.event_bytes)?;
    let prefill = started.elapsed();
    report.figure(
        "prefill_events_per_s",
        round(args.events as f64 / prefill.as_secs_f64()),
    );

    println!("draining into PostgreSQL");
    let mut consumer = Consumer::start(&kafka, &database_url, &topics, args.ops_port).await?;
    let drain = consumer.drain(args.events, &pool, &database).await?;
    let (drain_rss, _) = rss_mb(consumer.pid()?)?;
    report
        .figure("stored_per_s", round(drain.stored_per_s))
        .figure("drain_s", round(drain.elapsed.as_secs_f64()))
        .figure("drain_rss_mb", drain_rss)
        .figure("drain_consumer_cpu_s", round(drain.consumer_cpu_s))
        .figure(
            "cpu_us_per_event",
            round(drain.consumer_cpu_s * 1e6 / drain.events as f64),
        )
        .figure("drain_database_busy_share", round(drain.database_share))
        .figure(
            "drain_postgres_cpu_us_per_event",
            round(drain.postgres_cpu_s * 1e6 / drain.events as f64),
        )
        .figure("drain_mean_batch_events", round(drain.mean_batch))
        .figure(
            "drain_mean_transaction_ms",
            round(drain.mean_transaction_ms),
        )
        .figure("drain_series", drain.series);

    // The same steady rate right after the drain, while PostgreSQL checkpoints the
    // write-ahead log of a million rows.
    println!("steady again right after the drain");
    let mut after = steady.measure(AFTER_DRAIN_WEBHOOK).await?;
    let (_, peak) = rss_mb(consumer.pid()?)?;
    report
        .latencies("after_drain_produce_to_row", &mut after.probes)
        .figure("after_drain_received_to_stored_p99_ms", round(after.p99_ms))
        .figure("peak_rss_mb", peak);
    pool.close().await;
    consumer.stop().await?;

    if !args.keep {
        drop_database(&admin_url, &database).await?;
        delete_topics(&kafka, &topics.all()).await?;
    }
    Ok(report)
}

/// The stage's own topics, named like the real ones after its events topic.
pub(crate) struct Topics {
    pub(crate) events: String,
    pub(crate) dead_letters: String,
    pub(crate) registry: String,
}

impl Topics {
    pub(crate) fn new(events: &str) -> Self {
        Self {
            events: events.to_owned(),
            dead_letters: format!("{events}.dlq"),
            registry: format!("{events}.registry"),
        }
    }

    fn tiers(&self) -> Vec<String> {
        (0..hookline_api::topics::RETRY_TIER_DELAYS.len())
            .map(|n| format!("{}.retry.{n}", self.events))
            .collect()
    }

    pub(crate) fn all(&self) -> Vec<String> {
        let mut all = vec![
            self.events.clone(),
            self.dead_letters.clone(),
            self.registry.clone(),
        ];
        all.extend(self.tiers());
        all
    }

    pub(crate) fn specs(&self, partitions: i32) -> Vec<TopicSpec> {
        self.all()
            .into_iter()
            .map(|name| TopicSpec {
                compacted: name == self.registry,
                partitions: if name == self.registry { 1 } else { partitions },
                name,
                replication: 1,
            })
            .collect()
    }
}

pub(crate) async fn publish_registry(
    kafka: &KafkaConnection,
    topic: &str,
    webhook_ids: &[&str],
) -> anyhow::Result<()> {
    let producer: FutureProducer =
        reliable_producer_config(kafka, "hookline-bench", Duration::from_secs(30)).create()?;
    // The consumer reads the registry without keys (the entries carry no secrets), so
    // a throwaway key seals them.
    let keyring = Keyring::new("k1", [("k1", Keyring::generate_key().as_str())])?;
    for &webhook_id in webhook_ids {
        let entry = RegistryEntry {
            namespace: "bench".into(),
            customer_id: "bench".into(),
            secrets: vec![],
            rate_limit: RateLimit {
                requests_per_second: 1_000_000,
                burst: 1_000_000,
            },
            updated_at: Utc::now(),
            ..fixtures::registry_entry(webhook_id)
        };
        let value = registry::encode(&entry, registry::version_at(entry.updated_at), &keyring);
        producer
            .send(
                FutureRecord::to(topic).key(webhook_id).payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(err, _)| err)?;
    }
    Ok(())
}

/// An event body of exactly `bytes` (at least the prototype's fields): the default
/// simulated event, padded with a note of pseudo-random letters, so that compression
/// does not make the broker's and the consumer's work look smaller than it is.
pub(crate) fn event_body(n: u64, bytes: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let head = format!(
        r#"{{"event_id":"{n:012}","event_type":"PAID","timestamp":"2026-03-01T10:00:00Z","data":{{"invoice_id":"inv-{n:012}","note":""#
    );
    let tail = r#""}}"#;
    let mut body = String::with_capacity(bytes.max(head.len() + tail.len()));
    body.push_str(&head);
    // xorshift64: cheap, and the same note for the same n.
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..bytes.saturating_sub(head.len() + tail.len()) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        body.push(char::from(LETTERS[(state % LETTERS.len() as u64) as usize]));
    }
    body.push_str(tail);
    body
}

/// The headers the handler would write for a JSON event received now.
pub(crate) fn event_headers(webhook_id: &str, message_id: &str) -> OwnedHeaders {
    let identity = EventIdentity::default();
    let webhook_id = WebhookId::from(webhook_id);
    let message_id = MessageId::parse(message_id).expect("the bench's message ids are valid");
    let event = VerifiedEvent {
        webhook_id: &webhook_id,
        message_id: &message_id,
        received_at: Utc::now(),
        scheme: Scheme::Standard,
        content_type: Some(b"application/json"),
        traceparent: None,
        tracestate: None,
        identity: &identity,
        request_headers: None,
        body: b"",
    };
    kafka::owned_headers(&EventRecord::verified(&event))
}

/// Counts delivery reports of the pre-fill producer.
#[derive(Default)]
pub(crate) struct Deliveries {
    pub(crate) failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Fills the topic as fast as the broker takes it: large lz4 batches, acks from the
/// leader (the stack has one broker).
fn prefill(kafka: &KafkaConnection, topic: &str, events: u64, bytes: usize) -> anyhow::Result<()> {
    let mut config = client_config(kafka, "hookline-bench-prefill");
    config
        .set("acks", "1")
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.kbytes", "262144");
    let producer: ThreadedProducer<Deliveries> =
        config.create_with_context(Deliveries::default())?;
    for n in 0..events {
        let body = event_body(n, bytes);
        let message_id = format!("drain-{n:012}");
        let mut record = BaseRecord::to(topic)
            .key(DRAIN_WEBHOOK)
            .payload(&body)
            .headers(event_headers(DRAIN_WEBHOOK, &message_id));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((err, _)) => return Err(err.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} pre-fill events were not acknowledged");
    }
    Ok(())
}

/// A steady-rate run: where, how fast, how long.
struct Steady<'a> {
    kafka: &'a KafkaConnection,
    topic: &'a str,
    pool: &'a PgPool,
    rate: u64,
    secs: u64,
    bytes: usize,
}

/// What a steady run measured.
struct SteadyDelays {
    /// Send to row visible, of every probe.
    probes: Vec<Duration>,
    /// Received-at header to `stored_at`, of every event.
    p50_ms: f64,
    p99_ms: f64,
}

impl Steady<'_> {
    /// Produces events for `webhook_id` like the handler does and measures their delays.
    async fn measure(&self, webhook_id: &str) -> anyhow::Result<SteadyDelays> {
        const TICK: Duration = Duration::from_millis(10);
        let producer: FutureProducer =
            reliable_producer_config(self.kafka, "hookline-bench-steady", Duration::from_secs(10))
                .create()?;
        // Warm-up: the producer's first send waits for metadata and a producer id,
        // which is start-up, not steady state.
        producer
            .send(
                FutureRecord::to(self.topic)
                    .key(webhook_id)
                    .payload(&event_body(0, self.bytes))
                    .headers(event_headers(webhook_id, WARMUP)),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(err, _)| err)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while sqlx::query("SELECT 1 FROM events WHERE webhook_id = $1 AND message_id = $2")
            .bind(webhook_id)
            .bind(WARMUP)
            .fetch_optional(self.pool)
            .await?
            .is_none()
        {
            if Instant::now() > deadline {
                bail!("the warm-up event was not stored within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let total = self.rate * self.secs;
        let sent: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
        let seen = tokio::spawn(watch_probes(
            self.pool.clone(),
            webhook_id.to_owned(),
            sent.clone(),
            total.div_ceil(PROBE_EVERY),
        ));
        let per_tick = (self.rate / 100).max(1);
        let started = tokio::time::Instant::now();
        let mut deliveries = Vec::new();
        for n in 0..total {
            let message_id = format!("steady-{n:012}");
            let body = event_body(n, self.bytes);
            let record = FutureRecord::to(self.topic)
                .key(webhook_id)
                .payload(&body)
                .headers(event_headers(webhook_id, &message_id));
            if n % PROBE_EVERY == 0 {
                sent.lock()
                    .map_err(|_| anyhow::anyhow!("probe state poisoned"))?
                    .insert(message_id.clone(), Instant::now());
            }
            deliveries.push(producer.send_result(record).map_err(|(err, _)| err)?);
            if (n + 1) % per_tick == 0 {
                let tick = u32::try_from((n + 1) / per_tick)?;
                tokio::time::sleep_until(started + TICK * tick).await;
            }
        }
        for delivery in deliveries {
            delivery.await?.map_err(|(err, _)| err)?;
        }
        let probes = tokio::time::timeout(Duration::from_secs(120), seen)
            .await
            .context("not every probe was stored within 120 s")???;
        let (p50_ms, p99_ms): (f64, f64) = sqlx::query_as(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY d), \
                    percentile_disc(0.99) WITHIN GROUP (ORDER BY d) \
             FROM (SELECT extract(epoch FROM stored_at - received_at)::float8 * 1000 AS d \
                   FROM events WHERE webhook_id = $1 AND message_id <> $2) AS delays",
        )
        .bind(webhook_id)
        .bind(WARMUP)
        .fetch_one(self.pool)
        .await?;
        Ok(SteadyDelays {
            probes,
            p50_ms,
            p99_ms,
        })
    }
}

/// Polls for the probes' rows every 5 ms until `expected` were seen.
async fn watch_probes(
    pool: PgPool,
    webhook_id: String,
    sent: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
    expected: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    while (latencies.len() as u64) < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let pending: Vec<String> = sent
            .lock()
            .map_err(|_| anyhow::anyhow!("probe state poisoned"))?
            .keys()
            .cloned()
            .collect();
        if pending.is_empty() {
            continue;
        }
        let visible: Vec<String> = sqlx::query_scalar(
            "SELECT message_id FROM events WHERE webhook_id = $1 AND message_id = ANY($2)",
        )
        .bind(&webhook_id)
        .bind(&pending)
        .fetch_all(&pool)
        .await?;
        let now = Instant::now();
        let mut sent = sent
            .lock()
            .map_err(|_| anyhow::anyhow!("probe state poisoned"))?;
        for id in visible {
            if let Some(at) = sent.remove(&id) {
                latencies.push(now - at);
            }
        }
    }
    Ok(latencies)
}

pub(crate) async fn delete_topics(
    kafka: &KafkaConnection,
    topics: &[String],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(kafka, "hookline-bench-admin").create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    admin
        .delete_topics(
            &names,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    Ok(())
}

/// What draining measured.
struct Drain {
    elapsed: Duration,
    /// Events stored between the first sample that moved and the end.
    events: u64,
    stored_per_s: f64,
    consumer_cpu_s: f64,
    /// CPU of the PostgreSQL sessions on the stage's database: less disturbed by other
    /// work on the machine than the rate is.
    postgres_cpu_s: f64,
    /// Share of the drain's wall time spent inside database transactions.
    database_share: f64,
    mean_batch: f64,
    mean_transaction_ms: f64,
    /// `{t_s, stored, stored_per_s}` every 250 ms from the drain's start.
    series: serde_json::Value,
}

/// How often the drain's time series takes a point.
const SERIES_EVERY: Duration = Duration::from_millis(250);

/// The release consumer binary, started next to this one.
struct Consumer {
    child: Child,
    ops_port: u16,
}

/// Starts the release consumer on `topics`, in the group `<events topic>-group`, with
/// `extra` flags of `run`, and waits until it is ready.
pub(crate) async fn start_consumer(
    kafka: &KafkaConnection,
    database_url: &str,
    topics: &Topics,
    ops_port: u16,
    extra: &[&str],
) -> anyhow::Result<Child> {
    crate::local::start_ready(
        "consumer",
        |command| {
            command
                .args([
                    "--log-format",
                    "text",
                    "--database-url",
                    database_url,
                    "run",
                ])
                .args(["--kafka-bootstrap-servers", kafka.bootstrap_servers()])
                .envs(kafka.env_vars())
                .args(["--events-topic", &topics.events])
                .args(["--dead-letter-topic", &topics.dead_letters])
                .args(["--registry-topic", &topics.registry])
                .args(["--group-id", &format!("{}-group", topics.events)])
                .args(["--ops-addr", &format!("127.0.0.1:{ops_port}")])
                .args(extra);
        },
        ops_port,
    )
    .await
}

impl Consumer {
    async fn start(
        kafka: &KafkaConnection,
        database_url: &str,
        topics: &Topics,
        ops_port: u16,
    ) -> anyhow::Result<Self> {
        let child = start_consumer(kafka, database_url, topics, ops_port, &[]).await?;
        Ok(Self { child, ops_port })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the consumer exited")
    }

    /// Samples `stored_total` every 100 ms until `events` are stored.
    async fn drain(&mut self, events: u64, pool: &PgPool, database: &str) -> anyhow::Result<Drain> {
        let process = Process::find(self.pid()?)?;
        let begun = Instant::now();
        let deadline = begun + Duration::from_secs(1_800);
        let mut first: Option<(Instant, f64, Metrics, f64, f64)> = None;
        let mut series = Vec::new();
        let mut last_point = (begun, 0.0);
        loop {
            let metrics = self.metrics().await.unwrap_or_default();
            let now = Instant::now();
            if first.is_none() && metrics.stored > 0.0 {
                first = Some((
                    now,
                    metrics.stored,
                    metrics.clone(),
                    process.cpu_seconds()?,
                    sessions_cpu_seconds(pool, database).await?,
                ));
            }
            let done = metrics.stored >= events as f64;
            if done || now - last_point.0 >= SERIES_EVERY {
                let (at, stored) = last_point;
                series.push(serde_json::json!({
                    "t_s": round((now - begun).as_secs_f64()),
                    "stored": metrics.stored,
                    "stored_per_s": round((metrics.stored - stored) / (now - at).as_secs_f64()),
                }));
                last_point = (now, metrics.stored);
            }
            if done {
                let (start, stored_then, before, cpu_then, postgres_cpu_then) =
                    first.context("no sample before the drain ended")?;
                let elapsed = now - start;
                let batches = metrics.batches - before.batches;
                let transactions = metrics.database_seconds - before.database_seconds;
                return Ok(Drain {
                    elapsed,
                    events: (metrics.stored - stored_then) as u64,
                    stored_per_s: (metrics.stored - stored_then) / elapsed.as_secs_f64(),
                    consumer_cpu_s: process.cpu_seconds()? - cpu_then,
                    postgres_cpu_s: sessions_cpu_seconds(pool, database).await? - postgres_cpu_then,
                    database_share: transactions / elapsed.as_secs_f64(),
                    mean_batch: (metrics.batch_events - before.batch_events) / batches.max(1.0),
                    mean_transaction_ms: transactions * 1_000.0 / batches.max(1.0),
                    series: series.into(),
                });
            }
            if Instant::now() > deadline {
                bail!("{} of {events} stored within 30 minutes", metrics.stored);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&self) -> anyhow::Result<Metrics> {
        let (_, body) = self.get("/metrics").await?;
        let sample = |name: &str| {
            body.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Ok(Metrics {
            // One series per Webhook.
            stored: hookline_testkit::prometheus::family_sum(
                &body,
                "hookline_consumer_stored_total",
            ),
            batches: sample("hookline_consumer_batch_size_count{source=\"events\"}"),
            batch_events: sample("hookline_consumer_batch_size_sum{source=\"events\"}"),
            database_seconds: sample("hookline_consumer_database_seconds_sum"),
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        crate::local::http_get(self.ops_port, path).await
    }

    async fn stop(&mut self) -> anyhow::Result<()> {
        // SIGTERM: the graceful shutdown commits the final offsets.
        crate::local::terminate(&mut self.child, Duration::from_secs(60)).await
    }
}

/// CPU seconds spent so far by the PostgreSQL sessions connected to `database` (a
/// session that ends meanwhile is no longer counted; the consumer's pool keeps its).
async fn sessions_cpu_seconds(pool: &PgPool, database: &str) -> anyhow::Result<f64> {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
    )
    .bind(database)
    .fetch_all(pool)
    .await?;
    let mut seconds = 0.0;
    for pid in pids {
        // A session that ended since the list was read spent nothing more.
        if let Ok(cpu) = u32::try_from(pid)
            .map_err(anyhow::Error::from)
            .and_then(Process::find)
            .and_then(|process| process.cpu_seconds())
        {
            seconds += cpu;
        }
    }
    Ok(seconds)
}

/// The consumer's counters the drain figures come from.
#[derive(Debug, Clone, Default)]
struct Metrics {
    stored: f64,
    batches: f64,
    batch_events: f64,
    database_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_bodies_have_the_asked_size_and_are_prototype_json() {
        let body = event_body(7, 1024);
        assert_eq!(body.len(), 1024);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["event_id"], "000000000007");
        assert_eq!(value["data"]["invoice_id"], "inv-000000000007");
    }
}
