//! Wires the operator together and runs it until shutdown.

use std::sync::Arc;

use hookline_core::kafka;
use hookline_core::ops::{self, Readiness};
use hookline_core::shutdown::Shutdown;
use prometheus_client::registry::Registry;
use thiserror::Error;

use crate::config::RunArgs;

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot configure the Kubernetes client: {0}")]
    Kube(#[source] kube::Error),
    #[error("the Kubernetes API server did not answer: {0}")]
    ApiServer(#[source] kube::Error),
    #[error("cannot serve the operational endpoints: {0}")]
    Ops(#[source] std::io::Error),
}

/// Connects to the API server, then serves until SIGTERM.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let readiness = Readiness::default();
    let shutdown = Shutdown::on_signal();
    let client = kube::Client::try_default().await.map_err(RunError::Kube)?;
    let version = client
        .apiserver_version()
        .await
        .map_err(RunError::ApiServer)?;
    tracing::info!(server = %version.git_version, "connected to the Kubernetes API server");
    tokio::spawn(kafka::watch_reachability(
        args.kafka.kafka_bootstrap_servers.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    let registry = Arc::new(Registry::with_prefix("hookline_operator"));
    ops::serve(
        args.ops.ops_addr,
        ops::router(readiness, registry),
        shutdown,
    )
    .await
    .map_err(RunError::Ops)
}
