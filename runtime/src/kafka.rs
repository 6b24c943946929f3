//! Kafka client settings and topic management shared by every service, so that
//! delivery guarantees are decided once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

use crate::ops::Readiness;
use crate::shutdown::Shutdown;
use hookline_api::env::{
    KAFKA_BOOTSTRAP_SERVERS_ENV, KAFKA_SASL_MECHANISM_ENV, KAFKA_SASL_PASSWORD_ENV,
    KAFKA_SASL_USERNAME_ENV, KAFKA_SECURITY_PROTOCOL_ENV, KAFKA_SSL_CA_LOCATION_ENV,
};
use hookline_api::topics::TopicSpec;
use hookline_core::event_record::EventRecord;

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

/// How a client reaches the brokers (`security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslSsl,
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "plaintext" => Ok(Self::Plaintext),
            "ssl" => Ok(Self::Ssl),
            "sasl_ssl" => Ok(Self::SaslSsl),
            // SASL without TLS would send the login's proof and every record in clear.
            "sasl_plaintext" => Err("sasl_plaintext is refused: use sasl_ssl".into()),
            _ => Err(format!("{value:?}: expected plaintext, ssl or sasl_ssl")),
        }
    }
}

/// The SASL mechanisms Hookline speaks: SCRAM, so no password crosses the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    ScramSha512,
    ScramSha256,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            _ => Err(format!(
                "{value:?}: expected SCRAM-SHA-512 or SCRAM-SHA-256"
            )),
        }
    }
}

/// TLS settings: whose CA signed the brokers' certificates (none: the system's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca_location: Option<PathBuf>,
}

/// A SASL login. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How a client authenticates to the brokers and protects the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaSecurity {
    Plaintext,
    Ssl(Tls),
    SaslSsl { tls: Tls, login: SaslLogin },
}

