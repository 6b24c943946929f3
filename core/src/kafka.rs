//! Kafka client settings and topic management shared by every service, so that
//! delivery guarantees are decided once.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

use crate::ops::Readiness;
use crate::shutdown::Shutdown;

#[derive(Debug, Error)]
pub enum TopicError {
    #[error("cannot create the Kafka admin client for {bootstrap}: {source}")]
    Client {
        bootstrap: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot create topics on {bootstrap}: {source}")]
    Request {
        bootstrap: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot create topic {topic}: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Settings every client shares.
pub fn client_config(bootstrap_servers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("client.id", client_id)
        .set("broker.address.family", "v4");
    config
}

/// A producer that loses nothing it acknowledged: every in-sync replica must have a
/// message (`acks=all`) and retries cannot duplicate or reorder (idempotence).
/// A short linger batches concurrent requests without adding visible latency.
pub fn reliable_producer_config(
    bootstrap_servers: &str,
    client_id: &str,
    delivery_timeout: Duration,
) -> ClientConfig {
    let mut config = client_config(bootstrap_servers, client_id);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        );
    config
}

/// A consumer that commits offsets only when told to, after its work is durable.
pub fn manual_commit_consumer_config(
    bootstrap_servers: &str,
    client_id: &str,
    group_id: &str,
) -> ClientConfig {
    let mut config = client_config(bootstrap_servers, client_id);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    config
}

/// A topic Hookline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Log compaction keeps the newest value per key (the registry).
    pub compacted: bool,
}

impl TopicSpec {
    /// A topic of records keyed by webhook id, kept for their retention (events, their
    /// retry tiers, dead letters).
    pub fn events(name: impl Into<String>, partitions: i32, replication: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication,
            compacted: false,
        }
    }

    /// The registry: compacted (the newest entry per webhook stays) on one partition,
    /// since every reader loads it whole.
    pub fn registry(name: impl Into<String>, replication: i32) -> Self {
        Self {
            name: name.into(),
            partitions: 1,
            replication,
            compacted: true,
        }
    }
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    bootstrap_servers: &str,
    topics: &[TopicSpec],
    timeout: Duration,
) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap_servers, "hookline-admin")
            .create()
            .map_err(|source| TopicError::Client {
                bootstrap: bootstrap_servers.to_owned(),
                source,
            })?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|spec| {
            let topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            );
            if spec.compacted {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(|source| TopicError::Request {
            bootstrap: bootstrap_servers.to_owned(),
            source,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Topic { topic, code }),
        }
    }
    Ok(())
}

/// The value of header `name` as UTF-8, if the message has it.
pub fn header_str<'m, M: Message>(message: &'m M, name: &str) -> Option<&'m str> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| header.value)
        .and_then(|value| std::str::from_utf8(value).ok())
}

/// Asks the cluster for its metadata: succeeds once a broker answers.
pub async fn check_reachable(bootstrap_servers: &str, timeout: Duration) -> Result<(), KafkaError> {
    let config = client_config(bootstrap_servers, "hookline-probe");
    tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = config.create()?;
        rdkafka::consumer::Consumer::fetch_metadata(&consumer, None, timeout).map(|_| ())
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

/// Keeps the readiness condition `kafka` in step with whether the cluster answers,
/// checking every few seconds until shutdown.
pub async fn watch_reachability(
    bootstrap_servers: String,
    readiness: Readiness,
    shutdown: Shutdown,
) {
    const INTERVAL: Duration = Duration::from_secs(5);
    readiness.require(READINESS_CONDITION, "no answer from the Kafka cluster yet");
    while !shutdown.is_triggered() {
        match check_reachable(&bootstrap_servers, INTERVAL).await {
            Ok(()) => readiness.set_ready(READINESS_CONDITION),
            Err(err) => {
                readiness.set_not_ready(READINESS_CONDITION, format!("{bootstrap_servers}: {err}"))
            }
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            () = shutdown.wait() => {}
        }
    }
}

/// The name of the readiness condition `watch_reachability` maintains.
pub const READINESS_CONDITION: &str = "kafka";
