//! Talking to the release binaries a stage starts on loopback.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;

/// A minimal HTTP/1.0 GET on `127.0.0.1:port`: (status, body).
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    http_get_with(port, path, "").await
}

/// The same with extra header lines (each ending in `\r\n`), e.g. an Authorization.
pub async fn http_get_with(port: u16, path: &str, headers: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// SIGTERM, so the service shuts down gracefully, then waits up to `timeout` for it.
pub async fn terminate(child: &mut Child, timeout: Duration) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
    }
    tokio::time::timeout(timeout, child.wait()).await??;
    Ok(())
}

/// Starts the release binary `name` (next to this one) as `configure` sets it up, with
/// `RUST_LOG=warn` and its log in `.stack/logs/bench-<name>.log`, and waits until
/// `/readyz` on `ready_port` answers 200 (a minute at most).
pub async fn start_ready(
    name: &str,
    configure: impl FnOnce(&mut tokio::process::Command),
    ready_port: u16,
) -> anyhow::Result<Child> {
    let binary = std::env::current_exe()?.with_file_name(format!("hookline-{name}"));
    let log_dir = std::env::var("HOOKLINE_STACK_DIR").unwrap_or_else(|_| ".stack".into());
    let log_path = format!("{log_dir}/logs/bench-{name}.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut command = tokio::process::Command::new(&binary);
    configure(&mut command);
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !matches!(http_get(ready_port, "/readyz").await, Ok((200, _))) {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the {name} exited ({status}); see {log_path}");
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the {name} was not ready within 60 s; see {log_path}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(child)
}

/// Creates database `name` beside the one of `admin_url`; its URL.
pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut connection = PgConnection::connect(admin_url).await?;
    // The name is ours (a prefix and hex digits), so formatting it in is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await?;
    let (server, _) = admin_url
        .rsplit_once('/')
        .context("DATABASE_URL ends with /<database>")?;
    Ok(format!("{server}/{name}"))
}

pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut connection = PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&mut connection)
    .await?;
    Ok(())
}
