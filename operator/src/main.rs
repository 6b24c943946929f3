use std::num::NonZeroUsize;

use clap::Parser;
use hookline_operator::config::{Cli, Command};
use hookline_operator::service;

/// The operator waits on the API server and Kafka far more than it computes: two
/// workers carry a 1,000-Webhook cold start, and each further one is a stack and a
/// thread to wake. `available_parallelism` counts the container's CPU quota (cgroup
/// v1 and v2) and affinity, not the node's cores.
const MAX_WORKER_THREADS: usize = 2;

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_WORKER_THREADS)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    hookline_core::telemetry::init(cli.common.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Crd => {
            print!("{}", hookline_api::webhook::crd_yaml());
            Ok(())
        }
        Command::Run(args) => runtime.block_on(service::run(*args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}
