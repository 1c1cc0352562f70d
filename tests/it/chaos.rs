//! Crash chaos: the real binary, a Kafka broker the test owns, an independent producer
//! and employees over HTTP, while the app is SIGKILLed again and again at random moments.
//!
//! The producer streams 10,000 alerts with explicit ids over three partitions (some
//! while the app is down). Employees (HTTP clients) ask for an alert, then fix it, ask
//! for more time, log out, or let the short lease run out. After every kill, on a copy
//! of the database file (so that the app itself still finds a file a crash left behind):
//! every invariant of `alerts::store::check_invariants` holds, every fix an employee was
//! told about is resolved, nothing resolved ever comes back, and no lease outlives its
//! expiry by more than `LATE_MS` while the app was up. At the end: every produced alert
//! exists exactly once, each taken by one inbound workflow, no dead letter, every
//! partition's stored offset is its end offset, and once the employees stop, every lease
//! ends.
//!
//! The randomness (kill moments, employees' choices) is seeded; the seed is printed and
//! `TEST_SEED=N` replays the same choices (thread timing still varies). A longer soak:
//! `CHAOS_ALERTS=100000 CHAOS_KILLS=200 cargo test --test it chaos`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alert_center::alerts::model::AlertStatus;
use alert_center::alerts::store::{self, read};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app_support::{AppOptions, TestApp, spawn_app_with};
use crate::kafka_support::{
    Broker, alert_history, assert_exactly_once, produce_alerts, producer, wait_for_ids,
    wait_history,
};
use crate::support::{Rng, now_ms, reopen};

/// Alerts produced in all, unless `CHAOS_ALERTS` says otherwise (a longer soak).
const ALERTS: u64 = 10_000;
/// SIGKILLs of the app, unless `CHAOS_KILLS` says otherwise.
const KILLS: u64 = 24;
/// Alerts produced while the app is down, after each kill.
const DOWN_BATCH: u64 = 50;
/// Employees working at once.
const EMPLOYEES: u64 = 6;
/// A short lease, so that leases run out during the test, across kills too.
const LEASE_SECS: f64 = 2.0;
/// How long after its expiry (or after the app is up, if later) a lease may hold.
const LATE_MS: u64 = 1_000;

