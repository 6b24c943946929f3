//! The kind stage: Hookline on the kind cluster of `make kind-up`, reached as a sender
//! reaches it. Signed events go through the cluster's Ingress (Traefik on the host's
//! port 80) to the handler pods, scaled to `--handlers`, at fixed rates; each event's
//! `timestamp` is the moment it was due to be sent (so a stalled connection delays the
//! events behind it and the delay counts). The rows are read in the cluster's
//! PostgreSQL with psql in its pod: per rate, p50 and p99 from send to row and the share
//! of the events sent in the window that were stored. `dev/kind.sh bench` runs it with
//! kubectl pointed at the cluster.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hookline_core::signature::{self, Scheme, SigningSecret};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use serde_json::json;
use tokio::time::Instant;

use crate::local::http1_connect;
use crate::report::{Report, round};

#[derive(clap::Args)]
pub struct Args {
    /// Rates (events per second) sent through the Ingress, one row each.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000")]
    rates: Vec<u32>,
    /// Seconds measured per rate, after `--warmup-seconds` of the same rate.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, default_value_t = 5)]
    warmup_seconds: u64,
    /// Handler replicas during the bench (the Deployment is scaled back afterwards).
    #[arg(long, default_value_t = 3)]
    handlers: u32,
    /// Keep-alive connections to the Ingress the events are spread over: enough that
    /// each carries a request every 64 ms at 2,000/s, so one answer's delay does not hold
    /// back the next due event.
    #[arg(long, default_value_t = 128)]
    connections: u64,
    /// Seconds to wait for the window's events to be stored once sending stopped.
    #[arg(long, default_value_t = 60)]
    drain_timeout_secs: u64,
    /// The bench Webhook's `spec.rateLimit.requestsPerSecond` (burst twice that): at
    /// most the chart's `limits.maxRateLimitPerSecond`, 1,000 by default. Each handler
    /// replica keeps its own bucket, so 3 replicas take 3,000/s.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_per_second: u32,
    #[arg(long, env = "HOOKLINE_KIND_NAMESPACE", default_value = "hookline")]
    namespace: String,
    #[arg(long, env = "HOOKLINE_KIND_RELEASE", default_value = "hookline")]
    release: String,
    /// host:port of the Ingress on this machine (kind's port mapping).
    #[arg(long, env = "HOOKLINE_KIND_INGRESS", default_value = "127.0.0.1:80")]
    ingress: String,
    /// The Host header the handler's Ingress routes on.
    #[arg(
        long,
        env = "HOOKLINE_KIND_INGRESS_HOST",
        default_value = "hooks.localtest.me"
    )]
    ingress_host: String,
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    let cluster = Cluster {
        namespace: args.namespace.clone(),
        release: args.release.clone(),
    };
    let handler = format!("deployment/{}-handler", cluster.release);
    let replicas_before = cluster.kubectl(&["get", &handler, "-o", "jsonpath={.spec.replicas}"])?;
    cluster.kubectl(&["scale", &handler, &format!("--replicas={}", args.handlers)])?;
    cluster.kubectl(&["rollout", "status", &handler, "--timeout=300s"])?;
    let result = measure_all(&args, &cluster).await;
    cluster.kubectl(&[
        "scale",
        &handler,
        &format!("--replicas={}", replicas_before.trim()),
    ])?;
    result
}

async fn measure_all(args: &Args, cluster: &Cluster) -> anyhow::Result<Report> {
    let mut report = Report::new("kind");
    report
        .figure("handlers", args.handlers)
        .figure("seconds_per_rate", args.seconds)
        .figure(
            "path",
            "signed events from this machine through Traefik's Ingress to the handler pods; \
             send (the event's timestamp) to its row in the cluster's PostgreSQL",
        );
    for &rate in &args.rates {
        let measured = measure(args, cluster, rate).await?;
        println!(
            "rate {rate}/s: sent {} in the window, accepted {:.3}, stored {:.3}; \
             p50 {:.1} ms, p99 {:.1} ms",
            measured.sent,
            measured.accepted_share(),
            measured.stored_share(),
            measured.p50_ms,
            measured.p99_ms
        );
        let key = |name: &str| format!("rate_{rate}_per_s_{name}");
        report
            .figure(&key("p50_ms"), round(measured.p50_ms))
            .figure(&key("p99_ms"), round(measured.p99_ms))
            .figure(&key("stored_share"), round(measured.stored_share()))
            .figure(&key("accepted_share"), round(measured.accepted_share()))
            .figure(&key("sent"), measured.sent);
    }
    Ok(report)
}

