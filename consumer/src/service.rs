//! Wires the consumer together and runs it until shutdown.

use std::sync::Arc;

use hookline_core::kafka;
use hookline_core::ops::{self, Readiness};
use hookline_core::shutdown::Shutdown;
use prometheus_client::registry::Registry;
use thiserror::Error;

use crate::config::RunArgs;
use crate::db::{self, DbError};

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot serve the operational endpoints: {0}")]
    Ops(#[source] std::io::Error),
}

/// Applies the schema, then serves until SIGTERM. Ready once PostgreSQL has the
/// schema and Kafka answers.
pub async fn run(database_url: &str, args: RunArgs) -> Result<(), RunError> {
    let readiness = Readiness::default();
    let shutdown = Shutdown::on_signal();
    let pool = db::connect(database_url, 8).await?;
    db::migrate(&pool).await?;
    tracing::info!("database schema is current");
    tokio::spawn(kafka::watch_reachability(
        args.kafka.kafka_bootstrap_servers.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    let registry = Arc::new(Registry::with_prefix("hookline_consumer"));
    ops::serve(
        args.ops.ops_addr,
        ops::router(readiness, registry),
        shutdown,
    )
    .await
    .map_err(RunError::Ops)
}
