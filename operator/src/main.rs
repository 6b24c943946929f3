use clap::Parser;
use hookline_operator::config::{Cli, Command};
use hookline_operator::service;

/// mimalloc, as every Hookline service: glibc's malloc and free cost a tenth of the
/// handler's CPU per request, and its per-thread arenas grow a long-lived process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    hookline_core::telemetry::init(cli.common.log_format);
    let result = match cli.command {
        Command::Crd => {
            print!("{}", hookline_api::webhook::crd_yaml());
            Ok(())
        }
        Command::Run(args) => service::run(*args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "operator failed");
            std::process::ExitCode::FAILURE
        }
    }
}
