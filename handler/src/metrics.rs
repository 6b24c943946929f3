//! The handler's Prometheus metrics, each defined once below (its name, help and kind):
//! the code registers and the tests read them through these definitions. Answers and
//! verification failures count per Webhook, under the label
//! `hookline_runtime::webhook_labels::WebhookLabels` gives each id.
//!
//! The repeat caches' metrics keep the names they were published under (`replays`,
//! `replay_cache_*`): dashboards and alerts read them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use hookline_core::signature::VerifyError;
use hookline_runtime::metrics::{Kind, MetricDef};
use hookline_runtime::registry_view::RegistryView;
use hookline_runtime::webhook_labels::WebhookLabels;

use crate::rejection::Rejection;

/// Every handler metric is `hookline_handler_<name>`.
const PREFIX: &str = "hookline_handler";

pub const REQUESTS: MetricDef = MetricDef::new(
    PREFIX,
    "requests",
    "Webhook requests answered, by Webhook and HTTP status",
    Kind::Counter,
);
pub const VERIFICATION_FAILURES: MetricDef = MetricDef::new(
    PREFIX,
    "verification_failures",
    "Requests refused by signature or timestamp verification, by Webhook and reason",
    Kind::Counter,
);
pub const PRODUCE_LATENCY: MetricDef = MetricDef::new(
    PREFIX,
    "produce_latency_seconds",
    "Time from producing an event to the broker's acknowledgement (or failure)",
    Kind::Histogram,
);
pub const REQUEST_DURATION: MetricDef = MetricDef::new(
    PREFIX,
    "request_duration_seconds",
    "Time from the request's headers to its answer",
    Kind::Histogram,
);
pub const REQUESTS_IN_FLIGHT: MetricDef = MetricDef::new(
    PREFIX,
    "requests_in_flight",
    "Webhook requests being handled",
    Kind::Gauge,
);
pub const REPEATED_MESSAGES: MetricDef = MetricDef::new(
    PREFIX,
    "replays",
    "Verified repeats of an accepted message, acknowledged without producing",
    Kind::Counter,
);
pub const SEEN_MESSAGES_ENTRIES: MetricDef = MetricDef::new(
    PREFIX,
    "replay_cache_entries",
    "Message ids remembered for replay detection",
    Kind::Gauge,
);
pub const SEEN_MESSAGES_EVICTIONS: MetricDef = MetricDef::new(
    PREFIX,
    "replay_cache_evictions",
    "Message ids forgotten before the tolerance window ended, for lack of capacity",
    Kind::Counter,
);
pub const SEEN_BODIES_ENTRIES: MetricDef = MetricDef::new(
    PREFIX,
    "body_repeat_cache_entries",
    "Body digests remembered for repeat detection of schemes whose delivery id is not signed",
    Kind::Gauge,
);
pub const SEEN_BODIES_EVICTIONS: MetricDef = MetricDef::new(
    PREFIX,
    "body_repeat_cache_evictions",
    "Body digests forgotten before the unsigned-id repeat window ended, for lack of capacity",
    Kind::Counter,
);
pub const REQUESTS_SHED: MetricDef = MetricDef::new(
    PREFIX,
    "requests_shed",
    "Requests refused for lack of a concurrency slot, by cap (global, webhook, source)",
    Kind::Counter,
);
pub const REGISTRY_CATCH_UPS: MetricDef = MetricDef::new(
    PREFIX,
    "registry_catch_ups",
    "Reads of the registry topic's end for a webhook id this replica did not know",
    Kind::Counter,
);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabels {
    pub webhook: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub webhook: String,
    pub reason: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    labels: WebhookLabels,
    pub requests: Family<AnswerLabels, Counter>,
    pub verification_failures: Family<FailureLabels, Counter>,
    pub produce_seconds: Histogram,
    pub request_seconds: Histogram,
    pub in_flight: Gauge,
    /// Verified repeats of an accepted message (a sender's retry or a replay attack).
    pub repeated_messages: Counter,
    pub seen_messages_entries: Gauge,
    pub seen_messages_evictions: Counter,
    pub seen_bodies_entries: Gauge,
    pub seen_bodies_evictions: Counter,
    /// Requests shed, by which cap: `global`, `webhook` or `source`.
    pub shed: Family<ShedLabels, Counter>,
    pub registry_catch_ups: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    pub cap: &'static str,
}

