//! Against the real broker of the local stack, whose authorizer refuses whatever no ACL
//! allows: one release's ACLs, granted by the chart's own list
//! (helm/hookline/files/kafka-acls.sh, what `dev/run.sh` and the chart's built-in broker
//! grant), let each component's principal do its job and nothing the threat model keeps
//! from it. Every refusal is asserted by its Kafka error code.

use std::process::Command;
use std::time::Duration;

use hookline_api::topics::TopicSpec;
use hookline_runtime::kafka::{
    KafkaConnection, KafkaSecurity, SaslLogin, TopicError, ensure_topics,
    manual_commit_consumer_config, reliable_producer_config,
};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode::{self, GroupAuthorizationFailed, TopicAuthorizationFailed};
use tokio::sync::OnceCell;

const TIMEOUT: Duration = Duration::from_secs(30);

/// One release's topic and group names, as api/src/topics.rs and the chart name them.
struct Release {
    events: String,
    dead_letters: String,
    registry: String,
    retry_tiers: Vec<String>,
    consumer_group: String,
}

impl Release {
    fn new(prefix: &str) -> Self {
        let events = format!("{prefix}.hookline.events");
        Self {
            dead_letters: format!("{events}.dlq"),
            retry_tiers: (0..5)
                .map(|tier| format!("{events}.retry.{tier}"))
                .collect(),
            registry: format!("{prefix}.hookline.registry"),
            consumer_group: format!("{prefix}.hookline-consumer"),
            events,
        }
    }

    /// The operator's topic layout (api::topics::layout, one partition each).
    fn layout(&self) -> Vec<TopicSpec> {
        let mut specs = vec![
            TopicSpec::events(self.events.clone(), 1, 1),
            TopicSpec::events(self.dead_letters.clone(), 1, 1),
            TopicSpec::registry(self.registry.clone(), 1),
        ];
        specs.extend(
            self.retry_tiers
                .iter()
                .map(|tier| TopicSpec::events(tier.clone(), 1, 1)),
        );
        specs
    }
}

fn stack_kafka() -> KafkaConnection {
    KafkaConnection::from_vars(&hookline_testkit::stack().vars).expect("the stack's Kafka settings")
}

/// The stack's broker as `component`'s principal (`hookline-<component>`), with the
/// password `make stack-up` made for it.
fn login(component: &str) -> KafkaConnection {
    let stack = stack_kafka();
    let KafkaSecurity::SaslSsl { tls, login } = stack.security().clone() else {
        panic!("the stack's Kafka is not SASL_SSL: re-run `make stack-up`");
    };
    let variable = format!("KAFKA_SASL_PASSWORD_{}", component.to_ascii_uppercase());
    let password = hookline_testkit::stack()
        .vars
        .get(&variable)
        .unwrap_or_else(|| panic!("the stack's env has no {variable}; re-run `make stack-up`"))
        .clone();
    stack.with_security(KafkaSecurity::SaslSsl {
        tls,
        login: SaslLogin {
            username: format!("hookline-{component}"),
            password,
            ..login
        },
    })
}

/// A release of its own for this test binary: its ACLs granted over the stack's
/// loopback PLAINTEXT admin listener, then its topics created and a registry record
/// written by the operator's principal.
async fn release() -> &'static Release {
    static RELEASE: OnceCell<Release> = OnceCell::const_new();
    RELEASE
        .get_or_init(|| async {
            let prefix = hookline_testkit::unique_name("acls");
            let release = Release::new(&prefix);
            let vars = &hookline_testkit::stack().vars;
            let var = |name: &str| {
                vars.get(name)
                    .unwrap_or_else(|| {
                        panic!("the stack's env has no {name}; re-run `make stack-up`")
                    })
                    .clone()
            };
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../helm/hookline/files/kafka-acls.sh");
            let granted = Command::new("sh")
                .arg(&script)
                .arg(&prefix)
                .args([
                    "java",
                    "-Xmx256m",
                    "-XX:TieredStopAtLevel=1",
                    "-XX:+UseSerialGC",
                ])
                .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
                .arg("-cp")
                .arg(format!("{}/*", var("KAFKA_LIBS")))
                .arg("org.apache.kafka.tools.AclCommand")
                .arg("--bootstrap-server")
                .arg(var("KAFKA_PLAINTEXT_BOOTSTRAP_SERVERS"))
                .output()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
            assert!(
                granted.status.success(),
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&granted.stderr)
            );
            let operator = login("operator");
            ensure_topics(&operator, &release.layout(), TIMEOUT)
                .await
                .expect("the operator creates its release's topics");
            ensure_topics(&operator, &release.layout(), TIMEOUT)
                .await
                .expect("the operator's second start finds its topics");
            produce(&operator, &release.registry)
                .await
                .expect("the operator writes the registry");
            release
        })
        .await
}

async fn produce(connection: &KafkaConnection, topic: &str) -> Result<(), KafkaError> {
    let producer: FutureProducer =
        reliable_producer_config(connection, "acl-test-producer", Duration::from_secs(15))
            .create()?;
    producer
        .send(
            FutureRecord::to(topic).key("wh-acl").payload("{}"),
            Duration::from_secs(15),
        )
        .await
        .map(|_| ())
        .map_err(|(err, _)| err)
}

