//! The idle stage: `make run`'s system (release binaries, `RUST_LOG=warn`, in a namespace
//! of its own) with one Webhook whose emitter is off, so the handlers and consumers hold
//! their work but no event flows. Once every handler knows the Webhook and the consumers
//! hold every partition, it reads /proc over `--repeats` consecutive windows of
//! `--seconds`: the CPU cores each kind of process uses, how often its threads are woken
//! (voluntary plus involuntary context switches of every thread), and over the whole
//! measurement the threads that wake most (all, and Hookline's own apart). Each figure
//! is the median of the windows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::local::{ThreadSwitches, kafka_connection};
use crate::report::{Report, round};
use crate::system::{Kinds, System, run_script};

const NAMESPACE: &str = "hookline-idle";
/// Hookline's own processes: their sum is the figure the target bounds.
const HOOKLINE: [&str; 4] = ["handler", "consumer", "operator", "console"];
/// Every kind measured: Hookline's, then what it stands on, reported beside.
const KINDS: [&str; 9] = [
    "handler",
    "consumer",
    "operator",
    "console",
    "proxy",
    "kafka",
    "postgres",
    "kube-apiserver",
    "etcd",
];

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of one measurement window.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Consecutive windows measured; each figure is their median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Seconds left after the system is ready, so its start-up work (a rebalance, the
    /// first registry reads) is over before the first window.
    #[arg(long, default_value_t = 10)]
    settle_seconds: u64,
    /// The threads listed, those woken most often.
    #[arg(long, default_value_t = 15)]
    top_threads: usize,
    /// Seconds to wait for the handlers to know the Webhook and the consumers to hold
    /// every partition.
    #[arg(long, default_value_t = 120)]
    ready_timeout_secs: u64,
    #[arg(long, default_value_t = 18096)]
    proxy_port: u16,
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    run_script("up", NAMESPACE, args.proxy_port)?;
    let result = measure(&args).await;
    run_script("down", NAMESPACE, args.proxy_port)?;
    result
}

/// What /proc said at one moment, by kind (in the order of `KINDS`).
struct Reading {
    at: Instant,
    cpu_seconds: Vec<f64>,
    threads: Vec<Vec<ThreadSwitches>>,
}

impl Reading {
    fn take(processes: &Kinds) -> anyhow::Result<Self> {
        Ok(Self {
            at: Instant::now(),
            cpu_seconds: processes.cpu_seconds()?,
            threads: processes.thread_switches()?,
        })
    }
}

async fn measure(args: &Args) -> anyhow::Result<Report> {
    let system = System::connect(NAMESPACE, &kafka_connection()?).await?;
    let spec = json!({
        "customerId": "bench-idle",
        "emitter": {"enabled": false, "ratePerSecond": 1.0, "replicas": 1},
    });
    let id = system.create_webhook("idle", spec).await?;
    system
        .wait_until_loaded("idle", &id, Duration::from_secs(args.ready_timeout_secs))
        .await?;
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let processes = system.processes(&KINDS, None)?;
    let mut readings = vec![Reading::take(&processes)?];
    let mut windows = Vec::new();
    for window in 1..=args.repeats {
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        readings.push(Reading::take(&processes)?);
        let [from, to] = &readings[readings.len() - 2..] else {
            unreachable!("two readings at least")
        };
        let report = window_report(&processes, from, to);
        println!("window {window} of {}:", args.repeats);
        report.print();
        windows.push(report);
    }
    let mut report = Report::merged(windows);
    report
        .figure("seconds_per_window", args.seconds)
        .figure("windows", args.repeats)
        .figure(
            "figure_is",
            "the median of consecutive windows of one start of the system; the lowest and \
             highest in _min and _max, every window in _samples",
        )
        .figure(
            "wakeups_are",
            "voluntary + involuntary context switches of every thread",
        );
    for (kind, found) in &processes.0 {
        report.figure(&format!("{}_processes", key(kind)), found.len());
    }
    let (first, last) = (&readings[0], &readings[readings.len() - 1]);
    let threads = threads_by_wakeups(&processes, first, last);
    // Hookline's own threads are listed apart: the stack's would otherwise fill the list.
    let hookline = threads.iter().filter(|t| HOOKLINE.contains(&t.kind));
    for (key, title, top) in [
        (
            "top_threads",
            "threads woken most often",
            threads.iter().take(args.top_threads).collect::<Vec<_>>(),
        ),
        (
            "top_hookline_threads",
            "Hookline's threads woken most often",
            hookline.take(args.top_threads).collect(),
        ),
    ] {
        println!("\n{title}, over all windows:");
        for thread in &top {
            println!(
                "  {:>8.1}/s  {:<15} {:<16} pid {}",
                thread.wakeups_per_s, thread.kind, thread.name, thread.pid
            );
        }
        let top: Vec<_> = top
            .iter()
            .map(|t| {
                json!({"kind": t.kind, "pid": t.pid, "thread": t.name,
                       "wakeups_per_s": round(t.wakeups_per_s)})
            })
            .collect();
        report.figure(key, top);
    }
    Ok(report)
}

/// The figure key of a kind (`kube-apiserver` -> `kube_apiserver`).
fn key(kind: &str) -> String {
    kind.replace('-', "_")
}

