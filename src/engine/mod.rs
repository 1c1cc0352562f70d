//! Generic durable execution on redb, after DBOS: a workflow is ordinary async code;
//! each step's result is checkpointed; after a crash the workflow runs again and its
//! checkpointed steps return their recorded results instead of running again.
//!
//! **This module never names an alert.** It sees a workflow as a name, bincode input,
//! and typed step results.
//!
//! - [`Engine`]: register workflows, start them (idempotently, by id), wait for events
//!   and results, recover pending work at boot, manage workflows.
//! - [`WorkflowContext`]: `step`, `transaction`, `now_ms`, `sleep`, `set_event`.
//! - [`writer`]: group commit, the single writer of the database.
//! - [`clock`]: the only source of time.

pub mod clock;
mod context;
mod error;
mod manage;
mod oneshot;
pub mod record;
mod waiters;
pub mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

pub use clock::{Clock, ManualClock, SystemClock};
pub use context::WorkflowContext;
pub use error::{EngineError, WorkflowError};
pub use manage::{ListFilter, StepInfo, WorkflowInfo};
pub use oneshot::Started;
pub use record::WorkflowStatus;

use clock::lock;
use record::{StepRecord, WorkflowRecord, decode, encode};
use waiters::Waiters;
use writer::{ApplyError, Writer};

use crate::storage::tables::{CREATED, EVENTS, PENDING, STEPS, WORKFLOWS};
use crate::storage::{StorageError, Store};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Recovery resumes a workflow at most this many times without it recording a new
    /// step; then it is marked failed (it is probably what crashes the process).
    pub max_recovery_attempts: u32,
    /// Completed workflows older than this are deleted by the retention sweep.
    pub retention: Duration,
    /// At most this many writes share one commit.
    pub batch_size_max: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_recovery_attempts: 10,
            retention: Duration::from_secs(7 * 24 * 3600),
            batch_size_max: 8192,
        }
    }
}

/// A workflow type: its registered name and its input and output types. Declared as a
/// `const` by the module that owns the workflow.
pub struct WorkflowDef<I, O> {
    name: &'static str,
    types: PhantomData<fn(I) -> O>,
}

