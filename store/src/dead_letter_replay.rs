//! Re-driving dead letters: the one way both `hookline-consumer replay` and the console
//! put dead letters back on the events topic.
//!
//! A replay is recorded first (who, when, what it selected), then each page of dead
//! letters is produced, acknowledged by Kafka, and only then marked with the replay's
//! id, so a crash in between replays that page again next time and the events table's
//! key stores each event once. Replayed records carry the handler's headers with a
//! retry count of zero: a fresh retry budget.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Row};
use thiserror::Error;

use hookline_core::event_record::EventRecord;
use hookline_runtime::kafka::{self, KafkaConnection, reliable_producer_config};
use hookline_runtime::producer::AckedProducer;

const PAGE: i64 = 500;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("cannot read, record or mark dead letters: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[source] KafkaError),
    #[error("Kafka did not acknowledge dead letter {id} on {topic}: {source}")]
    NotAcknowledged {
        id: i64,
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// Which dead letters a replay takes: the listed ids (replayed before or not), or the
/// ones matching every given filter that were not replayed yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// What a finished replay did.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// The replay's row in `replays`.
    pub replay_id: i64,
    pub requested_at: DateTime<Utc>,
    pub count: u64,
}

/// A dead letter to re-publish.
#[derive(Debug, Clone)]
struct Item {
    id: i64,
    webhook_id: String,
    payload: Vec<u8>,
    headers: Value,
}

/// Produces replayed dead letters to one events topic.
pub struct Replayer {
    producer: AckedProducer,
    events_topic: String,
}

impl Replayer {
    pub fn new(
        connection: &KafkaConnection,
        client_id: &str,
        events_topic: &str,
    ) -> Result<Self, ReplayError> {
        let config = reliable_producer_config(connection, client_id, DELIVERY_TIMEOUT);
        let producer =
            AckedProducer::new(&config, "kafka-replays").map_err(ReplayError::Producer)?;
        Ok(Self {
            producer,
            events_topic: events_topic.to_owned(),
        })
    }

    pub fn events_topic(&self) -> &str {
        &self.events_topic
    }

    /// Records a replay by `requested_by`, replays what `selection` takes, and says how many.
    pub async fn replay(
        &self,
        pool: &PgPool,
        selection: &Selection,
        requested_by: &str,
    ) -> Result<Replayed, ReplayError> {
        let (replay_id, requested_at): (i64, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO replays (requested_by, selection) VALUES ($1, $2) \
             RETURNING id, requested_at",
        )
        .bind(requested_by)
        .bind(sqlx::types::Json(selection))
        .fetch_one(pool)
        .await?;
        let topic = &self.events_topic;
        let mut after = 0;
        let mut count = 0u64;
        loop {
            let page = next_page(pool, selection, after).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.id;
            let records: Vec<(i64, EventRecord)> = page
                .into_iter()
                .map(|item| {
                    let record = EventRecord::replay(&item.webhook_id, item.payload, &item.headers);
                    (item.id, record)
                })
                .collect();
            let deliveries: Vec<_> = records
                .iter()
                .map(|(id, record)| {
                    let sent = self
                        .producer
                        .send_when_room(kafka::future_record(topic, record), DELIVERY_TIMEOUT);
                    (*id, sent)
                })
                .collect();
            let mut ids = Vec::with_capacity(deliveries.len());
            for (id, delivery) in deliveries {
                delivery
                    .await
                    .map_err(|source| ReplayError::NotAcknowledged {
                        id,
                        topic: topic.clone(),
                        source,
                    })?;
                ids.push(id);
            }
            mark_replayed(pool, replay_id, &ids).await?;
            count += ids.len() as u64;
            tracing::info!(replay_id, replayed = count, topic, "dead letters replayed");
        }
        sqlx::query("UPDATE replays SET finished_at = now() WHERE id = $1")
            .bind(replay_id)
            .execute(pool)
            .await?;
        Ok(Replayed {
            replay_id,
            requested_at,
            count,
        })
    }
}

/// The condition of `count` and `next_page`, on parameters $1 to $5 (a macro, so
/// that the statements stay literals).
macro_rules! selected {
    () => {
        "CASE WHEN $1::bigint[] IS NOT NULL THEN id = ANY($1) ELSE \
       replayed_at IS NULL \
       AND ($2::text IS NULL OR webhook_id = $2) \
       AND ($3::text IS NULL OR reason = $3) \
       AND ($4::timestamptz IS NULL OR dead_at >= $4) \
       AND ($5::timestamptz IS NULL OR dead_at < $5) END"
    };
}

/// How many dead letters `selection` takes now.
pub async fn count(pool: &PgPool, selection: &Selection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(concat!(
        "SELECT count(*) FROM dead_letters WHERE ",
        selected!()
    ))
    .bind(selection.ids.as_deref())
    .bind(selection.webhook_id.as_deref())
    .bind(selection.reason.as_deref())
    .bind(selection.since)
    .bind(selection.until)
    .fetch_one(pool)
    .await
}

/// The next page of selected dead letters after id `after`, oldest first.
async fn next_page(
    pool: &PgPool,
    selection: &Selection,
    after: i64,
) -> Result<Vec<Item>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT id, webhook_id, payload, headers FROM dead_letters WHERE id > $6 AND ",
        selected!(),
        " ORDER BY id LIMIT $7"
    ))
    .bind(selection.ids.as_deref())
    .bind(selection.webhook_id.as_deref())
    .bind(selection.reason.as_deref())
    .bind(selection.since)
    .bind(selection.until)
    .bind(after)
    .bind(PAGE)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Item {
                id: row.try_get("id")?,
                webhook_id: row.try_get("webhook_id")?,
                payload: row.try_get("payload")?,
                headers: row.try_get("headers")?,
            })
        })
        .collect()
}

async fn mark_replayed(pool: &PgPool, replay_id: i64, ids: &[i64]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE dead_letters SET replayed_at = now(), replay_id = $1 WHERE id = ANY($2)")
        .bind(replay_id)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE replays SET replayed = replayed + $2 WHERE id = $1")
        .bind(replay_id)
        .bind(ids.len() as i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_recorded_with_only_the_filters_it_has() {
        let selection = Selection {
            webhook_id: Some("wh".into()),
            ..Selection::default()
        };
        assert_eq!(
            serde_json::to_value(&selection).expect("json"),
            serde_json::json!({"webhook_id": "wh"})
        );
    }
}
