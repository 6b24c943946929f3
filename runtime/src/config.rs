//! Flags every service shares, with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::kafka::{
    KafkaConnection, KafkaSecurity, KafkaSettingsError, SaslMechanism, SecurityProtocol,
};
use crate::telemetry::LogFormat;
use hookline_api::env::*;
use hookline_core::source::Cidr;

/// Logging and the async runtime.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Log format: `json` (one object per line, for containers) or `text`.
    #[arg(long, env = LOG_FORMAT_ENV, default_value = "json")]
    pub log_format: LogFormat,
    /// Threads running the service's async work, at most 256. Size it to the CPU the pod
    /// may use: every extra thread costs wake-ups and hand-offs between threads. 0: one
    /// per CPU the process may use (the cgroup's CPU quota if it has one, else every core
    /// of the node).
    #[arg(long, env = WORKER_THREADS_ENV, default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=256))]
    pub worker_threads: u16,
}

impl CommonArgs {
    /// The multi-threaded tokio runtime with `--worker-threads` workers.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if self.worker_threads > 0 {
            builder.worker_threads(usize::from(self.worker_threads));
        }
        builder.enable_all().build()
    }

    /// Runs a binary's `main` on that runtime; says on stderr, as `binary`, why the
    /// runtime could not start.
    pub fn block_on(
        &self,
        binary: &str,
        main: impl std::future::Future<Output = std::process::ExitCode>,
    ) -> std::process::ExitCode {
        match self.runtime() {
            Ok(runtime) => runtime.block_on(main),
            Err(err) => {
                eprintln!("{binary}: cannot start the async runtime: {err}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// Where spans are exported and how many traces are recorded (`traces::init`).
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// Base URL of an OTLP/HTTP receiver (an OpenTelemetry Collector), e.g.
    /// http://otel-collector:4318: spans go to <url>/v1/traces as protobuf. Plain http
    /// only (a collector beside the pod or on the node terminates TLS). Empty: no traces.
    #[arg(long, env = OTLP_ENDPOINT_ENV, default_value = "", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: String,
    /// Share of traces started here that are recorded, from 0 to 1. A trace the sender
    /// started keeps the sender's decision (its traceparent's sampled flag).
    #[arg(long, env = TRACE_SAMPLE_RATIO_ENV, default_value_t = 1.0, value_parser = parse_sample_ratio)]
    pub trace_sample_ratio: f64,
    /// The service name on exported spans; unset: the binary's name.
    #[arg(long, env = SERVICE_NAME_ENV)]
    pub service_name: Option<String>,
}

impl TraceArgs {
    /// No spans exported, logs only: for the binaries that take no trace flags.
    pub fn off() -> Self {
        Self {
            otlp_endpoint: String::new(),
            trace_sample_ratio: 0.0,
            service_name: None,
        }
    }

    /// The OTLP base URL, or `None` when traces are off.
    pub fn endpoint(&self) -> Option<&str> {
        Some(self.otlp_endpoint.as_str()).filter(|endpoint| !endpoint.is_empty())
    }
}

/// The Kafka cluster to use, and how to authenticate to it.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated host:port pairs.
    #[arg(long, env = KAFKA_BOOTSTRAP_SERVERS_ENV, value_parser = parse_bootstrap_servers)]
    pub kafka_bootstrap_servers: String,
    /// How to reach the brokers: `plaintext`, `ssl` (TLS) or `sasl_ssl` (TLS and a SASL
    /// login, the setting for a shared cluster).
    #[arg(long, env = KAFKA_SECURITY_PROTOCOL_ENV, default_value = "plaintext")]
    pub kafka_security_protocol: SecurityProtocol,
    /// SASL mechanism with `sasl_ssl`: `SCRAM-SHA-512` or `SCRAM-SHA-256`.
    #[arg(long, env = KAFKA_SASL_MECHANISM_ENV, default_value = "SCRAM-SHA-512")]
    pub kafka_sasl_mechanism: SaslMechanism,
    /// SASL user name (the Kafka principal), required with `sasl_ssl`.
    #[arg(long, env = KAFKA_SASL_USERNAME_ENV)]
    pub kafka_sasl_username: Option<String>,
    /// SASL password, required with `sasl_ssl`; from the environment (a Secret), not a flag.
    #[arg(long, env = KAFKA_SASL_PASSWORD_ENV, hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,
    /// PEM file of the CA certificates that signed the brokers' certificates (`ssl` and
    /// `sasl_ssl`); unset: the system's trust store.
    #[arg(long, env = KAFKA_SSL_CA_LOCATION_ENV)]
    pub kafka_ssl_ca_location: Option<PathBuf>,
}

impl KafkaArgs {
    /// The validated connection settings: refuses a SASL login without its user name or
    /// password, and a CA file that cannot be read, naming the setting.
    pub fn connection(&self) -> Result<KafkaConnection, KafkaSettingsError> {
        let security = KafkaSecurity::from_parts(
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username.clone(),
            self.kafka_sasl_password.clone(),
            self.kafka_ssl_ca_location.clone(),
        )?;
        Ok(KafkaConnection::new(
            self.kafka_bootstrap_servers.clone(),
            security,
        ))
    }
}

/// The registry keyring: what the operator seals registry secrets with and the handlers
/// open them with (a mounted Secret, see `registry::sealing`).
#[derive(Debug, Clone, Args)]
pub struct RegistryKeysArgs {
    /// Directory of the registry keyring: a file `primary` naming the key that seals, and
    /// one file per key id holding 32 random bytes in base64.
    #[arg(long, env = "HOOKLINE_REGISTRY_KEYS_DIR")]
    pub registry_keys_dir: PathBuf,
    /// How often the keyring directory is read again, to pick up a rotation.
    #[arg(long, env = "HOOKLINE_REGISTRY_KEYS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub registry_keys_reload_interval: Duration,
}

/// How the metrics that count per Webhook are labelled (`hookline_runtime::webhook_labels::WebhookLabels`).
#[derive(Debug, Clone, Copy, Args)]
pub struct WebhookMetricsArgs {
    /// Label per-Webhook metrics with the Webhook id (ids the registry lists, else
    /// "unknown": one series per live Webhook). false: every Webhook's counts under
    /// webhook="all", for installations with so many Webhooks that the series count matters.
    #[arg(long, env = "HOOKLINE_PER_WEBHOOK_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub per_webhook_metrics: bool,
}

/// Where `/healthz`, `/readyz` and `/metrics` are served.
#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = OPS_ADDR_ENV, default_value = "0.0.0.0:9090")]
    pub ops_addr: SocketAddr,
}

/// Accepts `host:port[,host:port...]` with a numeric port on every entry.
pub fn parse_bootstrap_servers(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty: expected host:port[,host:port...]".into());
    }
    for server in value.split(',') {
        let (host, port) = server
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| format!("{server:?} has no port: expected host:port"))?;
        if host.is_empty() {
            return Err(format!("{server:?} has no host: expected host:port"));
        }
        port.parse::<u16>()
            .map_err(|_| format!("{server:?} has no valid port: expected host:port"))?;
    }
    Ok(value.to_owned())
}

