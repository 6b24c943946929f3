use clap::Parser;
use hookline_consumer::config::{Cli, Command};
use hookline_consumer::{db, service};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    hookline_core::telemetry::init(cli.common.log_format);
    let result = match cli.command {
        Command::Migrate => match db::connect(&cli.database_url, 1).await {
            Ok(pool) => db::migrate(&pool).await.map_err(Into::into),
            Err(err) => Err(err.into()),
        },
        Command::Run(args) => service::run(&cli.database_url, args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let err: service::RunError = err;
            tracing::error!(%err, "consumer failed");
            std::process::ExitCode::FAILURE
        }
    }
}
