//! Reading Prometheus text (what every `/metrics` serves) in tests, and a real Prometheus
//! server (the stack's `PROMETHEUS`, Debian's package) that scrapes what a test names and
//! answers queries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// `registry` in the text format `/metrics` serves.
pub fn encoded(registry: &prometheus_client::registry::Registry) -> String {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry).expect("metrics encode");
    body
}

/// The value of one sample line, named exactly (labels included), e.g.
/// `sample(body, "hookline_operator_leader")` or `sample(body, "x{l=\"a\"}")`.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    samples(body)
        .find(|(name, _)| *name == series)
        .map(|(_, value)| value)
}

/// The sum of every sample of the family `name`, whatever their labels (0 when none).
pub fn family_sum(body: &str, name: &str) -> f64 {
    samples(body)
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .map(|(_, value)| value)
        .sum()
}

/// `(series, value)` of every sample line (comments and unreadable lines skipped).
fn samples(body: &str) -> impl Iterator<Item = (&str, f64)> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
}

/// A Prometheus server on a free loopback port, scraping the targets of a file that
/// [`Prometheus::set_targets`] rewrites, every second, and evaluating `rules_file` every
/// second. Killed when dropped; its data lives in `dir`.
pub struct Prometheus {
    child: Child,
    port: u16,
    targets_file: PathBuf,
}

/// One scrape target: `127.0.0.1:port`, with the labels a Kubernetes scrape would give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub port: u16,
    pub labels: Vec<(String, String)>,
}

