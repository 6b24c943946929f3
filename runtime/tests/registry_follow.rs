//! Against the real broker: a reader loads the whole registry topic before it reports
//! ready, then follows changes within seconds; a replay of an older sealed record,
//! written to the topic as anyone with write access could, changes nothing.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::Utc;
use hookline_api::topics::TopicSpec;
use hookline_core::registry::{self, Keyring, RegistryEntry, RegistrySecret};
use hookline_runtime::kafka::{ensure_topics, reliable_producer_config};
use hookline_runtime::ops::Readiness;
use hookline_runtime::registry_view::{ENTRIES_REFUSED, Lookup, RegistryView};
use hookline_runtime::shutdown::Shutdown;
use hookline_testkit::fixtures::registry_entry;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn kafka() -> hookline_runtime::kafka::KafkaConnection {
    hookline_runtime::kafka::KafkaConnection::from_vars(&hookline_testkit::stack().vars)
        .expect("the stack's Kafka settings")
}

fn entry(id: &str, customer: &str) -> RegistryEntry {
    RegistryEntry {
        customer_id: customer.into(),
        ..registry_entry(id)
    }
}

static KEY: LazyLock<String> = LazyLock::new(Keyring::generate_key);

fn keyring() -> Keyring {
    Keyring::new("k1", [("k1", KEY.as_str())]).expect("a keyring")
}

/// Publishes an entry (or Kafka's null tombstone) as the previous release did: no version.
async fn put(producer: &FutureProducer, topic: &str, id: &str, value: Option<&RegistryEntry>) {
    put_sealed(producer, topic, id, value, &keyring()).await;
}

async fn put_sealed(
    producer: &FutureProducer,
    topic: &str,
    id: &str,
    value: Option<&RegistryEntry>,
    keyring: &Keyring,
) {
    let encoded = value.map(|entry| registry::encode(entry, 0, keyring));
    put_raw(producer, topic, id, encoded.as_deref()).await;
}

/// Writes `value` to the topic as it is: what anyone allowed to write the topic can do.
async fn put_raw(producer: &FutureProducer, topic: &str, id: &str, value: Option<&[u8]>) {
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(id);
    if let Some(bytes) = value {
        record = record.payload(bytes);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(err, _)| err)
        .expect("acknowledged");
}

/// A new registry topic of `partitions`, and a producer to write it.
async fn topic_and_producer(name: &str, partitions: i32) -> (String, FutureProducer) {
    let topic = hookline_testkit::unique_name(name);
    ensure_topics(
        &kafka(),
        &[TopicSpec {
            partitions,
            ..TopicSpec::registry(topic.clone(), 1)
        }],
        Duration::from_secs(10),
    )
    .await
    .expect("topic");
    let producer = reliable_producer_config(&kafka(), "test", Duration::from_secs(10))
        .create()
        .expect("producer");
    (topic, producer)
}

