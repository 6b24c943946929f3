//! The statements the consumer runs: events and dead letters in batches (one statement
//! each, arrays bound column by column, duplicates ignored), the registry mirror, and
//! the dead letters replay reads.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use hookline_core::registry::RegistryEntry;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, PgPool};

use crate::day_partitions::partition_name;
use crate::event::EventRow;
use crate::failure_routing::DeadLetterRow;

/// New rows only. The primary key (webhook_id, message_id, received_day) refuses a
/// copy received the same day, also one written by another session meanwhile; a key
/// found in one of `searched_days` (a sender's retry received on a later day) or twice
/// in the batch (the earliest receipt kept) is skipped. Each searched day costs an
/// index probe per row, so the dedup window is a setting.
fn insert_events_statement(searched_days: &[NaiveDate]) -> String {
    let mut statement = String::from(
        "WITH inserted AS (INSERT INTO events (webhook_id, message_id, event_id, event_type, source_timestamp, \
                             body, payload, content_type, request_headers, received_at, \
                             attempts, received_day) \
         SELECT DISTINCT ON (w, m) w, m, e, t, s, b, p::jsonb, c, h::jsonb, r, a, \
                (r AT TIME ZONE 'UTC')::date \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], \
                     $6::bytea[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], \
                     $11::int4[]) \
              AS u(w, m, e, t, s, b, p, c, h, r, a) \
         WHERE true",
    );
    for day in searched_days {
        statement.push_str(&format!(
            " AND NOT EXISTS (SELECT FROM {} x WHERE x.webhook_id = u.w AND x.message_id = u.m)",
            partition_name(*day)
        ));
    }
    statement.push_str(
        " ORDER BY w, m, r ON CONFLICT DO NOTHING RETURNING webhook_id) \
         SELECT webhook_id, count(*) FROM inserted GROUP BY webhook_id",
    );
    statement
}

/// How many rows were new, per Webhook id.
#[derive(Debug, Default, PartialEq)]
pub struct Inserted(pub BTreeMap<String, u64>);

impl Inserted {
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn add(&mut self, other: Inserted) {
        for (webhook_id, count) in other.0 {
            *self.0.entry(webhook_id).or_default() += count;
        }
    }
}

