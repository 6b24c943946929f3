//! The handler's configuration: flags with environment fallbacks, validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use hookline_api::topics;
use hookline_core::source::{Cidr, ForwardingHeader, TrustedProxies};
use hookline_runtime::config::{
    CommonArgs, KafkaArgs, OpsArgs, RegistryKeysArgs, TraceArgs, WebhookMetricsArgs, parse_cidr,
    parse_duration,
};

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
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Address the webhook endpoint (POST /webhooks/{id}, and nothing else) listens on.
    /// /healthz, /readyz and /metrics are on --ops-addr only.
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
    /// Time a client has to send a request's whole body, from the end of its headers
    /// (a total, however the bytes trickle in; 408 after).
    #[arg(long, env = "HANDLER_BODY_READ_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Webhook requests handled at once (from the source check to the answer, body read
    /// included); more are shed with 503 `overloaded` and Retry-After.
    #[arg(long, env = "HANDLER_MAX_CONCURRENT_REQUESTS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests: u32,
    /// Requests handled at once for one webhook id (at most --max-concurrent-requests);
    /// more get 503 `webhook_overloaded` and Retry-After, so one URL cannot take every slot.
    #[arg(long, env = "HANDLER_MAX_CONCURRENT_REQUESTS_PER_WEBHOOK", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests_per_webhook: u32,
    /// Requests handled at once from one client address (an IPv6 client counts per /64;
    /// the address is the one --trusted-proxies resolve; at most
    /// --max-concurrent-requests); more get 429 `source_overloaded` and Retry-After.
    #[arg(long, env = "HANDLER_MAX_CONCURRENT_REQUESTS_PER_SOURCE", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests_per_source: u32,
    /// After an id was found unknown with the registry read to its end, further requests
    /// for it are answered 404 at once, without reading the registry's end again, for
    /// this long (so a flood of unknown ids costs one broker query per id and interval).
    #[arg(long, env = "HANDLER_UNKNOWN_WEBHOOK_RECHECK_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub unknown_webhook_recheck_interval: Duration,
    /// How long the broker may take to acknowledge an event before the sender gets 503
    /// (the producer's message.timeout.ms).
    #[arg(long, env = "HANDLER_PRODUCE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub produce_timeout: Duration,
    /// How long the producer holds an event for others to share its produce request
    /// (librdkafka's linger.ms). Longer means fewer requests and wake-ups per event, and
    /// that much more delay. At most 1s.
    #[arg(long, env = "HANDLER_PRODUCE_LINGER", default_value = "5ms", value_parser = parse_linger)]
    pub produce_linger: Duration,
    /// Message ids remembered for replay detection; the oldest are forgotten first.
    /// The same capacity bounds the body digests of --unsigned-id-repeat-window.
    #[arg(long = "replay-cache-capacity", env = "HANDLER_REPLAY_CACHE_CAPACITY",
          value_name = "REPLAY_CACHE_CAPACITY", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub seen_messages_capacity: u32,
    /// For schemes that sign neither a timestamp nor the delivery id (github, shopify,
    /// legacy-hex), how long a body accepted for a webhook is remembered: the same body
    /// again, under any delivery id, is answered 202 `duplicate` and not produced.
    #[arg(long, env = "HANDLER_UNSIGNED_ID_REPEAT_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub unsigned_id_repeat_window: Duration,
    /// Comma-separated CIDRs of reverse proxies whose forwarding header is believed when
    /// finding the client address (allowedSourceRanges, the per-source limit). The chain
    /// is walked from the TCP peer leftwards while hops are proxies; the first hop that is
    /// not is the client. Nothing set: the TCP peer address is the client.
    #[arg(long, env = "HANDLER_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,
    /// The nearest this many hops (the TCP peer first) are proxies whatever their
    /// address, for proxies whose addresses are not known in advance. With
    /// --trusted-proxies too, a hop is a proxy if either says so.
    #[arg(long, env = "HANDLER_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: u32,
    /// The forwarding header the trusted proxies write: x-forwarded-for (every line,
    /// joined in order) or forwarded (RFC 7239, its for= parameters). Only this one is
    /// read; the other is ignored, since a client can send it and a proxy that does not
    /// write it passes the client's copy on.
    #[arg(
        long,
        env = "HANDLER_FORWARDING_HEADER",
        default_value = "x-forwarded-for"
    )]
    pub forwarding_header: ForwardingHeader,
    /// After SIGTERM, how long in-flight requests may take to finish before they are dropped.
    #[arg(long, env = "HANDLER_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl Config {
    /// The proxies whose forwarding header is believed.
    pub fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies {
            cidrs: self.trusted_proxies.clone(),
            hops: self.trusted_proxy_hops,
        }
    }
}

fn parse_linger(value: &str) -> Result<Duration, String> {
    let linger = parse_duration(value)?;
    if linger > Duration::from_secs(1) {
        return Err(format!(
            "{value:?} is over 1s: every event would wait that long"
        ));
    }
    Ok(linger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_trusted_proxies(trusted_proxies: &str) -> Result<Config, clap::Error> {
        Config::try_parse_from([
            "hookline-handler",
            "--kafka-bootstrap-servers",
            "127.0.0.1:9092",
            "--registry-keys-dir",
            "/etc/hookline/registry-keys",
            "--trusted-proxies",
            trusted_proxies,
        ])
    }

    #[test]
    fn defaults_parse_and_trusted_proxies_are_cidrs() {
        let config = with_trusted_proxies("10.0.0.0/8,127.0.0.1").unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.max_body_bytes, 1 << 20);
        assert_eq!(config.timestamp_tolerance, Duration::from_secs(300));
        assert!(with_trusted_proxies("10.0.0.0/33").is_err());
    }

    #[test]
    fn a_linger_over_a_second_is_refused() {
        assert_eq!(parse_linger("5ms"), Ok(Duration::from_millis(5)));
        let refused = parse_linger("2s").expect_err("2s is over the bound");
        assert!(refused.contains("over 1s"), "{refused}");
    }
}
