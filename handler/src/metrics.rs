//! The handler's Prometheus metrics. Answers and verification failures count per
//! Webhook, under the label `hookline_runtime::webhook_labels::WebhookLabels` gives each id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use hookline_core::signature::VerifyError;
use hookline_runtime::registry_view::RegistryView;
use hookline_runtime::webhook_labels::WebhookLabels;

use crate::rejection::Rejection;

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
    pub replays: Counter,
    pub replay_cache_entries: Gauge,
    pub replay_cache_evictions: Counter,
    pub body_repeat_cache_entries: Gauge,
    pub body_repeat_cache_evictions: Counter,
    /// Requests shed, by which cap: `global`, `webhook` or `source`.
    pub shed: Family<ShedLabels, Counter>,
    pub registry_catch_ups: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    pub cap: &'static str,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry, labels: WebhookLabels) -> Self {
        // 0.25 ms to ~8 s: produce and request latencies span sub-millisecond to timeouts.
        let buckets = || exponential_buckets(0.000_25, 2.0, 16);
        let metrics = Self {
            labels,
            requests: Family::default(),
            verification_failures: Family::default(),
            produce_seconds: Histogram::new(buckets()),
            request_seconds: Histogram::new(buckets()),
            in_flight: Gauge::default(),
            replays: Counter::default(),
            replay_cache_entries: Gauge::default(),
            replay_cache_evictions: Counter::default(),
            body_repeat_cache_entries: Gauge::default(),
            body_repeat_cache_evictions: Counter::default(),
            shed: Family::default(),
            registry_catch_ups: Counter::default(),
        };
        registry.register(
            "requests",
            "Webhook requests answered, by Webhook and HTTP status",
            metrics.requests.clone(),
        );
        registry.register(
            "verification_failures",
            "Requests refused by signature or timestamp verification, by Webhook and reason",
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
        registry.register(
            "body_repeat_cache_entries",
            "Body digests remembered for repeat detection of schemes whose delivery id is not signed",
            metrics.body_repeat_cache_entries.clone(),
        );
        registry.register(
            "body_repeat_cache_evictions",
            "Body digests forgotten before the unsigned-id repeat window ended, for lack of capacity",
            metrics.body_repeat_cache_evictions.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests refused for lack of a concurrency slot, by cap (global, webhook, source)",
            metrics.shed.clone(),
        );
        registry.register(
            "registry_catch_ups",
            "Reads of the registry topic's end for a webhook id this replica did not know",
            metrics.registry_catch_ups.clone(),
        );
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
    use hookline_core::registry::{RegistryEntry, RegistryUpdate};
    use hookline_testkit::prometheus::encoded;

    fn view_with(webhook_id: &str) -> RegistryView {
        let view = RegistryView::default();
        let entry = RegistryEntry {
            webhook_id: webhook_id.to_owned(),
            ..crate::ingest::tests::entry(Vec::new())
        };
        view.apply(RegistryUpdate::Upsert(Box::new(entry)));
        view
    }

    #[test]
    fn answers_count_per_live_webhook_and_strangers_as_unknown() {
        let mut registry = Registry::with_prefix("hookline_handler");
        let metrics = Metrics::register(&mut registry, WebhookLabels::new(true));
        let view = view_with("wh-1");
        metrics.count_answer(&view, "wh-1", 202);
        metrics.count_answer(&view, "wh-1", 202);
        metrics.count_answer(&view, "../../etc/passwd", 404);
        metrics.count_verification_failure(&view, "wh-1", "no_matching_signature");
        let body = encoded(&registry);
        assert!(
            body.contains(r#"hookline_handler_requests_total{webhook="wh-1",status="202"} 2"#),
            "{body}"
        );
        assert!(
            body.contains(r#"hookline_handler_requests_total{webhook="unknown",status="404"} 1"#),
            "{body}"
        );
        assert!(
            body.contains(r#"hookline_handler_verification_failures_total{webhook="wh-1",reason="no_matching_signature"} 1"#),
            "{body}"
        );

        metrics.forget_webhook("wh-1");
        let body = encoded(&registry);
        assert!(
            !body.contains(r#"webhook="wh-1""#),
            "a deleted Webhook's series go: {body}"
        );
        assert!(body.contains(r#"webhook="unknown""#), "{body}");
    }

    #[test]
    fn one_series_for_all_webhooks_when_the_label_is_off() {
        let mut registry = Registry::with_prefix("hookline_handler");
        let metrics = Metrics::register(&mut registry, WebhookLabels::new(false));
        let view = view_with("wh-1");
        metrics.count_answer(&view, "wh-1", 202);
        metrics.count_answer(&view, "wh-2", 202);
        let body = encoded(&registry);
        assert!(
            body.contains(r#"hookline_handler_requests_total{webhook="all",status="202"} 2"#),
            "{body}"
        );
    }
}
