//! A rotation of the registry key during traffic, against the stack's Kafka: the
//! operator re-seals under the new key before this handler has it, the handler's
//! keyring gains the new key, then loses the old one. No valid request is refused
//! and every 202 is in the events topic.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookline_core::record_headers;
use hookline_core::registry::Keyring;
use hookline_core::signature::{Scheme, generate_standard_secret};
use hookline_testkit::fixtures;
use support::{Handler, KEY, KEY_ID};
use tokio::time::Instant;

const SENDERS: usize = 4;
const TRAFFIC: Duration = Duration::from_secs(14);

#[derive(Default)]
struct Outcomes {
    accepted: Vec<String>,
    refused: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_registry_key_during_traffic_refuses_nothing_and_loses_nothing() {
    let kafka = support::stack_kafka();
    let (handler, webhook, secret) = Handler::start_one(&kafka, Scheme::Standard, &[]).await;
    let handler = Arc::new(handler);

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop_at = Instant::now() + TRAFFIC;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (handler, outcomes) = (handler.clone(), outcomes.clone());
        let (id, secret) = (webhook.webhook_id.clone(), secret.clone());
        senders.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let (response, msg_id) = handler.post_signed(&id, &secret).await;
                {
                    let mut outcomes = outcomes.lock().unwrap();
                    if response.status == 202 {
                        outcomes.accepted.push(msg_id);
                    } else {
                        outcomes
                            .refused
                            .push(format!("{}: {}", response.status, response.text()));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // The operator has the new key first: it re-seals the entry under k2 (adding a second
    // signing secret, so the test can tell when the handler applied it). The handler
    // cannot open it yet and keeps the entry in force.
    let new_key = Keyring::generate_key();
    let both =
        Keyring::new("k2", [(KEY_ID, KEY.as_str()), ("k2", new_key.as_str())]).expect("a keyring");
    let second_secret = generate_standard_secret();
    let mut rotated = webhook.clone();
    rotated.secrets.push(fixtures::secret(&second_secret));
    tokio::time::sleep(Duration::from_secs(2)).await;
    support::publish_sealed(&kafka, &handler.registry_topic, &rotated, &both).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probe = |secret: String| {
        let (handler, id) = (handler.clone(), webhook.webhook_id.clone());
        async move {
            let (response, msg_id) = handler.post_signed(&id, &secret).await;
            (response.status, msg_id)
        }
    };
    let (status, _) = probe(second_secret.clone()).await;
    assert_eq!(
        status, 401,
        "the entry sealed under a key the handler lacks must not be applied yet"
    );

    // The handler's keyring gains k2 (the mounted Secret changes): the kept entry applies.
    hookline_testkit::write_registry_keys(
        &handler.keys_dir,
        "k2",
        &[(KEY_ID, KEY.as_str()), ("k2", new_key.as_str())],
    );
    let probed = hookline_testkit::eventually(
        "the re-sealed entry applied",
        Duration::from_secs(10),
        || async {
            let (status, msg_id) = probe(second_secret.clone()).await;
            (status == 202).then_some(msg_id)
        },
    )
    .await;
    outcomes.lock().unwrap().accepted.push(probed);

    // Every entry is under k2 now; the old key goes, and a later publish under k2 alone
    // still reaches the handler.
    tokio::time::sleep(Duration::from_secs(2)).await;
    hookline_testkit::write_registry_keys(&handler.keys_dir, "k2", &[("k2", new_key.as_str())]);
    let only_new = Keyring::new("k2", [("k2", new_key.as_str())]).expect("a keyring");
    tokio::time::sleep(Duration::from_secs(2)).await;
    support::publish_sealed(&kafka, &handler.registry_topic, &webhook, &only_new).await;
    hookline_testkit::eventually(
        "the second secret withdrawn by an entry under k2 alone",
        Duration::from_secs(10),
        || async { (probe(second_secret.clone()).await.0 == 401).then_some(()) },
    )
    .await;

    for sender in senders {
        sender.await.expect("sender");
    }
    let outcomes = Arc::try_unwrap(outcomes)
        .ok()
        .expect("senders done")
        .into_inner()
        .unwrap();
    assert!(
        outcomes.refused.is_empty(),
        "valid requests refused during the rotation: {:?}",
        &outcomes.refused[..outcomes.refused.len().min(5)]
    );
    assert!(
        outcomes.accepted.len() > 100,
        "too little traffic to show anything: {}",
        outcomes.accepted.len()
    );
    let stored: HashSet<String> = handler
        .events(&webhook.webhook_id)
        .await
        .into_iter()
        .map(|event| event.headers[record_headers::MESSAGE_ID].clone())
        .collect();
    let accepted: HashSet<String> = outcomes.accepted.into_iter().collect();
    let missing: Vec<&String> = accepted.difference(&stored).take(5).collect();
    assert!(missing.is_empty(), "202 but not in Kafka: {missing:?}");
}
