//! The process that `tests/it/engine_crash.rs` kills with SIGKILL and restarts.
//!
//! Usage: `engine_crash_child <db> <step-log> <max-recovery-attempts>`, optionally with
//! `ALERT_CENTER_CRASH_AT=name[:N]` to die at a named crash point (`alert_center::faults`).
//!
//! Each life opens the database, recovers, starts workflow `"wf"` (a no-op if an earlier
//! life started it) and waits for its result. The workflow uses every durable operation,
//! around a 1.5 s sleep:
//!
//! | index | operation              | what the test checks                           |
//! |-------|------------------------|------------------------------------------------|
//! | 0     | step `before`          | appends `before` to the step log               |
//! | 1     | transaction `t1`       | increments row `t1` of [`COUNTER`]             |
//! | 2     | `now_ms`               | `started_ms`                                   |
//! | 3     | `sleep_until`          | wakes at `started_ms + SLEEP_MS`               |
//! | 4     | `now_ms`               | `woke_ms`                                      |
//! | 5     | `set_event` `woke`     | publishes `woke_ms`                            |
//! | 6     | step `after`           | appends `after` to the step log                |
//! | 7     | transaction `t2`       | increments row `t2` of [`COUNTER`]             |
//!
//! In a fresh database the writer commits, in order: 1 the start, 2..=9 the eight
//! operations above, 10 the end; `writer.before_commit:N` and `writer.after_commit:N`
//! name those commits.
//!
//! Output, one line each:
//! - stderr `recovered at <ms>: runnable=<n> sleeping=<n>` once recovery has dispatched;
//! - stderr `sleeping until <ms>` once the sleep (with that wake time) is durable;
//! - stdout `DONE <json Output>` and exit 0, or `FAILED <why>` and exit 2.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use alert_center::engine::record::{StepKind, StepRecord, decode};
use alert_center::engine::{
    Clock, Engine, EngineConfig, EngineError, SystemClock, WorkflowContext, WorkflowDef,
    WorkflowError,
};
use alert_center::storage::Store;
use alert_center::storage::tables::STEPS;
use anyhow::Context;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

/// Row name -> how many times a transaction incremented it. Owned by the crash test, which
/// declares the same table to read it back.
const COUNTER: TableDefinition<&str, u64> = TableDefinition::new("crash_test_counter");

/// How long the workflow sleeps: long enough to kill it in its sleep, short enough to
/// keep the suite fast. The crash test relies on this value.
const SLEEP_MS: u64 = 1_500;

const WORKFLOW_ID: &str = "wf";

/// What the workflow returns; the test parses the same fields from the `DONE` line.
#[derive(Debug, Serialize, Deserialize)]
struct Output {
    t1: u64,
    t2: u64,
    started_ms: u64,
    wake_at_ms: u64,
    woke_ms: u64,
}

const CRASH_FLOW: WorkflowDef<(), Output> = WorkflowDef::new("crash_flow");

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: engine_crash_child <db> <step-log> <max-recovery-attempts>";
    let db = PathBuf::from(args.next().context(usage)?);
    let step_log = PathBuf::from(args.next().context(usage)?);
    let max_recovery_attempts = args
        .next()
        .context(usage)?
        .to_string_lossy()
        .parse()
        .context("Failed to parse max-recovery-attempts")?;
    let runtime = tokio::runtime::Runtime::new().context("Failed to start tokio")?;
    runtime.block_on(run(&db, step_log, max_recovery_attempts))
}

