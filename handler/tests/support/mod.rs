//! Test support: topics of a test's own, registry entries, the handler running
//! in-process on a loopback port, a small HTTP client and a reader of the events topic.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use hookline_api::topics::TopicSpec;
use hookline_core::registry::{self, Keyring, RateLimit, RegistryEntry};
use hookline_core::signature::{self, Scheme, SigningSecret};
use hookline_handler::config::Config;
use hookline_runtime::kafka::{self, KafkaConnection, client_config};
use hookline_runtime::shutdown::Shutdown;
use hookline_testkit::fixtures;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The registry key every test handler starts with, and that `publish` seals with.
pub const KEY_ID: &str = "k1";
pub static KEY: LazyLock<String> = LazyLock::new(Keyring::generate_key);
pub static KEYRING: LazyLock<Keyring> =
    LazyLock::new(|| Keyring::new(KEY_ID, [(KEY_ID, KEY.as_str())]).expect("a keyring"));

/// The local stack's Kafka, with the login its env file names.
pub fn stack_kafka() -> KafkaConnection {
    KafkaConnection::from_vars(&hookline_testkit::stack().vars).expect("the stack's Kafka settings")
}

/// A handler serving on loopback, with a registry and an events topic of its own.
pub struct Handler {
    /// The webhook port.
    pub addr: SocketAddr,
    /// The ops port: /healthz, /readyz, /metrics.
    pub ops_addr: SocketAddr,
    pub kafka: KafkaConnection,
    /// Its registry keyring directory (holding [`KEYRING`] at start).
    pub keys_dir: PathBuf,
    pub registry_topic: String,
    pub events_topic: String,
    pub shutdown: Shutdown,
    pub task: JoinHandle<Result<(), hookline_handler::service::ServiceError>>,
}

impl Handler {
    /// Creates the topics on `bootstrap`, publishes `entries`, starts the handler with
    /// `extra_args` and waits until /readyz says ready.
    pub async fn start(
        bootstrap: &KafkaConnection,
        entries: &[RegistryEntry],
        extra_args: &[&str],
    ) -> Self {
        Self::start_with_tombstones(bootstrap, entries, &[], extra_args).await
    }

    /// Starts a handler serving one fresh Webhook of `scheme` (see [`entry`]): the
    /// handler, the Webhook and its secret.
    pub async fn start_one(
        bootstrap: &KafkaConnection,
        scheme: Scheme,
        extra_args: &[&str],
    ) -> (Self, RegistryEntry, String) {
        let (webhook, secret) = entry(scheme);
        let handler = Self::start(bootstrap, std::slice::from_ref(&webhook), extra_args).await;
        (handler, webhook, secret)
    }

