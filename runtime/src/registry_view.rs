//! The readers' side of the registry: an in-memory view loaded fully from the topic
//! before the service reports ready, then kept current by tailing it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use thiserror::Error;
use tokio::sync::watch;

use crate::kafka::{KafkaConnection, client_config};
use crate::metrics::{Kind, MetricDef};
use crate::ops::Readiness;
use crate::shutdown::Shutdown;
use hookline_core::ids::WebhookId;
use hookline_core::registry::{
    ActiveEntry, Keyring, RegistryRecord, RegistryUpdate, decode, version_at,
};

/// The readiness condition `follow` maintains: met once the topic was read to its end.
pub const READINESS_CONDITION: &str = "registry";

/// How far ahead of a reader's clock the version of a record it cannot authenticate (a
/// reader without keyring) may be. Versions are the publisher's clock in microseconds:
/// without this bound, anyone who can write the topic could give such a reader a record
/// of the greatest version, after which it would refuse every real one.
const UNAUTHENTICATED_VERSION_LEAD: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What the registry says about one webhook id.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// With its secrets parsed for its scheme when the entry was applied.
    Active(Arc<ActiveEntry>),
    /// It existed and was deleted (the handler answers 410).
    Deleted,
    Unknown,
}

#[derive(Default)]
struct State {
    active: HashMap<WebhookId, Arc<ActiveEntry>>,
    deleted: HashSet<WebhookId>,
    /// The version of the record held for each id, active or deleted.
    versions: HashMap<WebhookId, u64>,
    /// Ids a stale record arrived for since [`RegistryView::stale_ids`] last took them
    /// (at most one per id held).
    stale: HashSet<WebhookId>,
}

/// `hookline_registry_entries_refused_total{reason}`, the same in every reader.
pub const ENTRIES_REFUSED: MetricDef = MetricDef::new(
    "hookline_registry",
    "entries_refused",
    "Registry records a reader refused, by reason: stale (not newer than the record held), future (a version far ahead of the clock, readers without keyring), malformed, unsealed, not_authentic",
    Kind::Counter,
);

/// What [`RegistryView::apply`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Newer than what the view held: it is what the view holds now.
    Changed,
    /// The record the view holds, again (a re-publish, or a reader re-reading).
    Same,
    /// Not newer than the record held: refused and counted as `stale`.
    Stale,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: &'static str,
}

/// A shared, cheaply cloned view of the registry. Lookups take a read lock only.
#[derive(Clone, Default)]
pub struct RegistryView {
    state: Arc<RwLock<State>>,
    progress: Arc<Progress>,
    refused: Family<RefusedLabels, Counter>,
    stale_arrived: Arc<tokio::sync::Notify>,
}

/// How far the view has read the topic, so a lookup can wait for what was published
/// before it.
struct Progress {
    /// The next offset to apply, per partition.
    applied: tokio::sync::watch::Sender<HashMap<i32, i64>>,
    /// A client that reads the topic's ends, the topic and its partitions, once
    /// `follow` has them. Not the consumer itself: its connection is busy with long
    /// fetches, which would hold each read of the ends back by up to a second.
    source: OnceLock<(Arc<BaseConsumer>, String, Vec<i32>)>,
    /// The newest topic ends read, and when that read started. One read at a time:
    /// every lookup that arrived before a read started is served by it, so a flood of
    /// unknown ids costs the broker one request per round trip, not one per lookup.
    ends: tokio::sync::Mutex<Option<(Instant, HashMap<i32, i64>)>>,
    /// Topic ends the view could not reach in time. Compaction may remove the last
    /// records of a partition (an old tombstone), so an end is not always reachable:
    /// lookups then stop waiting for it until the topic moves on.
    unreachable: std::sync::Mutex<Option<HashMap<i32, i64>>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            applied: tokio::sync::watch::Sender::new(HashMap::new()),
            source: OnceLock::new(),
            ends: tokio::sync::Mutex::new(None),
            unreachable: std::sync::Mutex::new(None),
        }
    }
}