impl<I, O> WorkflowDef<I, O> {
    pub const fn new(name: &'static str) -> Self {
        WorkflowDef {
            name,
            types: PhantomData,
        }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<I, O> Clone for WorkflowDef<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I, O> Copy for WorkflowDef<I, O> {}

type ErasedRun = dyn Fn(WorkflowContext, Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, WorkflowError>>
    + Send
    + Sync;

/// A registered workflow, with its types erased.
struct Registered {
    run: Box<ErasedRun>,
    describe_input: fn(&[u8]) -> Option<serde_json::Value>,
    describe_output: fn(&[u8]) -> Option<serde_json::Value>,
}

fn describe<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<serde_json::Value> {
    decode::<T>(bytes)
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
}

/// What recovery found at boot.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// Pending workflows resumed at once.
    pub runnable: usize,
    /// Pending workflows asleep, re-armed to wake at their recorded time.
    pub sleeping: usize,
    pub elapsed: Duration,
}

/// State shared by the engine handle, the workflow tasks and their contexts.
pub(crate) struct Shared {
    store: Store,
    writer: Writer,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    registry: RwLock<HashMap<&'static str, Arc<Registered>>>,
    /// Workflows with a task in this process, with the sender that cancels them.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    waiters: Arc<Waiters>,
    closing: AtomicBool,
    /// Workflows whose task is waiting on a durable timer right now.
    armed_timers: AtomicUsize,
    /// Sleeping workflows found by recovery whose timer is not armed yet, and when
    /// recovery began: the last one to arm logs how long re-arming took.
    rearm_remaining: AtomicUsize,
    recovery_started: Mutex<Option<Instant>>,
}

/// Handle on the durable-execution engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    /// Starts the engine's writer on an open store. Register workflows, then call
    /// [`Engine::recover`] once, inside a tokio runtime.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: EngineConfig) -> Engine {
        let writer = Writer::start(store.clone(), config.batch_size_max);
        Engine {
            shared: Arc::new(Shared {
                store,
                writer,
                clock,
                config,
                registry: RwLock::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
                waiters: Arc::new(Waiters::default()),
                closing: AtomicBool::new(false),
                armed_timers: AtomicUsize::new(0),
                rearm_remaining: AtomicUsize::new(0),
                recovery_started: Mutex::new(None),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Resolves with the first commit the disk refused (full, failing). redb then
    /// refuses every later write until the file is opened again, so the process
    /// should stop and be restarted; until then writes fail with a storage error.
    pub async fn storage_failed(&self) -> String {
        self.shared.writer.failed().await
    }

    pub fn writer(&self) -> &Writer {
        &self.shared.writer
    }

    /// Number of workflows waiting on a durable timer in this process.
    pub fn armed_timers(&self) -> usize {
        self.shared.armed_timers.load(Ordering::SeqCst)
    }

    /// Number of workflows with a task in this process (running or asleep).
    pub fn active_workflows(&self) -> usize {
        lock(&self.shared.running).len()
    }

    /// Registers the code of a workflow type under its name.
    pub fn register<I, O, F, Fut>(&self, def: WorkflowDef<I, O>, f: F)
    where
        I: Serialize + DeserializeOwned + Send + 'static,
        O: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(WorkflowContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, WorkflowError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let run = move |ctx: WorkflowContext, input: Vec<u8>| -> BoxFuture<'static, _> {
            let f = f.clone();
            async move {
                let input: I = decode(&input)?;
                let output = f(ctx, input).await?;
                Ok(encode(&output)?)
            }
            .boxed()
        };
        let registered = Registered {
            run: Box::new(run),
            describe_input: describe::<I>,
            describe_output: describe::<O>,
        };
        self.shared
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def.name, Arc::new(registered));
    }

    /// Starts workflow `id` with `input`. If a workflow with this id already exists it
    /// is returned as it is and never run twice: this is what makes a Kafka offset or an
    /// HTTP idempotency key exactly-once. Returns once the start is durable.
    pub async fn start<I, O>(
        &self,
        def: WorkflowDef<I, O>,
        id: impl Into<String>,
        input: &I,
    ) -> Result<WorkflowHandle<O>, EngineError>
    where
        I: Serialize,
    {
        self.start_with(def, id, input, |_| Ok(())).await
    }

    /// Like [`Engine::start`], and applies `extra` in the same commit that records the
    /// start (whether or not the workflow already existed), such as a consumer offset.
    pub async fn start_with<I, O, X>(
        &self,
        def: WorkflowDef<I, O>,
        id: impl Into<String>,
        input: &I,
        extra: X,
    ) -> Result<WorkflowHandle<O>, EngineError>
    where
        I: Serialize,
        X: Fn(&WriteTransaction) -> Result<(), EngineError> + Send + 'static,
    {
        let id = id.into();
        if self.shared.is_closing() {
            return Err(EngineError::ShuttingDown);
        }
        if self.shared.registered(def.name).is_none() {
            return Err(EngineError::UnknownWorkflow(def.name.to_string()));
        }
        let now = self.shared.clock.now_ms();
        let record = WorkflowRecord {
            name: def.name.to_string(),
            status: WorkflowStatus::Pending,
            input: encode(input)?,
            output: None,
            error: None,
            created_at_ms: now,
            updated_at_ms: now,
            recovery_attempts: 0,
            steps_at_last_recovery: 0,
        };
        let bytes = encode(&record)?;
        let wf_id = id.clone();
        let created = self
            .shared
            .writer
            .submit(move |txn, _| {
                let mut workflows = txn.open_table(WORKFLOWS)?;
                if let Some(existing) = workflows.get(wf_id.as_str())? {
                    let existing: WorkflowRecord = decode(existing.value())?;
                    if existing.name != def.name {
                        return Err(ApplyError::Failed(EngineError::WrongWorkflowType {
                            id: wf_id.clone(),
                            recorded: existing.name,
                            requested: def.name.to_string(),
                        }));
                    }
                    extra(txn)?;
                    return Ok(false);
                }
                workflows.insert(wf_id.as_str(), bytes.as_slice())?;
                txn.open_table(PENDING)?.insert(wf_id.as_str(), 0)?;
                txn.open_table(CREATED)?.insert((now, wf_id.as_str()), ())?;
                extra(txn)?;
                Ok(true)
            })
            .await?;
        if created {
            self.shared.dispatch(id.clone(), 0, false);
        }
        Ok(WorkflowHandle {
            engine: self.clone(),
            id,
            output: PhantomData,
        })
    }

    /// A handle on an existing workflow, to wait for its result.
    pub fn handle<O>(&self, id: impl Into<String>) -> WorkflowHandle<O> {
        WorkflowHandle {
            engine: self.clone(),
            id: id.into(),
            output: PhantomData,
        }
    }

    /// Waits (by notification, no polling) until workflow `id` has set event `key`, and
    /// returns its value; fails with a timeout error after `timeout`, or at once if the
    /// workflow has ended without setting it.
    pub async fn get_event<T: DeserializeOwned>(
        &self,
        id: &str,
        key: &str,
        timeout: Duration,
    ) -> Result<T, EngineError> {
        let bytes = self
            .wait_for(
                id,
                timeout,
                || format!("event {key:?} of workflow {id}"),
                |read| {
                    let events = read.open_table(EVENTS)?;
                    if let Some(value) = events.get((id, key))? {
                        return Ok(Some(value.value().to_vec()));
                    }
                    match read_workflow(read, id)? {
                        Some(record) if record.status.is_final() => {
                            Err(EngineError::EventNeverSet {
                                id: id.to_string(),
                                key: key.to_string(),
                            })
                        }
                        _ => Ok(None),
                    }
                },
            )
            .await?;
        decode(&bytes)
    }

    /// Waits until `check` (run on a fresh read transaction after each change to workflow
    /// `id`) returns a value.
    async fn wait_for<T>(
        &self,
        id: &str,
        timeout: Duration,
        what: impl FnOnce() -> String,
        check: impl Fn(&redb::ReadTransaction) -> Result<Option<T>, EngineError>,
    ) -> Result<T, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let subscription = self.shared.waiters.subscribe(id);
        loop {
            let notified = subscription.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let read = self.shared.store.begin_read()?;
            if let Some(found) = check(&read)? {
                return Ok(found);
            }
            drop(read);
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(EngineError::Timeout {
                    what: what(),
                    after_ms: timeout.as_millis() as u64,
                });
            }
        }
    }