/// What employees were told, and what they did.
#[derive(Default)]
struct Told {
    /// Alerts whose fix was acknowledged with a 200.
    fixed: Mutex<BTreeSet<u64>>,
    assigned: AtomicU64,
    more_time: AtomicU64,
    logged_out: AtomicU64,
    let_run_out: AtomicU64,
    /// Requests that failed because the app was down (connection refused, reset).
    unanswered: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_and_every_lease_honoured_across_kills() {
    let from_env = |name: &str, default: u64| {
        std::env::var(name)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a count"))
            })
            .unwrap_or(default)
    };
    let (alerts, kills) = (
        from_env("CHAOS_ALERTS", ALERTS),
        from_env("CHAOS_KILLS", KILLS),
    );
    // Produced by the background stream, ids `1..=streamed`; the rest are the batches
    // produced while the app is down.
    let streamed = alerts
        .checked_sub(kills * DOWN_BATCH)
        .filter(|&n| n > 0)
        .unwrap_or_else(|| panic!("{alerts} alerts are too few for {kills} kills"));
    let broker = Broker::start();
    let producer = producer(broker.bootstrap());
    let mut rng = Rng::from_env("chaos");

    let mut options = AppOptions::with_broker(broker.bootstrap());
    options.lease_secs = LEASE_SECS;
    let mut app = spawn_app_with(options);
    let mut up_ms = now_ms();

    // A steady stream (about 600 alerts/s), so that the intake is busy at every kill.
    let stream = tokio::spawn({
        let producer = producer.clone();
        async move {
            for first in (1..=streamed).step_by(10) {
                produce_alerts(&producer, first..(first + 10).min(streamed + 1)).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    });

    let told = Arc::new(Told::default());
    let stop = Arc::new(AtomicBool::new(false));
    let employees: Vec<_> = (0..EMPLOYEES)
        .map(|i| {
            let employee = Employee {
                name: format!("employee-{i}"),
                base: app.base_url(),
                http: app.http().clone(),
                rng: Rng::seeded(rng.next_u64()),
                told: told.clone(),
            };
            tokio::spawn(employee.work_until(stop.clone()))
        })
        .collect();

    let mut resolved_before = BTreeSet::new();
    let mut down_ids: Vec<u64> = Vec::new();
    for kill in 0..kills {
        wait_for_ids(
            &app,
            "the alerts produced while the app was down",
            &down_ids,
        )
        .await;
        let delay_ms = rng.between(0, 900);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let kill_ms = now_ms();
        // The kill and restart block (briefly): keep the runtime's other thread serving
        // the employees.
        tokio::task::block_in_place(|| app.kill());
        let fixed_told: BTreeSet<u64> = told.fixed.lock().unwrap().clone();
        let resolved = check_after_crash(&app, up_ms, kill_ms, &fixed_told, &resolved_before);
        println!(
            "kill {kill}: SIGKILL {delay_ms} ms into the life; {} alerts resolved, {} fixes told",
            resolved.len(),
            fixed_told.len()
        );
        resolved_before = resolved;

        let first = streamed + 1 + kill * DOWN_BATCH;
        down_ids = (first..first + DOWN_BATCH).collect();
        produce_alerts(&producer, down_ids.iter().copied()).await;
        tokio::task::block_in_place(|| app.restart());
        up_ms = now_ms();
    }

    stream.await.unwrap();
    wait_history(&app, "every alert", Duration::from_secs(120), |h| {
        h.len() as u64 >= alerts
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for employee in employees {
        employee.await.unwrap();
    }
    // Nobody asks any more: every lease must end within its length and `LATE_MS`.
    tokio::time::sleep(Duration::from_millis(
        (LEASE_SECS * 1000.0) as u64 + LATE_MS,
    ))
    .await;
    let history = alert_history(&app).await;
    let held: Vec<_> = history
        .iter()
        .filter(|a| a.alert_status == AlertStatus::Assigned.code())
        .map(|a| a.alert_id)
        .collect();
    assert!(
        held.is_empty(),
        "alerts still held after every employee stopped and every lease ran out: {held:?}"
    );
    let status = tokio::task::block_in_place(|| app.stop());
    assert!(status.success(), "SIGTERM: the app exited with {status}");

    let fixed_told = told.fixed.lock().unwrap().clone();
    let resolved = check_after_crash(&app, up_ms, now_ms(), &fixed_told, &resolved_before);
    let end = broker.end_offsets();
    assert_eq!(
        end.values().sum::<i64>(),
        alerts as i64,
        "the log holds each alert once"
    );
    assert_exactly_once(app.db_path(), &end, alerts);
    println!(
        "chaos: {kills} kills, {alerts} alerts exactly once; employees: {} assignments, \
         {} fixes ({} resolved in all), {} more-time, {} log-outs, {} leases left to run out, \
         {} requests unanswered while the app was down",
        told.assigned.load(Ordering::SeqCst),
        fixed_told.len(),
        resolved.len(),
        told.more_time.load(Ordering::SeqCst),
        told.logged_out.load(Ordering::SeqCst),
        told.let_run_out.load(Ordering::SeqCst),
        told.unanswered.load(Ordering::SeqCst),
    );
    assert!(
        fixed_told.len() >= 20,
        "the employees fixed too little for the test to mean much"
    );
}

/// Checks a copy of the database file of the stopped app (the app itself must find the
/// file as the crash left it): the invariants; every fix told is resolved; every alert
/// resolved before still is; no lease has outlived `max(expiry, up_ms) + LATE_MS` by
/// `down_ms`, when the app went down. Returns the alerts resolved now.
fn check_after_crash(
    app: &TestApp,
    up_ms: u64,
    down_ms: u64,
    fixed_told: &BTreeSet<u64>,
    resolved_before: &BTreeSet<u64>,
) -> BTreeSet<u64> {
    let copy = tempfile::tempdir().unwrap();
    let path = copy.path().join("copy.redb");
    std::fs::copy(app.db_path(), &path).unwrap();
    let store = reopen(&path);
    let read = store.begin_read().unwrap();
    if let Err(violation) = store::check_invariants(&read) {
        panic!("invariant violated: {violation}");
    }
    let resolved: BTreeSet<u64> = read::history(&read)
        .unwrap()
        .into_iter()
        .filter(|(_, a)| a.status == AlertStatus::Resolved)
        .map(|(id, _)| id.get())
        .collect();
    let lost: Vec<_> = fixed_told.difference(&resolved).collect();
    assert!(lost.is_empty(), "fixes told but not resolved: {lost:?}");
    let back: Vec<_> = resolved_before.difference(&resolved).collect();
    assert!(back.is_empty(), "resolved alerts came back: {back:?}");
    for (name, employee) in read::employees(&read).unwrap() {
        if let Some(lease) = employee.lease {
            let due_ms = lease.expires_at_ms.max(up_ms) + LATE_MS;
            assert!(
                due_ms >= down_ms,
                "{name} still held alert {} at {down_ms}, {} ms after it was due to be freed \
                 (expiry {}, app up at {up_ms})",
                lease.alert_id,
                down_ms - due_ms,
                lease.expires_at_ms
            );
        }
    }
    resolved
}

/// One employee (one browser tab): asks for an alert, then does one thing with it.
struct Employee {
    name: String,
    base: String,
    http: reqwest::Client,
    rng: Rng,
    told: Arc<Told>,
}

impl Employee {
    async fn work_until(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::SeqCst) {
            self.one_round().await;
            let pause_ms = self.rng.between(10, 150);
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
    }

    async fn one_round(&mut self) {
        let path = format!("/assignment?name={}", self.name);
        let Some(answer) = self.call(self.http.get(self.url(&path))).await else {
            return;
        };
        let Some(held) = answer["employee"]["alert_id"].as_u64() else {
            return;
        };
        if answer["newAssignment"] == json!(true) {
            self.told.assigned.fetch_add(1, Ordering::SeqCst);
        }
        let body = json!({"name": self.name});
        match self.rng.between(0, 99) {
            0..=44 => {
                let request = self.http.post(self.url("/respond/fixed")).json(&body);
                if let Some(fixed) = self.call(request).await {
                    // Only the holder's own lease can be fixed: the alert cannot have
                    // changed since the assignment answered (a lease that ran out in
                    // between answers 409).
                    assert_eq!(fixed["alert_id"].as_u64(), Some(held), "{}", self.name);
                    self.told.fixed.lock().unwrap().insert(held);
                }
            }
            45..=64 => {
                let request = self.http.post(self.url("/respond/more_time")).json(&body);
                if self.call(request).await.is_some() {
                    self.told.more_time.fetch_add(1, Ordering::SeqCst);
                }
            }
            65..=79 => {
                let request = self.http.post(self.url("/respond/cancel")).json(&body);
                if let Some(released) = self.call(request).await {
                    assert_eq!(released["alert_id"].as_u64(), Some(held), "{}", self.name);
                    self.told.logged_out.fetch_add(1, Ordering::SeqCst);
                }
            }
            _ => {
                self.told.let_run_out.fetch_add(1, Ordering::SeqCst);
                let wait_ms = (LEASE_SECS * 1000.0) as u64 + 300;
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request`: the JSON of a 200; None for a 409 (the lease ran out) or when the
    /// app was down (killed mid-request, or not up yet). Anything else fails the test.
    async fn call(&self, request: reqwest::RequestBuilder) -> Option<Value> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(_) => {
                self.told.unanswered.fetch_add(1, Ordering::SeqCst);
                return None;
            }
        };
        let status = response.status();
        let body = match response.text().await {
            Ok(body) => body,
            Err(_) => {
                self.told.unanswered.fetch_add(1, Ordering::SeqCst);
                return None;
            }
        };
        match status {
            StatusCode::OK => Some(serde_json::from_str(&body).unwrap()),
            StatusCode::CONFLICT => None,
            other => panic!("{}: unexpected {other}: {body}", self.name),
        }
    }
}
