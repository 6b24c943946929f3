//! The end-to-end stage: the whole system as `make run` starts it (release binaries,
//! three handlers behind nginx, two consumers), an emitter Webhook at a steady rate, and
//! the delay from an event's creation in the emitter to its row in PostgreSQL.
//!
//! Each rate is measured `--repeats` times, each time with a Webhook of its own. The
//! emitter is switched on only once every handler knows the Webhook and the consumers
//! hold every partition of the events topic, so a window never measures start-up. Per
//! rate it reports the latency, the stored rate and the CPU seconds each kind of process
//! spent per 1,000 events (from /proc), and as each figure the median of the repeats,
//! with their lowest, highest and every sample beside it; `curve` holds the same for
//! every rate tried, for the report's chart.

use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::api::DeleteParams;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::local::kafka_connection;
use crate::report::{Report, median, min_max, round};
use crate::system::{CONSUMERS, HANDLERS, System, run_script};

const NAMESPACE: &str = "hookline-bench";
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
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
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
    run_script("up", NAMESPACE, args.proxy_port)?;
    let result = measure_all(&args).await;
    run_script("down", NAMESPACE, args.proxy_port)?;
    result
}

/// What every measurement needs.
struct Bench<'a> {
    args: &'a Args,
    system: System,
    db: PgPool,
}

async fn measure_all(args: &Args) -> anyhow::Result<Report> {
    let db =
        PgPool::connect(&std::env::var("DATABASE_URL").context("source .stack/env first")?).await?;
    let bench = Bench {
        args,
        system: System::connect(NAMESPACE, &kafka_connection()?).await?,
        db,
    };
    let mut report = Report::new("e2e");
    report
        .figure("handlers", HANDLERS)
        .figure("consumers", CONSUMERS)
        .figure("seconds_per_rate", args.seconds)
        .figure("repeats", args.repeats)
        .figure(
            "repeat_figure_is",
            "the median of the repeats; the lowest and highest in _min and _max, every repeat in _samples",
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
        for (name, values) in figures(&samples) {
            let middle = median(&values);
            if reported {
                let (min, max) = min_max(&values);
                let key = format!("rate_{rate}_per_s_{name}");
                report
                    .figure(&key, middle)
                    .figure(&format!("{key}_min"), min)
                    .figure(&format!("{key}_max"), max)
                    .figure(&format!("{key}_samples"), values.clone());
            }
            if name == "p99_ms" {
                point.insert("p99_ms_samples".into(), values.into());
            }
            point.insert(name, middle.into());
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

/// Every figure of one rate: its name and the repeats' samples.
fn figures(samples: &[Measured]) -> Vec<(String, Vec<f64>)> {
    let values = |pick: &dyn Fn(&Measured) -> f64| samples.iter().map(|m| round(pick(m))).collect();
    let mut figures = vec![
        ("p50_ms".to_owned(), values(&|m| m.p50_ms)),
        ("p99_ms".to_owned(), values(&|m| m.p99_ms)),
        ("stored_per_s".to_owned(), values(&|m| m.stored_per_s)),
        // Every process together: the cost of an event.
        (
            "cpu_s_per_1000_events".to_owned(),
            values(&|m| m.cpu.iter().sum()),
        ),
    ];
    for (k, kind) in KINDS.iter().enumerate() {
        figures.push((
            format!("cpu_s_per_1000_events_{kind}"),
            values(&|m| m.cpu[k]),
        ));
    }
    figures
}

impl Bench<'_> {
    async fn measure(&self, rate: u32, repeat: u32) -> anyhow::Result<Measured> {
        let args = self.args;
        let system = &self.system;
        let name = format!("bench-{rate}-{repeat}");
        let replicas = rate.div_ceil(args.per_emitter).max(1);
        // Created with the emitter off: it starts once the system can take its events.
        let spec = json!({
            "customerId": "bench",
            "emitter": {"enabled": false, "ratePerSecond": f64::from(rate) / f64::from(replicas), "replicas": replicas},
            "delivery": {"retry": 10, "backoffPolicy": "exponential", "backoffDelayMs": 100, "maxBackoffDelayMs": 2000},
            "rateLimit": {"requestsPerSecond": 1_000_000, "burst": 1_000_000},
        });
        let id = system.create_webhook(&name, spec).await?;
        let timeout = Duration::from_secs(args.ready_timeout_secs);
        system.wait_until_loaded(&name, &id, timeout).await?;
        system.set_emitter(&name, true).await?;
        system.wait_for_emitters(&name, replicas, timeout).await?;
        let warmup = Duration::from_secs(args.seconds / 4 + 2);
        tokio::time::sleep(warmup).await;
        let processes = system.processes(&KINDS, Some(&name))?;
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
        system.set_emitter(&name, false).await?;
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
        system
            .webhooks
            .delete(&name, &DeleteParams::default())
            .await?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_of_a_rate_are_each_repeats_sample_and_the_cpu_of_all_kinds() {
        let measured = |p99_ms, stored_per_s, handler_cpu| Measured {
            stored_per_s,
            p50_ms: 1.0,
            p99_ms,
            cpu: KINDS
                .iter()
                .map(|kind| {
                    if *kind == "handler" {
                        handler_cpu
                    } else {
                        0.01
                    }
                })
                .collect(),
        };
        let figures = figures(&[
            measured(40.0, 990.0, 0.2),
            measured(60.0, 1000.0, 0.1),
            measured(50.0, 995.0, 0.3),
        ]);
        let figure = |name: &str| {
            let (_, values) = figures.iter().find(|f| f.0 == name).unwrap();
            (values.clone(), median(values))
        };
        assert_eq!(figure("p99_ms"), (vec![40.0, 60.0, 50.0], 50.0));
        assert_eq!(figure("stored_per_s"), (vec![990.0, 1000.0, 995.0], 995.0));
        assert_eq!(
            figure("cpu_s_per_1000_events_handler"),
            (vec![0.2, 0.1, 0.3], 0.2)
        );
        // Six other kinds at 0.01 each beside the handler.
        assert_eq!(
            figure("cpu_s_per_1000_events"),
            (vec![0.26, 0.16, 0.36], 0.26)
        );
        assert_eq!(figures.len(), 4 + KINDS.len());
    }
}
