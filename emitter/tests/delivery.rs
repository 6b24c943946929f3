//! The emitter against a receiver inside the test that verifies every signature with
//! Hookline's verifier and answers as each test tells it to.

use hookline_testkit::process::{Signal, send_signal};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use clap::Parser;
use hookline_core::signature::{self, Scheme, SigningSecret};
use hookline_emitter::config::Config;
use hookline_emitter::metrics;
use hookline_emitter::service::{Emitter, Summary};
use hookline_runtime::shutdown::Shutdown;
use prometheus_client::registry::Registry;

const CURRENT: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const PREVIOUS: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// How the receiver answers one request.
#[derive(Clone)]
enum Answer {
    Status(u16),
    RetryAfter(u16, &'static str),
    SlowThen(Duration, u16),
}

struct Received {
    at: Instant,
    message_id: Option<String>,
    signature: Option<String>,
    verified_current: bool,
    verified_previous: bool,
    body: Bytes,
}

#[derive(Default)]
struct Receiver {
    plan: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let verify = |secret: &str| {
        let secret = SigningSecret::parse(Scheme::Standard, secret).expect("secret");
        signature::verify(
            Scheme::Standard,
            &headers,
            &body,
            &[secret],
            Utc::now(),
            signature::DEFAULT_TOLERANCE,
        )
        .is_ok()
    };
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    receiver.received.lock().unwrap().push(Received {
        at: Instant::now(),
        message_id: text("webhook-id"),
        signature: text("webhook-signature"),
        verified_current: verify(CURRENT),
        verified_previous: verify(PREVIOUS),
        body: body.clone(),
    });
    let answer = receiver
        .plan
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Answer::RetryAfter(code, after) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", after)],
        )
            .into_response(),
        Answer::SlowThen(delay, code) => {
            tokio::time::sleep(delay).await;
            StatusCode::from_u16(code).unwrap().into_response()
        }
    }
}

/// Starts a receiver on `port` (0: any) and returns it with its port.
async fn start_receiver(port: u16, plan: Vec<Answer>) -> (Arc<Receiver>, u16) {
    let receiver = Arc::new(Receiver::default());
    receiver.plan.lock().unwrap().extend(plan);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, port)
}

