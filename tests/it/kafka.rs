//! The Kafka intake and send, end to end: the real binary as a child process against a
//! librdkafka mock cluster that the test owns (a broker that outlives the app), with an
//! independent producer in the test.
//!
//! Exactly once across `kill -9`: 3,000 alerts with explicit ids are produced over three
//! partitions while the app is SIGKILLed five times at random moments of its intake and
//! started again (some alerts are produced while it is down); after a clean stop the
//! database holds exactly the 3,000 alerts, each recorded by one inbound workflow that
//! inserted it (none saw it as a duplicate), no dead letter, and each partition's stored
//! cursor is the broker's end offset (and so is the offset committed to Kafka).
//!
//! Bad messages: every kind of bad message (not UTF-8, not JSON, wrong shape, wrong
//! types, nulls, missing fields, empty, tombstone, ids out of range, a message too long,
//! a payload too large, the ASSIGNED status, ...) lands in the dead-letter table with its
//! partition, offset and raw bytes, and the next good message of its partition is taken;
//! a conflicting id is a dead letter, a duplicate is ignored.
//!
//! Send: two concurrent sends get two alerts; a repeated `Idempotency-Key` gets one;
//! empty and over-long messages get a 400 with the reason.
//!
//! Broker down: the app keeps serving HTTP while the broker is down, logs one line per
//! down period (not one per retry), and takes what is produced after the broker is back;
//! one line too when the outage starts while the intake is busy with a backlog it
//! fetched before (taking those messages is not news that the broker is back).
//!
//! The same exactly-once scenario runs against tansu, a broker with persistent storage
//! that is itself restarted, in `kafka_tansu`; so does the test of partitions added to
//! the topic later (librdkafka's mock cluster cannot add partitions).

use std::collections::BTreeMap;
use std::time::Duration;

use alert_center::kafka::ledger;
use rdkafka::Offset;
use serde_json::{Value, json};

use crate::app_support::{AppOptions, TestApp, spawn_app, spawn_app_with};
use crate::kafka_support::{
    Broker, PARTITIONS, TOPIC, alert_history, alert_payload, assert_exactly_once,
    committed_offsets, dead_letters, end_offsets, has_all, produce, produce_alerts, producer,
    wait_for_ids, wait_history,
};
use crate::support::Rng;

const TOTAL: u64 = 3_000;
const KILLS: u64 = 5;
/// Alerts produced while the app is down, after each kill.
const DOWN_BATCH: u64 = 100;
/// Alerts produced by the background stream, ids `1..=STREAMED`; the others are the
/// down batches.
const STREAMED: u64 = TOTAL - KILLS * DOWN_BATCH;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_is_taken_exactly_once_across_kill_9() {
    let broker = Broker::start();
    exactly_once_across_kills(broker.bootstrap(), "exactly_once", None).await;
}