impl Metrics {
    /// The metrics, registered in `metrics_registry`.
    pub fn register(metrics_registry: &mut Registry, labels: WebhookLabels) -> Self {
        // 0.25 ms to ~8 s: produce and request latencies span sub-millisecond to timeouts.
        let buckets = || exponential_buckets(0.000_25, 2.0, 16);
        let metrics = Self {
            labels,
            requests: Family::default(),
            verification_failures: Family::default(),
            produce_seconds: Histogram::new(buckets()),
            request_seconds: Histogram::new(buckets()),
            in_flight: Gauge::default(),
            repeated_messages: Counter::default(),
            seen_messages_entries: Gauge::default(),
            seen_messages_evictions: Counter::default(),
            seen_bodies_entries: Gauge::default(),
            seen_bodies_evictions: Counter::default(),
            shed: Family::default(),
            registry_catch_ups: Counter::default(),
        };
        REQUESTS.register(metrics_registry, metrics.requests.clone());
        VERIFICATION_FAILURES.register(metrics_registry, metrics.verification_failures.clone());
        PRODUCE_LATENCY.register(metrics_registry, metrics.produce_seconds.clone());
        REQUEST_DURATION.register(metrics_registry, metrics.request_seconds.clone());
        REQUESTS_IN_FLIGHT.register(metrics_registry, metrics.in_flight.clone());
        REPEATED_MESSAGES.register(metrics_registry, metrics.repeated_messages.clone());
        SEEN_MESSAGES_ENTRIES.register(metrics_registry, metrics.seen_messages_entries.clone());
        SEEN_MESSAGES_EVICTIONS.register(metrics_registry, metrics.seen_messages_evictions.clone());
        SEEN_BODIES_ENTRIES.register(metrics_registry, metrics.seen_bodies_entries.clone());
        SEEN_BODIES_EVICTIONS.register(metrics_registry, metrics.seen_bodies_evictions.clone());
        REQUESTS_SHED.register(metrics_registry, metrics.shed.clone());
        REGISTRY_CATCH_UPS.register(metrics_registry, metrics.registry_catch_ups.clone());
        metrics
    }

    pub fn count_answer(&self, view: &RegistryView, webhook_id: &str, status: u16) {
        self.requests
            .get_or_create(&AnswerLabels {
                webhook: self.labels.value(view, webhook_id),
                status,
            })
            .inc();
    }

    pub fn count_verification_failure(
        &self,
        view: &RegistryView,
        webhook_id: &str,
        reason: &'static str,
    ) {
        self.verification_failures
            .get_or_create(&FailureLabels {
                webhook: self.labels.value(view, webhook_id),
                reason,
            })
            .inc();
    }

    /// Removes a deleted Webhook's series: its requests now count as `unknown`.
    pub fn forget_webhook(&self, webhook_id: &str) {
        if !self.labels.per_webhook() {
            return;
        }
        // Every status an HTTP answer can have; removing an absent set is a no-op.
        for status in 100..600 {
            self.requests.remove(&AnswerLabels {
                webhook: webhook_id.to_owned(),
                status,
            });
        }
        let reasons = VerifyError::REASONS
            .into_iter()
            .chain([Rejection::SecretUnusable.code()]);
        for reason in reasons {
            self.verification_failures.remove(&FailureLabels {
                webhook: webhook_id.to_owned(),
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::registry::RegistryUpdate;
    use hookline_testkit::fixtures::registry_entry;
    use hookline_testkit::prometheus::encoded;

    fn view_with(webhook_id: &str) -> RegistryView {
        let view = RegistryView::default();
        view.apply(RegistryUpdate::Upsert(Box::new(registry_entry(webhook_id))));
        view
    }

    #[test]
    fn answers_count_per_live_webhook_and_strangers_as_unknown() {
        let mut metrics_registry = Registry::default();
        let metrics = Metrics::register(&mut metrics_registry, WebhookLabels::new(true));
        let view = view_with("wh-1");
        metrics.count_answer(&view, "wh-1", 202);
        metrics.count_answer(&view, "wh-1", 202);
        metrics.count_answer(&view, "../../etc/passwd", 404);
        metrics.count_verification_failure(&view, "wh-1", "no_matching_signature");
        let body = encoded(&metrics_registry);
        let requests = REQUESTS.exported();
        assert!(
            body.contains(&format!(r#"{requests}{{webhook="wh-1",status="202"}} 2"#)),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                r#"{requests}{{webhook="unknown",status="404"}} 1"#
            )),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                r#"{}{{webhook="wh-1",reason="no_matching_signature"}} 1"#,
                VERIFICATION_FAILURES.exported()
            )),
            "{body}"
        );

        metrics.forget_webhook("wh-1");
        let body = encoded(&metrics_registry);
        assert!(
            !body.contains(r#"webhook="wh-1""#),
            "a deleted Webhook's series go: {body}"
        );
        assert!(body.contains(r#"webhook="unknown""#), "{body}");
    }

    #[test]
    fn one_series_for_all_webhooks_when_the_label_is_off() {
        let mut metrics_registry = Registry::default();
        let metrics = Metrics::register(&mut metrics_registry, WebhookLabels::new(false));
        let view = view_with("wh-1");
        metrics.count_answer(&view, "wh-1", 202);
        metrics.count_answer(&view, "wh-2", 202);
        let body = encoded(&metrics_registry);
        assert!(
            body.contains(&format!(
                r#"{}{{webhook="all",status="202"}} 2"#,
                REQUESTS.exported()
            )),
            "{body}"
        );
    }
}
