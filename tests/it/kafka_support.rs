//! Helpers for the Kafka tests: a librdkafka mock cluster that the test owns, an
//! independent producer, typed reads of the app's API (the app itself is
//! `app_support::TestApp`), and the exactly-once check of a stopped app's database.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alert_center::alerts::store::{InsertOutcome, read};
use alert_center::engine::WorkflowStatus;
use alert_center::engine::record::{WorkflowRecord, decode};
use alert_center::kafka::DEFAULT_TOPIC;
use alert_center::kafka::intake::{INBOUND, InboundInput};
use alert_center::kafka::ledger::{self, Cursor};
use alert_center::storage::Store;
use alert_center::storage::tables::WORKFLOWS;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use redb::ReadableTable;
use serde::Deserialize;

use crate::app_support::TestApp;
use crate::support::reopen;

pub const TOPIC: &str = DEFAULT_TOPIC;
pub const PARTITIONS: i32 = 3;

/// A one-broker mock cluster with the alert topic. Not `Send`: it stays on the test's
/// thread (the cluster itself runs on a thread of librdkafka's).
pub struct Broker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
}

impl Broker {
    pub fn start() -> Broker {
        let cluster = MockCluster::new(1).unwrap();
        // The mock has no CreateTopics: the topic is created through the mock API.
        cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        Broker { cluster, bootstrap }
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Disconnects the broker and refuses new connections.
    pub fn down(&self) {
        self.cluster.broker_down(1).unwrap();
    }

    pub fn up(&self) {
        self.cluster.broker_up(1).unwrap();
    }

    /// The end offset (high watermark) of every partition.
    pub fn end_offsets(&self) -> BTreeMap<i32, i64> {
        end_offsets(&self.bootstrap)
    }

    /// The offsets committed to Kafka under `group` (for lag tools), by partition.
    pub fn committed_offsets(&self, group: &str) -> BTreeMap<i32, Offset> {
        committed_offsets(&self.bootstrap, group)
    }
}

/// The end offset (high watermark) of every partition of the alert topic.
pub fn end_offsets(bootstrap: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "end-offsets")
        .create()
        .unwrap();
    (0..PARTITIONS)
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// The offsets committed to Kafka under `group` (for lag tools), by partition.
pub fn committed_offsets(bootstrap: &str, group: &str) -> BTreeMap<i32, Offset> {
    let consumer: BaseConsumer = client(bootstrap).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect()
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// An independent producer: idempotent, so its own retries never duplicate a message.
pub fn producer(bootstrap: &str) -> FutureProducer {
    client(bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap()
}

/// Produces `value` (none: a tombstone) to `partition`; returns its offset.
pub async fn produce(producer: &FutureProducer, partition: i32, value: Option<&[u8]>) -> i64 {
    let mut record: FutureRecord<'_, str, [u8]> =
        FutureRecord::to(TOPIC).partition(partition).key("k");
    if let Some(value) = value {
        record = record.payload(value);
    }
    let delivery = producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(delivery.partition, partition);
    delivery.offset
}

/// The original app's payload with one alert.
pub fn alert_payload(id: u64, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "alerts": [{"alert_id": id, "alert_status": 0, "message": message}]
    }))
    .unwrap()
}

/// One alert as `GET /alert_history` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryAlert {
    pub alert_id: u64,
    pub alert_status: u8,
    pub message: String,
}

/// One dead letter as `GET /dead_letters` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetterView {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    pub raw: String,
    pub raw_bytes: usize,
}

