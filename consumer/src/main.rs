use clap::Parser;
use hookline_consumer::config::{Cli, Command};
use hookline_consumer::{db, replay, service};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::traces;

/// mimalloc: glibc's malloc and free were about a tenth of a busy service's CPU
/// (measured on the handler). The operator keeps glibc's: its memory peak was lower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let common = cli.common.clone();
    common.block_on("hookline-consumer", async move {
        let traces = match traces::init(cli.common.log_format, &cli.traces, "hookline-consumer") {
            Ok(traces) => traces,
            Err(err) => {
                eprintln!("hookline-consumer: {err}");
                return std::process::ExitCode::FAILURE;
            }
        };
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
        let exit = match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!(%err, "consumer failed");
                std::process::ExitCode::FAILURE
            }
        };
        traces.shutdown().await;
        exit
    })
}