    /// Like `start`, with tombstones for `deleted` ids after the entries.
    pub async fn start_with_tombstones(
        bootstrap: &KafkaConnection,
        entries: &[RegistryEntry],
        deleted: &[&str],
        extra_args: &[&str],
    ) -> Self {
        let registry_topic = hookline_testkit::unique_name("handler-test-registry");
        let events_topic = hookline_testkit::unique_name("handler-test-events");
        kafka::ensure_topics(
            bootstrap,
            &[
                TopicSpec::registry(registry_topic.clone(), 1),
                TopicSpec::events(events_topic.clone(), 3, 1),
            ],
            TIMEOUT,
        )
        .await
        .expect("create topics");
        for entry in entries {
            publish(bootstrap, &registry_topic, entry).await;
        }
        for webhook_id in deleted {
            publish_tombstone(bootstrap, &registry_topic, webhook_id).await;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let ops_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind ops");
        let ops_addr = ops_listener.local_addr().expect("ops local addr");
        let keys_dir = hookline_testkit::registry_keys_dir(KEY_ID, &[(KEY_ID, KEY.as_str())]);
        let mut args = vec!["hookline-handler".to_owned()];
        args.extend(bootstrap.cli_args());
        args.extend([
            "--registry-keys-dir".to_owned(),
            keys_dir.display().to_string(),
            "--registry-keys-reload-interval".to_owned(),
            "1s".to_owned(),
            "--registry-topic".to_owned(),
            registry_topic.clone(),
            "--events-topic".to_owned(),
            events_topic.clone(),
        ]);
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let config = Config::try_parse_from(args).expect("config");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(hookline_handler::service::serve(
            listener,
            ops_listener,
            config,
            shutdown.clone(),
        ));
        let handler = Self {
            addr,
            ops_addr,
            kafka: bootstrap.clone(),
            keys_dir,
            registry_topic,
            events_topic,
            shutdown,
            task,
        };
        handler.wait_ready().await;
        handler
    }

    pub async fn wait_ready(&self) {
        hookline_testkit::eventually("the handler ready", TIMEOUT, || async {
            let response = self.ops_get("/readyz").await.ok()?;
            (response.status == 200).then_some(())
        })
        .await;
    }

    pub async fn post(
        &self,
        webhook_id: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Response {
        let mut all: Vec<(&str, String)> = headers.to_vec();
        all.push(("content-length", body.len().to_string()));
        self.request("POST", &format!("/webhooks/{webhook_id}"), &all, body)
            .await
            .expect("POST")
    }

    /// POSTs a fresh event (`{"event_id": <its message id>}`) signed with the Standard
    /// Webhooks `secret` now; the answer and the message id.
    pub async fn post_signed(&self, webhook_id: &str, secret: &str) -> (Response, String) {
        let msg_id = message_id();
        let body = format!(r#"{{"event_id":"{msg_id}"}}"#);
        let request = signed(
            Scheme::Standard,
            secret,
            &msg_id,
            Utc::now(),
            body.as_bytes(),
        );
        (
            self.post(webhook_id, &request, body.as_bytes()).await,
            msg_id,
        )
    }

    /// One request to the webhook port on a new connection (`Connection: close`).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        exchange(self.addr, method, path, headers, body).await
    }

    /// A GET to the ops port.
    pub async fn ops_get(&self, path: &str) -> std::io::Result<Response> {
        exchange(self.ops_addr, "GET", path, &[], b"").await
    }

    pub async fn metrics(&self) -> String {
        let response = self.ops_get("/metrics").await.expect("GET /metrics");
        assert_eq!(response.status, 200);
        response.text()
    }

    /// The value of one series of /metrics, named with its labels.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        hookline_testkit::prometheus::sample(&self.metrics().await, series)
    }

    /// Every event of the events topic keyed `webhook_id`, read up to the end the
    /// topic has now (every 202 answered so far is below it).
    pub async fn events(&self, webhook_id: &str) -> Vec<Event> {
        read_events(&self.kafka, &self.events_topic, webhook_id).await
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("handler stops in time")
            .expect("handler task")
            .expect("handler ran cleanly");
    }
}

/// The head of `POST /webhooks/{webhook_id}` declaring `content_length` body bytes, with
/// `headers`, up to and including the blank line (for tests that write the body
/// themselves, slowly or never).
pub fn post_head(webhook_id: &str, content_length: usize, headers: &[(&str, String)]) -> String {
    let mut head = format!(
        "POST /webhooks/{webhook_id} HTTP/1.1\r\nHost: a\r\nContent-Length: {content_length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// One request to `addr` on a new connection (`Connection: close`).
pub async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    read_response(&mut stream).await
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.text()))
    }

    /// The `error` field of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Reads an HTTP/1.1 response from a connection the server closes after it.
