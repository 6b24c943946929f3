//! The end-to-end stage: the whole system as `make run` starts it (release binaries,
//! three handlers behind nginx, two consumers), an emitter Webhook at a steady rate, and
//! the delay from an event's creation in the emitter to its row in PostgreSQL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hookline_api::webhook::Webhook;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use sqlx::PgPool;

use crate::report::{Report, round};

const NAMESPACE: &str = "hookline-bench";

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
    /// Events per second one emitter replica is given at most.
    #[arg(long, default_value_t = 2500)]
    per_emitter: u32,
    #[arg(long, default_value_t = 18095)]
    proxy_port: u16,
}

struct Measured {
    stored_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
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

async fn measure_all(args: &Args) -> anyhow::Result<Report> {
    let client = Client::try_default().await?;
    let db =
        PgPool::connect(&std::env::var("DATABASE_URL").context("source .stack/env first")?).await?;
    let webhooks: Api<Webhook> = Api::namespaced(client, NAMESPACE);
    let mut report = Report::new("e2e");
    report
        .figure("handlers", 3)
        .figure("consumers", 2)
        .figure("seconds_per_rate", args.seconds);
    let mut highest_steady = 0;
    let mut tried: Vec<u32> = args.rates.clone();
    tried.extend(args.search.iter().filter(|r| !args.rates.contains(r)));
    tried.sort_unstable();
    for rate in tried {
        let measured = measure(&webhooks, &db, rate, args).await?;
        println!(
            "rate {rate}/s: stored {:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
            measured.stored_per_s, measured.p50_ms, measured.p99_ms
        );
        if args.rates.contains(&rate) {
            report
                .figure(&format!("rate_{rate}_per_s_p50_ms"), round(measured.p50_ms))
                .figure(&format!("rate_{rate}_per_s_p99_ms"), round(measured.p99_ms))
                .figure(
                    &format!("rate_{rate}_per_s_stored_per_s"),
                    round(measured.stored_per_s),
                );
        }
        let steady =
            measured.p99_ms < args.p99_bound_ms && measured.stored_per_s >= f64::from(rate) * 0.95;
        if steady {
            highest_steady = highest_steady.max(rate);
        } else if rate > highest_steady && !args.rates.iter().any(|r| *r > rate) {
            break;
        }
    }
    report.figure("highest_steady_rate_per_s", highest_steady);
    report.figure(
        "steady_means",
        format!("p99 < {} ms and >= 95% stored", args.p99_bound_ms),
    );
    Ok(report)
}

async fn measure(
    webhooks: &Api<Webhook>,
    db: &PgPool,
    rate: u32,
    args: &Args,
) -> anyhow::Result<Measured> {
    let name = format!("bench-{rate}");
    let replicas = rate.div_ceil(args.per_emitter).max(1);
    let spec = serde_json::json!({
        "customerId": "bench",
        "emitter": {"enabled": true, "ratePerSecond": f64::from(rate) / f64::from(replicas), "replicas": replicas},
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
    let warmup = Duration::from_secs(args.seconds / 4 + 2);
    tokio::time::sleep(warmup).await;
    let from: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select now()").fetch_one(db).await?;
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let to: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select now()").fetch_one(db).await?;
    webhooks
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"emitter": {"enabled": false}}})),
        )
        .await?;
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
    .fetch_one(db)
    .await?;
    webhooks.delete(&name, &DeleteParams::default()).await?;
    // Nothing stored is not a figure: the system was not taking traffic (a handler
    // without the Webhook, a consumer without partitions), and its delay is unknown.
    if row.0 == 0 {
        bail!(
            "rate {rate}/s stored no event emitted in its {} s window",
            args.seconds
        );
    }
    let seconds = (to - from).num_milliseconds() as f64 / 1000.0;
    Ok(Measured {
        stored_per_s: row.0 as f64 / seconds,
        p50_ms: row.1.unwrap_or(f64::NAN),
        p99_ms: row.2.unwrap_or(f64::NAN),
    })
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
