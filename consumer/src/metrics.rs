//! The consumer's Prometheus metrics, each defined once below (its name, help and kind):
//! the code registers and the tests read them through these definitions.

use hookline_runtime::metrics::{Kind, MetricDef};
use hookline_runtime::registry_view::RegistryView;
use hookline_runtime::webhook_labels::WebhookLabels;
use hookline_store::day_partitions::{Sweep, SweepReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every metric here is `hookline_consumer_<name>`.
const PREFIX: &str = "hookline_consumer";

pub const CONSUMED: MetricDef = MetricDef::new(
    PREFIX,
    "consumed",
    "Records received from Kafka, by source (events or retries)",
    Kind::Counter,
);
pub const STORED: MetricDef = MetricDef::new(
    PREFIX,
    "stored",
    "Events newly written to PostgreSQL, by Webhook",
    Kind::Counter,
);
pub const DUPLICATES: MetricDef = MetricDef::new(
    PREFIX,
    "duplicates",
    "Events that were already stored (a redelivery) and were not written again",
    Kind::Counter,
);
pub const BATCH_SIZE: MetricDef = MetricDef::new(
    PREFIX,
    "batch_size",
    "Records per processed batch, by source",
    Kind::Histogram,
);
pub const LAG: MetricDef = MetricDef::new(
    PREFIX,
    "lag",
    "Records behind the end of each assigned partition",
    Kind::Gauge,
);
pub const ASSIGNED_PARTITIONS: MetricDef = MetricDef::new(
    PREFIX,
    "assigned_partitions",
    "Partitions this replica owns, by source",
    Kind::Gauge,
);
pub const RETRIES: MetricDef = MetricDef::new(
    PREFIX,
    "retries",
    "Retry copies acknowledged, by retry tier",
    Kind::Counter,
);
pub const EVENT_FAILURES: MetricDef = MetricDef::new(
    PREFIX,
    "event_failures",
    "Failed processing attempts of events, by reason",
    Kind::Counter,
);
pub const DEAD_LETTERS: MetricDef = MetricDef::new(
    PREFIX,
    "dead_letters",
    "Events published to the dead-letter topic, by Webhook",
    Kind::Counter,
);
pub const DROPPED: MetricDef = MetricDef::new(
    PREFIX,
    "dropped",
    "Events whose retries were spent on a Webhook with deadLetter off, by Webhook",
    Kind::Counter,
);
pub const PRODUCE_TO_ROW: MetricDef = MetricDef::new(
    PREFIX,
    "produce_to_row_seconds",
    "From the handler's receipt of an event to the commit of the transaction that \
     wrote its row (redeliveries included: they measure the same path again)",
    Kind::Histogram,
);
pub const DATABASE: MetricDef = MetricDef::new(
    PREFIX,
    "database_seconds",
    "Time one batch's transaction took, commit included",
    Kind::Histogram,
);
pub const INFRASTRUCTURE_FAILURES: MetricDef = MetricDef::new(
    PREFIX,
    "infrastructure_failures",
    "Batches that failed because PostgreSQL or Kafka did, by kind (retried, never skipped)",
    Kind::Counter,
);
pub const PAUSED: MetricDef = MetricDef::new(
    PREFIX,
    "paused",
    "1 while a consumer's partitions are paused for an outage, by source",
    Kind::Gauge,
);
pub const WEBHOOKS_MIRRORED: MetricDef = MetricDef::new(
    PREFIX,
    "webhooks_mirrored",
    "Registry updates written to the webhooks table",
    Kind::Counter,
);
pub const EVENT_PARTITIONS: MetricDef = MetricDef::new(
    PREFIX,
    "event_partitions",
    "Day partitions of the events table, as the last sweep found them",
    Kind::Gauge,
);
pub const EVENT_PARTITIONS_DROPPED: MetricDef = MetricDef::new(
    PREFIX,
    "event_partitions_dropped",
    "Day partitions of the events table dropped past the retention",
    Kind::Counter,
);
pub const DEAD_LETTERS_EXPIRED: MetricDef = MetricDef::new(
    PREFIX,
    "dead_letters_expired",
    "Dead-letter rows deleted past their retention",
    Kind::Counter,
);
pub const RETENTION_SWEEP_FAILURES: MetricDef = MetricDef::new(
    PREFIX,
    "retention_sweep_failures",
    "Partition and retention sweeps that failed (tried again at the next interval)",
    Kind::Counter,
);

/// Which consumer: `events` (the main topic) or `retries` (the retry tiers).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    pub tier: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// A live Webhook's id, `unknown`, or `all` (see [`WebhookLabels`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabel {
    pub webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    pub consumed: Family<SourceLabel, Counter>,
    pub stored: Family<WebhookLabel, Counter>,
    pub duplicates: Counter,
    pub batch_size: Family<SourceLabel, Histogram>,
    pub lag: Family<PartitionLabels, Gauge>,
    pub assigned_partitions: Family<SourceLabel, Gauge>,
    pub retries: Family<TierLabel, Counter>,
    pub event_failures: Family<ReasonLabel, Counter>,
    pub dead_letters: Family<WebhookLabel, Counter>,
    pub dropped: Family<WebhookLabel, Counter>,
    pub produce_to_row_seconds: Histogram,
    pub database_seconds: Histogram,
    pub infrastructure_failures: Family<KindLabel, Counter>,
    pub paused: Family<SourceLabel, Gauge>,
    pub webhooks_mirrored: Counter,
    pub event_partitions: Gauge,
    pub event_partitions_dropped: Counter,
    pub dead_letters_expired: Counter,
    pub retention_sweep_failures: Counter,
    labels: WebhookLabels,
}

