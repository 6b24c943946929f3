use clap::Parser;
use hookline_handler::{config::Config, service};

/// mimalloc, as every Hookline service: glibc's malloc and free cost a tenth of the
/// handler's CPU per request, and its per-thread arenas grow a long-lived process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    hookline_core::telemetry::init(config.common.log_format);
    match service::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "handler failed");
            std::process::ExitCode::FAILURE
        }
    }
}
