//! The handler stage: verified requests per second at saturation, latency at a fixed
//! rate, and the handler's resident memory. Runs the release handler binary against
//! the stack's broker (`acks=all`) with a registry topic and an events topic of its
//! own, and drives it over keep-alive HTTP/1.1 connections with 1 KiB bodies signed
//! alternately with Standard Webhooks and `legacy-hex` (so the same load generator
//! can drive any receiver of those schemes). The saturation run also gives the
//! handler's CPU time per verified request (`cpu_us_per_request`, from /proc).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::Utc;
use hookline_api::topics::TopicSpec;
use hookline_core::registry::{self, RateLimit, RegistryEntry};
use hookline_core::signature::{self, Scheme, SigningSecret};
use hookline_runtime::kafka::{KafkaConnection, client_config, ensure_topics};
use hookline_testkit::fixtures;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::net::TcpStream;
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::local::{BenchKeys, Process, kafka_connection};
use crate::report::{Report, percentile, round, rss_mb};

#[derive(clap::Args)]
pub struct Args {
    /// Keep-alive connections driving the handler at saturation.
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// Seconds of saturation load (run last).
    #[arg(long, default_value_t = 15)]
    saturation_secs: u64,
    /// Requests per second of the fixed-rate run.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Seconds of the fixed-rate run.
    #[arg(long, default_value_t = 15)]
    rate_secs: u64,
    /// Bytes of every request body.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// The handler's --worker-threads: 1, as the chart's handler.workerThreads.
    #[arg(long, default_value_t = 1)]
    worker_threads: u16,
    /// Loopback port the handler listens on during the run.
    #[arg(long, default_value_t = 19280)]
    port: u16,
    /// Loopback port of the handler's /readyz and /metrics during the run.
    #[arg(long, default_value_t = 19281)]
    ops_port: u16,
}

/// One sender's signing material.
pub(crate) struct Sender {
    pub(crate) webhook_id: String,
    pub(crate) scheme: Scheme,
    pub(crate) secret: SigningSecret,
}

/// What a run measured.
#[derive(Default)]
struct Run {
    latencies: Vec<Duration>,
    accepted: u64,
    errors: u64,
    elapsed: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let kafka = kafka_connection()?;
    let topics = RunTopics::create(&kafka).await?;
    let senders =
        Arc::new(publish_senders(&kafka, &topics, &topics.suffix, &["127.0.0.0/8"]).await?);

    let worker_threads = args.worker_threads.to_string();
    let mut handler = Handler::start(
        &kafka,
        &topics,
        (args.port, args.ops_port),
        &["--worker-threads", &worker_threads],
    )
    .await?;
    let mut report = Report::new("handler");
    let counter = Arc::new(AtomicU64::new(0));
    let load = Load {
        port: args.port,
        senders,
        counter,
        body_bytes: args.body_bytes,
    };

    // Warm-up at the measured rate. Not at saturation: a few seconds of it leave the
    // broker ~200 MB of writes to flush, and a fixed-rate run right after shows a
    // 35-50 ms p99 that the handler's produce histogram puts on the broker's acks.
    load.fixed_rate(args.rate, Duration::from_secs(2), args.connections)
        .await?;

