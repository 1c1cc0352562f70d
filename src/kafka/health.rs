//! Whether the broker is reachable, with one log line per change of state (never one
//! per retry: librdkafka retries on its own, many times a second). Two sources tell:
//! the error callbacks and answers of the app's Kafka clients, and a probe that asks
//! the broker for metadata every second on a client of its own, whatever the intake
//! is doing.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;

use super::KafkaSettings;
use crate::telemetry::metric;

// 0: not known yet.
const UP: u8 = 1;
const DOWN: u8 = 2;

/// An outage is logged once it has lasted this long with no sign of the broker: one
/// failed reconnect, or a late error queued before the broker came back, is not one.
const OUTAGE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct BrokerHealth {
    state: AtomicU8,
    /// When the broker was first seen failing since it last answered.
    failing_since: Mutex<Option<Instant>>,
}

impl BrokerHealth {
    pub fn new() -> Arc<BrokerHealth> {
        Arc::new(BrokerHealth::default())
    }

    /// The broker answered (metadata, an offset commit, a produce acknowledgement).
    pub fn up(&self, brokers: &str) {
        *self.failing_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if self.state.swap(UP, Ordering::SeqCst) == DOWN {
            tracing::info!(brokers, "Kafka broker reachable again; intake resumes");
        }
    }

    /// The broker could not be reached. Logged once per outage, when it has lasted
    /// `OUTAGE_AFTER` (librdkafka reports every failed reconnect).
    pub fn down(&self, brokers: &str, reason: &str) {
        let lasted = {
            let mut since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
            since.get_or_insert_with(Instant::now).elapsed()
        };
        if lasted >= OUTAGE_AFTER && self.state.swap(DOWN, Ordering::SeqCst) != DOWN {
            tracing::warn!(
                brokers,
                reason,
                "Kafka broker unreachable; retrying with backoff"
            );
        }
    }

    pub fn is_down(&self) -> bool {
        self.state.load(Ordering::SeqCst) == DOWN
    }
}

/// How often [`probe_until_stopped`] asks the broker, and how long it waits for it.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Asks the broker for the topic's metadata every second (`PROBE_EVERY`), on a client of its
/// own, and reports the answer (or its absence) to `health`. librdkafka hands its error
/// callbacks to a consumer only when the consumer is polled, and a busy intake polls
/// only when it has room for another message: without the probe, an outage could go
/// unnoticed for as long as the intake is busy with what it fetched before.
pub async fn probe_until_stopped(
    health: Arc<BrokerHealth>,
    settings: KafkaSettings,
    mut stop: watch::Receiver<bool>,
) {
    let client: Arc<BaseConsumer> = match settings.client_config().create() {
        Ok(client) => Arc::new(client),
        Err(e) => {
            tracing::warn!(error = %e, "cannot create the Kafka health probe; relying on client errors");
            return;
        }
    };
    while !*stop.borrow() {
        let probe = {
            let (client, topic) = (client.clone(), settings.topic.clone());
            tokio::task::spawn_blocking(move || {
                let answer = client.fetch_metadata(Some(&topic), PROBE_EVERY).map(|_| ());
                // Serve the client's own events (its failed connects, say), so that
                // they do not pile up during a long outage.
                let _ = client.poll(Duration::ZERO);
                answer
            })
        };
        match probe.await {
            Ok(Ok(())) => health.up(&settings.brokers),
            Ok(Err(e)) => health.down(&settings.brokers, &format!("no metadata answer: {e}")),
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(PROBE_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// librdkafka client context: routes its errors to [`BrokerHealth`] and keeps its own
/// chatter out of the log.
#[derive(Clone)]
pub struct KafkaContext {
    pub health: Arc<BrokerHealth>,
    pub brokers: String,
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical
        ) {
            tracing::error!(facility = fac, "librdkafka: {message}");
        } else {
            tracing::debug!(facility = fac, "librdkafka: {message}");
        }
    }

    /// librdkafka's statistics (consumers only, every few seconds): consumer lag per
    /// partition, for the metrics.
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(metric::INTAKE_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let unreachable = matches!(
            code,
            Some(RDKafkaErrorCode::AllBrokersDown)
                | Some(RDKafkaErrorCode::BrokerTransportFailure)
                | Some(RDKafkaErrorCode::Resolve)
                | Some(RDKafkaErrorCode::Authentication)
                | Some(RDKafkaErrorCode::SSL)
        );
        if unreachable {
            self.health.down(&self.brokers, reason);
        } else {
            tracing::debug!(error = %error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for KafkaContext {
    /// A successful offset commit is an answer from the broker (a message read from the
    /// local prefetch queue is not).
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if result.is_ok() {
            self.health.up(&self.brokers);
        }
    }
}
