//! The registry cannot be rolled back: whoever can write the registry topic replays the
//! sealed records of a Webhook from before a secret rotation and from before its deletion,
//! and the running handler keeps answering from the newer ones, counting each replay on
//! its /metrics.

mod support;

use std::time::Duration;

use hookline_core::registry::{self, RegistryEntry};
use hookline_core::signature::{self, Scheme};
use hookline_runtime::registry_view::ENTRIES_REFUSED;
use hookline_testkit::fixtures;
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::{Handler, KEYRING, TIMEOUT, entry, stack_kafka};

/// Writes `value` as the record of `id`, as anyone allowed to write the topic can.
async fn put(producer: &FutureProducer, topic: &str, id: &str, value: &[u8]) {
    producer
        .send(
            FutureRecord::to(topic).key(id).payload(value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(err, _)| err)
        .expect("acknowledged");
}

/// Waits until a request signed with `secret` to `id` is answered `status`.
async fn answered(handler: &Handler, id: &str, secret: &str, status: u16) {
    hookline_testkit::eventually(&format!("{id} answered {status}"), TIMEOUT, || async {
        (handler.post_signed(id, secret).await.0.status == status).then_some(())
    })
    .await;
}

/// The runtime's count of registry records refused as not newer than the one held.
fn stale_refusals() -> String {
    format!(r#"{}{{reason="stale"}}"#, ENTRIES_REFUSED.exported())
}

#[tokio::test]
async fn replayed_registry_records_neither_restore_a_secret_nor_revive_a_webhook() {
    let kafka = stack_kafka();
    let handler = Handler::start(&kafka, &[], &[]).await;
    assert_eq!(handler.metric(&stale_refusals()).await, Some(0.0));
    let topic = handler.registry_topic.clone();
    let producer: FutureProducer = hookline_runtime::kafka::client_config(&kafka, "test-attacker")
        .create()
        .expect("producer");

    // A Webhook whose secret is then rotated (the old one leaked, say).
    let (rotated, old_secret) = entry(Scheme::Standard);
    let before_rotation = registry::encode(&rotated, 1, &KEYRING);
    put(&producer, &topic, &rotated.webhook_id, &before_rotation).await;
    answered(&handler, &rotated.webhook_id, &old_secret, 202).await;
    let new_secret = signature::generate_standard_secret();
    let after = RegistryEntry {
        secrets: vec![fixtures::secret(&new_secret)],
        ..rotated.clone()
    };
    put(
        &producer,
        &topic,
        &rotated.webhook_id,
        &registry::encode(&after, 2, &KEYRING),
    )
    .await;
    answered(&handler, &rotated.webhook_id, &new_secret, 202).await;

    // A Webhook that is then deleted.
    let (deleted, deleted_secret) = entry(Scheme::Standard);
    let before_deletion = registry::encode(&deleted, 1, &KEYRING);
    put(&producer, &topic, &deleted.webhook_id, &before_deletion).await;
    answered(&handler, &deleted.webhook_id, &deleted_secret, 202).await;
    put(
        &producer,
        &topic,
        &deleted.webhook_id,
        &registry::encode_deletion(&deleted.webhook_id, 2, &KEYRING),
    )
    .await;
    answered(&handler, &deleted.webhook_id, &deleted_secret, 410).await;

    // The replays, then a marker: once the marker is served, the replays were read.
    put(&producer, &topic, &rotated.webhook_id, &before_rotation).await;
    put(&producer, &topic, &deleted.webhook_id, &before_deletion).await;
    let (marker, marker_secret) = entry(Scheme::Standard);
    put(
        &producer,
        &topic,
        &marker.webhook_id,
        &registry::encode(&marker, 1, &KEYRING),
    )
    .await;
    answered(&handler, &marker.webhook_id, &marker_secret, 202).await;

    let (old, _) = handler.post_signed(&rotated.webhook_id, &old_secret).await;
    assert_eq!(old.status, 401, "the rotated-out secret is accepted again");
    let (new, _) = handler.post_signed(&rotated.webhook_id, &new_secret).await;
    assert_eq!(new.status, 202);
    let (revived, _) = handler
        .post_signed(&deleted.webhook_id, &deleted_secret)
        .await;
    assert_eq!(revived.status, 410, "the deleted Webhook is served again");
    assert_eq!(handler.metric(&stale_refusals()).await, Some(2.0));
    handler.stop().await;
}
