//! The consumer's configuration: flags with environment fallbacks, validated at start-up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Parser, Subcommand};
use hookline_api::topics;
use hookline_runtime::config::{
    CommonArgs, KafkaArgs, OpsArgs, TraceArgs, WebhookMetricsArgs, parse_database_url,
    parse_duration,
};
use hookline_store::day_partitions::Retention;
use hookline_store::schema::SchemaMode;

/// Hookline's consumer: stores verified events from Kafka in PostgreSQL exactly once in
/// effect, with retry topics and a dead-letter topic.
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-consumer", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub traces: TraceArgs,
    /// PostgreSQL connection URL, e.g. postgres://user:password@host:5432/hookline.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_database_url, hide_env_values = true)]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply the embedded schema migrations and exit.
    Migrate,
    /// Consume events into PostgreSQL until SIGTERM.
    Run(Box<RunArgs>),
    /// Re-publish dead letters to the events topic with a fresh retry budget and mark
    /// them replayed. Events already stored are not stored twice.
    Replay(Box<ReplayArgs>),
}

/// Where events come from and where spent ones go.
#[derive(Debug, Clone, clap::Args)]
pub struct EventTopicArgs {
    /// The topic the handler produces verified events to. Retry tiers are the topics
    /// `<events-topic>.retry.<n>`, one per entry of --retry-tier-delays.
    #[arg(long, env = "CONSUMER_EVENTS_TOPIC", default_value = topics::EVENTS)]
    pub events_topic: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub topics: EventTopicArgs,
    #[command(flatten)]
    pub webhook_metrics: WebhookMetricsArgs,
    /// Consumer group shared by all consumer replicas. The retry tiers are consumed by
    /// the group `<group-id>.retries`, so retries never hold up fresh events.
    #[arg(long, env = "CONSUMER_GROUP_ID", default_value = "hookline-consumer")]
    pub group_id: String,
    /// Static group membership, e.g. the pod name: a replica restarted with the same id
    /// gets its partitions back at once. Off by default: a static member does not leave
    /// the group when it stops, so after a scale-down its partitions sit unread for the
    /// session timeout; without it a stopping replica hands them over at once.
    #[arg(long, env = "CONSUMER_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,
    /// How long a replica that stopped answering (a crash, a lost node) keeps its
    /// partitions before the group moves them, e.g. 10s (the broker allows 6s to 5m by
    /// default). Shorter moves them sooner; too short makes a slow replica lose them.
    #[arg(long, env = "CONSUMER_SESSION_TIMEOUT", default_value = "10s",
          value_parser = parse_session_timeout)]
    pub session_timeout: Duration,
    /// The dead-letter topic: events whose retry budget is spent.
    #[arg(long, env = "CONSUMER_DEAD_LETTER_TOPIC", default_value = topics::DEAD_LETTERS)]
    pub dead_letter_topic: String,
    /// The log-compacted registry topic the operator writes (read fully before ready).
    #[arg(long, env = "CONSUMER_REGISTRY_TOPIC", default_value = topics::REGISTRY)]
    pub registry_topic: String,
    /// The delay each retry tier stands for, shortest first (e.g. 1s,10s,1m,10m,1h), one
    /// per retry topic the operator creates (five). A retry goes to the first tier whose
    /// delay covers the wait its Webhook's policy asks for.
    #[arg(long, env = "CONSUMER_RETRY_TIER_DELAYS", default_value = "1s,10s,1m,10m,1h",
          value_parser = parse_tier_delays)]
    pub retry_tier_delays: TierDelays,
    /// Most events written in one database transaction.
    #[arg(long, env = "CONSUMER_BATCH_MAX_EVENTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_max_events: u32,
    /// Longest a batch waits for more events after its first one, e.g. 20ms.
    #[arg(long, env = "CONSUMER_BATCH_MAX_WAIT", default_value = "20ms", value_parser = parse_duration)]
    pub batch_max_wait: Duration,
    /// Fraction of processing attempts failed on purpose (0 to 1), to show retries and
    /// dead letters at work as the prototype's demo did with 0.3. Off by default.
    #[arg(long, env = "CONSUMER_INJECT_FAILURE_RATE", default_value_t = 0.0,
          value_parser = parse_rate)]
    pub inject_failure_rate: f64,
    /// `migrate`: apply missing schema migrations at start (the login owns the schema).
    /// `verify`: only check they are applied, waiting until they are (a least-privileged
    /// login granted hookline_consumer; `hookline-consumer migrate` runs as the owner).
    #[arg(long, env = "CONSUMER_SCHEMA", value_enum, default_value = "migrate")]
    pub schema: SchemaMode,
    /// PostgreSQL connections this replica opens at most.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(2..=100))]
    pub database_max_connections: u32,
    /// Transactions each batch is split into (by Kafka partition) and written side by
    /// side, so PostgreSQL works on more than one core. Each pipeline (events, retries)
    /// uses up to this many connections at once.
    #[arg(long, env = "DATABASE_PARALLEL_TRANSACTIONS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub database_parallel_transactions: u32,
    /// Longest a batch's transaction may take before it counts as a database outage.
    #[arg(long, env = "DATABASE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub database_timeout: Duration,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// How long rows are kept. The events table has one partition per UTC day of
