//! Exactly-once intake rate against librdkafka's mock cluster, next to the raw rate of
//! consuming the same messages with rdkafka and storing nothing.
//!
//! Run with `cargo bench --bench intake`. Every figure is one `name: value unit` line;
//! lines starting with `#` are context. 100,000 messages of one alert each (explicit ids)
//! are produced over three partitions of an in-process mock cluster before anything is
//! timed. The raw rate is that of a `StreamConsumer` configured as the intake's consumer,
//! assigned at offset 0 (and, for context, of a `BaseConsumer` polled in a loop). The
//! exactly-once rate runs the real intake (`Intake::run_until_stopped`) on a fresh redb
//! file and counts from its start until every message is durable (one inbound workflow
//! per message, cursor in the same commit).
//!
//! Environment: `INTAKE_BENCH_MESSAGES` overrides the number of messages.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alert_center::alerts::AlertCenter;
use alert_center::engine::{Engine, EngineConfig, SystemClock};
use alert_center::kafka::health::BrokerHealth;
use alert_center::kafka::intake::Intake;
use alert_center::kafka::producer::KafkaPublisher;
use alert_center::kafka::{DEFAULT_TOPIC, KafkaSettings};
use alert_center::storage::Store;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::watch;

const PARTITIONS: i32 = 3;
const GOAL_ALERTS_PER_SEC: f64 = 20_000.0;
/// The longest any phase may take before the benchmark gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

