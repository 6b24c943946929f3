//! Writing and expiring the `dead_letters` table: the events whose retry budget is
//! spent, one row per origin (where the event first entered the events topic).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgConnection;

/// Rows of dead letters deleted per statement, so one expiry never holds a long lock.
const EXPIRE_CHUNK: i64 = 10_000;

/// Dead letters to record, column by column as the statement binds them: the `i`th
/// value of every column makes row `i`. The caller borrows them from its own rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterColumns<'a> {
    pub webhook_id: Vec<&'a str>,
    pub message_id: Vec<&'a str>,
    pub reason: Vec<&'a str>,
    pub attempts: Vec<i32>,
    pub origin_topic: Vec<&'a str>,
    pub origin_partition: Vec<i32>,
    pub origin_offset: Vec<i64>,
    pub payload: Vec<&'a [u8]>,
    /// The handler's headers of the event, as a JSON object of strings.
    pub headers: Vec<&'a Value>,
}

const INSERT: &str = "\
    INSERT INTO dead_letters (webhook_id, message_id, reason, attempts, origin_topic, \
                              origin_partition, origin_offset, payload, headers) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], \
                         $6::int4[], $7::int8[], $8::bytea[], $9::jsonb[]) \
    ON CONFLICT (origin_topic, origin_partition, origin_offset) DO NOTHING";

/// Records dead letters; one already recorded for the same origin is left as it is.
pub async fn insert(
    connection: &mut PgConnection,
    letters: &DeadLetterColumns<'_>,
) -> Result<u64, sqlx::Error> {
    // Most batches have none: no statement for them.
    if letters.webhook_id.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(INSERT)
        .bind(&letters.webhook_id)
        .bind(&letters.message_id)
        .bind(&letters.reason)
        .bind(&letters.attempts)
        .bind(&letters.origin_topic)
        .bind(&letters.origin_partition)
        .bind(&letters.origin_offset)
        .bind(&letters.payload)
        .bind(&letters.headers)
        .execute(connection)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the dead letters that died before `cutoff`, a chunk per statement; returns
/// how many.
pub async fn expire(
    connection: &mut PgConnection,
    cutoff: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut expired = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM dead_letters WHERE id IN \
             (SELECT id FROM dead_letters WHERE dead_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(EXPIRE_CHUNK)
        .execute(&mut *connection)
        .await?
        .rows_affected();
        expired += deleted;
        if deleted < EXPIRE_CHUNK as u64 {
            return Ok(expired);
        }
    }
}
