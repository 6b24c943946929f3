//! The console's Prometheus metrics (prefix `hookline_console`), each defined once.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use hookline_runtime::metrics::{Kind, MetricDef};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric here is `hookline_console_<name>`.
const PREFIX: &str = "hookline_console";

pub const REQUESTS: MetricDef = MetricDef::new(
    PREFIX,
    "requests",
    "API requests answered, by method, route template and HTTP status",
    Kind::Counter,
);
pub const REQUEST_DURATION: MetricDef = MetricDef::new(
    PREFIX,
    "request_duration_seconds",
    "Time to answer an API request (a live stream: to its first byte)",
    Kind::Histogram,
);
pub const FAILED_LOGINS: MetricDef = MetricDef::new(
    PREFIX,
    "failed_logins",
    "Sign-ins refused for a wrong username or password",
    Kind::Counter,
);
pub const THROTTLED_LOGINS: MetricDef = MetricDef::new(
    PREFIX,
    "throttled_logins",
    "Sign-ins and HTTP Basic checks answered 429: too many failures for the username or the address",
    Kind::Counter,
);
pub const REPLAYS: MetricDef = MetricDef::new(
    PREFIX,
    "replays",
    "Replays of dead letters run from the console",
    Kind::Counter,
);
pub const REPLAYED_DEAD_LETTERS: MetricDef = MetricDef::new(
    PREFIX,
    "replayed_dead_letters",
    "Dead letters replayed from the console",
    Kind::Counter,
);
pub const LIVE_STREAMS: MetricDef =
    MetricDef::new(PREFIX, "live_streams", "Live tails open now", Kind::Gauge);

/// Labels bounded by the router: a route template, never a path with ids in it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Histogram,
    pub failed_logins: Counter,
    pub throttled_logins: Counter,
    pub replays: Counter,
    pub replayed_dead_letters: Counter,
    pub live_streams: Gauge,
}

impl Metrics {
    pub fn register(metrics_registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            // 1 ms to ~16 s.
            request_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            failed_logins: Counter::default(),
            throttled_logins: Counter::default(),
            replays: Counter::default(),
            replayed_dead_letters: Counter::default(),
            live_streams: Gauge::default(),
        };
        REQUESTS.register(metrics_registry, metrics.requests.clone());
        REQUEST_DURATION.register(metrics_registry, metrics.request_seconds.clone());
        FAILED_LOGINS.register(metrics_registry, metrics.failed_logins.clone());
        THROTTLED_LOGINS.register(metrics_registry, metrics.throttled_logins.clone());
        REPLAYS.register(metrics_registry, metrics.replays.clone());
        REPLAYED_DEAD_LETTERS.register(metrics_registry, metrics.replayed_dead_letters.clone());
        LIVE_STREAMS.register(metrics_registry, metrics.live_streams.clone());
        metrics
    }

    pub fn observe_request(
        &self,
        method: &Method,
        route: &str,
        status: StatusCode,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.as_str().to_owned(),
                route: route.to_owned(),
                status: status.as_u16(),
            })
            .inc();
        self.request_seconds.observe(elapsed.as_secs_f64());
    }
}
