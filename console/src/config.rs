//! The console's configuration: flags with environment fallbacks, validated at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use hookline_api::topics;
use hookline_core::source::Cidr;
use hookline_runtime::config::{
    CommonArgs, KafkaArgs, OpsArgs, parse_cidr, parse_database_url, parse_duration,
};

/// Hookline's web console and read API (/api/v1): webhooks, events, dead letters and
/// their replay, live traffic. Reads the consumer's tables; never writes events.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hookline-console",
    version,
    after_help = "Password hashes for --users-file: `hookline-console hash-password` reads a \
                  password on stdin and prints its argon2id hash (`hookline-console \
                  hash-password --help`)."
)]
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
    /// File of console users, one `username:role:hash` per line (role viewer or
    /// operator), e.g. a mounted Kubernetes Secret. The hash is argon2id in PHC format,
    /// made by `hookline-console hash-password`; a password in clear is refused at start
    /// (and a changed file holding one is not taken). Re-read when it changes: a new role
    /// holds from the next request, a removed user's sessions end.
    #[arg(long, env = "CONSOLE_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// How often the users file is looked at for changes.
    #[arg(long, env = "CONSOLE_USERS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub users_reload_interval: Duration,
    /// File holding the key that signs session cookies and CSRF tokens (at least 32
    /// bytes). Without it each process makes its own.
    #[arg(long, env = "CONSOLE_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// How long a session lasts after its sign-in, used or not. Sessions live in this
    /// process: a restart ends them all, and replicas do not share them.
    #[arg(long, env = "CONSOLE_SESSION_LIFETIME", default_value = "12h", value_parser = parse_duration)]
    pub session_lifetime: Duration,
    /// A session unused for this long ends.
    #[arg(long, env = "CONSOLE_SESSION_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub session_idle_timeout: Duration,
    /// Mark the session cookie Secure, so browsers send it over HTTPS only (the console
    /// behind a TLS-terminating Ingress). Set false only for plain HTTP on loopback
    /// (`make run`).
    #[arg(long, env = "CONSOLE_SECURE_COOKIE", default_value_t = true, action = clap::ArgAction::Set)]
    pub secure_cookie: bool,
    /// Failed sign-ins (or HTTP Basic checks) for one username, within --login-lockout,
    /// after which that username is locked for --login-lockout: 429 with Retry-After,
    /// even for the right password.
    #[arg(long, env = "CONSOLE_LOGIN_MAX_FAILURES_PER_USER", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_max_failures_per_user: u32,
    /// Failed sign-ins from one source address, whatever the usernames, after which that
    /// address is locked the same way. Behind an Ingress the source is the ingress
    /// controller, so keep it above the per-user one.
    #[arg(long, env = "CONSOLE_LOGIN_MAX_FAILURES_PER_SOURCE", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_max_failures_per_source: u32,
    /// The window failed sign-ins are counted in, and how long a lock lasts.
    #[arg(long, env = "CONSOLE_LOGIN_LOCKOUT", default_value = "15m", value_parser = parse_duration)]
    pub login_lockout: Duration,
    /// Header an authenticating proxy (e.g. oauth2-proxy) sets to the signed-in user's
    /// name, e.g. X-Forwarded-User. Believed only from --auth-proxy-trusted-cidrs. With
    /// it, HTTP Basic is off.
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
    /// peer is ignored. As narrow as the proxy's own address, e.g. 127.0.0.1/32 for a
    /// proxy in the console's pod.
    #[arg(long, env = "CONSOLE_AUTH_PROXY_TRUSTED_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
    pub auth_proxy_trusted_cidrs: Vec<Cidr>,
    /// After SIGTERM, how long open requests (and live streams) may take before they are dropped.
    #[arg(long, env = "CONSOLE_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl Config {
    /// The one namespace whose Webhooks the console sees; `None`: every namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.watch_namespace
            .as_deref()
            .filter(|namespace| !namespace.is_empty())
    }
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
    fn cookies_are_secure_unless_turned_off_and_limits_are_positive() {
        assert!(parse(&[]).expect("defaults").secure_cookie);
        assert!(
            !parse(&["--secure-cookie", "false"])
                .expect("off")
                .secure_cookie
        );
        let err = parse(&["--login-max-failures-per-user", "0"]).expect_err("zero");
        assert!(
            err.to_string().contains("--login-max-failures-per-user"),
            "{err}"
        );
        assert!(parse(&["--login-lockout", "0s"]).is_err());
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
