use clap::Parser;
use hookline_consumer::config::{Cli, Command};
use hookline_consumer::{db, replay, service};
use hookline_core::shutdown::Shutdown;

/// mimalloc, as every Hookline service: glibc's malloc and free cost a tenth of the
/// handler's CPU per request, and its per-thread arenas grow a long-lived process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    hookline_core::telemetry::init(cli.common.log_format);
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Migrate => match db::connect(&cli.database_url, 1).await {
            Ok(pool) => db::migrate(&pool).await.map_err(Into::into),
            Err(err) => Err(err.into()),
        },
        Command::Run(args) => service::run(&cli.database_url, *args, Shutdown::on_signal())
            .await
            .map_err(Into::into),
        Command::Replay(args) => replay::command(&cli.database_url, &args)
            .await
            .map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "consumer failed");
            std::process::ExitCode::FAILURE
        }
    }
}
