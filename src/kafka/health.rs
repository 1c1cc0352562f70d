//! Whether the broker is reachable, with one log line per change of state (never one
//! per retry: librdkafka retries on its own, many times a second).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;

use crate::telemetry::metric;

// 0: not known yet.
const UP: u8 = 1;
const DOWN: u8 = 2;

#[derive(Debug, Default)]
pub struct BrokerHealth {
    state: AtomicU8,
}

impl BrokerHealth {
    pub fn new() -> Arc<BrokerHealth> {
        Arc::new(BrokerHealth::default())
    }

    /// The broker answered.
    pub fn up(&self, brokers: &str) {
        if self.state.swap(UP, Ordering::SeqCst) == DOWN {
            tracing::info!(brokers, "Kafka broker reachable again; intake resumes");
        }
    }

    /// The broker could not be reached.
    pub fn down(&self, brokers: &str, reason: &str) {
        if self.state.swap(DOWN, Ordering::SeqCst) != DOWN {
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

impl ConsumerContext for KafkaContext {}
