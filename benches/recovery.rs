//! Recovery time at boot: 10,000 pending sleeping workflows, first alone in the file,
//! then next to 1,000,000 completed ones. Recovery reads only the pending index, so the
//! history should not change it (goal: at most 2x).
//!
//! Run with `cargo bench --bench recovery`. Every figure is one `name: value unit` line;
//! lines starting with `#` are context. A measurement is the time from `Store::open` to
//! every sleeping workflow having its timer armed again (`Engine::armed_timers`),
//! through `Engine::new`, `register` and `Engine::recover`. Each is taken 3 times after a
//! crash; the median is printed with the min and max.
//!
//! Three kinds of crash:
//! - in-process (the headline figures): the engine and its runtime are dropped without
//!   shutdown, as `tests/it/support.rs` does. redb then closes the file cleanly, and the
//!   file's pages stay in the OS page cache.
//! - `_cold`: the same, then the file's pages are evicted from the page cache
//!   (`posix_fadvise(DONTNEED)` on this file only), so the boot reads from the disk.
//! - `_kill9`: a child process (this binary, re-run with `RECOVERY_BENCH_CHILD`) boots
//!   the engine on the file and is killed with SIGKILL, so the next open must repair.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_center::engine::record::{StepKind, StepRecord, WorkflowRecord, encode};
use alert_center::engine::{
    Clock, Engine, EngineConfig, SystemClock, WorkflowContext, WorkflowDef, WorkflowStatus,
};
use alert_center::storage::tables::{COMPLETED, CREATED, PENDING, STEPS, WORKFLOWS};
use alert_center::storage::{StorageError, Store};
use redb::{ReadableTable, ReadableTableMetadata};

/// Sleeps durably until the given wake time.
const SLEEPER: WorkflowDef<u64, ()> = WorkflowDef::new("bench_sleeper");

