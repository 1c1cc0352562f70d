//! The exactly-once scenario of `kafka` (the app SIGKILLed five times during a stream
//! of 3,000 alerts, some produced while it is down) against tansu, a Kafka-compatible
//! broker with persistent sqlite storage, which is itself killed and restarted twice:
//! once while the app consumes, once while the app is down. And partitions added to the
//! topic while the app runs, and a missing topic that the app creates once.

use std::collections::BTreeMap;
use std::time::Duration;

use alert_center::alerts::store::read;

use crate::app_support::{AppOptions, spawn_app_with};
use crate::kafka::exactly_once_across_kills;
use crate::kafka_support::{
    PARTITIONS, alert_payload, has_all, message_of, produce, produce_alerts, producer,
    stored_cursors, wait_history,
};
use crate::support::reopen;
use crate::tansu_support::Tansu;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_is_taken_exactly_once_across_kill_9_and_broker_restarts_on_tansu() {
    let mut tansu = Tansu::start();
    let bootstrap = tansu.bootstrap();
    let mut restart = || tansu.restart();
    exactly_once_across_kills(&bootstrap, "tansu", Some(&mut restart)).await;
}

/// Partitions added to the topic while the app runs are found by its periodic metadata
/// poll and consumed from their first offset; their cursors are stored like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_added_to_the_topic_later_are_picked_up() {
    const GROWN: i32 = PARTITIONS + 2;
    let tansu = Tansu::start();
    let bootstrap = tansu.bootstrap();
    let mut app = spawn_app_with(AppOptions::with_broker(&bootstrap));
    let before = producer(&bootstrap);
    produce_alerts(&before, 1..=30).await;
    wait_history(&app, "the first alerts", Duration::from_secs(30), |h| {
        has_all(h, &(1..=30).collect::<Vec<_>>())
    })
    .await;

    tansu.add_partitions(GROWN);
    // A new producer: it learns of the new partitions from its first metadata answer.
    let after = producer(&bootstrap);
    let mut offsets = BTreeMap::new();
    for id in 31..=40u64 {
        let partition = PARTITIONS + (id % 2) as i32;
        let payload = alert_payload(id, &message_of(id));
        let offset = produce(&after, partition, Some(&payload)).await;
        offsets.insert(partition, offset + 1);
    }
    wait_history(
        &app,
        "the alerts of the new partitions",
        Duration::from_secs(60),
        |h| has_all(h, &(31..=40).collect::<Vec<_>>()),
    )
    .await;
    assert_eq!(app.log_count("new partitions picked up"), 1);

    let status = tokio::task::block_in_place(|| app.stop());
    assert!(status.success(), "SIGTERM: {status}");
    let store = reopen(app.db_path());
    let cursors = stored_cursors(&store);
    for (partition, end) in offsets {
        assert_eq!(
            cursors.get(&partition).map(|c| c.next_offset),
            Some(end),
            "cursor of new partition {partition}"
        );
    }
    let read = store.begin_read().unwrap();
    let ids: Vec<u64> = read::history(&read)
        .unwrap()
        .iter()
        .map(|(id, _)| id.get())
        .collect();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>(), "each alert once");
}

/// A topic that does not exist is created by the app (with `--kafka-topic-partitions`,
/// 3 by default), once: a restart finds it and neither deletes nor recreates it, so
/// what was produced before is still there and is not taken twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_created_once_and_never_recreated() {
    let tansu = Tansu::start_empty();
    let bootstrap = tansu.bootstrap();
    let mut app = spawn_app_with(AppOptions::with_broker(&bootstrap));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.log_count("created Kafka topic") == 0 {
        assert!(std::time::Instant::now() < deadline, "{}", app.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let producer = producer(&bootstrap);
    produce_alerts(&producer, 1..=30).await;
    wait_history(&app, "the first alerts", Duration::from_secs(30), |h| {
        h.len() == 30
    })
    .await;

    tokio::task::block_in_place(|| app.kill());
    produce_alerts(&producer, 31..=60).await;
    tokio::task::block_in_place(|| app.restart());
    wait_history(
        &app,
        "the alerts produced while down",
        Duration::from_secs(30),
        |h| h.len() == 60,
    )
    .await;
    assert_eq!(app.log_count("created Kafka topic"), 1, "{}", app.logs());
    let status = tokio::task::block_in_place(|| app.stop());
    assert!(status.success(), "SIGTERM: {status}");
    let end = crate::kafka_support::end_offsets(&bootstrap);
    assert_eq!(end.values().sum::<i64>(), 60, "the log kept everything");
    let cursors: BTreeMap<i32, i64> = stored_cursors(&reopen(app.db_path()))
        .into_iter()
        .map(|(p, c)| (p, c.next_offset))
        .collect();
    assert_eq!(cursors, end);
}
