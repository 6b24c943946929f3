//! The handler under a slow-sender attack (handler/tests/slow_senders.rs measured on
//! the release binary): 500 slow senders (real TCP connections sending their headers
//! and then a body byte every half second, reconnecting when answered) on one webhook,
//! from ten addresses behind a trusted proxy, while a valid sender posts to another
//! webhook every 50 ms. The handler is sized for 300 requests at once, fewer than the
//! attackers; its per-webhook and per-source caps are the defaults. Records the valid
//! sender's 202 share and latency during the attack.

use std::time::Duration;

use chrono::Utc;
use hookline_core::signature;
use hookline_testkit::slow_senders::{self, Attack};

use crate::handler::{Handler, RunTopics, publish_senders};
use crate::local::kafka_connection;
use crate::report::{Report, round};

#[derive(clap::Args)]
pub struct Args {
    /// Slow connections on the attacked webhook.
    #[arg(long, default_value_t = 500)]
    slow_senders: usize,
    /// Seconds the attack lasts.
    #[arg(long, default_value_t = 30)]
    attack_secs: u64,
    /// The handler's --max-concurrent-requests (fewer than the slow senders).
    #[arg(long, default_value_t = 300)]
    max_concurrent_requests: u32,
    /// Milliseconds between the valid sender's requests.
    #[arg(long, default_value_t = 50)]
    valid_interval_ms: u64,
    /// Loopback port the handler listens on during the run.
    #[arg(long, default_value_t = 19282)]
    port: u16,
    /// Loopback port of the handler's /readyz and /metrics during the run.
    #[arg(long, default_value_t = 19283)]
    ops_port: u16,
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let kafka = kafka_connection()?;
    let topics = RunTopics::create(&kafka).await?;
    // The Standard Webhooks sender of each pair: one attacked, one valid.
    let mut webhooks = Vec::new();
    for role in ["victim", "valid"] {
        let senders =
            publish_senders(&kafka, &topics, &format!("{role}-{}", topics.suffix), &[]).await?;
        webhooks.extend(
            senders
                .into_iter()
                .find(|sender| sender.scheme == signature::Scheme::Standard),
        );
    }
    let [victim, valid] = <[_; 2]>::try_from(webhooks)
        .map_err(|_| anyhow::anyhow!("no Standard Webhooks sender was published"))?;

    let max_concurrent = args.max_concurrent_requests.to_string();
    let mut handler = Handler::start(
        &kafka,
        &topics,
        (args.port, args.ops_port),
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--max-concurrent-requests",
            &max_concurrent,
        ],
    )
    .await?;
    let attack = Attack {
        addr: ([127, 0, 0, 1], args.port).into(),
        victim_path: format!("/webhooks/{}", victim.webhook_id),
        slow_senders: args.slow_senders,
        attacker_addresses: 10,
        duration: Duration::from_secs(args.attack_secs),
        head_start: Duration::from_secs(2),
        valid_path: format!("/webhooks/{}", valid.webhook_id),
        valid_interval: Duration::from_millis(args.valid_interval_ms),
        valid_forwarded_for: "198.51.100.20".into(),
    };
    let mut sent = 0u64;
    let mut signing_error = None;
    let figures = slow_senders::run(&attack, || {
        sent += 1;
        let body = format!(r#"{{"event_id":"valid-{sent}"}}"#).into_bytes();
        let headers = signature::sign(
            valid.scheme,
            std::slice::from_ref(&valid.secret),
            &format!("msg_valid_{}_{sent}", topics.suffix),
            Utc::now(),
            &body,
        )
        .unwrap_or_else(|err| {
            signing_error.get_or_insert(err);
            Vec::new()
        });
        (headers, body)
    })
    .await;
    handler.stop().await?;
    if let Some(err) = signing_error {
        anyhow::bail!("cannot sign the valid sender's requests: {err}");
    }
    println!("{} slow senders; {figures}", args.slow_senders);

    let ms = |d: Duration| round(d.as_secs_f64() * 1_000.0);
    let shed = |status| figures.attacker_answers.get(&status).copied().unwrap_or(0);
    let mut report = Report::new("handler_slow_senders");
    report
        .figure("slow_senders", args.slow_senders)
        .figure("attack_secs", args.attack_secs)
        .figure("max_concurrent_requests", args.max_concurrent_requests)
        .figure("valid_sender_requests", figures.sent)
        .figure(
            "valid_sender_accepted_share",
            round(figures.accepted_share()),
        )
        .figure("valid_sender_p50_ms", ms(figures.p50))
        .figure("valid_sender_p99_ms", ms(figures.p99))
        .figure("slow_senders_answered_503", shed(503))
        .figure("slow_senders_answered_429", shed(429))
        .figure("slow_senders_answered_408", shed(408));
    Ok(report)
}
