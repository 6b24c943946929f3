//! The console's configuration: flags with environment fallbacks, validated at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hookline_api::topics;
use hookline_core::config::{
    CommonArgs, KafkaArgs, OpsArgs, parse_cidr, parse_database_url, parse_duration,
};
use hookline_core::source::Cidr;

/// Hookline's web console and read API (/api/v1): webhooks, events, dead letters and
/// their replay, live traffic. Reads the consumer's tables; never writes events.
#[derive(Debug, Clone, Parser)]
#[command(name = "hookline-console", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Address the pages and the API listen on.
    #[arg(long, env = "CONSOLE_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
    /// PostgreSQL URL of a login with the role hookline_console (read the tables, record
    /// replays), e.g. postgres://console:password@host:5432/hookline.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: String,
    /// Longest a console query may run; a search that needs longer answers 422 (narrow it).
    #[arg(long, env = "CONSOLE_QUERY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub query_timeout: Duration,
    /// The events topic replayed dead letters go back to.
    #[arg(long, env = "CONSOLE_EVENTS_TOPIC", default_value = topics::EVENTS)]
    pub events_topic: String,
    /// The namespace whose Webhooks are listed; all namespaces when empty.
    #[arg(long, env = "CONSOLE_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// File of console users, one `username:role:password` per line (role viewer or
    /// operator), e.g. a mounted Kubernetes Secret.
    #[arg(long, env = "CONSOLE_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// File holding the key that signs session cookies and CSRF tokens (at least 32
    /// bytes). Replicas must share it; without it each process makes its own, so a
    /// restart logs everyone out.
    #[arg(long, env = "CONSOLE_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// How long a login lasts.
    #[arg(long, env = "CONSOLE_SESSION_LIFETIME", default_value = "12h", value_parser = parse_duration)]
    pub session_lifetime: Duration,
    /// Mark the session cookie Secure (serve the console over HTTPS, e.g. behind its Ingress).
    #[arg(long, env = "CONSOLE_SECURE_COOKIE")]
    pub secure_cookie: bool,
    /// Header an authenticating proxy (e.g. oauth2-proxy) sets to the signed-in user's
    /// name, e.g. X-Forwarded-User. Believed only from --auth-proxy-trusted-cidrs.
    #[arg(
        long,
        env = "CONSOLE_AUTH_PROXY_USER_HEADER",
        requires = "auth_proxy_trusted_cidrs"
    )]
    pub auth_proxy_user_header: Option<String>,
    /// Header with the user's groups, comma-separated, e.g. X-Forwarded-Groups.
    #[arg(
        long,
        env = "CONSOLE_AUTH_PROXY_GROUPS_HEADER",
        requires = "auth_proxy_user_header"
    )]
    pub auth_proxy_groups_header: Option<String>,
    /// Groups whose members get the operator role (replay); everyone else the proxy
    /// signs in is a viewer.
    #[arg(
        long,
        env = "CONSOLE_AUTH_PROXY_OPERATOR_GROUPS",
        value_delimiter = ','
    )]
    pub auth_proxy_operator_groups: Vec<String>,
    /// Comma-separated CIDRs of the authenticating proxy: the user header of any other
    /// peer is ignored.
    #[arg(long, env = "CONSOLE_AUTH_PROXY_TRUSTED_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub auth_proxy_trusted_cidrs: Vec<Cidr>,
    /// After SIGTERM, how long open requests (and live streams) may take before they are dropped.
    #[arg(long, env = "CONSOLE_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(
            [
                "hookline-console",
                "--kafka-bootstrap-servers",
                "127.0.0.1:9092",
                "--database-url",
                "postgres://console@db/hookline",
            ]
            .iter()
            .chain(args),
        )
    }

    #[test]
    fn a_proxy_user_header_needs_the_proxies_it_is_believed_from() {
        let err =
            parse(&["--auth-proxy-user-header", "X-Forwarded-User"]).expect_err("no trusted CIDRs");
        assert!(
            err.to_string().contains("--auth-proxy-trusted-cidrs"),
            "{err}"
        );
        let config = parse(&[
            "--auth-proxy-user-header",
            "X-Forwarded-User",
            "--auth-proxy-trusted-cidrs",
            "10.0.0.0/8,127.0.0.1",
        ])
        .expect("valid");
        assert_eq!(config.auth_proxy_trusted_cidrs.len(), 2);
    }

    #[test]
    fn a_database_url_must_be_postgres() {
        let err = Config::try_parse_from([
            "hookline-console",
            "--kafka-bootstrap-servers",
            "127.0.0.1:9092",
            "--database-url",
            "mysql://db",
        ])
        .expect_err("not postgres");
        assert!(err.to_string().contains("postgres://"), "{err}");
    }
}
