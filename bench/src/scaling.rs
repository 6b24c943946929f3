//! The consumer-scaling stage: a steady rate spread over every partition of an events
//! topic while the consumers are scaled 2 → 4 → 1 (new processes joining, then three
//! stopped with SIGTERM as `kubectl scale` does), and how long any partition went
//! unread meanwhile.
//!
//! Every event carries its produce time as its received-at header, so each row holds
//! its own produce-to-row delay (`stored_at - received_at`). A partition's stall is
//! the longest delay of any of its events: an event waits exactly as long as its
//! partition is not read. Figures: the longest stall of any partition, the p50/p99/max
//! of the delay over the whole run and around each scaling step, and whether every
//! produced event was stored once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hookline_runtime::kafka::{KafkaConnection, client_config, ensure_topics};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use sqlx::PgPool;
use tokio::process::Child;
use tokio::time::Instant;

use crate::consumer::{
    Deliveries, Topics, delete_topics, event_body, event_headers, publish_registry, start_consumer,
};
use crate::local::{create_database, drop_database, kafka_connection, terminate};
use crate::report::{Report, round};

#[derive(clap::Args)]
pub struct Args {
    /// Events per second, spread evenly over the partitions.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Partitions of the events topic (one Webhook per partition).
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Seconds of each phase: 2 consumers, then 4, then 1.
    #[arg(long, default_value_t = 20)]
    phase_secs: u64,
    /// Bytes of every event body.
    #[arg(long, default_value_t = 1024)]
    event_bytes: usize,
    /// Give the consumers static group membership (group.instance.id), as the chart
    /// did before: shows what a scale-down costs with it.
    #[arg(long)]
    static_membership: bool,
    /// First loopback port of the consumers' ops endpoints (four in a row).
    #[arg(long, default_value_t = 19400)]
    ops_port: u16,
}

const MAX_CONSUMERS: usize = 4;

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let kafka = kafka_connection()?;
    let admin_url = std::env::var("DATABASE_URL")
        .context("DATABASE_URL is not set: source .stack/env (make stack-up) first")?;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let topics = Topics::new(&format!("hookline-bench-scaling-{suffix}"));
    ensure_topics(
        &kafka,
        &topics.specs(args.partitions),
        Duration::from_secs(30),
    )
    .await?;
    let webhooks: Vec<String> = (0..args.partitions)
        .map(|p| format!("bench-scale-{p}"))
        .collect();
    let webhook_refs: Vec<&str> = webhooks.iter().map(String::as_str).collect();
    publish_registry(&kafka, &topics.registry, &webhook_refs).await?;
    let database = format!("hookline_bench_scaling_{suffix}");
    let database_url = create_database(&admin_url, &database).await?;

    let result = measure(&args, &kafka, &database_url, &topics, &webhooks).await;
    drop_database(&admin_url, &database).await?;
    delete_topics(&kafka, &topics.all()).await?;
    result
}

async fn measure(
    args: &Args,
    kafka: &KafkaConnection,
    database_url: &str,
    topics: &Topics,
    webhooks: &[String],
) -> anyhow::Result<Report> {
    let start = |n: usize| async move {
        let instance = format!("bench-scaling-{n}");
        let extra: &[&str] = if args.static_membership {
            &["--group-instance-id", &instance]
        } else {
            &[]
        };
        start_consumer(kafka, database_url, topics, args.ops_port + n as u16, extra).await
    };
    let mut consumers: Vec<Child> = Vec::new();
    for n in 0..2 {
        consumers.push(start(n).await?);
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await?;
    // Wait until the two hold every partition: one event per partition stored.
    let producer = Paced::new(kafka, &topics.events, webhooks, args.event_bytes)?;
    producer.one_per_partition("settle")?;
    wait_stored(&pool, i64::from(args.partitions), Duration::from_secs(60)).await?;

    let phase = Duration::from_secs(args.phase_secs);
    let begun = Instant::now();
    // The traffic runs on its own task, so starting and stopping consumers never
    // pauses it.
    let traffic = tokio::spawn(producer.run(args.rate, begun + phase * 3));
    let mut marks = Vec::new();
    tokio::time::sleep_until(begun + phase).await;
    println!("scaling 2 -> 4");
    marks.push(("scale_up_to_4", chrono::Utc::now()));
    for n in consumers.len()..MAX_CONSUMERS {
        consumers.push(start(n).await?);
    }
    tokio::time::sleep_until(begun + phase * 2).await;
    println!("scaling 4 -> 1");
    marks.push(("scale_down_to_1", chrono::Utc::now()));
    // The three stop together, as a Deployment scaled down does.
    let stops: Vec<_> = consumers
        .drain(1..)
        .map(|mut child| {
            tokio::spawn(async move { terminate(&mut child, Duration::from_secs(60)).await })
        })
        .collect();
    for stop in stops {
        stop.await??;
    }
    let produced = traffic.await??;
    println!("{produced} produced; draining");
    wait_stored(
        &pool,
        produced as i64 + i64::from(args.partitions),
        Duration::from_secs(120),
    )
    .await?;
    for mut child in consumers {
        terminate(&mut child, Duration::from_secs(60)).await?;
    }

    let mut report = Report::new("consumer_scaling");
    report
        .figure("rate_per_s", args.rate)
        .figure("partitions", args.partitions)
        .figure("phase_s", args.phase_secs)
        .figure("static_membership", args.static_membership)
        .figure("events", produced);
    let (stored, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (webhook_id, message_id)) FROM events \
         WHERE message_id NOT LIKE 'settle-%'",
    )
    .fetch_one(&pool)
    .await?;
    if stored != produced as i64 || distinct != stored {
        bail!("{produced} produced, {stored} rows, {distinct} distinct: not each once");
    }
    report.figure("stored_each_once", true);
    let whole = delays(&pool, None).await?;
    report
        .figure("produce_to_row_p50_ms", round(whole.0))
        .figure("produce_to_row_p99_ms", round(whole.1))
        .figure("produce_to_row_max_ms", round(whole.2));
    // Around each step: from 2 s before to the phase after it.
    for (step, at) in &marks {
        let window = (
            *at - chrono::Duration::seconds(2),
            *at + chrono::Duration::seconds(args.phase_secs as i64),
        );
        let around = delays(&pool, Some(window)).await?;
        report
            .figure(&format!("{step}_p99_ms"), round(around.1))
            .figure(&format!("{step}_max_ms"), round(around.2));
    }
    let stalls: Vec<(String, f64)> = sqlx::query_as(
        "SELECT webhook_id, max(extract(epoch FROM stored_at - received_at) * 1000)::float8 \
         FROM events WHERE message_id NOT LIKE 'settle-%' GROUP BY 1 ORDER BY 2 DESC",
    )
    .fetch_all(&pool)
    .await?;
    let longest = stalls.first().map_or(0.0, |(_, ms)| *ms);
    report.figure("longest_partition_stall_ms", round(longest));
    report.figure(
        "partition_stalls_ms",
        serde_json::Value::from(
            stalls
                .iter()
                .map(
                    |(webhook, ms)| serde_json::json!({"webhook": webhook, "stall_ms": round(*ms)}),
                )
                .collect::<Vec<_>>(),
        ),
    );
    println!(
        "longest partition stall {longest:.0} ms; produce-to-row p99 {:.1} ms, max {:.0} ms",
        whole.1, whole.2
    );
    pool.close().await;
    Ok(report)
}

