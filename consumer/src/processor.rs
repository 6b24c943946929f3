//! Processes one batch: stores what can be stored and sends every failed event on its
//! way, in an order that survives a crash at any point.
//!
//! 1. One transaction: the batch's events (one statement, duplicates ignored) and the
//!    dead-letter rows of events whose retry budget is spent.
//! 2. After the commit: retry copies and dead letters produced, each acknowledged.
//! 3. Only then does the caller commit the offsets.
//!
//! A crash anywhere replays the batch: events and dead-letter rows are written once
//! (their keys), and copies may be sent again (at least once), which their consumers
//! absorb the same way.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use futures::future::try_join_all;
use hookline_core::retry::DeliveryPolicy;
use hookline_runtime::kafka;
use hookline_runtime::producer::AckedProducer;
use hookline_runtime::registry_view::{Lookup, RegistryView};
use hookline_store::database::{is_data_error, is_undefined_table};
use hookline_store::day_partitions::DayPartitions;
use hookline_store::dead_letters;
use hookline_store::events::{self, EventColumns, Inserted};
use rdkafka::error::KafkaError;
use sqlx::PgPool;
use thiserror::Error;
use tracing::Instrument;

use crate::event::{self, Consumed, EventError, EventRow};
use crate::failure_routing::{self, Copy, Failure, FailurePlan, Routes};
use crate::metrics::{Metrics, ReasonLabel, SourceLabel, TierLabel};
use crate::store_spans::StoreSpans;

/// A failure of PostgreSQL or Kafka: the batch is kept and tried again, never skipped.
#[derive(Debug, Error)]
pub enum InfrastructureError {
    #[error("PostgreSQL failed: {0}")]
    Database(#[source] sqlx::Error),
    #[error("PostgreSQL did not finish the batch within {0:?}")]
    DatabaseTimeout(Duration),
    #[error("Kafka did not acknowledge a copy for {topic}: {source}")]
    Kafka {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

impl InfrastructureError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Database(_) | Self::DatabaseTimeout(_) => "database",
            Self::Kafka { .. } => "kafka",
        }
    }
}

/// How batches use PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseSettings {
    /// Longest a batch's transactions may take before it counts as an outage.
    pub timeout: Duration,
    /// Transactions a batch is split into, written side by side.
    pub parallel_transactions: usize,
}

pub struct Processor {
    pool: PgPool,
    day_partitions: Arc<DayPartitions>,
    registry: RegistryView,
    producer: AckedProducer,
    routes: Routes,
    inject_failure_rate: f64,
    database_timeout: Duration,
    parallel_transactions: usize,
    metrics: Metrics,
}

/// The outcome of the transactions, before the copies are sent.
#[derive(Default)]
struct Written<'a> {
    inserted: Inserted,
    attempted: u64,
    failures: Vec<Failure<'a>>,
    plan: FailurePlan,
}

impl<'a> Written<'a> {
    fn absorb(mut self, other: Written<'a>) -> Self {
        self.inserted.add(other.inserted);
        self.attempted += other.attempted;
        self.failures.extend(other.failures);
        self.plan.copies.extend(other.plan.copies);
        self.plan
            .dead_letter_rows
            .extend(other.plan.dead_letter_rows);
        self.plan.retries.extend(other.plan.retries);
        self.plan.dropped.extend(other.plan.dropped);
        self
    }
}

/// A share of a batch written in a transaction of its own.
struct Group<'a> {
    rows: Vec<EventRow>,
    row_origins: Vec<(&'a Consumed, DeliveryPolicy)>,
    failures: Vec<Failure<'a>>,
}

/// Splits a batch into at most `count` groups by event key (webhook id and message
/// id), so that they can be written side by side on as many connections (PostgreSQL
/// then uses more than one core) even when the batch comes from one partition (one busy
/// Webhook). Every copy of a key lands in the same group, so no key is written by two
/// transactions at once, and a group keeps the batch's order. Failures go by Kafka
/// partition: their dead-letter rows are keyed by origin.
fn split_by_key<'a>(
    rows: Vec<EventRow>,
    row_origins: Vec<(&'a Consumed, DeliveryPolicy)>,
    failures: Vec<Failure<'a>>,
    count: usize,
) -> Vec<Group<'a>> {
    let count = count.max(1);
    let row_group = |row: &EventRow| {
        let mut hasher = std::hash::DefaultHasher::new();
        (&row.webhook_id, &row.message_id).hash(&mut hasher);
        (hasher.finish() % count as u64) as usize
    };
    let failure_group = |consumed: &Consumed| consumed.partition.rem_euclid(count as i32) as usize;
    let mut groups: Vec<Group<'a>> = (0..count)
        .map(|_| Group {
            rows: Vec::new(),
            row_origins: Vec::new(),
            failures: Vec::new(),
        })
        .collect();
    for (row, origin) in rows.into_iter().zip(row_origins) {
        let group = &mut groups[row_group(&row)];
        group.rows.push(row);
        group.row_origins.push(origin);
    }
    for failure in failures {
        groups[failure_group(failure.consumed)]
            .failures
            .push(failure);
    }
    groups.retain(|group| !group.rows.is_empty() || !group.failures.is_empty());
    groups
}

