//! `hookline-bench STAGE`: measures one part of Hookline against the running local
//! stack and writes `bench/results/STAGE.json`. `make bench` runs every stage.

mod console;
mod consumer;
mod e2e;
mod emitter;
mod handler;
mod handler_slow_senders;
mod local;
mod operator;
mod report;
mod scaling;
mod storage;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hookline-bench", version)]
struct Cli {
    /// Where each stage writes STAGE.json.
    #[arg(long, env = "HOOKLINE_BENCH_RESULTS", default_value = "bench/results")]
    results: PathBuf,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.stage {
        Stage::Operator(args) => operator::run(args).await?,
        Stage::Handler(args) => handler::run(args).await?,
        Stage::HandlerSlowSenders(args) => handler_slow_senders::run(args).await?,
        Stage::Emitter(args) => emitter::run(args).await?,
        Stage::E2e(args) => e2e::run(args).await?,
        Stage::Consumer(args) => consumer::run(args).await?,
        Stage::Console(args) => console::run(args).await?,
        Stage::ConsumerScaling(args) => scaling::run(args).await?,
        Stage::Storage(args) => storage::run(args).await?,
    };
    let path = report.finish(&cli.results)?;
    println!("wrote {}", path.display());
    Ok(())
}
