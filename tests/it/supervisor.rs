//! The one-binary supervisor, with the real binary: it restarts an app killed with
//! SIGKILL and one that aborts (the crash button), keeping the state; stopping the
//! supervisor stops the app (no orphan keeps the port or the file); SIGTERM exits 0
//! with every acknowledged commit kept.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app_support::{AppOptions, TestApp, spawn_app, spawn_app_with};

/// Pids of the apps the supervisor started, in order, from their ready lines.
fn app_pids(app: &TestApp) -> Vec<i32> {
    app.logs()
        .lines()
        .filter(|l| l.contains("alert-center ready"))
        .filter_map(|l| l.split("pid=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn send(app: &TestApp, message: &str) -> u64 {
    let response = app
        .http()
        .post(format!("{}/do_send", app.base_url()))
        .json(&serde_json::json!({ "message": message }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "send of {message:?} failed");
    response.json::<Value>().await.unwrap()["alert_id"]
        .as_u64()
        .unwrap()
}

async fn history(app: &TestApp) -> Vec<Value> {
    let response = app
        .http()
        .get(format!("{}/alert_history", app.base_url()))
        .send()
        .await
        .unwrap();
    response.json::<Vec<Value>>().await.unwrap()
}

async fn wait_for_alerts(app: &TestApp, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = history(app).await;
        if alerts.len() >= count {
            return alerts;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} alerts arrived",
            alerts.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_restarts_an_app_killed_with_sigkill_or_crashed_by_the_button() {
    let mut app = spawn_app_with(AppOptions::supervised());
    send(&app, "before any crash").await;
    wait_for_alerts(&app, 1).await;

    let first = app_pids(&app)[0];
    // SAFETY: kill(2) on the app process the supervisor started for this test.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    app.wait_for_supervisor_restart();
    assert!(
        app.logs().contains("how=killed (SIGKILL)"),
        "{}",
        app.logs()
    );
    send(&app, "after a kill -9").await;
    // The embedded broker lives in the supervisor: the alert sent through it after the
    // restart arrives, and the one from before is still there.
    let alerts = wait_for_alerts(&app, 2).await;
    assert_eq!(alerts[0]["message"], "before any crash");

    let response = app
        .http()
        .post(format!("{}/crash_application", app.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.wait_for_supervisor_restart();
    assert!(
        app.logs().contains("how=aborted (SIGABRT)"),
        "{}",
        app.logs()
    );
    let pids = app_pids(&app);
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(!alive(pids[0]) && !alive(pids[1]) && alive(pids[2]));
    send(&app, "after the crash button").await;
    let messages: Vec<_> = wait_for_alerts(&app, 3)
        .await
        .iter()
        .map(|a| a["message"].clone())
        .collect();
    assert_eq!(
        messages,
        [
            "before any crash",
            "after a kill -9",
            "after the crash button"
        ]
    );
    assert!(app.stop().success());
    app.check_invariants().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_supervisor_stops_the_app() {
    // SIGTERM: passed to the app, which shuts down cleanly; the supervisor exits 0.
    let mut app = spawn_app_with(AppOptions::supervised());
    let pid = app_pids(&app)[0];
    let status = app.stop();
    assert!(status.success(), "{status}");
    assert!(!alive(pid), "the app outlived its supervisor");

    // SIGKILL of the supervisor alone: the kernel kills the app (parent-death signal),
    // so the port and the file are free for the next start.
    app.restart();
    let pid = app_pids(&app)[1];
    let supervisor = app.pid() as i32;
    // SAFETY: kill(2) on our own child, the supervisor.
    assert_eq!(unsafe { libc::kill(supervisor, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the app outlived its killed supervisor"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = app.wait_for_exit(Duration::from_secs(10));
    app.restart();
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_and_keeps_every_acknowledged_commit() {
    let mut app = spawn_app();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        acknowledged.push(send(&app, &format!("alert {i}")).await);
    }
    let employees: Vec<_> = (0..5).map(|i| format!("e{i}")).collect();
    wait_for_alerts(&app, 20).await;
    for name in &employees {
        let r = app
            .http()
            .get(format!("{}/assignment?name={name}", app.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let started = Instant::now();
    let status = app.stop();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(app.logs().contains("stopped"));
    app.check_invariants().unwrap();
    app.restart();
    let ids: Vec<_> = history(&app)
        .await
        .iter()
        .map(|a| a["alert_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, acknowledged);
    let held = history(&app)
        .await
        .iter()
        .filter(|a| a["alert_status"] == 1)
        .count();
    assert_eq!(held, employees.len(), "leases were lost by the shutdown");
}