/// Why [`RegistryView::lookup_current`] could not answer.
#[derive(Debug, Error)]
#[error("cannot read the registry topic's end: {0}")]
pub struct CatchUpError(#[source] KafkaError);

impl RegistryView {
    /// Looks `webhook_id` up in the registry as it stands now: when the view does not
    /// know it, first reads the topic's end and waits (up to `timeout`) until the view
    /// has applied every record published before this call. So a webhook whose entry
    /// the broker acknowledged before a request arrived is not answered unknown,
    /// however recently it was published. An end not reached within `timeout` is
    /// not waited for again (see `Progress::unreachable`): the view's answer stands.
    pub async fn lookup_current(
        &self,
        webhook_id: &str,
        timeout: Duration,
    ) -> Result<Lookup, CatchUpError> {
        let asked = Instant::now();
        let lookup = self.lookup(webhook_id);
        if lookup != Lookup::Unknown {
            return Ok(lookup);
        }
        let Some((consumer, topic, partitions)) = self.progress.source.get() else {
            return Ok(lookup);
        };
        let ends = {
            let mut newest = self.progress.ends.lock().await;
            match newest.as_ref() {
                Some((started, ends)) if *started >= asked => ends.clone(),
                _ => {
                    let started = Instant::now();
                    let ends = read_ends(consumer.clone(), topic.clone(), partitions.clone())
                        .await
                        .map_err(CatchUpError)?;
                    *newest = Some((started, ends.clone()));
                    ends
                }
            }
        };
        let unreachable = || {
            self.progress
                .unreachable
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if unreachable().as_ref() == Some(&ends) {
            return Ok(self.lookup(webhook_id));
        }
        let mut applied = self.progress.applied.subscribe();
        let caught_up = applied.wait_for(|applied| {
            ends.iter()
                .all(|(partition, end)| applied.get(partition).copied().unwrap_or(0) >= *end)
        });
        let reached = tokio::time::timeout(timeout.saturating_sub(asked.elapsed()), caught_up)
            .await
            .is_ok_and(|changed| changed.is_ok());
        if !reached {
            tracing::warn!(
                ?ends,
                "the registry view did not reach the topic's end in time; answering from what it has"
            );
            *unreachable() = Some(ends);
        }
        Ok(self.lookup(webhook_id))
    }

    /// Records that the record at `offset` of `partition` was applied.
    fn applied(&self, partition: i32, offset: i64) {
        self.progress.applied.send_modify(|applied| {
            applied.insert(partition, offset + 1);
        });
    }

    pub fn lookup(&self, webhook_id: &str) -> Lookup {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = state.active.get(webhook_id) {
            Lookup::Active(entry.clone())
        } else if state.deleted.contains(webhook_id) {
            Lookup::Deleted
        } else {
            Lookup::Unknown
        }
    }

    /// The version of the record the view holds for `webhook_id`, active or deleted.
    pub fn version(&self, webhook_id: &str) -> Option<u64> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .versions
            .get(webhook_id)
            .copied()
    }

    /// Applies `record` if it is newer than the record held for its id. Among records of
    /// version 0 (from before versions existed) the last one wins, as it did then; a
    /// versioned record is refused unless its version is greater than the one held, so
    /// a replay of an older sealed record changes nothing. The same version again is
    /// taken as a re-publish when it says the same thing (nothing changes) and refused
    /// as stale when it does not: only a keyholder can seal a version, and the operator
    /// never seals two records of one id at one version.
    pub fn apply(&self, record: impl Into<RegistryRecord>) -> Applied {
        let RegistryRecord { version, update } = record.into();
        let id = update.webhook_id().clone();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&held) = state.versions.get(&id)
            && (version < held || (version == held && held > 0))
        {
            let same = version == held
                && match &update {
                    RegistryUpdate::Upsert(entry) => state
                        .active
                        .get(&id)
                        .is_some_and(|active| active.entry() == &**entry),
                    RegistryUpdate::Deleted { .. } => state.deleted.contains(&id),
                };
            if same {
                return Applied::Same;
            }
            state.stale.insert(id.clone());
            drop(state);
            tracing::warn!(webhook_id = %id, version, held, "refusing a registry record not newer than the one held");
            self.count_refused("stale");
            self.stale_arrived.notify_one();
            return Applied::Stale;
        }
        state.versions.insert(id.clone(), version);
        match update {
            RegistryUpdate::Upsert(entry) => {
                let active = ActiveEntry::new(*entry);
                for err in active.unusable_secrets() {
                    tracing::warn!(webhook_id = %id, %err, "skipping an unusable secret in the registry");
                }
                state.deleted.remove(&id);
                state.active.insert(id, Arc::new(active));
            }
            RegistryUpdate::Deleted { .. } => {
                state.active.remove(&id);
                state.deleted.insert(id);
            }
        }
        Applied::Changed
    }

    /// Waits until a record was refused as stale, then returns the ids refused since
    /// the last call (the operator publishes their records again, so that a replay does
    /// not stay the newest record of its key and outlive, through compaction, what it
    /// replayed).
    pub async fn stale_ids(&self) -> Vec<WebhookId> {
        loop {
            let ids: Vec<WebhookId> = self
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .stale
                .drain()
                .collect();
            if !ids.is_empty() {
                return ids;
            }
            self.stale_arrived.notified().await;
        }
    }

    fn count_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&RefusedLabels { reason }).inc();
    }

    /// Registers [`ENTRIES_REFUSED`] on `registry`: every process that follows the
    /// registry shows it under this one name.
    pub fn register_metrics(&self, registry: &mut Registry) {
        // Present at 0 from the start, so an alert on its increase sees the first one.
        drop(
            self.refused
                .get_or_create(&RefusedLabels { reason: "stale" }),
        );
        ENTRIES_REFUSED.register(registry, self.refused.clone());
    }

    /// How many webhooks are active.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Error)]
