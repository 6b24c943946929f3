//! The end-to-end stage: the whole system as `make run` starts it (release binaries,
//! three handlers behind nginx, two consumers), an emitter Webhook at a steady rate, and
//! the delay from an event's creation in the emitter to its row in PostgreSQL.
//!
//! Each rate is measured `--repeats` times, each time with a Webhook of its own. The
//! emitter is switched on only once every handler knows the Webhook and the consumers
//! hold every partition of the events topic, so a window never measures start-up. Per
//! rate it reports the latency, the stored rate and the CPU seconds each kind of process
//! spent per 1,000 events (from /proc), every repeat's sample and, as the figure, the
//! worse of them; `curve` holds the same for every rate tried, for the report's chart.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hookline_api::webhook::Webhook;
use hookline_core::kafka::{KafkaConnection, client_config};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::local::{Process, cpu_seconds, http_get, http_post, kafka_connection};
use crate::report::{Report, round};

const NAMESPACE: &str = "hookline-bench";
/// The replicas `dev/run.sh` gives the chart.
const HANDLERS: usize = 3;
const CONSUMERS: usize = 2;
/// Container ports of the chart's pods (dev-pod-runner maps each to a local port).
const HANDLER_PORT: &str = "8080";
const OPS_PORT: &str = "9090";
/// The process kinds whose CPU time is reported, along an event's path.
const KINDS: [&str; 7] = [
    "emitter", "proxy", "handler", "kafka", "consumer", "postgres", "operator",
];

#[derive(clap::Args)]
pub struct Args {
    /// Rates (events per second) measured and reported.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    rates: Vec<u32>,
    /// Further rates tried, in order, to find the highest with p99 under the bound.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2000,3000,4000,6000,8000"
    )]
    search: Vec<u32>,
    /// The p99 bound of a "steady" rate, in milliseconds.
    #[arg(long, default_value_t = 250.0)]
    p99_bound_ms: f64,
    /// Seconds measured per rate (after a warm-up of a quarter of that).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Measurements of every rate (a search rate stops at its first unsteady one).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Seconds to wait for the handlers to know a Webhook, the consumers to hold every
    /// partition and the emitters to be ready, before a measurement fails.
    #[arg(long, default_value_t = 120)]
    ready_timeout_secs: u64,
    /// Events per second one emitter replica is given at most.
    #[arg(long, default_value_t = 2500)]
    per_emitter: u32,
    #[arg(long, default_value_t = 18095)]
    proxy_port: u16,
}

/// One measurement of one rate.
struct Measured {
    stored_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU seconds per 1,000 stored events, by kind (in the order of `KINDS`).
    cpu: Vec<f64>,
}

impl Measured {
    fn steady(&self, rate: u32, args: &Args) -> bool {
        self.p99_ms < args.p99_bound_ms && self.stored_per_s >= f64::from(rate) * 0.95
    }
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let root = std::env::current_dir()?;
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the bench binary has no directory")?
        .to_owned();
    run_script(&root, "up", &bin_dir, args.proxy_port)?;
    let result = measure_all(&args).await;
    run_script(&root, "down", &bin_dir, args.proxy_port)?;
    result
}

/// What every measurement needs.
struct Bench<'a> {
    args: &'a Args,
    webhooks: Api<Webhook>,
    db: PgPool,
    stack: PathBuf,
    /// Partitions of the events topic, which the consumers must hold between them.
    partitions: i64,
}