impl Processor {
    pub fn new(
        day_partitions: Arc<DayPartitions>,
        registry: RegistryView,
        producer: AckedProducer,
        routes: Routes,
        inject_failure_rate: f64,
        database: DatabaseSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            pool: day_partitions.pool().clone(),
            day_partitions,
            registry,
            producer,
            routes,
            inject_failure_rate,
            database_timeout: database.timeout,
            parallel_transactions: database.parallel_transactions,
            metrics,
        }
    }

    /// Processes `batch` completely, or fails without having skipped anything.
    pub async fn process(
        &self,
        source: &'static str,
        batch: &[Consumed],
    ) -> Result<(), InfrastructureError> {
        let spans = StoreSpans::open(source, batch);
        let mut rows = Vec::with_capacity(batch.len());
        let mut row_origins = Vec::with_capacity(batch.len());
        let mut failures = Vec::new();
        for consumed in batch {
            match self.admit(consumed) {
                Ok((row, policy)) => {
                    rows.push(row);
                    row_origins.push((consumed, policy));
                }
                Err(failure) => failures.push(failure),
            }
        }
        let started = Instant::now();
        let groups = split_by_key(rows, row_origins, failures, self.parallel_transactions);
        let writes = groups.into_iter().map(|group| async move {
            self.write(&group.rows, &group.row_origins, group.failures)
                .await
        });
        let written = tokio::time::timeout(self.database_timeout, try_join_all(writes))
            .instrument(spans.batch().clone())
            .await
            .map_err(|_| InfrastructureError::DatabaseTimeout(self.database_timeout))?
            .map_err(InfrastructureError::Database)?
            .into_iter()
            .fold(Written::default(), Written::absorb);
        self.metrics
            .database_seconds
            .observe(started.elapsed().as_secs_f64());
        spans.record_failures(&written.failures);
        self.send(&written.plan.copies).await?;
        self.count(source, batch.len(), &written);
        Ok(())
    }

    /// Counts what a processed batch of `size` records from `source` came to.
    fn count(&self, source: &'static str, size: usize, written: &Written<'_>) {
        self.metrics
            .batch_size
            .get_or_create(&SourceLabel { source })
            .observe(size as f64);
        for (webhook_id, count) in &written.inserted.0 {
            self.metrics
                .stored
                .get_or_create(&self.metrics.webhook(&self.registry, webhook_id))
                .inc_by(*count);
        }
        self.metrics
            .duplicates
            .inc_by(written.attempted - written.inserted.total());
        for failure in &written.failures {
            self.metrics
                .event_failures
                .get_or_create(&ReasonLabel {
                    reason: failure.error.reason(),
                })
                .inc();
        }
        for (tier, count) in &written.plan.retries {
            let tier = u32::try_from(*tier).unwrap_or(u32::MAX);
            self.metrics
                .retries
                .get_or_create(&TierLabel { tier })
                .inc_by(*count);
        }
        for row in &written.plan.dead_letter_rows {
            self.metrics
                .dead_letters
                .get_or_create(&self.metrics.webhook(&self.registry, &row.webhook_id))
                .inc();
        }
        for webhook_id in &written.plan.dropped {
            self.metrics
                .dropped
                .get_or_create(&self.metrics.webhook(&self.registry, webhook_id))
                .inc();
        }
        if !written.plan.dropped.is_empty() {
            tracing::warn!(
                count = written.plan.dropped.len(),
                "dropped events whose retries were spent: their Webhook has deadLetter off"
            );
        }
    }

    /// Decodes a record and checks it against the registry and the failure injection.
    fn admit<'a>(&self, consumed: &'a Consumed) -> Result<(EventRow, DeliveryPolicy), Failure<'a>> {
        let lookup = consumed
            .record
            .webhook_id()
            .map(|id| self.registry.lookup(id))
            .unwrap_or(Lookup::Unknown);
        let policy = match &lookup {
            Lookup::Active(entry) => entry.delivery.clone(),
            Lookup::Deleted | Lookup::Unknown => DeliveryPolicy::default(),
        };
        let fail = |error| Failure {
            consumed,
            error,
            policy: policy.clone(),
        };
        let row = event::decode(consumed).map_err(fail)?;
        // An event of a deleted webhook was accepted while it existed: it is stored.
        // An unknown one may be a registry update still on its way: retries give it time.
        if lookup == Lookup::Unknown {
            return Err(fail(EventError::UnknownWebhook(row.webhook_id)));
        }
        if self.inject_failure_rate > 0.0 && rand::random::<f64>() < self.inject_failure_rate {
            return Err(fail(EventError::Injected));
        }
        Ok((row, policy))
    }

    /// The transaction: events, then the dead-letter rows of the failures.
    async fn write<'a>(
        &self,
        rows: &[EventRow],
        row_origins: &[(&'a Consumed, DeliveryPolicy)],
        failures: Vec<Failure<'a>>,
    ) -> Result<Written<'a>, sqlx::Error> {
        let days = self
            .day_partitions
            .ensure_for(rows.iter().map(|row| row.received_at))
            .await?;
        let written = self
            .write_days(rows, row_origins, failures, &days.searched)
            .await;
        if let Err(err) = &written
            && is_undefined_table(err)
        {
            // A searched partition was dropped by another replica's sweep: list them
            // again before the batch is tried again.
            self.day_partitions.reload().await?;
        }
        written
    }

    async fn write_days<'a>(
        &self,
        rows: &[EventRow],
        row_origins: &[(&'a Consumed, DeliveryPolicy)],
        mut failures: Vec<Failure<'a>>,
        searched_days: &[NaiveDate],
    ) -> Result<Written<'a>, sqlx::Error> {
        let columns: EventColumns = rows.iter().collect();
        let mut tx = self.pool.begin().await?;
        let mut refused_rows = Vec::new();
        let inserted = match events::insert(&mut tx, &columns, searched_days).await {
            Ok(inserted) => inserted,
            Err(err) if is_data_error(&err) => {
                tracing::warn!(%err, "PostgreSQL refused the batch's data; storing event by event");
                tx.rollback().await?;
                tx = self.pool.begin().await?;
                let (inserted, refused) =
                    events::insert_one_by_one(&mut tx, &columns, searched_days).await?;
                refused_rows = refused.iter().map(|(index, _)| *index).collect();
                failures.extend(refused.into_iter().map(|(index, reason)| {
                    let (consumed, policy) = &row_origins[index];
                    Failure {
                        consumed,
                        error: EventError::Unstorable(reason),
                        policy: policy.clone(),
                    }
                }));
                inserted
            }
            Err(err) => return Err(err),
        };
        let plan = failure_routing::plan(&failures, &self.routes, Utc::now());
        dead_letters::insert(&mut tx, &plan.dead_letter_rows.iter().collect()).await?;
        tx.commit().await?;
        let committed_at = Utc::now();
        let written_rows = rows
            .iter()
            .enumerate()
            .filter(|(index, _)| !refused_rows.contains(index));
        for (_, row) in written_rows {
            let waited = (committed_at - row.received_at)
                .to_std()
                .unwrap_or_default();
            self.metrics
                .produce_to_row_seconds
                .observe(waited.as_secs_f64());
        }
        Ok(Written {
            inserted,
            attempted: (rows.len() - refused_rows.len()) as u64,
            failures,
            plan,
        })
    }

    /// Produces every copy and waits for every acknowledgement.
    async fn send(&self, copies: &[Copy]) -> Result<(), InfrastructureError> {
        let mut deliveries = Vec::with_capacity(copies.len());
        for copy in copies {
            let record = kafka::future_record(&copy.topic, &copy.record);
            let delivery =
                self.producer
                    .send(record)
                    .map_err(|source| InfrastructureError::Kafka {
                        topic: copy.topic.clone(),
                        source,
                    })?;
            deliveries.push((copy.topic.as_str(), delivery));
        }
        for (topic, delivery) in deliveries {
            if let Err(source) = delivery.await {
                return Err(InfrastructureError::Kafka {
                    topic: topic.to_owned(),
                    source,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::event::tests::consumed;

    #[test]
    fn a_batch_splits_by_key_and_keeps_each_groups_order() {
        // One partition, as a single busy Webhook's events are, and every key twice.
        let records: Vec<Consumed> = (0..40)
            .map(|n| {
                let mut record = Consumed {
                    partition: 0,
                    offset: i64::from(n),
                    ..consumed("{}")
                };
                for (key, value) in &mut record.record.headers {
                    if key == hookline_core::record_headers::MESSAGE_ID {
                        *value = format!("m-{}", n % 20).into_bytes().into();
                    }
                }
                record
            })
            .collect();
        let (stored, failed) = records.split_at(36);
        let rows: Vec<EventRow> = stored
            .iter()
            .map(|c| event::decode(c).expect("a valid record"))
            .collect();
        let origins = stored
            .iter()
            .map(|c| (c, DeliveryPolicy::default()))
            .collect();
        let failures = failed
            .iter()
            .map(|c| Failure {
                consumed: c,
                error: EventError::Injected,
                policy: DeliveryPolicy::default(),
            })
            .collect();
        let groups = split_by_key(rows, origins, failures, 2);
        assert_eq!(groups.len(), 2, "one partition still makes two groups");
        let mut group_of_key = HashMap::new();
        for (index, group) in groups.iter().enumerate() {
            let offsets: Vec<i64> = group.row_origins.iter().map(|(c, _)| c.offset).collect();
            assert!(offsets.is_sorted(), "group {index} in batch order");
            assert_eq!(group.rows.len(), offsets.len());
            for row in &group.rows {
                let first = *group_of_key.entry(row.message_id.clone()).or_insert(index);
                assert_eq!(first, index, "{} written by one group only", row.message_id);
            }
        }
        assert_eq!(groups.iter().map(|g| g.rows.len()).sum::<usize>(), 36);
        assert_eq!(groups.iter().map(|g| g.failures.len()).sum::<usize>(), 4);
        let none = split_by_key(Vec::new(), Vec::new(), Vec::new(), 3);
        assert!(none.is_empty(), "no empty transactions");
    }
}
