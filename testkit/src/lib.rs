//! Test support only: finds the local stack that `make stack-up` started, and builds
//! the domain values tests share ([`fixtures`]).
//!
//! Tests that need real infrastructure call [`stack()`]. When the stack is not
//! running they fail with a message that says how to start it; they never skip.
#![forbid(unsafe_code)]

pub mod fixtures;
pub mod http;
pub mod kafka_broker;
pub mod log_capture;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod providers;
pub mod slow_senders;
pub mod tools;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Addresses and tools of the running local stack, read from `.stack/env`.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kafka_bootstrap_servers: String,
    pub database_url: String,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    pub vars: HashMap<String, String>,
}

/// The stack's env file: `$HOOKLINE_STACK_ENV`, else `.stack/env` at the repository root.
pub fn env_file() -> PathBuf {
    if let Some(path) = std::env::var_os("HOOKLINE_STACK_ENV") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the repository root")
        .join(".stack/env")
}

/// The running stack. Panics, naming the fix, when `make stack-up` has not been run.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let path = env_file();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
            panic!(
                "the local stack is not running ({}: {err}); start it with `make stack-up`",
                path.display()
            )
        });
        let vars = parse_env(&text);
        let get = |key: &str| {
            vars.get(key).cloned().unwrap_or_else(|| {
                panic!("{} has no {key}; re-run `make stack-up`", path.display())
            })
        };
        Stack {
            kafka_bootstrap_servers: get("KAFKA_BOOTSTRAP_SERVERS"),
            database_url: get("DATABASE_URL"),
            kubeconfig: get("KUBECONFIG").into(),
            kubectl: get("KUBECTL").into(),
            helm: get("HELM").into(),
            vars,
        }
    })
}

/// Parses `export KEY=VALUE` / `KEY=VALUE` lines; `#` starts a comment line.
pub fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim_matches('"').trim_matches('\'');
            Some((key.trim().to_owned(), value.to_owned()))
        })
        .collect()
}

/// A name no other test run uses, for topics, namespaces and databases.
pub fn unique_name(prefix: &str) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &suffix[..12])
}

/// Writes a registry keyring directory as a mounted Secret holds it (a file `primary`
/// naming the primary key id, one file per key) into a new temporary directory.
pub fn registry_keys_dir(primary: &str, keys: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name("hookline-registry-keys"));
    std::fs::create_dir_all(&dir).expect("create the keyring directory");
    write_registry_keys(&dir, primary, keys);
    dir
}

/// Replaces the keyring in `dir` (a rotation): keys not listed are removed.
pub fn write_registry_keys(dir: &Path, primary: &str, keys: &[(&str, &str)]) {
    for entry in std::fs::read_dir(dir).expect("read the keyring directory") {
        let path = entry.expect("a keyring file").path();
        std::fs::remove_file(&path).expect("remove an old keyring file");
    }
    for (id, key) in keys {
        std::fs::write(dir.join(id), key).expect("write a registry key");
    }
    std::fs::write(dir.join("primary"), primary).expect("write the primary key id");
}

/// Creates an empty database of its own for one test and returns its URL.
/// The stack's role has CREATEDB; databases are left behind for inspection and
/// go away with `.stack/`.
pub async fn fresh_database(prefix: &str) -> String {
    use sqlx::Connection;

    let admin_url = &stack().database_url;
    let name = unique_name(prefix).replace('-', "_");
    let mut connection = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|err| panic!("cannot reach PostgreSQL at the stack's DATABASE_URL: {err}"));
    // The name is ours (a prefix and hex digits), so formatting it in is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut connection)
        .await
        .unwrap_or_else(|err| panic!("cannot create database {name}: {err}"));
    with_database(admin_url, &name)
}

/// `url` naming `database` instead, its query (`?sslmode=...&sslrootcert=/path`) kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (server, _) = base
        .rsplit_once('/')
        .expect("a database URL ends with /<database>");
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// Runs a binary with an empty environment (no stack variables leak in) and returns
/// (success, stdout, stderr).
pub fn run_clean(binary: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(binary)
        .args(args)
        .env_clear()
        .output()
        .unwrap_or_else(|err| panic!("cannot run {binary}: {err}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `--help` succeeds and documents each flag with its environment variable.
pub fn assert_help_documents(binary: &str, args: &[&str], flags_and_env: &[(&str, &str)]) {
    let mut with_help = args.to_vec();
    with_help.push("--help");
    let (ok, stdout, stderr) = run_clean(binary, &with_help);
    assert!(ok, "--help failed: {stderr}");
    for (flag, env) in flags_and_env {
        assert!(
            stdout.contains(flag),
            "--help does not mention {flag}:\n{stdout}"
        );
        assert!(
            stdout.contains(env),
            "--help does not mention {env}:\n{stdout}"
        );
    }
}

/// Started without configuration, the binary fails and names what is missing.
pub fn assert_missing_config_is_named(binary: &str, args: &[&str], missing: &[&str]) {
    let (ok, _, stderr) = run_clean(binary, args);
    assert!(!ok, "started without configuration");
    for name in missing {
        assert!(
            stderr.contains(name),
            "error does not name {name}:\n{stderr}"
        );
    }
}

/// Polls `check` every 200 ms until it returns `Some`, or panics naming `what` once
/// `timeout` has passed.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_export_lines_and_ignores_comments() {
        let vars = parse_env("# header\nexport A=1\nB=\"two\"\n\nexport C=x=y\n");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two");
        assert_eq!(vars["C"], "x=y");
        assert_eq!(vars.len(), 3);
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
        assert!(unique_name("topic").starts_with("topic-"));
    }
}
