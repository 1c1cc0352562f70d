//! Named crash points in the intake and the send, each hit at several counts (as redb's
//! own fuzzing fails its I/O at chosen counts): the app runs against a Kafka broker the
//! test owns with `ALERT_CENTER_CRASH_AT=point:N` and kills itself with SIGKILL the N-th
//! time it gets there; it is then started again without the crash, and the end state is
//! checked as after any crash.
//!
//! Intake: a backlog and a steady stream of alerts are produced (more while the app is
//! down). At the end every alert exists exactly once, each taken by one inbound
//! workflow, no dead letter, each partition's stored cursor is its end offset, and so is
//! the offset committed to Kafka. The points: a message taken from Kafka with nothing
//! written (`intake.received`), a message durable in redb but not yet counted
//! (`intake.durable`), durable positions not yet committed to Kafka
//! (`intake.kafka_commit`), and the group-commit writer before and after a commit
//! (`writer.before_commit`, `writer.after_commit`).
//!
//! Send: the process dies after the alert was produced and before the step's checkpoint
//! (`send.published`); the replay produces it again, and the intake keeps one alert.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use alert_center::faults::CRASH_AT_ENV;
use rdkafka::Offset;
use serde_json::json;

use crate::app_support::{AppOptions, TestApp, spawn_app_with};
use crate::kafka_support::{
    Broker, alert_history, assert_exactly_once, dead_letters, produce_alerts, producer,
    stored_cursors, wait_history,
};
use crate::support::reopen;

/// Alerts produced before the app starts.
const BACKLOG: u64 = 200;
/// Alerts produced while the app is down after its crash.
const DOWN_BATCH: u64 = 50;

/// Crash points hit once per message, and the counts they are hit at.
const PER_MESSAGE_COUNTS: [u64; 3] = [1, 9, 150];
/// Crash points hit once per commit (of many messages), and the counts.
const PER_COMMIT_COUNTS: [u64; 3] = [1, 2, 3];

fn options(broker: &Broker, crash_at: Option<String>) -> AppOptions {
    let mut options = AppOptions::with_broker(broker.bootstrap());
    options.env = crash_at
        .map(|spec| vec![(CRASH_AT_ENV.to_string(), spec)])
        .unwrap_or_default();
    options
}

/// Waits for the app to kill itself at its crash point; asserts it died of SIGKILL.
fn wait_for_crash(app: &mut TestApp, spec: &str) {
    let status = app.wait_for_exit(Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{spec}: the app should have killed itself, but exited with {status}"
    );
}

