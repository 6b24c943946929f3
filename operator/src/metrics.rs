//! The operator's Prometheus metrics.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// A Webhook resource: bounded by the Webhooks in the cluster (removed on delete).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookResourceLabels {
    pub webhook_namespace: String,
    pub webhook_name: String,
}

#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub registry_publishes: Counter,
    pub registry_entries_sealed_with_old_key: Gauge,
    pub leader: Gauge,
    pub webhook_ready: Family<WebhookResourceLabels, Gauge>,
}

impl Metrics {
    /// Creates the metrics and registers them under `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            registry_publishes: Counter::default(),
            registry_entries_sealed_with_old_key: Gauge::default(),
            leader: Gauge::default(),
            webhook_ready: Family::default(),
        };
        registry.register(
            "reconciles",
            "Reconciliations of Webhook resources, by result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconciliation took",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "registry_publishes",
            "Registry entries (and deletion records) acknowledged by Kafka",
            metrics.registry_publishes.clone(),
        );
        registry.register(
            "registry_entries_sealed_with_old_key",
            "Registry entries last published under a key other than the keyring's primary one (0: a rotation's old key may be removed)",
            metrics.registry_entries_sealed_with_old_key.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            metrics.leader.clone(),
        );
        registry.register(
            "webhook_ready",
            "1 while a Webhook's Ready condition is True, as this replica last wrote it",
            metrics.webhook_ready.clone(),
        );
        metrics
    }

    pub fn observe(&self, ok: bool, elapsed: Duration) {
        let result = if ok { "success" } else { "failure" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Records the Ready condition just written to a Webhook's status.
    pub fn set_webhook_ready(&self, webhook_namespace: &str, webhook_name: &str, ready: bool) {
        self.webhook_ready
            .get_or_create(&webhook_resource(webhook_namespace, webhook_name))
            .set(i64::from(ready));
    }

    /// Removes a deleted Webhook's series.
    pub fn forget_webhook(&self, webhook_namespace: &str, webhook_name: &str) {
        self.webhook_ready
            .remove(&webhook_resource(webhook_namespace, webhook_name));
    }
}

fn webhook_resource(webhook_namespace: &str, webhook_name: &str) -> WebhookResourceLabels {
    WebhookResourceLabels {
        webhook_namespace: webhook_namespace.to_owned(),
        webhook_name: webhook_name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_testkit::prometheus::encoded;

    #[test]
    fn a_webhooks_ready_gauge_follows_its_condition_and_goes_with_it() {
        let mut registry = Registry::with_prefix("hookline_operator");
        let metrics = Metrics::register(&mut registry);
        metrics.set_webhook_ready("team-a", "orders", false);
        metrics.set_webhook_ready("team-a", "billing", true);
        let body = encoded(&registry);
        assert!(
            body.contains(
                r#"hookline_operator_webhook_ready{webhook_namespace="team-a",webhook_name="orders"} 0"#
            ),
            "{body}"
        );

        metrics.forget_webhook("team-a", "orders");
        let body = encoded(&registry);
        assert!(!body.contains(r#"webhook_name="orders""#), "{body}");
        assert!(body.contains(r#"webhook_name="billing"} 1"#), "{body}");
    }
}
