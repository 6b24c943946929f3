//! The delivery policy a Webhook carries (in the style of Knative's `delivery`) and its
//! backoff maths, shared by the emitter (outbound retries) and the consumer (processing
//! retries).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the delay grows from one retry to the next.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BackoffPolicy {
    /// base, 2 x base, 3 x base, ...
    Linear,
    /// base, 2 x base, 4 x base, ...
    #[default]
    Exponential,
}

/// Retries, backoff and dead-lettering for one Webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub backoff_policy: BackoffPolicy,
    pub backoff_delay_ms: u64,
    pub max_backoff_delay_ms: u64,
    /// Send events whose retries are spent to the dead-letter topic (otherwise drop them, counted).
    pub dead_letter: bool,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            retries: 3,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay_ms: 1_000,
            max_backoff_delay_ms: 60_000,
            dead_letter: true,
        }
    }
}

impl DeliveryPolicy {
    /// The delay before retry number `retry` (1 for the first retry), capped at the maximum.
    pub fn delay(&self, retry: u32) -> Duration {
        let retry = retry.max(1);
        let base = self.backoff_delay_ms;
        let millis = match self.backoff_policy {
            BackoffPolicy::Linear => base.saturating_mul(u64::from(retry)),
            BackoffPolicy::Exponential => {
                let factor = 1u64.checked_shl(retry - 1).unwrap_or(u64::MAX);
                base.saturating_mul(factor)
            }
        };
        Duration::from_millis(millis.min(self.max_backoff_delay_ms))
    }

    /// Whether another retry is allowed after `retries_done` retries.
    pub fn may_retry(&self, retries_done: u32) -> bool {
        retries_done < self.retries
    }
}

/// "Equal jitter": a delay drawn uniformly from [delay/2, delay], so that many senders
/// failing together do not retry in lockstep, while the policy's delay stays an upper bound.
pub fn with_jitter(delay: Duration, unit_random: f64) -> Duration {
    let unit_random = unit_random.clamp(0.0, 1.0);
    delay.mul_f64(0.5 + 0.5 * unit_random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff_policy: BackoffPolicy) -> DeliveryPolicy {
        DeliveryPolicy {
            retries: 5,
            backoff_policy,
            backoff_delay_ms: 100,
            max_backoff_delay_ms: 1_000,
            dead_letter: true,
        }
    }

    #[test]
    fn exponential_doubles_and_is_capped() {
        let p = policy(BackoffPolicy::Exponential);
        let delays: Vec<u128> = (1..=6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(
            p.delay(200).as_millis(),
            1_000,
            "no overflow on huge retry numbers"
        );
    }

    #[test]
    fn linear_grows_by_the_base_and_is_capped() {
        let p = policy(BackoffPolicy::Linear);
        let delays: Vec<u128> = (1..=4).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 300, 400]);
        assert_eq!(p.delay(50).as_millis(), 1_000);
    }

    #[test]
    fn retry_budget_counts_retries_after_the_first_attempt() {
        let p = policy(BackoffPolicy::Linear);
        assert!(p.may_retry(0));
        assert!(p.may_retry(4));
        assert!(!p.may_retry(5));
    }

    #[test]
    fn jitter_stays_between_half_and_the_full_delay() {
        let d = Duration::from_millis(1_000);
        assert_eq!(with_jitter(d, 0.0), Duration::from_millis(500));
        assert_eq!(with_jitter(d, 1.0), d);
        assert_eq!(with_jitter(d, 7.0), d, "out-of-range randomness is clamped");
    }

    #[test]
    fn serializes_in_the_crd_spelling() {
        let json = serde_json::to_value(DeliveryPolicy::default()).unwrap();
        assert_eq!(json["backoffPolicy"], "exponential");
        assert_eq!(json["maxBackoffDelayMs"], 60_000);
    }
}