/// received_at; a day goes as a whole.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    /// Days events are kept (0: forever). A day's partition is dropped once the whole
    /// day is older than this and none of its rows was stored more recently; the
    /// idempotency key holds within this window.
    #[arg(long, env = "CONSUMER_EVENTS_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub events_retention_days: u32,
    /// Days dead letters are kept after they died (0: forever), replayed or not.
    #[arg(long, env = "CONSUMER_DEAD_LETTER_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub dead_letter_retention_days: u32,
    /// Days before an event's own in which a sender's retry of it is recognised (the
    /// same day always is). Each day costs an index probe per stored event; Stripe
    /// documents retrying for up to 3 days. At most the retention applies.
    #[arg(long, env = "CONSUMER_DEDUP_WINDOW_DAYS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub dedup_window_days: u32,
    /// Days after today whose events partitions are created in advance.
    #[arg(long, env = "CONSUMER_PARTITIONS_AHEAD_DAYS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=60))]
    pub partitions_ahead_days: u32,
    /// How often partitions are created ahead and expired rows removed, e.g. 1h.
    #[arg(long, env = "CONSUMER_RETENTION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub retention_interval: Duration,
}

impl RetentionArgs {
    pub fn retention(&self) -> Retention {
        let days = |value: u32| (value > 0).then_some(value);
        Retention {
            events_days: days(self.events_retention_days),
            dead_letter_days: days(self.dead_letter_retention_days),
            days_ahead: self.partitions_ahead_days,
            dedup_window_days: self.dedup_window_days,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(ArgGroup::new("selection").required(true).multiple(true)
    .args(["webhook", "since", "until", "reason", "all"])))]
pub struct ReplayArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub topics: EventTopicArgs,
    /// Replay only the dead letters of this webhook id.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Replay only events that died at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Replay only events that died before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// Replay only the dead letters that died for this reason (as the console lists them).
    #[arg(long)]
    pub reason: Option<String>,
    /// Replay every dead letter not replayed yet.
    #[arg(long, conflicts_with_all = ["webhook", "since", "until", "reason"])]
    pub all: bool,
    /// Who asks for the replay, recorded with it (the console records its user).
    #[arg(long, env = "USER", default_value = "hookline-consumer replay")]
    pub requested_by: String,
}

/// The delays of the retry tiers, strictly increasing, at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierDelays(pub Vec<Duration>);

/// Comma-separated durations, strictly increasing, one per retry tier of the topic
/// layout (a tier without a topic, or a topic nobody reads, would lose events).
pub fn parse_tier_delays(value: &str) -> Result<TierDelays, String> {
    let delays = value
        .split(',')
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if !delays.windows(2).all(|pair| pair[0] < pair[1]) {
        return Err(format!("{value:?}: tier delays must grow strictly"));
    }
    if delays.len() != topics::RETRY_TIER_COUNT {
        return Err(format!(
            "{value:?}: expected {} delays, one per retry topic",
            topics::RETRY_TIER_COUNT
        ));
    }
    Ok(TierDelays(delays))
}

/// Within the broker's default bounds (group.min/max.session.timeout.ms, 6 s to 30 min):
/// outside them the broker refuses the consumer when it joins, long after start-up.
fn parse_session_timeout(value: &str) -> Result<Duration, String> {
    let timeout = parse_duration(value)?;
    if (Duration::from_secs(6)..=Duration::from_secs(1_800)).contains(&timeout) {
        Ok(timeout)
    } else {
        Err(format!(
            "{value:?}: the broker accepts session timeouts from 6s to 30m"
        ))
    }
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{value:?}: expected a number from 0 to 1")),
    }
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|err| format!("{value:?} is not an RFC 3339 time: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tier_delays_are_the_core_tiers_and_must_grow() {
        let cli = Cli::try_parse_from([
            "hookline-consumer",
            "--database-url",
            "postgres://h/db",
            "run",
            "--kafka-bootstrap-servers",
            "127.0.0.1:9092",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.retry_tier_delays.0, topics::RETRY_TIER_DELAYS);
        assert_eq!(args.batch_max_wait, Duration::from_millis(20));
        assert!(parse_tier_delays("100ms,1s,2s,3s,4s").is_ok());
        assert!(
            parse_tier_delays("100ms,1s").is_err(),
            "one delay per retry topic"
        );
        assert!(parse_tier_delays("1s,1s").is_err());
        assert!(parse_tier_delays("10s,1s").is_err());
    }

    #[test]
    fn session_timeout_is_within_the_brokers_bounds() {
        assert_eq!(parse_session_timeout("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_session_timeout("1s").is_err());
        assert!(parse_session_timeout("1h").is_err());
    }

    #[test]
    fn failure_rate_is_a_fraction() {
        assert_eq!(parse_rate("0.3"), Ok(0.3));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("-0.1").is_err());
        assert!(parse_rate("lots").is_err());
    }

    #[test]
    fn replay_needs_a_selection_and_all_stands_alone() {
        let parse = |args: &[&str]| {
            let mut argv = vec![
                "hookline-consumer",
                "--database-url",
                "postgres://h/db",
                "replay",
                "--kafka-bootstrap-servers",
                "127.0.0.1:9092",
            ];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv)
        };
        assert!(parse(&[]).is_err(), "replay without a selection");
        assert!(parse(&["--all"]).is_ok());
        assert!(parse(&["--all", "--webhook", "w"]).is_err());
        let cli = parse(&["--webhook", "w", "--since", "2026-01-01T00:00:00Z"]).unwrap();
        let Command::Replay(args) = cli.command else {
            panic!("expected replay");
        };
        assert_eq!(args.webhook.as_deref(), Some("w"));
        assert!(args.since.is_some() && args.until.is_none());
        assert!(parse(&["--since", "yesterday"]).is_err());
    }
}
