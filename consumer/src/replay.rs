//! `hookline-consumer replay`: re-publishes dead letters to the events topic with a
//! fresh retry budget and marks them replayed.
//!
//! Each page is produced and acknowledged before it is marked, so a crash in between
//! replays it again next time, and the events table's key stores it once.

use std::time::Duration;

use hookline_core::kafka::reliable_producer_config;
use hookline_core::record_headers;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use sqlx::PgPool;
use thiserror::Error;

use crate::config::ReplayArgs;
use crate::db::{self, DbError};
use crate::store::{self, ReplayItem, ReplaySelection};

const PAGE: i64 = 500;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(transparent)]
    Connect(#[from] DbError),
    #[error("cannot read or mark dead letters: {0}")]
    Database(#[source] sqlx::Error),
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

/// The `replay` subcommand: connects, replays, and says how many on stdout.
pub async fn command(database_url: &str, args: &ReplayArgs) -> Result<(), ReplayError> {
    let pool = db::connect(database_url, 2).await?;
    let count = run(&pool, args).await?;
    println!(
        "replayed {count} dead letters to {}",
        args.topics.events_topic
    );
    Ok(())
}

/// Replays the selected dead letters; returns how many.
pub async fn run(pool: &PgPool, args: &ReplayArgs) -> Result<u64, ReplayError> {
    let producer: FutureProducer = reliable_producer_config(
        &args.kafka.kafka_bootstrap_servers,
        "hookline-consumer-replay",
        DELIVERY_TIMEOUT,
    )
    .create()
    .map_err(ReplayError::Producer)?;
    let selection = ReplaySelection {
        webhook_id: args.webhook.clone(),
        since: args.since,
        until: args.until,
    };
    let topic = &args.topics.events_topic;
    let mut after = 0;
    let mut replayed = 0;
    loop {
        let page = store::dead_letters_to_replay(pool, &selection, after, PAGE)
            .await
            .map_err(ReplayError::Database)?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        let mut deliveries = Vec::with_capacity(page.len());
        for item in &page {
            let record = FutureRecord::to(topic)
                .key(item.webhook_id.as_bytes())
                .payload(item.payload.as_slice())
                .headers(replay_headers(item));
            deliveries.push((item.id, producer.send(record, DELIVERY_TIMEOUT)));
        }
        let mut ids = Vec::with_capacity(deliveries.len());
        for (id, delivery) in deliveries {
            delivery
                .await
                .map_err(|(source, _)| ReplayError::NotAcknowledged {
                    id,
                    topic: topic.clone(),
                    source,
                })?;
            ids.push(id);
        }
        store::mark_replayed(pool, &ids)
            .await
            .map_err(ReplayError::Database)?;
        replayed += ids.len() as u64;
        tracing::info!(replayed, topic, "dead letters replayed");
    }
    Ok(replayed)
}

/// The event's own headers, as the handler sent them, with a retry count of zero.
fn replay_headers(item: &ReplayItem) -> OwnedHeaders {
    let own = match &item.headers {
        Value::Object(map) => map
            .iter()
            .filter(|(name, _)| name.as_str() != record_headers::RETRY_COUNT)
            .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
            .collect(),
        _ => Vec::new(),
    };
    own.into_iter()
        .chain([(record_headers::RETRY_COUNT, "0")])
        .fold(OwnedHeaders::new(), |all, (key, value)| {
            all.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    #[test]
    fn replayed_records_keep_the_handler_headers_and_start_their_retries_over() {
        let item = ReplayItem {
            id: 1,
            webhook_id: "wh".into(),
            payload: b"{}".to_vec(),
            headers: serde_json::json!({
                record_headers::MESSAGE_ID: "m-1",
                record_headers::RECEIVED_AT: "2026-03-01T10:00:00Z",
                record_headers::RETRY_COUNT: "3",
            }),
        };
        let replayed = replay_headers(&item);
        let pairs: Vec<(String, String)> = replayed
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert!(pairs.contains(&(record_headers::MESSAGE_ID.into(), "m-1".into())));
        assert!(pairs.contains(&(
            record_headers::RECEIVED_AT.into(),
            "2026-03-01T10:00:00Z".into()
        )));
        let counts: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == record_headers::RETRY_COUNT)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(counts, ["0"]);
    }
}
