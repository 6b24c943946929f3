use std::process::ExitCode;

use clap::Parser;
use hookline_console::config::Config;
use hookline_console::password::HashPasswordArgs;
use hookline_console::service;
use hookline_runtime::config::TraceArgs;
use hookline_runtime::shutdown::Shutdown;

hookline_runtime::use_mimalloc!();

fn main() -> ExitCode {
    // A subcommand of its own: the server's required flags do not apply to it.
    if std::env::args().nth(1).as_deref() == Some("hash-password") {
        let args = HashPasswordArgs::parse_from(std::env::args().skip(1));
        return match args.run(std::io::stdin().lock(), std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hookline-console hash-password: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let config = Config::parse();
    let common = config.common.clone();
    // The console exports no spans: logs only.
    hookline_runtime::service::main(
        "hookline-console",
        &common,
        &TraceArgs::off(),
        // The signal handler needs the runtime `main` builds: made inside it.
        async move { service::run(config, Shutdown::on_signal()).await },
    )
}
