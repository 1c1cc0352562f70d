//! The `alert-center` binary: parse the configuration, set up logging, run until a
//! shutdown signal. Everything else lives in the library (see `src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A `.env` file in the working directory is read as the original app did; the
    // environment and the flags win over it.
    let _ = dotenvy::dotenv();
    let config = alert_center::config::Config::parse();
    alert_center::telemetry::init(config.log_format);
    match alert_center::app::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line, never a trace: the operator reads this at startup.
            eprintln!("alert-center: {e:#}");
            ExitCode::FAILURE
        }
    }
}
