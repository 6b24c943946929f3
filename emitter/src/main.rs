use clap::Parser;
use hookline_emitter::config::Config;
use hookline_emitter::service;
use hookline_runtime::config::TraceArgs;

hookline_runtime::use_mimalloc!();

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let common = config.common.clone();
    // The emitter exports no spans: logs only. Its summary gives the exit code.
    hookline_runtime::service::main(
        "hookline-emitter",
        &common,
        &TraceArgs::off(),
        service::run(config),
    )
}
