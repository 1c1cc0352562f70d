//! The `alert-center` binary: parse the configuration, set up logging, then either
//! supervise the app (the default) or run it in the foreground (`--no-supervisor`).
//! Everything else lives in the library (see `src/lib.rs`).

use std::process::ExitCode;

use alert_center::storage::StorageError;
use alert_center::supervisor::{EXIT_CANNOT_START, EXIT_STORAGE_FAILED};
use clap::Parser;

fn main() -> ExitCode {
    // A `.env` file in the working directory is read as the original app did; the
    // environment and the flags win over it.
    let _ = dotenvy::dotenv();
    let config = alert_center::config::Config::parse();
    alert_center::telemetry::init(config.log_format);
    let result = if config.no_supervisor {
        alert_center::app::run(config)
    } else {
        alert_center::supervisor::run(config)
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            // One clear line, never a trace: the operator reads this at startup.
            eprintln!("alert-center: {e:#}");
            let temporary = e
                .downcast_ref::<StorageError>()
                .is_some_and(StorageError::is_temporary);
            let code = if temporary {
                EXIT_STORAGE_FAILED
            } else {
                EXIT_CANNOT_START
            };
            ExitCode::from(code as u8)
        }
    }
}
