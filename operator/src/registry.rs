//! Publishes registry entries to the log-compacted topic `hookline.registry`. The
//! operator is its only writer; an entry is sent only when it changed or when the
//! keyring's primary key changed (a rotation re-seals every entry), and a delete is a
//! versioned deletion record.
//!
//! Every record gets a version greater than any this webhook id had, so readers can
//! refuse a replay of an older one. The version is the time in microseconds, or the
//! last version of the id plus one when that is greater: the clock keeps versions
//! growing across restarts and leader changes without any state of the operator's own,
//! and the last version guards against a clock that lags the one of the leader before.
//! That last version is read from the topic itself, which every operator replica
//! follows from its start (a [`RegistryView`] opened with the keyring, so only versions
//! a keyholder sealed count): a leader taking over has read everything the previous one
//! published before the Lease let it act.
//!
//! A replay is refused by every reader, but it is the newest record of its key, and
//! compaction keeps only that one: a reader starting after compaction would read the
//! replay alone. So the leader publishes again, with a new version, the record a
//! replay tried to roll back ([`RegistryPublisher::reassert_after_replays`]).
//!
//! Deletions are never Kafka's null tombstone: compaction drops a tombstone after
//! `delete.retention.ms`, and a reader starting after that would not know the id was
//! deleted, so a replayed older entry would revive it. A deletion record is an
//! ordinary value that compaction keeps as the newest of its key: the cost is one small
//! record (about 200 bytes) kept per deleted Webhook.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hookline_core::ids::WebhookId;
use hookline_core::registry::{self, Keyring, RegistryEntry};
use hookline_runtime::kafka::{KafkaConnection, reliable_producer_config};
use hookline_runtime::producer::AckedProducer;
use hookline_runtime::registry_view::{Lookup, RegistryView};
use hookline_runtime::shutdown::Shutdown;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use thiserror::Error;
use tokio::sync::{Mutex, watch};

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("cannot create the registry producer: {0}")]
    Producer(#[source] KafkaError),
    #[error("Kafka did not acknowledge the registry entry of webhook {webhook_id}: {source}")]
    NotAcknowledged {
        webhook_id: String,
        #[source]
        source: KafkaError,
    },
}

/// An entry Kafka acknowledged, and the key its secrets were sealed under.
#[derive(Clone)]
struct Published {
    entry: RegistryEntry,
    key_id: String,
}

#[derive(Default)]
struct State {
    /// The last entry acknowledged per webhook, compared without `updated_at`.
    published: HashMap<WebhookId, Published>,
    /// The last version this process gave each webhook id, sent or not.
    versions: HashMap<String, u64>,
}

pub struct RegistryPublisher {
    producer: AckedProducer,
    topic: String,
    keys: watch::Receiver<Arc<Keyring>>,
    /// The registry topic as followed since this process started.
    topic_view: RegistryView,
    state: Mutex<State>,
    /// Entries acknowledged under a key other than the primary one: 0 once a rotation
    /// re-sealed everything and the old key may go.
    sealed_with_old_key: Gauge,
}

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

