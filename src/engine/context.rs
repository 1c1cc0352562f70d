//! The handle a workflow uses for everything durable: steps, transactions, time,
//! sleeps and events.
//!
//! Each call takes the next step index. On first execution it runs the operation and
//! checkpoints the result; on replay after a crash it returns the recorded result
//! instead. A call whose kind or name differs from the record at its index means the
//! code changed under a pending workflow: the workflow fails with a non-deterministic
//! replay error rather than mixing two versions' state.
//!
//! A workflow is sequential code: calls on one context must not run concurrently
//! (no `join!` of two steps), or their indexes would depend on scheduling.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::record::{StepKind, StepRecord, decode, encode};
use super::writer::ApplyError;
use super::{EngineError, Shared, WorkflowError};
use crate::faults::crash_point;
use crate::storage::tables::{EVENTS, PENDING, STEPS};
use crate::telemetry::metric;

/// Durable operations for one workflow run. Cheap to clone.
#[derive(Clone)]
pub struct WorkflowContext {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    id: String,
    recorded: Vec<StepRecord>,
    next_index: AtomicU32,
    /// The pending index holds a wake time that the next write must reset to 0.
    parked: AtomicBool,
    cancel: watch::Receiver<bool>,
}

impl WorkflowContext {
    pub(super) fn new(
        shared: Arc<Shared>,
        id: String,
        recorded: Vec<StepRecord>,
        cancel: watch::Receiver<bool>,
    ) -> WorkflowContext {
        WorkflowContext {
            inner: Arc::new(Inner {
                shared,
                id,
                recorded,
                next_index: AtomicU32::new(0),
                parked: AtomicBool::new(false),
                cancel,
            }),
        }
    }

    /// The id of the running workflow.
    pub fn workflow_id(&self) -> &str {
        &self.inner.id
    }

