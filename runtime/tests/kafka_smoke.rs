//! Against the real broker of the local stack: a message with headers goes through
//! a topic created by `ensure_topics` and comes back byte for byte.

use std::time::Duration;

use hookline_api::topics::TopicSpec;
use hookline_runtime::kafka::{
    ensure_topics, header_str, manual_commit_consumer_config, reliable_producer_config,
};
use hookline_runtime::producer::AckedProducer;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

fn kafka() -> hookline_runtime::kafka::KafkaConnection {
    hookline_runtime::kafka::KafkaConnection::from_vars(&hookline_testkit::stack().vars)
        .expect("the stack's Kafka settings")
}

#[tokio::test]
async fn produce_and_consume_round_trip_keeps_key_payload_and_headers() {
    let topic = hookline_testkit::unique_name("smoke");
    let spec = TopicSpec::events(topic.clone(), 3, 1);
    ensure_topics(
        &kafka(),
        std::slice::from_ref(&spec),
        Duration::from_secs(10),
    )
    .await
    .expect("create topic");
    // A second call finds the topic and succeeds.
    ensure_topics(&kafka(), &[spec], Duration::from_secs(10))
        .await
        .expect("topic creation is idempotent");

    let producer = AckedProducer::new(
        &reliable_producer_config(&kafka(), "smoke-producer", Duration::from_secs(10)),
        "smoke-deliveries",
    )
    .expect("producer");
    let payload: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
    let delivery = producer
        .send_when_room(
            FutureRecord::to(&topic)
                .key("wh-1")
                .payload(&payload)
                .headers(
                    OwnedHeaders::new()
                        .insert(Header {
                            key: "hookline-webhook-id",
                            value: Some("wh-1"),
                        })
                        .insert(Header {
                            key: "retry_count",
                            value: Some("0"),
                        }),
                ),
            Duration::from_secs(10),
        )
        .await
        .expect("broker acknowledged");
    assert!(delivery.offset >= 0);

    let consumer: StreamConsumer = manual_commit_consumer_config(
        &kafka(),
        "smoke-consumer",
        &hookline_testkit::unique_name("smoke-group"),
    )
    .create()
    .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a message within 30 s")
        .expect("no consumer error");

    assert_eq!(message.partition(), delivery.partition);
    assert_eq!(message.offset(), delivery.offset);
    assert_eq!(message.key(), Some(&b"wh-1"[..]));
    assert_eq!(message.payload(), Some(&payload[..]));
    assert_eq!(header_str(&message, "hookline-webhook-id"), Some("wh-1"));
    assert_eq!(header_str(&message, "retry_count"), Some("0"));
    assert_eq!(header_str(&message, "absent"), None);
    consumer
        .commit_message(&message, CommitMode::Sync)
        .expect("commit");
}

/// The stack's broker listens with SASL_SSL (SCRAM-SHA-512): its own login over TLS to
/// its CA answers; no login, a wrong password, or a TLS peer it cannot verify does not.
#[tokio::test]
async fn the_broker_takes_only_an_authenticated_tls_client() {
    use hookline_runtime::kafka::{KafkaSecurity, Tls, check_reachable};
    const TIMEOUT: Duration = Duration::from_secs(6);
    let stack = kafka();
    let KafkaSecurity::SaslSsl { tls, login } = stack.security().clone() else {
        panic!("the stack's Kafka is not SASL_SSL: re-run `make stack-up`");
    };
    check_reachable(&stack, TIMEOUT)
        .await
        .expect("the stack's own login over TLS answers");
    let refused = [
        ("plaintext", KafkaSecurity::Plaintext),
        ("TLS without a login", KafkaSecurity::Ssl(tls.clone())),
        (
            "a wrong password",
            KafkaSecurity::SaslSsl {
                tls: tls.clone(),
                login: hookline_runtime::kafka::SaslLogin {
                    password: "not-the-password".into(),
                    ..login.clone()
                },
            },
        ),
        (
            "a broker certificate checked against the system's CAs only",
            KafkaSecurity::SaslSsl {
                tls: Tls { ca_location: None },
                login,
            },
        ),
    ];
    for (what, security) in refused {
        assert!(
            check_reachable(&stack.with_security(security), TIMEOUT)
                .await
                .is_err(),
            "{what} was let in"
        );
    }
}

/// The readiness condition `kafka` follows whether the broker answers: met with the
/// stack's broker, unmet with the address named where nothing listens.
#[tokio::test]
async fn readiness_follows_whether_the_broker_answers() {
    use hookline_runtime::kafka::{KafkaConnection, READINESS_CONDITION, watch_reachability};
    use hookline_runtime::ops::Readiness;
    use hookline_runtime::shutdown::Shutdown;
    const DEADLINE: Duration = Duration::from_secs(30);

    let shutdown = Shutdown::new();
    let answering = Readiness::default();
    tokio::spawn(watch_reachability(
        kafka(),
        answering.clone(),
        shutdown.clone(),
    ));
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let nowhere = format!("127.0.0.1:{closed_port}");
    let silent = Readiness::default();
    tokio::spawn(watch_reachability(
        KafkaConnection::new(nowhere.clone(), kafka().security().clone()),
        silent.clone(),
        shutdown.clone(),
    ));

    let started = std::time::Instant::now();
    loop {
        let silent_reason = silent.unmet().get(READINESS_CONDITION).cloned();
        let checked_nowhere = silent_reason
            .as_deref()
            .is_some_and(|reason| reason.starts_with(&nowhere));
        if answering.is_ready() && checked_nowhere {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "after {DEADLINE:?}: the stack's broker: {:?}; nowhere: {silent_reason:?}",
            answering.unmet()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!silent.is_ready(), "a closed port was taken for a broker");
    shutdown.trigger();
}
