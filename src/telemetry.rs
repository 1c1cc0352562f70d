//! Logging setup (human-readable or JSON lines, level from `RUST_LOG`, default info)
//! and the Prometheus metrics: every metric name is declared here, with its help text.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Metric names, one place for all of them.
pub mod metric {
    pub const INTAKE_MESSAGES: &str = "alert_center_intake_messages_total";
    pub const ALERTS_INGESTED: &str = "alert_center_alerts_ingested_total";
    pub const DEAD_LETTERS: &str = "alert_center_dead_letters_total";
    pub const INTAKE_LAG: &str = "alert_center_intake_lag_messages";
    pub const COMMIT_BATCH: &str = "alert_center_commit_batch_size";
    pub const COMMIT_SECONDS: &str = "alert_center_commit_seconds";
    pub const STEP_SECONDS: &str = "alert_center_step_seconds";
    pub const WORKFLOWS_PENDING: &str = "alert_center_workflows_pending";
    pub const WORKFLOWS_ACTIVE: &str = "alert_center_workflows_in_memory";
    pub const LEASES: &str = "alert_center_leases_total";
    pub const RECOVERY_SECONDS: &str = "alert_center_recovery_seconds";
    pub const RECOVERED: &str = "alert_center_recovered_workflows";
}

const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Installs the process-wide metrics recorder (the `metrics` crate's design) and
/// returns the handle that renders the Prometheus text. None if one is installed.
pub fn install_metrics() -> Option<PrometheusHandle> {
    use metrics_exporter_prometheus::Matcher;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .ok()?
        .set_buckets_for_metric(Matcher::Full(metric::COMMIT_BATCH.into()), BATCH_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()?;
    describe();
    Some(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        metric::INTAKE_MESSAGES,
        "Kafka messages durably processed (alerts or dead letters)"
    );
    describe_counter!(metric::ALERTS_INGESTED, "Alerts inserted from Kafka");
    describe_counter!(
        metric::DEAD_LETTERS,
        "Messages or alerts sent to the dead-letter table"
    );
    describe_gauge!(
        metric::INTAKE_LAG,
        "Messages behind the end of each partition (from librdkafka statistics)"
    );
    describe_histogram!(metric::COMMIT_BATCH, "Writes per group commit");
    describe_histogram!(
        metric::COMMIT_SECONDS,
        Unit::Seconds,
        "Time to apply and commit one batch"
    );
    describe_histogram!(
        metric::STEP_SECONDS,
        Unit::Seconds,
        "Time of one durable workflow operation, by kind"
    );
    describe_gauge!(
        metric::WORKFLOWS_PENDING,
        "Workflows pending in the database"
    );
    describe_gauge!(
        metric::WORKFLOWS_ACTIVE,
        "Workflows with a task in this process (running or asleep)"
    );
    describe_counter!(
        metric::LEASES,
        "Lease events, by event: granted, extended, expired, released, resolved"
    );
    describe_gauge!(
        metric::RECOVERY_SECONDS,
        Unit::Seconds,
        "Time the recovery scan took at the last start"
    );
    describe_gauge!(
        metric::RECOVERED,
        "Workflows resumed by recovery at the last start, by state"
    );
}
