//! Figures of one benchmark stage: printed as a table and written to
//! `bench/results/<stage>.json`; `dev/bench.sh` merges the stages into `latest.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// The figures one stage measured. Key names carry their unit (`_ms`, `_per_s`, `_mb`).
pub struct Report {
    stage: &'static str,
    figures: Map<String, Value>,
}

impl Report {
    pub fn new(stage: &'static str) -> Self {
        Self {
            stage,
            figures: Map::new(),
        }
    }

    pub fn figure(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.figures.insert(key.to_owned(), value.into());
        self
    }

    /// Adds `<prefix>_p50_ms`, `_p99_ms`, `_p999_ms`, `_max_ms` from latency samples.
    pub fn latencies(&mut self, prefix: &str, samples: &mut [Duration]) -> &mut Self {
        samples.sort_unstable();
        for (name, q) in [("p50", 0.50), ("p99", 0.99), ("p999", 0.999)] {
            self.figure(
                &format!("{prefix}_{name}_ms"),
                round(millis(percentile(samples, q))),
            );
        }
        let max = samples.last().copied().unwrap_or_default();
        self.figure(&format!("{prefix}_max_ms"), round(millis(max)))
            .figure(&format!("{prefix}_samples"), samples.len())
    }

    /// Prints the table and writes `<dir>/<stage>.json`.
    pub fn finish(&self, dir: &Path) -> std::io::Result<PathBuf> {
        println!("\n{}", self.stage);
        let width = self.figures.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in &self.figures {
            println!("  {key:<width$}  {value}");
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.stage));
        let body = serde_json::to_string_pretty(&Value::Object(self.figures.clone()))?;
        std::fs::write(&path, body + "\n")?;
        Ok(path)
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Rounds to three decimals so reports stay readable.
pub fn round(value: f64) -> f64 {
    (value * 1_000.0).round() / 1_000.0
}

pub use hookline_testkit::slow_senders::percentile;

/// Resident and peak resident memory of a process, in MB, from /proc.
pub fn rss_mb(pid: u32) -> std::io::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| round(kb / 1024.0))
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}
