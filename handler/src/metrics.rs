//! The handler's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<StatusLabel, Counter>,
    pub verification_failures: Family<ReasonLabel, Counter>,
    pub produce_seconds: Histogram,
    pub request_seconds: Histogram,
    pub in_flight: Gauge,
    pub replays: Counter,
    pub replay_cache_entries: Gauge,
    pub replay_cache_evictions: Counter,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        // 0.25 ms to ~8 s: produce and request latencies span sub-millisecond to timeouts.
        let buckets = || exponential_buckets(0.000_25, 2.0, 16);
        let metrics = Self {
            requests: Family::default(),
            verification_failures: Family::default(),
            produce_seconds: Histogram::new(buckets()),
            request_seconds: Histogram::new(buckets()),
            in_flight: Gauge::default(),
            replays: Counter::default(),
            replay_cache_entries: Gauge::default(),
            replay_cache_evictions: Counter::default(),
        };
        registry.register(
            "requests",
            "Webhook requests answered, by HTTP status",
            metrics.requests.clone(),
        );
        registry.register(
            "verification_failures",
            "Requests refused by signature or timestamp verification, by reason",
            metrics.verification_failures.clone(),
        );
        registry.register(
            "produce_latency_seconds",
            "Time from producing an event to the broker's acknowledgement (or failure)",
            metrics.produce_seconds.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's headers to its answer",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Webhook requests being handled",
            metrics.in_flight.clone(),
        );
        registry.register(
            "replays",
            "Verified repeats of an accepted message, acknowledged without producing",
            metrics.replays.clone(),
        );
        registry.register(
            "replay_cache_entries",
            "Message ids remembered for replay detection",
            metrics.replay_cache_entries.clone(),
        );
        registry.register(
            "replay_cache_evictions",
            "Message ids forgotten before the tolerance window ended, for lack of capacity",
            metrics.replay_cache_evictions.clone(),
        );
        metrics
    }
}
