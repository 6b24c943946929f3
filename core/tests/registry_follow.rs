//! Against the real broker: a reader loads the whole registry topic before it reports
//! ready, then follows changes within seconds.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::Utc;
use hookline_core::kafka::{TopicSpec, ensure_topics, reliable_producer_config};
use hookline_core::ops::Readiness;
use hookline_core::registry::{
    self, Keyring, Lookup, RateLimit, RegistryEntry, RegistrySecret, RegistryView,
};
use hookline_core::retry::DeliveryPolicy;
use hookline_core::shutdown::Shutdown;
use hookline_core::signature::Scheme;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn kafka() -> hookline_core::kafka::KafkaConnection {
    hookline_core::kafka::KafkaConnection::from_vars(&hookline_testkit::stack().vars)
        .expect("the stack's Kafka settings")
}

fn entry(id: &str, customer: &str) -> RegistryEntry {
    RegistryEntry {
        webhook_id: id.into(),
        namespace: "ns".into(),
        name: id.into(),
        customer_id: customer.into(),
        url: "http://handler/webhooks/x".into(),
        scheme: Scheme::Standard,
        secrets: vec![RegistrySecret {
            value: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
            expires_at: None,
        }],
        suspended: false,
        rate_limit: RateLimit {
            requests_per_second: 10,
            burst: 10,
        },
        delivery: DeliveryPolicy::default(),
        allowed_source_ranges: vec![],
        generation: 1,
        updated_at: Utc::now(),
    }
}

static KEY: LazyLock<String> = LazyLock::new(Keyring::generate_key);

fn keyring() -> Keyring {
    Keyring::new("k1", [("k1", KEY.as_str())]).expect("a keyring")
}

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
    let encoded = value.map(|entry| registry::encode(entry, keyring));
    let mut record = FutureRecord::<str, Vec<u8>>::to(topic).key(id);
    if let Some(bytes) = &encoded {
        record = record.payload(bytes);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(err, _)| err)
        .expect("acknowledged");
}

#[tokio::test]
async fn loads_everything_before_ready_then_follows_changes() {
    let topic = hookline_testkit::unique_name("registry-follow");
    ensure_topics(
        &kafka(),
        // Two partitions, unlike the registry Hookline creates: the follower must read
        // every partition to its end before it is ready.
        &[TopicSpec {
            partitions: 2,
            ..TopicSpec::registry(topic.clone(), 1)
        }],
        Duration::from_secs(10),
    )
    .await
    .expect("topic");
    let producer: FutureProducer =
        reliable_producer_config(&kafka(), "test", Duration::from_secs(10))
            .create()
            .expect("producer");
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
    let follower = tokio::spawn(registry::follow(
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
    hookline_testkit::eventually(
        "the kept entry applied",
        Duration::from_secs(10),
        || async {
            matches!(view.lookup("wh-7"), Lookup::Active(e) if e.customer_id == "rotated")
                .then_some(())
        },
    )
    .await;

    shutdown.trigger();
    follower.await.expect("task").expect("follow ends cleanly");
}