const PENDING_COUNT: usize = 10_000;
const COMPLETED_COUNT: usize = 1_000_000;
/// Completed workflows written per write transaction while filling the history.
const COMPLETED_PER_TXN: usize = 100_000;
const REPS: usize = 3;
const GOAL_MS: f64 = 100.0;
const GOAL_HISTORY_RATIO: f64 = 2.0;
const CHILD_ENV: &str = "RECOVERY_BENCH_CHILD";
const DAY_MS: u64 = 24 * 3600 * 1000;

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return child(Path::new(&path));
    }
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let path = dir.path().join("recovery.redb");
    println!("# database: {}", path.display());

    let started = Instant::now();
    create_sleepers(&path, PENDING_COUNT);
    println!(
        "# setup: {PENDING_COUNT} sleeping workflows started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("file_size_10k_pending: {:.1} MiB", mib(&path));
    let small = measure_all(&path, "recovery_10k_pending");

    let started = Instant::now();
    add_completed(&path, COMPLETED_COUNT);
    println!(
        "# setup: {COMPLETED_COUNT} completed workflows written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    check_counts(&path);
    println!("file_size_10k_pending_1m_completed: {:.1} MiB", mib(&path));
    describe_tables(&path);
    let large = measure_all(&path, "recovery_10k_pending_1m_completed");

    for (suffix, small, large) in [
        ("", small.warm, large.warm),
        ("_cold", small.cold, large.cold),
        ("_kill9", small.kill9, large.kill9),
    ] {
        println!("recovery_history_ratio{suffix}: {:.2} x", large / small);
    }
    let ok = |met: bool| if met { "met" } else { "missed" };
    println!(
        "# goal: 10k pending recovered in at most {GOAL_MS:.0} ms: {}; with 1M completed too: {}",
        ok(small.warm <= GOAL_MS),
        ok(large.warm <= GOAL_MS)
    );
    println!(
        "# goal: history ratio at most {GOAL_HISTORY_RATIO:.0} x: {}",
        ok(large.warm / small.warm <= GOAL_HISTORY_RATIO)
    );
}

fn register(engine: &Engine) {
    engine.register(
        SLEEPER,
        |ctx: WorkflowContext, wake_at_ms: u64| async move {
            ctx.sleep_until(wake_at_ms).await?;
            Ok(())
        },
    );
}

/// One life of the engine: dropping its runtime drops every task at once, as a crash would.
struct Life {
    rt: tokio::runtime::Runtime,
    engine: Engine,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Life {
    /// Drops the engine and every task without shutdown, and waits until the file can be
    /// opened again (the writer thread lets go of it once every task is gone).
    fn crash(self, path: &Path) {
        let Life { rt, engine } = self;
        drop(engine);
        rt.shutdown_timeout(Duration::from_secs(5));
        wait_until_free(path);
    }
}

fn wait_until_free(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Store::open(path) {
            Ok(_) => return,
            Err(StorageError::AlreadyOpen { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("cannot reopen {}: {e}", path.display()),
        }
    }
}

/// Starts `count` workflows that sleep for 30 days, waits until every one has recorded
/// its sleep, then crashes.
fn create_sleepers(path: &Path, count: usize) {
    let rt = runtime();
    let store = Store::open(path).expect("cannot create the database");
    let engine = Engine::new(store, Arc::new(SystemClock), EngineConfig::default());
    register(&engine);
    rt.block_on(engine.recover()).unwrap();
    let wake_at_ms = SystemClock.now_ms() + 30 * DAY_MS;
    rt.block_on(async {
        let starts =
            (0..count).map(|i| engine.start(SLEEPER, format!("sleeper-{i:05}"), &wake_at_ms));
        for started in futures::future::join_all(starts).await {
            started.unwrap();
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let read = engine.store().begin_read().unwrap();
        let pending = read.open_table(PENDING).unwrap();
        let mut asleep = 0;
        for entry in pending.iter().unwrap() {
            if entry.unwrap().1.value() > 0 {
                asleep += 1;
            }
        }
        if asleep == count {
            break;
        }
        assert!(Instant::now() < deadline, "only {asleep} of {count} asleep");
        drop(pending);
        drop(read);
        std::thread::sleep(Duration::from_millis(20));
    }
    Life { rt, engine }.crash(path);
}

/// Adds `count` completed workflows as the engine leaves a Kafka message's one-shot
/// inbound workflow (`Engine::run_transaction_workflow`): the workflow record (succeeded,
/// with its output), its one transaction step, and its entries in the creation and
/// completion indexes (none in the pending index). Inputs and outputs have the shape and
/// size of the intake's (topic, partition, offset, time, one alert); the ids its format.
/// Written directly, in big transactions.
fn add_completed(path: &Path, count: usize) {
    let store = Store::open(path).unwrap();
    // Created over the last 5 days, one every 0.4 s: all within the 7-day retention.
    let base_ms = SystemClock.now_ms() - 5 * DAY_MS;
    for first in (0..count).step_by(COMPLETED_PER_TXN) {
        let mut txn = store.db().begin_write().unwrap();
        txn.set_quick_repair(true);
        {
            let mut workflows = txn.open_table(WORKFLOWS).unwrap();
            let mut steps = txn.open_table(STEPS).unwrap();
            let mut created = txn.open_table(CREATED).unwrap();
            let mut completed = txn.open_table(COMPLETED).unwrap();
            for i in first..(first + COMPLETED_PER_TXN).min(count) {
                let (partition, offset) = ((i % 8) as i32, (i / 8) as i64);
                let id = format!("kafka-alerts-{partition}-0-{offset}");
                let created_at_ms = base_ms + i as u64 * 400;
                let finished_at_ms = created_at_ms + 3;
                let message = format!(
                    "disk usage above 90% on host-{:04} (/var/lib/data, 93.4% used)",
                    i % 5000
                );
                let input = (
                    "alerts",
                    partition,
                    offset,
                    created_at_ms,
                    vec![(i as u64, message)],
                );
                let output = (
                    vec![i as u64],
                    Vec::<u64>::new(),
                    Vec::<(u64, String)>::new(),
                );
                let record = WorkflowRecord {
                    name: "inbound_alerts".to_string(),
                    status: WorkflowStatus::Succeeded,
                    input: encode(&input).unwrap(),
                    output: Some(encode(&output).unwrap()),
                    error: None,
                    created_at_ms,
                    updated_at_ms: finished_at_ms,
                    recovery_attempts: 0,
                    steps_at_last_recovery: 0,
                };
                let step = StepRecord {
                    kind: StepKind::Transaction,
                    name: "insert_alerts".to_string(),
                    output: encode(&Ok::<_, String>(output)).unwrap(),
                    started_at_ms: created_at_ms,
                    finished_at_ms: created_at_ms,
                };
                let id = id.as_str();
                workflows
                    .insert(id, encode(&record).unwrap().as_slice())
                    .unwrap();
                steps
                    .insert((id, 0), encode(&step).unwrap().as_slice())
                    .unwrap();
                created.insert((created_at_ms, id), ()).unwrap();
                completed.insert((finished_at_ms, id), ()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
}

/// Where the bytes of the file go, per table (redb's own accounting).
fn describe_tables(path: &Path) {
    let store = Store::open(path).unwrap();
    let read = store.begin_read().unwrap();
    let mut line = String::from("# stored (leaf bytes / pages incl. branches, MiB):");
    let mut add = |name: &str, stats: redb::TableStats| {
        let pages = (stats.leaf_pages() + stats.branch_pages()) as f64 * 4096.0;
        line.push_str(&format!(
            " {name} {:.0}/{:.0}",
            stats.stored_bytes() as f64 / 1048576.0,
            pages / 1048576.0
        ));
    };
    add(
        "workflows",
        read.open_table(WORKFLOWS).unwrap().stats().unwrap(),
    );
    add("steps", read.open_table(STEPS).unwrap().stats().unwrap());
    add(
        "created",
        read.open_table(CREATED).unwrap().stats().unwrap(),
    );
    add(
        "completed",
        read.open_table(COMPLETED).unwrap().stats().unwrap(),
    );
    add(
        "pending",
        read.open_table(PENDING).unwrap().stats().unwrap(),
    );
    println!("{line}");
    drop(read);
    let txn = store.db().begin_write().unwrap();
    let stats = txn.stats().unwrap();
    txn.abort().unwrap();
    let page_mib = |pages: u64| (pages * stats.page_size() as u64) as f64 / 1048576.0;
    println!(
        "# redb: {:.0} MiB of the {:.0} MiB file in allocated pages ({:.0} MiB in table pages); the rest is free space",
        page_mib(stats.allocated_pages()),
        mib(path),
        page_mib(stats.leaf_pages() + stats.branch_pages()),
    );
}

fn check_counts(path: &Path) {
    let store = Store::open(path).unwrap();
    let read = store.begin_read().unwrap();
    let len = |n: u64| n as usize;
    let workflows = len(read.open_table(WORKFLOWS).unwrap().len().unwrap());
    let pending = len(read.open_table(PENDING).unwrap().len().unwrap());
    let completed = len(read.open_table(COMPLETED).unwrap().len().unwrap());
    assert_eq!(workflows, PENDING_COUNT + COMPLETED_COUNT);
    assert_eq!(pending, PENDING_COUNT);
    assert_eq!(completed, COMPLETED_COUNT);
}

/// One boot after a crash, with the time of each phase since `Store::open` began.
#[derive(Clone, Copy)]
struct Sample {
    open_ms: f64,
    recover_ms: f64,
    armed_ms: f64,
}

/// Opens the store, starts the engine, recovers, and waits until every sleeping
/// workflow's timer is armed again; then crashes it (in-process).
fn boot_and_measure(path: &Path) -> Sample {
    let rt = runtime();
    let started = Instant::now();
    let store = Store::open(path).expect("cannot open the database");
    let open_ms = ms(started.elapsed());
    let engine = Engine::new(store, Arc::new(SystemClock), EngineConfig::default());
    register(&engine);
    let report = rt.block_on(engine.recover()).unwrap();
    let recover_ms = ms(started.elapsed());
    let deadline = started + Duration::from_secs(60);
    while engine.armed_timers() < PENDING_COUNT {
        assert!(Instant::now() < deadline, "timers were not re-armed");
        std::thread::sleep(Duration::from_micros(100));
    }
    let armed_ms = ms(started.elapsed());
    assert_eq!((report.sleeping, report.runnable), (PENDING_COUNT, 0));
    Life { rt, engine }.crash(path);
    Sample {
        open_ms,
        recover_ms,
        armed_ms,
    }
}

/// Median boot time (to all timers armed) of each kind of crash, in ms.
struct Medians {
    warm: f64,
    cold: f64,
    kill9: f64,
}

fn measure_all(path: &Path, name: &str) -> Medians {
    let warm = (0..REPS).map(|_| boot_and_measure(path)).collect();
    let warm = report(name, "", warm);
    println!(
        "# {name}: reading the pending index alone (warm, what recover() reads): {:.1} ms",
        scan_pending(path)
    );
    let cold = (0..REPS)
        .map(|_| {
            evict_from_page_cache(path);
            boot_and_measure(path)
        })
        .collect();
    let cold = report(name, "_cold", cold);
    let kill9 = (0..REPS)
        .map(|_| {
            crash_child(path);
            boot_and_measure(path)
        })
        .collect();
    let kill9 = report(name, "_kill9", kill9);
    Medians { warm, cold, kill9 }
}

/// Prints the median (with min and max) and the phases of the median run; returns the
/// median.
fn report(name: &str, suffix: &str, mut samples: Vec<Sample>) -> f64 {
    samples.sort_by(|a, b| a.armed_ms.total_cmp(&b.armed_ms));
    let median = samples[samples.len() / 2];
    let (min, max) = (samples[0], samples[samples.len() - 1]);
    println!(
        "{name}{suffix}: {:.1} ms (min {:.1}, max {:.1}, {} runs)",
        median.armed_ms,
        min.armed_ms,
        max.armed_ms,
        samples.len()
    );
    println!(
        "# {name}{suffix} phases of the median run: Store::open {:.1} ms, then recover() returned at {:.1} ms, all timers armed at {:.1} ms",
        median.open_ms, median.recover_ms, median.armed_ms
    );
    median.armed_ms
}

/// Reads the pending index into memory as `Engine::recover` does, on a fresh open.
fn scan_pending(path: &Path) -> f64 {
    let store = Store::open(path).unwrap();
    let started = Instant::now();
    let read = store.begin_read().unwrap();
    let table = read.open_table(PENDING).unwrap();
    let mut pending = Vec::with_capacity(table.len().unwrap() as usize);
    for entry in table.iter().unwrap() {
        let (id, wake) = entry.unwrap();
        pending.push((id.value().to_string(), wake.value()));
    }
    let elapsed = ms(started.elapsed());
    assert_eq!(pending.len(), PENDING_COUNT);
    elapsed
}

fn evict_from_page_cache(path: &Path) {
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: a plain advisory call on an open file descriptor.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise failed");
}

/// Boots the engine on `path` in a child process, waits until it has re-armed every
/// timer, and kills it with SIGKILL.
fn crash_child(path: &Path) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the child process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the child did not boot");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The child: boots the engine, says "ready" once every timer is armed, and waits to be
/// killed.
fn child(path: &Path) {
    let rt = runtime();
    let store = Store::open(path).expect("child cannot open the database");
    let engine = Engine::new(store, Arc::new(SystemClock), EngineConfig::default());
    register(&engine);
    rt.block_on(engine.recover()).unwrap();
    while engine.armed_timers() < PENDING_COUNT {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    drop(out);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn mib(path: &Path) -> f64 {
    std::fs::metadata(path).unwrap().len() as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