async fn measure_all(args: &Args) -> anyhow::Result<Report> {
    let client = Client::try_default().await?;
    let db =
        PgPool::connect(&std::env::var("DATABASE_URL").context("source .stack/env first")?).await?;
    let kafka = kafka_connection()?;
    let bench = Bench {
        args,
        webhooks: Api::namespaced(client, NAMESPACE),
        db,
        stack: std::env::var("HOOKLINE_STACK_DIR")
            .unwrap_or_else(|_| ".stack".into())
            .into(),
        partitions: partitions(&kafka, &events_topic()).await?,
    };
    let mut report = Report::new("e2e");
    report
        .figure("handlers", HANDLERS)
        .figure("consumers", CONSUMERS)
        .figure("seconds_per_rate", args.seconds)
        .figure("repeats", args.repeats)
        .figure(
            "repeat_figure_is",
            "the worse repeat: highest p50, p99 and CPU, lowest stored/s; every repeat in _samples",
        );
    let mut highest_steady = 0;
    let mut curve = Vec::new();
    let mut tried: Vec<u32> = args.rates.clone();
    tried.extend(args.search.iter().filter(|r| !args.rates.contains(r)));
    tried.sort_unstable();
    for rate in tried {
        let reported = args.rates.contains(&rate);
        let mut samples = Vec::new();
        for repeat in 1..=args.repeats {
            let measured = bench.measure(rate, repeat).await?;
            let cpu: Vec<String> = KINDS
                .iter()
                .zip(&measured.cpu)
                .map(|(kind, s)| format!("{kind} {s:.3}"))
                .collect();
            println!(
                "rate {rate}/s, repeat {repeat}: stored {:.0}/s, p50 {:.1} ms, p99 {:.1} ms; \
                 CPU s per 1,000 events: {}",
                measured.stored_per_s,
                measured.p50_ms,
                measured.p99_ms,
                cpu.join(", ")
            );
            let steady = measured.steady(rate, args);
            samples.push(measured);
            // A search rate unsteady once cannot count as steady: spare its repeats.
            if !steady && !reported {
                break;
            }
        }
        let steady = samples.iter().all(|m| m.steady(rate, args));
        let mut point = serde_json::Map::new();
        point.insert("rate".into(), rate.into());
        point.insert("repeats".into(), samples.len().into());
        point.insert("steady".into(), steady.into());
        for (name, values, higher_is_better) in figures(&samples) {
            let worse = worse(&values, higher_is_better);
            if reported {
                report
                    .figure(&format!("rate_{rate}_per_s_{name}"), worse)
                    .figure(&format!("rate_{rate}_per_s_{name}_samples"), values.clone());
            }
            if name == "p99_ms" {
                point.insert("p99_ms_samples".into(), values.into());
            }
            point.insert(name, worse.into());
        }
        curve.push(Value::Object(point));
        if steady {
            highest_steady = highest_steady.max(rate);
        } else if rate > highest_steady && !args.rates.iter().any(|r| *r > rate) {
            break;
        }
    }
    report.figure("highest_steady_rate_per_s", highest_steady);
    report.figure(
        "steady_means",
        format!(
            "p99 < {} ms and >= 95% stored, in every repeat",
            args.p99_bound_ms
        ),
    );
    report.figure("curve", curve);
    Ok(report)
}

/// Every figure of one rate: name, the repeats' samples, and whether higher is better.
fn figures(samples: &[Measured]) -> Vec<(String, Vec<f64>, bool)> {
    let values = |pick: &dyn Fn(&Measured) -> f64| samples.iter().map(|m| round(pick(m))).collect();
    let mut figures = vec![
        ("p50_ms".to_owned(), values(&|m| m.p50_ms), false),
        ("p99_ms".to_owned(), values(&|m| m.p99_ms), false),
        ("stored_per_s".to_owned(), values(&|m| m.stored_per_s), true),
    ];
    for (k, kind) in KINDS.iter().enumerate() {
        figures.push((
            format!("cpu_s_per_1000_events_{kind}"),
            values(&|m| m.cpu[k]),
            false,
        ));
    }
    figures
}

/// The worse of the samples: the lowest when higher is better, else the highest.
fn worse(values: &[f64], higher_is_better: bool) -> f64 {
    let fold = if higher_is_better { f64::min } else { f64::max };
    values.iter().copied().reduce(fold).unwrap_or(f64::NAN)
}