    let before = handler.get("/metrics").await?.1;
    let process = Process::find(handler.pid()?)?;
    let fixed_cpu_before = process.cpu_seconds()?;
    let mut fixed = load
        .fixed_rate(
            args.rate,
            Duration::from_secs(args.rate_secs),
            args.connections,
        )
        .await?;
    let fixed_cpu = process.cpu_seconds()? - fixed_cpu_before;
    let after = handler.get("/metrics").await?.1;
    fixed.latencies.sort_unstable();
    let ms = |q| round(percentile(&fixed.latencies, q).as_secs_f64() * 1_000.0);
    report
        .figure("fixed_rate_target_per_s", args.rate)
        .figure("worker_threads", args.worker_threads)
        .figure(
            "fixed_rate_achieved_per_s",
            round(fixed.accepted as f64 / fixed.elapsed.as_secs_f64()),
        )
        .figure("fixed_rate_errors", fixed.errors)
        // At a fixed rate below saturation each request pays more wake-ups (threads
        // parked between requests, smaller produce batches): the figure the
        // end-to-end CPU per event is made of.
        .figure(
            "fixed_rate_cpu_us_per_request",
            round(fixed_cpu * 1e6 / fixed.accepted.max(1) as f64),
        )
        .figure("p50_ms", ms(0.5))
        .figure("p99_ms", ms(0.99))
        .figure("p999_ms", ms(0.999))
        .figure(
            "max_ms",
            round(
                fixed
                    .latencies
                    .last()
                    .copied()
                    .unwrap_or_default()
                    .as_secs_f64()
                    * 1_000.0,
            ),
        );
    // Where the time goes: the handler's own view of the same requests (histogram
    // buckets, so an upper bound), and the share of it spent waiting for the broker.
    for (figure, metric) in [
        (
            "server_request",
            "hookline_handler_request_duration_seconds",
        ),
        ("server_produce", "hookline_handler_produce_latency_seconds"),
    ] {
        let delta = Histogram::between(&before, &after, metric);
        if let Some(mean) = delta.mean() {
            report.figure(&format!("{figure}_mean_ms"), round(mean * 1_000.0));
        }
        if let Some(p99) = delta.quantile_upper_bound(0.99) {
            report.figure(&format!("{figure}_p99_le_ms"), round(p99 * 1_000.0));
        }
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_before = process.cpu_seconds()?;
    let mut saturation = load
        .saturate(args.connections, Duration::from_secs(args.saturation_secs))
        .await?;
    let cpu = process.cpu_seconds()? - cpu_before;
    // Right after saturation, when the handler holds the most.
    let (rss, peak) = rss_mb(handler.pid()?)?;
    report
        .figure(
            "requests_per_s",
            round(saturation.accepted as f64 / saturation.elapsed.as_secs_f64()),
        )
        .figure("saturation_connections", args.connections)
        .figure("saturation_errors", saturation.errors)
        // The handler's CPU time per verified (202) request in the closed loop, where
        // it is busiest: what a core buys, whatever the broker's latency.
        .figure(
            "cpu_us_per_request",
            round(cpu * 1e6 / saturation.accepted.max(1) as f64),
        )
        .latencies("saturation", &mut saturation.latencies);

    report
        .figure("rss_mb", rss)
        .figure("peak_rss_mb", peak)
        .figure("body_bytes", args.body_bytes);
    handler.stop().await?;

    let accepted_total = saturation.accepted + fixed.accepted;
    let stored = stored_events(&kafka, &topics.events_topic).await?;
    report.figure("events_stored", stored);
    if stored < accepted_total {
        bail!(
            "{accepted_total} requests were answered 202 but only {stored} events are in {}",
            topics.events_topic
        );
    }
    Ok(report)
}

/// Registers one Standard Webhooks and one legacy-hex webhook with a rate limit the
/// benchmark cannot reach.
/// A run's own registry and events topics, and the keyring the handler opens the
/// registry's sealed secrets with.
pub(crate) struct RunTopics {
    pub(crate) keys: BenchKeys,
    pub(crate) suffix: String,
    pub(crate) registry_topic: String,
    pub(crate) events_topic: String,
}

impl RunTopics {
    pub(crate) async fn create(kafka: &KafkaConnection) -> anyhow::Result<Self> {
        let keys = BenchKeys::generate()?;
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        let registry_topic = format!("hookline-bench-registry-{suffix}");
        let events_topic = format!("hookline-bench-events-{suffix}");
        ensure_topics(
            kafka,
            &[
                TopicSpec::registry(registry_topic.clone(), 1),
                TopicSpec::events(events_topic.clone(), 3, 1),
            ],
            Duration::from_secs(30),
        )
        .await?;
        Ok(Self {
            keys,
            suffix,
            registry_topic,
            events_topic,
        })
    }
}

/// Registers a Standard Webhooks and a legacy-hex webhook on `topics`' registry,
/// admitting `allowed_source_ranges` (none: every address), ids ending in `suffix`.
pub(crate) async fn publish_senders(
    kafka: &KafkaConnection,
    topics: &RunTopics,
    suffix: &str,
    allowed_source_ranges: &[&str],
) -> anyhow::Result<Vec<Sender>> {
    let (keyring, topic) = (&topics.keys.keyring, topics.registry_topic.as_str());
    let producer: FutureProducer = client_config(kafka, "hookline-bench").create()?;
    let mut senders = Vec::new();
    for scheme in [Scheme::Standard, Scheme::LegacyHex] {
        let secret = signature::generate_standard_secret();
        let entry = RegistryEntry {
            namespace: "bench".into(),
            name: scheme.to_string(),
            customer_id: "bench".into(),
            scheme,
            secrets: vec![fixtures::secret(&secret)],
            rate_limit: RateLimit {
                requests_per_second: 1_000_000,
                burst: 1_000_000,
            },
            allowed_source_ranges: allowed_source_ranges
                .iter()
                .map(|range| (*range).to_owned())
                .collect(),
            updated_at: Utc::now(),
            ..fixtures::registry_entry(&format!("bench-{scheme}-{suffix}"))
        };
        let value = registry::encode(&entry, registry::version_at(entry.updated_at), keyring);
        producer
            .send(
                FutureRecord::to(topic)
                    .key(entry.webhook_id.as_str())
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(err, _)| err)?;
        senders.push(Sender {
            webhook_id: entry.webhook_id.into(),
            scheme,
            secret: SigningSecret::parse(scheme, &secret)?,
        });
    }
    Ok(senders)
}

/// The load generator: keep-alive connections sending signed requests.
struct Load {
    port: u16,
    senders: Arc<Vec<Sender>>,
    counter: Arc<AtomicU64>,
    body_bytes: usize,
}

impl Load {
    /// Every connection sends its next request as soon as the last is answered.
    async fn saturate(&self, connections: usize, duration: Duration) -> anyhow::Result<Run> {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let mut connection = self.connect().await?;
            let (senders, counter, body_bytes) =
                (self.senders.clone(), self.counter.clone(), self.body_bytes);
            tasks.push(tokio::spawn(async move {
                let mut run = Run::default();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let request = signed_request(&senders, n, body_bytes);
                    let sent = Instant::now();
                    let ok = send(&mut connection, request).await;
                    run.latencies.push(sent.elapsed());
                    if ok {
                        run.accepted += 1;
                    } else {
                        run.errors += 1;
                    }
                }
                run
            }));
        }
        collect(tasks, started).await
    }

    /// Requests scheduled at `rate` per second whatever the answers (open loop):
    /// latency counts from the scheduled time, so a stall is not hidden by sending
    /// less (no coordinated omission).
    async fn fixed_rate(
        &self,
        rate: u64,
        duration: Duration,
        connections: usize,
    ) -> anyhow::Result<Run> {
        let (idle_tx, mut idle_rx) = mpsc::channel(connections);
        for _ in 0..connections {
            idle_tx.send(self.connect().await?).await?;
        }
        let total = rate * duration.as_secs();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..total {
            let scheduled = started + interval.mul_f64(i as f64);
            tokio::time::sleep_until(scheduled.into()).await;
            let mut connection = idle_rx.recv().await.context("connection pool closed")?;
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let request = signed_request(&self.senders, n, self.body_bytes);
            let idle_tx = idle_tx.clone();
            tasks.push(tokio::spawn(async move {
                let ok = send(&mut connection, request).await;
                let latency = scheduled.elapsed();
                // The pool outlives every task; a closed pool only loses this connection.
                let _ = idle_tx.send(connection).await;
                let mut run = Run::default();
                run.latencies.push(latency);
                if ok {
                    run.accepted = 1;
                } else {
                    run.errors = 1;
                }
                run
            }));
        }
        collect(tasks, started).await
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Run>>,
    started: Instant,
) -> anyhow::Result<Run> {
    let mut total = Run::default();
    for task in tasks {
        let run = task.await?;
        total.latencies.extend(run.latencies);
        total.accepted += run.accepted;
        total.errors += run.errors;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// Request `n`: senders alternate; the body carries `n`, so no two are alike (a
/// repeated legacy-hex body would be acknowledged as a replay without producing).
/// The padding is pseudo-random, so lz4 cannot shrink the broker's work to nothing.
fn signed_request(senders: &[Sender], n: u64, body_bytes: usize) -> Request<Full<Bytes>> {
    let sender = &senders[(n % senders.len() as u64) as usize];
    let event_id = format!("bench-{n:012}");
    let mut body = format!(
        r#"{{"event_id":"{event_id}","event_type":"PAID","timestamp":"{}","data":{{"invoice_id":"{event_id}","padding":""#,
        Utc::now().to_rfc3339()
    )
    .into_bytes();
    let close = br#""}}"#;
    let padding = body_bytes.saturating_sub(close.len() + body.len());
    body.extend(filler(n, padding));
    body.extend_from_slice(close);
    let headers = signature::sign(
        sender.scheme,
        std::slice::from_ref(&sender.secret),
        &format!("msg_{event_id}"),
        Utc::now(),
        &body,
    )
    .unwrap_or_default();
    let mut request = Request::post(format!("/webhooks/{}", sender.webhook_id))
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|err| panic!("benchmark request: {err}"))
}

/// `len` letters and digits from a xorshift generator seeded with `n`.
fn filler(n: u64, len: usize) -> impl Iterator<Item = u8> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ALPHABET[(state % 62) as usize]
    })
}

