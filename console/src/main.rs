use clap::Parser;
use hookline_console::config::Config;
use hookline_console::password::HashPasswordArgs;
use hookline_console::service;
use hookline_runtime::shutdown::Shutdown;

/// mimalloc: glibc's malloc and free were about a tenth of a busy service's CPU
/// (measured on the handler). The operator keeps glibc's: its memory peak was lower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // A subcommand of its own: the server's required flags do not apply to it.
    if std::env::args().nth(1).as_deref() == Some("hash-password") {
        let args = HashPasswordArgs::parse_from(std::env::args().skip(1));
        return match args.run(std::io::stdin().lock(), std::io::stdout().lock()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hookline-console hash-password: {err}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let config = Config::parse();
    let common = config.common.clone();
    common.block_on("hookline-console", async move {
        hookline_runtime::telemetry::init(config.common.log_format);
        match service::run(config, Shutdown::on_signal()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(%err, "console failed");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
