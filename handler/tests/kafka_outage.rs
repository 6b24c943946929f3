//! A broker outage: the handler answers 503 with Retry-After while the broker is
//! down, and every request it answered 202 is in the topic once the broker is back.
//! Runs against a private broker of its own; the stack's broker is shared.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use hookline_core::record_headers;
use hookline_core::signature::Scheme;
use hookline_testkit::kafka_broker::PrivateKafka;
use support::{Handler, message_id, signed};
use tokio::time::Instant;

const SENDERS: usize = 4;

#[derive(Default)]
struct Outcomes {
    accepted: Vec<String>,
    refused_after_kill: usize,
    unexpected: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_broker_down_it_answers_503_and_every_202_is_kept() {
    let mut broker = tokio::task::spawn_blocking(PrivateKafka::start)
        .await
        .expect("start the private broker");
    let bootstrap = hookline_runtime::kafka::KafkaConnection::plaintext(broker.bootstrap_servers());
    let (handler, webhook, secret) =
        Handler::start_one(&bootstrap, Scheme::Standard, &["--produce-timeout", "2s"]).await;
    let handler = Arc::new(handler);

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let killed_at = Arc::new(Mutex::new(None::<Instant>));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (handler, outcomes, killed_at) = (handler.clone(), outcomes.clone(), killed_at.clone());
        let (id, secret) = (webhook.webhook_id.clone(), secret.clone());
        senders.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let sent_at = Instant::now();
                let (response, msg_id) = handler.post_signed(&id, &secret).await;
                let after_kill = killed_at.lock().unwrap().is_some_and(|at| sent_at > at);
                let mut outcomes = outcomes.lock().unwrap();
                match response.status {
                    202 => outcomes.accepted.push(msg_id),
                    // In Hookline's words: librdkafka's text goes to the log only.
                    503 if response.error() == "kafka_unavailable"
                        && response.json()["message"]
                            == "the event could not be stored right now; retry later"
                        && response.headers.contains_key("retry-after") =>
                    {
                        if after_kill {
                            outcomes.refused_after_kill += 1;
                            return;
                        }
                    }
                    _ => outcomes.unexpected.push(format!(
                        "{}: {}",
                        response.status,
                        response.text()
                    )),
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted_before_kill = outcomes.lock().unwrap().accepted.len();
    assert!(
        accepted_before_kill > 0,
        "nothing was accepted while the broker was up"
    );
    *killed_at.lock().unwrap() = Some(Instant::now());
    let mut broker = tokio::task::spawn_blocking(move || {
        broker.kill();
        broker
    })
    .await
    .expect("kill the private broker");
    for sender in senders {
        sender.await.expect("sender");
    }
    {
        let outcomes = outcomes.lock().unwrap();
        assert!(outcomes.unexpected.is_empty(), "{:?}", outcomes.unexpected);
        assert_eq!(
            outcomes.refused_after_kill, SENDERS,
            "every sender is refused with 503 once the broker is down"
        );
    }

    broker = tokio::task::spawn_blocking(move || {
        broker.start_again();
        broker
    })
    .await
    .expect("restart the private broker");
    let accepted = outcomes.lock().unwrap().accepted.clone();
    let stored: std::collections::HashSet<String> = handler
        .events(&webhook.webhook_id)
        .await
        .into_iter()
        .map(|event| event.headers[record_headers::MESSAGE_ID].clone())
        .collect();
    let lost: Vec<&String> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are missing: {lost:?}",
        lost.len(),
        accepted.len()
    );

    // Once the broker is back, the handler stores events again.
    hookline_testkit::eventually(
        "events stored again after the broker came back",
        Duration::from_secs(60),
        || async {
            let msg_id = message_id();
            let request = signed(Scheme::Standard, &secret, &msg_id, Utc::now(), b"{}");
            let response = handler.post(&webhook.webhook_id, &request, b"{}").await;
            (response.status == 202).then_some(())
        },
    )
    .await;
    Arc::try_unwrap(handler)
        .ok()
        .expect("senders are done")
        .stop()
        .await;
    drop(broker);
}
