//! Against the real broker: the operator's registry publisher gives every record a version
//! above the last one on the topic, also after a restart behind a leader whose clock ran
//! ahead; and when someone who can write the topic replays an older record, the publisher
//! answers with the record it replayed over, newer, so the replay is not the newest record
//! of its key (the one compaction keeps).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::Utc;
use hookline_api::topics::TopicSpec;
use hookline_core::registry::{self, Keyring, RegistryEntry, RegistryRecord, RegistryUpdate};
use hookline_operator::registry::RegistryPublisher;
use hookline_runtime::kafka::{KafkaConnection, client_config, ensure_topics};
use hookline_runtime::ops::Readiness;
use hookline_runtime::registry_view::{Lookup, RegistryView};
use hookline_runtime::shutdown::Shutdown;
use hookline_testkit::fixtures::registry_entry;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(20);

fn kafka() -> KafkaConnection {
    KafkaConnection::from_vars(&hookline_testkit::stack().vars).expect("the stack's Kafka settings")
}

static KEY: LazyLock<String> = LazyLock::new(Keyring::generate_key);

fn keyring() -> Keyring {
    Keyring::new("k1", [("k1", KEY.as_str())]).expect("a keyring")
}

fn entry(id: &str, customer: &str) -> RegistryEntry {
    RegistryEntry {
        customer_id: customer.into(),
        ..registry_entry(id)
    }
}

/// An operator replica as `service::run` wires one: the topic followed into a view, a
/// publisher versioning from it, answering replays.
struct Operator {
    publisher: Arc<RegistryPublisher>,
    view: RegistryView,
    shutdown: Shutdown,
    _keys: tokio::sync::watch::Sender<Arc<Keyring>>,
}

impl Operator {
    async fn start(topic: &str) -> Self {
        let (keys, receiver) = tokio::sync::watch::channel(Arc::new(keyring()));
        let view = RegistryView::default();
        let readiness = Readiness::default();
        let shutdown = Shutdown::new();
        tokio::spawn(hookline_runtime::registry_view::follow(
            kafka(),
            topic.to_owned(),
            Some(receiver.clone()),
            view.clone(),
            readiness.clone(),
            shutdown.clone(),
            |_| {},
        ));
        tokio::time::timeout(WAIT, hookline_runtime::registry_view::loaded(&readiness))
            .await
            .expect("the registry read to its end");
        let publisher = Arc::new(
            RegistryPublisher::with_topic(
                &kafka(),
                topic,
                receiver,
                view.clone(),
                Gauge::default(),
            )
            .expect("publisher"),
        );
        tokio::spawn(publisher.clone().reassert_after_replays(shutdown.clone()));
        Self {
            publisher,
            view,
            shutdown,
            _keys: keys,
        }
    }
}

/// The newest record of every key on `topic`, as bytes: what a reader starting after
/// compaction would read.
async fn newest_values(topic: &str) -> HashMap<String, Vec<u8>> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&kafka(), "test-registry-reader")
            .set(
                "group.id",
                hookline_testkit::unique_name("test-registry-reader"),
            )
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let (_, end) = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("watermarks");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&assignment).expect("assign");
        let mut newest = HashMap::new();
        let deadline = std::time::Instant::now() + WAIT;
        let mut next = 0;
        while next < end {
            assert!(
                std::time::Instant::now() < deadline,
                "topic not read in time"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("record");
            let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf-8");
            newest.insert(key, message.payload().expect("a value").to_vec());
            next = message.offset() + 1;
        }
        newest
    })
    .await
    .expect("reader task")
}

async fn newest(topic: &str, id: &str) -> RegistryRecord {
    let value = newest_values(topic).await.remove(id).expect("a record");
    registry::decode(Some(id.as_bytes()), Some(&value), Some(&keyring())).expect("authentic")
}

async fn put_raw(topic: &str, id: &str, value: &[u8]) {
    let producer: FutureProducer = client_config(&kafka(), "test-attacker")
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to(topic).key(id).payload(value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(err, _)| err)
        .expect("acknowledged");
}

/// Waits until the newest record of `id` on `topic` satisfies `done`.
async fn newest_becomes(topic: &str, id: &str, done: impl Fn(&RegistryRecord) -> bool) {
    hookline_testkit::eventually(&format!("the newest record of {id}"), WAIT, || async {
        done(&newest(topic, id).await).then_some(())
    })
    .await;
}

async fn topic(name: &str) -> String {
    let topic = hookline_testkit::unique_name(name);
    ensure_topics(
        &kafka(),
        &[TopicSpec::registry(topic.clone(), 1)],
        Duration::from_secs(10),
    )
    .await
    .expect("topic");
    topic
}

#[tokio::test]
async fn a_replayed_record_is_answered_with_the_newer_one_again() {
    let topic = topic("registry-reassert").await;
    let operator = Operator::start(&topic).await;
    let open = entry("wh-a", "ben");
    operator.publisher.publish(&open).await.expect("published");
    let captured = newest_values(&topic)
        .await
        .remove("wh-a")
        .expect("a record");
    let suspended = RegistryEntry {
        suspended: true,
        ..open
    };
    operator
        .publisher
        .publish(&suspended)
        .await
        .expect("published");
    let current = newest(&topic, "wh-a").await;

    put_raw(&topic, "wh-a", &captured).await;
    newest_becomes(&topic, "wh-a", |record| {
        record.version > current.version && record.update == current.update
    })
    .await;
    assert!(matches!(operator.view.lookup("wh-a"), Lookup::Active(e) if e.suspended));

    // A deleted Webhook: the deletion, not the replayed entry, stays the newest record.
    operator
        .publisher
        .remove(&"wh-a".into())
        .await
        .expect("deleted");
    let deletion = newest(&topic, "wh-a").await;
    assert!(matches!(deletion.update, RegistryUpdate::Deleted { .. }));
    assert!(deletion.version > current.version);
    put_raw(&topic, "wh-a", &captured).await;
    newest_becomes(&topic, "wh-a", |record| {
        record.version > deletion.version && record.update == deletion.update
    })
    .await;
    assert_eq!(operator.view.lookup("wh-a"), Lookup::Deleted);
    operator.shutdown.trigger();
}

#[tokio::test]
async fn a_new_leader_publishes_above_what_a_leader_with_a_fast_clock_wrote() {
    let topic = topic("registry-restart").await;
    // The previous leader's clock ran an hour ahead.
    let ahead = registry::version_at(Utc::now() + chrono::Duration::hours(1));
    put_raw(
        &topic,
        "wh-b",
        &registry::encode(&entry("wh-b", "before"), ahead, &keyring()),
    )
    .await;

    let operator = Operator::start(&topic).await;
    operator
        .publisher
        .publish(&entry("wh-b", "after"))
        .await
        .expect("published");
    let published = newest(&topic, "wh-b").await;
    assert_eq!(published.version, ahead + 1);
    hookline_testkit::eventually("the follower applied it", WAIT, || async {
        matches!(operator.view.lookup("wh-b"), Lookup::Active(e) if e.customer_id == "after")
            .then_some(())
    })
    .await;
    operator.shutdown.trigger();
}