/// An absolute http(s) URL with a host.
pub fn parse_http_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL has no host".into());
    }
    value
        .parse::<axum::http::Uri>()
        .map_err(|err| format!("not a valid URL: {err}"))?;
    Ok(value.to_owned())
}

/// Empty (traces off), or an http:// URL with a host; a trailing `/` is dropped so the
/// signal path can be appended.
pub fn parse_otlp_endpoint(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    if value.starts_with("https://") {
        return Err(
            "https is not supported: give the plain http:// URL of a collector \
                    next to the pod, which may forward over TLS"
                .into(),
        );
    }
    let url = parse_http_url(value)?;
    Ok(url.trim_end_matches('/').to_owned())
}

/// A sampling ratio: a number from 0 to 1.
pub fn parse_sample_ratio(value: &str) -> Result<f64, String> {
    let ratio: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number: expected 0 to 1, e.g. 0.25"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{value:?} is outside 0 to 1"))
    }
}

/// A PostgreSQL URL (`postgres://` or `postgresql://`). The error does not echo the
/// value: it may hold a password.
pub fn parse_database_url(value: &str) -> Result<String, String> {
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        Ok(value.to_owned())
    } else {
        Err("expected a postgres:// or postgresql:// URL".into())
    }
}

/// A CIDR range, e.g. `10.0.0.0/8`, or a bare address (a range of one).
pub fn parse_cidr(value: &str) -> Result<Cidr, String> {
    value.trim().parse().map_err(|err| format!("{err}"))
}

