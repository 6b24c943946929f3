//! The emitter's configuration: flags with environment fallbacks, validated at start-up.
//! The operator's emitter Deployment passes exactly these environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hookline_api::emitter::env;
use hookline_core::retry::{BackoffPolicy, DeliveryPolicy};
use hookline_core::signature::Scheme;
use hookline_runtime::config::{CommonArgs, OpsArgs, parse_http_url};

/// Hookline's emitter: a simulated event source for one Webhook that signs events and
/// delivers them to the webhook's target with retries, like a real provider would.
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-emitter", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Id of the Webhook this emitter sends for.
    #[arg(long, env = env::WEBHOOK_ID)]
    pub webhook_id: String,
    /// Where events are POSTed (http or https).
    #[arg(long, env = env::TARGET_URL, value_parser = parse_http_url)]
    pub target_url: String,
    /// Deliver to private, loopback and link-local addresses too. Off by default, so a
    /// Webhook's URL cannot reach inside the cluster or the cloud's metadata service.
    #[arg(long, env = env::ALLOW_PRIVATE_TARGETS, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_targets: bool,
    /// Directory of the mounted signing Secret: file `current`, and `previous` during a
    /// rotation. Changes to the files are picked up while running.
    #[arg(long, env = env::SECRET_DIR)]
    pub secret_dir: PathBuf,
    /// Signature scheme: standard, github, stripe, shopify, slack or legacy-hex.
    #[arg(long, env = env::SCHEME, default_value = "standard")]
    pub scheme: Scheme,
    /// Events per second (0.2 = one every 5 s).
    #[arg(long, env = env::RATE_PER_SECOND, default_value_t = 0.2, value_parser = parse_rate)]
    pub rate_per_second: f64,
    /// Comma-separated event types to draw from.
    #[arg(long, env = env::EVENT_TYPES, default_value = "CREATED,PENDING,PAID,FAILED", value_delimiter = ',', value_parser = parse_event_type)]
    pub event_types: Vec<String>,
    /// Stop emitting after this many events (0: never). Delivery of those still finishes.
    #[arg(long, env = "EMITTER_MAX_EVENTS", default_value_t = 0)]
    pub max_events: u64,
    /// Retries after the first attempt.
    #[arg(long, env = env::DELIVERY_RETRIES, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,
    /// How retry delays grow: linear or exponential.
    #[arg(long, env = env::DELIVERY_BACKOFF_POLICY, default_value = "exponential", value_parser = parse_backoff_policy)]
    pub backoff_policy: BackoffPolicy,
    /// Delay before the first retry, in milliseconds.
    #[arg(long, env = env::DELIVERY_BACKOFF_DELAY_MS, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub backoff_delay_ms: u64,
    /// Longest delay between retries, in milliseconds.
    #[arg(long, env = env::DELIVERY_MAX_BACKOFF_DELAY_MS, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub max_backoff_delay_ms: u64,
    /// Undelivered events held while the target is slow or down; when full, emission
    /// pauses instead of memory growing.
    #[arg(long, env = "EMITTER_QUEUE_LIMIT", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub queue_limit: u64,
    /// Deliveries in flight at once.
    #[arg(long, env = "EMITTER_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// TCP connect timeout, in milliseconds.
    #[arg(long, env = "EMITTER_CONNECT_TIMEOUT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub connect_timeout_ms: u64,
    /// Timeout of one attempt (connect, send, answer), in milliseconds.
    #[arg(long, env = "EMITTER_REQUEST_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub request_timeout_ms: u64,
    /// On SIGTERM, how long to keep delivering what is queued before giving up on it.
    #[arg(long, env = "EMITTER_DRAIN_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub drain_timeout_ms: u64,
}

impl Config {
    pub fn delivery_policy(&self) -> Result<DeliveryPolicy, String> {
        if self.max_backoff_delay_ms < self.backoff_delay_ms {
            return Err(format!(
                "DELIVERY_MAX_BACKOFF_DELAY_MS ({}) is below DELIVERY_BACKOFF_DELAY_MS ({})",
                self.max_backoff_delay_ms, self.backoff_delay_ms
            ));
        }
        Ok(DeliveryPolicy {
            retries: self.retries,
            backoff_policy: self.backoff_policy,
            backoff_delay_ms: self.backoff_delay_ms,
            max_backoff_delay_ms: self.max_backoff_delay_ms,
            dead_letter: false,
        })
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value.parse().map_err(|_| "expected a number".to_owned())?;
    if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 {
        Ok(rate)
    } else {
        Err("expected a rate above 0 and at most 100000 events per second".into())
    }
}

fn parse_event_type(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        Err("event types are names of 1 to 64 characters".into())
    } else {
        Ok(value.to_owned())
    }
}

fn parse_backoff_policy(value: &str) -> Result<BackoffPolicy, String> {
    match value {
        "linear" => Ok(BackoffPolicy::Linear),
        "exponential" => Ok(BackoffPolicy::Exponential),
        _ => Err("expected linear or exponential".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_policies_are_validated() {
        assert_eq!(parse_rate("0.2"), Ok(0.2));
        for bad in ["0", "-1", "NaN", "inf", "x", "100001"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_backoff_policy("linear"), Ok(BackoffPolicy::Linear));
        assert!(parse_backoff_policy("random").is_err());
        assert!(parse_event_type(" ").is_err());
    }

    #[test]
    fn a_maximum_delay_below_the_base_is_refused() {
        let config = Config::try_parse_from([
            "hookline-emitter",
            "--webhook-id=w",
            "--target-url=http://h/",
            "--secret-dir=/s",
            "--backoff-delay-ms=5000",
            "--max-backoff-delay-ms=1000",
        ])
        .expect("parses");
        let err = config.delivery_policy().unwrap_err();
        assert!(err.contains("DELIVERY_MAX_BACKOFF_DELAY_MS"), "{err}");
    }
}
