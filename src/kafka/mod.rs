//! Kafka: the exactly-once intake, the producer behind "send", the embedded broker,
//! and the wire format.
//!
//! - [`payload`]: bytes to alerts (or a dead-letter reason), and back.
//! - [`ledger`]: cursors (where each partition resumes) and dead letters in redb.
//! - [`intake`]: the consumer: manual assignment from redb cursors, one durable
//!   workflow per message, batched commits.
//! - [`producer`]: [`producer::KafkaPublisher`], the `AlertPublisher` of the app.
//! - [`embedded`]: librdkafka's mock cluster as a broker for `cargo run`.
//! - [`health`]: broker reachability, logged once per change.

pub mod embedded;
pub mod health;
pub mod intake;
pub mod ledger;
pub mod payload;
pub mod producer;

use rdkafka::ClientConfig;

/// The topic of the original app.
pub const DEFAULT_TOPIC: &str = "alert-responder-topic";

/// How to reach Kafka and what to consume.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// SASL PLAIN over SSL credentials, as the original app used for hosted Kafka.
    pub sasl: Option<SaslPlain>,
    pub topic: String,
    /// Consumer group under which offsets are committed to Kafka, for lag tools.
    pub group_id: String,
    /// Partitions of the topic if the app has to create it.
    pub new_topic_partitions: i32,
}

#[derive(Clone)]
pub struct SaslPlain {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslPlain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslPlain")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl KafkaSettings {
    /// Client settings shared by the consumer, the producer and the admin client.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "alert-center")
            .set("socket.keepalive.enable", "true")
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "5000");
        if let Some(sasl) = &self.sasl {
            config
                .set("security.protocol", "SASL_SSL")
                .set("sasl.mechanisms", "PLAIN")
                .set("sasl.username", &sasl.username)
                .set("sasl.password", &sasl.password);
        }
        config
    }
}