async fn run(db: &Path, step_log: PathBuf, max_recovery_attempts: u32) -> anyhow::Result<ExitCode> {
    let store = Store::open(db).context("Failed to open the database")?;
    let config = EngineConfig {
        max_recovery_attempts,
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Arc::new(SystemClock), config);
    let step_log = Arc::new(step_log);
    engine.register(CRASH_FLOW, move |ctx: WorkflowContext, ()| {
        crash_flow(ctx, step_log.clone())
    });
    let report = engine.recover().await.context("Failed to recover")?;
    say(
        std::io::stderr(),
        format!(
            "recovered at {}: runnable={} sleeping={}",
            SystemClock.now_ms(),
            report.runnable,
            report.sleeping
        ),
    );
    tokio::spawn(report_sleep(engine.clone()));
    let handle = engine
        .start(CRASH_FLOW, WORKFLOW_ID, &())
        .await
        .context("Failed to start the workflow")?;
    let code = match handle.result(Duration::from_secs(60)).await {
        Ok(output) => {
            say(
                std::io::stdout(),
                format!("DONE {}", serde_json::to_string(&output)?),
            );
            ExitCode::SUCCESS
        }
        Err(e @ EngineError::WorkflowFailed { .. }) => {
            say(std::io::stdout(), format!("FAILED {e}"));
            ExitCode::from(2)
        }
        Err(e) => return Err(e).context("Failed to wait for the workflow"),
    };
    engine.shutdown().await;
    Ok(code)
}

async fn crash_flow(ctx: WorkflowContext, step_log: Arc<PathBuf>) -> Result<Output, WorkflowError> {
    ctx.step("before", || append_line(&step_log, "before"))
        .await?;
    let t1 = ctx
        .transaction("t1", |txn| increment(txn, "t1"))
        .await?
        .map_err(WorkflowError::app)?;
    let started_ms = ctx.now_ms().await?;
    let wake_at_ms = started_ms + SLEEP_MS;
    ctx.sleep_until(wake_at_ms).await?;
    let woke_ms = ctx.now_ms().await?;
    ctx.set_event("woke", &woke_ms).await?;
    ctx.step("after", || append_line(&step_log, "after"))
        .await?;
    let t2 = ctx
        .transaction("t2", |txn| increment(txn, "t2"))
        .await?
        .map_err(WorkflowError::app)?;
    Ok(Output {
        t1,
        t2,
        started_ms,
        wake_at_ms,
        woke_ms,
    })
}

/// Prints one line with one `write`: a line written by pieces (as `eprintln!` does) can
/// be cut by SIGKILL between them, and the test would read a cut line.
fn say(mut to: impl Write, line: String) {
    let _ = to.write_all(format!("{line}\n").as_bytes());
    let _ = to.flush();
}

/// The side effect of a step: one line per run of its body, so the test counts the runs.
/// One `write` on an append-only file: once it returns, the line survives SIGKILL.
async fn append_line(path: &Path, line: &str) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}

fn increment(txn: &WriteTransaction, row: &str) -> Result<u64, String> {
    let mut table = txn.open_table(COUNTER).map_err(|e| e.to_string())?;
    let next = table
        .get(row)
        .map_err(|e| e.to_string())?
        .map_or(0, |v| v.value())
        + 1;
    table.insert(row, next).map_err(|e| e.to_string())?;
    Ok(next)
}

/// Prints `sleeping until <ms>` once the workflow's sleep is committed, with the wake time
/// read back from its step record. The engine notifies nobody when a step is recorded, so
/// this polls the steps table (a read transaction every few ms) until the sleep is there.
async fn report_sleep(engine: Engine) {
    loop {
        match recorded_wake_ms(engine.store()) {
            Ok(Some(wake_at_ms)) => {
                say(std::io::stderr(), format!("sleeping until {wake_at_ms}"));
                return;
            }
            Ok(None) => {}
            Err(e) => {
                say(
                    std::io::stderr(),
                    format!("cannot read the steps table: {e}"),
                );
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn recorded_wake_ms(store: &Store) -> anyhow::Result<Option<u64>> {
    let read = store.begin_read()?;
    let steps = read.open_table(STEPS)?;
    for entry in steps.range((WORKFLOW_ID, 0)..=(WORKFLOW_ID, u32::MAX))? {
        let (_, value) = entry?;
        let record: StepRecord = decode(value.value())?;
        if record.kind == StepKind::Sleep {
            return Ok(Some(decode(&record.output)?));
        }
    }
    Ok(None)
}
