//! The operational endpoints every service serves: `/healthz` (the process is alive),
//! `/readyz` (its dependencies answer) and `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Named readiness conditions; the service is ready when every one is met.
/// A condition registered with `require` starts unmet.
#[derive(Clone, Default)]
pub struct Readiness {
    unmet: Arc<Mutex<BTreeMap<&'static str, String>>>,
}

impl Readiness {
    /// Adds a condition that is unmet until `set_ready` is called for it.
    pub fn require(&self, name: &'static str, why: impl Into<String>) {
        self.lock().insert(name, why.into());
    }

    pub fn set_ready(&self, name: &'static str) {
        self.lock().remove(name);
    }

    pub fn set_not_ready(&self, name: &'static str, why: impl Into<String>) {
        self.lock().insert(name, why.into());
    }

    /// The unmet conditions with their reasons; empty when ready.
    pub fn unmet(&self) -> BTreeMap<&'static str, String> {
        self.lock().clone()
    }

    pub fn is_ready(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.unmet.lock().unwrap_or_else(PoisonError::into_inner)
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
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
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

/// Binds `addr` and serves `router` until `shutdown` triggers.
pub async fn serve(addr: SocketAddr, router: Router, shutdown: Shutdown) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
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
    }
}
