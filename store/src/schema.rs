//! The schema: the migrations under `store/migrations`, embedded in every binary that
//! links this crate. The owner applies them (`hookline-consumer migrate`, or a consumer
//! whose login owns the schema); a least-privileged login only checks they are applied.

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPool;
use thiserror::Error;

/// The schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("cannot apply the schema migrations: {0}")]
    Migrate(#[source] MigrateError),
    #[error("cannot read which schema migrations are applied: {0}")]
    Verify(#[source] sqlx::Error),
    #[error(
        "the schema lacks migrations {missing:?}: run `hookline-consumer migrate` as the owner"
    )]
    Behind { missing: Vec<i64> },
}

/// What the consumer does about the schema at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaMode {
    /// Apply missing migrations (the login owns the schema).
    Migrate,
    /// Only check that every migration is applied, waiting (not ready) until it is: a
    /// least-privileged login, with `hookline-consumer migrate` run by the owner.
    Verify,
}

/// Migrates or verifies, as `mode` says.
pub async fn apply(pool: &PgPool, mode: SchemaMode) -> Result<(), SchemaError> {
    match mode {
        SchemaMode::Migrate => migrate(pool).await,
        SchemaMode::Verify => verify(pool).await,
    }
}

/// Applies the migrations that are missing. sqlx holds a PostgreSQL advisory lock
/// meanwhile, so replicas starting together apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<(), SchemaError> {
    MIGRATOR.run(pool).await.map_err(SchemaError::Migrate)
}

/// Checks that every embedded migration is applied, changing nothing.
pub async fn verify(pool: &PgPool) -> Result<(), SchemaError> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(SchemaError::Verify)?;
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SchemaError::Behind { missing })
    }
}
