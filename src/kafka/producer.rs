//! The producer behind "send": librdkafka's idempotent producer, keyed by alert id.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::health::{BrokerHealth, KafkaContext};
use super::{KafkaSettings, payload};
use crate::alerts::AlertPublisher;
use crate::alerts::model::NewAlert;

/// Publishes alerts to the intake topic.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer<KafkaContext>,
    topic: String,
    brokers: String,
    health: Arc<BrokerHealth>,
}

impl KafkaPublisher {
    pub fn new(
        settings: &KafkaSettings,
        health: Arc<BrokerHealth>,
    ) -> Result<KafkaPublisher, String> {
        let context = KafkaContext {
            health: health.clone(),
            brokers: settings.brokers.clone(),
        };
        let producer = settings
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000")
            .create_with_context(context)
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        Ok(KafkaPublisher {
            producer,
            topic: settings.topic.clone(),
            brokers: settings.brokers.clone(),
            health,
        })
    }
}

impl AlertPublisher for KafkaPublisher {
    /// Retries until the broker accepts the message: the send workflow's step waits here
    /// while the broker is down, and completes when it is back (or resumes after a
    /// restart). Only an alert without an id is refused.
    fn publish(&self, alert: NewAlert) -> BoxFuture<'static, Result<(), String>> {
        let this = self.clone();
        async move {
            let id = alert
                .id
                .ok_or("an alert is published only once it has an id")?;
            let bytes = payload::encode(id, alert.status, &alert.message);
            let key = id.to_string();
            let mut backoff = Duration::from_millis(100);
            loop {
                let record = FutureRecord::to(&this.topic).key(&key).payload(&bytes);
                match this.producer.send(record, Duration::from_secs(10)).await {
                    Ok(_) => {
                        this.health.up(&this.brokers);
                        return Ok(());
                    }
                    Err((e, _)) => {
                        tracing::debug!(alert = %id, error = %e, "produce failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        .boxed()
    }
}