/// One rate's window.
struct Measured {
    sent: u64,
    accepted: u64,
    stored: u64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Measured {
    fn stored_share(&self) -> f64 {
        share(self.stored, self.sent)
    }

    fn accepted_share(&self) -> f64 {
        share(self.accepted, self.sent)
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return f64::NAN;
    }
    part as f64 / whole as f64
}

async fn measure(args: &Args, cluster: &Cluster, rate: u32) -> anyhow::Result<Measured> {
    let name = format!("bench-kind-{rate}");
    // A Webhook left by an interrupted run would hold events of another window.
    cluster.kubectl(&[
        "delete",
        "webhook",
        &name,
        "--ignore-not-found",
        "--wait=true",
    ])?;
    let id = cluster.apply_webhook(&name, args.rate_limit_per_second)?;
    let secret = cluster.signing_secret(&name)?;
    let target = Target {
        ingress: args.ingress.clone(),
        host: args.ingress_host.clone(),
        path: format!("/webhooks/{id}"),
    };
    target.wait_until_known(Duration::from_secs(120)).await?;

    let warmup = Duration::from_secs(args.warmup_seconds);
    let window = Duration::from_secs(args.seconds);
    let sent = send_at_rate(&target, &secret, rate, warmup, window, args.connections).await?;
    let (from, to) = (sent.window_from, sent.window_to);
    let query = window_query(&id, from, to);
    let deadline = Instant::now() + Duration::from_secs(args.drain_timeout_secs);
    // Every accepted event of the window stored, or the deadline: what is missing then
    // counts as lost.
    let row = loop {
        let row = parse_row(&cluster.sql(&query)?)?;
        if row.stored >= sent.accepted || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    cluster.kubectl(&["delete", "webhook", &name, "--wait=false"])?;
    if row.stored == 0 {
        bail!("rate {rate}/s: no event sent in the window was stored");
    }
    Ok(Measured {
        sent: sent.sent,
        accepted: sent.accepted,
        stored: row.stored,
        p50_ms: row.p50_ms,
        p99_ms: row.p99_ms,
    })
}

/// kubectl (from PATH, pointed at the cluster) in the release's namespace.
struct Cluster {
    namespace: String,
    release: String,
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.kubectl_with_input(args, None)
    }

    fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut child = Command::new("kubectl")
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .stdin(if input.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("cannot run kubectl: run the stage with make kind-bench")?;
        if let Some(input) = input {
            child
                .stdin
                .take()
                .context("kubectl's stdin")?
                .write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "kubectl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Applies Webhook `name` (no emitter: this machine sends) and returns its id once
    /// it is Ready.
    fn apply_webhook(&self, name: &str, rate_limit_per_second: u32) -> anyhow::Result<String> {
        let manifest = json!({
            "apiVersion": "hookline.io/v1alpha1",
            "kind": "Webhook",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "customerId": "bench-kind",
                "emitter": {"enabled": false, "ratePerSecond": 1.0, "replicas": 1},
                "rateLimit": {
                    "requestsPerSecond": rate_limit_per_second,
                    "burst": rate_limit_per_second.saturating_mul(2),
                },
            },
        });
        self.kubectl_with_input(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
        self.kubectl(&[
            "wait",
            &format!("webhook/{name}"),
            "--for=condition=Ready",
            "--timeout=180s",
        ])?;
        let id = self.kubectl(&["get", "webhook", name, "-o", "jsonpath={.status.webhookId}"])?;
        Ok(id.trim().to_owned())
    }

    /// The Webhook's current signing secret, from the Secret the operator keeps.
    fn signing_secret(&self, name: &str) -> anyhow::Result<SigningSecret> {
        let encoded = self.kubectl(&[
            "get",
            "secret",
            &format!("{name}-signing"),
            "-o",
            "jsonpath={.data.current}",
        ])?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .context("the signing Secret's current key is not base64")?;
        Ok(SigningSecret::parse(
            Scheme::Standard,
            &String::from_utf8_lossy(&secret),
        )?)
    }

    /// Runs SQL with psql in the cluster's PostgreSQL pod: its unaligned output.
    fn sql(&self, query: &str) -> anyhow::Result<String> {
        let pod = format!("statefulset/{}-postgres", self.release);
        let psql = ["psql", "-U", "hookline", "-d", "hookline", "-tAc", query];
        self.kubectl(&[&["exec", pod.as_str(), "--"][..], &psql[..]].concat())
    }
}

/// Count, p50 and p99 (ms) from an event's timestamp to its row, for the events of
/// Webhook `id` whose timestamp lies in [from, to).
fn window_query(id: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    // The id is the operator's (letters, digits, '-' and '_'): safe to format in.
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!(
        "select count(*), \
                coalesce(percentile_cont(0.5) within group (order by delay_ms), 'NaN'), \
                coalesce(percentile_cont(0.99) within group (order by delay_ms), 'NaN') \
         from (select extract(epoch from (stored_at - (payload->>'timestamp')::timestamptz)) * 1000 as delay_ms \
               from events where webhook_id = '{id}' \
                 and (payload->>'timestamp')::timestamptz >= '{}' \
                 and (payload->>'timestamp')::timestamptz < '{}') as windowed",
        from.to_rfc3339(),
        to.to_rfc3339()
    )
}

struct Row {
    stored: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// psql's `-tA` line `count|p50|p99`.
fn parse_row(output: &str) -> anyhow::Result<Row> {
    let line = output.trim();
    let fields: Vec<&str> = line.split('|').collect();
    let [stored, p50, p99] = fields[..] else {
        bail!("psql answered {line:?}, not count|p50|p99");
    };
    Ok(Row {
        stored: stored
            .parse()
            .with_context(|| format!("count in {line:?}"))?,
        p50_ms: p50.parse().with_context(|| format!("p50 in {line:?}"))?,
        p99_ms: p99.parse().with_context(|| format!("p99 in {line:?}"))?,
    })
}

/// Where the events go: the Ingress on this machine, the Host it routes, the path.
#[derive(Clone)]
struct Target {
    ingress: String,
    host: String,
    path: String,
}

impl Target {
    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        http1_connect(&self.ingress)
            .await
            .with_context(|| format!("the Ingress at {}", self.ingress))
    }

    /// POSTs `body` (signed when `headers` are given); the status, or None when the
    /// connection failed (and must be replaced).
    async fn post(
        &self,
        connection: &mut SendRequest<Full<Bytes>>,
        body: String,
        headers: Vec<(&'static str, String)>,
    ) -> Option<u16> {
        let mut request = Request::post(self.path.as_str())
            .header("host", self.host.as_str())
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(Bytes::from(body))).ok()?;
        connection.ready().await.ok()?;
        let response = connection.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    }

    /// Waits until an unsigned POST is refused for its signature (401) twenty times in a
    /// row: each handler behind the Ingress then knows the Webhook (one that does not
    /// answers 404).
    async fn wait_until_known(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut in_a_row = 0;
        let mut last = None;
        while in_a_row < 20 {
            if Instant::now() > deadline {
                bail!(
                    "the handlers behind {} did not all know {} within {} s (last answer {last:?})",
                    self.ingress,
                    self.path,
                    timeout.as_secs()
                );
            }
            let mut connection = self.connect().await?;
            last = self.post(&mut connection, "{}".into(), Vec::new()).await;
            if last == Some(401) {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }
}

/// What one rate's sending did.
struct Sent {
    window_from: DateTime<Utc>,
    window_to: DateTime<Utc>,
    /// Events due in the window, and those of them the handlers answered 202.
    sent: u64,
    accepted: u64,
}

/// Sends `rate` events per second for `warmup` then `window` (open loop: event `i` is due
/// at `i / rate` seconds, whatever the answers), spread over `connections` keep-alive
/// connections, connection `k` carrying events k, k + connections, ...
async fn send_at_rate(
    target: &Target,
    secret: &SigningSecret,
    rate: u32,
    warmup: Duration,
    window: Duration,
    connections: u64,
) -> anyhow::Result<Sent> {
    let total = due_events(rate, warmup + window);
    let in_warmup = due_events(rate, warmup);
    let started = Instant::now();
    let wall_start = Utc::now();
    let sent = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for k in 0..connections.min(total) {
        let mut connection = target.connect().await?;
        let (target, secret) = (target.clone(), secret.clone());
        let (sent, accepted) = (sent.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            for i in (k..total).step_by(connections as usize) {
                let due = due_at(rate, i);
                tokio::time::sleep_until(started + due).await;
                let timestamp = wall_start + chrono::Duration::from_std(due).unwrap_or_default();
                let event_id = format!("kind-{rate}-{i}");
                let body = json!({
                    "event_id": event_id, "event_type": "CREATED",
                    "timestamp": timestamp.to_rfc3339(),
                    "data": {"invoice_id": event_id},
                })
                .to_string();
                let headers = signature::sign(
                    Scheme::Standard,
                    std::slice::from_ref(&secret),
                    &format!("msg_{event_id}"),
                    Utc::now(),
                    body.as_bytes(),
                )?;
                let status = target.post(&mut connection, body, headers).await;
                if i >= in_warmup {
                    sent.fetch_add(1, Ordering::Relaxed);
                    if status == Some(202) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if status.is_none() {
                    connection = target.connect().await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Sent {
        window_from: wall_start + chrono::Duration::from_std(warmup)?,
        window_to: wall_start + chrono::Duration::from_std(warmup + window)?,
        sent: sent.load(Ordering::Relaxed),
        accepted: accepted.load(Ordering::Relaxed),
    })
}

/// Events due in `span` at `rate` per second.
fn due_events(rate: u32, span: Duration) -> u64 {
    (f64::from(rate) * span.as_secs_f64()).round() as u64
}

/// When event `i` is due, from the start.
fn due_at(rate: u32, i: u64) -> Duration {
    Duration::from_secs_f64(i as f64 / f64::from(rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_due_evenly_and_the_window_follows_the_warmup() {
        assert_eq!(due_events(500, Duration::from_secs(30)), 15_000);
        assert_eq!(due_events(1000, Duration::from_secs(5)), 5_000);
        assert_eq!(due_at(1000, 0), Duration::ZERO);
        assert_eq!(due_at(1000, 1500), Duration::from_millis(1500));
        assert_eq!(due_at(2000, 1), Duration::from_micros(500));
    }

    #[test]
    fn psql_rows_are_read_and_odd_answers_refused() {
        let row = parse_row("14998|12.5|87.25\n").unwrap();
        assert_eq!(row.stored, 14_998);
        assert_eq!((row.p50_ms, row.p99_ms), (12.5, 87.25));
        // No row in the window: percentiles are NaN, not an error.
        assert!(parse_row("0|NaN|NaN").unwrap().p99_ms.is_nan());
        assert!(parse_row("").is_err());
        assert!(parse_row("1|2").is_err());
        assert!(parse_row("x|1|2").is_err());
    }

    #[test]
    fn the_window_query_names_the_webhook_and_bounds() {
        let from = DateTime::parse_from_rfc3339("2026-12-07T10:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let to = from + chrono::Duration::seconds(30);
        let query = window_query("wh_abc-1'; drop table events; --", from, to);
        assert!(query.contains("webhook_id = 'wh_abc-1droptableevents--'"));
        assert!(query.contains(">= '2026-12-07T10:00:05+00:00'"));
        assert!(query.contains("< '2026-12-07T10:00:35+00:00'"));
    }

    /// A stand-in for the Ingress on loopback that keeps every request and answers 202.
    async fn ingress() -> (
        String,
        Arc<std::sync::Mutex<Vec<(Vec<(String, Vec<u8>)>, Bytes)>>>,
    ) {
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = received.clone();
        let app = axum::Router::new().route(
            "/webhooks/wh_1",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect();
                kept.lock().unwrap().push((headers, body));
                async { axum::http::StatusCode::ACCEPTED }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (address, received)
    }

    #[tokio::test]
    async fn events_go_out_signed_at_the_rate_stamped_when_due_and_the_window_follows_the_warmup() {
        let (address, received) = ingress().await;
        let target = Target {
            ingress: address,
            host: "hooks.test".into(),
            path: "/webhooks/wh_1".into(),
        };
        let secret =
            SigningSecret::parse(Scheme::Standard, &signature::generate_standard_secret()).unwrap();
        let warmup = Duration::from_millis(100);
        let window = Duration::from_millis(500);
        let sent = send_at_rate(&target, &secret, 200, warmup, window, 4)
            .await
            .unwrap();
        assert_eq!((sent.sent, sent.accepted), (100, 100));
        assert_eq!(
            (sent.window_to - sent.window_from).to_std().unwrap(),
            window
        );

        let received = received.lock().unwrap();
        assert_eq!(received.len(), 120);
        let mut stamps = Vec::new();
        for (headers, body) in received.iter() {
            assert!(headers.contains(&("host".to_owned(), b"hooks.test".to_vec())));
            signature::verify(
                Scheme::Standard,
                headers.as_slice(),
                body,
                std::slice::from_ref(&secret),
                Utc::now(),
                signature::DEFAULT_TOLERANCE,
            )
            .unwrap();
            let event: serde_json::Value = serde_json::from_slice(body).unwrap();
            let stamp = DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
            stamps.push(stamp.with_timezone(&Utc));
        }
        // Each event is stamped with the moment it was due: 5 ms apart at 200/s, the
        // window's first the first after the warm-up.
        stamps.sort_unstable();
        assert!(
            stamps
                .windows(2)
                .all(|w| w[1] - w[0] == chrono::Duration::milliseconds(5))
        );
        assert_eq!(stamps[20], sent.window_from);
        assert!(stamps[119] < sent.window_to);
    }

    #[test]
    fn shares_of_nothing_sent_are_unknown() {
        assert_eq!(share(990, 1000), 0.99);
        assert!(share(0, 0).is_nan());
    }
}