/// One intake run crashed at `point:at_hit`, then recovered and checked.
async fn intake_crash(point: &str, at_hit: u64) {
    let spec = format!("{point}:{at_hit}");
    let broker = Broker::start();
    let producer = producer(broker.bootstrap());
    produce_alerts(&producer, 1..=BACKLOG).await;

    // A steady stream until the app is down, so that every count is reached.
    let produced = Arc::new(AtomicU64::new(BACKLOG));
    let down = Arc::new(AtomicBool::new(false));
    let stream = tokio::spawn({
        let (producer, produced, down) = (producer.clone(), produced.clone(), down.clone());
        async move {
            while !down.load(Ordering::SeqCst) {
                let first = produced.load(Ordering::SeqCst) + 1;
                produce_alerts(&producer, first..first + 10).await;
                produced.store(first + 9, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let mut app = spawn_app_with(options(&broker, Some(spec.clone())));
    tokio::task::block_in_place(|| wait_for_crash(&mut app, &spec));
    down.store(true, Ordering::SeqCst);
    stream.await.unwrap();
    let first = produced.load(Ordering::SeqCst) + 1;
    produce_alerts(&producer, first..first + DOWN_BATCH).await;
    let total = first + DOWN_BATCH - 1;

    *app.options_mut() = options(&broker, None);
    tokio::task::block_in_place(|| app.restart());
    wait_history(&app, "every alert", Duration::from_secs(60), |h| {
        h.len() as u64 >= total
    })
    .await;
    let status = tokio::task::block_in_place(|| app.stop());
    assert!(status.success(), "{spec}: SIGTERM: the app exited {status}");

    let end = broker.end_offsets();
    assert_exactly_once(app.db_path(), &end, total);
    let committed = broker.committed_offsets("alert-center");
    let expected: BTreeMap<i32, Offset> =
        end.iter().map(|(&p, &o)| (p, Offset::Offset(o))).collect();
    assert_eq!(committed, expected, "{spec}: offsets committed to Kafka");
    println!("{spec}: crashed, recovered; {total} alerts exactly once");
}

async fn intake_crash_at_counts(point: &str, counts: &[u64]) {
    for &at_hit in counts {
        intake_crash(point, at_hit).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_killed_after_taking_a_message_before_writing_it() {
    intake_crash_at_counts("intake.received", &PER_MESSAGE_COUNTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_killed_after_a_message_is_durable_before_it_is_counted() {
    intake_crash_at_counts("intake.durable", &PER_MESSAGE_COUNTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_killed_before_committing_positions_to_kafka() {
    intake_crash_at_counts("intake.kafka_commit", &PER_COMMIT_COUNTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_killed_before_and_after_a_group_commit() {
    intake_crash_at_counts("writer.before_commit", &PER_COMMIT_COUNTS).await;
    intake_crash_at_counts("writer.after_commit", &PER_COMMIT_COUNTS).await;
}

/// `POST /do_send`: the JSON answer, or None when the app died under the request.
async fn send(app: &TestApp, message: &str) -> Option<serde_json::Value> {
    let response = app
        .http()
        .post(app.url("/do_send"))
        .json(&json!({ "message": message }))
        .send()
        .await
        .ok()?;
    assert_eq!(response.status(), 200, "send {message:?}");
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_killed_between_produce_and_checkpoint_makes_one_alert() {
    for at_hit in [1, 2] {
        let spec = format!("send.published:{at_hit}");
        let broker = Broker::start();
        let mut app = spawn_app_with(options(&broker, Some(spec.clone())));
        let messages = ["first send", "second send", "third send"];
        let crashed = at_hit as usize - 1;
        for message in &messages[..crashed] {
            assert!(send(&app, message).await.is_some(), "{spec}: {message}");
        }
        // The process kills itself under this request; the caller sees no answer.
        let _ = send(&app, messages[crashed]).await;
        tokio::task::block_in_place(|| wait_for_crash(&mut app, &spec));

        *app.options_mut() = options(&broker, None);
        tokio::task::block_in_place(|| app.restart());
        for message in &messages[crashed + 1..] {
            assert!(send(&app, message).await.is_some(), "{spec}: {message}");
        }
        let history = wait_history(&app, "every send", Duration::from_secs(30), |h| {
            h.len() >= messages.len()
        })
        .await;
        // The replay's second copy must be seen as a duplicate, not as a new alert.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let history_after = alert_history(&app).await;
        assert_eq!(
            history_after.len(),
            history.len(),
            "{spec}: a late duplicate"
        );
        let mut got: Vec<&str> = history_after.iter().map(|a| a.message.as_str()).collect();
        got.sort_unstable();
        let mut want = messages.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{spec}: each send is one alert");
        assert!(dead_letters(&app).await.is_empty(), "{spec}: no conflict");
        let produced: i64 = broker.end_offsets().values().sum();
        assert_eq!(
            produced,
            messages.len() as i64 + 1,
            "{spec}: the crashed send was produced twice (before the crash and on replay)"
        );
        let status = tokio::task::block_in_place(|| app.stop());
        assert!(status.success(), "{spec}: SIGTERM: the app exited {status}");
        if let Err(violation) = app.check_invariants() {
            panic!("{spec}: invariant violated: {violation}");
        }
        let taken: i64 = stored_cursors(&reopen(app.db_path()))
            .values()
            .map(|c| c.next_offset)
            .sum();
        assert_eq!(taken, produced, "{spec}: the intake took both copies");
        println!("{spec}: crashed after producing; one alert per send");
    }
}