/// The exactly-once scenario of the module doc against the broker at `bootstrap`.
/// With `restart_broker`, the broker is also restarted twice: once while the app
/// consumes a stream, once while the app is down.
pub async fn exactly_once_across_kills(
    bootstrap: &str,
    test: &str,
    mut restart_broker: Option<&mut dyn FnMut()>,
) {
    let producer = producer(bootstrap);
    let mut rng = Rng::from_env(test);

    // A steady stream (about 500 alerts/s), so that the intake is busy at every kill.
    let stream = tokio::spawn({
        let producer = producer.clone();
        async move {
            for first in (1..=STREAMED).step_by(10) {
                produce_alerts(&producer, first..(first + 10).min(STREAMED + 1)).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let mut down_ids: Vec<u64> = Vec::new();
    let mut app = spawn_app_with(AppOptions::with_broker(bootstrap));
    for kill in 0..KILLS {
        if kill > 0 {
            tokio::task::block_in_place(|| app.restart());
        }
        wait_for_ids(
            &app,
            "the alerts produced while the app was down",
            &down_ids,
        )
        .await;
        if kill == 1
            && let Some(restart) = restart_broker.as_mut()
        {
            tokio::task::block_in_place(restart);
            println!("{test}: broker restarted while the app consumes");
        }
        let delay_ms = rng.between(50, 700);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let seen = alert_history(&app).await.len();
        tokio::task::block_in_place(|| app.kill());
        println!("{test}: kill {kill}: SIGKILL {delay_ms} ms into the life, {seen} alerts in");
        if kill == 3
            && let Some(restart) = restart_broker.as_mut()
        {
            tokio::task::block_in_place(restart);
            println!("{test}: broker restarted while the app is down");
        }
        let first = STREAMED + 1 + kill * DOWN_BATCH;
        down_ids = (first..first + DOWN_BATCH).collect();
        produce_alerts(&producer, down_ids.iter().copied()).await;
    }

    tokio::task::block_in_place(|| app.restart());
    wait_for_ids(
        &app,
        "the alerts produced while the app was down",
        &down_ids,
    )
    .await;
    stream.await.unwrap();
    wait_history(&app, "every alert", Duration::from_secs(120), |h| {
        h.len() as u64 >= TOTAL
    })
    .await;
    let status = tokio::task::block_in_place(|| app.stop());
    assert!(
        status.success(),
        "SIGTERM should stop the app cleanly: {status}"
    );

    let end = end_offsets(bootstrap);
    assert_eq!(
        end.values().sum::<i64>(),
        TOTAL as i64,
        "the log itself holds each alert once"
    );
    assert_exactly_once(app.db_path(), &end, TOTAL);
    let committed = committed_offsets(bootstrap, "alert-center");
    let expected: BTreeMap<i32, Offset> =
        end.iter().map(|(&p, &o)| (p, Offset::Offset(o))).collect();
    assert_eq!(
        committed, expected,
        "offsets committed to Kafka (for lag tools)"
    );
}

/// A bad message, and the start of the reason it must be dead-lettered with.
struct Bad {
    what: &'static str,
    value: Option<Vec<u8>>,
    reason: String,
}

fn bad_messages() -> Vec<Bad> {
    let bad = |what, value: &[u8], reason: &str| Bad {
        what,
        value: Some(value.to_vec()),
        reason: reason.to_string(),
    };
    let alert = |fields: &str| format!(r#"{{"alerts":[{{{fields}}}]}}"#).into_bytes();
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep = nested(10_000);
    let deep_in_alerts = format!(r#"{{"alerts":{}}}"#, nested(10_000));
    let padded = format!(
        r#"{{"alerts":[{{"message":"x"}}],"pad":"{}"}}"#,
        "p".repeat(300 * 1024)
    );
    let many = format!(
        r#"{{"alerts":[{}]}}"#,
        vec![r#"{"message":"m"}"#; 1001].join(",")
    );
    vec![
        bad(
            "not UTF-8",
            b"\xff\xfe{\"alerts\":[]}",
            "message is not UTF-8",
        ),
        bad(
            "not JSON",
            b"disk full on host-7",
            "message is not an alert payload",
        ),
        bad(
            "a JSON array",
            b"[1,2,3]",
            "message is not an alert payload",
        ),
        // serde_json refuses the type at the first bracket, long before its recursion
        // limit: typed parsing never descends into the nesting.
        bad(
            "deep nesting",
            deep.as_bytes(),
            "message is not an alert payload: invalid type: sequence",
        ),
        bad(
            "deep nesting in the alert list",
            deep_in_alerts.as_bytes(),
            "message is not an alert payload: invalid type: sequence",
        ),
        bad(
            "a huge id",
            &alert(r#""alert_id":99999999999999999999999,"message":"x""#),
            "message is not an alert payload",
        ),
        bad(
            "a huge status",
            &alert(r#""alert_status":1e400,"message":"x""#),
            "message is not an alert payload",
        ),
        bad(
            "a negative id",
            &alert(r#""alert_id":-1,"message":"x""#),
            "message is not an alert payload",
        ),
        bad(
            "a fractional id",
            &alert(r#""alert_id":2.5,"message":"x""#),
            "message is not an alert payload",
        ),
        bad(
            "a string for a number",
            &alert(r#""alert_id":"5","message":"x""#),
            "message is not an alert payload: invalid type: string \"5\", expected u64",
        ),
        bad(
            "null values",
            &alert(r#""alert_id":null,"message":null"#),
            "message is not an alert payload: invalid type: null, expected a string",
        ),
        bad(
            "a raw control character inside a string",
            b"{\"alerts\":[{\"message\":\"a\x01b\"}]}",
            "message is not an alert payload: control character",
        ),
        bad(
            "an escaped NUL",
            &alert(r#""message":"a\u0000b""#),
            "alert 0: message contains the control character U+0000",
        ),
        bad(
            "a terminal escape sequence",
            &alert(r#""message":"\u001b[2Jall clear""#),
            "alert 0: message contains the control character U+001B",
        ),
        bad("an empty value", b"", "message is empty"),
        Bad {
            what: "a tombstone",
            value: None,
            reason: "message has no value (a tombstone)".to_string(),
        },
        bad(
            "a missing message",
            &alert(r#""alert_id":5"#),
            "message is not an alert payload: missing field `message`",
        ),
        bad(
            "missing alerts",
            br#"{"alert_id":5,"message":"x"}"#,
            "message is not an alert payload: missing field `alerts`",
        ),
        bad(
            "an empty alert list",
            br#"{"alerts":[]}"#,
            "message has no alerts",
        ),
        bad(
            "alert id 0",
            &alert(r#""alert_id":0,"message":"x""#),
            "alert 0: alert id 0 is out of range",
        ),
        bad(
            "alert id 2^31",
            &alert(r#""alert_id":2147483648,"message":"x""#),
            "alert 0: alert id 2147483648 is out of range",
        ),
        bad(
            "a message of 1001 characters",
            &alert(&format!(r#""message":"{}""#, "é".repeat(1001))),
            "alert 0: message is 1001 characters long",
        ),
        bad(
            "an empty message",
            &alert(r#""message":"  ""#),
            "alert 0: message is empty",
        ),
        bad(
            "a payload over 256 KiB",
            padded.as_bytes(),
            &format!("message is {} bytes; at most 262144", padded.len()),
        ),
        bad(
            "the ASSIGNED status",
            &alert(r#""alert_status":1,"message":"x""#),
            "alert 0: alert_status 1 (ASSIGNED)",
        ),
        bad(
            "an unknown status",
            &alert(r#""alert_status":9,"message":"x""#),
            "alert 0: alert_status 9 is not 0",
        ),
        bad("1001 alerts", many.as_bytes(), "message has 1001 alerts"),
    ]
}

/// The ids of the good message after each bad one.
const GOOD_AFTER_BAD: u64 = 1_000;
/// The id that is sent again, once with another message and once unchanged.
const REPEATED: u64 = 900;
/// A good alert with a deeply nested field the app does not know.
const DEEP_EXTRA: u64 = 950;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_message_is_a_dead_letter_and_the_next_one_is_taken() {
    let broker = Broker::start();
    let mut app = spawn_app_with(AppOptions::with_broker(broker.bootstrap()));
    let producer = producer(broker.bootstrap());

    // Each bad message is followed, on its partition, by a good one.
    let bads = bad_messages();
    let mut expected = BTreeMap::new();
    let mut goods = BTreeMap::new();
    for (i, bad) in bads.iter().enumerate() {
        let partition = i as i32 % PARTITIONS;
        let offset = produce(&producer, partition, bad.value.as_deref()).await;
        expected.insert((partition, offset), bad);
        let id = GOOD_AFTER_BAD + i as u64;
        let message = format!("good after {}", bad.what);
        produce(&producer, partition, Some(&alert_payload(id, &message))).await;
        goods.insert(id, message);
    }
    // Deep nesting in a field the app does not know is skipped (without recursion).
    let deep_extra = format!(
        r#"{{"alerts":[{{"alert_id":{DEEP_EXTRA},"message":"deep extra","extra":{}{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    produce(&producer, 2, Some(deep_extra.as_bytes())).await;
    goods.insert(DEEP_EXTRA, "deep extra".to_string());
    // The same id again: with another message a conflict, unchanged a duplicate.
    let original = alert_payload(REPEATED, "the original message");
    produce(&producer, 1, Some(&original)).await;
    let conflict_offset = produce(
        &producer,
        1,
        Some(&alert_payload(REPEATED, "another message")),
    )
    .await;
    produce(&producer, 1, Some(&original)).await;
    produce(
        &producer,
        1,
        Some(&alert_payload(REPEATED + 1, "after the repeats")),
    )
    .await;
    goods.insert(REPEATED, "the original message".to_string());
    goods.insert(REPEATED + 1, "after the repeats".to_string());

    let good_ids: Vec<u64> = goods.keys().copied().collect();
    let history = wait_history(&app, "every good message", Duration::from_secs(30), |h| {
        has_all(h, &good_ids)
    })
    .await;
    let taken: BTreeMap<u64, String> = history
        .iter()
        .map(|a| (a.alert_id, a.message.clone()))
        .collect();
    assert_eq!(
        taken, goods,
        "each good message, and nothing else, is an alert"
    );
    assert!(history.iter().all(|a| a.alert_status == 0));

    let letters = dead_letters(&app).await;
    assert_eq!(letters.len(), bads.len() + 1, "{letters:#?}");
    for letter in &letters {
        assert_eq!(letter.topic, TOPIC);
        if (letter.partition, letter.offset) == (1, conflict_offset) {
            assert!(
                letter
                    .reason
                    .contains("already exists with another message"),
                "{letter:?}"
            );
            assert!(letter.raw.contains("another message"), "{letter:?}");
            continue;
        }
        let bad = expected
            .remove(&(letter.partition, letter.offset))
            .unwrap_or_else(|| panic!("unexpected dead letter {letter:?}"));
        assert!(
            letter.reason.starts_with(&bad.reason),
            "{}: reason {:?} should start with {:?}",
            bad.what,
            letter.reason,
            bad.reason
        );
        let value = bad.value.as_deref().unwrap_or_default();
        assert_eq!(letter.raw_bytes, value.len(), "{}", bad.what);
        let kept = String::from_utf8_lossy(&value[..value.len().min(ledger::RAW_BYTES_KEPT)]);
        assert_eq!(letter.raw, kept, "{}", bad.what);
    }
    let missing: Vec<_> = expected.values().map(|b| b.what).collect();
    assert!(missing.is_empty(), "not dead-lettered: {missing:?}");
    assert!(app.stop().success());
}

/// `POST /do_send` with `message` (and an `Idempotency-Key`); the status and the body.
async fn send(app: &TestApp, message: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = app
        .http()
        .post(app.url("/do_send"))
        .json(&json!({ "message": message }));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn alert_id_of(sent: &(u16, Value)) -> u64 {
    assert_eq!(sent.0, 200, "{sent:?}");
    sent.1["alert_id"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_get_one_alert_each_and_a_repeated_key_gets_one() {
    // The embedded broker: the default path of `cargo run`.
    let mut app = spawn_app();

    let (a, b) = tokio::join!(
        send(&app, "first of two", None),
        send(&app, "second of two", None)
    );
    let (id_a, id_b) = (alert_id_of(&a), alert_id_of(&b));
    assert_ne!(id_a, id_b, "{a:?} {b:?}");
    assert_ne!(a.1["workflow_id"], b.1["workflow_id"]);

    let key = Some("double-click-1");
    let (c, d) = tokio::join!(send(&app, "sent twice", key), send(&app, "sent twice", key));
    let id_c = alert_id_of(&c);
    assert_eq!(c, d, "one workflow for one key");
    assert_eq!(alert_id_of(&send(&app, "sent twice", key).await), id_c);

    let history = wait_history(&app, "the sent alerts", Duration::from_secs(30), |h| {
        has_all(h, &[id_a, id_b, id_c])
    })
    .await;
    let message = |id| &history.iter().find(|a| a.alert_id == id).unwrap().message;
    assert_eq!(message(id_a), "first of two");
    assert_eq!(message(id_b), "second of two");
    assert_eq!(
        history.iter().filter(|a| a.message == "sent twice").count(),
        1
    );
    assert_eq!(history.len(), 3, "{history:?}");

    for (message, reason) in [
        ("", "message is empty"),
        (" \n\t ", "message is empty"),
        (&"m".repeat(1001), "message is 1001 characters long"),
    ] {
        let (status, body) = send(&app, message, None).await;
        assert_eq!(status, 400, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(reason), "{error:?} should say {reason:?}");
    }
    let (status, body) = send(&app, "ok", Some(&"k".repeat(201))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Idempotency-Key"));
    assert_eq!(
        alert_history(&app).await.len(),
        3,
        "a refused send made an alert"
    );
    assert!(app.stop().success());
}

const UNREACHABLE: &str = "Kafka broker unreachable";
const REACHABLE_AGAIN: &str = "Kafka broker reachable again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_for_a_while_stops_nothing_and_logs_once() {
    let broker = Broker::start();
    let mut app = spawn_app_with(AppOptions::with_broker(broker.bootstrap()));
    let producer = producer(broker.bootstrap());
    produce(&producer, 0, Some(&alert_payload(1, "before the outage"))).await;
    wait_history(&app, "the first alert", Duration::from_secs(20), |h| {
        has_all(h, &[1])
    })
    .await;
    assert_eq!(app.log_count(UNREACHABLE), 0, "{}", app.logs());

    for period in 1..=2u64 {
        broker.down();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while app.log_count(UNREACHABLE) < period as usize {
            assert!(
                std::time::Instant::now() < deadline,
                "no line says the broker is unreachable:\n{}",
                app.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The page and the API keep answering.
        let healthz = app.http().get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(healthz.status(), 200);
        assert_eq!(alert_history(&app).await.len() as u64, period);
        // Several retries (backoff 100 ms doubling) happen in these seconds; none of them
        // may log another line.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(
            app.log_count(UNREACHABLE),
            period as usize,
            "one line per down period, not one per retry:\n{}",
            app.logs()
        );

        broker.up();
        let id = period + 1;
        produce(
            &producer,
            id as i32 % PARTITIONS,
            Some(&alert_payload(id, "after an outage")),
        )
        .await;
        wait_history(
            &app,
            "the alert produced after the outage",
            Duration::from_secs(30),
            |h| has_all(h, &[id]),
        )
        .await;
        assert_eq!(
            (app.log_count(UNREACHABLE), app.log_count(REACHABLE_AGAIN)),
            (period as usize, period as usize),
            "(unreachable, reachable again) lines after {period} outages:\n{}",
            app.logs()
        );
    }
    println!(
        "the app's log:\n{}",
        app.logs()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("Kafka"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(app.stop().success());
}

/// More than the intake keeps in flight (16,384), so that it still takes messages from
/// its local queue while the broker is down.
const BUSY_BACKLOG: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_during_a_busy_intake_logs_once() {
    let broker = Broker::start();
    let producer = producer(broker.bootstrap());
    produce_alerts(&producer, 1..=BUSY_BACKLOG).await;
    let app = spawn_app_with(AppOptions::with_broker(broker.bootstrap()));
    wait_history(&app, "the first alerts", Duration::from_secs(30), |h| {
        !h.is_empty()
    })
    .await;

    broker.down();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.log_count(UNREACHABLE) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no line says the broker is unreachable:\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Commits complete meanwhile, and the intake takes the messages it had fetched
    // before the outage: none of them is news from the broker.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let lines = (app.log_count(UNREACHABLE), app.log_count(REACHABLE_AGAIN));
    broker.up();
    assert_eq!(
        lines,
        (1, 0),
        "(unreachable, reachable again) lines during one outage:\n{}",
        app.logs()
    );
}