impl Bench<'_> {
    async fn measure(&self, rate: u32, repeat: u32) -> anyhow::Result<Measured> {
        let args = self.args;
        let webhooks = &self.webhooks;
        let name = format!("bench-{rate}-{repeat}");
        let replicas = rate.div_ceil(args.per_emitter).max(1);
        // Created with the emitter off: it starts once the system can take its events.
        let spec = json!({
            "customerId": "bench",
            "emitter": {"enabled": false, "ratePerSecond": f64::from(rate) / f64::from(replicas), "replicas": replicas},
            "delivery": {"retry": 10, "backoffPolicy": "exponential", "backoffDelayMs": 100, "maxBackoffDelayMs": 2000},
            "rateLimit": {"requestsPerSecond": 1_000_000, "burst": 1_000_000},
        });
        webhooks
            .create(
                &PostParams::default(),
                &Webhook::new(&name, serde_json::from_value(spec)?),
            )
            .await?;
        let id = wait_for_id(webhooks, &name).await?;
        self.wait_until_ready(&name, &id, replicas).await?;
        let warmup = Duration::from_secs(args.seconds / 4 + 2);
        tokio::time::sleep(warmup).await;
        let processes = self.processes(&name)?;
        let cpu_from = processes.cpu_seconds()?;
        let from: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("select now()")
            .fetch_one(&self.db)
            .await?;
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let to: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("select now()")
            .fetch_one(&self.db)
            .await?;
        let cpu_to = processes
            .cpu_seconds()
            .with_context(|| format!("during the window of rate {rate}/s"))?;
        set_emitter(webhooks, &name, false).await?;
        // Events created in the window, once every one of them had time to arrive.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let row: (i64, Option<f64>, Option<f64>) = sqlx::query_as(
            "select count(*), \
                    percentile_cont(0.5) within group (order by delay_ms), \
                    percentile_cont(0.99) within group (order by delay_ms) \
             from (select extract(epoch from (stored_at - (payload->>'timestamp')::timestamptz)) * 1000 as delay_ms \
                   from events \
                   where webhook_id = $1 and (payload->>'timestamp')::timestamptz >= $2 \
                     and (payload->>'timestamp')::timestamptz < $3) as windowed",
        )
        .bind(&id)
        .bind(from)
        .bind(to)
        .fetch_one(&self.db)
        .await?;
        webhooks.delete(&name, &DeleteParams::default()).await?;
        // Nothing stored is not a figure: the system was not taking traffic, and its
        // delay is unknown.
        if row.0 == 0 {
            bail!(
                "rate {rate}/s stored no event emitted in its {} s window",
                args.seconds
            );
        }
        let seconds = (to - from).num_milliseconds() as f64 / 1000.0;
        let thousands = row.0 as f64 / 1000.0;
        Ok(Measured {
            stored_per_s: row.0 as f64 / seconds,
            p50_ms: row.1.unwrap_or(f64::NAN),
            p99_ms: row.2.unwrap_or(f64::NAN),
            cpu: cpu_to
                .iter()
                .zip(&cpu_from)
                .map(|(to, from)| (to - from) / thousands)
                .collect(),
        })
    }

    /// Waits until every handler knows Webhook `id`, the consumers hold every partition
    /// of the events topic between them, and then, with the emitter switched on, until
    /// its `replicas` pods are ready.
    async fn wait_until_ready(&self, name: &str, id: &str, replicas: u32) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(self.args.ready_timeout_secs);
        wait_until(
            &format!("every handler knows Webhook {name}"),
            timeout,
            || self.handlers_know(id),
        )
        .await?;
        wait_until(
            &format!(
                "the consumers hold all {} partitions of {}",
                self.partitions,
                events_topic()
            ),
            timeout,
            || self.consumers_assigned(),
        )
        .await?;
        set_emitter(&self.webhooks, name, true).await?;
        wait_until(
            &format!("the emitter replicas of {name} ({replicas}) are ready"),
            timeout,
            || self.emitters_ready(name, replicas),
        )
        .await
    }

    /// An unsigned POST straight to each handler: 401 (a bad signature) only once the
    /// handler has the Webhook; 404 while it has not read it from the registry yet.
    /// It produces nothing and spends no rate limit (only verified requests do).
    async fn handlers_know(&self, id: &str) -> anyhow::Result<Result<(), String>> {
        let handlers = self.pods("handler")?;
        if handlers.len() != HANDLERS {
            return Ok(Err(format!("{} handler pods run", handlers.len())));
        }
        for pod in handlers {
            let port = pod.port(HANDLER_PORT)?;
            match http_post(port, &format!("/webhooks/{id}"), "{}").await {
                Ok((401, _)) => {}
                Ok((status, body)) => {
                    return Ok(Err(format!("{} answers {status} {body}", pod.name)));
                }
                Err(err) => return Ok(Err(format!("{}: {err}", pod.name))),
            }
        }
        Ok(Ok(()))
    }

    async fn consumers_assigned(&self) -> anyhow::Result<Result<(), String>> {
        let consumers = self.pods("consumer")?;
        if consumers.len() != CONSUMERS {
            return Ok(Err(format!("{} consumer pods run", consumers.len())));
        }
        let mut held = Vec::new();
        for pod in consumers {
            let metrics = match http_get(pod.port(OPS_PORT)?, "/metrics").await {
                Ok((200, body)) => body,
                Ok((status, _)) => return Ok(Err(format!("{} /metrics: {status}", pod.name))),
                Err(err) => return Ok(Err(format!("{} /metrics: {err}", pod.name))),
            };
            held.push(
                sample(
                    &metrics,
                    "hookline_consumer_assigned_partitions{source=\"events\"}",
                )
                .unwrap_or(0.0) as i64,
            );
        }
        // Every consumer holds some (a rebalance is over) and together they hold all.
        if held.iter().sum::<i64>() == self.partitions && held.iter().all(|n| *n > 0) {
            Ok(Ok(()))
        } else {
            Ok(Err(format!("they hold {held:?}")))
        }
    }

    async fn emitters_ready(
        &self,
        name: &str,
        replicas: u32,
    ) -> anyhow::Result<Result<(), String>> {
        let emitters = self.emitter_pods(name)?;
        if emitters.len() != replicas as usize {
            return Ok(Err(format!("{} emitter pods run", emitters.len())));
        }
        for pod in emitters {
            if !matches!(http_get(pod.port(OPS_PORT)?, "/readyz").await, Ok((200, _))) {
                return Ok(Err(format!("{} is not ready", pod.name)));
            }
        }
        Ok(Ok(()))
    }

    /// The processes of every kind of `KINDS`: pods from dev-pod-runner's inventory,
    /// the rest from the pid files of `dev/run.sh` and `dev/stack.sh`.
    fn processes(&self, webhook: &str) -> anyhow::Result<Kinds> {
        let pids = |pods: Vec<Pod>| -> Vec<u32> { pods.iter().map(|p| p.pid).collect() };
        let pid_file = |name: &str| -> anyhow::Result<Vec<u32>> {
            let path = self.stack.join("run").join(format!("{name}.pid"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(vec![text.trim().parse().with_context(|| {
                format!("{} holds no pid", path.display())
            })?])
        };
        let mut kinds = Vec::new();
        for kind in KINDS {
            let found = match kind {
                "emitter" => pids(self.emitter_pods(webhook)?),
                "proxy" => pid_file(&format!("nginx-{NAMESPACE}"))?,
                "kafka" | "postgres" => pid_file(kind)?,
                component => pids(self.pods(component)?),
            };
            if found.is_empty() {
                bail!("no {kind} process found");
            }
            let processes = found
                .into_iter()
                .map(Process::find)
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(|| format!("a {kind} process"))?;
            kinds.push((kind, processes));
        }
        Ok(Kinds(kinds))
    }

    /// The running pods (with a process) of one component, from dev-pod-runner's
    /// inventory.
    fn pods(&self, component: &str) -> anyhow::Result<Vec<Pod>> {
        let path = self
            .stack
            .join(format!("run-{NAMESPACE}"))
            .join("pods/pods.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let inventory: Value =
            serde_json::from_str(&text).with_context(|| format!("malformed {}", path.display()))?;
        Ok(inventory["pods"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, pod)| pod["component"] == component)
            .filter_map(|(name, pod)| {
                Some(Pod {
                    name: name.clone(),
                    pid: u32::try_from(pod["pid"].as_u64()?).ok()?,
                    webhook: pod["labels"]["hookline.io/webhook"]
                        .as_str()
                        .map(str::to_owned),
                    ports: pod["ports"].clone(),
                })
            })
            .collect())
    }

    fn emitter_pods(&self, webhook: &str) -> anyhow::Result<Vec<Pod>> {
        let mut pods = self.pods("emitter")?;
        pods.retain(|p| p.webhook.as_deref() == Some(webhook));
        Ok(pods)
    }
}

/// A pod of the inventory.
struct Pod {
    name: String,
    pid: u32,
    webhook: Option<String>,
    /// Container port -> local port.
    ports: Value,
}

impl Pod {
    fn port(&self, container_port: &str) -> anyhow::Result<u16> {
        self.ports[container_port]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("{} has no port {container_port}", self.name))
    }
}