/// Sends one request; true for a 202 that stored the event.
async fn send(connection: &mut SendRequest<Full<Bytes>>, request: Request<Full<Bytes>>) -> bool {
    if connection.ready().await.is_err() {
        return false;
    }
    let Ok(response) = connection.send_request(request).await else {
        return false;
    };
    let status = response.status();
    let body = response.into_body().collect().await.map(|b| b.to_bytes());
    status == hyper::StatusCode::ACCEPTED
        && body.is_ok_and(|b| b.windows(8).any(|w| w == b"accepted"))
}

/// A Prometheus histogram read from text: cumulative bucket counts by upper bound,
/// sum and count.
#[derive(Debug, Default, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    fn parse(metrics: &str, name: &str) -> Self {
        let mut histogram = Self::default();
        for line in metrics.lines().filter(|line| line.starts_with(name)) {
            let mut parts = line.split_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let suffix = &key[name.len()..];
            if suffix == "_sum" {
                histogram.sum = value;
            } else if suffix == "_count" {
                histogram.count = value;
            } else if let Some(bound) = suffix
                .strip_prefix("_bucket{le=\"")
                .and_then(|rest| rest.strip_suffix("\"}"))
            {
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().unwrap_or(f64::INFINITY)
                };
                histogram.buckets.push((bound, value));
            }
        }
        histogram
    }

    /// What was observed between two scrapes of the same histogram.
    fn between(before: &str, after: &str, name: &str) -> Self {
        let (before, after) = (Self::parse(before, name), Self::parse(after, name));
        Self {
            buckets: after
                .buckets
                .iter()
                .map(|(bound, count)| {
                    let earlier = before
                        .buckets
                        .iter()
                        .find(|(b, _)| b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (*bound, count - earlier)
                })
                .collect(),
            sum: after.sum - before.sum,
            count: after.count - before.count,
        }
    }

    fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The upper bound of the bucket holding quantile `q`.
    fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank && self.count > 0.0)
            .map(|(bound, _)| *bound)
    }
}