pub async fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no complete answer in time"))??;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).ok()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// A produced event as read back from Kafka.
#[derive(Debug, Clone)]
pub struct Event {
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// A registry version above every one this test binary published before, so each
/// publication supersedes the last (followers refuse older versions).
pub fn next_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Publishes `entry` sealed with [`KEYRING`].
pub async fn publish(bootstrap: &KafkaConnection, topic: &str, entry: &RegistryEntry) {
    publish_sealed(bootstrap, topic, entry, &KEYRING).await;
}

pub async fn publish_sealed(
    bootstrap: &KafkaConnection,
    topic: &str,
    entry: &RegistryEntry,
    keyring: &Keyring,
) {
    let producer: FutureProducer = client_config(bootstrap, "handler-test-registry-writer")
        .create()
        .expect("producer");
    let value = registry::encode(entry, next_version(), keyring);
    producer
        .send(
            FutureRecord::to(topic)
                .key(entry.webhook_id.as_str())
                .payload(&value),
            TIMEOUT,
        )
        .await
        .expect("publish registry entry");
}

/// Publishes the deletion of `webhook_id`, sealed with [`KEYRING`] at a version above
/// every one published before (as the operator writes deletions).
pub async fn publish_tombstone(bootstrap: &KafkaConnection, topic: &str, webhook_id: &str) {
    let producer: FutureProducer = client_config(bootstrap, "handler-test-registry-writer")
        .create()
        .expect("producer");
    let value = registry::encode_deletion(&webhook_id.into(), next_version(), &KEYRING);
    producer
        .send(
            FutureRecord::to(topic).key(webhook_id).payload(&value),
            TIMEOUT,
        )
        .await
        .expect("publish deletion");
}

pub async fn read_events(bootstrap: &KafkaConnection, topic: &str, webhook_id: &str) -> Vec<Event> {
    let (bootstrap, topic, webhook_id) =
        (bootstrap.clone(), topic.to_owned(), webhook_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut config = client_config(&bootstrap, "handler-test-events-reader");
        config
            .set("group.id", hookline_testkit::unique_name("handler-test"))
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create().expect("consumer");
        // Right after a broker restart, partitions may have no leader for a while.
        let deadline = std::time::Instant::now() + TIMEOUT;
        let (assignment, mut ends) = loop {
            match partition_ends(&consumer, &topic) {
                Ok(found) => break found,
                Err(err) if std::time::Instant::now() < deadline => {
                    eprintln!("retrying the watermarks of {topic}: {err}");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(err) => panic!("cannot read the watermarks of {topic}: {err}"),
            }
        };
        let mut events = Vec::new();
        if ends.is_empty() {
            return events;
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !ends.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "events topic not read in time"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("consume");
            if message.offset() + 1 >= ends[&message.partition()] {
                ends.remove(&message.partition());
            }
            if message.key() != Some(webhook_id.as_bytes()) {
                continue;
            }
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| {
                            (
                                h.key.to_owned(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            events.push(Event {
                key: message.key().unwrap_or_default().to_vec(),
                payload: message.payload().unwrap_or_default().to_vec(),
                headers,
            });
        }
        events
    })
    .await
    .expect("reader task")
}

/// The partitions of `topic` holding messages, assigned from their beginning, and
/// the end (high watermark) of each.
fn partition_ends(
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<(TopicPartitionList, HashMap<i32, i64>), rdkafka::error::KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), TIMEOUT)?;
        if high > low {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
            ends.insert(partition.id(), high);
        }
    }
    Ok((assignment, ends))
}

/// An active registry entry with a fresh secret for `scheme`, generous rate limit,
/// no source restriction.
pub fn entry(scheme: Scheme) -> (RegistryEntry, String) {
    let secret = match scheme {
        Scheme::Standard => signature::generate_standard_secret(),
        _ => format!("secret-{}", uuid::Uuid::new_v4().simple()),
    };
    let entry = RegistryEntry {
        scheme,
        secrets: vec![fixtures::secret(&secret)],
        rate_limit: RateLimit {
            requests_per_second: 1_000,
            burst: 1_000,
        },
        ..fixtures::registry_entry(&hookline_testkit::unique_name("wh"))
    };
    (entry, secret)
}

/// The headers a sender signs `body` with, using `secret` under `scheme`.
pub fn signed(
    scheme: Scheme,
    secret: &str,
    msg_id: &str,
    at: DateTime<Utc>,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let key = SigningSecret::parse(scheme, secret).expect("secret");
    signature::sign(scheme, &[key], msg_id, at, body).expect("sign")
}

/// The headers of a fresh Standard Webhooks message `body`, signed with `secret` now.
pub fn signed_now(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    signed(Scheme::Standard, secret, &message_id(), Utc::now(), body)
}

pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}
