use clap::Parser;
use hookline_emitter::config::Config;
use hookline_emitter::service;

/// mimalloc: glibc's malloc and free were about a tenth of a busy service's CPU
/// (measured on the handler). The operator keeps glibc's: its memory peak was lower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let common = config.common.clone();
    common.block_on("hookline-emitter", async move {
        hookline_runtime::telemetry::init(config.common.log_format);
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
    })
}
