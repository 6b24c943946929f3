//! The PostgreSQL side: connection, schema migrations, and telling a broken event from
//! a broken database.

use std::time::Duration;

use hookline_runtime::ops::Readiness;
use hookline_runtime::shutdown::Shutdown;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use thiserror::Error;

/// The schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The readiness condition `watch` maintains.
pub const READINESS_CONDITION: &str = "database";

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply the schema migrations: {0}")]
    Migrate(#[source] MigrateError),
    #[error("cannot read which schema migrations are applied: {0}")]
    Verify(#[source] sqlx::Error),
    #[error(
        "the schema lacks migrations {missing:?}: run `hookline-consumer migrate` as the owner"
    )]
    SchemaBehind { missing: Vec<i64> },
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

/// Connects a pool of at most `max_connections`. While PostgreSQL is down, taking a
/// connection fails after 5 s, so an outage shows (paused, not ready) within seconds.
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(database_url)
        .await
        .map_err(DbError::Connect)
}

/// Connects and applies the migrations, trying again while PostgreSQL cannot be reached:
/// in a cluster the consumer's pod often starts before its database answers, and waiting
/// (not ready) beats exiting into a crash loop whose back-off outlasts the database's start.
/// `None` when shut down first. A malformed URL and a migration PostgreSQL refuses are final.
pub async fn connect_and_migrate(
    database_url: &str,
    max_connections: u32,
    schema: SchemaMode,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> Result<Option<PgPool>, DbError> {
    const MAX_DELAY: Duration = Duration::from_secs(10);
    let mut delay = Duration::from_millis(500);
    loop {
        let attempt = async {
            let pool = connect(database_url, max_connections).await?;
            match schema {
                SchemaMode::Migrate => migrate(&pool).await?,
                SchemaMode::Verify => verify(&pool).await?,
            }
            Ok::<_, DbError>(pool)
        };
        match attempt.await {
            Ok(pool) => return Ok(Some(pool)),
            // A malformed URL does not get better by waiting.
            Err(err @ DbError::Connect(sqlx::Error::Configuration(_))) => return Err(err),
            Err(DbError::Migrate(err)) if !is_connection_failure(&err) => {
                return Err(DbError::Migrate(err));
            }
            Err(err) => {
                tracing::warn!(err = %err, retry_in = ?delay, "PostgreSQL not reachable yet");
                readiness.set_not_ready(READINESS_CONDITION, err.to_string());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return Ok(None),
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// A migration that failed because the connection did, not because of the schema.
fn is_connection_failure(err: &MigrateError) -> bool {
    match err {
        MigrateError::Execute(err) => !matches!(err, sqlx::Error::Database(_)),
        _ => false,
    }
}

/// Applies the migrations that are missing. sqlx holds a PostgreSQL advisory lock
/// meanwhile, so replicas starting together apply each migration once.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await.map_err(DbError::Migrate)
}

/// Checks that every embedded migration is applied, changing nothing.
pub async fn verify(pool: &PgPool) -> Result<(), DbError> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(DbError::Verify)?;
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DbError::SchemaBehind { missing })
    }
}

/// Whether PostgreSQL refused the data itself (SQLSTATE class 22, data exception, or
/// 23, integrity violation): the event is at fault and retrying the same batch cannot
/// help. Every other error (connection lost, timeouts, serialization failures,
/// shutdown, a missing table) is the database's, and the batch is retried as it is.
pub fn is_data_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| is_data_sqlstate(code.as_ref())),
        _ => false,
    }
}

/// A statement named a table that is not there (SQLSTATE 42P01).
pub fn is_undefined_table(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}

fn is_data_sqlstate(code: &str) -> bool {
    code.starts_with("22") || code.starts_with("23")
}

/// Keeps the readiness condition `database` in step with whether PostgreSQL answers.
pub async fn watch(pool: PgPool, readiness: Readiness, shutdown: Shutdown) {
    const INTERVAL: Duration = Duration::from_secs(5);
    readiness.require(READINESS_CONDITION, "PostgreSQL not checked yet");
    while !shutdown.is_triggered() {
        let ping = sqlx::query("select 1").execute(&pool);
        match tokio::time::timeout(INTERVAL, ping).await {
            Ok(Ok(_)) => readiness.set_ready(READINESS_CONDITION),
            Ok(Err(err)) => readiness.set_not_ready(READINESS_CONDITION, err.to_string()),
            Err(_) => readiness.set_not_ready(READINESS_CONDITION, "no answer within 5 s"),
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            () = shutdown.wait() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_and_integrity_errors_blame_the_event() {
        assert!(
            is_data_sqlstate("22P05"),
            "untranslatable character (\\u0000 in jsonb)"
        );
        assert!(is_data_sqlstate("22021"), "invalid byte sequence");
        assert!(is_data_sqlstate("23514"), "check violation");
        for outage in [
            "08006", "40001", "40P01", "53300", "57P01", "42P01", "XX000",
        ] {
            assert!(!is_data_sqlstate(outage), "{outage}");
        }
        assert!(!is_data_error(&sqlx::Error::PoolTimedOut));
    }
}