/// A positive duration written with its unit: `250ms`, `5s`, `2m` or `1h`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{value:?} has no unit: write e.g. 250ms, 5s, 2m or 1h"))?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} does not start with a whole number"))?;
    let seconds = |factor: u64| Duration::from_secs(number.saturating_mul(factor));
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3_600),
        _ => {
            return Err(format!(
                "{value:?} has unit {unit:?}: expected ms, s, m or h"
            ));
        }
    };
    if duration.is_zero() {
        return Err(format!("{value:?} must be longer than zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct CommonOnly {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn the_runtime_has_the_worker_threads_asked_for() {
        use clap::Parser;
        let common = |args: &[&str]| {
            CommonOnly::try_parse_from([&["test"], args].concat()).map(|parsed| parsed.common)
        };
        let one = common(&["--worker-threads", "1"]).expect("1 is allowed");
        let runtime = one.runtime().expect("a runtime");
        assert_eq!(runtime.metrics().num_workers(), 1);
        let every_cpu = common(&[])
            .expect("the default")
            .runtime()
            .expect("a runtime");
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(every_cpu.metrics().num_workers(), cpus);
        assert!(common(&["--worker-threads", "257"]).is_err());
    }

    #[derive(clap::Parser)]
    struct KafkaOnly {
        #[command(flatten)]
        kafka: KafkaArgs,
    }

    fn kafka_from(args: &[&str]) -> Result<KafkaConnection, String> {
        use clap::Parser;
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        let parsed = KafkaOnly::try_parse_from(argv).map_err(|err| err.to_string())?;
        parsed.kafka.connection().map_err(|err| err.to_string())
    }

    #[test]
    fn kafka_settings_are_validated_and_round_trip_through_flags_and_env() {
        let sasl = kafka_from(&[
            "--kafka-bootstrap-servers=k:9094",
            "--kafka-security-protocol=sasl_ssl",
            "--kafka-sasl-username=hookline-handler",
            "--kafka-sasl-password=s3cret",
            "--kafka-ssl-ca-location=/",
        ])
        .expect("valid");
        assert!(
            !format!("{sasl:?}").contains("s3cret"),
            "Debug shows the password"
        );
        let flags: Vec<String> = sasl.cli_args();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        assert_eq!(kafka_from(&flags).expect("its own flags"), sasl);
        let vars = sasl
            .env_vars()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(
            KafkaConnection::from_vars(&vars).expect("its own env"),
            sasl
        );

        let missing = kafka_from(&[
            "--kafka-bootstrap-servers=k:1",
            "--kafka-security-protocol=sasl_ssl",
            "--kafka-sasl-username=u",
            // Given empty, so a password in this process's environment is not read.
            "--kafka-sasl-password=",
        ])
        .unwrap_err();
        assert!(missing.contains(KAFKA_SASL_PASSWORD_ENV), "{missing}");
        let no_ca = kafka_from(&[
            "--kafka-bootstrap-servers=k:1",
            "--kafka-security-protocol=ssl",
            "--kafka-ssl-ca-location=/no/such/ca.pem",
        ])
        .unwrap_err();
        assert!(no_ca.contains("/no/such/ca.pem"), "{no_ca}");
        let clear = kafka_from(&[
            "--kafka-bootstrap-servers=k:1",
            "--kafka-security-protocol=sasl_plaintext",
        ])
        .unwrap_err();
        assert!(clear.contains("sasl_ssl"), "{clear}");
        assert_eq!(
            kafka_from(&[
                "--kafka-bootstrap-servers=k:1",
                "--kafka-security-protocol=plaintext"
            ])
            .expect("plaintext"),
            KafkaConnection::plaintext("k:1")
        );
    }

    #[test]
    fn database_url_must_be_postgres_and_errors_do_not_echo_it() {
        assert!(parse_database_url("postgres://u:p@h/db").is_ok());
        assert!(parse_database_url("postgresql://h/db").is_ok());
        let err = parse_database_url("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn http_urls_need_scheme_and_host() {
        assert!(parse_http_url("http://handler:8080/webhooks/abc").is_ok());
        assert!(parse_http_url("https://example.com").is_ok());
        for bad in [
            "handler:8080",
            "ftp://x",
            "http://",
            "https:///path",
            "http://a b/",
        ] {
            assert!(parse_http_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn otlp_endpoints_are_empty_or_plain_http_and_ratios_lie_in_0_to_1() {
        assert_eq!(parse_otlp_endpoint(""), Ok(String::new()));
        assert_eq!(
            parse_otlp_endpoint("http://collector:4318/"),
            Ok("http://collector:4318".into())
        );
        for bad in ["collector:4318", "http://", "https://collector:4318"] {
            assert!(parse_otlp_endpoint(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_sample_ratio("0.25"), Ok(0.25));
        assert_eq!(parse_sample_ratio("1"), Ok(1.0));
        assert_eq!(parse_sample_ratio("0"), Ok(0.0));
        for bad in ["", "-0.1", "1.5", "half", "NaN"] {
            assert!(parse_sample_ratio(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations_need_a_whole_number_and_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        for bad in ["", "5", "s", "5d", "-1s", "0s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bootstrap_servers_need_host_and_port_each() {
        assert_eq!(
            parse_bootstrap_servers("127.0.0.1:9092,kafka:9093").unwrap(),
            "127.0.0.1:9092,kafka:9093"
        );
        for bad in ["", "kafka", ":9092", "kafka:port", "a:1,b"] {
            assert!(parse_bootstrap_servers(bad).is_err(), "{bad:?} accepted");
        }
    }
}
