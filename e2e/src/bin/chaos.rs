//! `make chaos`: every fault scenario (or those named as arguments) against the whole
//! system in namespace hookline-chaos, then docs/RELIABILITY.md. Exits non-zero when a
//! scenario fails its verdict. Stops Kafka and PostgreSQL of the shared stack: run it
//! alone, not beside other tests.

use std::process::{Command, ExitCode};

use hookline_e2e::chaos::{self, Scenario};
use hookline_e2e::system::{System, repo_root};

const NAMESPACE: &str = "hookline-chaos";

fn git(args: &[&str]) -> String {
    Command::new("git")
        .args(args)
        .current_dir(repo_root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut scenarios = Vec::new();
    for arg in std::env::args().skip(1) {
        match Scenario::from_slug(&arg) {
            Some(scenario) => scenarios.push(scenario),
            None => {
                let known: Vec<_> = Scenario::ALL.iter().map(|s| s.slug()).collect();
                eprintln!("unknown scenario {arg}; known: {}", known.join(", "));
                return ExitCode::from(2);
            }
        }
    }
    if scenarios.is_empty() {
        scenarios = Scenario::ALL.to_vec();
    }
    let output = std::env::var("CHAOS_REPORT")
        .map_or_else(|_| repo_root().join("docs/RELIABILITY.md"), Into::into);
    let system = System::start(NAMESPACE).await;
    let mut rows = Vec::new();
    for scenario in scenarios {
        eprintln!("chaos: {} ({})", scenario.slug(), scenario.fault());
        let row = chaos::run(&system, scenario).await;
        eprintln!("chaos: {} -> {} {row:?}", scenario.slug(), row.verdict());
        rows.push(row);
    }
    system.stop();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let bin_dir = std::env::var("HOOKLINE_RUN_BIN_DIR").unwrap_or_else(|_| "target/debug".into());
    let report = chaos::report(&rows, &date, &commit, &bin_dir);
    if let Err(err) = std::fs::write(&output, report) {
        eprintln!("cannot write {}: {err}", output.display());
        return ExitCode::FAILURE;
    }
    eprintln!("chaos: wrote {}", output.display());
    if rows.iter().all(chaos::Row::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
