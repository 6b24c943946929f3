//! Talking to the release binaries a stage starts on loopback, and measuring the CPU
//! time processes spend.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use hookline_core::registry::Keyring;
use hookline_runtime::kafka::KafkaConnection;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
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
    exchange(
        port,
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n"),
    )
    .await
}

/// A minimal HTTP/1.0 POST of a JSON `body` on `127.0.0.1:port`: (status, body).
pub async fn http_post(port: u16, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    exchange(
        port,
        format!(
            "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// A keep-alive HTTP/1.1 client connection to `address` (host:port), without Nagle's
/// delay; its driver runs as a task of its own.
pub async fn http1_connect(address: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends `request` and reads the answer until the server closes (HTTP/1.0).
async fn exchange(port: u16, request: String) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(request.as_bytes()).await?;
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
    with_database(admin_url, name, "DATABASE_URL")
}

/// `url` (of the variable `variable`) naming database `name` instead, its query
/// (`?sslmode=verify-full&sslrootcert=/path/ca.pem`) kept.
pub fn with_database(url: &str, name: &str, variable: &str) -> anyhow::Result<String> {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    if !base.contains('/') {
        anyhow::bail!("{variable} ends with /<database>");
    }
    Ok(hookline_testkit::with_database(url, name))
}

/// The stack's Kafka cluster and login, from the environment (`.stack/env`).
pub fn kafka_connection() -> anyhow::Result<KafkaConnection> {
    KafkaConnection::from_vars(&std::env::vars().collect())
        .context("no Kafka settings: source .stack/env (make stack-up) first")
}

/// A registry keyring of one new key `k1`: in memory, to seal entries, and written to a
/// keyring directory (as a mounted Secret holds it) for the processes started.
pub struct BenchKeys {
    pub keyring: Keyring,
    pub dir: std::path::PathBuf,
}

impl BenchKeys {
    pub fn generate() -> anyhow::Result<Self> {
        let key = Keyring::generate_key();
        let keyring = Keyring::new("k1", [("k1", key.as_str())])?;
        let dir = hookline_testkit::registry_keys_dir("k1", &[("k1", &key)]);
        Ok(Self { keyring, dir })
    }
}

impl Drop for BenchKeys {
    fn drop(&mut self) {
        // A keyring left in the temporary directory would be a key lying around.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// A running process, told apart from a later one that reuses its pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    started: u64,
}

/// The fields of `/proc/PID/stat` the CPU figures need.
struct Stat {
    ppid: u32,
    started: u64,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
}

fn read_stat(pid: u32) -> anyhow::Result<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    parse_stat(&stat).with_context(|| format!("malformed /proc/{pid}/stat"))
}

fn parse_stat(stat: &str) -> Option<Stat> {
    // Fields after the command name (which may hold spaces and parentheses) start after
    // the last ')'; there, field 4 of proc(5) (ppid) is index 1, utime..cstime (14-17)
    // are 11-14 and starttime (22) is 19.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(number(1)?).ok()?,
        started: number(19)?,
        ticks: (11..=14).map(number).sum::<Option<u64>>()?,
    })
}

/// Clock ticks per second of /proc's times (`getconf CLK_TCK`, 100 on Linux).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

impl Process {
    pub fn find(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            pid,
            started: read_stat(pid)?.started,
        })
    }

    /// User plus system CPU seconds of this process and every descendant, including
    /// the children already reaped (their time moved into the parent's cutime and
    /// cstime). So the difference of two readings is what the whole tree spent in
    /// between, even when short-lived children come and go (PostgreSQL's backends under
    /// the postmaster, nginx's workers under its master).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(std::slice::from_ref(self))
    }
}

/// Every process of /proc by parent, with its CPU ticks: one pass, so the descendants of
/// several processes are found together.
struct ProcessTable {
    children: HashMap<u32, Vec<(u32, u64)>>,
}

impl ProcessTable {
    fn read() -> anyhow::Result<Self> {
        let mut children: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
        for entry in std::fs::read_dir("/proc")? {
            let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // A process that exits while /proc is read is simply not there any more.
            if let Ok(stat) = read_stat(pid) {
                children
                    .entry(stat.ppid)
                    .or_default()
                    .push((pid, stat.ticks));
            }
        }
        Ok(Self { children })
    }

    /// The descendants of `pid` (not itself), with their ticks.
    fn descendants(&self, pid: u32) -> Vec<(u32, u64)> {
        let mut found = Vec::new();
        let mut pending = vec![pid];
        while let Some(parent) = pending.pop() {
            for (child, ticks) in self.children.get(&parent).into_iter().flatten() {
                found.push((*child, *ticks));
                pending.push(*child);
            }
        }
        found
    }
}

/// Fails when `process` exited, or its pid now belongs to a later one.
fn still_running(process: &Process) -> anyhow::Result<Stat> {
    let root = read_stat(process.pid)?;
    if root.started != process.started {
        anyhow::bail!("process {} exited and its pid was reused", process.pid);
    }
    Ok(root)
}