fn main() {
    let messages: u64 = std::env::var("INTAKE_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let cluster = MockCluster::new(1).expect("cannot start the mock cluster");
    cluster
        .create_topic(DEFAULT_TOPIC, PARTITIONS, 1)
        .expect("cannot create the topic");
    let brokers = cluster.bootstrap_servers();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot start the runtime");

    let produced = Instant::now();
    produce(&brokers, messages);
    println!(
        "# {messages} messages of one alert produced over {PARTITIONS} partitions in {:.2} s",
        produced.elapsed().as_secs_f64()
    );

    let raw = runtime.block_on(raw_stream_consume(&brokers, messages));
    let raw_rate = messages as f64 / raw.as_secs_f64();
    let base = raw_base_consume(&brokers, messages);
    let base_rate = messages as f64 / base.as_secs_f64();

    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let run = runtime.block_on(exactly_once(
        &brokers,
        &dir.path().join("intake.redb"),
        messages,
    ));
    let rate = messages as f64 / run.elapsed.as_secs_f64();

    println!("intake_exactly_once: {rate:.0} alerts/s");
    println!("intake_raw_consume: {raw_rate:.0} msgs/s");
    println!("intake_raw_consume_base_consumer: {base_rate:.0} msgs/s");
    println!(
        "intake_ratio_raw_over_exactly_once: {:.2} x",
        raw_rate / rate
    );
    println!("intake_writer_batch_avg: {:.0} items/commit", run.batch_avg);
    println!(
        "intake_writer_commits: {:.1} commits/s",
        run.commits_per_sec
    );
    println!("intake_writer_commit_avg: {:.2} ms", run.commit_ms_avg);
    println!(
        "intake_writer_busy: {:.0} % of the run",
        run.writer_busy * 100.0
    );
    println!(
        "# goal: >= {GOAL_ALERTS_PER_SEC:.0} alerts/s exactly once: {}",
        if rate >= GOAL_ALERTS_PER_SEC {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(cluster);
}

/// Produces `messages` one-alert payloads (ids `1..=messages`), round robin over the
/// partitions, and waits until all are acknowledged.
fn produce(brokers: &str, messages: u64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("cannot create the producer");
    for id in 1..=messages {
        let payload = format!(
            r#"{{"alerts":[{{"alert_id":{id},"alert_status":0,"message":"benchmark alert {id}"}}]}}"#
        );
        let key = id.to_string();
        let partition = (id % PARTITIONS as u64) as i32;
        loop {
            let record = BaseRecord::to(DEFAULT_TOPIC)
                .partition(partition)
                .key(&key)
                .payload(&payload);
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("cannot produce: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("the mock cluster did not take every message");
}

fn assignment_from_start() -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(DEFAULT_TOPIC, p, Offset::Beginning)
            .expect("cannot build the assignment");
    }
    tpl
}

/// A consumer configured as the intake's (see `kafka::intake`).
fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        .set("queued.min.messages", "200000");
    config
}

/// Time to receive every message with a `StreamConsumer`, storing nothing.
async fn raw_stream_consume(brokers: &str, messages: u64) -> Duration {
    let consumer: StreamConsumer = consumer_config(brokers, "bench-raw-stream")
        .create()
        .expect("cannot create the consumer");
    let started = Instant::now();
    consumer
        .assign(&assignment_from_start())
        .expect("cannot assign");
    let mut seen = 0u64;
    while seen < messages {
        let message = tokio::time::timeout(PHASE_TIMEOUT, consumer.recv())
            .await
            .expect("raw consumption timed out")
            .expect("consumer error");
        std::hint::black_box(&message);
        seen += 1;
    }
    started.elapsed()
}

/// Time to receive every message with a `BaseConsumer` polled in a loop.
fn raw_base_consume(brokers: &str, messages: u64) -> Duration {
    let consumer: BaseConsumer = consumer_config(brokers, "bench-raw-base")
        .create()
        .expect("cannot create the consumer");
    let started = Instant::now();
    consumer
        .assign(&assignment_from_start())
        .expect("cannot assign");
    let mut seen = 0u64;
    while seen < messages {
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "raw consumption timed out"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            std::hint::black_box(message.expect("consumer error"));
            seen += 1;
        }
    }
    started.elapsed()
}

struct Run {
    elapsed: Duration,
    batch_avg: f64,
    commits_per_sec: f64,
    commit_ms_avg: f64,
    writer_busy: f64,
}

/// The real intake on a fresh database, from its start until every message is durable.
async fn exactly_once(brokers: &str, db: &std::path::Path, messages: u64) -> Run {
    let store = Store::open(db).expect("cannot open the database");
    let engine = Engine::new(store, Arc::new(SystemClock), EngineConfig::default());
    let settings = KafkaSettings {
        brokers: brokers.to_string(),
        sasl: None,
        topic: DEFAULT_TOPIC.to_string(),
        group_id: "bench-intake".to_string(),
        new_topic_partitions: PARTITIONS,
    };
    let health = BrokerHealth::new();
    let publisher =
        KafkaPublisher::new(&settings, health.clone()).expect("cannot create the producer");
    let center = AlertCenter::new(engine.clone(), Duration::from_secs(30), Arc::new(publisher));
    let intake = Intake::new(&engine, settings, health, center.changes().clone());
    engine.recover().await.expect("recovery failed");

    let writer = engine.writer().stats();
    let (commits_0, items_0, micros_0) = (
        writer.commits.load(Ordering::Relaxed),
        writer.items.load(Ordering::Relaxed),
        writer.commit_micros.load(Ordering::Relaxed),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn({
        let intake = intake.clone();
        async move { intake.run_until_stopped(stop_rx).await }
    });
    while intake.stats().messages.load(Ordering::Relaxed) < messages {
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "the intake took {} of {messages} messages in {PHASE_TIMEOUT:?}",
            intake.stats().messages.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let commits = writer.commits.load(Ordering::Relaxed) - commits_0;
    let items = writer.items.load(Ordering::Relaxed) - items_0;
    let micros = writer.commit_micros.load(Ordering::Relaxed) - micros_0;

    let _ = stop_tx.send(true);
    let _ = task.await;
    let stats = intake.stats();
    assert_eq!(
        stats.alerts_inserted.load(Ordering::Relaxed),
        messages,
        "every message should have inserted its alert"
    );
    assert_eq!(stats.dead_letters.load(Ordering::Relaxed), 0);
    engine.shutdown().await;

    let secs = elapsed.as_secs_f64();
    Run {
        elapsed,
        batch_avg: items as f64 / commits.max(1) as f64,
        commits_per_sec: commits as f64 / secs,
        commit_ms_avg: micros as f64 / 1e3 / commits.max(1) as f64,
        writer_busy: micros as f64 / 1e6 / secs,
    }
}
