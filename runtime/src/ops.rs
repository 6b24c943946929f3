//! The operational endpoints every service serves: `/healthz` (the process is alive),
//! `/readyz` (its dependencies answer) and `/metrics` (Prometheus text format: the
//! service's own metrics, its readiness as `hookline_ready` and
//! `hookline_readiness_condition_unmet{condition}`, and the process's resource use).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;

use crate::process_metrics::ProcessStats;
use crate::shutdown::Shutdown;

/// Named readiness conditions; the service is ready when every one is met.
/// A condition registered with `require` starts unmet.
#[derive(Clone, Default)]
pub struct Readiness {
    state: Arc<Mutex<Conditions>>,
}

#[derive(Default)]
struct Conditions {
    unmet: BTreeMap<&'static str, String>,
    /// Every condition ever named, so a met one still shows as 0 in the metrics.
    known: BTreeSet<&'static str>,
}

impl Readiness {
    /// Adds a condition that is unmet until `set_ready` is called for it.
    pub fn require(&self, name: &'static str, why: impl Into<String>) {
        self.set_not_ready(name, why);
    }

    pub fn set_ready(&self, name: &'static str) {
        let mut state = self.lock();
        state.known.insert(name);
        state.unmet.remove(name);
    }

    pub fn set_not_ready(&self, name: &'static str, why: impl Into<String>) {
        let mut state = self.lock();
        state.known.insert(name);
        state.unmet.insert(name, why.into());
    }

    /// The unmet conditions with their reasons; empty when ready.
    pub fn unmet(&self) -> BTreeMap<&'static str, String> {
        self.lock().unmet.clone()
    }

    pub fn is_ready(&self) -> bool {
        self.lock().unmet.is_empty()
    }

    /// `hookline_ready` and `hookline_readiness_condition_unmet{condition}`, as they are now.
    fn encode_into(&self, registry: &mut Registry) {
        let state = self.lock();
        let ready: Gauge = Gauge::default();
        ready.set(i64::from(state.unmet.is_empty()));
        registry.register(
            "hookline_ready",
            "1 when every readiness condition is met (what /readyz answers 200 for), else 0",
            ready,
        );
        let unmet = Family::<ConditionLabel, Gauge>::default();
        for condition in &state.known {
            unmet
                .get_or_create(&ConditionLabel { condition })
                .set(i64::from(state.unmet.contains_key(condition)));
        }
        registry.register(
            "hookline_readiness_condition_unmet",
            "1 while the readiness condition is unmet (/readyz says why), 0 once met",
            unmet,
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conditions> {
        // The state stays consistent even if a holder panicked: every update is one call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabel {
    condition: &'static str,
}

/// The `process_*` series of a reading; those it could not read are left out.
fn encode_process_stats(stats: &ProcessStats, registry: &mut Registry) {
    let gauge = |value: f64| {
        let gauge = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        gauge.set(value);
        gauge
    };
    if let Some(bytes) = stats.resident_memory_bytes {
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            gauge(bytes as f64),
        );
    }
    if let Some(bytes) = stats.virtual_memory_bytes {
        registry.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            gauge(bytes as f64),
        );
    }
    if let Some(seconds) = stats.cpu_seconds {
        let counter = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        counter.inc_by(seconds);
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            counter,
        );
    }
    if let Some(count) = stats.open_fds {
        registry.register(
            "process_open_fds",
            "Number of open file descriptors",
            gauge(count as f64),
        );
    }
    if let Some(count) = stats.max_fds {
        registry.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            gauge(count as f64),
        );
    }
    if let Some(seconds) = stats.start_time_seconds {
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            gauge(seconds),
        );
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    registry: Arc<Registry>,
}

/// The `/healthz`, `/readyz` and `/metrics` routes, to serve alone or merge into a service's router.
pub fn router(readiness: Readiness, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            readiness,
            registry,
        })
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let unmet = state.readiness.unmet();
    if unmet.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "unmet": unmet })),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<OpsState>) -> Response {
    use prometheus_client::encoding::text::{encode_eof, encode_registry};
    // Readiness and process figures are read at scrape time, into a registry of their own.
    let mut scrape_time = Registry::default();
    state.readiness.encode_into(&mut scrape_time);
    encode_process_stats(&ProcessStats::read(), &mut scrape_time);
    let mut body = String::new();
    let encoded = encode_registry(&mut body, &state.registry)
        .and_then(|()| encode_registry(&mut body, &scrape_time))
        .and_then(|()| encode_eof(&mut body));
    match encoded {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {err}\n"),
        )
            .into_response(),
    }
}

/// Serves `router` on a bound `listener` until `shutdown` triggers.
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz, /metrics");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readyz_names_unmet_conditions_until_all_are_met() {
        let readiness = Readiness::default();
        readiness.require("kafka", "not connected yet");
        let router = router(readiness.clone(), Arc::new(Registry::default()));

        let (status, body) = get(router.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("kafka") && body.contains("not connected yet"),
            "{body}"
        );

        readiness.set_ready("kafka");
        assert_eq!(get(router.clone(), "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(router, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("hookline_things", "Things counted", counter.clone());
        counter.inc_by(3);
        let (status, body) =
            get(router(Readiness::default(), Arc::new(registry)), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("hookline_things_total 3"), "{body}");
        assert_eq!(body.matches("# EOF").count(), 1, "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        for family in [
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(body.contains(&format!("\n{family}")), "{family}: {body}");
        }
    }

    #[tokio::test]
    async fn readiness_shows_in_the_metrics_condition_by_condition() {
        let readiness = Readiness::default();
        readiness.require("kafka", "not connected yet");
        readiness.require("registry", "loading");
        let router = router(readiness.clone(), Arc::new(Registry::default()));
        let sample = |body: &str, series: &str| hookline_sample(body, series);

        let (_, body) = get(router.clone(), "/metrics").await;
        assert_eq!(sample(&body, "hookline_ready"), Some(0.0), "{body}");
        let kafka = "hookline_readiness_condition_unmet{condition=\"kafka\"}";
        let registry = "hookline_readiness_condition_unmet{condition=\"registry\"}";
        assert_eq!(sample(&body, kafka), Some(1.0), "{body}");

        readiness.set_ready("kafka");
        let (_, body) = get(router.clone(), "/metrics").await;
        assert_eq!(
            sample(&body, kafka),
            Some(0.0),
            "met conditions stay, at 0: {body}"
        );
        assert_eq!(sample(&body, registry), Some(1.0), "{body}");
        assert_eq!(sample(&body, "hookline_ready"), Some(0.0), "{body}");

        readiness.set_ready("registry");
        let (_, body) = get(router, "/metrics").await;
        assert_eq!(sample(&body, "hookline_ready"), Some(1.0), "{body}");
        assert_eq!(sample(&body, registry), Some(0.0), "{body}");
    }

    /// The value of the sample line `series` (labels included).
    fn hookline_sample(body: &str, series: &str) -> Option<f64> {
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}
