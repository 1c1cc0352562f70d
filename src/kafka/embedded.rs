//! The embedded broker: librdkafka's in-process mock cluster, reached through the
//! normal Kafka client path on a 127.0.0.1 port, so the app runs with no broker
//! installed.
//!
//! What it keeps: the Kafka protocol, partitions, offsets, consumer-group offset
//! commits, the idempotent producer. What a real broker adds: persistence (the mock
//! keeps messages in memory: they are gone when the process that owns it exits),
//! replication, SASL/SSL, and the admin API (topics are created here directly).

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

/// A running mock cluster. The cluster is not `Send`, so a thread of its own owns it;
/// dropping this handle stops it.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster with `topic` already created with `partitions`.
    pub fn start(topic: &str, partitions: i32) -> Result<EmbeddedBroker, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let topic = topic.to_string();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready_tx
                            .send(Err(format!("cannot start the embedded Kafka broker: {e}")));
                        return;
                    }
                };
                if let Err(e) = cluster.create_topic(&topic, partitions, 1) {
                    let _ = ready_tx.send(Err(format!(
                        "cannot create topic {topic} on the embedded broker: {e}"
                    )));
                    return;
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Until the handle is dropped (or its owner is gone).
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| format!("cannot start the embedded Kafka broker thread: {e}"))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| "the embedded Kafka broker thread died".to_string())??;
        Ok(EmbeddedBroker {
            bootstrap_servers,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
