//! The exactly-once scenario of `kafka` (the app SIGKILLed five times during a stream
//! of 3,000 alerts, some produced while it is down) against tansu, a Kafka-compatible
//! broker with persistent sqlite storage, which is itself killed and restarted twice:
//! once while the app consumes, once while the app is down. And partitions added to the
//! topic while the app runs.

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
