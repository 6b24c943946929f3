//! The consumer's configuration: flags with environment fallbacks, validated at start-up.

use clap::{Parser, Subcommand};
use hookline_core::config::{CommonArgs, KafkaArgs, OpsArgs};

/// Hookline's consumer: stores verified events from Kafka in PostgreSQL exactly once in
/// effect, with retry topics and a dead-letter topic.
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-consumer", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
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
    Run(RunArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Consumer group shared by all consumer replicas.
    #[arg(long, env = "CONSUMER_GROUP_ID", default_value = "hookline-consumer")]
    pub group_id: String,
}

/// Accepts only postgres:// or postgresql:// URLs, so a typo fails at start-up.
pub fn parse_database_url(value: &str) -> Result<String, String> {
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        Ok(value.to_owned())
    } else {
        Err("expected a postgres:// or postgresql:// URL".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_must_be_postgres_and_errors_do_not_echo_it() {
        assert!(parse_database_url("postgres://u:p@h/db").is_ok());
        assert!(parse_database_url("postgresql://h/db").is_ok());
        let err = parse_database_url("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
