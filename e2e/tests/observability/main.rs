//! The chart's alerts and dashboard against a real Prometheus (Debian's package) scraping
//! the whole system as `make run` starts it: the dead-letter alert fires when failures are
//! injected and clears when they stop, the not-stored alert fires when the consumers are
//! scaled to zero and clears when they are back, and every dashboard query returns series.
//! The rules are the shipped file with its time spans divided by 30 (a 10-minute `for:` is
//! 20 s), so a run takes minutes. What Prometheus answered is written to
//! `$HOOKLINE_OBSERVABILITY_OUT` (default `target/observability/run.json`), from which
//! `dev/observability_report.py` draws the charts of docs/OBSERVABILITY.md.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookline_e2e::system::{System, repo_root, scrape_targets};
use hookline_testkit::eventually;
use hookline_testkit::prometheus::{Prometheus, with_time_spans_divided};
use serde_json::{Value, json};

const NAMESPACE: &str = "hookline-obs";
/// Production time spans divided by this: `for: 10m` becomes 20 s, `[5m]` 10 s.
const TIME_DIVISOR: u64 = 30;
const ALERT_WAIT: Duration = Duration::from_secs(150);

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

fn output_file() -> PathBuf {
    std::env::var_os("HOOKLINE_OBSERVABILITY_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from)
                .join("observability/run.json")
        })
}

/// Whether `alert` is in `state` for the system's namespace, and for `webhook` when given.
fn alert_is(prometheus: &Prometheus, alert: &str, state: &str, webhook: Option<&str>) -> bool {
    prometheus
        .alerts()
        .iter()
        .any(|(name, alert_state, labels)| {
            name == alert
                && alert_state == state
                && labels["namespace"] == NAMESPACE
                && webhook.is_none_or(|id| labels["webhook"] == id)
        })
}

fn alert_is_gone(prometheus: &Prometheus, alert: &str) -> bool {
    !prometheus
        .alerts()
        .iter()
        .any(|(name, _, labels)| name == alert && labels["namespace"] == NAMESPACE)
}

/// A dashboard query with Grafana's variables given values: every namespace's
/// `$namespace` is the system's, every Webhook, and `$__rate_interval` the `window`.
fn with_variables(expr: &str, window: &str) -> String {
    expr.replace("$namespace", NAMESPACE)
        .replace("$webhook", ".+")
        .replace("$__rate_interval", window)
}

