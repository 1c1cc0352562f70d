//! Errors of the engine and of workflows.

use crate::storage::StorageError;

/// What can go wrong in the engine. Clonable, so one failed commit can answer every
/// caller of its batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The database refused a read or a write. `io` is true when the disk itself failed
    /// (full, read-only): callers answer "try again later".
    #[error("storage: {message}")]
    Storage { message: String, io: bool },
    #[error("cannot encode or decode a checkpoint: {0}")]
    Codec(String),
    #[error(
        "non-deterministic replay of workflow {workflow}: step {index} was recorded as {recorded} but the code now calls {called}"
    )]
    NonDeterministic {
        workflow: String,
        index: u32,
        recorded: String,
        called: String,
    },
    #[error("workflow {0} was cancelled")]
    Cancelled(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error("timed out after {after_ms} ms waiting for {what}")]
    Timeout { what: String, after_ms: u64 },
    #[error("no workflow with id {0}")]
    NotFound(String),
    #[error("no workflow named {0:?} is registered in this build")]
    UnknownWorkflow(String),
    #[error("workflow {id} is a {recorded:?} workflow, not {requested:?}")]
    WrongWorkflowType {
        id: String,
        recorded: String,
        requested: String,
    },
    #[error("workflow {id} failed: {message}")]
    WorkflowFailed { id: String, message: String },
    #[error("workflow {id} ended without setting event {key:?}")]
    EventNeverSet { id: String, key: String },
    #[error("{0}")]
    InvalidState(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        EngineError::Storage {
            io: e.is_io(),
            message: e.to_string(),
        }
    }
}

macro_rules! engine_error_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for EngineError {
            fn from(e: $t) -> Self {
                EngineError::from(StorageError::from(e))
            }
        }
    )*};
}
engine_error_from_redb!(redb::TransactionError, redb::TableError, redb::StorageError);

impl EngineError {
    /// True for failures of this process rather than of the workflow: the workflow stays
    /// pending and is resumed at the next start instead of being marked failed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EngineError::Storage { .. } | EngineError::ShuttingDown | EngineError::WriterGone
        )
    }
}

/// How a workflow function ends when it does not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("step {step:?} failed: {message}")]
    Step { step: String, message: String },
    #[error("{0}")]
    App(String),
}

impl WorkflowError {
    /// An application error with a message, recorded as the workflow's failure.
    pub fn app(message: impl std::fmt::Display) -> WorkflowError {
        WorkflowError::App(message.to_string())
    }
}
