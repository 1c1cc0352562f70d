//! A full disk, with the real binary under its supervisor: the app opens its file
//! through a redb backend that fails every write with `ENOSPC` while a switch file
//! exists (`ALERT_CENTER_DISK_FULL_WHILE`).
//!
//! While the disk is full, a request that writes gets a 503 that says why, the app
//! logs one clear line and stops (exit code 75: redb refuses every write after a failed
//! commit until the file is opened again), and the supervisor keeps restarting it with
//! backoff, answering requests with a 503 that says why in between. Once there is room again, the app comes back by itself with everything that
//! was acknowledged before (alerts, a fix, a lease), nothing of what was refused, and
//! writes again. No panic trace at any point.

use std::time::{Duration, Instant};

use alert_center::faults::DISK_FULL_WHILE_ENV;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app_support::{AppOptions, TestApp, spawn_app_with};
use crate::kafka_support::{alert_history, wait_history};

/// POSTs `body` to `path`; the status and the JSON answer (None if the app did not
/// answer at all).
async fn post(app: &TestApp, path: &str, body: &Value) -> Option<(StatusCode, Value)> {
    let response = app
        .http()
        .post(app.url(path))
        .json(body)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    let status = response.status();
    Some((status, response.json().await.ok()?))
}

async fn assignment(app: &TestApp, name: &str) -> Value {
    let url = app.url(&format!("/assignment?name={name}"));
    let response = app.http().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_and_the_app_comes_back_when_there_is_room() {
    let switch_dir = tempfile::tempdir().unwrap();
    let switch = switch_dir.path().join("disk-is-full");
    let mut options = AppOptions::supervised();
    options.env.push((
        DISK_FULL_WHILE_ENV.to_string(),
        switch.display().to_string(),
    ));
    let mut app = spawn_app_with(options);

    // Acknowledged before the disk fills: three alerts, one fixed, one held by ann.
    for message in ["first", "second", "third"] {
        let (status, _) = post(&app, "/do_send", &json!({ "message": message }))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    wait_history(&app, "the three alerts", Duration::from_secs(20), |h| {
        h.len() == 3
    })
    .await;
    let bob = assignment(&app, "bob").await["employee"]["alert_id"]
        .as_u64()
        .unwrap();
    let (status, _) = post(&app, "/respond/fixed", &json!({"name": "bob"}))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let ann = assignment(&app, "ann").await["employee"]["alert_id"]
        .as_u64()
        .unwrap();

    // Let ann's lease watcher record its sleep first: the write that fails must be the
    // request's own (a background write failing first would stop the app before the
    // request is answered, and the test would see no answer rather than a 503).
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(&switch, b"").unwrap();
    let (status, answer) = post(&app, "/do_send", &json!({"message": "while full"}))
        .await
        .expect("the app answers the write it cannot make");
    assert_eq!(status, 503, "{answer}");
    let reason = answer["error"].as_str().unwrap();
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(reason.contains("try again later"), "{reason}");

    // The app stops with exit code 75 and the supervisor keeps trying.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.log_count("exit code 75") < 2 {
        assert!(
            Instant::now() < deadline,
            "the supervisor did not retry: {}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.log_count("the database can no longer be written"),
        1,
        "{}",
        app.logs()
    );
    // Meanwhile a request gets an answer that says why, not a wait without end.
    let response = app
        .http()
        .get(app.url("/alert_history"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let answer: Value = response.json().await.unwrap();
    let reason = answer["error"].as_str().unwrap();
    assert!(reason.contains("disk is full or failing"), "{reason}");

    std::fs::remove_file(&switch).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent = post(&app, "/do_send", &json!({"message": "after"})).await;
        if let Some((StatusCode::OK, _)) = sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app did not come back once the disk had room: {sent:?}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let history = wait_history(&app, "the alert sent after", Duration::from_secs(20), |h| {
        h.iter().any(|a| a.message == "after")
    })
    .await;
    let mut messages: Vec<&str> = history.iter().map(|a| a.message.as_str()).collect();
    messages.sort_unstable();
    assert_eq!(messages, ["after", "first", "second", "third"]);
    let fixed = history.iter().find(|a| a.alert_id == bob).unwrap();
    assert_eq!(fixed.alert_status, 2, "the fix is kept");
    assert_eq!(
        assignment(&app, "ann").await["employee"]["alert_id"].as_u64(),
        Some(ann),
        "ann keeps her lease"
    );
    assert_eq!(alert_history(&app).await.len(), 4);

    let status = tokio::task::block_in_place(|| app.stop());
    assert!(status.success(), "SIGTERM: {status}");
    if let Err(violation) = app.check_invariants() {
        panic!("invariant violated: {violation}");
    }
    let logs = app.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    let refused = "cannot open database file";
    assert!(
        logs.lines()
            .filter(|l| l.contains(refused))
            .all(|l| l.matches("No space left on device").count() == 1),
        "one clear line per refused start: {logs}"
    );
    println!(
        "disk full: {} restarts refused while full",
        app.log_count("exit code 75")
    );
}
