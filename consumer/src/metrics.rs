//! The consumer's Prometheus metrics (prefix `hookline_consumer_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use hookline_runtime::registry_view::RegistryView;
use hookline_runtime::webhook_labels::WebhookLabels;

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
    /// Creates the metrics and registers them under `registry`.
    pub fn register(registry: &mut Registry, labels: WebhookLabels) -> Self {
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
        registry.register(
            "consumed",
            "Records received from Kafka, by source (events or retries)",
            metrics.consumed.clone(),
        );
        registry.register(
            "stored",
            "Events newly written to PostgreSQL, by Webhook",
            metrics.stored.clone(),
        );
        registry.register(
            "duplicates",
            "Events that were already stored (a redelivery) and were not written again",
            metrics.duplicates.clone(),
        );
        registry.register(
            "batch_size",
            "Records per processed batch, by source",
            metrics.batch_size.clone(),
        );
        registry.register(
            "lag",
            "Records behind the end of each assigned partition",
            metrics.lag.clone(),
        );
        registry.register(
            "assigned_partitions",
            "Partitions this replica owns, by source",
            metrics.assigned_partitions.clone(),
        );
        registry.register(
            "retries",
            "Retry copies acknowledged, by retry tier",
            metrics.retries.clone(),
        );
        registry.register(
            "event_failures",
            "Failed processing attempts of events, by reason",
            metrics.event_failures.clone(),
        );
        registry.register(
            "dead_letters",
            "Events published to the dead-letter topic, by Webhook",
            metrics.dead_letters.clone(),
        );
        registry.register(
            "dropped",
            "Events whose retries were spent on a Webhook with deadLetter off, by Webhook",
            metrics.dropped.clone(),
        );
        registry.register(
            "produce_to_row_seconds",
            "From the handler's receipt of an event to the commit of the transaction that \
             wrote its row (redeliveries included: they measure the same path again)",
            metrics.produce_to_row_seconds.clone(),
        );
        registry.register(
            "database_seconds",
            "Time one batch's transaction took, commit included",
            metrics.database_seconds.clone(),
        );
        registry.register(
            "infrastructure_failures",
            "Batches that failed because PostgreSQL or Kafka did, by kind (retried, never skipped)",
            metrics.infrastructure_failures.clone(),
        );
        registry.register(
            "paused",
            "1 while a consumer's partitions are paused for an outage, by source",
            metrics.paused.clone(),
        );
        registry.register(
            "webhooks_mirrored",
            "Registry updates written to the webhooks table",
            metrics.webhooks_mirrored.clone(),
        );
        registry.register(
            "event_partitions",
            "Day partitions of the events table, as the last sweep found them",
            metrics.event_partitions.clone(),
        );
        registry.register(
            "event_partitions_dropped",
            "Day partitions of the events table dropped past the retention",
            metrics.event_partitions_dropped.clone(),
        );
        registry.register(
            "dead_letters_expired",
            "Dead-letter rows deleted past their retention",
            metrics.dead_letters_expired.clone(),
        );
        registry.register(
            "retention_sweep_failures",
            "Partition and retention sweeps that failed (tried again at the next interval)",
            metrics.retention_sweep_failures.clone(),
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_testkit::prometheus::encoded;

    #[test]
    fn a_deleted_webhooks_series_are_removed_and_strangers_count_as_unknown() {
        let mut registry = Registry::with_prefix("hookline_consumer");
        let metrics = Metrics::register(&mut registry, WebhookLabels::new(true));
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
        let body = encoded(&registry);
        assert!(!body.contains(r#"webhook="wh-1""#), "{body}");
        assert!(
            body.contains(r#"hookline_consumer_stored_total{webhook="unknown"} 1"#),
            "{body}"
        );
    }
}
