//! Managing workflows: list, get, steps, cancel, resume, and the retention sweep.

use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use serde::Serialize;

use super::record::{StepKind, WorkflowRecord, WorkflowStatus, decode, encode};
use super::writer::ApplyError;
use super::{Engine, EngineError, read_for_update, read_steps, read_workflow};
use crate::storage::StorageError;
use crate::storage::tables::{COMPLETED, CREATED, EVENTS, PENDING, STEPS, WORKFLOWS};

/// Which workflows [`Engine::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<WorkflowStatus>,
    pub name: Option<String>,
    /// Created at or after this time (ms since the epoch).
    pub created_from_ms: Option<u64>,
    /// Created before this time (ms since the epoch).
    pub created_until_ms: Option<u64>,
    /// At most this many, newest first; 0 means 100.
    pub limit: usize,
}

/// One workflow as management shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowInfo {
    pub id: String,
    pub name: String,
    pub status: WorkflowStatus,
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub recovery_attempts: u32,
}

/// One checkpoint as management shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepInfo {
    pub index: u32,
    pub kind: &'static str,
    pub name: String,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    pub output_bytes: usize,
}

/// Sets a final status, removes the workflow from the pending index and adds it to the
/// completion index (keyed by `record.updated_at_ms`, which retention reads back).
pub(super) fn mark_final(
    txn: &WriteTransaction,
    id: &str,
    record: WorkflowRecord,
    status: WorkflowStatus,
) -> Result<(), ApplyError> {
    txn.open_table(PENDING)?.remove(id)?;
    record_final(txn, id, record, status)
}

/// Writes a finished workflow and its completion-index entry; for a workflow that was
/// never in the pending index (a one-shot), this is all its end needs.
pub(super) fn record_final(
    txn: &WriteTransaction,
    id: &str,
    mut record: WorkflowRecord,
    status: WorkflowStatus,
) -> Result<(), ApplyError> {
    record.status = status;
    txn.open_table(WORKFLOWS)?
        .insert(id, encode(&record)?.as_slice())?;
    txn.open_table(COMPLETED)?
        .insert((record.updated_at_ms, id), ())?;
    Ok(())
}

impl Engine {
    fn info(&self, id: String, record: WorkflowRecord) -> WorkflowInfo {
        let registered = self.shared.registered(&record.name);
        WorkflowInfo {
            input: registered
                .as_ref()
                .and_then(|r| (r.describe_input)(&record.input)),
            output: registered
                .as_ref()
                .zip(record.output.as_ref())
                .and_then(|(r, out)| (r.describe_output)(out)),
            id,
            name: record.name,
            status: record.status,
            error: record.error,
            created_at_ms: record.created_at_ms,
            updated_at_ms: record.updated_at_ms,
            recovery_attempts: record.recovery_attempts,
        }
    }

    /// Number of pending workflows (the size of the pending index).
    pub fn pending_count(&self) -> Result<u64, EngineError> {
        use redb::ReadableTableMetadata;
        let read = self.shared.store.begin_read()?;
        Ok(read.open_table(PENDING)?.len()?)
    }

    /// One workflow, or `NotFound`.
    pub fn get(&self, id: &str) -> Result<WorkflowInfo, EngineError> {
        let read = self.shared.store.begin_read()?;
        let record =
            read_workflow(&read, id)?.ok_or_else(|| EngineError::NotFound(id.to_string()))?;
        Ok(self.info(id.to_string(), record))
    }

    /// The checkpoints of one workflow, in order.
    pub fn steps(&self, id: &str) -> Result<Vec<StepInfo>, EngineError> {
        let read = self.shared.store.begin_read()?;
        if read_workflow(&read, id)?.is_none() {
            return Err(EngineError::NotFound(id.to_string()));
        }
        Ok(read_steps(&read, id)?
            .into_iter()
            .enumerate()
            .map(|(index, step)| StepInfo {
                index: index as u32,
                kind: step.kind.as_str(),
                name: step.name,
                started_at_ms: step.started_at_ms,
                finished_at_ms: step.finished_at_ms,
                output_bytes: if step.kind == StepKind::SetEvent {
                    0
                } else {
                    step.output.len()
                },
            })
            .collect())
    }

