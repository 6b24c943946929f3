//! Publishes registry entries to the log-compacted topic `hookline.registry`. The
//! operator is its only writer; an entry is sent only when it changed or when the
//! keyring's primary key changed (a rotation re-seals every entry), and a delete is a
//! tombstone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookline_core::kafka::{KafkaConnection, reliable_producer_config};
use hookline_core::registry::{self, Keyring, RegistryEntry};
use hookline_core::shutdown::Shutdown;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
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

pub struct RegistryPublisher {
    producer: FutureProducer,
    topic: String,
    keys: watch::Receiver<Arc<Keyring>>,
    /// The last entry acknowledged per webhook, compared without `updated_at`.
    published: Mutex<HashMap<String, Published>>,
    /// Entries acknowledged under a key other than the primary one: 0 once a rotation
    /// re-sealed everything and the old key may go.
    sealed_with_old_key: Gauge,
}

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

impl RegistryPublisher {
    /// A publisher writing to `topic` (normally `hookline.registry`), sealing secrets
    /// with the primary key of `keys`.
    pub fn with_topic(
        connection: &KafkaConnection,
        topic: &str,
        keys: watch::Receiver<Arc<Keyring>>,
        sealed_with_old_key: Gauge,
    ) -> Result<Self, PublishError> {
        let producer =
            reliable_producer_config(connection, "hookline-operator-registry", DELIVERY_TIMEOUT)
                .create()
                .map_err(PublishError::Producer)?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            keys,
            published: Mutex::default(),
            sealed_with_old_key,
        })
    }

    /// Sends `entry` unless the same content was acknowledged before under the
    /// current primary key. Returns whether it was sent.
    pub async fn publish(&self, entry: &RegistryEntry) -> Result<bool, PublishError> {
        let keyring = self.keys.borrow().clone();
        if self
            .published
            .lock()
            .await
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
        // The lock is not held while Kafka acknowledges: held, it made every publish
        // wait for the one before (a cold start of 1,000 Webhooks took 48 s with 100
        // reconciles at once). The controller never reconciles one Webhook twice at
        // once, so two sends of the same webhook id do not race.
        let value = registry::encode(entry, keyring);
        self.producer
            .send(
                FutureRecord::to(&self.topic)
                    .key(&entry.webhook_id)
                    .payload(&value),
                DELIVERY_TIMEOUT,
            )
            .await
            .map_err(|(source, _)| PublishError::NotAcknowledged {
                webhook_id: entry.webhook_id.clone(),
                source,
            })?;
        let mut published = self.published.lock().await;
        published.insert(
            entry.webhook_id.clone(),
            Published {
                entry: entry.clone(),
                key_id: keyring.primary_id().to_owned(),
            },
        );
        self.count_old_key(&published);
        Ok(())
    }

    fn count_old_key(&self, published: &HashMap<String, Published>) {
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
            let published = self.published.lock().await;
            self.count_old_key(&published);
            published
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
        self.published
            .lock()
            .await
            .get(webhook_id)
            .map(|p| p.entry.clone())
    }

    /// Sends the tombstone that tells readers the webhook is gone.
    pub async fn remove(&self, webhook_id: &str) -> Result<(), PublishError> {
        self.producer
            .send(
                FutureRecord::<str, [u8]>::to(&self.topic).key(webhook_id),
                DELIVERY_TIMEOUT,
            )
            .await
            .map_err(|(source, _)| PublishError::NotAcknowledged {
                webhook_id: webhook_id.to_owned(),
                source,
            })?;
        let mut published = self.published.lock().await;
        published.remove(webhook_id);
        self.count_old_key(&published);
        Ok(())
    }
}

fn same_content(a: &RegistryEntry, b: &RegistryEntry) -> bool {
    RegistryEntry {
        updated_at: b.updated_at,
        ..a.clone()
    } == *b
}
