use std::process::ExitCode;

use clap::Parser;
use hookline_emitter::config::Config;
use hookline_emitter::service;
use hookline_runtime::config::TraceArgs;

hookline_runtime::use_mimalloc!();

/// The exit code when the emitter ran but not every event was delivered.
const UNDELIVERED: u8 = 3;

fn main() -> ExitCode {
    let config = Config::parse();
    let common = config.common.clone();
    // The emitter exports no spans: logs only.
    let no_traces = TraceArgs {
        otlp_endpoint: String::new(),
        trace_sample_ratio: 1.0,
        service_name: None,
    };
    let mut summary = None;
    let exit = hookline_runtime::service::main("hookline-emitter", &common, &no_traces, async {
        summary = Some(service::run(config).await?);
        Ok::<(), service::StartError>(())
    });
    match summary {
        Some(summary) if !summary.all_delivered() => ExitCode::from(UNDELIVERED),
        _ => exit,
    }
}