    /// Workflows matching `filter`, newest first. Pending ones come from the pending
    /// index; the others from the creation-time index, bounded by the time range.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<WorkflowInfo>, EngineError> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let read = self.shared.store.begin_read()?;
        let workflows = read.open_table(WORKFLOWS).map_err(StorageError::from)?;
        let matches = |record: &WorkflowRecord| {
            filter.status.is_none_or(|s| s == record.status)
                && filter.name.as_deref().is_none_or(|n| n == record.name)
                && filter
                    .created_from_ms
                    .is_none_or(|t| record.created_at_ms >= t)
                && filter
                    .created_until_ms
                    .is_none_or(|t| record.created_at_ms < t)
        };
        let mut found = Vec::new();
        if filter.status == Some(WorkflowStatus::Pending) {
            let pending = read.open_table(PENDING).map_err(StorageError::from)?;
            for entry in pending.iter().map_err(StorageError::from)? {
                let (id, _) = entry.map_err(StorageError::from)?;
                if let Some(bytes) = workflows.get(id.value()).map_err(StorageError::from)? {
                    let record: WorkflowRecord = decode(bytes.value())?;
                    if matches(&record) {
                        found.push(self.info(id.value().to_string(), record));
                    }
                }
            }
            found.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
            found.truncate(limit);
            return Ok(found);
        }
        let created = read.open_table(CREATED).map_err(StorageError::from)?;
        let from = (filter.created_from_ms.unwrap_or(0), "");
        let until = (filter.created_until_ms.unwrap_or(u64::MAX), "");
        for entry in created
            .range(from..until)
            .map_err(StorageError::from)?
            .rev()
        {
            let (key, _) = entry.map_err(StorageError::from)?;
            let (_, id) = key.value();
            if let Some(bytes) = workflows.get(id).map_err(StorageError::from)? {
                let record: WorkflowRecord = decode(bytes.value())?;
                if matches(&record) {
                    found.push(self.info(id.to_string(), record));
                    if found.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Cancels a pending workflow: it is marked cancelled at once, a sleeping one stops
    /// sleeping, and a running one stops at its next durable call. Cancelling a finished
    /// workflow changes nothing. Returns the status after the call.
    pub async fn cancel(&self, id: &str) -> Result<WorkflowStatus, EngineError> {
        let now = self.shared.clock.now_ms();
        let wf_id = id.to_string();
        let status = self
            .shared
            .writer
            .submit(move |txn, _| {
                let mut record = read_for_update(txn, &wf_id)?
                    .ok_or_else(|| EngineError::NotFound(wf_id.clone()))?;
                if record.status.is_final() {
                    return Ok(record.status);
                }
                record.updated_at_ms = now;
                record.error = Some("cancelled".to_string());
                mark_final(txn, &wf_id, record, WorkflowStatus::Cancelled)?;
                Ok(WorkflowStatus::Cancelled)
            })
            .await?;
        if let Some(cancel) = super::lock(&self.shared.running).get(id) {
            let _ = cancel.send(true);
        }
        self.shared.waiters.notify(id);
        Ok(status)
    }

    /// Resumes a cancelled or failed workflow from its last checkpoint (a pending one
    /// without a task in this process is given one). A succeeded workflow is an error.
    pub async fn resume(&self, id: &str) -> Result<WorkflowStatus, EngineError> {
        let now = self.shared.clock.now_ms();
        let wf_id = id.to_string();
        self.shared
            .writer
            .submit(move |txn, _| {
                let mut record = read_for_update(txn, &wf_id)?
                    .ok_or_else(|| EngineError::NotFound(wf_id.clone()))?;
                match record.status {
                    WorkflowStatus::Pending => return Ok(()),
                    WorkflowStatus::Succeeded => {
                        return Err(ApplyError::Failed(EngineError::InvalidState(format!(
                            "workflow {wf_id} already succeeded; there is nothing to resume"
                        ))));
                    }
                    WorkflowStatus::Failed | WorkflowStatus::Cancelled => {}
                }
                txn.open_table(COMPLETED)?
                    .remove((record.updated_at_ms, wf_id.as_str()))?;
                record.status = WorkflowStatus::Pending;
                record.error = None;
                record.recovery_attempts = 0;
                record.steps_at_last_recovery = 0;
                record.updated_at_ms = now;
                txn.open_table(WORKFLOWS)?
                    .insert(wf_id.as_str(), encode(&record)?.as_slice())?;
                txn.open_table(PENDING)?.insert(wf_id.as_str(), 0)?;
                Ok(())
            })
            .await?;
        self.shared.dispatch(id.to_string(), 0, false);
        Ok(WorkflowStatus::Pending)
    }

    /// Deletes up to `batch` workflows that completed more than the retention ago, with
    /// their steps and events. Returns how many it deleted.
    pub async fn sweep_retention_once(&self, batch: usize) -> Result<usize, EngineError> {
        let retention_ms = self.shared.config.retention.as_millis() as u64;
        let cutoff = self.shared.clock.now_ms().saturating_sub(retention_ms);
        self.shared
            .writer
            .submit(move |txn, _| {
                let expired: Vec<(u64, String)> = {
                    let completed = txn.open_table(COMPLETED)?;
                    let mut expired = Vec::new();
                    for entry in completed.range(..(cutoff, ""))?.take(batch) {
                        let (key, _) = entry?;
                        let (at, id) = key.value();
                        expired.push((at, id.to_string()));
                    }
                    expired
                };
                let mut completed = txn.open_table(COMPLETED)?;
                let mut workflows = txn.open_table(WORKFLOWS)?;
                let mut created = txn.open_table(CREATED)?;
                let mut steps = txn.open_table(STEPS)?;
                let mut events = txn.open_table(EVENTS)?;
                for (at, id) in &expired {
                    let id = id.as_str();
                    completed.remove((*at, id))?;
                    if let Some(bytes) = workflows.remove(id)? {
                        let record: WorkflowRecord = decode(bytes.value())?;
                        created.remove((record.created_at_ms, id))?;
                    }
                    steps.retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
                    events.retain_in((id, "")..=(id, "\u{10ffff}"), |_, _| false)?;
                }
                Ok(expired.len())
            })
            .await
    }

    /// Runs the retention sweep every `every` until the engine shuts down.
    pub async fn run_retention_until_stopped(&self, every: Duration) {
        while !self.shared.is_closing() {
            loop {
                match self.sweep_retention_once(1_000).await {
                    Ok(1_000) => continue,
                    Ok(0) => break,
                    Ok(deleted) => {
                        tracing::info!(deleted, "retention sweep deleted old workflows");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "retention sweep failed; will retry");
                        break;
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}
