//! The emitter stage: does the release emitter hold its rate over a minute, at one and
//! at a thousand events per second, and how much memory does it use? A receiver inside
//! this process answers 200 to every delivery.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::routing::post;
use hookline_emitter::metrics::EMITTED;
use tokio::process::Command;

use crate::report::{Report, round, rss_mb};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds each rate is measured over.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Rates to measure, events per second.
    #[arg(long, value_delimiter = ',', default_value = "1,1000")]
    rates: Vec<f64>,
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let secrets =
        std::env::temp_dir().join(format!("hookline-bench-emitter-{}", std::process::id()));
    std::fs::create_dir_all(&secrets)?;
    std::fs::write(
        secrets.join("current"),
        hookline_core::signature::generate_standard_secret(),
    )?;

    let mut report = Report::new("emitter");
    report.figure("seconds_per_rate", args.seconds);
    for rate in args.rates {
        let label = format!("rate_{rate}_per_s");
        let measured = measure(
            port,
            &secrets,
            rate,
            Duration::from_secs(args.seconds),
            &received,
        )
        .await?;
        report
            .figure(
                &format!("{label}_emitted_per_s"),
                round(measured.emitted_per_s),
            )
            .figure(
                &format!("{label}_delivered_per_s"),
                round(measured.delivered_per_s),
            )
            .figure(
                &format!("{label}_error_pct"),
                round((measured.emitted_per_s - rate).abs() / rate * 100.0),
            )
            .figure(&format!("{label}_rss_mb"), measured.rss_mb);
    }
    std::fs::remove_dir_all(&secrets)?;
    Ok(report)
}

struct Measured {
    emitted_per_s: f64,
    delivered_per_s: f64,
    rss_mb: f64,
}

async fn measure(
    port: u16,
    secrets: &std::path::Path,
    rate: f64,
    window: Duration,
    received: &AtomicU64,
) -> anyhow::Result<Measured> {
    let binary = std::env::current_exe()?.with_file_name("hookline-emitter");
    let ops = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(&binary)
        .env("WEBHOOK_ID", "bench")
        .env(
            "WEBHOOK_TARGET_URL",
            format!("http://127.0.0.1:{port}/hook"),
        )
        .env("WEBHOOK_SECRET_DIR", secrets)
        .env("EMITTER_ALLOW_PRIVATE_TARGETS", "true")
        .env("EMITTER_RATE_PER_SECOND", rate.to_string())
        .env("HOOKLINE_OPS_ADDR", format!("127.0.0.1:{ops}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    // Let it start, then measure over the window between two scrapes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (e1, r1, t1) = (
        emitted(ops).await?,
        received.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (e2, r2, t2) = (
        emitted(ops).await?,
        received.load(Ordering::Relaxed),
        Instant::now(),
    );
    let pid = child.id().context("the emitter exited early")?;
    let (rss, _) = rss_mb(pid)?;
    crate::local::terminate(&mut child, Duration::from_secs(30)).await?;
    let seconds = (t2 - t1).as_secs_f64();
    Ok(Measured {
        emitted_per_s: (e2 - e1) / seconds,
        delivered_per_s: (r2 - r1) as f64 / seconds,
        rss_mb: rss,
    })
}

async fn emitted(port: u16) -> anyhow::Result<f64> {
    let (_, body) = crate::local::http_get(port, "/metrics").await?;
    let series = EMITTED.exported();
    match hookline_testkit::prometheus::sample(&body, &series) {
        Some(value) => Ok(value),
        None => bail!("no {series} in the emitter's /metrics"),
    }
}