fn secret_dir(previous: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(hookline_testkit::unique_name("emitter-test"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("current"), CURRENT).expect("current");
    if previous {
        std::fs::write(dir.join("previous"), PREVIOUS).expect("previous");
        std::fs::write(dir.join("previous-expires-at"), "2999-01-01T00:00:00Z").expect("expiry");
    }
    dir
}

/// The receivers run on loopback, which the emitter refuses unless allowed.
fn config(port: u16, secrets: &Path, extra: &[&str]) -> Config {
    let mut extra = extra.to_vec();
    extra.push("--allow-private-targets");
    config_for(&format!("http://127.0.0.1:{port}/hook"), secrets, &extra)
}

fn config_for(target: &str, secrets: &Path, extra: &[&str]) -> Config {
    let mut args = vec![
        "hookline-emitter".to_owned(),
        "--webhook-id=wh-test".into(),
        format!("--target-url={target}"),
        format!("--secret-dir={}", secrets.display()),
        "--ops-addr=127.0.0.1:0".into(),
        "--log-format=text".into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Config::try_parse_from(args).expect("valid test configuration")
}

/// An emitter whose metrics nobody reads.
fn emitter(config: Config) -> Emitter {
    Emitter::new(config, &mut Registry::default()).expect("emitter starts")
}

async fn run(config: Config) -> Summary {
    let emitter = emitter(config);
    tokio::time::timeout(Duration::from_secs(30), emitter.run(Shutdown::new()))
        .await
        .expect("the emitter stops by itself within 30 s")
}

fn gaps(received: &[Received]) -> Vec<Duration> {
    received.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test]
async fn failures_then_success_deliver_once_with_the_policys_delays() {
    let (receiver, port) = start_receiver(
        0,
        vec![
            Answer::Status(500),
            Answer::Status(502),
            Answer::Status(408),
        ],
    )
    .await;
    let secrets = secret_dir(false);
    let summary = run(config(
        port,
        &secrets,
        &[
            "--max-events=1",
            "--retries=5",
            "--backoff-policy=linear",
            "--backoff-delay-ms=100",
        ],
    ))
    .await;
    assert_eq!(
        (summary.emitted, summary.delivered, summary.failed),
        (1, 1, 0)
    );
    let received = receiver.received.lock().unwrap();
    assert_eq!(received.len(), 4, "3 failures and the success");
    assert!(
        received.iter().all(|r| r.verified_current),
        "every attempt is signed"
    );
    let ids: Vec<_> = received.iter().map(|r| r.message_id.clone()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one message id across retries: {ids:?}"
    );
    // Linear 100, 200, 300 ms with equal jitter: at least half of each.
    for (gap, policy_ms) in gaps(&received).iter().zip([100u64, 200, 300]) {
        assert!(
            *gap >= Duration::from_millis(policy_ms / 2),
            "{gap:?} < half of {policy_ms} ms"
        );
        assert!(
            *gap <= Duration::from_millis(policy_ms + 250),
            "{gap:?} far above {policy_ms} ms"
        );
    }
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).expect("JSON");
    assert!(
        body["type"].is_string() && body["data"]["invoice_id"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_and_503() {
    let (receiver, port) = start_receiver(
        0,
        vec![Answer::RetryAfter(429, "1"), Answer::RetryAfter(503, "1")],
    )
    .await;
    let secrets = secret_dir(false);
    let summary = run(config(
        port,
        &secrets,
        &["--max-events=1", "--backoff-delay-ms=10"],
    ))
    .await;
    assert_eq!(summary.delivered, 1);
    let received = receiver.received.lock().unwrap();
    assert_eq!(received.len(), 3);
    for gap in gaps(&received) {
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 not honoured: {gap:?}"
        );
    }
}

#[tokio::test]
async fn a_401_is_final_and_counted_not_hidden() {
    let (receiver, port) = start_receiver(0, vec![Answer::Status(401)]).await;
    let secrets = secret_dir(false);
    let summary = run(config(port, &secrets, &["--max-events=1", "--retries=5"])).await;
    assert_eq!(
        (summary.emitted, summary.delivered, summary.failed),
        (1, 0, 1)
    );
    assert_eq!(
        receiver.received.lock().unwrap().len(),
        1,
        "no retry after a 401"
    );
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried() {
    let (receiver, port) =
        start_receiver(0, vec![Answer::SlowThen(Duration::from_secs(3), 200)]).await;
    let secrets = secret_dir(false);
    let summary = run(config(
        port,
        &secrets,
        &[
            "--max-events=1",
            "--request-timeout-ms=300",
            "--backoff-delay-ms=50",
        ],
    ))
    .await;
    assert_eq!((summary.delivered, summary.failed), (1, 0));
    assert_eq!(
        receiver.received.lock().unwrap().len(),
        2,
        "the slow attempt, then the retry"
    );
}

#[tokio::test]
async fn a_410_stops_emission() {
    let (receiver, port) = start_receiver(0, vec![Answer::Status(410)]).await;
    let secrets = secret_dir(false);
    let summary = run(config(
        port,
        &secrets,
        &["--rate-per-second=20", "--concurrency=1"],
    ))
    .await;
    assert!(summary.gone);
    assert!(
        summary.emitted < 40,
        "emission went on after 410: {summary:?}"
    );
    let received = receiver.received.lock().unwrap().len() as u64;
    assert_eq!(
        summary.delivered + summary.failed + summary.abandoned,
        summary.emitted
    );
    assert!(received <= summary.emitted);
}

#[tokio::test]
async fn a_target_down_pauses_emission_then_everything_arrives() {
    let port = hookline_testkit::http::free_port();
    let secrets = secret_dir(false);
    let config = config(
        port,
        &secrets,
        &[
            "--rate-per-second=200",
            "--max-events=150",
            "--queue-limit=20",
            "--concurrency=2",
            "--retries=20",
            "--backoff-delay-ms=100",
            "--max-backoff-delay-ms=200",
        ],
    );
    let emitter = emitter(config);
    let tally = emitter.tally();
    let running = tokio::spawn(emitter.run(Shutdown::new()));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let while_down = tally.summary();
    // Bounded: the queue, one event per worker, and the one the generator holds.
    assert!(
        while_down.emitted <= 20 + 2 + 1,
        "emission did not pause: {while_down:?}"
    );
    assert_eq!(while_down.delivered, 0);

    let (receiver, _) = start_receiver(port, vec![]).await;
    let summary = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("finishes after the target returns")
        .expect("task");
    assert_eq!(
        (summary.emitted, summary.delivered, summary.failed),
        (150, 150, 0)
    );
    let received = receiver.received.lock().unwrap();
    let mut ids: Vec<_> = received
        .iter()
        .filter_map(|r| r.message_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 150, "every event arrived");
}

#[tokio::test]
async fn during_rotation_both_secrets_sign() {
    let (receiver, port) = start_receiver(0, vec![]).await;
    let secrets = secret_dir(true);
    let summary = run(config(port, &secrets, &["--max-events=1"])).await;
    assert_eq!(summary.delivered, 1);
    let received = receiver.received.lock().unwrap();
    let r = &received[0];
    assert!(
        r.verified_current && r.verified_previous,
        "verifiable with either secret"
    );
    let signatures = r.signature.as_deref().unwrap_or_default();
    assert_eq!(
        signatures
            .split(' ')
            .filter(|s| s.starts_with("v1,"))
            .count(),
        2,
        "{signatures}"
    );
}

#[tokio::test]
async fn shutdown_drains_then_reports_what_it_could_not_deliver() {
    let (receiver, port) = start_receiver(0, vec![Answer::Status(503); 100]).await;
    let secrets = secret_dir(false);
    let emitter = emitter(config(
        port,
        &secrets,
        &[
            "--rate-per-second=50",
            "--retries=20",
            "--backoff-delay-ms=200",
            "--drain-timeout-ms=300",
        ],
    ));
    let shutdown = Shutdown::new();
    let running = tokio::spawn(emitter.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.trigger();
    let summary = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("stops within the drain timeout")
        .expect("task");
    assert!(summary.emitted > 0);
    assert_eq!(summary.delivered, 0);
    assert_eq!(
        summary.abandoned + summary.failed,
        summary.emitted,
        "{summary:?}"
    );
    assert!(
        summary.abandoned > 0,
        "nothing reported as sent: {summary:?}"
    );
    assert!(!receiver.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_schedule_keeps_up_with_a_thousand_per_second() {
    let (receiver, port) = start_receiver(0, vec![]).await;
    let secrets = secret_dir(false);
    let emitter = emitter(config(port, &secrets, &["--rate-per-second=1000"]));
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let running = tokio::spawn(emitter.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = started.elapsed();
    shutdown.trigger();
    let summary = running.await.expect("task");
    // The generator owes one event per millisecond since it started, plus the first.
    let owed = elapsed.as_millis() as u64 + 1;
    assert!(
        summary.emitted <= owed,
        "ahead of schedule: {} > {owed}",
        summary.emitted
    );
    assert!(
        summary.emitted * 100 >= owed * 97,
        "behind schedule: {} of {owed}",
        summary.emitted
    );
    assert_eq!(
        summary.delivered + summary.failed + summary.abandoned,
        summary.emitted
    );
    assert_eq!(
        receiver.received.lock().unwrap().len() as u64,
        summary.delivered + summary.failed
    );
}

#[tokio::test]
async fn the_binary_serves_metrics_and_stops_cleanly_on_sigterm() {
    use hookline_testkit::http;

    let (receiver, port) = start_receiver(0, vec![]).await;
    let secrets = secret_dir(false);
    let ops_port = http::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hookline-emitter"))
        .env_clear()
        .env("WEBHOOK_ID", "wh-bin")
        .env(
            "WEBHOOK_TARGET_URL",
            format!("http://127.0.0.1:{port}/hook"),
        )
        .env("WEBHOOK_SECRET_DIR", &secrets)
        .env("EMITTER_ALLOW_PRIVATE_TARGETS", "true")
        .env("EMITTER_RATE_PER_SECOND", "100")
        .env("HOOKLINE_OPS_ADDR", format!("127.0.0.1:{ops_port}"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the emitter");
    let delivered = hookline_testkit::eventually(
        "20 deliveries in /metrics",
        Duration::from_secs(10),
        || async {
            let (status, body) =
                tokio::task::spawn_blocking(move || http::get(ops_port, "/metrics"))
                    .await
                    .expect("task")?;
            let delivered =
                hookline_testkit::prometheus::sample(&body, &metrics::DELIVERED.exported())?;
            (status == 200 && delivered >= 20.0).then_some(delivered)
        },
    )
    .await;
    assert!(delivered >= 20.0);
    let ready = tokio::task::spawn_blocking(move || http::get(ops_port, "/readyz"))
        .await
        .expect("task");
    assert_eq!(ready.map(|r| r.0), Some(200));
    let pid = child.id();
    assert!(send_signal(pid, Signal::Term), "SIGTERM delivered");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("task")
        .expect("exit");
    assert!(output.status.success(), "exit {:?}", output.status);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("emitter stopped") && log.contains("delivered"),
        "{log}"
    );
    assert!(
        !log.contains(CURRENT.trim_start_matches("whsec_")),
        "the secret leaked into the log"
    );
    assert!(!receiver.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn private_and_loopback_targets_are_refused_unless_allowed() {
    let (receiver, port) = start_receiver(0, vec![]).await;
    let secrets = secret_dir(false);
    let once = [
        "--max-events=2",
        "--rate-per-second=100",
        "--retries=3",
        "--backoff-delay-ms=1000",
    ];
    // An IP literal, and a name that resolves to loopback: refused before any request,
    // as final failures (no retries), and counted.
    for target in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let started = Instant::now();
        let summary = run(config_for(&target, &secrets, &once)).await;
        assert_eq!(
            (summary.emitted, summary.delivered, summary.failed),
            (2, 0, 2),
            "{target}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refusals are final, not retried"
        );
    }
    assert_eq!(
        receiver.received.lock().unwrap().len(),
        0,
        "nothing reached the private receiver"
    );
    let mut allowed = once.to_vec();
    allowed.push("--allow-private-targets=true");
    let summary = run(config_for(
        &format!("http://localhost:{port}/hook"),
        &secrets,
        &allowed,
    ))
    .await;
    assert_eq!((summary.delivered, summary.failed), (2, 0));
    assert_eq!(receiver.received.lock().unwrap().len(), 2);
}