/// p50, p99 and max of `stored_at - received_at` in ms, optionally for events received
/// within `window`.
async fn delays(
    pool: &PgPool,
    window: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
) -> anyhow::Result<(f64, f64, f64)> {
    let (from, to) = window.unzip();
    let row: (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY d), max(d) \
         FROM (SELECT extract(epoch FROM stored_at - received_at)::float8 * 1000 AS d FROM events \
               WHERE message_id NOT LIKE 'settle-%' \
                 AND ($1::timestamptz IS NULL OR received_at >= $1) \
                 AND ($2::timestamptz IS NULL OR received_at < $2)) AS delays",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    match row {
        (Some(p50), Some(p99), Some(max)) => Ok((p50, p99, max)),
        _ => bail!("no events stored in {window:?}"),
    }
}

async fn wait_stored(pool: &PgPool, expected: i64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await?;
        if stored >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{stored} of {expected} events stored within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produces as the handler does (acks=all, idempotent), one Webhook per partition,
/// round robin, with the produce time as the received-at header.
struct Paced {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
    webhooks: Vec<String>,
    body: String,
}

impl Paced {
    fn new(
        kafka: &KafkaConnection,
        topic: &str,
        webhooks: &[String],
        bytes: usize,
    ) -> anyhow::Result<Self> {
        let mut config = client_config(kafka, "hookline-bench-scaling");
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("compression.type", "lz4");
        Ok(Self {
            producer: config.create_with_context(Deliveries::default())?,
            topic: topic.to_owned(),
            webhooks: webhooks.to_vec(),
            body: event_body(0, bytes),
        })
    }

    /// `rate` events per second in 10 ms ticks until `until`, then every
    /// acknowledgement; returns how many were produced.
    async fn run(self, rate: u64, until: Instant) -> anyhow::Result<u64> {
        let tick = Duration::from_millis(10);
        let per_tick = (rate / 100).max(1);
        let mut produced = 0;
        let mut next = Instant::now();
        while Instant::now() < until {
            self.send(per_tick, &mut produced)?;
            next += tick;
            tokio::time::sleep_until(next).await;
        }
        self.flush()?;
        Ok(produced)
    }

    fn send_one(&self, partition: usize, message_id: &str) -> anyhow::Result<()> {
        let webhook = &self.webhooks[partition];
        let record = BaseRecord::to(&self.topic)
            .partition(i32::try_from(partition)?)
            .key(webhook.as_str())
            .payload(self.body.as_str())
            .headers(event_headers(webhook, message_id));
        self.producer
            .send(record)
            .map_err(|(err, _)| anyhow::anyhow!("cannot queue an event: {err}"))
    }

    fn one_per_partition(&self, prefix: &str) -> anyhow::Result<()> {
        for partition in 0..self.webhooks.len() {
            self.send_one(partition, &format!("{prefix}-{partition}"))?;
        }
        Ok(())
    }

    fn send(&self, count: u64, produced: &mut u64) -> anyhow::Result<()> {
        for _ in 0..count {
            let partition = (*produced % self.webhooks.len() as u64) as usize;
            self.send_one(partition, &format!("scale-{produced}"))?;
            *produced += 1;
        }
        Ok(())
    }

    fn flush(&self) -> anyhow::Result<()> {
        self.producer.flush(Duration::from_secs(30))?;
        let failed = self.producer.context().failed.load(Ordering::Relaxed);
        if failed > 0 {
            bail!("{failed} events were not acknowledged by Kafka");
        }
        Ok(())
    }
}
