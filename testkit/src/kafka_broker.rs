//! A private, single-node Kafka broker for fault tests that stop or kill a broker:
//! the stack's broker is shared by every engineer's tests and must never be stopped.
//!
//! It runs from the same jars as the stack's (`KAFKA_LIBS` in `.stack/env`), in a
//! temporary directory with ports of its own, and is killed when dropped.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::free_port;
use crate::stack;

/// A KRaft broker+controller of its own. `kill` and `start` keep its data, so a test
/// can take it down and bring it back with everything it had acknowledged.
pub struct PrivateKafka {
    dir: PathBuf,
    libs: String,
    port: u16,
    child: Option<Child>,
}

impl PrivateKafka {
    /// Formats a fresh log directory and starts the broker; returns once it accepts
    /// connections and logged that it started (up to two minutes on a busy machine).
    pub fn start() -> Self {
        let libs =
            stack().vars.get("KAFKA_LIBS").cloned().unwrap_or_else(|| {
                panic!("the stack's env has no KAFKA_LIBS; re-run `make stack-up`")
            });
        let dir = std::env::temp_dir().join(crate::unique_name("hookline-private-kafka"));
        std::fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let port = free_port();
        let controller_port = free_port();
        std::fs::write(
            dir.join("server.properties"),
            config(&dir, port, controller_port),
        )
        .unwrap_or_else(|err| panic!("cannot write the private broker's config: {err}"));
        let format = java(&libs)
            .args(["kafka.tools.StorageTool", "format", "--standalone", "-t"])
            .arg(cluster_id())
            .arg("-c")
            .arg(dir.join("server.properties"))
            .stdout(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run java for StorageTool: {err}"));
        assert!(
            format.status.success(),
            "StorageTool format failed: {}",
            String::from_utf8_lossy(&format.stderr)
        );
        let mut broker = Self {
            dir,
            libs,
            port,
            child: None,
        };
        broker.start_again();
        broker
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no controlled shutdown, like a crashed broker. Data written so far
    /// stays in the page cache and the log directory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker on its existing data (after `kill`) and waits until it is up.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "the private broker is already running"
        );
        let log_path = self.dir.join("kafka.log");
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|err| panic!("cannot open {}: {err}", log_path.display()));
        let err_log = log
            .try_clone()
            .unwrap_or_else(|err| panic!("cannot share the log file: {err}"));
        let child = java(&self.libs)
            .args(["-Xmx256m", "-Xms256m", "-XX:+UseSerialGC"])
            .args(["kafka.Kafka"])
            .arg(self.dir.join("server.properties"))
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start the private broker: {err}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the private broker exited ({status}); see {}",
                    log_path.display()
                );
            }
            if started_since(&log_path, log_start)
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private broker did not start within 120 s; see {}",
                log_path.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The JVM with the Kafka jars on its class path, logging warnings only.
fn java(libs: &str) -> Command {
    let mut command = Command::new("java");
    command
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info")
        .arg("-cp")
        .arg(format!("{libs}/*"));
    command
}

/// Whether the broker logged its start after byte `offset` of its log.
fn started_since(log: &Path, offset: u64) -> bool {
    let mut text = String::new();
    std::fs::File::open(log)
        .and_then(|mut file| file.read_to_string(&mut text))
        .is_ok()
        && text
            .get(usize::try_from(offset).unwrap_or(usize::MAX)..)
            .is_some_and(|tail| tail.contains("Kafka Server started"))
}

/// The stack broker's settings (`dev/components/kafka-server.properties`, as
/// `dev/components/kafka.sh` writes them) with ports and a log directory of its own and
/// one partition per topic.
fn config(dir: &Path, port: u16, controller_port: u16) -> String {
    include_str!("../../dev/components/kafka-server.properties")
        .replace("@CONTROLLER_PORT@", &controller_port.to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@LOG_DIR@", &dir.join("data").display().to_string())
        .replace("@PARTITIONS@", "1")
}

/// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding, never
/// starting with `-` (Kafka's `random-uuid` avoids it too: StorageTool's argument
/// parser would take the id for a flag, one id in 64).
fn cluster_id() -> String {
    loop {
        let id = random_base64_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn random_base64_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits = 0u32;
    let mut width = 0;
    let mut id = String::new();
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        width += 8;
        while width >= 6 {
            width -= 6;
            id.push(char::from(ALPHABET[((bits >> width) & 63) as usize]));
        }
    }
    if width > 0 {
        id.push(char::from(ALPHABET[((bits << (6 - width)) & 63) as usize]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_base64_characters() {
        let id = cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(id, cluster_id());
        assert!(
            (0..10_000).all(|_| !cluster_id().starts_with('-')),
            "an id would be read as a flag"
        );
    }
}
