//! The handler's configuration: flags with environment fallbacks, validated at start-up.

use std::net::SocketAddr;

use clap::Parser;
use hookline_core::config::{CommonArgs, KafkaArgs};

/// Hookline's HTTP edge: verifies signed webhook deliveries and produces them to Kafka,
/// answering 202 only after the broker has acknowledged.
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-handler", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Address the webhook endpoint and /healthz, /readyz, /metrics listen on.
    #[arg(long, env = "HANDLER_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
}
