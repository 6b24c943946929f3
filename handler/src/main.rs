use clap::Parser;
use hookline_handler::{config::Config, service};
use hookline_runtime::traces;

/// mimalloc: glibc's malloc and free were about a tenth of a busy service's CPU
/// (measured on the handler). The operator keeps glibc's: its memory peak was lower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let common = config.common.clone();
    common.block_on("hookline-handler", async move {
        let traces =
            match traces::init(config.common.log_format, &config.traces, "hookline-handler") {
                Ok(traces) => traces,
                Err(err) => {
                    eprintln!("hookline-handler: {err}");
                    return std::process::ExitCode::FAILURE;
                }
            };
        let exit = match service::run(config).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(%err, "handler failed");
                std::process::ExitCode::FAILURE
            }
        };
        traces.shutdown().await;
        exit
    })
}
