//! The operator's Prometheus metrics, each defined once as a [`MetricDef`].

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use hookline_runtime::metrics::{Kind, MetricDef};

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

/// Every metric here is `hookline_operator_<name>`.
const PREFIX: &str = "hookline_operator";

pub const RECONCILES: MetricDef = MetricDef::new(
    PREFIX,
    "reconciles",
    "Reconciliations of Webhook resources, by result",
    Kind::Counter,
);
pub const RECONCILE_DURATION: MetricDef = MetricDef::new(
    PREFIX,
    "reconcile_duration_seconds",
    "Time one reconciliation took",
    Kind::Histogram,
);
pub const REGISTRY_PUBLISHES: MetricDef = MetricDef::new(
    PREFIX,
    "registry_publishes",
    "Registry entries (and deletion records) acknowledged by Kafka",
    Kind::Counter,
);
pub const REGISTRY_ENTRIES_SEALED_WITH_OLD_KEY: MetricDef = MetricDef::new(
    PREFIX,
    "registry_entries_sealed_with_old_key",
    "Registry entries last published under a key other than the keyring's primary one (0: a rotation's old key may be removed)",
    Kind::Gauge,
);
pub const LEADER: MetricDef = MetricDef::new(
    PREFIX,
    "leader",
    "1 while this replica holds the leader Lease",
    Kind::Gauge,
);
pub const WEBHOOK_READY: MetricDef = MetricDef::new(
    PREFIX,
    "webhook_ready",
    "1 while a Webhook's Ready condition is True, as this replica last wrote it",
    Kind::Gauge,
);

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
    /// Creates the metrics and registers them in `metrics_registry`.
    pub fn register(metrics_registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            registry_publishes: Counter::default(),
            registry_entries_sealed_with_old_key: Gauge::default(),
            leader: Gauge::default(),
            webhook_ready: Family::default(),
        };
        RECONCILES.register(metrics_registry, metrics.reconciles.clone());
        RECONCILE_DURATION.register(metrics_registry, metrics.reconcile_duration.clone());
        REGISTRY_PUBLISHES.register(metrics_registry, metrics.registry_publishes.clone());
        REGISTRY_ENTRIES_SEALED_WITH_OLD_KEY.register(
            metrics_registry,
            metrics.registry_entries_sealed_with_old_key.clone(),
        );
        LEADER.register(metrics_registry, metrics.leader.clone());
        WEBHOOK_READY.register(metrics_registry, metrics.webhook_ready.clone());
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
        let mut metrics_registry = Registry::default();
        let metrics = Metrics::register(&mut metrics_registry);
        metrics.set_webhook_ready("team-a", "orders", false);
        metrics.set_webhook_ready("team-a", "billing", true);
        let body = encoded(&metrics_registry);
        assert!(
            body.contains(&format!(
                r#"{}{{webhook_namespace="team-a",webhook_name="orders"}} 0"#,
                WEBHOOK_READY.exported()
            )),
            "{body}"
        );

        metrics.forget_webhook("team-a", "orders");
        let body = encoded(&metrics_registry);
        assert!(!body.contains(r#"webhook_name="orders""#), "{body}");
        assert!(body.contains(r#"webhook_name="billing"} 1"#), "{body}");
    }
}
