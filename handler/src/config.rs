//! The handler's configuration: flags with environment fallbacks, validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use hookline_api::topics;
use hookline_core::config::{
    CommonArgs, KafkaArgs, RegistryKeysArgs, TraceArgs, WebhookMetricsArgs, parse_cidr,
    parse_duration,
};
use hookline_core::source::Cidr;

/// Hookline's HTTP edge: verifies signed webhook deliveries and produces them to Kafka,
/// answering 202 only after the broker has acknowledged.
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-handler", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub traces: TraceArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry_keys: RegistryKeysArgs,
    #[command(flatten)]
    pub webhook_metrics: WebhookMetricsArgs,
    /// Address the webhook endpoint and /healthz, /readyz, /metrics listen on.
    #[arg(long, env = "HANDLER_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
    /// The log-compacted registry topic the operator writes (read fully before ready).
    #[arg(long, env = "HANDLER_REGISTRY_TOPIC", default_value = topics::REGISTRY)]
    pub registry_topic: String,
    /// The topic verified events are produced to.
    #[arg(long, env = "HANDLER_EVENTS_TOPIC", default_value = topics::EVENTS)]
    pub events_topic: String,
    /// Largest request body accepted, in bytes; larger ones get 413 while being read.
    #[arg(long, env = "HANDLER_MAX_BODY_BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(1..=64 << 20))]
    pub max_body_bytes: u64,
    /// How far a signed timestamp may be from this clock, both ways (e.g. 300s, 5m).
    /// Also how long a message id is remembered to acknowledge repeats without producing.
    #[arg(long, env = "HANDLER_TIMESTAMP_TOLERANCE", default_value = "5m", value_parser = parse_duration)]
    pub timestamp_tolerance: Duration,
    /// Time a client has to send a request's headers before its connection is closed.
    #[arg(long, env = "HANDLER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body (408 after).
    #[arg(long, env = "HANDLER_BODY_READ_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Webhook requests handled at once; more are shed with 503 and Retry-After.
    #[arg(long, env = "HANDLER_MAX_CONCURRENT_REQUESTS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests: u32,
    /// How long the broker may take to acknowledge an event before the sender gets 503
    /// (the producer's message.timeout.ms).
    #[arg(long, env = "HANDLER_PRODUCE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub produce_timeout: Duration,
    /// Message ids remembered for replay detection; the oldest are forgotten first.
    #[arg(long, env = "HANDLER_REPLAY_CACHE_CAPACITY", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub replay_cache_capacity: u32,
    /// Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed when
    /// checking allowedSourceRanges. Empty: the TCP peer address is the source.
    #[arg(long, env = "HANDLER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,
    /// After SIGTERM, how long in-flight requests may take to finish before they are dropped.
    #[arg(long, env = "HANDLER_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_trusted_proxies_are_cidrs() {
        let config = Config::try_parse_from([
            "hookline-handler",
            "--kafka-bootstrap-servers",
            "127.0.0.1:9092",
            "--registry-keys-dir",
            "/etc/hookline/registry-keys",
            "--trusted-proxies",
            "10.0.0.0/8,127.0.0.1",
        ])
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.max_body_bytes, 1 << 20);
        assert_eq!(config.timestamp_tolerance, Duration::from_secs(300));
        assert!(
            Config::try_parse_from([
                "hookline-handler",
                "--kafka-bootstrap-servers",
                "127.0.0.1:9092",
                "--registry-keys-dir",
                "/etc/hookline/registry-keys",
                "--trusted-proxies",
                "10.0.0.0/33",
            ])
            .is_err()
        );
    }
}