impl KafkaSecurity {
    /// The settings of `protocol` from their parts, as flags or variables give them:
    /// refuses a SASL login without its user name or password (empty counts as missing)
    /// and a CA file that cannot be read, naming the setting.
    pub fn from_parts(
        protocol: SecurityProtocol,
        mechanism: SaslMechanism,
        username: Option<String>,
        password: Option<String>,
        ca_location: Option<PathBuf>,
    ) -> Result<Self, KafkaSettingsError> {
        let tls = || -> Result<Tls, KafkaSettingsError> {
            if let Some(path) = &ca_location {
                std::fs::metadata(path).map_err(|source| KafkaSettingsError::CaFile {
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(Tls {
                ca_location: ca_location.clone(),
            })
        };
        let present = |value: Option<String>, env: &'static str| {
            value
                .filter(|v| !v.is_empty())
                .ok_or(KafkaSettingsError::Missing(env))
        };
        Ok(match protocol {
            SecurityProtocol::Plaintext => Self::Plaintext,
            SecurityProtocol::Ssl => Self::Ssl(tls()?),
            SecurityProtocol::SaslSsl => Self::SaslSsl {
                tls: tls()?,
                login: SaslLogin {
                    mechanism,
                    username: present(username, KAFKA_SASL_USERNAME_ENV)?,
                    password: present(password, KAFKA_SASL_PASSWORD_ENV)?,
                },
            },
        })
    }
}

#[derive(Debug, Error)]
pub enum KafkaSettingsError {
    #[error("{0} is required with security protocol sasl_ssl")]
    Missing(&'static str),
    #[error("cannot read the Kafka CA file {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// Where the Kafka cluster is and how to connect to it: what every client of every
/// service is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConnection {
    bootstrap_servers: String,
    security: KafkaSecurity,
}

impl KafkaConnection {
    pub fn new(bootstrap_servers: impl Into<String>, security: KafkaSecurity) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security,
        }
    }

    /// A connection without TLS or login (private test brokers, development listeners).
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Self {
        Self::new(bootstrap_servers, KafkaSecurity::Plaintext)
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub fn security(&self) -> &KafkaSecurity {
        &self.security
    }

    /// The same cluster and security with another login (tests of refused logins).
    pub fn with_security(&self, security: KafkaSecurity) -> Self {
        Self::new(self.bootstrap_servers.clone(), security)
    }

    /// Reads the settings from variables named as the services' environment
    /// (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_SECURITY_PROTOCOL`, ...), e.g. the local
    /// stack's env file.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, KafkaSettingsError> {
        let get = |name: &'static str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let invalid = |name: &'static str| {
            move |message: String| KafkaSettingsError::Invalid { name, message }
        };
        let bootstrap = get(KAFKA_BOOTSTRAP_SERVERS_ENV)
            .ok_or(KafkaSettingsError::Missing(KAFKA_BOOTSTRAP_SERVERS_ENV))?;
        let protocol: SecurityProtocol = get(KAFKA_SECURITY_PROTOCOL_ENV)
            .as_deref()
            .unwrap_or("plaintext")
            .parse()
            .map_err(invalid(KAFKA_SECURITY_PROTOCOL_ENV))?;
        let mechanism: SaslMechanism = get(KAFKA_SASL_MECHANISM_ENV)
            .as_deref()
            .unwrap_or("SCRAM-SHA-512")
            .parse()
            .map_err(invalid(KAFKA_SASL_MECHANISM_ENV))?;
        let security = KafkaSecurity::from_parts(
            protocol,
            mechanism,
            get(KAFKA_SASL_USERNAME_ENV),
            get(KAFKA_SASL_PASSWORD_ENV),
            get(KAFKA_SSL_CA_LOCATION_ENV).map(PathBuf::from),
        )?;
        Ok(Self::new(bootstrap, security))
    }

    /// The environment a Hookline process needs to connect this way (what
    /// [`from_vars`](Self::from_vars) and the services' flags read). Every name is set, so
    /// a child never inherits another connection's login.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let (protocol, tls, login) = match &self.security {
            KafkaSecurity::Plaintext => ("plaintext", None, None),
            KafkaSecurity::Ssl(tls) => ("ssl", Some(tls), None),
            KafkaSecurity::SaslSsl { tls, login } => ("sasl_ssl", Some(tls), Some(login)),
        };
        let ca = tls
            .and_then(|tls| tls.ca_location.as_ref())
            .map(|path| path.display().to_string())
            .unwrap_or_default();
        vec![
            (KAFKA_BOOTSTRAP_SERVERS_ENV, self.bootstrap_servers.clone()),
            (KAFKA_SECURITY_PROTOCOL_ENV, protocol.into()),
            (
                KAFKA_SASL_MECHANISM_ENV,
                login
                    .map_or(SaslMechanism::ScramSha512, |l| l.mechanism)
                    .as_str()
                    .into(),
            ),
            (
                KAFKA_SASL_USERNAME_ENV,
                login.map(|l| l.username.clone()).unwrap_or_default(),
            ),
            (
                KAFKA_SASL_PASSWORD_ENV,
                login.map(|l| l.password.clone()).unwrap_or_default(),
            ),
            (KAFKA_SSL_CA_LOCATION_ENV, ca),
        ]
    }

    /// The same settings as the flags of a Hookline binary, every one given, so that a
    /// process parsing them takes nothing from its environment.
    pub fn cli_args(&self) -> Vec<String> {
        self.env_vars()
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .flat_map(|(env, value)| {
                let flag = format!("--{}", env.to_ascii_lowercase().replace('_', "-"));
                [flag, value]
            })
            .collect()
    }

    fn apply(&self, config: &mut ClientConfig) {
        let tls = |config: &mut ClientConfig, tls: &Tls| {
            // librdkafka checks the broker's name against its certificate only when told to.
            config.set("ssl.endpoint.identification.algorithm", "https");
            if let Some(ca) = &tls.ca_location {
                config.set("ssl.ca.location", ca.display().to_string());
            }
        };
        match &self.security {
            KafkaSecurity::Plaintext => {
                config.set("security.protocol", "plaintext");
            }
            KafkaSecurity::Ssl(settings) => {
                config.set("security.protocol", "ssl");
                tls(config, settings);
            }
            KafkaSecurity::SaslSsl {
                tls: settings,
                login,
            } => {
                config
                    .set("security.protocol", "sasl_ssl")
                    .set("sasl.mechanism", login.mechanism.as_str())
                    .set("sasl.username", &login.username)
                    .set("sasl.password", &login.password);
                tls(config, settings);
            }
        }
    }
}

