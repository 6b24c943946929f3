//! `hookline-bench STAGE`: measures one part of Hookline against the running local
//! stack and writes `bench/results/STAGE.json`. `make bench` runs every stage.
//!
//! `--repeats N` runs a stage N times and reports the median of each figure, with its
//! lowest, highest and every run's value beside it (`_min`, `_max`, `_samples`). The
//! stages of issue 28's figures run three times by default; `e2e` and `idle` repeat
//! their measurements inside one start of the system (their own `--repeats`), and the
//! stages that take long run once.

mod console;
mod consumer;
mod e2e;
mod emitter;
mod handler;
mod handler_slow_senders;
mod idle;
mod kind;
mod local;
mod operator;
mod report;
mod scaling;
mod storage;
mod system;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::report::Report;

#[derive(Parser)]
#[command(name = "hookline-bench", version)]
struct Cli {
    /// Where each stage writes STAGE.json.
    #[arg(long, env = "HOOKLINE_BENCH_RESULTS", default_value = "bench/results")]
    results: PathBuf,
    /// Runs of the stage merged into one report (the median of each figure); by default
    /// 3 for operator, handler and consumer, 1 for the others.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: Option<u32>,
    #[command(subcommand)]
    stage: Stage,
}

#[derive(Subcommand)]
enum Stage {
    /// Apply-to-Deployment latency, cold start with many Webhooks, operator memory.
    Operator(operator::Args),
    /// Emit-to-row latency through the whole system at 1,000 and 5,000 events per second.
    E2e(e2e::Args),
    /// Whether the emitter holds its rate over a minute at 1 and 1,000 events per second.
    Emitter(emitter::Args),
    /// Verified requests per second at saturation, latency at a fixed rate, handler memory.
    Handler(handler::Args),
    /// 500 slow senders on one webhook: a valid sender's 202 share and latency on another.
    HandlerSlowSenders(handler_slow_senders::Args),
    /// Events stored per second draining a pre-filled topic, produce-to-row delay at a
    /// steady rate, consumer memory.
    Consumer(consumer::Args),
    /// Consumers scaled 2 -> 4 -> 1 under a steady rate: the longest any partition went
    /// unread, produce-to-row delays, every event stored once.
    ConsumerScaling(scaling::Args),
    /// Ten million events over simulated days through the consumer's insert while the
    /// retention sweep drops old days: insert rate and console query times per day.
    Storage(storage::Args),
    /// With 10 million events stored: the console's list and search times through its
    /// API, and how soon its live tail shows an event at 2,000 stored per second.
    Console(console::Args),
    /// `make run`'s system at rest (one Webhook, its emitter off): CPU and wake-ups per
    /// process kind, and the threads that wake most.
    Idle(idle::Args),
    /// The kind cluster of `make kind-up`: fixed rates through its Ingress to three
    /// handler pods, send-to-row latency and the stored share.
    Kind(kind::Args),
}

impl Stage {
    /// The stage's name in `bench/results/` and the runs it gets without `--repeats`.
    fn defaults(&self) -> (&'static str, u32) {
        match self {
            Stage::Operator(_) => ("operator", 3),
            Stage::Handler(_) => ("handler", 3),
            Stage::Consumer(_) => ("consumer", 3),
            Stage::E2e(_) => ("e2e", 1),
            Stage::Idle(_) => ("idle", 1),
            Stage::Kind(_) => ("kind", 1),
            Stage::Emitter(_) => ("emitter", 1),
            Stage::HandlerSlowSenders(_) => ("handler_slow_senders", 1),
            Stage::ConsumerScaling(_) => ("consumer_scaling", 1),
            Stage::Storage(_) => ("storage", 1),
            Stage::Console(_) => ("console", 1),
        }
    }

    async fn run(self) -> anyhow::Result<Report> {
        match self {
            Stage::Operator(args) => operator::run(args).await,
            Stage::Handler(args) => handler::run(args).await,
            Stage::HandlerSlowSenders(args) => handler_slow_senders::run(args).await,
            Stage::Emitter(args) => emitter::run(args).await,
            Stage::E2e(args) => e2e::run(args).await,
            Stage::Consumer(args) => consumer::run(args).await,
            Stage::Console(args) => console::run(args).await,
            Stage::ConsumerScaling(args) => scaling::run(args).await,
            Stage::Storage(args) => storage::run(args).await,
            Stage::Idle(args) => idle::run(args).await,
            Stage::Kind(args) => kind::run(args).await,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (name, default_runs) = cli.stage.defaults();
    let runs = cli.repeats.unwrap_or(default_runs);
    let mut reports = vec![cli.stage.run().await?];
    for run in 2..=runs {
        println!("\n{name}: run {run} of {runs}");
        // A stage takes its arguments by value: each run parses them afresh.
        reports.push(Cli::parse().stage.run().await?);
    }
    let mut report = Report::merged(reports);
    if runs > 1 {
        report.figure("stage_runs", runs).figure(
            "stage_figure_is",
            "the median of the stage's runs; the lowest and highest in _min and _max, every \
             run's value in _samples; text and series from the first run",
        );
    }
    let path = report.finish(&cli.results)?;
    println!("wrote {}", path.display());
    Ok(())
}
