//! The emitter's counters, read by `/metrics` and by the summary it prints on exit.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub emitted: Counter,
    pub delivered: Counter,
    pub failed: Family<ReasonLabel, Counter>,
    pub attempts: Family<OutcomeLabel, Counter>,
    pub abandoned: Counter,
    pub backpressure_pauses: Counter,
    pub queued: Gauge,
    pub delivery_seconds: Histogram,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            emitted: Counter::default(),
            delivered: Counter::default(),
            failed: Family::default(),
            attempts: Family::default(),
            abandoned: Counter::default(),
            backpressure_pauses: Counter::default(),
            queued: Gauge::default(),
            delivery_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
        };
        registry.register("emitted", "Events generated", metrics.emitted.clone());
        registry.register(
            "delivered",
            "Events the target accepted with a 2xx",
            metrics.delivered.clone(),
        );
        registry.register(
            "failed",
            "Events given up on, by reason",
            metrics.failed.clone(),
        );
        registry.register(
            "attempts",
            "Delivery attempts, by outcome",
            metrics.attempts.clone(),
        );
        registry.register(
            "abandoned",
            "Events still undelivered when shutdown's drain deadline came",
            metrics.abandoned.clone(),
        );
        registry.register(
            "backpressure_pauses",
            "Times emission paused because the queue of undelivered events was full",
            metrics.backpressure_pauses.clone(),
        );
        registry.register(
            "queued",
            "Events waiting for a delivery worker",
            metrics.queued.clone(),
        );
        registry.register(
            "delivery_duration_seconds",
            "From the first attempt to the 2xx, retries included",
            metrics.delivery_seconds.clone(),
        );
        metrics
    }
}
