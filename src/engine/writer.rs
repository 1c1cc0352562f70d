//! Group commit: the single writer of the database.
//!
//! redb allows one write transaction at a time and each durable commit costs an fsync.
//! Every durable write of the engine (checkpoints, transactions, starts, completions) is
//! sent here as a [`BatchItem`]; the writer thread applies all the items waiting in one
//! write transaction and commits once. Each caller is answered only after the commit
//! that holds its write is durable, so an answer is a promise that survives `kill -9`.
//!
//! An item may ask for a rollback (a transaction step whose closure returned an error):
//! the whole transaction is aborted and the batch applied again, the failed item this
//! time in fallback mode, where it records only its error. Items are therefore applied
//! possibly more than once, and must be pure functions of the database state.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redb::WriteTransaction;
use tokio::sync::{oneshot, watch};

use super::EngineError;
use crate::faults::crash_point;
use crate::storage::{StorageError, Store};
use crate::telemetry::metric;

/// Why an item could not be applied.
#[derive(Debug)]
pub enum ApplyError {
    /// Abort this transaction and apply the batch again, this item in fallback mode.
    Rollback,
    /// This item failed; it is answered with the error and the rest of the batch goes on.
    Failed(EngineError),
}

impl From<StorageError> for ApplyError {
    fn from(e: StorageError) -> Self {
        ApplyError::Failed(EngineError::from(e))
    }
}

macro_rules! apply_error_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for ApplyError {
            fn from(e: $t) -> Self {
                ApplyError::Failed(EngineError::from(StorageError::from(e)))
            }
        }
    )*};
}
apply_error_from_redb!(redb::TableError, redb::StorageError);

/// One write waiting for a commit.
pub trait BatchItem: Send {
    fn apply(&mut self, txn: &WriteTransaction, fallback: bool) -> Result<(), ApplyError>;
    /// Answers the caller: `Ok` only once the commit holding this item is durable.
    fn finish(self: Box<Self>, result: Result<(), EngineError>);
}

struct FnItem<R, F> {
    apply: F,
    output: Option<R>,
    reply: oneshot::Sender<Result<R, EngineError>>,
}

impl<R, F> BatchItem for FnItem<R, F>
where
    R: Send,
    F: FnMut(&WriteTransaction, bool) -> Result<R, ApplyError> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction, fallback: bool) -> Result<(), ApplyError> {
        self.output = Some((self.apply)(txn, fallback)?);
        Ok(())
    }

    fn finish(self: Box<Self>, result: Result<(), EngineError>) {
        let FnItem { output, reply, .. } = *self;
        let answer = result.and_then(|()| {
            output.ok_or_else(|| EngineError::Internal("batch item answered before applied".into()))
        });
        let _ = reply.send(answer);
    }
}

/// Counters of the writer, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub items: AtomicU64,
    pub commit_micros: AtomicU64,
    pub rollbacks: AtomicU64,
}

/// Handle on the writer thread. Cheap to clone; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn BatchItem>>,
    stats: Arc<WriterStats>,
    /// The first I/O failure of a commit (a full disk, say). redb refuses every later
    /// write until the file is opened again, so the writer is of no more use after it.
    failure: watch::Receiver<Option<String>>,
}

