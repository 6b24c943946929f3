//! The cluster admin's limits on what a tenant's Webhook may ask for. The chart renders
//! the same numbers into a ValidatingAdmissionPolicy, so the API server refuses a Webhook
//! over them; the operator checks again here because admission policies can be absent or
//! turned off. Pure: a spec and the limits in, the exceeded ones out.

use clap::Args;
use hookline_api::webhook::WebhookSpec;

/// What a Webhook may ask for on this cluster. Each field is a chart value under `limits.`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct Limits {
    /// Highest `spec.rateLimit.requestsPerSecond` a Webhook may set (chart:
    /// limits.maxRateLimitPerSecond).
    #[arg(long, env = "HOOKLINE_MAX_RATE_LIMIT_PER_SECOND", default_value_t = 1_000, value_parser = clap::value_parser!(i32).range(1..=1_000_000))]
    pub max_rate_limit_per_second: i32,
    /// Highest `spec.rateLimit.burst` (chart: limits.maxRateLimitBurst).
    #[arg(long, env = "HOOKLINE_MAX_RATE_LIMIT_BURST", default_value_t = 2_000, value_parser = clap::value_parser!(i32).range(1..=1_000_000))]
    pub max_rate_limit_burst: i32,
    /// Highest `spec.emitter.ratePerSecond` (chart: limits.maxEmitterRatePerSecond).
    #[arg(long, env = "HOOKLINE_MAX_EMITTER_RATE_PER_SECOND", default_value_t = 50.0, value_parser = parse_rate)]
    pub max_emitter_rate_per_second: f64,
    /// Highest `spec.emitter.replicas` (chart: limits.maxEmitterReplicas).
    #[arg(long, env = "HOOKLINE_MAX_EMITTER_REPLICAS", default_value_t = 5, value_parser = clap::value_parser!(i32).range(0..=100))]
    pub max_emitter_replicas: i32,
    /// Let a Webhook's `spec.emitter.allowPrivateTargets` turn its emitter's SSRF guard
    /// off; false: a Webhook asking for it is refused (chart: limits.allowPrivateTargets).
    #[arg(long, env = "HOOKLINE_ALLOW_PRIVATE_TARGETS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_targets: bool,
    /// Let an emitter sign with a Secret lent through `spec.secretRef` toward a `spec.url`
    /// of the tenant's choosing; false: only toward this release's handler (chart:
    /// limits.allowReferencedSecretsToOtherTargets).
    #[arg(long, env = "HOOKLINE_ALLOW_REFERENCED_SECRETS_TO_OTHER_TARGETS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_referenced_secrets_to_other_targets: bool,
}

impl Default for Limits {
    /// The chart's defaults.
    fn default() -> Self {
        Self {
            max_rate_limit_per_second: 1_000,
            max_rate_limit_burst: 2_000,
            max_emitter_rate_per_second: 50.0,
            max_emitter_replicas: 5,
            allow_private_targets: false,
            allow_referenced_secrets_to_other_targets: false,
        }
    }
}

fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .parse()
        .map_err(|err| format!("{value:?} is not a number: {err}"))?;
    if rate > 0.0 && rate <= 10_000.0 {
        Ok(rate)
    } else {
        Err(format!("{rate} is not above 0 and at most 10000"))
    }
}

