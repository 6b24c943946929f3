//! One consumer of the group and its loop: gather a batch (up to N records or T after
//! the first), process it, then commit its offsets. Two run side by side: `events` on
//! the main topic, and `retries` on every retry tier, which holds each partition until
//! its next record is due (see [`DelayGate`]). Retries therefore never slow fresh events,
//! and a record waiting an hour never holds back one waiting a second.
//!
//! Outages: when PostgreSQL or Kafka fails, the consumer pauses its partitions, keeps
//! polling (so it stays in the group), backs off and tries the same batch again;
//! nothing is skipped or committed meanwhile.
//!
//! Rebalances: offsets are committed only for work that is done; before partitions are
//! revoked, their done offsets are committed synchronously, and records of revoked
//! partitions that were gathered but not processed are dropped, uncommitted, for the
//! new owner to read. Assignment is cooperative (incremental): a replica joining or
//! leaving moves only the partitions that change owner, the others never stop, and a
//! replica stopping gracefully leaves the group so its partitions move at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use hookline_runtime::shutdown::Shutdown;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use thiserror::Error;
use tokio::time::Instant;

use crate::event::{Consumed, PartitionKey};
use crate::gate::{Admission, DelayGate};
use crate::metrics::{Metrics, PartitionLabels, SourceLabel};
use crate::processor::Processor;

/// Prefetched records librdkafka may buffer, in KiB: bounds memory (the default is 64 MiB).
/// A few batches of 1 KiB events: the next batch is ready when the current one is
/// written, and a backlog's drain stays inside the memory limit.
const PREFETCH_KBYTES: &str = "4096";
/// How long fetching pauses once that buffer is full. librdkafka's default, 1 s, makes
/// a small buffer a throttle: the loop empties 16 MiB in well under a second and then
/// waits (measured: 17,000 instead of 30,000+ events stored per second).
const PREFETCH_FULL_BACKOFF_MS: &str = "10";
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("cannot create the {source_name} consumer: {error}")]
    Create {
        source_name: &'static str,
        #[source]
        error: KafkaError,
    },
    #[error("cannot subscribe the {source_name} consumer to {topics:?}: {error}")]
    Subscribe {
        source_name: &'static str,
        topics: Vec<String>,
        #[source]
        error: KafkaError,
    },
}

/// How one pipeline consumes.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// `events` or `retries`: names the pipeline in logs and metrics.
    pub source: &'static str,
    pub kafka: hookline_runtime::kafka::KafkaConnection,
    pub group_id: String,
    /// Static group membership: a restarted replica with the same id takes its
    /// partitions back at once instead of after the session timeout.
    pub group_instance_id: Option<String>,
    /// How long a replica that stopped answering keeps its partitions.
    pub session_timeout: Duration,
    pub topics: Vec<String>,
    /// Hold records until their not-before time (the retry tiers).
    pub gated: bool,
    pub batch_max_events: usize,
    pub batch_max_wait: Duration,
}

/// Assignment and progress, shared with the rebalance callbacks.
#[derive(Default)]
struct Progress {
    assigned: HashSet<PartitionKey>,
    /// The next offset to read of every partition whose work is stored.
    done: HashMap<PartitionKey, i64>,
    /// Partitions revoked since the loop last looked. Their gathered records are
    /// dropped even if the partition came straight back: a re-assigned partition
    /// restarts from its committed offset, so keeping them would process them twice.
    revoked: HashSet<PartitionKey>,
    /// Set by every rebalance (a paused consumer then pauses its new partitions too).
    rebalanced: bool,
}

pub struct PipelineContext {
    source: &'static str,
    progress: Arc<Mutex<Progress>>,
    metrics: Metrics,
}

impl PipelineContext {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        lock(&self.progress)
    }

    /// Marks a rebalance and counts the partitions it left this replica.
    fn rebalanced(&self, progress: &mut Progress) {
        progress.rebalanced = true;
        self.metrics
            .assigned_partitions
            .get_or_create(&SourceLabel {
                source: self.source,
            })
            .set(progress.assigned.len() as i64);
    }
}