pub enum FollowError {
    #[error("cannot create the registry consumer: {0}")]
    Consumer(#[source] KafkaError),
    #[error("cannot read partition {partition} of the registry topic {topic}: {source}")]
    Assign {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
}

/// Reads `topic` from its beginning into `view`, marks the readiness condition
/// `registry` met once every partition was read to the end it had at start, then
/// follows new records until shutdown. `on_update` sees every update the view applied
/// (not the stale ones it refused, nor a re-publish of what it holds).
///
/// Waits (and stays not ready) while the topic does not exist yet. The readiness
/// condition is registered when this is called, before the returned future first runs,
/// so a service cannot look ready before the registry is loaded.
///
/// With `keys`, entries come with their secrets opened (the handler); an entry sealed
/// under a key the keyring does not hold yet is kept aside, the webhook's previous
/// entry stays in force, and it is applied as soon as the keyring gains that key (a
/// rotation reaching the operator before this reader). Without `keys`, entries come
/// without secrets (the consumer), and their versions unauthenticated: one more than an
/// hour ahead of this reader's clock is refused (`reason="future"`).
pub fn follow(
    connection: KafkaConnection,
    topic: String,
    keys: Option<watch::Receiver<Arc<Keyring>>>,
    view: RegistryView,
    readiness: Readiness,
    shutdown: Shutdown,
    on_update: impl Fn(&RegistryUpdate) + Send + 'static,
) -> impl Future<Output = Result<(), FollowError>> + Send {
    readiness.require(READINESS_CONDITION, format!("loading {topic}"));
    follow_topic(
        connection, topic, keys, view, readiness, shutdown, on_update,
    )
}

async fn follow_topic(
    connection: KafkaConnection,
    topic: String,
    mut keys: Option<watch::Receiver<Arc<Keyring>>>,
    view: RegistryView,
    readiness: Readiness,
    shutdown: Shutdown,
    on_update: impl Fn(&RegistryUpdate) + Send + 'static,
) -> Result<(), FollowError> {
    let group = format!("hookline-registry-reader-{}", uuid::Uuid::new_v4().simple());
    let mut config = client_config(&connection, "hookline-registry-reader");
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: Arc<StreamConsumer> = Arc::new(config.create().map_err(FollowError::Consumer)?);

    let Some(ends) = partition_ends(&consumer, &topic, &readiness, &shutdown).await? else {
        return Ok(());
    };
    assign_from_beginning(&consumer, &topic, ends.keys().copied())?;
    let probe: BaseConsumer = client_config(&connection, "hookline-registry-ends")
        .create()
        .map_err(FollowError::Consumer)?;
    // A second `follow` of the same view keeps the first source; views are followed once.
    let _ = view.progress.source.set((
        Arc::new(probe),
        topic.clone(),
        ends.keys().copied().collect(),
    ));
    let mut follower = Follower {
        // Without a keyring, versions are not authenticated (see UNAUTHENTICATED_VERSION_LEAD).
        authenticated: keys.is_some(),
        pending: HashMap::new(),
        unread: ends.into_iter().filter(|(_, end)| *end > 0).collect(),
        view,
        readiness,
        topic,
        on_update,
    };
    follower.loaded_up_to(None);
    loop {
        let keys_changed = async {
            match keys.as_mut() {
                Some(keys) => keys.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let message = tokio::select! {
            message = consumer.recv() => message,
            changed = keys_changed => {
                if changed && let Some(keys) = &keys {
                    let keyring = keys.borrow().clone();
                    apply_pending(&mut follower.pending, &keyring, &follower.view, &follower.on_update);
                } else {
                    // The keyring's watcher stopped (shutdown): keep the keys as they are.
                    keys = None;
                }
                continue;
            }
            () = shutdown.wait() => return Ok(()),
        };
        match message {
            Ok(message) => {
                let keyring = keys.as_ref().map(|keys| keys.borrow().clone());
                follower.read(&message, keyring.as_deref());
            }
            // librdkafka reconnects by itself; the view stays as it was meanwhile.
            Err(err) => tracing::warn!(%err, topic = %follower.topic, "registry consumer error"),
        }
    }
}

/// Reads every partition of `topic` from its first offset.
fn assign_from_beginning(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: impl Iterator<Item = i32>,
) -> Result<(), FollowError> {
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|source| FollowError::Assign {
                topic: topic.to_owned(),
                partition,
                source,
            })?;
    }
    consumer
        .assign(&assignment)
        .map_err(|source| FollowError::Assign {
            topic: topic.to_owned(),
            partition: -1,
            source,
        })
}

/// What following the registry topic keeps between records.
struct Follower<F> {
    authenticated: bool,
    /// Values sealed under a key not in the keyring yet, per webhook id.
    pending: HashMap<String, Vec<u8>>,
    /// The end offset of each partition not read to its end since start.
    unread: HashMap<i32, i64>,
    view: RegistryView,
    readiness: Readiness,
    topic: String,
    on_update: F,
}

impl<F: Fn(&RegistryUpdate)> Follower<F> {
    /// Applies one record of the topic, or keeps it aside, or counts why it is refused.
    fn read(&mut self, message: &impl Message, keyring: Option<&Keyring>) {
        match decode(message.key(), message.payload(), keyring) {
            Ok(record)
                if !self.authenticated
                    && record.version
                        > version_at(chrono::Utc::now() + UNAUTHENTICATED_VERSION_LEAD) =>
            {
                tracing::warn!(
                    webhook_id = %record.update.webhook_id(),
                    version = record.version,
                    "refusing a registry record whose version is far ahead of this reader's clock"
                );
                self.view.count_refused("future");
            }
            Ok(record) => {
                self.pending.remove(record.update.webhook_id().as_str());
                apply_and_tell(&self.view, record, &self.on_update);
            }
            Err(err) if err.is_unknown_key() => {
                tracing::warn!(
                    error = %err,
                    offset = message.offset(),
                    "keeping the webhook's previous registry entry until the keyring has this key"
                );
                if let (Some(Ok(id)), Some(value)) =
                    (message.key().map(std::str::from_utf8), message.payload())
                {
                    self.pending.insert(id.to_owned(), value.to_vec());
                }
            }
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    partition = message.partition(),
                    offset = message.offset(),
                    "skipping a registry record that cannot be decoded"
                );
                self.view.count_refused(err.reason());
            }
        }
        self.view.applied(message.partition(), message.offset());
        self.loaded_up_to(Some((message.partition(), message.offset())));
    }