    /// Resumes every pending workflow: the runnable ones at once, the sleeping ones at
    /// their recorded wake time. Reads only the pending index, so its cost grows with
    /// pending work, not with history. Call once at boot, after registering workflows.
    pub async fn recover(&self) -> Result<RecoveryReport, EngineError> {
        let started = Instant::now();
        let pending: Vec<(String, u64)> = {
            let read = self.shared.store.begin_read()?;
            let table = read.open_table(PENDING).map_err(StorageError::from)?;
            let mut pending = Vec::with_capacity(table.len().map_err(StorageError::from)? as usize);
            for entry in table.iter().map_err(StorageError::from)? {
                let (id, wake) = entry.map_err(StorageError::from)?;
                pending.push((id.value().to_string(), wake.value()));
            }
            pending
        };
        let now = self.shared.clock.now_ms();
        let sleeping = pending.iter().filter(|(_, wake)| *wake > now).count();
        let mut report = RecoveryReport {
            runnable: pending.len() - sleeping,
            sleeping,
            elapsed: Duration::ZERO,
        };
        *lock(&self.shared.recovery_started) = Some(started);
        self.shared
            .rearm_remaining
            .store(report.sleeping, Ordering::SeqCst);
        lock(&self.shared.running).reserve(pending.len());
        for (id, wake_at_ms) in pending {
            self.shared.dispatch(id, wake_at_ms, true);
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Stops starting workflows and steps, and waits until every write already
    /// submitted is durable. Sleeping workflows are not waited for: they are durable and
    /// resume at the next start.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        let _ = self.shared.writer.submit(|_, _| Ok(())).await;
    }
}

/// A started workflow, to wait for its typed result.
pub struct WorkflowHandle<O> {
    engine: Engine,
    id: String,
    output: PhantomData<fn() -> O>,
}

impl<O> std::fmt::Debug for WorkflowHandle<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowHandle")
            .field("id", &self.id)
            .finish()
    }
}