/// Joins `group`, subscribes to `topic` and returns the first record's offset or the
/// first error the consumer reports, within [`TIMEOUT`].
async fn first_read(
    connection: &KafkaConnection,
    group: &str,
    topic: &str,
) -> Result<i64, KafkaError> {
    let consumer: StreamConsumer =
        manual_commit_consumer_config(connection, "acl-test-consumer", group).create()?;
    consumer.subscribe(&[topic])?;
    tokio::time::timeout(TIMEOUT, consumer.recv())
        .await
        .unwrap_or_else(|_| panic!("neither a record of {topic} nor an error within {TIMEOUT:?}"))
        .map(|message| message.offset())
}

fn registry_group() -> String {
    format!("hookline-registry-reader-{}", uuid::Uuid::new_v4().simple())
}

/// One component's principal, and what it may and may not do, each asserted.
struct Principal {
    name: String,
    connection: KafkaConnection,
}

impl Principal {
    fn of(component: &str) -> Self {
        Self {
            name: format!("hookline-{component}"),
            connection: login(component),
        }
    }

    async fn writes(&self, topic: &str) {
        produce(&self.connection, topic)
            .await
            .unwrap_or_else(|err| panic!("{} cannot write {topic}: {err}", self.name));
    }

    async fn reads(&self, group: &str, topic: &str) {
        first_read(&self.connection, group, topic)
            .await
            .unwrap_or_else(|err| {
                panic!("{} cannot read {topic} in group {group}: {err}", self.name)
            });
    }

    async fn cannot_write(&self, topic: &str) {
        self.refused(
            produce(&self.connection, topic).await,
            TopicAuthorizationFailed,
            &format!("writing {topic}"),
        );
    }

    /// Refused by `code`: TopicAuthorizationFailed for a topic it may not read in a group
    /// it may use, GroupAuthorizationFailed for a group it may not use.
    async fn cannot_read(&self, group: &str, topic: &str, code: RDKafkaErrorCode) {
        self.refused(
            first_read(&self.connection, group, topic).await,
            code,
            &format!("reading {topic} in group {group}"),
        );
    }

    fn refused<T: std::fmt::Debug>(
        &self,
        result: Result<T, KafkaError>,
        code: RDKafkaErrorCode,
        what: &str,
    ) {
        match result {
            Err(err) if err.rdkafka_error_code() == Some(code) => {}
            other => panic!("{} {what}: expected {code:?}, got {other:?}", self.name),
        }
    }
}

/// The handler reads the registry (in a registry reader's group) and writes events; it
/// cannot write the registry or dead letters, read events, nor join a group but a
/// registry reader's.
#[tokio::test]
async fn the_handler_reads_the_registry_and_writes_events_only() {
    let release = release().await;
    let handler = Principal::of("handler");
    handler.reads(&registry_group(), &release.registry).await;
    handler.writes(&release.events).await;

    handler.cannot_write(&release.registry).await;
    handler.cannot_write(&release.dead_letters).await;
    handler
        .cannot_read(&registry_group(), &release.events, TopicAuthorizationFailed)
        .await;
    handler
        .cannot_read(
            &release.consumer_group,
            &release.registry,
            GroupAuthorizationFailed,
        )
        .await;
}

/// The consumer reads events and retries in its groups and the registry as a registry
/// reader, writes retries, dead letters and replays (the events topic); it cannot write
/// the registry nor read in a group not its own.
#[tokio::test]
async fn the_consumer_moves_events_through_its_topics_but_cannot_write_the_registry() {
    let release = release().await;
    let consumer = Principal::of("consumer");
    consumer.writes(&release.events).await;
    consumer
        .reads(&release.consumer_group, &release.events)
        .await;
    for tier in &release.retry_tiers {
        consumer.writes(tier).await;
    }
    let retries_group = format!("{}.retries", release.consumer_group);
    consumer
        .reads(&retries_group, &release.retry_tiers[0])
        .await;
    consumer.writes(&release.dead_letters).await;
    consumer.reads(&registry_group(), &release.registry).await;

    consumer.cannot_write(&release.registry).await;
    let other_group = hookline_testkit::unique_name("other");
    consumer
        .cannot_read(&other_group, &release.events, GroupAuthorizationFailed)
        .await;
}

/// The console writes the events topic (replay) and nothing else: not the registry nor
/// dead letters. It holds no group, so no read gets past the group check (librdkafka asks
/// the group's coordinator even for an assigned read).
#[tokio::test]
async fn the_console_replays_onto_events_but_reads_nothing_and_cannot_write_the_registry() {
    let release = release().await;
    let console = Principal::of("console");
    console.writes(&release.events).await;

    console.cannot_write(&release.registry).await;
    console.cannot_write(&release.dead_letters).await;
    console
        .cannot_read(&registry_group(), &release.events, GroupAuthorizationFailed)
        .await;
}

/// The operator creates its release's topics (at setup), writes the registry and follows
/// it as a registry reader; it cannot write events, read them, or create a topic outside
/// its release.
#[tokio::test]
async fn the_operator_keeps_the_registry_but_cannot_read_or_write_events() {
    let release = release().await;
    let operator = Principal::of("operator");
    operator.writes(&release.registry).await;
    operator.reads(&registry_group(), &release.registry).await;

    operator.cannot_write(&release.events).await;
    operator
        .cannot_read(&registry_group(), &release.events, TopicAuthorizationFailed)
        .await;
    let elsewhere = TopicSpec::events(hookline_testkit::unique_name("acls-other"), 1, 1);
    match ensure_topics(
        &operator.connection,
        std::slice::from_ref(&elsewhere),
        TIMEOUT,
    )
    .await
    {
        Err(TopicError::Topic {
            code: TopicAuthorizationFailed,
            ..
        }) => {}
        other => panic!("the operator creating {}: {other:?}", elsewhere.name),
    }
}