    /// Marks the registry ready once every partition was read to the end it had at
    /// start (at once if it was empty).
    fn loaded_up_to(&mut self, read: Option<(i32, i64)>) {
        let was_loading = !self.unread.is_empty();
        if let Some((partition, offset)) = read
            && self
                .unread
                .get(&partition)
                .is_some_and(|end| offset + 1 >= *end)
        {
            self.unread.remove(&partition);
        }
        if self.unread.is_empty() && (was_loading || read.is_none()) {
            if was_loading {
                tracing::info!(webhooks = self.view.len(), topic = %self.topic, "registry loaded");
            }
            self.readiness.set_ready(READINESS_CONDITION);
        }
    }
}

/// Applies the entries kept aside that `keyring` now opens.
fn apply_pending(
    pending: &mut HashMap<String, Vec<u8>>,
    keyring: &Keyring,
    view: &RegistryView,
    on_update: &impl Fn(&RegistryUpdate),
) {
    pending.retain(
        |id, value| match decode(Some(id.as_bytes()), Some(value), Some(keyring)) {
            Ok(record) => {
                tracing::info!(webhook_id = %id, "registry entry applied after a keyring change");
                apply_and_tell(view, record, on_update);
                false
            }
            Err(err) if err.is_unknown_key() => true,
            Err(err) => {
                tracing::warn!(error = %err, "dropping a registry entry kept for a keyring change");
                view.count_refused(err.reason());
                false
            }
        },
    );
}

