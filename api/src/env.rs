//! The environment variables every Hookline service reads for its shared flags (declared
//! with clap in `hookline_runtime::config`), and that whoever starts a service sets: the
//! operator for the emitters it deploys, the chart, `make run` and the tests.

/// The environment variables of the shared flags, for whoever sets them for a service
/// (the operator, for the emitters it deploys).
pub const LOG_FORMAT_ENV: &str = "HOOKLINE_LOG_FORMAT";
pub const OPS_ADDR_ENV: &str = "HOOKLINE_OPS_ADDR";
pub const WORKER_THREADS_ENV: &str = "HOOKLINE_WORKER_THREADS";
/// The environment variables of the trace flags: OpenTelemetry's own names where the
/// specification has one, so a platform's usual settings apply.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
pub const TRACE_SAMPLE_RATIO_ENV: &str = "HOOKLINE_TRACE_SAMPLE_RATIO";
/// The environment variables of the Kafka flags: every Kafka client of Hookline reads the
/// same names, and tests hand them to the processes they start.
pub const KAFKA_BOOTSTRAP_SERVERS_ENV: &str = "KAFKA_BOOTSTRAP_SERVERS";
pub const KAFKA_SECURITY_PROTOCOL_ENV: &str = "KAFKA_SECURITY_PROTOCOL";
pub const KAFKA_SASL_MECHANISM_ENV: &str = "KAFKA_SASL_MECHANISM";
pub const KAFKA_SASL_USERNAME_ENV: &str = "KAFKA_SASL_USERNAME";
pub const KAFKA_SASL_PASSWORD_ENV: &str = "KAFKA_SASL_PASSWORD";
pub const KAFKA_SSL_CA_LOCATION_ENV: &str = "KAFKA_SSL_CA_LOCATION";
