use clap::Parser;
use hookline_console::config::Config;
use hookline_console::service;
use hookline_core::shutdown::Shutdown;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    hookline_core::telemetry::init(config.common.log_format);
    match service::run(config, Shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "console failed");
            std::process::ExitCode::FAILURE
        }
    }
}