/// Waits until `view` holds an entry of `id` for `customer`.
async fn customer_becomes(view: &RegistryView, id: &str, customer: &str) {
    hookline_testkit::eventually(
        &format!("{id} of {customer}"),
        Duration::from_secs(10),
        || async {
            matches!(view.lookup(id), Lookup::Active(e) if e.customer_id == customer).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn loads_everything_before_ready_then_follows_changes() {
    // Two partitions, unlike the registry Hookline creates: the follower must read
    // every partition to its end before it is ready.
    let (topic, producer) = topic_and_producer("registry-follow", 2).await;
    for i in 0..50 {
        put(
            &producer,
            &topic,
            &format!("wh-{i}"),
            Some(&entry(&format!("wh-{i}"), "first")),
        )
        .await;
    }
    put(&producer, &topic, "wh-7", Some(&entry("wh-7", "second"))).await;
    put(&producer, &topic, "wh-9", None).await;
    put(
        &producer,
        &topic,
        "wh-x",
        Some(&entry("wh-y", "mismatched key")),
    )
    .await;

    let view = RegistryView::default();
    let readiness = Readiness::default();
    let shutdown = Shutdown::new();
    let (keys, receiver) = tokio::sync::watch::channel(Arc::new(keyring()));
    let follower = tokio::spawn(hookline_runtime::registry_view::follow(
        kafka(),
        topic.clone(),
        Some(receiver),
        view.clone(),
        readiness.clone(),
        shutdown.clone(),
        |_| {},
    ));
    hookline_testkit::eventually("the registry loaded", Duration::from_secs(30), || async {
        readiness.is_ready().then_some(())
    })
    .await;
    // Ready means everything written before start is in the view.
    assert_eq!(view.len(), 49);
    assert!(matches!(view.lookup("wh-7"), Lookup::Active(e) if e.customer_id == "second"));
    assert_eq!(view.lookup("wh-9"), Lookup::Deleted);
    assert_eq!(
        view.lookup("wh-x"),
        Lookup::Unknown,
        "a record whose key and id disagree is skipped"
    );

    put(&producer, &topic, "wh-new", Some(&entry("wh-new", "late"))).await;
    put(&producer, &topic, "wh-1", None).await;
    hookline_testkit::eventually("changes followed", Duration::from_secs(10), || async {
        (matches!(view.lookup("wh-new"), Lookup::Active(_))
            && view.lookup("wh-1") == Lookup::Deleted)
            .then_some(())
    })
    .await;

    // An entry the broker acknowledged is found by a lookup made right after, without
    // waiting for the view to follow; an id nobody published is still unknown.
    for i in 0..20 {
        let id = format!("wh-fresh-{i}");
        put(&producer, &topic, &id, Some(&entry(&id, "fresh"))).await;
        let found = view
            .lookup_current(&id, Duration::from_secs(5))
            .await
            .expect("the topic's end is readable");
        assert!(matches!(found, Lookup::Active(_)), "{id}: {found:?}");
    }
    let started = tokio::time::Instant::now();
    let unknown = view
        .lookup_current("wh-never", Duration::from_secs(5))
        .await
        .expect("the topic's end is readable");
    assert_eq!(unknown, Lookup::Unknown);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a caught-up view answers an unknown id without waiting for the timeout"
    );

    // A rotation that reaches the writer first: an entry sealed under a key this
    // reader does not hold yet leaves the previous entry in force, and applies as soon
    // as the reader's keyring gains the key.
    let new_key = Keyring::generate_key();
    let rotated =
        Keyring::new("k2", [("k1", KEY.as_str()), ("k2", new_key.as_str())]).expect("a keyring");
    put_sealed(
        &producer,
        &topic,
        "wh-7",
        Some(&entry("wh-7", "rotated")),
        &rotated,
    )
    .await;
    put(
        &producer,
        &topic,
        "wh-marker",
        Some(&entry("wh-marker", "after")),
    )
    .await;
    hookline_testkit::eventually("the marker followed", Duration::from_secs(10), || async {
        matches!(view.lookup("wh-marker"), Lookup::Active(_)).then_some(())
    })
    .await;
    assert!(
        matches!(view.lookup("wh-7"), Lookup::Active(e) if e.customer_id == "second"),
        "the entry the reader cannot open yet does not replace the one in force"
    );
    keys.send_replace(Arc::new(rotated));
    customer_becomes(&view, "wh-7", "rotated").await;

    shutdown.trigger();
    follower.await.expect("task").expect("follow ends cleanly");
}

/// What [`ENTRIES_REFUSED`] of `view` says for `reason`.
fn refusals(view: &RegistryView, reason: &str) -> u64 {
    let mut metrics = prometheus_client::registry::Registry::default();
    view.register_metrics(&mut metrics);
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &metrics).expect("encoded");
    body.lines()
        .find_map(|line| {
            line.strip_prefix(&format!(
                "{}{{reason=\"{reason}\"}} ",
                ENTRIES_REFUSED.exported()
            ))
        })
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Follows `topic` into a new view until it has read the topic's end; with the keyring
/// (as a handler does) or without (as a consumer does).
async fn follower(
    topic: &str,
    with_keys: bool,
    shutdown: &Shutdown,
) -> (
    RegistryView,
    tokio::task::JoinHandle<Result<(), hookline_runtime::registry_view::FollowError>>,
) {
    let view = RegistryView::default();
    let readiness = Readiness::default();
    let (keys, receiver) = tokio::sync::watch::channel(Arc::new(keyring()));
    let follow = hookline_runtime::registry_view::follow(
        kafka(),
        topic.to_owned(),
        with_keys.then_some(receiver),
        view.clone(),
        readiness.clone(),
        shutdown.clone(),
        |_| {},
    );
    // The keyring's sender lives as long as the follower: dropped, the follower would
    // take it for a shutdown and read on without keys.
    let task = tokio::spawn(async move {
        let result = follow.await;
        drop(keys);
        result
    });
    hookline_testkit::eventually("the registry loaded", Duration::from_secs(30), || async {
        readiness.is_ready().then_some(())
    })
    .await;
    (view, task)
}

#[tokio::test]
async fn a_replayed_older_record_neither_rolls_an_entry_back_nor_revives_a_deleted_one() {
    let (topic, producer) = topic_and_producer("registry-rollback", 1).await;
    let ring = keyring();
    // The entries before: open to anyone, an old secret. Their sealed bytes are what an
    // attacker who can read and write the topic keeps for later.
    let open = entry("wh-a", "before");
    let captured = registry::encode(&open, 1, &ring);
    put_raw(&producer, &topic, "wh-a", Some(&captured)).await;
    let doomed = registry::encode(&entry("wh-b", "before"), 1, &ring);
    put_raw(&producer, &topic, "wh-b", Some(&doomed)).await;
    // Then the operator suspends wh-a, rotates its secret and narrows its sources, and
    // deletes wh-b.
    let locked = RegistryEntry {
        suspended: true,
        secrets: vec![RegistrySecret {
            value: "whsec_S2h5o0XyGq4vXJ3bqQ6cZl1bUvWQ0g5W".into(),
            expires_at: None,
        }],
        allowed_source_ranges: vec!["192.0.2.0/24".into()],
        ..open
    };
    let newer = registry::encode(&locked, 2, &ring);
    put_raw(&producer, &topic, "wh-a", Some(&newer)).await;
    put_raw(
        &producer,
        &topic,
        "wh-b",
        Some(&registry::encode_deletion(&"wh-b".into(), 2, &ring)),
    )
    .await;

    let shutdown = Shutdown::new();
    let (view, first) = follower(&topic, true, &shutdown).await;
    assert!(matches!(view.lookup("wh-a"), Lookup::Active(e) if *e.entry() == locked));
    assert_eq!(view.lookup("wh-b"), Lookup::Deleted);
    assert_eq!(refusals(&view, "stale"), 0);

    // The replays, and Kafka's null tombstone the previous release wrote for a delete.
    put_raw(&producer, &topic, "wh-a", Some(&captured)).await;
    put_raw(&producer, &topic, "wh-b", Some(&doomed)).await;
    put_raw(&producer, &topic, "wh-a", None).await;
    put_raw(
        &producer,
        &topic,
        "wh-marker",
        Some(&registry::encode(&entry("wh-marker", "after"), 1, &ring)),
    )
    .await;
    hookline_testkit::eventually("the marker followed", Duration::from_secs(10), || async {
        matches!(view.lookup("wh-marker"), Lookup::Active(_)).then_some(())
    })
    .await;
    assert!(
        matches!(view.lookup("wh-a"), Lookup::Active(e) if *e.entry() == locked),
        "wh-a rolled back: {:?}",
        view.lookup("wh-a")
    );
    assert_eq!(view.lookup("wh-b"), Lookup::Deleted, "wh-b revived");
    assert_eq!(refusals(&view, "stale"), 3);

    // A reader starting now reads the replays after what they replay: same answer.
    let (fresh, second) = follower(&topic, true, &shutdown).await;
    assert!(matches!(fresh.lookup("wh-a"), Lookup::Active(e) if *e.entry() == locked));
    assert_eq!(fresh.lookup("wh-b"), Lookup::Deleted);
    assert_eq!(refusals(&fresh, "stale"), 3);

    // The operator's next publish wins as before.
    put_raw(
        &producer,
        &topic,
        "wh-a",
        Some(&registry::encode(&entry("wh-a", "resumed"), 3, &ring)),
    )
    .await;
    customer_becomes(&view, "wh-a", "resumed").await;

    shutdown.trigger();
    for task in [first, second] {
        task.await.expect("task").expect("follow ends cleanly");
    }
}

/// A reader without keyring (the consumer) cannot authenticate a version: one far ahead
/// of its clock is refused, or it would hold that record against every real one.
#[tokio::test]
async fn a_reader_without_keys_refuses_a_version_far_ahead_of_its_clock() {
    let (topic, producer) = topic_and_producer("registry-future", 1).await;
    let ring = keyring();
    let now = registry::version_at(Utc::now());
    let forged = {
        let mut fields: serde_json::Value =
            serde_json::from_slice(&registry::encode(&entry("wh-c", "forged"), now, &ring))
                .expect("JSON");
        fields["version"] = u64::MAX.into();
        serde_json::to_vec(&fields).expect("JSON")
    };
    put_raw(&producer, &topic, "wh-c", Some(&forged)).await;
    let shutdown = Shutdown::new();
    let (view, task) = follower(&topic, false, &shutdown).await;
    assert_eq!(view.lookup("wh-c"), Lookup::Unknown);
    assert_eq!(refusals(&view, "future"), 1);

    let real = registry::encode(
        &entry("wh-c", "real"),
        registry::version_at(Utc::now()),
        &ring,
    );
    put_raw(&producer, &topic, "wh-c", Some(&real)).await;
    customer_becomes(&view, "wh-c", "real").await;
    shutdown.trigger();
    task.await.expect("task").expect("follow ends cleanly");
}