impl RegistryPublisher {
    /// A publisher writing to `topic` (normally `hookline.registry`), sealing secrets
    /// with the primary key of `keys`, giving each record a version above the one
    /// `topic_view` (that topic, followed with `hookline_runtime::registry_view::follow`) holds for its id.
    pub fn with_topic(
        connection: &KafkaConnection,
        topic: &str,
        keys: watch::Receiver<Arc<Keyring>>,
        topic_view: RegistryView,
        sealed_with_old_key: Gauge,
    ) -> Result<Self, PublishError> {
        let config =
            reliable_producer_config(connection, "hookline-operator-registry", DELIVERY_TIMEOUT);
        let producer =
            AckedProducer::new(&config, "kafka-registry").map_err(PublishError::Producer)?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            keys,
            topic_view,
            state: Mutex::default(),
            sealed_with_old_key,
        })
    }

    /// Sends `entry` unless the same content was acknowledged before under the
    /// current primary key. Returns whether it was sent.
    pub async fn publish(&self, entry: &RegistryEntry) -> Result<bool, PublishError> {
        let keyring = self.keys.borrow().clone();
        if self
            .state
            .lock()
            .await
            .published
            .get(&entry.webhook_id)
            .is_some_and(|previous| {
                previous.key_id == keyring.primary_id() && same_content(&previous.entry, entry)
            })
        {
            return Ok(false);
        }
        self.send(entry, &keyring).await?;
        Ok(true)
    }

    async fn send(&self, entry: &RegistryEntry, keyring: &Keyring) -> Result<(), PublishError> {
        self.send_entry(entry, keyring, Claim::Always)
            .await
            .map(drop)
    }

    /// Sends `entry` under a new version, if `claim` allows; returns whether it did.
    async fn send_entry(
        &self,
        entry: &RegistryEntry,
        keyring: &Keyring,
        claim: Claim,
    ) -> Result<bool, PublishError> {
        let sent = self
            .produce(&entry.webhook_id, claim, |version| {
                registry::encode(entry, version, keyring)
            })
            .await?;
        if sent {
            let mut state = self.state.lock().await;
            state.published.insert(
                entry.webhook_id.clone(),
                Published {
                    entry: entry.clone(),
                    key_id: keyring.primary_id().to_owned(),
                },
            );
            self.count_old_key(&state.published);
        }
        Ok(sent)
    }

    /// Sends the deletion of `webhook_id` under a new version, if `claim` allows.
    async fn send_deletion(
        &self,
        webhook_id: &WebhookId,
        claim: Claim,
    ) -> Result<(), PublishError> {
        let keyring = self.keys.borrow().clone();
        let sent = self
            .produce(webhook_id, claim, |version| {
                registry::encode_deletion(webhook_id, version, &keyring)
            })
            .await?;
        if sent {
            let mut state = self.state.lock().await;
            state.published.remove(webhook_id);
            self.count_old_key(&state.published);
        }
        Ok(())
    }

    /// Gives `webhook_id` its next version (see the module's comment) and hands the
    /// record `value` makes of it to the producer, both under the lock: records of one
    /// id reach the topic in the order of their versions, whoever sends them (a
    /// reconcile, a re-seal, a reassertion), so none of them is refused as stale. The
    /// lock is not held while Kafka acknowledges: held, it made every publish wait for
    /// the one before (a cold start of 1,000 Webhooks took 48 s with 100 reconciles at
    /// once).
    async fn produce(
        &self,
        webhook_id: &str,
        claim: Claim,
        value: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<bool, PublishError> {
        let not_acknowledged = |source| PublishError::NotAcknowledged {
            webhook_id: webhook_id.to_owned(),
            source,
        };
        let delivery = {
            let mut state = self.state.lock().await;
            let held = self.topic_view.version(webhook_id);
            let own = state.versions.get(webhook_id).copied();
            // A record of this process newer than the one read back is on its way: it
            // will be the newest record of the key, and may say something newer still.
            if claim == Claim::UnlessOwnPending && own > held {
                return Ok(false);
            }
            let version =
                next_version(held.max(own).unwrap_or(0), registry::version_at(Utc::now()));
            state.versions.insert(webhook_id.to_owned(), version);
            let bytes = value(version);
            self.producer
                .send(
                    FutureRecord::to(&self.topic)
                        .key(webhook_id)
                        .payload(&bytes),
                )
                .map_err(not_acknowledged)?
        };
        delivery.await.map(|_| true).map_err(not_acknowledged)
    }

    /// Publishes again, under a new version, the record the topic's readers hold for
    /// each id a replay was refused for, until shutdown. The leader alone runs this.
    pub async fn reassert_after_replays(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            let ids = tokio::select! {
                ids = self.topic_view.stale_ids() => ids,
                () = shutdown.wait() => return,
            };
            for id in ids {
                tracing::warn!(webhook_id = %id, "publishing the registry record again after a replay of an older one");
                let sent = match self.topic_view.lookup(&id) {
                    Lookup::Active(entry) => {
                        let keyring = self.keys.borrow().clone();
                        self.send_entry(&entry, &keyring, Claim::UnlessOwnPending)
                            .await
                            .map(drop)
                    }
                    Lookup::Deleted => self.send_deletion(&id, Claim::UnlessOwnPending).await,
                    Lookup::Unknown => Ok(()),
                };
                if let Err(err) = sent {
                    tracing::warn!(%err, "cannot publish a registry record again after a replay of an older one");
                }
            }
        }
    }

    fn count_old_key(&self, published: &HashMap<WebhookId, Published>) {
        let primary = self.keys.borrow().primary_id().to_owned();
        let old = published.values().filter(|p| p.key_id != primary).count();
        self.sealed_with_old_key
            .set(i64::try_from(old).unwrap_or(i64::MAX));
    }

    /// Re-seals, under the primary key, every entry this process published under
    /// another one. Returns how many were re-sent; an entry Kafka did not acknowledge
    /// stays counted as old and is tried again at the next keyring change or reconcile.
    pub async fn reseal(&self) -> usize {
        let keyring = self.keys.borrow().clone();
        let stale: Vec<RegistryEntry> = {
            let state = self.state.lock().await;
            self.count_old_key(&state.published);
            state
                .published
                .values()
                .filter(|p| p.key_id != keyring.primary_id())
                .map(|p| p.entry.clone())
                .collect()
        };
        let mut resent = 0;
        for entry in &stale {
            match self.send(entry, &keyring).await {
                Ok(()) => resent += 1,
                Err(err) => tracing::warn!(%err, "cannot re-seal a registry entry"),
            }
        }
        resent
    }

    /// Re-seals every entry each time the keyring's primary key changes, until shutdown.
    pub async fn reseal_on_rotation(self: Arc<Self>, shutdown: Shutdown) {
        let mut keys = self.keys.clone();
        let mut primary = keys.borrow().primary_id().to_owned();
        loop {
            tokio::select! {
                changed = keys.changed() => if changed.is_err() { return },
                () = shutdown.wait() => return,
            }
            let now = keys.borrow().primary_id().to_owned();
            if now == primary {
                continue;
            }
            tracing::info!(from = %primary, to = %now, "registry primary key changed, re-sealing every entry");
            primary = now;
            let resent = self.reseal().await;
            tracing::info!(resent, key = %primary, "registry entries re-sealed");
        }
    }

    /// The last entry Kafka acknowledged for `webhook_id` in this process's life.
    pub async fn last_published(&self, webhook_id: &str) -> Option<RegistryEntry> {
        self.state
            .lock()
            .await
            .published
            .get(webhook_id)
            .map(|p| p.entry.clone())
    }

    /// Sends the deletion record that tells readers the webhook is gone.
    pub async fn remove(&self, webhook_id: &WebhookId) -> Result<(), PublishError> {
        self.send_deletion(webhook_id, Claim::Always).await
    }
}

/// Whether a send takes a new version whatever else this process has in flight.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claim {
    Always,
    /// Not when a record of this process newer than the topic's is on its way.
    UnlessOwnPending,
}

/// The version after `held`: the clock (`now`, in microseconds) when it is ahead,
/// else one more than `held`, so a lagging clock cannot give a version readers refuse.
fn next_version(held: u64, now: u64) -> u64 {
    held.saturating_add(1).max(now)
}

fn same_content(a: &RegistryEntry, b: &RegistryEntry) -> bool {
    RegistryEntry {
        updated_at: b.updated_at,
        ..a.clone()
    } == *b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_clock_and_never_fall_behind_the_last_one() {
        assert_eq!(
            next_version(0, 1_700_000_000_000_000),
            1_700_000_000_000_000
        );
        assert_eq!(
            next_version(41, 1_700_000_000_000_000),
            1_700_000_000_000_000
        );
        // A leader whose clock lags the one before it by an hour.
        let before = 1_700_003_600_000_000;
        assert_eq!(next_version(before, 1_700_000_000_000_000), before + 1);
        assert_eq!(next_version(u64::MAX, 0), u64::MAX);
    }
}
