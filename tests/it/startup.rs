//! The real binary refuses a database it cannot use with one clear line and a
//! non-zero exit: a file from a newer build, a corrupt or truncated file, a file with a
//! page overwritten anywhere (or it runs unharmed, when the page was free), a file
//! already open.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use alert_center::alerts::model::{AlertId, AlertMessage, AlertStatus, NewAlert};
use alert_center::alerts::store;
use alert_center::storage::{Store, schema};

use crate::app_support::{Refused, try_spawn_app_on};
use crate::support::Rng;

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alert-center"));
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

/// Runs the binary on `db` and returns its exit success and its stderr.
fn run_on(db: &std::path::Path) -> (bool, String) {
    let out = binary()
        .args(["--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_clear_line(stderr: &str, expected: &str) {
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("alert-center: "), "{stderr}");
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_file_from_a_newer_version_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.redb");
    let store = Store::open(&db).unwrap();
    schema::force_version(store.db(), schema::CURRENT_VERSION + 1).unwrap();
    drop(store);
    let (ok, stderr) = run_on(&db);
    assert!(!ok);
    assert_one_clear_line(&stderr, "written by a newer alert-center (schema version 2");
}

#[test]
fn a_corrupt_or_truncated_file_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(
        &garbage,
        b"this is not a redb file, just some text".repeat(200),
    )
    .unwrap();
    let (ok, stderr) = run_on(&garbage);
    assert!(!ok);
    assert_one_clear_line(&stderr, "is not a usable redb file");

    let truncated = dir.path().join("truncated.redb");
    drop(Store::open(&truncated).unwrap());
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len().min(300)]).unwrap();
    let (ok, stderr) = run_on(&truncated);
    assert!(!ok);
    assert_one_clear_line(&stderr, "is not a usable redb file");
}

#[test]
fn a_file_open_in_another_process_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.redb");
    let mut first = binary()
        .args(["--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(&db)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first instance holds the file once it has logged its recovery.
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .take(50)
        .any(|l| l.unwrap().contains("recovered pending workflows"));
    assert!(ready, "the first instance did not start");
    let out = binary()
        .args(["--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        !out.status.success(),
        "a second instance started on the same file"
    );
    assert_one_clear_line(
        &String::from_utf8_lossy(&out.stderr),
        "is already open in another process",
    );
}

/// One page of a file in use (3,000 alerts) overwritten with garbage, at seeded random
/// pages: the app either refuses the file with one clear line and exit code 78, or (the
/// page was free) serves with every alert intact. Never a panic trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_a_page_overwritten_is_refused_or_unharmed() {
    const ALERTS: u64 = 3_000;
    const PAGE: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.redb");
    {
        let store = Store::open(&original).unwrap();
        let mut txn = store.db().begin_write().unwrap();
        // As the app commits: with quick repair, so that opening does not walk the trees.
        txn.set_quick_repair(true);
        let alerts: Vec<NewAlert> = (1..=ALERTS)
            .map(|i| NewAlert {
                id: Some(AlertId::new(i).unwrap()),
                status: AlertStatus::Active,
                message: AlertMessage::parse(&format!("alert {i}, long enough to fill pages"))
                    .unwrap(),
            })
            .collect();
        store::insert_alerts(&txn, &alerts, 1).unwrap();
        txn.commit().unwrap();
    }
    let bytes = std::fs::read(&original).unwrap();
    let pages = (bytes.len() / PAGE) as u64;
    let mut rng = Rng::from_env("overwritten_page");
    let (mut refused, mut unharmed) = (0, 0);
    for round in 0..16 {
        // The header page first, then pages at random.
        let page = if round == 0 {
            0
        } else {
            rng.between(1, pages - 1) as usize
        };
        let mut damaged = bytes.clone();
        for byte in &mut damaged[page * PAGE..(page + 1) * PAGE] {
            *byte = rng.next_u64() as u8;
        }
        let path = dir.path().join("damaged.redb");
        std::fs::write(&path, &damaged).unwrap();
        match tokio::task::block_in_place(|| try_spawn_app_on(&path)) {
            Err(Refused { status, log }) => {
                assert_eq!(status.code(), Some(78), "page {page}: {log}");
                assert_one_clear_line(&log.replace("[life 1] ", ""), "is not a usable redb file");
                refused += 1;
            }
            Ok(mut app) => {
                let history: Vec<serde_json::Value> = app
                    .http()
                    .get(app.url("/alert_history"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(history.len() as u64, ALERTS, "page {page}");
                tokio::task::block_in_place(|| app.stop());
                assert!(!app.logs().contains("panicked"), "{}", app.logs());
                unharmed += 1;
            }
        }
    }
    println!("overwritten pages: {refused} refused, {unharmed} unharmed (free pages)");
}
