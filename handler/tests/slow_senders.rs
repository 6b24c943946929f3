//! Load shedding that slow senders cannot monopolise: 500 slow senders (real TCP
//! connections, each sending its headers and then a body byte every half second,
//! reconnecting when answered) on ONE known webhook id, while a valid sender on ANOTHER
//! webhook posts every 50 ms. The replica is sized for 300 requests at once, fewer
//! than the attackers, so without per-webhook and per-source caps the attackers hold
//! every slot and the valid sender sees 503s (0 % 202 on the code before the caps);
//! with them it keeps getting 202 promptly.
//!
//! Both sit behind a trusted proxy (the loopback peer) that appends X-Forwarded-For:
//! the attackers come from ten addresses, the valid sender from one of its own.

mod support;

use std::time::Duration;

use hookline_core::signature::Scheme;
use hookline_runtime::process_metrics::ProcessStats;
use hookline_testkit::slow_senders::{self, Attack};
use support::{Handler, entry, message_id, signed_now};

const SLOW_SENDERS: usize = 500;
/// The valid sender's requests must be answered 202 at least this often...
const MIN_ACCEPTED_SHARE: f64 = 0.99;
/// ...and 99 % of them within this (the body read timeout is 15 s).
const MAX_P99: Duration = Duration::from_millis(1_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_on_one_webhook_do_not_starve_a_valid_sender_on_another() {
    // Each slow connection is two descriptors in this process (client and server end).
    let stats = ProcessStats::read();
    if let (Some(open), Some(max)) = (stats.open_fds, stats.max_fds) {
        let needed = 2 * SLOW_SENDERS as u64 + 200;
        assert!(
            max.saturating_sub(open) >= needed,
            "{needed} more file descriptors are needed, {} are left: raise `ulimit -n` \
             (make test raises the soft limit to the hard one)",
            max.saturating_sub(open)
        );
    }
    let (victim, _) = entry(Scheme::Standard);
    let (steady, steady_secret) = entry(Scheme::Standard);
    let handler = Handler::start(
        &support::stack_kafka(),
        &[victim.clone(), steady.clone()],
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--max-concurrent-requests",
            "300",
        ],
    )
    .await;

    let attack = Attack {
        addr: handler.addr,
        victim_path: format!("/webhooks/{}", victim.webhook_id),
        slow_senders: SLOW_SENDERS,
        attacker_addresses: 10,
        duration: Duration::from_secs(12),
        head_start: Duration::from_secs(2),
        valid_path: format!("/webhooks/{}", steady.webhook_id),
        valid_interval: Duration::from_millis(50),
        valid_forwarded_for: "198.51.100.20".into(),
    };
    let figures = slow_senders::run(&attack, || {
        let body = format!(r#"{{"event_id":"{}"}}"#, message_id()).into_bytes();
        let headers = signed_now(&steady_secret, &body);
        (headers, body)
    })
    .await;
    println!(
        "{SLOW_SENDERS} slow senders on one webhook for {:?}; {figures}",
        attack.duration
    );
    assert!(
        figures.sent >= 100,
        "the valid sender kept its rate: {} requests",
        figures.sent
    );
    assert!(
        figures.accepted_share() >= MIN_ACCEPTED_SHARE,
        "valid sender's 202 share: {figures}"
    );
    assert!(figures.p99 <= MAX_P99, "valid sender's p99: {figures}");
    assert_eq!(
        handler.events(&steady.webhook_id).await.len(),
        figures.accepted,
        "every 202 of the valid sender is on the events topic"
    );
    assert!(
        handler.events(&victim.webhook_id).await.is_empty(),
        "nothing of the slow senders was produced"
    );
    handler.stop().await;
}