/// The processes of each kind.
struct Kinds(Vec<(&'static str, Vec<Process>)>);

impl Kinds {
    /// CPU seconds so far, by kind.
    fn cpu_seconds(&self) -> anyhow::Result<Vec<f64>> {
        self.0
            .iter()
            .map(|(kind, processes)| {
                cpu_seconds(processes).with_context(|| format!("a {kind} process"))
            })
            .collect()
    }
}

/// Calls `check` every 250 ms until it says done (`Ok(())`), and says how long that
/// took; fails after `timeout` with the last reason it gave.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<(), String>>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    loop {
        let reason = match check().await? {
            Ok(()) => {
                println!("{what} ({:.1} s)", started.elapsed().as_secs_f64());
                return Ok(());
            }
            Err(reason) => reason,
        };
        if tokio::time::Instant::now() > deadline {
            bail!(
                "not within {} s: {what} (last: {reason})",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of the Prometheus sample `name` (with its labels, as exposed).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn set_emitter(webhooks: &Api<Webhook>, name: &str, enabled: bool) -> anyhow::Result<()> {
    webhooks
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"emitter": {"enabled": enabled}}})),
        )
        .await?;
    Ok(())
}

/// Partitions of `topic`.
/// The events topic of the bench's release: dev/run.sh prefixes the topics with its
/// namespace.
fn events_topic() -> String {
    hookline_api::topics::TopicNames::with_prefix(NAMESPACE).events
}

