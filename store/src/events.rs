//! Writing the `events` table: a batch in one statement (arrays bound column by column,
//! duplicates ignored), and row by row under savepoints when PostgreSQL refuses the
//! batch's data.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use crate::database::is_data_error;
use crate::day_partitions::partition_name;

/// Events to insert, column by column as the statement binds them: the `i`th value of
/// every column makes row `i`. The caller borrows them from its own rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventColumns<'a> {
    pub webhook_id: Vec<&'a str>,
    pub message_id: Vec<&'a str>,
    /// The provider's event id, type and time, as the handler read them.
    pub event_id: Vec<Option<&'a str>>,
    pub event_type: Vec<Option<&'a str>>,
    pub source_timestamp: Vec<Option<DateTime<Utc>>>,
    /// The body exactly as received and signed, whatever it is.
    pub body: Vec<&'a [u8]>,
    /// The body as JSON text, when it is JSON that PostgreSQL's `jsonb` can hold.
    pub payload: Vec<Option<&'a str>>,
    pub content_type: Vec<Option<&'a str>>,
    /// The request headers the handler kept, as a JSON object.
    pub request_headers: Vec<Option<&'a str>>,
    pub received_at: Vec<DateTime<Utc>>,
    pub attempts: Vec<i32>,
}

impl<'a> EventColumns<'a> {
    /// Room for `rows` rows in every column.
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            webhook_id: Vec::with_capacity(rows),
            message_id: Vec::with_capacity(rows),
            event_id: Vec::with_capacity(rows),
            event_type: Vec::with_capacity(rows),
            source_timestamp: Vec::with_capacity(rows),
            body: Vec::with_capacity(rows),
            payload: Vec::with_capacity(rows),
            content_type: Vec::with_capacity(rows),
            request_headers: Vec::with_capacity(rows),
            received_at: Vec::with_capacity(rows),
            attempts: Vec::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.webhook_id.len()
    }

    /// Row `index` alone.
    fn row(&self, index: usize) -> Self {
        Self {
            webhook_id: vec![self.webhook_id[index]],
            message_id: vec![self.message_id[index]],
            event_id: vec![self.event_id[index]],
            event_type: vec![self.event_type[index]],
            source_timestamp: vec![self.source_timestamp[index]],
            body: vec![self.body[index]],
            payload: vec![self.payload[index]],
            content_type: vec![self.content_type[index]],
            request_headers: vec![self.request_headers[index]],
            received_at: vec![self.received_at[index]],
            attempts: vec![self.attempts[index]],
        }
    }

    fn has_json(&self) -> bool {
        self.payload.iter().any(Option::is_some) || self.request_headers.iter().any(Option::is_some)
    }

    /// These rows with their JSON columns null.
    fn without_json(mut self) -> Self {
        self.payload.fill(None);
        self.request_headers.fill(None);
        self
    }
}

/// New rows only. The primary key (webhook_id, message_id, received_day) refuses a
/// copy received the same day, also one written by another session meanwhile; a key
/// found in one of `searched_days` (a sender's retry received on a later day) or twice
/// in the batch (the earliest receipt kept) is skipped. Each searched day costs an
/// index probe per row, so the dedup window is a setting.
fn insert_statement(searched_days: &[NaiveDate]) -> String {
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

/// Inserts `events` in one statement, looking for their keys in the partitions of
/// `searched_days` too; returns how many were new.
pub async fn insert(
    connection: &mut PgConnection,
    events: &EventColumns<'_>,
    searched_days: &[NaiveDate],
) -> Result<Inserted, sqlx::Error> {
    // Table names made from dates only (partition_name).
    let statement = AssertSqlSafe(insert_statement(searched_days));
    let counts: Vec<(String, i64)> = sqlx::query_as(statement)
        .bind(&events.webhook_id)
        .bind(&events.message_id)
        .bind(&events.event_id)
        .bind(&events.event_type)
        .bind(&events.source_timestamp)
        .bind(&events.body)
        .bind(&events.payload)
        .bind(&events.content_type)
        .bind(&events.request_headers)
        .bind(&events.received_at)
        .bind(&events.attempts)
        .fetch_all(connection)
        .await?;
    Ok(Inserted(
        counts
            .into_iter()
            // count(*) is never negative.
            .map(|(webhook_id, count)| (webhook_id, count.unsigned_abs()))
            .collect(),
    ))
}

/// Inserts `events` one at a time, each under a savepoint, after the batch statement
/// was refused for its data. A row refused with its JSON columns is tried again without
/// them: whatever `jsonb` refuses that the caller's check let through, the body is
/// still stored as received, with a null `payload`. Returns how many were new and, for
/// each row refused even so, its index and PostgreSQL's reason; other errors end the
/// attempt.
pub async fn insert_one_by_one(
    connection: &mut PgConnection,
    events: &EventColumns<'_>,
    searched_days: &[NaiveDate],
) -> Result<(Inserted, Vec<(usize, String)>), sqlx::Error> {
    let mut inserted = Inserted::default();
    let mut refused = Vec::new();
    for index in 0..events.len() {
        let row = events.row(index);
        let mut outcome = insert_one(connection, &row, searched_days).await?;
        if let Err(reason) = &outcome
            && row.has_json()
        {
            tracing::warn!(
                webhook_id = %events.webhook_id[index],
                message_id = %events.message_id[index],
                %reason,
                "PostgreSQL refused the event's JSON; storing its body without it"
            );
            outcome = insert_one(connection, &row.without_json(), searched_days).await?;
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
    row: &EventColumns<'_>,
    searched_days: &[NaiveDate],
) -> Result<Result<Inserted, String>, sqlx::Error> {
    sqlx::query("SAVEPOINT one_event")
        .execute(&mut *connection)
        .await?;
    match insert(connection, row, searched_days).await {
        Ok(n) => {
            sqlx::query("RELEASE SAVEPOINT one_event")
                .execute(&mut *connection)
                .await?;
            Ok(Ok(n))
        }
        Err(err) if is_data_error(&err) => {
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
