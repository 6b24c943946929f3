//! Reaching PostgreSQL: the pool, waiting for the database at start, keeping readiness
//! in step with it, and telling a row PostgreSQL refuses from a database that failed.

use std::time::Duration;

use hookline_runtime::ops::Readiness;
use hookline_runtime::shutdown::Shutdown;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use thiserror::Error;

use crate::schema::{self, SchemaError, SchemaMode};

/// The readiness condition `watch` maintains.
pub const READINESS_CONDITION: &str = "database";

#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error(transparent)]
    Schema(#[from] SchemaError),
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

/// Connects and applies or verifies the schema (`schema`), trying again while PostgreSQL
/// cannot be reached or the schema is behind: in a cluster the consumer's pod often
/// starts before its database answers, and waiting (not ready) beats exiting into a
/// crash loop whose back-off outlasts the database's start. `None` when shut down
/// first. A malformed URL and a migration PostgreSQL refuses are final.
pub async fn connect_with_schema(
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
            schema::apply(&pool, schema).await?;
            Ok::<_, DbError>(pool)
        };
        match attempt.await {
            Ok(pool) => return Ok(Some(pool)),
            Err(err) if is_final(&err) => return Err(err),
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

/// A failure that waiting does not mend: a malformed URL, or a migration PostgreSQL
/// refused (not one whose connection failed).
fn is_final(err: &DbError) -> bool {
    match err {
        DbError::Connect(err) => matches!(err, sqlx::Error::Configuration(_)),
        DbError::Schema(SchemaError::Migrate(err)) => !is_connection_failure(err),
        DbError::Schema(_) => false,
    }
}

/// A migration that failed because the connection did, not because of the schema.
fn is_connection_failure(err: &MigrateError) -> bool {
    match err {
        MigrateError::Execute(err) => !matches!(err, sqlx::Error::Database(_)),
        _ => false,
    }
}

/// The statement [`watch`] runs when whether PostgreSQL answers is all that matters.
pub const PING: &str = "select 1";

/// Keeps the readiness condition `database` in step with whether PostgreSQL answers
/// `probe` (a statement that succeeds when the database is usable, e.g. [`PING`]).
pub async fn watch(pool: PgPool, probe: &'static str, readiness: Readiness, shutdown: Shutdown) {
    const INTERVAL: Duration = Duration::from_secs(5);
    readiness.require(READINESS_CONDITION, "PostgreSQL not checked yet");
    while !shutdown.is_triggered() {
        let ping = sqlx::query(probe).execute(&pool);
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

/// Whether PostgreSQL refused the data itself (SQLSTATE class 22, data exception, or
/// 23, integrity violation): the row is at fault and retrying the same batch cannot
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
