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

#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub registry_publishes: Counter,
    pub registry_entries_sealed_with_old_key: Gauge,
    pub leader: Gauge,
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
            "Registry entries (and tombstones) acknowledged by Kafka",
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
        metrics
    }

    pub fn observe(&self, ok: bool, elapsed: Duration) {
        let result = if ok { "success" } else { "failure" };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }
}