impl Prometheus {
    /// Starts Prometheus with its configuration, data and targets in `dir`, and waits
    /// until it is ready. Panics, saying why, when it cannot.
    pub async fn start(dir: &Path, rules_file: &Path) -> Self {
        let binary = crate::stack()
            .vars
            .get("PROMETHEUS")
            .cloned()
            .unwrap_or_else(|| panic!("the stack's env has no PROMETHEUS; re-run `make stack-up`"));
        std::fs::create_dir_all(dir).expect("Prometheus directory");
        let targets_file = dir.join("targets.json");
        write_atomically(&targets_file, "[]");
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [rules_file],
            "scrape_configs": [{
                "job_name": "hookline",
                "file_sd_configs": [{"files": [targets_file], "refresh_interval": "1s"}],
            }],
        });
        // JSON is YAML: Prometheus reads this file as its YAML configuration.
        let config_file = dir.join("prometheus.yml");
        write_atomically(&config_file, &config.to_string());
        let port = crate::http::free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("Prometheus log");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
        let prometheus = Self {
            child,
            port,
            targets_file,
        };
        crate::eventually("Prometheus ready", Duration::from_secs(60), || async {
            crate::http::get(port, "/-/ready").and_then(|(status, _)| (status == 200).then_some(()))
        })
        .await;
        prometheus
    }

    /// Replaces the scrape targets (Prometheus picks the file up within a second).
    pub fn set_targets(&self, targets: &[Target]) {
        let groups: Vec<Value> = targets
            .iter()
            .map(|target| {
                let labels: serde_json::Map<String, Value> = target
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                json!({"targets": [format!("127.0.0.1:{}", target.port)], "labels": labels})
            })
            .collect();
        write_atomically(&self.targets_file, &Value::Array(groups).to_string());
    }

    /// The `data.result` of an instant query at the latest evaluation.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", url_encode(promql)))["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `data.result` of a range query from `start` to `end` (Unix seconds).
    pub fn query_range(&self, promql: &str, start: f64, end: f64, step_s: u32) -> Vec<Value> {
        self.api(&format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step_s}s",
            url_encode(promql)
        ))["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The alerts now pending or firing: `(alertname, state, labels)`.
    pub fn alerts(&self) -> Vec<(String, String, Value)> {
        self.api("/api/v1/alerts")["alerts"]
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .map(|alert| {
                        (
                            alert["labels"]["alertname"]
                                .as_str()
                                .unwrap_or("")
                                .to_owned(),
                            alert["state"].as_str().unwrap_or("").to_owned(),
                            alert["labels"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `data` of an API answer; panics with Prometheus's error otherwise (a bad query is a
    /// test's bug, not something to wait out).
    fn api(&self, path_and_query: &str) -> Value {
        let (status, body) = crate::http::get(self.port, path_and_query)
            .unwrap_or_else(|| panic!("Prometheus does not answer {path_and_query}"));
        let answer: Value = serde_json::from_str(&body).unwrap_or_else(|err| {
            panic!("Prometheus answered {status} with no JSON ({err}): {body}")
        });
        assert_eq!(
            answer["status"], "success",
            "Prometheus refused {path_and_query}: {body}"
        );
        answer["data"].clone()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` with every character but RFC 3986's unreserved ones percent-encoded.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
}

/// A rules file with its time spans divided by `divisor`: range selectors (`[10m]`),
/// `offset`s and `for:` durations. The same expressions, on a clock a test can wait for
/// (divided by 30, a 10-minute `for:` is 20 s).
pub fn with_time_spans_divided(rules: &str, divisor: u64) -> String {
    let mut out = String::with_capacity(rules.len());
    let mut rest = rules;
    while let Some((at, prefix)) = ["[", "for: ", "offset "]
        .iter()
        .filter_map(|prefix| rest.find(prefix).map(|at| (at, *prefix)))
        .min()
    {
        let start = at + prefix.len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit = rest[digits..].chars().next();
        let seconds_per_unit = match unit {
            Some('s') => Some(1),
            Some('m') => Some(60),
            Some('h') => Some(3600),
            Some('d') => Some(86_400),
            _ => None,
        };
        match (rest[..digits].parse::<u64>(), seconds_per_unit) {
            // `5m` of `[5m]`, but not `5` of `[5ms]`-like or `m` of `[5mb]`: a unit ends the span.
            (Ok(count), Some(per_unit))
                if !rest[digits + 1..].starts_with(|c: char| c.is_ascii_alphanumeric()) =>
            {
                out.push_str(&format!("{}s", (count * per_unit / divisor).max(1)));
                rest = &rest[digits + 1..];
            }
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "# HELP x\nhookline_operator_leader 1\nhookline_operator_leader_other 5\nwith{l=\"a\"} 2\nwith{l=\"b\"} 3\n";

    #[test]
    fn samples_by_exact_series_and_families_summed() {
        assert_eq!(sample(BODY, "hookline_operator_leader"), Some(1.0));
        assert_eq!(sample(BODY, "with{l=\"a\"}"), Some(2.0));
        assert_eq!(sample(BODY, "absent"), None);
        assert_eq!(family_sum(BODY, "with"), 5.0);
        assert_eq!(family_sum(BODY, "hookline_operator_leader"), 1.0);
        assert_eq!(family_sum(BODY, "absent"), 0.0);
    }

    #[test]
    fn time_spans_divided_in_ranges_offsets_and_fors_only() {
        let rules = "expr: rate(x[10m]) > 2 and avg_over_time(y[1d] offset 1h) > 0\nfor: 15m\nsummary: \"for 10 minutes\"\nvalues: '[a]'\n";
        assert_eq!(
            with_time_spans_divided(rules, 30),
            "expr: rate(x[20s]) > 2 and avg_over_time(y[2880s] offset 120s) > 0\nfor: 30s\nsummary: \"for 10 minutes\"\nvalues: '[a]'\n"
        );
        assert_eq!(with_time_spans_divided("[30s]", 60), "[1s]");
    }

    #[test]
    fn url_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            url_encode(r#"sum(rate(a{b=~"c.*"}[1m]))"#),
            "sum%28rate%28a%7Bb%3D~%22c.%2A%22%7D%5B1m%5D%29%29"
        );
    }
}
