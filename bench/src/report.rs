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

    /// One report of several runs of the same stage: each figure that every run measured
    /// as a number becomes the median of the runs, with `<key>_min`, `<key>_max` and
    /// `<key>_samples` (every run's value, in order) beside it; a count of latency samples
    /// (`<prefix>_samples`) becomes the list of every run's count. Text and series are the
    /// first run's. A derived key never replaces a figure a run reported under that name.
    pub fn merged(runs: Vec<Report>) -> Self {
        let maps: Vec<&Map<String, Value>> = runs.iter().map(|r| &r.figures).collect();
        Self {
            stage: runs.first().map_or("empty", |r| r.stage),
            figures: merge_runs(&maps),
        }
    }

    #[cfg(test)]
    pub fn figures(&self) -> &Map<String, Value> {
        &self.figures
    }

    /// Prints the figures as a table.
    pub fn print(&self) {
        println!("\n{}", self.stage);
        let width = self.figures.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in &self.figures {
            println!("  {key:<width$}  {value}");
        }
    }

    /// Prints the table and writes `<dir>/<stage>.json`.
    pub fn finish(&self, dir: &Path) -> std::io::Result<PathBuf> {
        self.print();
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.stage));
        let body = serde_json::to_string_pretty(&Value::Object(self.figures.clone()))?;
        std::fs::write(&path, body + "\n")?;
        Ok(path)
    }
}

fn merge_runs(runs: &[&Map<String, Value>]) -> Map<String, Value> {
    let Some(first) = runs.first() else {
        return Map::new();
    };
    if runs.len() == 1 {
        return (*first).clone();
    }
    let mut merged = Map::new();
    let mut derived = Vec::new();
    for (key, value) in first.iter() {
        let numbers: Option<Vec<&Value>> = runs
            .iter()
            .map(|run| run.get(key).filter(|v| v.is_number()))
            .collect();
        let Some(numbers) = numbers else {
            merged.insert(key.clone(), value.clone());
            continue;
        };
        let samples = Value::Array(numbers.iter().map(|v| (*v).clone()).collect());
        if key.ends_with("_samples") {
            merged.insert(key.clone(), samples);
            continue;
        }
        let mut values: Vec<f64> = numbers.iter().filter_map(|v| v.as_f64()).collect();
        values.sort_unstable_by(f64::total_cmp);
        merged.insert(key.clone(), median_value(&numbers));
        derived.push((format!("{key}_min"), Value::from(values[0])));
        derived.push((format!("{key}_max"), Value::from(values[values.len() - 1])));
        derived.push((format!("{key}_samples"), samples));
    }
    for (key, value) in derived {
        if !first.contains_key(&key) {
            merged.insert(key, value);
        }
    }
    merged
}

/// The median of numbers, as the middle run reported it (an integer stays one) when their
/// count is odd, else the mean of the middle two.
fn median_value(numbers: &[&Value]) -> Value {
    let mut sorted: Vec<&Value> = numbers.to_vec();
    sorted.sort_unstable_by(|a, b| {
        let value = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        value(a).total_cmp(&value(b))
    });
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        return sorted[middle].clone();
    }
    let value = |i: usize| sorted[i].as_f64().unwrap_or(f64::NAN);
    Value::from(round((value(middle - 1) + value(middle)) / 2.0))
}

/// The median of samples (the mean of the middle two for an even count), NaN for none.
pub fn median(samples: &[f64]) -> f64 {
    let numbers: Vec<Value> = samples.iter().map(|s| Value::from(*s)).collect();
    if numbers.is_empty() {
        return f64::NAN;
    }
    median_value(&numbers.iter().collect::<Vec<_>>())
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The lowest and the highest sample, NaN for none.
pub fn min_max(samples: &[f64]) -> (f64, f64) {
    let fold = |f: fn(f64, f64) -> f64| samples.iter().copied().reduce(f).unwrap_or(f64::NAN);
    (fold(f64::min), fold(f64::max))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(figures: Value) -> Report {
        let Value::Object(figures) = figures else {
            panic!("figures are an object")
        };
        Report {
            stage: "test",
            figures,
        }
    }

    #[test]
    fn runs_merge_into_the_median_with_min_max_and_samples() {
        let runs = [
            run(json!({"p99_ms": 40.5, "rps": 900, "x_samples": 100, "unit": "a", "series": [1]})),
            run(json!({"p99_ms": 60.0, "rps": 1000, "x_samples": 90, "unit": "b", "series": [2]})),
            run(json!({"p99_ms": 20.0, "rps": 950, "x_samples": 80, "unit": "c", "series": [3]})),
        ];
        let merged = Report::merged(runs.into()).figures;
        assert_eq!(merged["p99_ms"], json!(40.5));
        assert_eq!(merged["p99_ms_min"], json!(20.0));
        assert_eq!(merged["p99_ms_max"], json!(60.0));
        assert_eq!(merged["p99_ms_samples"], json!([40.5, 60.0, 20.0]));
        // An integer figure's median stays an integer.
        assert_eq!(merged["rps"], json!(950));
        assert_eq!(merged["rps_samples"], json!([900, 1000, 950]));
        // A count of latency samples lists each run's count and has no median.
        assert_eq!(merged["x_samples"], json!([100, 90, 80]));
        assert!(!merged.contains_key("x_samples_min"));
        assert_eq!(merged["unit"], json!("a"));
        assert_eq!(merged["series"], json!([1]));
    }

    #[test]
    fn a_figure_missing_from_a_run_is_kept_from_the_first_and_derived_keys_do_not_overwrite() {
        let runs = [
            run(json!({"a": 1.0, "b": 5.0, "b_max": 7.0})),
            run(json!({"b": 6.0, "b_max": 8.0})),
        ];
        let merged = Report::merged(runs.into()).figures;
        assert_eq!(merged["a"], json!(1.0));
        assert!(!merged.contains_key("a_samples"));
        // Two runs: the median is the mean of both.
        assert_eq!(merged["b"], json!(5.5));
        assert_eq!(merged["b_min"], json!(5.0));
        // The runs' own b_max is a figure of its own, merged as such.
        assert_eq!(merged["b_max"], json!(7.5));
        assert_eq!(merged["b_max_samples"], json!([7.0, 8.0]));
    }

    #[test]
    fn one_run_is_left_as_it_is() {
        let merged = Report::merged(vec![run(json!({"a": 1.0}))]).figures;
        assert_eq!(merged, json!({"a": 1.0}).as_object().unwrap().clone());
    }

    #[test]
    fn median_and_extremes_of_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(min_max(&[3.0, 1.0, 2.0]), (1.0, 3.0));
    }
}