fn lock(progress: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientContext for PipelineContext {
    fn stats(&self, statistics: Statistics) {
        let progress = self.progress();
        for (topic, stats) in statistics.topics {
            for (partition, stats) in stats.partitions {
                if !progress.assigned.contains(&(topic.clone(), partition)) {
                    continue;
                }
                if let Some(lag) =
                    partition_lag(stats.consumer_lag, stats.lo_offset, stats.hi_offset)
                {
                    self.metrics
                        .lag
                        .get_or_create(&PartitionLabels {
                            topic: topic.clone(),
                            partition,
                        })
                        .set(lag);
                }
            }
        }
    }
}

/// Records behind in a partition: librdkafka's figure once the consumer has a
/// position there (-1 before); before that, every record the partition holds (so an
/// empty partition that was never read is 0, not unknown).
fn partition_lag(consumer_lag: i64, low: i64, high: i64) -> Option<i64> {
    if consumer_lag >= 0 {
        Some(consumer_lag)
    } else if low >= 0 && high >= low {
        Some(high - low)
    } else {
        None
    }
}

impl ConsumerContext for PipelineContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut progress = self.progress();
        let mut done = TopicPartitionList::new();
        for element in revoked.elements() {
            let key = (element.topic().to_owned(), element.partition());
            if let Some(offset) = progress.done.remove(&key)
                && let Err(err) = done.add_partition_offset(&key.0, key.1, Offset::Offset(offset))
            {
                tracing::warn!(%err, topic = key.0, partition = key.1, "cannot list an offset to commit");
            }
            progress.assigned.remove(&key);
            self.metrics.lag.remove(&PartitionLabels {
                topic: key.0.clone(),
                partition: key.1,
            });
            progress.revoked.insert(key);
        }
        self.rebalanced(&mut progress);
        drop(progress);
        if done.count() > 0
            && let Err(err) = consumer.commit(&done, CommitMode::Sync)
        {
            // Not fatal: the new owner reads these records again and stores nothing twice.
            tracing::warn!(%err, source = self.source, "cannot commit done offsets before a revoke");
        }
        tracing::info!(
            source = self.source,
            partitions = revoked.count(),
            "partitions revoked"
        );
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(assigned) = rebalance else {
            return;
        };
        let mut progress = self.progress();
        for element in assigned.elements() {
            progress
                .assigned
                .insert((element.topic().to_owned(), element.partition()));
        }
        self.rebalanced(&mut progress);
        tracing::info!(
            source = self.source,
            partitions = assigned.count(),
            "partitions assigned"
        );
    }

    fn commit_callback(&self, result: KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(err) = result {
            // The records will be read again after a restart; storage ignores repeats.
            tracing::warn!(%err, source = self.source, "offset commit failed");
        }
    }
}

/// What woke the loop.
enum Step {
    Record(KafkaResult<Consumed>),
    BatchDue,
    GateDue,
    Shutdown,
}

pub struct Pipeline {
    settings: PipelineSettings,
    consumer: StreamConsumer<PipelineContext>,
    progress: Arc<Mutex<Progress>>,
    processor: Arc<Processor>,
    gate: DelayGate,
    /// Records received while a batch waited out an outage: the next batch.
    pending: Vec<Consumed>,
    metrics: Metrics,
    shutdown: Shutdown,
}

