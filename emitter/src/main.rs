use clap::Parser;
use hookline_emitter::config::Config;
use hookline_emitter::service;

/// mimalloc, as every Hookline service: glibc's malloc and free cost a tenth of the
/// handler's CPU per request, and its per-thread arenas grow a long-lived process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    hookline_core::telemetry::init(config.common.log_format);
    match service::run(config).await {
        Ok(summary) if summary.failed == 0 && summary.abandoned == 0 => {
            std::process::ExitCode::SUCCESS
        }
        Ok(_) => std::process::ExitCode::from(3),
        Err(err) => {
            tracing::error!(%err, "emitter failed to start");
            std::process::ExitCode::FAILURE
        }
    }
}
