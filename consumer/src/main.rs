use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use hookline_consumer::config::{Cli, Command};
use hookline_consumer::{replay, service};
use hookline_runtime::shutdown::Shutdown;
use hookline_store::{database, schema};

hookline_runtime::use_mimalloc!();

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (common, traces) = (cli.common.clone(), cli.traces.clone());
    hookline_runtime::service::main("hookline-consumer", &common, &traces, command(cli))
}

/// The subcommand `cli` names.
async fn command(cli: Cli) -> Result<(), Box<dyn Error>> {
    match cli.command {
        Command::Migrate => {
            let pool = database::connect(&cli.database_url, 1).await?;
            schema::migrate(&pool).await?;
        }
        Command::Run(args) => {
            service::run(&cli.database_url, *args, Shutdown::on_signal()).await?;
        }
        Command::Replay(args) => replay::command(&cli.database_url, &args).await?,
    }
    Ok(())
}