impl Pipeline {
    pub fn new(
        settings: PipelineSettings,
        processor: Arc<Processor>,
        metrics: Metrics,
        shutdown: Shutdown,
    ) -> Result<Self, PipelineError> {
        let source_name = settings.source;
        let mut config = hookline_runtime::kafka::manual_commit_consumer_config(
            &settings.kafka,
            &format!("hookline-consumer-{source_name}"),
            &settings.group_id,
        );
        config
            .set("queued.max.messages.kbytes", PREFETCH_KBYTES)
            .set("fetch.queue.backoff.ms", PREFETCH_FULL_BACKOFF_MS)
            .set("statistics.interval.ms", "5000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                settings.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (settings.session_timeout.as_millis() / 5)
                    .max(100)
                    .to_string(),
            );
        if let Some(instance) = &settings.group_instance_id {
            config.set("group.instance.id", instance);
        }
        let progress = Arc::new(Mutex::new(Progress::default()));
        let context = PipelineContext {
            source: source_name,
            progress: progress.clone(),
            metrics: metrics.clone(),
        };
        let consumer: StreamConsumer<PipelineContext> = config
            .create_with_context(context)
            .map_err(|error| PipelineError::Create { source_name, error })?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|error| PipelineError::Subscribe {
                source_name,
                topics: settings.topics.clone(),
                error,
            })?;
        Ok(Self {
            settings,
            consumer,
            progress,
            processor,
            gate: DelayGate::default(),
            pending: Vec::new(),
            metrics,
            shutdown,
        })
    }

    /// Runs until shutdown; then commits what is done and leaves the group.
    pub async fn run(mut self) {
        let source = self.settings.source;
        tracing::info!(source, topics = ?self.settings.topics, group = self.settings.group_id, "consuming");
        let mut batch: Vec<Consumed> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            let gate_due = self
                .gate
                .next_due()
                .map(|due| Instant::now() + (due - Utc::now()).to_std().unwrap_or_default());
            let step = self.next_step(deadline, gate_due).await;
            self.drop_revoked(&mut batch);
            match step {
                Step::Shutdown => break,
                Step::Record(Ok(record)) => self.admit(record, &mut batch),
                Step::Record(Err(err)) => {
                    // librdkafka reconnects by itself; the position is unchanged.
                    tracing::warn!(%err, source, "consumer error");
                }
                Step::BatchDue => {}
                Step::GateDue => self.release_due(&mut batch),
            }
            if batch.is_empty() {
                deadline = None;
                continue;
            }
            let deadline_at =
                *deadline.get_or_insert_with(|| Instant::now() + self.settings.batch_max_wait);
            if batch.len() < self.settings.batch_max_events && Instant::now() < deadline_at {
                continue;
            }
            if !self.process_until_done(&mut batch).await {
                break;
            }
            self.commit(&batch);
            batch.clear();
            deadline = None;
            batch.append(&mut self.pending);
        }
        self.commit_done_sync();
        tracing::info!(source, "consumer stopped");
    }

    async fn next_step(&self, batch_due: Option<Instant>, gate_due: Option<Instant>) -> Step {
        tokio::select! {
            biased;
            () = self.shutdown.wait() => Step::Shutdown,
            record = self.consumer.recv() => Step::Record(record.map(|r| Consumed::from_message(&r))),
            () = sleep_until(batch_due) => Step::BatchDue,
            () = sleep_until(gate_due) => Step::GateDue,
        }
    }

    /// Puts a received record in `into`, or holds it in the gate (pausing its partition).
    fn admit(&mut self, record: Consumed, into: &mut Vec<Consumed>) {
        self.metrics
            .consumed
            .get_or_create(&SourceLabel {
                source: self.settings.source,
            })
            .inc();
        if !self.settings.gated {
            into.push(record);
            return;
        }
        let key = record.partition_key();
        match self.gate.offer(record, Utc::now()) {
            Admission::Ready(record) => into.push(record),
            Admission::Held { pause: true } => self.pause(&[key]),
            Admission::Held { pause: false } => {}
        }
    }

    fn release_due(&mut self, into: &mut Vec<Consumed>) {
        let released = self.gate.release_due(Utc::now());
        into.extend(released.ready);
        self.resume(&released.resume);
    }

    /// Processes `batch`, waiting out outages with the partitions paused. Returns false
    /// if shutdown came first (then nothing of the batch is committed).
    async fn process_until_done(&mut self, batch: &mut Vec<Consumed>) -> bool {
        let source = self.settings.source;
        let mut backoff = FIRST_BACKOFF;
        let mut paused = false;
        loop {
            if batch.is_empty() {
                break;
            }
            match self.processor.process(source, batch).await {
                Ok(()) => break,
                Err(err) => {
                    self.metrics
                        .infrastructure_failures
                        .get_or_create(&crate::metrics::KindLabel { kind: err.kind() })
                        .inc();
                    tracing::warn!(
                        error = %err,
                        source,
                        records = batch.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "infrastructure failure: partitions paused, nothing skipped or committed"
                    );
                    if !paused {
                        paused = true;
                        self.metrics
                            .paused
                            .get_or_create(&SourceLabel { source })
                            .set(1);
                    }
                    self.pause_assigned();
                    if !self.wait_paused(backoff, batch).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if paused {
            let held: Vec<PartitionKey> = self
                .assigned()
                .into_iter()
                .filter(|key| !self.gate.is_waiting(key))
                .collect();
            self.resume(&held);
            self.metrics
                .paused
                .get_or_create(&SourceLabel { source })
                .set(0);
            tracing::info!(source, "infrastructure is back: partitions resumed");
        }
        true
    }

    /// Sleeps `backoff` while still polling, so the consumer keeps its group membership.
    /// Records already on their way when the pause took effect become the next batch.
    async fn wait_paused(&mut self, backoff: Duration, batch: &mut Vec<Consumed>) -> bool {
        let until = Instant::now() + backoff;
        loop {
            let record = tokio::select! {
                biased;
                () = self.shutdown.wait() => return false,
                () = tokio::time::sleep_until(until) => return true,
                record = self.consumer.recv() => record.map(|r| Consumed::from_message(&r)),
            };
            if self.drop_revoked(batch) {
                self.pause_assigned();
            }
            match record {
                Ok(record) => {
                    let mut pending = std::mem::take(&mut self.pending);
                    self.admit(record, &mut pending);
                    self.pending = pending;
                }
                Err(err) => tracing::warn!(%err, source = self.settings.source, "consumer error"),
            }
        }
    }

    /// After a rebalance, drops gathered records (and gate state) of partitions that
    /// were revoked, for whoever owns them now to read from the committed offset.
    /// Returns whether a rebalance happened.
    fn drop_revoked(&mut self, batch: &mut Vec<Consumed>) -> bool {
        let mut progress = lock(&self.progress);
        if !progress.rebalanced {
            return false;
        }
        progress.rebalanced = false;
        let revoked = std::mem::take(&mut progress.revoked);
        drop(progress);
        if !revoked.is_empty() {
            let kept = |record: &Consumed| !revoked.contains(&record.partition_key());
            batch.retain(kept);
            self.pending.retain(kept);
            self.gate.retain(|key| !revoked.contains(key));
        }
        true
    }

    fn assigned(&self) -> Vec<PartitionKey> {
        lock(&self.progress).assigned.iter().cloned().collect()
    }

    /// Commits the offsets after `batch` (asynchronously: a lost commit only means the
    /// records are read again and stored once).
    fn commit(&self, batch: &[Consumed]) {
        let mut next: HashMap<PartitionKey, i64> = HashMap::new();
        for record in batch {
            let offset = next.entry(record.partition_key()).or_insert(0);
            *offset = (*offset).max(record.offset + 1);
        }
        let mut progress = lock(&self.progress);
        let mut list = TopicPartitionList::new();
        for (key, offset) in next {
            if !progress.assigned.contains(&key) {
                continue;
            }
            if list
                .add_partition_offset(&key.0, key.1, Offset::Offset(offset))
                .is_ok()
            {
                progress.done.insert(key, offset);
            }
        }
        drop(progress);
        if list.count() > 0
            && let Err(err) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::warn!(%err, source = self.settings.source, "cannot commit offsets");
        }
    }

    /// At shutdown: the done offsets, committed and waited for.
    fn commit_done_sync(&self) {
        let progress = lock(&self.progress);
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &progress.done {
            if progress.assigned.contains(&(topic.clone(), *partition)) {
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
            }
        }
        drop(progress);
        if list.count() > 0
            && let Err(err) = self.consumer.commit(&list, CommitMode::Sync)
        {
            tracing::warn!(%err, source = self.settings.source, "cannot commit offsets at shutdown");
        }
    }

    fn pause_assigned(&self) {
        let assigned = self.assigned();
        self.pause(&assigned);
    }

    fn pause(&self, keys: &[PartitionKey]) {
        if let Some(list) = partition_list(keys)
            && let Err(err) = self.consumer.pause(&list)
        {
            tracing::warn!(%err, source = self.settings.source, "cannot pause partitions");
        }
    }

    fn resume(&self, keys: &[PartitionKey]) {
        if let Some(list) = partition_list(keys)
            && let Err(err) = self.consumer.resume(&list)
        {
            tracing::warn!(%err, source = self.settings.source, "cannot resume partitions");
        }
    }
}

fn partition_list(keys: &[PartitionKey]) -> Option<TopicPartitionList> {
    if keys.is_empty() {
        return None;
    }
    let mut list = TopicPartitionList::new();
    for (topic, partition) in keys {
        list.add_partition(topic, *partition);
    }
    Some(list)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_librdkafkas_once_positioned_else_what_the_partition_holds() {
        assert_eq!(partition_lag(7, 0, 100), Some(7));
        assert_eq!(partition_lag(-1, 0, 0), Some(0), "empty, never read");
        assert_eq!(partition_lag(-1, 40, 100), Some(60), "not read yet");
        assert_eq!(partition_lag(-1, -1, -1), None, "watermarks unknown");
    }
}
