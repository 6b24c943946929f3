//! The readers' side of the registry: an in-memory view loaded fully from the topic
//! before the service reports ready, then kept current by tailing it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use thiserror::Error;

use super::{RegistryEntry, RegistryUpdate, decode};
use crate::kafka::client_config;
use crate::ops::Readiness;
use crate::shutdown::Shutdown;

/// The readiness condition `follow` maintains: met once the topic was read to its end.
pub const READINESS_CONDITION: &str = "registry";

/// What the registry says about one webhook id.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Active(Arc<RegistryEntry>),
    /// It existed and was deleted (the handler answers 410).
    Deleted,
    Unknown,
}

#[derive(Default)]
struct State {
    active: HashMap<String, Arc<RegistryEntry>>,
    deleted: HashSet<String>,
}

/// A shared, cheaply cloned view of the registry. Lookups take a read lock only.
#[derive(Clone, Default)]
pub struct RegistryView {
    state: Arc<RwLock<State>>,
}

impl RegistryView {
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

    pub fn apply(&self, update: RegistryUpdate) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match update {
            RegistryUpdate::Upsert(entry) => {
                state.deleted.remove(&entry.webhook_id);
                state
                    .active
                    .insert(entry.webhook_id.clone(), Arc::from(entry));
            }
            RegistryUpdate::Deleted { webhook_id } => {
                state.active.remove(&webhook_id);
                state.deleted.insert(webhook_id);
            }
        }
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
/// follows new records until shutdown. `on_update` sees every decoded update.
///
/// Waits (and stays not ready) while the topic does not exist yet. The readiness
/// condition is registered when this is called, before the returned future first runs,
/// so a service cannot look ready before the registry is loaded.
pub fn follow(
    bootstrap_servers: String,
    topic: String,
    view: RegistryView,
    readiness: Readiness,
    shutdown: Shutdown,
    on_update: impl Fn(&RegistryUpdate) + Send + 'static,
) -> impl Future<Output = Result<(), FollowError>> + Send {
    readiness.require(READINESS_CONDITION, format!("loading {topic}"));
    follow_topic(
        bootstrap_servers,
        topic,
        view,
        readiness,
        shutdown,
        on_update,
    )
}

async fn follow_topic(
    bootstrap_servers: String,
    topic: String,
    view: RegistryView,
    readiness: Readiness,
    shutdown: Shutdown,
    on_update: impl Fn(&RegistryUpdate) + Send + 'static,
) -> Result<(), FollowError> {
    let group = format!("hookline-registry-reader-{}", uuid::Uuid::new_v4().simple());
    let mut config = client_config(&bootstrap_servers, "hookline-registry-reader");
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: Arc<StreamConsumer> = Arc::new(config.create().map_err(FollowError::Consumer)?);

    let Some(ends) = partition_ends(&consumer, &topic, &readiness, &shutdown).await? else {
        return Ok(());
    };
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment
            .add_partition_offset(&topic, *partition, Offset::Beginning)
            .map_err(|source| FollowError::Assign {
                topic: topic.clone(),
                partition: *partition,
                source,
            })?;
    }
    consumer
        .assign(&assignment)
        .map_err(|source| FollowError::Assign {
            topic: topic.clone(),
            partition: -1,
            source,
        })?;
    let mut unread: HashMap<i32, i64> = ends.into_iter().filter(|(_, end)| *end > 0).collect();
    if unread.is_empty() {
        readiness.set_ready(READINESS_CONDITION);
    }
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message,
            () = shutdown.wait() => return Ok(()),
        };
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                // librdkafka reconnects by itself; the view stays as it was meanwhile.
                tracing::warn!(%err, %topic, "registry consumer error");
                continue;
            }
        };
        match decode(message.key(), message.payload()) {
            Ok(update) => {
                on_update(&update);
                view.apply(update);
            }
            Err(err) => tracing::warn!(
                error = %err,
                partition = message.partition(),
                offset = message.offset(),
                "skipping a registry record that cannot be decoded"
            ),
        }
        if !unread.is_empty() {
            if let Some(end) = unread.get(&message.partition())
                && message.offset() + 1 >= *end
            {
                unread.remove(&message.partition());
            }
            if unread.is_empty() {
                tracing::info!(webhooks = view.len(), %topic, "registry loaded");
                readiness.set_ready(READINESS_CONDITION);
            }
        }
    }
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
    use crate::registry::tests::entry;

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
            "re-created after delete"
        );
    }
}