impl Limits {
    /// Every limit `spec` goes over, each naming the field, its value and the limit; empty
    /// when it is within all of them. Mirrors the chart's admission policy.
    pub fn exceeded(&self, spec: &WebhookSpec) -> Vec<String> {
        let numeric = [
            (
                "spec.rateLimit.requestsPerSecond",
                f64::from(spec.rate_limit.requests_per_second),
                f64::from(self.max_rate_limit_per_second),
                "maxRateLimitPerSecond",
            ),
            (
                "spec.rateLimit.burst",
                f64::from(spec.rate_limit.burst),
                f64::from(self.max_rate_limit_burst),
                "maxRateLimitBurst",
            ),
            (
                "spec.emitter.ratePerSecond",
                spec.emitter.rate_per_second,
                self.max_emitter_rate_per_second,
                "maxEmitterRatePerSecond",
            ),
            (
                "spec.emitter.replicas",
                f64::from(spec.emitter.replicas),
                f64::from(self.max_emitter_replicas),
                "maxEmitterReplicas",
            ),
        ];
        let mut over: Vec<String> = numeric
            .into_iter()
            .filter(|(_, value, limit, _)| value > limit)
            .map(|(field, value, limit, value_name)| {
                format!(
                    "{field} is {value}, above the limit of {limit} the cluster's admin set (limits.{value_name})"
                )
            })
            .collect();
        if spec.emitter.allow_private_targets && !self.allow_private_targets {
            over.push(
                "spec.emitter.allowPrivateTargets is true, which the cluster's admin does not allow (limits.allowPrivateTargets)"
                    .into(),
            );
        }
        if spec.secret_ref.is_some()
            && spec.url.is_some()
            && !self.allow_referenced_secrets_to_other_targets
        {
            over.push(
                "spec.url is set with spec.secretRef: an emitter signs with a referenced Secret only toward this release's handler, unless the cluster's admin allows other targets (limits.allowReferencedSecretsToOtherTargets)"
                    .into(),
            );
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_api::webhook::SecretKeyRef;

    fn spec(json: serde_json::Value) -> WebhookSpec {
        serde_json::from_value(json).expect("a valid spec")
    }

    #[test]
    fn a_default_webhook_is_within_the_default_limits() {
        let limits = Limits::default();
        assert!(
            limits
                .exceeded(&spec(serde_json::json!({"customerId": "c"})))
                .is_empty()
        );
    }

    #[test]
    fn each_limit_is_named_with_the_field_its_value_and_the_chart_value() {
        let limits = Limits::default();
        let cases = [
            (
                serde_json::json!({"customerId": "c", "rateLimit": {"requestsPerSecond": 1001, "burst": 10}}),
                "spec.rateLimit.requestsPerSecond is 1001, above the limit of 1000 the cluster's admin set (limits.maxRateLimitPerSecond)",
            ),
            (
                serde_json::json!({"customerId": "c", "rateLimit": {"requestsPerSecond": 10, "burst": 2001}}),
                "spec.rateLimit.burst is 2001, above the limit of 2000 the cluster's admin set (limits.maxRateLimitBurst)",
            ),
            (
                serde_json::json!({"customerId": "c", "emitter": {"ratePerSecond": 50.5}}),
                "spec.emitter.ratePerSecond is 50.5, above the limit of 50 the cluster's admin set (limits.maxEmitterRatePerSecond)",
            ),
            (
                serde_json::json!({"customerId": "c", "emitter": {"replicas": 6}}),
                "spec.emitter.replicas is 6, above the limit of 5 the cluster's admin set (limits.maxEmitterReplicas)",
            ),
            (
                serde_json::json!({"customerId": "c", "emitter": {"allowPrivateTargets": true}}),
                "spec.emitter.allowPrivateTargets is true, which the cluster's admin does not allow (limits.allowPrivateTargets)",
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(limits.exceeded(&spec(json)), [expected]);
        }
    }

    #[test]
    fn a_referenced_secret_signs_only_toward_the_handler_unless_allowed() {
        let mut lent = spec(serde_json::json!({"customerId": "c"}));
        lent.secret_ref = Some(SecretKeyRef {
            name: "stripe".into(),
            key: "secret".into(),
        });
        let limits = Limits::default();
        assert!(
            limits.exceeded(&lent).is_empty(),
            "toward the handler it may"
        );
        lent.url = Some("https://collector.example.com/hook".into());
        let over = limits.exceeded(&lent);
        assert_eq!(over.len(), 1);
        assert!(
            over[0].contains("limits.allowReferencedSecretsToOtherTargets"),
            "{over:?}"
        );
        let allowed = Limits {
            allow_referenced_secrets_to_other_targets: true,
            ..Limits::default()
        };
        assert!(allowed.exceeded(&lent).is_empty());
    }

    #[test]
    fn an_admin_who_allows_private_targets_lets_a_webhook_opt_in() {
        let limits = Limits {
            allow_private_targets: true,
            ..Limits::default()
        };
        let opted_in =
            spec(serde_json::json!({"customerId": "c", "emitter": {"allowPrivateTargets": true}}));
        assert!(limits.exceeded(&opted_in).is_empty());
    }

    #[test]
    fn rates_outside_the_schema_are_refused_at_start() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1", "10001", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }
}
