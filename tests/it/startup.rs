//! The real binary refuses a database it cannot use with one clear line and a
//! non-zero exit: a file from a newer build, a corrupt file, a file already open.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use alert_center::storage::{Store, schema};

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
