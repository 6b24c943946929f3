use clap::Parser;
use hookline_operator::config::{Cli, Command};
use hookline_operator::service;
use hookline_runtime::config::TraceArgs;

fn main() -> std::process::ExitCode {
    let Cli { common, command } = Cli::parse();
    hookline_runtime::service::main("hookline-operator", &common, &logs_only(), async move {
        match command {
            Command::Crd => {
                print!("{}", hookline_api::webhook::crd_yaml());
                Ok(())
            }
            Command::Run(args) => service::run(*args).await,
        }
    })
}

/// The operator writes logs and exports no spans (the chart traces the handler and the
/// consumer only), so it takes no trace flags.
fn logs_only() -> TraceArgs {
    TraceArgs {
        otlp_endpoint: String::new(),
        trace_sample_ratio: 0.0,
        service_name: None,
    }
}
