//! Command-line flags, each with its environment variable (shown in `--help`). A
//! `.env` file in the working directory is read too (the environment wins).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::kafka::{DEFAULT_TOPIC, KafkaSettings, SaslPlain};

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

    /// Address the web page and API listen on.
    #[arg(long, env = "ALERT_CENTER_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Seconds an employee has to fix an alert or ask for more time.
    #[arg(long, env = "ALERT_CENTER_LEASE_SECS", default_value_t = 30.0, value_parser = positive_secs)]
    pub lease_secs: f64,

    /// Kafka bootstrap servers. Unset: an embedded broker is started (no install needed).
    #[arg(long, env = "KAFKA_BROKER")]
    pub kafka_broker: Option<String>,

    /// With --kafka-password: SASL PLAIN over SSL, as for hosted Kafka.
    #[arg(long, env = "KAFKA_USERNAME", requires = "kafka_password")]
    pub kafka_username: Option<String>,

    #[arg(
        long,
        env = "KAFKA_PASSWORD",
        hide_env_values = true,
        requires = "kafka_username"
    )]
    pub kafka_password: Option<String>,

    /// Topic the alerts arrive on (created if missing, never deleted).
    #[arg(long, env = "KAFKA_TOPIC", default_value = DEFAULT_TOPIC)]
    pub kafka_topic: String,

    /// Consumer group the intake commits its offsets under (for lag tools).
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "alert-center")]
    pub kafka_group_id: String,

    /// Partitions of the topic when the app creates it.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3)]
    pub kafka_topic_partitions: i32,

    /// Run the app alone in the foreground, without the supervising process that
    /// restarts it (for tests, systemd or a container).
    #[arg(long)]
    pub no_supervisor: bool,

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

fn positive_secs(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(secs),
        _ => Err(format!("{raw:?} is not a positive number of seconds")),
    }
}

impl Config {
    pub fn retention(&self) -> Duration {
        Duration::from_secs_f64(self.retention_days.max(0.0) * 86_400.0)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_secs)
    }

    /// Kafka settings for `brokers` (the configured ones or the embedded broker's).
    pub fn kafka(&self, brokers: String) -> KafkaSettings {
        let sasl = match (&self.kafka_username, &self.kafka_password) {
            (Some(username), Some(password)) => Some(SaslPlain {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        KafkaSettings {
            brokers,
            sasl,
            topic: self.kafka_topic.clone(),
            group_id: self.kafka_group_id.clone(),
            new_topic_partitions: self.kafka_topic_partitions.max(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}