/// Applies `record`, then tells `on_update` if it changed the view. Applied first:
/// what `on_update` does (forgetting a deleted Webhook's series, say) is not undone by
/// a lookup that still found it active.
fn apply_and_tell(
    view: &RegistryView,
    record: RegistryRecord,
    on_update: &impl Fn(&RegistryUpdate),
) {
    let update = record.update.clone();
    if view.apply(record) == Applied::Changed {
        on_update(&update);
    }
}

/// Waits until `follow` has read the registry to the end it had at start.
pub async fn loaded(readiness: &Readiness) {
    while readiness.unmet().contains_key(READINESS_CONDITION) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The high watermark of each of `partitions` of `topic`.
async fn read_ends(
    consumer: Arc<BaseConsumer>,
    topic: String,
    partitions: Vec<i32>,
) -> Result<HashMap<i32, i64>, KafkaError> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    tokio::task::spawn_blocking(move || {
        partitions
            .into_iter()
            .map(|partition| {
                let (_, high) = consumer.fetch_watermarks(&topic, partition, TIMEOUT)?;
                Ok((partition, high))
            })
            .collect()
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

/// The high watermark of every partition of `topic`, waiting for the topic to exist.
/// `None` when shutdown came first.
async fn partition_ends(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> Result<Option<HashMap<i32, i64>>, FollowError> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let mut delay = Duration::from_millis(200);
    loop {
        let probe = consumer.clone();
        let name = topic.to_owned();
        let ends = tokio::task::spawn_blocking(move || -> Result<HashMap<i32, i64>, KafkaError> {
            let metadata = probe.fetch_metadata(Some(&name), TIMEOUT)?;
            let mut ends = HashMap::new();
            for t in metadata.topics().iter().filter(|t| t.name() == name) {
                if t.error().is_some() {
                    continue;
                }
                for p in t.partitions() {
                    let (_, high) = probe.fetch_watermarks(&name, p.id(), TIMEOUT)?;
                    ends.insert(p.id(), high);
                }
            }
            Ok(ends)
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled));
        match ends {
            Ok(ends) if !ends.is_empty() => return Ok(Some(ends)),
            Ok(_) => readiness.set_not_ready(
                READINESS_CONDITION,
                format!("topic {topic} does not exist yet"),
            ),
            Err(err) => {
                readiness.set_not_ready(READINESS_CONDITION, format!("cannot read {topic}: {err}"))
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return Ok(None),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::registry::RegistryEntry;
    use hookline_testkit::fixtures::registry_entry;

    fn entry() -> RegistryEntry {
        registry_entry("9b2f")
    }

    #[test]
    fn lookups_tell_active_deleted_and_unknown_apart() {
        let view = RegistryView::default();
        assert_eq!(view.lookup("9b2f"), Lookup::Unknown);
        view.apply(RegistryUpdate::Upsert(Box::new(entry())));
        assert!(
            matches!(view.lookup("9b2f"), Lookup::Active(e) if e.customer_id == "ben@webhooksystem")
        );
        assert_eq!(view.len(), 1);
        view.apply(RegistryUpdate::Deleted {
            webhook_id: "9b2f".into(),
        });
        assert_eq!(view.lookup("9b2f"), Lookup::Deleted);
        assert!(view.is_empty());
        view.apply(RegistryUpdate::Upsert(Box::new(entry())));
        assert!(
            matches!(view.lookup("9b2f"), Lookup::Active(_)),
            "an unversioned entry after an unversioned deletion: the last one wins, as before versions"
        );
    }

    fn at(version: u64, update: RegistryUpdate) -> RegistryRecord {
        RegistryRecord { version, update }
    }

    fn upsert(version: u64, change: impl FnOnce(&mut RegistryEntry)) -> RegistryRecord {
        let mut e = entry();
        change(&mut e);
        at(version, RegistryUpdate::Upsert(Box::new(e)))
    }

    fn deleted(version: u64) -> RegistryRecord {
        at(
            version,
            RegistryUpdate::Deleted {
                webhook_id: "9b2f".into(),
            },
        )
    }

    fn stale_count(view: &RegistryView) -> u64 {
        view.refused
            .get_or_create(&RefusedLabels { reason: "stale" })
            .get()
    }

    fn suspended(view: &RegistryView) -> Option<bool> {
        match view.lookup("9b2f") {
            Lookup::Active(e) => Some(e.suspended),
            _ => None,
        }
    }

    #[test]
    fn an_older_version_is_refused_and_counted_a_newer_one_applied() {
        let view = RegistryView::default();
        let unsuspended = upsert(5, |_| {});
        assert_eq!(view.apply(unsuspended.clone()), Applied::Changed);
        assert_eq!(
            view.apply(upsert(9, |e| e.suspended = true)),
            Applied::Changed
        );
        assert_eq!(view.apply(unsuspended), Applied::Stale);
        assert_eq!(suspended(&view), Some(true));
        assert_eq!(view.version("9b2f"), Some(9));
        assert_eq!(stale_count(&view), 1);
        assert_eq!(view.apply(upsert(10, |_| {})), Applied::Changed);
        assert_eq!(suspended(&view), Some(false));
    }

    #[test]
    fn the_same_version_applies_once_and_differing_contents_are_stale() {
        let view = RegistryView::default();
        assert_eq!(view.apply(upsert(5, |_| {})), Applied::Changed);
        assert_eq!(view.apply(upsert(5, |_| {})), Applied::Same);
        assert_eq!(stale_count(&view), 0);
        assert_eq!(
            view.apply(upsert(5, |e| e.suspended = true)),
            Applied::Stale
        );
        assert_eq!(suspended(&view), Some(false));
        assert_eq!(view.apply(deleted(5)), Applied::Stale);
        assert_eq!(stale_count(&view), 2);
        assert_eq!(view.apply(deleted(6)), Applied::Changed);
        assert_eq!(view.apply(deleted(6)), Applied::Same);
    }

    #[test]
    fn a_versioned_deletion_is_not_undone_by_an_older_entry_or_a_null_tombstone() {
        let view = RegistryView::default();
        let before_delete = upsert(5, |_| {});
        view.apply(before_delete.clone());
        assert_eq!(view.apply(deleted(6)), Applied::Changed);
        assert_eq!(view.apply(before_delete), Applied::Stale);
        assert_eq!(view.apply(upsert(0, |_| {})), Applied::Stale, "unversioned");
        assert_eq!(view.lookup("9b2f"), Lookup::Deleted);
        assert_eq!(stale_count(&view), 2);
        assert_eq!(
            view.apply(upsert(7, |_| {})),
            Applied::Changed,
            "re-created"
        );
        assert_eq!(view.apply(deleted(0)), Applied::Stale, "a null tombstone");
        assert!(matches!(view.lookup("9b2f"), Lookup::Active(_)));
    }

    #[tokio::test]
    async fn ids_refused_as_stale_are_handed_out_once() {
        let view = RegistryView::default();
        let waiting = tokio::spawn({
            let view = view.clone();
            async move { view.stale_ids().await }
        });
        view.apply(upsert(5, |_| {}));
        view.apply(upsert(4, |_| {}));
        view.apply(upsert(3, |_| {}));
        assert_eq!(waiting.await.unwrap(), ["9b2f"]);
        view.apply(deleted(2));
        assert_eq!(view.stale_ids().await, ["9b2f"]);
        let none_yet = tokio::time::timeout(Duration::from_millis(50), view.stale_ids()).await;
        assert!(none_yet.is_err(), "{none_yet:?}");
    }

    #[test]
    fn any_versioned_record_wins_over_an_unversioned_one() {
        let view = RegistryView::default();
        view.apply(upsert(0, |e| e.suspended = true));
        assert_eq!(view.apply(upsert(1, |_| {})), Applied::Changed);
        assert_eq!(suspended(&view), Some(false));
    }

    #[test]
    fn the_refused_counter_is_listed_under_its_own_name_from_the_start() {
        let view = RegistryView::default();
        let mut unprefixed = Registry::default();
        view.register_metrics(&mut unprefixed);
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &unprefixed).unwrap();
        assert!(
            body.contains(&format!(
                "{}{{reason=\"stale\"}} 0",
                ENTRIES_REFUSED.exported()
            )),
            "{body}"
        );
    }
}
