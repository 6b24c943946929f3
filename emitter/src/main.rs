use clap::Parser;
use hookline_emitter::config::Config;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    hookline_core::telemetry::init(config.common.log_format);
    // The delivery loop is the emitter issue's work; until then say so plainly.
    tracing::error!(
        webhook_id = %config.webhook_id,
        "the emitter's delivery loop is not built yet; configuration is valid"
    );
    std::process::ExitCode::FAILURE
}