/// The CPU seconds of several processes, each with its descendants, together (one
/// pass over /proc).
pub fn cpu_seconds(processes: &[Process]) -> anyhow::Result<f64> {
    let table = ProcessTable::read()?;
    let mut ticks = 0;
    for process in processes {
        ticks += still_running(process)?.ticks;
        ticks += table
            .descendants(process.pid)
            .iter()
            .map(|(_, t)| t)
            .sum::<u64>();
    }
    Ok(ticks as f64 / ticks_per_second())
}

/// One thread's context switches so far: each is a time it stopped running, to sleep
/// (voluntary) or preempted, so the count is how often it was woken or scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSwitches {
    pub pid: u32,
    pub tid: u32,
    /// The thread's name (`/proc/PID/task/TID/comm`).
    pub name: String,
    pub switches: u64,
}

/// The threads of several processes and of their descendants, with their context
/// switches so far. A thread that exits between two readings takes its count with it.
pub fn thread_switches(processes: &[Process]) -> anyhow::Result<Vec<ThreadSwitches>> {
    let table = ProcessTable::read()?;
    let mut threads = Vec::new();
    for process in processes {
        still_running(process)?;
        let pids = std::iter::once(process.pid)
            .chain(table.descendants(process.pid).into_iter().map(|(p, _)| p));
        for pid in pids {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for task in tasks {
                let Some(tid) = task?.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let dir = format!("/proc/{pid}/task/{tid}");
                // A thread that ended while its process was read is not counted.
                let (Ok(status), Ok(name)) = (
                    std::fs::read_to_string(format!("{dir}/status")),
                    std::fs::read_to_string(format!("{dir}/comm")),
                ) else {
                    continue;
                };
                threads.push(ThreadSwitches {
                    pid,
                    tid,
                    name: name.trim().to_owned(),
                    switches: context_switches(&status),
                });
            }
        }
    }
    Ok(threads)
}

/// Voluntary plus nonvoluntary context switches of a `/proc/.../status` text.
fn context_switches(status: &str) -> u64 {
    status
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            matches!(
                name,
                "voluntary_ctxt_switches" | "nonvoluntary_ctxt_switches"
            )
            .then(|| value.trim().parse::<u64>().ok())
            .flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces() {
        let line = "42 (postgres: a (b) c) S 7 42 42 0 -1 4194560 1 0 0 0 \
                    300 20 5 3 20 0 1 0 123456 1000 10 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.ppid, 7);
        assert_eq!(stat.ticks, 328);
        assert_eq!(stat.started, 123_456);
        assert!(parse_stat("42 (x) S 7").is_none());
    }

    #[test]
    fn context_switches_add_voluntary_and_nonvoluntary() {
        let status = "Name:\ttokio-runtime-w\nThreads:\t1\n\
                      voluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(context_switches(status), 127);
        assert_eq!(context_switches("Name:\tx\n"), 0);
    }

    #[test]
    fn a_sleeping_thread_of_this_process_is_found_with_its_name_and_switches() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::Builder::new()
            .name("bench-sleeper".into())
            .spawn(move || {
                // Every receive that finds nothing puts the thread to sleep: a switch.
                while rx.recv_timeout(Duration::from_millis(1)).is_err() {}
            })
            .unwrap();
        let me = Process::find(std::process::id()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let threads = thread_switches(&[me]).unwrap();
            let found = threads.iter().find(|t| t.name == "bench-sleeper");
            if found.is_some_and(|t| t.switches > 2 && t.pid == me.pid) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no sleeper: {threads:?}"
            );
            std::thread::yield_now();
        }
        tx.send(()).unwrap();
        sleeper.join().unwrap();
    }

    #[test]
    fn a_database_url_names_another_database_and_keeps_its_query() {
        let url = "postgres://u:p@db:5432/hookline?sslmode=verify-full&sslrootcert=/a/b/ca.pem";
        assert_eq!(
            with_database(url, "other", "DATABASE_URL").unwrap(),
            "postgres://u:p@db:5432/other?sslmode=verify-full&sslrootcert=/a/b/ca.pem"
        );
        assert_eq!(
            with_database("postgres://db/hookline", "other", "DATABASE_URL").unwrap(),
            "postgres://db/other"
        );
        assert!(with_database("hookline?x=/y", "other", "DATABASE_URL").is_err());
    }

    #[test]
    fn a_busy_process_shows_cpu_time() {
        let me = Process::find(std::process::id()).unwrap();
        let before = me.cpu_seconds().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        // Spins until a clock tick is charged (a loaded machine may take a while).
        while me.cpu_seconds().unwrap() <= before {
            assert!(std::time::Instant::now() < deadline, "no CPU time in 10 s");
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
    }
}