impl<O: DeserializeOwned> WorkflowHandle<O> {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the workflow to finish and returns its output, or why it did not succeed.
    pub async fn result(&self, timeout: Duration) -> Result<O, EngineError> {
        let id = self.id.as_str();
        let record = self
            .engine
            .wait_for(
                id,
                timeout,
                || format!("workflow {id} to finish"),
                |read| match read_workflow(read, id)? {
                    None => Err(EngineError::NotFound(id.to_string())),
                    Some(record) if record.status.is_final() => Ok(Some(record)),
                    Some(_) => Ok(None),
                },
            )
            .await?;
        match record.status {
            WorkflowStatus::Succeeded => decode(record.output.as_deref().unwrap_or_default()),
            WorkflowStatus::Cancelled => Err(EngineError::Cancelled(self.id.clone())),
            _ => Err(EngineError::WorkflowFailed {
                id: self.id.clone(),
                message: record.error.unwrap_or_default(),
            }),
        }
    }
}

pub(crate) fn read_workflow(
    read: &redb::ReadTransaction,
    id: &str,
) -> Result<Option<WorkflowRecord>, EngineError> {
    let table = read.open_table(WORKFLOWS).map_err(StorageError::from)?;
    let record = table.get(id).map_err(StorageError::from)?;
    record.map(|r| decode(r.value())).transpose()
}

fn read_steps(read: &redb::ReadTransaction, id: &str) -> Result<Vec<StepRecord>, EngineError> {
    let table = read.open_table(STEPS).map_err(StorageError::from)?;
    let mut steps = Vec::new();
    for entry in table
        .range((id, 0)..=(id, u32::MAX))
        .map_err(StorageError::from)?
    {
        let (_, value) = entry.map_err(StorageError::from)?;
        steps.push(decode(value.value())?);
    }
    Ok(steps)
}

/// How a workflow run ended, as the engine records it.
enum Ending {
    Succeeded(Vec<u8>),
    Failed(String),
}

impl Shared {
    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    fn registered(&self, name: &str) -> Option<Arc<Registered>> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Gives workflow `id` a task in this process, unless it has one already. With a wake
    /// time in the future, the task first waits for it (or for a cancel).
    fn dispatch(self: &Arc<Self>, id: String, wake_at_ms: u64, recovered: bool) {
        let (cancel_tx, cancel_rx) = watch::channel(false);
        {
            let mut running = lock(&self.running);
            if running.contains_key(&id) {
                return;
            }
            running.insert(id.clone(), cancel_tx);
        }
        let shared = self.clone();
        tokio::spawn(async move {
            let woke = wake_at_ms <= shared.clock.now_ms()
                || shared.park(wake_at_ms, cancel_rx.clone()).await;
            if woke {
                shared.execute(&id, recovered, cancel_rx).await;
            }
            lock(&shared.running).remove(&id);
            shared.waiters.notify(&id);
        });
    }

    /// Waits for a durable timer; false if the workflow was cancelled meanwhile.
    async fn park(&self, wake_at_ms: u64, mut cancel: watch::Receiver<bool>) -> bool {
        self.armed_timers.fetch_add(1, Ordering::SeqCst);
        self.count_rearmed();
        let woke = tokio::select! {
            () = self.clock.sleep_until(wake_at_ms) => true,
            _ = cancel.wait_for(|cancelled| *cancelled) => false,
        };
        self.armed_timers.fetch_sub(1, Ordering::SeqCst);
        woke
    }

    /// Counts down the sleeping workflows recovery found; the last one logs the time
    /// re-arming took since recovery began.
    fn count_rearmed(&self) {
        let counted = self
            .rearm_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if counted == Ok(1)
            && let Some(started) = *lock(&self.recovery_started)
        {
            tracing::info!(
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "every sleeping workflow found by recovery is re-armed"
            );
        }
    }

