use clap::Parser;
use hookline_handler::{config::Config, service};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    hookline_core::telemetry::init(config.common.log_format);
    match service::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "handler failed");
            std::process::ExitCode::FAILURE
        }
    }
}