impl Writer {
    pub fn start(store: Store, batch_size_max: usize) -> Writer {
        let (tx, rx) = mpsc::channel::<Box<dyn BatchItem>>();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let (failed, failure) = watch::channel(None);
        std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || run(store, rx, batch_size_max.max(1), &thread_stats, &failed))
            .expect("cannot spawn the database writer thread");
        Writer { tx, stats, failure }
    }

    /// Resolves with the first I/O failure of a commit; never, if there is none.
    pub async fn failed(&self) -> String {
        let mut failure = self.failure.clone();
        match failure.wait_for(Option::is_some).await {
            Ok(failed) => failed.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues `apply` for the next commit at once (writes are applied in the order of
    /// the calls, not of the awaits) and returns a future that resolves once that commit
    /// is durable.
    pub fn submit<R, F>(&self, apply: F) -> impl Future<Output = Result<R, EngineError>> + use<R, F>
    where
        R: Send + 'static,
        F: FnMut(&WriteTransaction, bool) -> Result<R, ApplyError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let item = Box::new(FnItem {
            apply,
            output: None,
            reply,
        });
        let sent = self.tx.send(item).map_err(|_| EngineError::WriterGone);
        async move {
            sent?;
            answer.await.map_err(|_| EngineError::WriterGone)?
        }
    }
}

/// Longest a commit waits for the rest of a wave of writers (see `run`).
const FILL_WAIT: Duration = Duration::from_micros(300);

fn run(
    store: Store,
    rx: mpsc::Receiver<Box<dyn BatchItem>>,
    batch_size_max: usize,
    stats: &WriterStats,
    failed: &watch::Sender<Option<String>>,
) {
    let mut last_len = 0;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < batch_size_max {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        // Writers in flight come back in waves: when this batch is smaller than the last
        // one, wait a moment for the rest of the wave, so one fsync serves all of it
        // instead of the wave splitting into two half-size commits.
        if batch.len() < last_len {
            let deadline = Instant::now() + FILL_WAIT;
            while batch.len() < last_len.min(batch_size_max) {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
        }
        last_len = batch.len();
        if let Err(e) = commit_batch(&store, batch, stats) {
            failed.send_if_modified(|failure| {
                let first = failure.is_none();
                failure.get_or_insert_with(|| e.to_string());
                first
            });
        }
    }
}

/// Commits `batch` and answers its items. Returns the error of a commit the disk
/// refused (every item is answered with it too).
fn commit_batch(
    store: &Store,
    mut batch: Vec<Box<dyn BatchItem>>,
    stats: &WriterStats,
) -> Result<(), EngineError> {
    let started = Instant::now();
    let mut fallback = vec![false; batch.len()];
    loop {
        let txn = match begin(store) {
            Ok(txn) => txn,
            Err(e) => return fail_all(batch, e),
        };
        match apply_all(&txn, &mut batch, &fallback) {
            Ok(()) => {}
            Err((index, ApplyError::Rollback)) if !fallback[index] => {
                stats.rollbacks.fetch_add(1, Ordering::Relaxed);
                fallback[index] = true;
                let _ = txn.abort();
                continue;
            }
            Err((index, error)) => {
                let _ = txn.abort();
                let error = match error {
                    ApplyError::Failed(e) => e,
                    ApplyError::Rollback => {
                        EngineError::Internal("item rolled back in fallback mode".into())
                    }
                };
                batch.remove(index).finish(Err(error));
                fallback.remove(index);
                if batch.is_empty() {
                    return Ok(());
                }
                continue;
            }
        }
        crash_point("writer.before_commit");
        let committed = txn.commit();
        crash_point("writer.after_commit");
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.items.fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::histogram!(metric::COMMIT_BATCH).record(batch.len() as f64);
        metrics::histogram!(metric::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        stats
            .commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        return match committed {
            Ok(()) => {
                batch.into_iter().for_each(|item| item.finish(Ok(())));
                Ok(())
            }
            Err(e) => fail_all(batch, EngineError::from(StorageError::from(e))),
        };
    }
}

fn begin(store: &Store) -> Result<WriteTransaction, EngineError> {
    let mut txn = store.db().begin_write().map_err(StorageError::from)?;
    txn.set_quick_repair(true);
    Ok(txn)
}

/// Applies every item; on the first failure returns its index and why.
fn apply_all(
    txn: &WriteTransaction,
    batch: &mut [Box<dyn BatchItem>],
    fallback: &[bool],
) -> Result<(), (usize, ApplyError)> {
    for (index, item) in batch.iter_mut().enumerate() {
        let applied =
            std::panic::catch_unwind(AssertUnwindSafe(|| item.apply(txn, fallback[index])));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err((index, e)),
            Err(_) => {
                return Err((
                    index,
                    ApplyError::Failed(EngineError::Internal(
                        "a write panicked; it was rolled back".into(),
                    )),
                ));
            }
        }
    }
    Ok(())
}

/// Answers every item with `error`; returns it if the disk refused the write.
fn fail_all(batch: Vec<Box<dyn BatchItem>>, error: EngineError) -> Result<(), EngineError> {
    for item in batch {
        item.finish(Err(error.clone()));
    }
    match error {
        EngineError::Storage { io: true, .. } => Err(error),
        _ => Ok(()),
    }
}
