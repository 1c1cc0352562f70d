//! The fast path for a workflow whose whole body is one transaction.
//!
//! Such a workflow needs no task and no intermediate commit: its start, its single
//! transaction step and its end are written in one commit, exactly what the registered
//! workflow (`ctx.transaction(step, body)` and return) would have written had it run
//! without a crash in between. The Kafka intake uses it so that one message costs one
//! batched write instead of three.

use std::fmt::Display;
use std::future::Future;

use redb::{ReadableTable, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::manage::record_final;
use super::record::{StepKind, StepRecord, WorkflowRecord, WorkflowStatus, decode, encode};
use super::writer::ApplyError;
use super::{Engine, EngineError, WorkflowDef};
use crate::storage::tables::{CREATED, STEPS, WORKFLOWS};

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started<T> {
    /// The workflow was new and ran; here is what its transaction returned.
    Ran(T),
    /// A workflow with this id existed already: nothing ran again.
    Existing,
}

impl Engine {
    /// Records and runs workflow `id` of type `def` in one commit, whose body is the
    /// single transaction step `step` running `body`; `extra` is applied in the same
    /// commit whether or not the workflow existed (a consumer offset, say).
    ///
    /// The write is queued when this is called, so calls commit in call order; the
    /// returned future resolves once the commit is durable. An `Err` from `body` rolls
    /// its writes back and records the workflow as failed with that error, like the
    /// registered workflow would.
    pub fn run_transaction_workflow<I, O, E, F, X>(
        &self,
        def: WorkflowDef<I, O>,
        id: String,
        input: &I,
        step: &'static str,
        body: F,
        extra: X,
    ) -> impl Future<Output = Result<Started<Result<O, E>>, EngineError>> + use<I, O, E, F, X>
    where
        I: Serialize,
        O: Serialize + DeserializeOwned + Send + 'static,
        E: Serialize + DeserializeOwned + Display + Send + 'static,
        F: Fn(&WriteTransaction) -> Result<O, E> + Send + 'static,
        X: Fn(&WriteTransaction) -> Result<(), EngineError> + Send + 'static,
    {
        let prepared = self.prepare_one_shot(def, input);
        let name = def.name();
        let submitted = prepared.map(|(now, input)| {
            let mut failed: Option<Vec<u8>> = None;
            self.shared.writer.submit(move |txn, fallback| {
                if let Some(existing) = txn.open_table(WORKFLOWS)?.get(id.as_str())? {
                    let existing: WorkflowRecord = decode(existing.value())?;
                    check_name(&id, &existing, name)?;
                    extra(txn)?;
                    return Ok(Started::Existing);
                }
                let outcome: Result<O, E> = if fallback {
                    decode(failed.as_deref().unwrap_or_default())?
                } else {
                    match body(txn) {
                        Ok(value) => Ok(value),
                        Err(e) => {
                            failed = Some(encode(&Err::<O, E>(e))?);
                            return Err(ApplyError::Rollback);
                        }
                    }
                };
                let step_record = StepRecord {
                    kind: StepKind::Transaction,
                    name: step.to_string(),
                    output: encode(&outcome)?,
                    started_at_ms: now,
                    finished_at_ms: now,
                };
                txn.open_table(STEPS)?
                    .insert((id.as_str(), 0), encode(&step_record)?.as_slice())?;
                let (status, output, error) = match &outcome {
                    Ok(value) => (WorkflowStatus::Succeeded, Some(encode(value)?), None),
                    Err(e) => (WorkflowStatus::Failed, None, Some(e.to_string())),
                };
                let record = WorkflowRecord {
                    name: name.to_string(),
                    status,
                    input: input.clone(),
                    output,
                    error,
                    created_at_ms: now,
                    updated_at_ms: now,
                    recovery_attempts: 0,
                    steps_at_last_recovery: 0,
                };
                txn.open_table(CREATED)?.insert((now, id.as_str()), ())?;
                record_final(txn, &id, record, status)?;
                extra(txn)?;
                Ok(Started::Ran(outcome))
            })
        });
        async move { submitted?.await }
    }

    fn prepare_one_shot<I: Serialize, O>(
        &self,
        def: WorkflowDef<I, O>,
        input: &I,
    ) -> Result<(u64, Vec<u8>), EngineError> {
        if self.shared.is_closing() {
            return Err(EngineError::ShuttingDown);
        }
        if self.shared.registered(def.name()).is_none() {
            return Err(EngineError::UnknownWorkflow(def.name().to_string()));
        }
        Ok((self.shared.clock.now_ms(), encode(input)?))
    }
}

fn check_name(id: &str, existing: &WorkflowRecord, requested: &str) -> Result<(), ApplyError> {
    if existing.name == requested {
        return Ok(());
    }
    Err(ApplyError::Failed(EngineError::WrongWorkflowType {
        id: id.to_string(),
        recorded: existing.name.clone(),
        requested: requested.to_string(),
    }))
}

impl Engine {
    /// Runs `f` in the next group commit, outside any workflow: for a change that is a
    /// single transaction and whose caller waits for it (an HTTP action). An `Err` from
    /// `f` rolls back its writes and is returned as the inner error. `f` may run more
    /// than once and must depend only on the database.
    pub fn transact<T, E, F>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<Result<T, E>, EngineError>> + use<T, E, F>
    where
        T: Send + 'static,
        E: Clone + Send + 'static,
        F: Fn(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let closing = self.shared.is_closing();
        let mut failed: Option<E> = None;
        let submitted = (!closing).then(|| {
            self.shared.writer.submit(move |txn, fallback| {
                if fallback {
                    // The batch may be applied again if a later write rolls back: keep it.
                    return failed.clone().map(Err).ok_or_else(|| {
                        ApplyError::Failed(EngineError::Internal(
                            "fallback without an error".into(),
                        ))
                    });
                }
                match f(txn) {
                    Ok(value) => Ok(Ok(value)),
                    Err(e) => {
                        failed = Some(e);
                        Err(ApplyError::Rollback)
                    }
                }
            })
        });
        async move {
            match submitted {
                Some(answer) => answer.await,
                None => Err(EngineError::ShuttingDown),
            }
        }
    }
}