/// Inserts `rows` in one statement, looking for their keys in the partitions of
/// `searched_days` too; returns how many were new.
pub async fn insert_events(
    connection: &mut PgConnection,
    rows: &[EventRow],
    searched_days: &[NaiveDate],
) -> Result<Inserted, sqlx::Error> {
    let column = |f: fn(&EventRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    // Table names made from dates only (partition_name).
    let statement = AssertSqlSafe(insert_events_statement(searched_days));
    let counts: Vec<(String, i64)> = sqlx::query_as(statement)
        .bind(
            rows.iter()
                .map(|r| r.webhook_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.message_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(column(|r| r.event_id.as_deref()))
        .bind(column(|r| r.event_type.as_deref()))
        .bind(rows.iter().map(|r| r.source_timestamp).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.body.as_slice()).collect::<Vec<_>>())
        .bind(column(|r| r.payload.as_deref()))
        .bind(column(|r| r.content_type.as_deref()))
        .bind(column(|r| r.request_headers.as_deref()))
        .bind(rows.iter().map(|r| r.received_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.attempts).collect::<Vec<_>>())
        .fetch_all(connection)
        .await?;
    Ok(Inserted(
        counts
            .into_iter()
            .map(|(webhook_id, count)| (webhook_id, u64::try_from(count).unwrap_or_default()))
            .collect(),
    ))
}

/// Inserts `rows` one at a time, each under a savepoint, after the batch statement was
/// refused for its data. A row refused with its JSON columns is tried again without
/// them: whatever `jsonb` refuses that the consumer's check let through, the body is
/// still stored as received, with a null `payload`. Returns how many were new and,
/// for each row refused even so, its index and PostgreSQL's reason; other errors end
/// the attempt.
pub async fn insert_events_one_by_one(
    connection: &mut PgConnection,
    rows: &[EventRow],
    searched_days: &[NaiveDate],
) -> Result<(Inserted, Vec<(usize, String)>), sqlx::Error> {
    let mut inserted = Inserted::default();
    let mut refused = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let mut outcome = insert_one(connection, row, searched_days).await?;
        if let Err(reason) = &outcome
            && (row.payload.is_some() || row.request_headers.is_some())
        {
            tracing::warn!(
                webhook_id = %row.webhook_id,
                message_id = %row.message_id,
                %reason,
                "PostgreSQL refused the event's JSON; storing its body without it"
            );
            let without_json = EventRow {
                payload: None,
                request_headers: None,
                ..row.clone()
            };
            outcome = insert_one(connection, &without_json, searched_days).await?;
        }
        match outcome {
            Ok(n) => inserted.add(n),
            Err(reason) => refused.push((index, reason)),
        }
    }
    Ok((inserted, refused))
}

/// Inserts one row under a savepoint: how many rows were new, or PostgreSQL's reason
/// for refusing its data (the savepoint rolled back); other errors end the attempt.
async fn insert_one(
    connection: &mut PgConnection,
    row: &EventRow,
    searched_days: &[NaiveDate],
) -> Result<Result<Inserted, String>, sqlx::Error> {
    sqlx::query("SAVEPOINT one_event")
        .execute(&mut *connection)
        .await?;
    match insert_events(connection, std::slice::from_ref(row), searched_days).await {
        Ok(n) => {
            sqlx::query("RELEASE SAVEPOINT one_event")
                .execute(&mut *connection)
                .await?;
            Ok(Ok(n))
        }
        Err(err) if crate::db::is_data_error(&err) => {
            let reason = match &err {
                sqlx::Error::Database(db) => db.message().to_owned(),
                other => other.to_string(),
            };
            sqlx::query("ROLLBACK TO SAVEPOINT one_event")
                .execute(&mut *connection)
                .await?;
            Ok(Err(reason))
        }
        Err(err) => Err(err),
    }
}

const INSERT_DEAD_LETTERS: &str = "\
    INSERT INTO dead_letters (webhook_id, message_id, reason, attempts, origin_topic, \
                              origin_partition, origin_offset, payload, headers) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], \
                         $6::int4[], $7::int8[], $8::bytea[], $9::jsonb[]) \
    ON CONFLICT (origin_topic, origin_partition, origin_offset) DO NOTHING";

/// Records dead letters; one already recorded for the same origin is left as it is.
pub async fn insert_dead_letters(
    connection: &mut PgConnection,
    rows: &[DeadLetterRow],
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(INSERT_DEAD_LETTERS)
        .bind(
            rows.iter()
                .map(|r| r.webhook_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.message_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.attempts).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.origin.topic.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.origin.partition).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.origin.offset).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.payload.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.headers.clone()).collect::<Vec<_>>())
        .execute(connection)
        .await?;
    Ok(done.rows_affected())
}

/// Mirrors a registry entry, secrets left out. An older entry (a slower replica
/// mirroring the same topic) does not overwrite a newer one.
pub async fn upsert_webhook(pool: &PgPool, entry: &RegistryEntry) -> Result<(), sqlx::Error> {
    let status = if entry.suspended {
        "suspended"
    } else {
        "active"
    };
    sqlx::query(
        "INSERT INTO webhooks (webhook_id, namespace, name, customer_id, url, scheme, status, \
                               delivery, generation, updated_at, deleted_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL) \
         ON CONFLICT (webhook_id) DO UPDATE SET \
             namespace = EXCLUDED.namespace, name = EXCLUDED.name, \
             customer_id = EXCLUDED.customer_id, url = EXCLUDED.url, \
             scheme = EXCLUDED.scheme, status = EXCLUDED.status, \
             delivery = EXCLUDED.delivery, generation = EXCLUDED.generation, \
             updated_at = EXCLUDED.updated_at, deleted_at = NULL \
         WHERE webhooks.updated_at <= EXCLUDED.updated_at",
    )
    .bind(&entry.webhook_id)
    .bind(&entry.namespace)
    .bind(&entry.name)
    .bind(&entry.customer_id)
    .bind(&entry.url)
    .bind(entry.scheme.to_string())
    .bind(status)
    .bind(serde_json::to_value(&entry.delivery).unwrap_or_default())
    .bind(entry.generation)
    .bind(entry.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a mirrored webhook deleted (a registry deletion record); its events stay.
pub async fn mark_webhook_deleted(pool: &PgPool, webhook_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhooks SET status = 'deleted', deleted_at = now() \
         WHERE webhook_id = $1 AND status <> 'deleted'",
    )
    .bind(webhook_id)
    .execute(pool)
    .await?;
    Ok(())
}
