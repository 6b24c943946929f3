use clap::Parser;
use hookline_operator::config::{Cli, Command};
use hookline_operator::service;
use hookline_runtime::config::TraceArgs;

fn main() -> std::process::ExitCode {
    let Cli { common, command } = Cli::parse();
    // The operator writes logs and exports no spans (the chart traces the handler and the
    // consumer only), so it takes no trace flags.
    let logs_only = TraceArgs::off();
    hookline_runtime::service::main("hookline-operator", &common, &logs_only, async move {
        match command {
            Command::Crd => {
                print!("{}", hookline_api::webhook::crd_yaml());
                Ok(())
            }
            Command::Run(args) => service::run(*args).await,
        }
    })
}
