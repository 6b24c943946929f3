//! Load shedding that slow senders cannot monopolise: 500 slow senders (real TCP
//! connections, each sending its headers and then a body byte every half second,
//! reconnecting when answered) on ONE known webhook id, while a valid sender on ANOTHER
//! webhook posts every 50 ms. The replica is sized for 300 requests at once, fewer
//! than the attackers, so without per-webhook and per-source caps the attackers hold
//! every slot and the valid sender sees 503s; with them it keeps getting 202 promptly.
//!
//! Both sit behind a trusted proxy (the loopback peer) that appends X-Forwarded-For:
//! the attackers come from ten addresses, the valid sender from one of its own.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hookline_core::process_metrics::ProcessStats;
use hookline_core::signature::Scheme;
use support::{Handler, entry, message_id, signed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW_SENDERS: usize = 500;
const ATTACKER_ADDRESSES: usize = 10;
const ATTACK: Duration = Duration::from_secs(12);
const VALID_INTERVAL: Duration = Duration::from_millis(50);
/// The valid sender's requests must be answered 202 at least this often...
const MIN_ACCEPTED_SHARE: f64 = 0.99;
/// ...and 99 % of them within this (the body read timeout is 15 s).
const MAX_P99: Duration = Duration::from_millis(1_000);

/// Keeps one slow request open on `webhook_id` until `until`: headers, then one body
/// byte every 500 ms; when the server answers or closes, a new connection. Returns the
/// statuses the server answered.
async fn slow_sender(
    addr: std::net::SocketAddr,
    webhook_id: String,
    forwarded_for: String,
    until: Instant,
) -> Vec<u16> {
    let head = format!(
        "POST /webhooks/{webhook_id} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\
         Content-Type: application/json\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n"
    );
    let mut answered = Vec::new();
    while Instant::now() < until {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if stream.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut answer = [0u8; 256];
        loop {
            let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut answer));
            match read.await {
                // Silence: the server is waiting for the body, so send a byte of it.
                Err(_) if Instant::now() < until => {
                    if stream.write_all(b"{").await.is_err() {
                        break;
                    }
                }
                Err(_) => return answered,
                Ok(Ok(n)) if n > 0 => {
                    answered.push(status_of(&answer[..n]));
                    break;
                }
                Ok(_) => break,
            }
        }
        // Answered or cut off: pause a little, as a client would, then again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answered
}

fn status_of(answer: &[u8]) -> u16 {
    std::str::from_utf8(answer)
        .ok()
        .and_then(|text| text.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[derive(Default)]
struct ValidSender {
    statuses: Vec<u16>,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let index = ((sorted.len() as f64 * share).ceil() as usize).saturating_sub(1);
    sorted.get(index).copied().unwrap_or_default()
}

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
    let handler = Arc::new(
        Handler::start(
            &support::stack_kafka(),
            &[victim.clone(), steady.clone()],
            &[
                "--trusted-proxies",
                "127.0.0.1/32",
                "--max-concurrent-requests",
                "300",
            ],
        )
        .await,
    );

    let until = Instant::now() + ATTACK;
    let attackers: Vec<_> = (0..SLOW_SENDERS)
        .map(|i| {
            let forwarded_for = format!("203.0.113.{}", i % ATTACKER_ADDRESSES + 1);
            tokio::spawn(slow_sender(
                handler.addr,
                victim.webhook_id.clone(),
                forwarded_for,
                until,
            ))
        })
        .collect();
    // Let the attackers take their slots before the valid sender starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut valid = ValidSender::default();
    let mut ticks = tokio::time::interval(VALID_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let path = format!("/webhooks/{}", steady.webhook_id);
    while Instant::now() < until {
        ticks.tick().await;
        let body = format!(r#"{{"event_id":"{}"}}"#, message_id());
        let mut headers = signed(
            Scheme::Standard,
            &steady_secret,
            &message_id(),
            Utc::now(),
            body.as_bytes(),
        );
        headers.push(("x-forwarded-for", "198.51.100.20".into()));
        headers.push(("content-length", body.len().to_string()));
        let started = Instant::now();
        let status = handler
            .request("POST", &path, &headers, body.as_bytes())
            .await
            .map_or(0, |response| response.status);
        valid.statuses.push(status);
        valid.latencies.push(started.elapsed());
    }

    let mut attacker_answers = BTreeMap::<u16, usize>::new();
    for attacker in attackers {
        for status in attacker.await.expect("slow sender") {
            *attacker_answers.entry(status).or_default() += 1;
        }
    }
    let sent = valid.statuses.len();
    let accepted = valid.statuses.iter().filter(|s| **s == 202).count();
    let share = accepted as f64 / sent.max(1) as f64;
    let mut latencies = valid.latencies;
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let mut refused = BTreeMap::<u16, usize>::new();
    for status in valid.statuses.iter().filter(|s| **s != 202) {
        *refused.entry(*status).or_default() += 1;
    }
    println!(
        "slow senders: {SLOW_SENDERS} on one webhook for {ATTACK:?}; valid sender on another: \
         {sent} requests sent, 202 share {:.2} %, p50 {:.1} ms, p99 {:.1} ms, refused {refused:?}; \
         answers the slow senders got: {attacker_answers:?}",
        share * 100.0,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
    assert!(
        sent >= 100,
        "the valid sender kept its rate: {sent} requests"
    );
    assert!(
        share >= MIN_ACCEPTED_SHARE,
        "valid sender's 202 share {:.2} % (refused: {refused:?})",
        share * 100.0
    );
    assert!(p99 <= MAX_P99, "valid sender's p99 {p99:?}");
    assert_eq!(
        handler.events(&steady.webhook_id).await.len(),
        accepted,
        "every 202 of the valid sender is on the events topic"
    );
    assert!(
        handler.events(&victim.webhook_id).await.is_empty(),
        "nothing of the slow senders was produced"
    );
    Arc::into_inner(handler).expect("sole owner").stop().await;
}
