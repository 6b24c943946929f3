//! Wires the handler together and runs it until shutdown.

use std::sync::Arc;

use hookline_core::kafka;
use hookline_core::ops::{self, Readiness};
use hookline_core::shutdown::Shutdown;
use prometheus_client::registry::Registry;

use crate::config::Config;

/// Serves until SIGTERM. Ready once Kafka answers.
pub async fn run(config: Config) -> std::io::Result<()> {
    let readiness = Readiness::default();
    let shutdown = Shutdown::on_signal();
    tokio::spawn(kafka::watch_reachability(
        config.kafka.kafka_bootstrap_servers.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    let registry = Arc::new(Registry::with_prefix("hookline_handler"));
    ops::serve(
        config.listen_addr,
        ops::router(readiness, registry),
        shutdown,
    )
    .await
}