/// Messages in `topic` (the sum of its partitions' high watermarks).
async fn stored_events(kafka: &KafkaConnection, topic: &str) -> anyhow::Result<u64> {
    let consumer: BaseConsumer = client_config(kafka, "hookline-bench").create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let timeout = Duration::from_secs(30);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let mut total = 0;
        for partition in metadata.topics().first().context("no topic")?.partitions() {
            let (low, high) = consumer.fetch_watermarks(&topic, partition.id(), timeout)?;
            total += u64::try_from(high - low).unwrap_or(0);
        }
        Ok(total)
    })
    .await?
}

/// The release handler binary: webhooks on one loopback port, /readyz and /metrics on
/// the other.
pub(crate) struct Handler {
    child: Child,
    ops_port: u16,
}

impl Handler {
    pub(crate) async fn start(
        kafka: &KafkaConnection,
        topics: &RunTopics,
        (port, ops_port): (u16, u16),
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        let child = crate::local::start_ready(
            "handler",
            |command| {
                command
                    .args(["--log-format", "text"])
                    .args(["--kafka-bootstrap-servers", kafka.bootstrap_servers()])
                    .envs(kafka.env_vars())
                    .arg("--registry-keys-dir")
                    .arg(&topics.keys.dir)
                    .args(["--listen-addr", &format!("127.0.0.1:{port}")])
                    .args(["--ops-addr", &format!("127.0.0.1:{ops_port}")])
                    .args(["--registry-topic", &topics.registry_topic])
                    .args(["--events-topic", &topics.events_topic])
                    .args(extra_args);
            },
            ops_port,
        )
        .await?;
        Ok(Self { child, ops_port })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the handler exited")
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        crate::local::http_get(self.ops_port, path).await
    }

    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        // SIGTERM: the graceful shutdown flushes the producer.
        crate::local::terminate(&mut self.child, Duration::from_secs(60)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_alternate_schemes_have_the_body_size_and_verify() {
        let senders: Vec<Sender> = [Scheme::Standard, Scheme::LegacyHex]
            .into_iter()
            .map(|scheme| Sender {
                webhook_id: format!("wh-{scheme}"),
                scheme,
                secret: SigningSecret::parse(scheme, &signature::generate_standard_secret())
                    .unwrap(),
            })
            .collect();
        for n in 0..4 {
            let request = signed_request(&senders, n, 1024);
            let sender = &senders[(n % 2) as usize];
            assert_eq!(
                request.uri().path(),
                format!("/webhooks/{}", sender.webhook_id)
            );
            let headers: Vec<(String, Vec<u8>)> = request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            let body = futures::executor::block_on(request.into_body().collect())
                .unwrap()
                .to_bytes();
            assert_eq!(body.len(), 1024);
            assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
            signature::verify(
                sender.scheme,
                headers.as_slice(),
                &body,
                std::slice::from_ref(&sender.secret),
                Utc::now(),
                signature::DEFAULT_TOLERANCE,
            )
            .unwrap();
        }
    }

    #[test]
    fn histograms_subtract_between_scrapes_and_give_bucket_quantiles() {
        let before = "x_sum 1.0\nx_count 2\nx_bucket{le=\"0.001\"} 1\nx_bucket{le=\"0.01\"} 2\nx_bucket{le=\"+Inf\"} 2\n";
        let after = "x_sum 3.0\nx_count 102\nx_bucket{le=\"0.001\"} 90\nx_bucket{le=\"0.01\"} 101\nx_bucket{le=\"+Inf\"} 102\n";
        let delta = Histogram::between(before, after, "x");
        assert_eq!(delta.count, 100.0);
        assert_eq!(delta.mean(), Some(0.02));
        assert_eq!(delta.quantile_upper_bound(0.5), Some(0.001));
        assert_eq!(delta.quantile_upper_bound(0.99), Some(0.01));
        assert_eq!(delta.quantile_upper_bound(1.0), Some(f64::INFINITY));
        assert_eq!(Histogram::between(after, after, "x").mean(), None);
    }
}
