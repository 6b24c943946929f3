use clap::Parser;
use hookline_operator::config::{Cli, Command};
use hookline_operator::service;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    hookline_runtime::telemetry::init(cli.common.log_format);
    let common = cli.common.clone();
    common.block_on("hookline-operator", async move {
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
    })
}
