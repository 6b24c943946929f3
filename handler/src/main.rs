use clap::Parser;
use hookline_handler::{config::Config, service};

hookline_runtime::use_mimalloc!();

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let (common, traces) = (config.common.clone(), config.traces.clone());
    hookline_runtime::service::main("hookline-handler", &common, &traces, service::run(config))
}
