//! Command-line flags, each with its environment variable (shown in `--help`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "alert-center",
    version,
    about = "A durable alert queue on Kafka and redb"
)]
pub struct Config {
    /// The redb database file; it holds every durable thing.
    #[arg(long, env = "ALERT_CENTER_DB", default_value = "./alert-center.redb")]
    pub db: PathBuf,

    /// Log format.
    #[arg(long, env = "ALERT_CENTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Times recovery resumes a workflow that records no new step before marking it failed.
    #[arg(long, env = "ALERT_CENTER_MAX_RECOVERY_ATTEMPTS", default_value_t = 10)]
    pub max_recovery_attempts: u32,

    /// Days a completed workflow is kept before the retention sweep deletes it.
    #[arg(long, env = "ALERT_CENTER_RETENTION_DAYS", default_value_t = 7.0)]
    pub retention_days: f64,
}

impl Config {
    pub fn retention(&self) -> Duration {
        Duration::from_secs_f64((self.retention_days.max(0.0)) * 86_400.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}