    /// Runs `f` once and checkpoints its result (success or error). On replay, returns the
    /// recorded result without running `f`. A crash while `f` runs (before its checkpoint
    /// commits) runs it again on replay: steps are at least once, so make them idempotent.
    pub async fn step<T, E, F, Fut>(&self, name: &str, f: F) -> Result<T, WorkflowError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Display,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let (index, recorded) = self.claim(StepKind::Step, name)?;
        let outcome: Result<T, String> = match recorded {
            Some(record) => decode(&record.output)?,
            None => {
                let started_at_ms = self.inner.shared.clock.now_ms();
                let outcome = f().await.map_err(|e| e.to_string());
                crash_point("step.before_checkpoint");
                let output = encode(&outcome)?;
                let record = self.record(StepKind::Step, name, output, started_at_ms);
                self.write(index, record, |_| Ok(())).await?;
                outcome
            }
        };
        outcome.map_err(|message| WorkflowError::Step {
            step: name.to_string(),
            message,
        })
    }

    /// Runs `f` inside the engine's write transaction and records its result in the same
    /// commit, so its effects happen exactly once. `f` may be run more than once (when
    /// another write of the same batch rolls back) and must depend only on the database.
    /// An `Err` from `f` rolls its effects back; the error is recorded and returned.
    pub async fn transaction<T, E, F>(
        &self,
        name: &str,
        f: F,
    ) -> Result<Result<T, E>, WorkflowError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let (index, recorded) = self.claim(StepKind::Transaction, name)?;
        if let Some(record) = recorded {
            return Ok(decode(&record.output)?);
        }
        let started_at_ms = self.inner.shared.clock.now_ms();
        let id = self.inner.id.clone();
        let name = name.to_string();
        let unpark = self.inner.parked.swap(false, Ordering::SeqCst);
        let mut failed: Option<Vec<u8>> = None;
        let finished_at_ms = started_at_ms;
        let timer = std::time::Instant::now();
        let outcome = self
            .inner
            .shared
            .writer
            .submit(move |txn, fallback| {
                let outcome: Result<T, E> = if fallback {
                    let bytes = failed.as_deref().ok_or_else(|| {
                        EngineError::Internal("fallback without a recorded error".into())
                    })?;
                    decode(bytes)?
                } else {
                    match f(txn) {
                        Ok(value) => Ok(value),
                        Err(e) => {
                            failed = Some(encode(&Err::<T, E>(e))?);
                            return Err(ApplyError::Rollback);
                        }
                    }
                };
                let record = StepRecord {
                    kind: StepKind::Transaction,
                    name: name.clone(),
                    output: encode(&outcome)?,
                    started_at_ms,
                    finished_at_ms,
                };
                write_step(txn, &id, index, &record, unpark)?;
                crash_point("transaction.applied");
                Ok(outcome)
            })
            .await?;
        metrics::histogram!(metric::STEP_SECONDS, "kind" => "transaction")
            .record(timer.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// The durable current time in ms since the Unix epoch: read once, then replayed.
    pub async fn now_ms(&self) -> Result<u64, WorkflowError> {
        let (index, recorded) = self.claim(StepKind::Now, "now")?;
        if let Some(record) = recorded {
            return Ok(decode(&record.output)?);
        }
        let now = self.inner.shared.clock.now_ms();
        let record = self.record(StepKind::Now, "now", encode(&now)?, now);
        self.write(index, record, |_| Ok(())).await?;
        Ok(now)
    }

    /// Sleeps durably for `duration` from the first time this call ran.
    pub async fn sleep(&self, duration: Duration) -> Result<(), WorkflowError> {
        let millis = duration.as_millis() as u64;
        self.sleep_inner(|now| now.saturating_add(millis)).await
    }

    /// Sleeps durably until `wake_at_ms`. The wake time is recorded: after a restart the
    /// workflow sleeps only what is left, and a wake time already past fires at once.
    pub async fn sleep_until(&self, wake_at_ms: u64) -> Result<(), WorkflowError> {
        self.sleep_inner(|_| wake_at_ms).await
    }

    async fn sleep_inner(&self, wake_at: impl FnOnce(u64) -> u64) -> Result<(), WorkflowError> {
        let (index, recorded) = self.claim(StepKind::Sleep, "sleep")?;
        let wake_at_ms = match recorded {
            Some(record) => decode::<u64>(&record.output)?,
            None => {
                let now = self.inner.shared.clock.now_ms();
                let wake_at_ms = wake_at(now);
                let record = self.record(StepKind::Sleep, "sleep", encode(&wake_at_ms)?, now);
                let id = self.inner.id.clone();
                self.write(index, record, move |txn| {
                    let mut pending = txn.open_table(PENDING)?;
                    if pending.get(id.as_str())?.is_some() {
                        pending.insert(id.as_str(), wake_at_ms.max(1))?;
                    }
                    Ok(())
                })
                .await?;
                wake_at_ms
            }
        };
        self.inner.parked.store(true, Ordering::SeqCst);
        crash_point("sleep.recorded");
        let mut cancel = self.inner.cancel.clone();
        tokio::select! {
            () = self.inner.shared.clock.sleep_until(wake_at_ms) => Ok(()),
            _ = cancel.wait_for(|cancelled| *cancelled) => {
                Err(EngineError::Cancelled(self.inner.id.clone()).into())
            }
        }
    }

    /// Publishes `value` under `key` for callers of `Engine::get_event`. Recorded once:
    /// a replay does not publish again.
    pub async fn set_event<T: Serialize>(&self, key: &str, value: &T) -> Result<(), WorkflowError> {
        let (index, recorded) = self.claim(StepKind::SetEvent, key)?;
        if recorded.is_some() {
            return Ok(());
        }
        let bytes = encode(value)?;
        let now = self.inner.shared.clock.now_ms();
        let record = self.record(StepKind::SetEvent, key, Vec::new(), now);
        let id = self.inner.id.clone();
        let key = key.to_string();
        self.write(index, record, move |txn| {
            txn.open_table(EVENTS)?
                .insert((id.as_str(), key.as_str()), bytes.as_slice())?;
            Ok(())
        })
        .await?;
        self.inner.shared.waiters.notify(&self.inner.id);
        Ok(())
    }

    /// Takes the next step index and the record at that index, if any, after checking
    /// that the workflow may go on and that the record matches this call.
    fn claim(&self, kind: StepKind, name: &str) -> Result<(u32, Option<&StepRecord>), EngineError> {
        if *self.inner.cancel.borrow() {
            return Err(EngineError::Cancelled(self.inner.id.clone()));
        }
        if self.inner.shared.is_closing() {
            return Err(EngineError::ShuttingDown);
        }
        let index = self.inner.next_index.fetch_add(1, Ordering::SeqCst);
        match self.inner.recorded.get(index as usize) {
            Some(record) if record.kind == kind && record.name == name => Ok((index, Some(record))),
            Some(record) => Err(EngineError::NonDeterministic {
                workflow: self.inner.id.clone(),
                index,
                recorded: format!("{} {:?}", record.kind.as_str(), record.name),
                called: format!("{} {:?}", kind.as_str(), name),
            }),
            None => Ok((index, None)),
        }
    }

    fn record(
        &self,
        kind: StepKind,
        name: &str,
        output: Vec<u8>,
        started_at_ms: u64,
    ) -> StepRecord {
        StepRecord {
            kind,
            name: name.to_string(),
            output,
            started_at_ms,
            finished_at_ms: self.inner.shared.clock.now_ms(),
        }
    }

    /// Commits one step record, plus `extra` writes, through the group-commit writer.
    async fn write<X>(&self, index: u32, record: StepRecord, extra: X) -> Result<(), EngineError>
    where
        X: Fn(&WriteTransaction) -> Result<(), ApplyError> + Send + 'static,
    {
        let id = self.inner.id.clone();
        let unpark = self.inner.parked.swap(false, Ordering::SeqCst);
        let kind = record.kind.as_str();
        let started = std::time::Instant::now();
        let written = self
            .inner
            .shared
            .writer
            .submit(move |txn, _| {
                write_step(txn, &id, index, &record, unpark)?;
                extra(txn)
            })
            .await;
        metrics::histogram!(metric::STEP_SECONDS, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        written
    }
}

/// Writes a step record; with `unpark`, also marks the workflow runnable again in the
/// pending index (if it is still pending: a cancel may have removed it meanwhile).
fn write_step(
    txn: &WriteTransaction,
    id: &str,
    index: u32,
    record: &StepRecord,
    unpark: bool,
) -> Result<(), ApplyError> {
    txn.open_table(STEPS)?
        .insert((id, index), encode(record)?.as_slice())?;
    if unpark {
        let mut pending = txn.open_table(PENDING)?;
        if pending.get(id)?.is_some() {
            pending.insert(id, 0)?;
        }
    }
    Ok(())
}

impl From<EngineError> for ApplyError {
    fn from(e: EngineError) -> Self {
        ApplyError::Failed(e)
    }
}
