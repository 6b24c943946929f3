//! The emitter's metrics (prefix `hookline_emitter`), each defined once.

use hookline_runtime::metrics::{Kind, MetricDef};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric here is `hookline_emitter_<name>`.
const PREFIX: &str = "hookline_emitter";

pub const EMITTED: MetricDef = MetricDef::new(PREFIX, "emitted", "Events generated", Kind::Counter);
pub const DELIVERED: MetricDef = MetricDef::new(
    PREFIX,
    "delivered",
    "Events the target accepted with a 2xx",
    Kind::Counter,
);
pub const FAILED: MetricDef = MetricDef::new(
    PREFIX,
    "failed",
    "Events given up on, by reason",
    Kind::Counter,
);
pub const ATTEMPTS: MetricDef = MetricDef::new(
    PREFIX,
    "attempts",
    "Delivery attempts, by outcome",
    Kind::Counter,
);
pub const ABANDONED: MetricDef = MetricDef::new(
    PREFIX,
    "abandoned",
    "Events still undelivered when shutdown's drain deadline came",
    Kind::Counter,
);
pub const BACKPRESSURE_PAUSES: MetricDef = MetricDef::new(
    PREFIX,
    "backpressure_pauses",
    "Times emission paused because the queue of undelivered events was full",
    Kind::Counter,
);
pub const QUEUED: MetricDef = MetricDef::new(
    PREFIX,
    "queued",
    "Events waiting for a delivery worker",
    Kind::Gauge,
);
pub const DELIVERY_DURATION: MetricDef = MetricDef::new(
    PREFIX,
    "delivery_duration_seconds",
    "From the first attempt to the 2xx, retries included",
    Kind::Histogram,
);

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
    pub fn register(metrics_registry: &mut Registry) -> Self {
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
        EMITTED.register(metrics_registry, metrics.emitted.clone());
        DELIVERED.register(metrics_registry, metrics.delivered.clone());
        FAILED.register(metrics_registry, metrics.failed.clone());
        ATTEMPTS.register(metrics_registry, metrics.attempts.clone());
        ABANDONED.register(metrics_registry, metrics.abandoned.clone());
        BACKPRESSURE_PAUSES.register(metrics_registry, metrics.backpressure_pauses.clone());
        QUEUED.register(metrics_registry, metrics.queued.clone());
        DELIVERY_DURATION.register(metrics_registry, metrics.delivery_seconds.clone());
        metrics
    }
}
