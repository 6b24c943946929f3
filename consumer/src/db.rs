//! The PostgreSQL side: connection and schema migrations.

use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use thiserror::Error;

/// The schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply the schema migrations: {0}")]
    Migrate(#[source] MigrateError),
}

/// Connects a pool of at most `max_connections`.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(DbError::Connect)
}

/// Applies the migrations that are missing. sqlx holds a PostgreSQL advisory lock
/// meanwhile, so replicas starting together apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await.map_err(DbError::Migrate)
}