    async fn execute(self: &Arc<Self>, id: &str, recovered: bool, cancel: watch::Receiver<bool>) {
        let loaded = self
            .store
            .begin_read()
            .map_err(EngineError::from)
            .and_then(|read| {
                let record = read_workflow(&read, id)?;
                Ok(record.map(|r| (r, read_steps(&read, id))))
            });
        let (record, steps) = match loaded {
            Ok(Some((record, Ok(steps)))) => (record, steps),
            Ok(None) => return,
            Ok(Some((_, Err(e)))) | Err(e) => {
                tracing::error!(workflow = id, error = %e, "cannot load workflow; it stays pending");
                return;
            }
        };
        if record.status != WorkflowStatus::Pending {
            return;
        }
        if recovered {
            match self.count_recovery_attempt(id, steps.len() as u32).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(workflow = id, error = %e, "cannot record recovery attempt");
                    return;
                }
            }
        }
        let Some(registered) = self.registered(&record.name) else {
            let message = EngineError::UnknownWorkflow(record.name.clone()).to_string();
            return self.finish(id, Ending::Failed(message)).await;
        };
        let ctx = WorkflowContext::new(self.clone(), id.to_string(), steps, cancel);
        let run = std::panic::AssertUnwindSafe((registered.run)(ctx, record.input));
        let ending = match run.catch_unwind().await {
            Ok(Ok(output)) => Ending::Succeeded(output),
            Ok(Err(WorkflowError::Engine(EngineError::Cancelled(_)))) => return,
            Ok(Err(WorkflowError::Engine(e))) if e.is_transient() => {
                tracing::warn!(workflow = id, error = %e, "workflow interrupted; it stays pending and resumes at next start");
                return;
            }
            Ok(Err(e)) => Ending::Failed(e.to_string()),
            Err(panic) => Ending::Failed(format!("workflow panicked: {}", panic_message(&panic))),
        };
        self.finish(id, ending).await;
    }

    /// Counts one more recovery attempt, unless the workflow made progress since the last
    /// one. Returns false (and marks the workflow failed) once it has used them all.
    async fn count_recovery_attempt(&self, id: &str, steps: u32) -> Result<bool, EngineError> {
        let id = id.to_string();
        let max = self.config.max_recovery_attempts;
        let now = self.clock.now_ms();
        self.writer
            .submit(move |txn, _| {
                let Some(mut record) = read_for_update(txn, &id)? else {
                    return Ok(false);
                };
                if record.status != WorkflowStatus::Pending {
                    return Ok(false);
                }
                record.recovery_attempts = if steps > record.steps_at_last_recovery {
                    1
                } else {
                    record.recovery_attempts + 1
                };
                record.steps_at_last_recovery = steps;
                record.updated_at_ms = now;
                if record.recovery_attempts > max {
                    record.error = Some(format!(
                        "gave up after {max} recovery attempts without progress; it may be what crashes the process"
                    ));
                    manage::mark_final(txn, &id, record, WorkflowStatus::Failed)?;
                    return Ok(false);
                }
                txn.open_table(WORKFLOWS)?
                    .insert(id.as_str(), encode(&record)?.as_slice())?;
                Ok(true)
            })
            .await
    }

    /// Records how a run ended, unless the workflow was cancelled meanwhile.
    async fn finish(&self, id: &str, ending: Ending) {
        let now = self.clock.now_ms();
        let wf_id = id.to_string();
        let written = self
            .writer
            .submit(move |txn, _| {
                let Some(mut record) = read_for_update(txn, &wf_id)? else {
                    return Ok(());
                };
                if record.status != WorkflowStatus::Pending {
                    return Ok(());
                }
                record.updated_at_ms = now;
                let status = match &ending {
                    Ending::Succeeded(output) => {
                        record.output = Some(output.clone());
                        WorkflowStatus::Succeeded
                    }
                    Ending::Failed(message) => {
                        record.error = Some(message.clone());
                        WorkflowStatus::Failed
                    }
                };
                manage::mark_final(txn, &wf_id, record, status)
            })
            .await;
        match written {
            Ok(()) => self.waiters.notify(id),
            Err(e) => {
                tracing::warn!(workflow = id, error = %e, "cannot record workflow end; it resumes at next start")
            }
        }
    }
}

fn read_for_update(txn: &WriteTransaction, id: &str) -> Result<Option<WorkflowRecord>, ApplyError> {
    let workflows = txn.open_table(WORKFLOWS)?;
    let record = workflows.get(id)?;
    Ok(record.map(|r| decode(r.value())).transpose()?)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