/// (title, [(expr, legend)]) of every panel of the shipped dashboard.
fn dashboard_panels() -> Vec<(String, Vec<(String, String)>)> {
    let path = repo_root().join("helm/hookline/files/dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|panel| panel["type"] != "row")
        .map(|panel| {
            let targets = panel["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|t| {
                    (
                        t["expr"].as_str().expect("expr").to_owned(),
                        t["legendFormat"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            (panel["title"].as_str().expect("title").to_owned(), targets)
        })
        .collect()
}

fn finite(series: &Value) -> bool {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(f64::is_finite)
}

/// Refusals the dashboard shows: unsigned requests (401, missing_header) to a known Webhook
/// and one to an id no Webhook has (404, counted under webhook="unknown").
fn send_refused_requests(system: &System, webhook_id: &str) {
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    for _ in 0..5 {
        let (status, _) = hookline_testkit::http::post(
            system.proxy_port,
            &format!("/webhooks/{webhook_id}"),
            &headers,
            b"{}",
        )
        .expect("the proxy answers");
        assert_eq!(status, 401, "an unsigned request is refused");
    }
    let (status, _) =
        hookline_testkit::http::post(system.proxy_port, "/webhooks/wh-nobody", &headers, b"{}")
            .expect("the proxy answers");
    assert_eq!(status, 404, "an unknown Webhook is refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_fire_and_clear_and_every_dashboard_query_has_series() {
    let started = now();
    let system = System::start(NAMESPACE).await;
    let dir = system.run_dir().join("prometheus");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("Prometheus directory");
    let rules = std::fs::read_to_string(repo_root().join("helm/hookline/files/alerts.yaml"))
        .expect("the shipped rules");
    let rules_file = dir.join("alerts.yaml");
    std::fs::write(&rules_file, with_time_spans_divided(&rules, TIME_DIVISOR)).expect("rules");
    let prometheus = Arc::new(Prometheus::start(&dir, &rules_file).await);

    // Pods come and go (rollouts, scaling): the targets follow pods.json, as a PodMonitor
    // follows the pods it selects.
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (prometheus, stop, pods_dir) = (
            prometheus.clone(),
            stop.clone(),
            system.pods_dir().to_owned(),
        );
        std::thread::spawn(move || {
            let mut last = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let targets = scrape_targets(&pods_dir, NAMESPACE);
                if targets != last {
                    prometheus.set_targets(&targets);
                    last = targets;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    // Every pod scraped before the first Webhook, so its reconciliation is in the history.
    eventually("every pod scraped", ALERT_WAIT, || async {
        let pods = scrape_targets(system.pods_dir(), NAMESPACE).len();
        let up = prometheus.query(&format!("up{{namespace=\"{NAMESPACE}\"}} == 1"));
        (pods > 0 && up.len() >= pods).then_some(())
    })
    .await;
    let mut phases = vec![json!({"at": now(), "what": "system started, Prometheus scraping"})];

    let webhook = system
        .create_webhook(
            "observed",
            json!({
                "customerId": "e2e",
                "emitter": {"enabled": true, "ratePerSecond": 20.0, "replicas": 1},
                "delivery": {"retry": 1, "backoffPolicy": "linear", "backoffDelayMs": 100, "maxBackoffDelayMs": 200, "deadLetter": true},
                "rateLimit": {"requestsPerSecond": 5000, "burst": 5000},
            }),
        )
        .await;
    eventually("events stored, as Prometheus sees it", ALERT_WAIT, || async {
        let stored = prometheus.query(&format!(
            "sum(hookline_consumer_stored_total{{namespace=\"{NAMESPACE}\",webhook=\"{webhook}\"}}) > 0"
        ));
        (!stored.is_empty()).then_some(())
    })
    .await;
    send_refused_requests(&system, &webhook);
    phases.push(json!({"at": now(), "what": "traffic at 20 events/s, refused requests sent"}));

    // 1. Failures injected into processing: dead letters appear and the alert fires for
    //    this Webhook; no more failures, no new dead letters, and it clears.
    system.helm_set(&["consumer.injectFailureRate=0.5"], "hookline-consumer");
    phases.push(json!({"at": now(), "what": "consumer.injectFailureRate=0.5"}));
    eventually("HooklineDeadLetters firing", ALERT_WAIT, || async {
        alert_is(&prometheus, "HooklineDeadLetters", "firing", Some(&webhook)).then_some(())
    })
    .await;
    phases.push(json!({"at": now(), "what": "HooklineDeadLetters firing"}));

    // Every dashboard query, now that every kind of series exists (dead letters included):
    // each returns series, and each panel has a number to show, over the run so far.
    send_refused_requests(&system, &webhook);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = format!("{}s", (now() - started).ceil() as u64);
    let mut empty = Vec::new();
    for (title, targets) in dashboard_panels() {
        let mut any_finite = false;
        for (expr, _) in &targets {
            let result = prometheus.query(&with_variables(expr, &window));
            if result.is_empty() {
                empty.push(format!("{title}: {expr}"));
            }
            any_finite |= result.iter().any(finite);
        }
        if !any_finite {
            empty.push(format!("{title}: only NaN"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without series: {empty:#?}"
    );

    system.helm_set(&["consumer.injectFailureRate=0"], "hookline-consumer");
    phases.push(json!({"at": now(), "what": "consumer.injectFailureRate=0"}));
    eventually("HooklineDeadLetters cleared", ALERT_WAIT, || async {
        alert_is_gone(&prometheus, "HooklineDeadLetters").then_some(())
    })
    .await;
    phases.push(json!({"at": now(), "what": "HooklineDeadLetters cleared"}));
    assert!(
        !alert_is(&prometheus, "HooklineEventsNotStored", "firing", None),
        "the consumers store what is accepted: nothing says otherwise"
    );

    // 2. The consumers stopped while senders keep sending: events are accepted, not
    //    stored, and the alert fires; consumers back, the backlog drains, and it clears.
    let scale = |replicas: &str| {
        system.tool(
            "kubectl",
            &[
                "-n",
                NAMESPACE,
                "scale",
                "deployment/hookline-consumer",
                &format!("--replicas={replicas}"),
            ],
        )
    };
    scale("0");
    phases.push(json!({"at": now(), "what": "consumers scaled to 0"}));
    eventually("HooklineEventsNotStored firing", ALERT_WAIT, || async {
        alert_is(&prometheus, "HooklineEventsNotStored", "firing", None).then_some(())
    })
    .await;
    phases.push(json!({"at": now(), "what": "HooklineEventsNotStored firing"}));
    scale("2");
    phases.push(json!({"at": now(), "what": "consumers scaled to 2"}));
    eventually("HooklineEventsNotStored cleared", ALERT_WAIT, || async {
        alert_is_gone(&prometheus, "HooklineEventsNotStored").then_some(())
    })
    .await;
    phases.push(json!({"at": now(), "what": "HooklineEventsNotStored cleared"}));

    // What Prometheus answered over the run, for docs/OBSERVABILITY.md's charts.
    let (start, end) = (started, now());
    let step = 2;
    let panels: Vec<Value> = dashboard_panels()
        .into_iter()
        .map(|(title, targets)| {
            let targets: Vec<Value> = targets
                .into_iter()
                .map(|(expr, legend)| {
                    let series =
                        prometheus.query_range(&with_variables(&expr, "10s"), start, end, step);
                    json!({"expr": expr, "legend": legend, "series": series})
                })
                .collect();
            json!({"title": title, "targets": targets})
        })
        .collect();
    let alerts = prometheus.query_range(
        &format!("ALERTS{{namespace=\"{NAMESPACE}\"}}"),
        start,
        end,
        step,
    );
    let out = output_file();
    std::fs::create_dir_all(out.parent().expect("a directory")).expect("output directory");
    let run = json!({
        "start": start, "end": end, "step_s": step, "namespace": NAMESPACE,
        "time_divisor": TIME_DIVISOR, "rate_window": "10s",
        "phases": phases, "panels": panels, "alerts": alerts,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&run).expect("JSON"))
        .expect("write run.json");
    eprintln!("wrote {}", out.display());

    stop.store(true, Ordering::Relaxed);
    follower.join().expect("the target follower");
    drop(prometheus);
    system.stop();
}