/// Settings every client shares.
pub fn client_config(connection: &KafkaConnection, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", connection.bootstrap_servers())
        .set("client.id", client_id)
        .set("broker.address.family", "v4");
    connection.apply(&mut config);
    config
}

/// A producer that loses nothing it acknowledged: every in-sync replica must have a
/// message (`acks=all`) and retries cannot duplicate or reorder (idempotence).
/// A short linger batches concurrent requests without adding visible latency.
pub fn reliable_producer_config(
    connection: &KafkaConnection,
    client_id: &str,
    delivery_timeout: Duration,
) -> ClientConfig {
    let mut config = client_config(connection, client_id);
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
    connection: &KafkaConnection,
    client_id: &str,
    group_id: &str,
) -> ClientConfig {
    let mut config = client_config(connection, client_id);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    config
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(
    connection: &KafkaConnection,
    topics: &[TopicSpec],
    timeout: Duration,
) -> Result<(), TopicError> {
    let bootstrap_servers = connection.bootstrap_servers();
    let admin: AdminClient<DefaultClientContext> = client_config(connection, "hookline-admin")
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

/// An event record as librdkafka takes it: `record`'s key, value and headers, bound for
/// `topic`.
pub fn future_record<'r>(
    topic: &'r str,
    record: &'r EventRecord<'_>,
) -> FutureRecord<'r, [u8], [u8]> {
    let mut future = FutureRecord::to(topic).payload(record.payload.as_ref());
    if let Some(key) = &record.key {
        future = future.key(key.as_ref());
    }
    future.headers(owned_headers(record))
}

/// `record`'s headers as librdkafka takes them, in their order.
pub fn owned_headers(record: &EventRecord<'_>) -> OwnedHeaders {
    record.headers.iter().fold(
        OwnedHeaders::new_with_capacity(record.headers.len()),
        |all, (key, value)| {
            all.insert(Header {
                key: key.as_ref(),
                value: Some(value.as_ref()),
            })
        },
    )
}

/// The event record a consumed message holds, copied out of librdkafka's buffers.
pub fn event_record_of<M: Message>(message: &M) -> EventRecord<'static> {
    let headers = message
        .headers()
        .map(|all| {
            all.iter()
                .map(|header| {
                    (
                        Cow::Owned(header.key.to_owned()),
                        Cow::Owned(header.value.unwrap_or_default().to_vec()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    EventRecord {
        key: message.key().map(|key| Cow::Owned(key.to_vec())),
        payload: Cow::Owned(message.payload().unwrap_or_default().to_vec()),
        headers,
    }
}

/// Asks the cluster for its metadata: succeeds once a broker answers.
pub async fn check_reachable(
    connection: &KafkaConnection,
    timeout: Duration,
) -> Result<(), KafkaError> {
    ReachabilityProbe::new(connection)?.check(timeout).await
}

/// One client kept for repeated reachability checks: each check is a metadata request
/// on its open connection. A client per check cost a TLS handshake and a SCRAM
/// exchange every time, on both ends: most of an idle handler's and consumer's CPU,
/// and a share of the broker's.
struct ReachabilityProbe {
    client: Arc<rdkafka::consumer::BaseConsumer>,
}

impl ReachabilityProbe {
    fn new(connection: &KafkaConnection) -> Result<Self, KafkaError> {
        let client = client_config(connection, "hookline-probe").create()?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    async fn check(&self, timeout: Duration) -> Result<(), KafkaError> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || {
            rdkafka::consumer::Consumer::fetch_metadata(client.as_ref(), None, timeout).map(|_| ())
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
    }
}

/// Keeps the readiness condition `kafka` in step with whether the cluster answers,
/// checking every few seconds until shutdown.
pub async fn watch_reachability(
    connection: KafkaConnection,
    readiness: Readiness,
    shutdown: Shutdown,
) {
    let bootstrap_servers = connection.bootstrap_servers();
    const INTERVAL: Duration = Duration::from_secs(5);
    readiness.require(READINESS_CONDITION, "no answer from the Kafka cluster yet");
    let probe = match ReachabilityProbe::new(&connection) {
        Ok(probe) => probe,
        Err(err) => {
            readiness.set_not_ready(READINESS_CONDITION, format!("{bootstrap_servers}: {err}"));
            return;
        }
    };
    while !shutdown.is_triggered() {
        match probe.check(INTERVAL).await {
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