async fn partitions(kafka: &KafkaConnection, topic: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = client_config(kafka, "hookline-bench").create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(30))?;
        let count = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        if count == 0 {
            bail!("topic {topic} has no partitions");
        }
        Ok(i64::try_from(count)?)
    })
    .await?
}

async fn wait_for_id(webhooks: &Api<Webhook>, name: &str) -> anyhow::Result<String> {
    for _ in 0..240 {
        if let Some(id) = webhooks.get(name).await?.status.and_then(|s| s.webhook_id) {
            return Ok(id);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("Webhook {name} got no id within 60 s")
}

fn run_script(root: &Path, command: &str, bin_dir: &Path, proxy_port: u16) -> anyhow::Result<()> {
    let status = Command::new(root.join("dev/run.sh"))
        .arg(command)
        .env("HOOKLINE_RUN_NAMESPACE", NAMESPACE)
        .env("HOOKLINE_PROXY_PORT", proxy_port.to_string())
        .env("HOOKLINE_RUN_BIN_DIR", bin_dir)
        .env("RUST_LOG", "warn")
        .status()
        .context("cannot run dev/run.sh")?;
    if !status.success() {
        bail!("dev/run.sh {command} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let metrics = "# TYPE x gauge\n\
                       hookline_consumer_assigned_partitions{source=\"events\"} 3\n\
                       hookline_consumer_assigned_partitions{source=\"retries\"} 12\n";
        let name = "hookline_consumer_assigned_partitions{source=\"events\"}";
        assert_eq!(sample(metrics, name), Some(3.0));
        assert_eq!(
            sample(metrics, "hookline_consumer_assigned_partitions"),
            None
        );
    }

    #[test]
    fn the_figure_of_repeats_is_the_worse_sample() {
        let measured = |p99_ms, stored_per_s, handler_cpu| Measured {
            stored_per_s,
            p50_ms: 1.0,
            p99_ms,
            cpu: KINDS
                .iter()
                .map(|kind| if *kind == "handler" { handler_cpu } else { 0.0 })
                .collect(),
        };
        let figures = figures(&[measured(40.0, 990.0, 0.2), measured(60.0, 1000.0, 0.1)]);
        let figure = |name: &str| {
            let (_, values, higher_is_better) = figures.iter().find(|f| f.0 == name).unwrap();
            (values.clone(), worse(values, *higher_is_better))
        };
        assert_eq!(figure("p99_ms"), (vec![40.0, 60.0], 60.0));
        assert_eq!(figure("stored_per_s"), (vec![990.0, 1000.0], 990.0));
        assert_eq!(
            figure("cpu_s_per_1000_events_handler"),
            (vec![0.2, 0.1], 0.2)
        );
        assert_eq!(figures.len(), 3 + KINDS.len());
    }
}
