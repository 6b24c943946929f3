//! Hostile HTTP the ingest tests do not already cover, while a valid sender posts every
//! 100 ms and must get 202 each time, promptly: deeply nested JSON, huge headers, a
//! sender trickling one byte a second (headers and body), hundreds of idle connections
//! and a burst of concurrent forgeries, a signature made for another webhook, and
//! timestamps far in the past, far in the future and out of any range.
//! (Bodies over the limit, invalid UTF-8 bodies, stalled senders, replays and ±301 s
//! timestamps are in ingest.rs.)

mod support;

use hookline_runtime::kafka::KafkaConnection;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use hookline_core::signature::Scheme;
use support::{Handler, entry, message_id, signed, signed_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bootstrap() -> KafkaConnection {
    support::stack_kafka()
}

/// The valid sender's statuses and slowest answer, gathered until `stop`.
async fn valid_sender(
    handler: Arc<Handler>,
    webhook_id: String,
    secret: String,
    stop: Arc<AtomicBool>,
) -> (Vec<u16>, Duration) {
    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    while !stop.load(Ordering::SeqCst) {
        let body = br#"{"event_id":"steady"}"#;
        let headers = signed_now(&secret, body);
        let started = Instant::now();
        let status = handler
            .request(
                "POST",
                &format!("/webhooks/{webhook_id}"),
                &[headers, vec![("content-length", body.len().to_string())]].concat(),
                body,
            )
            .await
            .map_or(0, |r| r.status);
        slowest = slowest.max(started.elapsed());
        statuses.push(status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (statuses, slowest)
}

/// Sends `raw` and returns the answer's status, or 0 when the server closed the
/// connection without one.
async fn raw_status(handler: &Handler, raw: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(handler.addr).await.expect("connect");
    if stream.write_all(raw).await.is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    std::str::from_utf8(&answer)
        .ok()
        .and_then(|text| text.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Writes `bytes` one per second; returns how long until the server closed the
/// connection (or the bytes ran out), and the status it answered, if any.
async fn trickle(handler: &Handler, head: &[u8], bytes: &[u8]) -> (Duration, u16) {
    let mut stream = TcpStream::connect(handler.addr).await.expect("connect");
    stream.write_all(head).await.expect("head");
    let started = Instant::now();
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut probe = [0u8; 512];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            let status = std::str::from_utf8(&probe[..n])
                .ok()
                .and_then(|t| t.split_whitespace().nth(1))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            return (started.elapsed(), status);
        }
    }
    (started.elapsed(), 0)
}

#[tokio::test]
async fn hostile_requests_get_their_status_and_a_valid_sender_is_served_throughout() {
    let (victim, victim_secret) = entry(Scheme::Standard);
    let (other, other_secret) = entry(Scheme::Standard);
    let (steady, steady_secret) = entry(Scheme::Standard);
    let handler = Arc::new(
        Handler::start(
            &bootstrap(),
            &[victim.clone(), other.clone(), steady.clone()],
            // Every sender here is loopback, the valid one too: the per-source cap
            // would shed the burst of forgeries (slow_senders.rs tests the caps).
            &[
                "--header-read-timeout",
                "2s",
                "--body-read-timeout",
                "2s",
                "--max-concurrent-requests-per-source",
                "1024",
            ],
        )
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn(valid_sender(
        handler.clone(),
        steady.webhook_id.to_string(),
        steady_secret.clone(),
        stop.clone(),
    ));
    let post = |id: &str, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let handler = handler.clone();
        let path = format!("/webhooks/{id}");
        async move {
            let mut all = headers;
            all.push(("content-length", body.len().to_string()));
            handler
                .request("POST", &path, &all, &body)
                .await
                .map_or(0, |r| r.status)
        }
    };

    // Deeply nested JSON: the handler does not parse bodies, so a signed one is
    // accepted as the opaque bytes it is (the consumer's JSON reader has a depth limit).
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let headers = signed_now(&victim_secret, &nested);
    assert_eq!(post(&victim.webhook_id, headers, nested).await, 202);

    // A signature made with another webhook's secret, and another webhook's accepted
    // request replayed at this one: refused.
    let body = br#"{"event_id":"cross"}"#.to_vec();
    let foreign = signed_now(&other_secret, &body);
    assert_eq!(
        post(&other.webhook_id, foreign.clone(), body.clone()).await,
        202
    );
    assert_eq!(post(&victim.webhook_id, foreign, body.clone()).await, 401);

    // Timestamps far away, correctly signed, and unreadable ones.
    for far in [
        Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 1).unwrap(),
        Utc.with_ymd_and_hms(2001, 9, 9, 1, 46, 40).unwrap(),
        Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
    ] {
        let headers = signed(Scheme::Standard, &victim_secret, &message_id(), far, &body);
        assert_eq!(
            post(&victim.webhook_id, headers, body.clone()).await,
            401,
            "{far}"
        );
    }
    for garbage in [
        "-1",
        "99999999999999999999999",
        "1e12",
        "",
        "0x10",
        "١٦٤٩٣٦٧٥٥٣",
    ] {
        let mut headers = signed_now(&victim_secret, &body);
        for header in &mut headers {
            if header.0 == "webhook-timestamp" {
                header.1 = garbage.to_owned();
            }
        }
        let status = post(&victim.webhook_id, headers, body.clone()).await;
        assert!(
            matches!(status, 400 | 401),
            "timestamp {garbage:?}: {status}"
        );
    }

    // Huge headers: 64 KiB of one header is read and the request judged (no signature:
    // 401); 1 MiB of headers is refused before the application sees it.
    let big = "a".repeat(64 * 1024);
    let status = post(&victim.webhook_id, vec![("x-padding", big)], body.clone()).await;
    assert_eq!(status, 401);
    let mut huge = format!(
        "POST /webhooks/{} HTTP/1.1\r\nHost: a\r\n",
        victim.webhook_id
    );
    for i in 0..1024 {
        huge.push_str(&format!("x-h{i}: {}\r\n", "b".repeat(1024)));
    }
    huge.push_str("content-length: 0\r\n\r\n");
    let status = raw_status(&handler, huge.as_bytes()).await;
    assert!(
        matches!(status, 0 | 400 | 431),
        "1 MiB of headers: {status}"
    );

    // Hundreds of idle connections and a burst of concurrent forgeries.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(
            TcpStream::connect(handler.addr)
                .await
                .expect("idle connection"),
        );
    }
    let forgeries: Vec<_> = (0..200)
        .map(|i| {
            let headers = signed(
                Scheme::Standard,
                &other_secret,
                &format!("forged-{i}"),
                Utc::now(),
                &body,
            );
            tokio::spawn(post(&victim.webhook_id, headers, body.clone()))
        })
        .collect();
    for forgery in forgeries {
        assert_eq!(forgery.await.expect("task"), 401);
    }

    // One byte a second: in the headers, then in the body; each is cut off by its
    // read timeout (2 s) although bytes keep coming.
    let (cut_after, _) = trickle(
        &handler,
        format!("POST /webhooks/{} HTTP/1.1\r\n", victim.webhook_id).as_bytes(),
        b"Host: slowly-sent-header-that-never-ends",
    )
    .await;
    assert!(
        cut_after < Duration::from_secs(6),
        "headers trickled for {cut_after:?}"
    );
    let signed_head = signed_now(&victim_secret, &body);
    let head = support::post_head(&victim.webhook_id, body.len(), &signed_head);
    let (cut_after, status) = trickle(&handler, head.as_bytes(), &body).await;
    assert!(
        cut_after < Duration::from_secs(6),
        "body trickled for {cut_after:?}"
    );
    assert_eq!(status, 408);
    drop(idle);

    stop.store(true, Ordering::SeqCst);
    let (statuses, slowest) = sender.await.expect("sender");
    assert!(
        statuses.len() >= 20,
        "the sender kept sending: {}",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| *s == 202),
        "the valid sender was refused: {statuses:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "slowest valid answer {slowest:?}"
    );
    assert!(
        handler.events(&victim.webhook_id).await.len() == 1,
        "of the victim's requests only the nested JSON one was stored"
    );
    Arc::into_inner(handler).expect("sole owner").stop().await;
}