/// GET `path` of `app` as JSON; asserts a 200.
pub async fn get_json<T: serde::de::DeserializeOwned>(app: &TestApp, path: &str) -> T {
    let response = app.http().get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

pub async fn alert_history(app: &TestApp) -> Vec<HistoryAlert> {
    get_json(app, "/alert_history").await
}

pub async fn dead_letters(app: &TestApp) -> Vec<DeadLetterView> {
    get_json(app, "/dead_letters?limit=10000").await
}

/// Polls the history every 50 ms until `done` holds; panics after `timeout`.
pub async fn wait_history(
    app: &TestApp,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&[HistoryAlert]) -> bool,
) -> Vec<HistoryAlert> {
    let deadline = Instant::now() + timeout;
    loop {
        let history = alert_history(app).await;
        if done(&history) {
            return history;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({} alerts so far); the app's log:\n{}",
            history.len(),
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stored cursors of the alert topic, from the database file of a stopped app.
pub fn stored_cursors(store: &Store) -> BTreeMap<i32, Cursor> {
    let read = store.begin_read().unwrap();
    ledger::cursors(&read, TOPIC).unwrap().into_iter().collect()
}

/// The message of alert `id` in the exactly-once tests.
pub fn message_of(id: u64) -> String {
    format!("alert {id}")
}

/// Alert `id` goes to partition `id % PARTITIONS`.
pub fn partition_of(id: u64) -> i32 {
    (id % PARTITIONS as u64) as i32
}

/// Produces alerts `ids`, each to its partition, all at once.
pub async fn produce_alerts(producer: &FutureProducer, ids: impl IntoIterator<Item = u64>) {
    join_all(ids.into_iter().map(|id| async move {
        produce(
            producer,
            partition_of(id),
            Some(&alert_payload(id, &message_of(id))),
        )
        .await
    }))
    .await;
}

/// Waits (a minute at most) until the history holds every alert of `ids`.
pub async fn wait_for_ids(app: &TestApp, what: &str, ids: &[u64]) -> Vec<HistoryAlert> {
    wait_history(app, what, Duration::from_secs(60), |h| has_all(h, ids)).await
}

/// Whether `history` holds every alert of `ids`.
pub fn has_all(history: &[HistoryAlert], ids: &[u64]) -> bool {
    let present: BTreeSet<u64> = history.iter().map(|a| a.alert_id).collect();
    ids.iter().all(|id| present.contains(id))
}

/// Exactly the alerts `1..=total`, each inserted by one inbound workflow of its own
/// message; no dead letter; every stored cursor at the end offset.
pub fn assert_exactly_once(db: &std::path::Path, end: &BTreeMap<i32, i64>, total: u64) {
    let store = reopen(db);
    let read = store.begin_read().unwrap();

    let alerts = read::history(&read).unwrap();
    let ids: Vec<u64> = alerts.iter().map(|(id, _)| id.get()).collect();
    assert_eq!(
        ids,
        (1..=total).collect::<Vec<_>>(),
        "no loss, no duplicate"
    );
    for (id, alert) in &alerts {
        assert_eq!(alert.message, message_of(id.get()));
    }
    assert!(ledger::dead_letters(&read, 10).unwrap().is_empty());

    let expected: BTreeMap<i32, Cursor> = end
        .iter()
        .map(|(&p, &next_offset)| {
            (
                p,
                Cursor {
                    next_offset,
                    epoch: 0,
                },
            )
        })
        .collect();
    assert_eq!(
        stored_cursors(&store),
        expected,
        "stored cursor = end offset"
    );

    // One inbound workflow per message, and each inserted its alert: a message taken
    // twice would show as a second workflow or as an alert seen as a duplicate.
    let mut offsets = BTreeSet::new();
    for entry in read.open_table(WORKFLOWS).unwrap().iter().unwrap() {
        let (id, record) = entry.unwrap();
        let record: WorkflowRecord = decode(record.value()).unwrap();
        if record.name != INBOUND.name() {
            continue;
        }
        let input: InboundInput = decode(&record.input).unwrap();
        assert_eq!(record.status, WorkflowStatus::Succeeded, "{}", id.value());
        let outcome: InsertOutcome = decode(record.output.as_deref().unwrap()).unwrap();
        let alert_id = input.alerts[0].id.unwrap();
        assert_eq!(outcome.inserted, vec![alert_id], "{}", id.value());
        assert!(outcome.duplicates.is_empty() && outcome.conflicts.is_empty());
        assert_eq!(input.partition, partition_of(alert_id.get()));
        assert!(
            offsets.insert((input.partition, input.offset)),
            "offset taken twice"
        );
    }
    assert_eq!(offsets.len() as u64, total);
}
