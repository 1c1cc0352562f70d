//! The durable records of the engine and their bincode encoding.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::EngineError;

/// Encodes a value for a checkpoint.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EngineError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| EngineError::Codec(e.to_string()))
}

/// Decodes a checkpointed value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, EngineError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| EngineError::Codec(e.to_string()))
}

/// Where a workflow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowStatus {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

impl WorkflowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Pending => "PENDING",
            WorkflowStatus::Succeeded => "SUCCEEDED",
            WorkflowStatus::Failed => "FAILED",
            WorkflowStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn is_final(self) -> bool {
        self != WorkflowStatus::Pending
    }
}

impl std::str::FromStr for WorkflowStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PENDING" => Ok(WorkflowStatus::Pending),
            "SUCCEEDED" | "SUCCESS" => Ok(WorkflowStatus::Succeeded),
            "FAILED" | "ERROR" => Ok(WorkflowStatus::Failed),
            "CANCELLED" => Ok(WorkflowStatus::Cancelled),
            other => Err(format!(
                "unknown workflow status {other:?} (expected PENDING, SUCCEEDED, FAILED or CANCELLED)"
            )),
        }
    }
}

/// One workflow, as stored in `tables::WORKFLOWS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub name: String,
    pub status: WorkflowStatus,
    /// bincode of the typed input.
    pub input: Vec<u8>,
    /// bincode of the typed output, once succeeded.
    pub output: Option<Vec<u8>>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Times this workflow was resumed by recovery without recording a new step since.
    pub recovery_attempts: u32,
    /// Number of recorded steps when recovery last resumed it: progress resets the count.
    pub steps_at_last_recovery: u32,
}

/// What kind of operation a step record holds; replay checks it matches the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    Step,
    Transaction,
    Now,
    Sleep,
    SetEvent,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Step => "step",
            StepKind::Transaction => "transaction",
            StepKind::Now => "now",
            StepKind::Sleep => "sleep",
            StepKind::SetEvent => "set_event",
        }
    }
}

/// One checkpoint, as stored in `tables::STEPS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub kind: StepKind,
    pub name: String,
    /// bincode of the recorded result (for a step, `Result<T, String>`; for a sleep, the
    /// wake time in ms; for `now`, the time in ms).
    pub output: Vec<u8>,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}