/// CPU cores and wake-ups per second of each kind between two readings, and Hookline's
/// processes together.
fn window_report(processes: &Kinds, from: &Reading, to: &Reading) -> Report {
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    let mut report = Report::new("idle");
    let (mut hookline_cores, mut hookline_wakeups) = (0.0, 0.0);
    for (k, (kind, _)) in processes.0.iter().enumerate() {
        let cores = (to.cpu_seconds[k] - from.cpu_seconds[k]) / seconds;
        let wakeups = switches_between(&from.threads[k], &to.threads[k])
            .iter()
            .map(|(_, n)| n)
            .sum::<u64>() as f64
            / seconds;
        if HOOKLINE.contains(kind) {
            hookline_cores += cores;
            hookline_wakeups += wakeups;
        }
        report
            .figure(&format!("{}_cpu_cores", key(kind)), round(cores))
            .figure(&format!("{}_wakeups_per_s", key(kind)), round(wakeups));
    }
    report
        .figure("hookline_cpu_cores", round(hookline_cores))
        .figure("hookline_wakeups_per_s", round(hookline_wakeups));
    report
}

/// Each thread of `to` with the switches it made since `from`: all of them for a thread
/// that began in between.
fn switches_between<'a>(
    from: &[ThreadSwitches],
    to: &'a [ThreadSwitches],
) -> Vec<(&'a ThreadSwitches, u64)> {
    let before: HashMap<(u32, u32), u64> =
        from.iter().map(|t| ((t.pid, t.tid), t.switches)).collect();
    to.iter()
        .map(|t| {
            let earlier = before.get(&(t.pid, t.tid)).copied().unwrap_or(0);
            (t, t.switches.saturating_sub(earlier))
        })
        .collect()
}

struct TopThread {
    kind: &'static str,
    pid: u32,
    name: String,
    wakeups_per_s: f64,
}

/// Every thread with its wake-ups per second between two readings, most first.
fn threads_by_wakeups(processes: &Kinds, from: &Reading, to: &Reading) -> Vec<TopThread> {
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    let mut threads: Vec<TopThread> = processes
        .0
        .iter()
        .enumerate()
        .flat_map(|(k, (kind, _))| {
            switches_between(&from.threads[k], &to.threads[k])
                .into_iter()
                .map(move |(thread, switches)| TopThread {
                    kind,
                    pid: thread.pid,
                    name: thread.name.clone(),
                    wakeups_per_s: switches as f64 / seconds,
                })
        })
        .collect();
    threads.sort_by(|a, b| b.wakeups_per_s.total_cmp(&a.wakeups_per_s));
    threads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(pid: u32, tid: u32, name: &str, switches: u64) -> ThreadSwitches {
        ThreadSwitches {
            pid,
            tid,
            name: name.into(),
            switches,
        }
    }

    #[test]
    fn switches_between_readings_count_a_new_thread_whole() {
        let from = [thread(1, 1, "main", 100), thread(1, 2, "worker", 10)];
        let to = [
            thread(1, 1, "main", 160),
            thread(1, 2, "worker", 10),
            thread(1, 3, "rdk:broker1", 25),
        ];
        let between: Vec<(u32, u64)> = switches_between(&from, &to)
            .into_iter()
            .map(|(t, n)| (t.tid, n))
            .collect();
        assert_eq!(between, [(1, 60), (2, 0), (3, 25)]);
    }

    #[test]
    fn a_window_reports_cores_and_wakeups_per_kind_and_hookline_together() {
        let processes = Kinds(vec![("handler", vec![]), ("kube-apiserver", vec![])]);
        let started = Instant::now();
        let from = Reading {
            at: started,
            cpu_seconds: vec![1.0, 5.0],
            threads: vec![
                vec![thread(1, 1, "tokio", 10)],
                vec![thread(2, 2, "api", 0)],
            ],
        };
        let to = Reading {
            at: started + Duration::from_secs(10),
            cpu_seconds: vec![1.2, 6.0],
            threads: vec![
                vec![thread(1, 1, "tokio", 60)],
                vec![thread(2, 2, "api", 400)],
            ],
        };
        let report = window_report(&processes, &from, &to);
        let figures = report.figures();
        assert_eq!(figures["handler_cpu_cores"], json!(0.02));
        assert_eq!(figures["handler_wakeups_per_s"], json!(5.0));
        assert_eq!(figures["kube_apiserver_cpu_cores"], json!(0.1));
        assert_eq!(figures["kube_apiserver_wakeups_per_s"], json!(40.0));
        // Only Hookline's own processes make up its figure.
        assert_eq!(figures["hookline_cpu_cores"], json!(0.02));
        assert_eq!(figures["hookline_wakeups_per_s"], json!(5.0));

        let threads = threads_by_wakeups(&processes, &from, &to);
        let order: Vec<(&str, &str, f64)> = threads
            .iter()
            .map(|t| (t.kind, t.name.as_str(), t.wakeups_per_s))
            .collect();
        assert_eq!(
            order,
            [("kube-apiserver", "api", 40.0), ("handler", "tokio", 5.0)]
        );
    }
}