impl Metrics {
    /// Creates the metrics and registers them in `metrics_registry`.
    pub fn register(metrics_registry: &mut Registry, labels: WebhookLabels) -> Self {
        let metrics = Self {
            consumed: Family::default(),
            stored: Family::default(),
            duplicates: Counter::default(),
            batch_size: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 14))
            }),
            lag: Family::default(),
            assigned_partitions: Family::default(),
            retries: Family::default(),
            event_failures: Family::default(),
            dead_letters: Family::default(),
            dropped: Family::default(),
            // 1 ms to about 4.5 minutes: a healthy pipeline's milliseconds and a backlog's minutes.
            produce_to_row_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 19)),
            database_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            infrastructure_failures: Family::default(),
            paused: Family::default(),
            webhooks_mirrored: Counter::default(),
            event_partitions: Gauge::default(),
            event_partitions_dropped: Counter::default(),
            dead_letters_expired: Counter::default(),
            retention_sweep_failures: Counter::default(),
            labels,
        };
        CONSUMED.register(metrics_registry, metrics.consumed.clone());
        STORED.register(metrics_registry, metrics.stored.clone());
        DUPLICATES.register(metrics_registry, metrics.duplicates.clone());
        BATCH_SIZE.register(metrics_registry, metrics.batch_size.clone());
        LAG.register(metrics_registry, metrics.lag.clone());
        ASSIGNED_PARTITIONS.register(metrics_registry, metrics.assigned_partitions.clone());
        RETRIES.register(metrics_registry, metrics.retries.clone());
        EVENT_FAILURES.register(metrics_registry, metrics.event_failures.clone());
        DEAD_LETTERS.register(metrics_registry, metrics.dead_letters.clone());
        DROPPED.register(metrics_registry, metrics.dropped.clone());
        PRODUCE_TO_ROW.register(metrics_registry, metrics.produce_to_row_seconds.clone());
        DATABASE.register(metrics_registry, metrics.database_seconds.clone());
        INFRASTRUCTURE_FAILURES.register(metrics_registry, metrics.infrastructure_failures.clone());
        PAUSED.register(metrics_registry, metrics.paused.clone());
        WEBHOOKS_MIRRORED.register(metrics_registry, metrics.webhooks_mirrored.clone());
        EVENT_PARTITIONS.register(metrics_registry, metrics.event_partitions.clone());
        EVENT_PARTITIONS_DROPPED
            .register(metrics_registry, metrics.event_partitions_dropped.clone());
        DEAD_LETTERS_EXPIRED.register(metrics_registry, metrics.dead_letters_expired.clone());
        RETENTION_SWEEP_FAILURES
            .register(metrics_registry, metrics.retention_sweep_failures.clone());
        metrics
    }

    /// The label of `webhook_id`'s series: its id while the registry holds it.
    pub fn webhook(&self, view: &RegistryView, webhook_id: &str) -> WebhookLabel {
        WebhookLabel {
            webhook: self.labels.value(view, webhook_id),
        }
    }

    /// Removes a deleted Webhook's series, so that ids come and go with Webhooks.
    pub fn forget_webhook(&self, webhook_id: &str) {
        let label = WebhookLabel {
            webhook: webhook_id.to_owned(),
        };
        self.stored.remove(&label);
        self.dead_letters.remove(&label);
        self.dropped.remove(&label);
    }
}

impl SweepReport for Metrics {
    fn swept(&self, sweep: &Sweep) {
        self.event_partitions.set(sweep.partitions as i64);
        self.event_partitions_dropped
            .inc_by(sweep.dropped.len() as u64);
        self.dead_letters_expired.inc_by(sweep.dead_letters_expired);
    }

    fn failed(&self) {
        self.retention_sweep_failures.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_testkit::prometheus::encoded;

    #[test]
    fn a_deleted_webhooks_series_are_removed_and_strangers_count_as_unknown() {
        let mut metrics_registry = Registry::default();
        let metrics = Metrics::register(&mut metrics_registry, WebhookLabels::new(true));
        let view = RegistryView::default();
        let stranger = metrics.webhook(&view, "wh-not-in-the-registry");
        assert_eq!(stranger.webhook, WebhookLabels::UNKNOWN);
        metrics.stored.get_or_create(&stranger).inc();
        let gone = WebhookLabel {
            webhook: "wh-1".into(),
        };
        metrics.stored.get_or_create(&gone).inc_by(3);
        metrics.dead_letters.get_or_create(&gone).inc();
        metrics.dropped.get_or_create(&gone).inc();

        metrics.forget_webhook("wh-1");
        let body = encoded(&metrics_registry);
        assert!(!body.contains(r#"webhook="wh-1""#), "{body}");
        assert!(
            body.contains(&format!(r#"{}{{webhook="unknown"}} 1"#, STORED.exported())),
            "{body}"
        );
    }
}
