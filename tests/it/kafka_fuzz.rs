//! Random Kafka messages against the real app (values drawn from proptest strategies,
//! seeded; the seed is printed): random bytes, and valid payloads with random bytes
//! overwritten. The app's verdict on each message must be the parser's: a message
//! `kafka::payload::parse` refuses is a dead letter at its offset with that reason;
//! one it accepts becomes alerts and no dead letter. Nothing crashes or stalls: a good
//! message produced after them on every partition is taken, and every stored cursor
//! ends at the end offset.

use std::collections::BTreeMap;
use std::time::Duration;

use alert_center::kafka::payload;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::app_support::{AppOptions, spawn_app_with};
use crate::kafka_support::{
    Broker, PARTITIONS, alert_payload, dead_letters, has_all, produce, producer, stored_cursors,
    wait_history,
};
use crate::support::{Rng, reopen};

/// Random messages produced.
const MESSAGES: usize = 400;

/// Ids of the good messages produced after the random ones (random payloads that
/// parse carry no id, so they never collide with these).
const GOOD_AFTER: u64 = 1_000_000;

/// Random bytes, or a valid payload with up to four bytes overwritten at random.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let base = br#"{"alerts":[{"alert_status":0,"message":"disk full on host-7"}]}"#.to_vec();
    let len = base.len();
    proptest::prop_oneof![
        proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
        proptest::collection::vec((0..len, proptest::num::u8::ANY), 1..5).prop_map(move |edits| {
            let mut value = base.clone();
            for (at, byte) in edits {
                value[at] = byte;
            }
            value
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_messages_get_the_parsers_verdict_and_stall_nothing() {
    let broker = Broker::start();
    let producer = producer(broker.bootstrap());
    let mut app = spawn_app_with(AppOptions::with_broker(broker.bootstrap()));
    let mut seed = Rng::from_env("kafka_fuzz");
    let seed_bytes: Vec<u8> = (0..4).flat_map(|_| seed.next_u64().to_le_bytes()).collect();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = message();

    // The parser's verdict on each message, by (partition, offset).
    let mut verdicts = BTreeMap::new();
    let mut accepted = 0;
    for i in 0..MESSAGES {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        let partition = i as i32 % PARTITIONS;
        let offset = produce(&producer, partition, Some(&value)).await;
        let verdict = payload::parse(Some(&value)).map(|alerts| alerts.len());
        accepted += verdict.as_ref().map_or(0, |alerts| *alerts);
        verdicts.insert((partition, offset), verdict);
    }
    let good: Vec<u64> = (0..PARTITIONS as u64).map(|p| GOOD_AFTER + p).collect();
    for &id in &good {
        let partition = (id - GOOD_AFTER) as i32;
        produce(
            &producer,
            partition,
            Some(&alert_payload(id, "after the noise")),
        )
        .await;
    }
    let history = wait_history(
        &app,
        "the good messages after the random ones",
        Duration::from_secs(60),
        |h| has_all(h, &good),
    )
    .await;
    assert_eq!(
        history.len(),
        accepted + good.len(),
        "the accepted payloads' alerts and the good ones"
    );

    let letters: BTreeMap<(i32, i64), String> = dead_letters(&app)
        .await
        .into_iter()
        .map(|l| ((l.partition, l.offset), l.reason))
        .collect();
    for (at, verdict) in &verdicts {
        match verdict {
            Err(reason) => assert_eq!(letters.get(at), Some(reason), "message at {at:?}"),
            Ok(_) => assert_eq!(letters.get(at), None, "accepted message at {at:?}"),
        }
    }
    assert_eq!(
        letters.len(),
        verdicts.values().filter(|v| v.is_err()).count()
    );

    let status = tokio::task::block_in_place(|| app.stop());
    assert!(status.success(), "SIGTERM: {status}");
    let end = broker.end_offsets();
    let cursors: BTreeMap<i32, i64> = stored_cursors(&reopen(app.db_path()))
        .into_iter()
        .map(|(p, c)| (p, c.next_offset))
        .collect();
    assert_eq!(cursors, end, "stored cursor = end offset");
    println!(
        "kafka_fuzz: {MESSAGES} random messages, {} dead letters, {accepted} alerts from the rest",
        letters.len()
    );
}
