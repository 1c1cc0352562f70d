//! Every redb table of the file, in one place, with its key layout.
//!
//! Keys put the field a scan orders by first (a timestamp, a workflow id), so the
//! questions the code asks ("which workflows are pending?", "what completed before T?",
//! "what are the steps of W?") are one range scan each, never a scan of the history.
//! Values are bincode-encoded records from the module that owns the table.

use redb::TableDefinition;

/// `"schema_version"` -> the schema version of the file (see [`super::schema`]).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// workflow id -> `engine::record::WorkflowRecord` (name, status, input, output or
/// error, timestamps, recovery attempts).
pub const WORKFLOWS: TableDefinition<&str, &[u8]> = TableDefinition::new("workflows");

/// (workflow id, step index) -> `engine::record::StepRecord`. Steps of one workflow are
/// adjacent, so replay loads them with one range scan.
pub const STEPS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("workflow_steps");

/// workflow id -> wake time in ms since the Unix epoch, or 0 when runnable now.
///
/// The index of pending work: exactly the workflows whose status is pending. Recovery
/// reads only this table, so its cost grows with pending work, not with history.
pub const PENDING: TableDefinition<&str, u64> = TableDefinition::new("workflows_pending");

/// (created at ms, workflow id) -> (). Lists workflows newest first without a full scan.
pub const CREATED: TableDefinition<(u64, &str), ()> = TableDefinition::new("workflows_by_created");

/// (finished at ms, workflow id) -> (). Retention deletes a prefix of this index.
pub const COMPLETED: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("workflows_by_completed");

/// (workflow id, event key) -> bincode-encoded event value, set by `set_event`.
pub const EVENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("workflow_events");

/// alert id -> `alerts::AlertRecord` (status, message, assignee, created at).
pub const ALERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts");

/// alert id -> (): active alerts that nobody holds. Assignment takes the first entry,
/// the oldest alert, without scanning the others.
pub const UNASSIGNED: TableDefinition<u64, ()> = TableDefinition::new("alerts_unassigned");

/// employee name -> `alerts::EmployeeRecord` (current alert, lease id and expiry).
pub const EMPLOYEES: TableDefinition<&str, &[u8]> = TableDefinition::new("employees");

/// counter name -> next value (`"next_alert_id"`, `"next_lease_id"`, `"next_dead_letter"`).
/// Counters only grow, so an id is never handed out twice.
pub const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

/// (topic, partition) -> `kafka::Cursor` (next offset to process, broker log epoch).
/// Written in the same commit as the message it moves past: the source of truth for
/// where the intake resumes.
pub const KAFKA_CURSORS: TableDefinition<(&str, i32), &[u8]> =
    TableDefinition::new("kafka_cursors");

/// sequence number -> `kafka::DeadLetter` (topic, partition, offset, reason, the first
/// KiB of the raw bytes, time): messages the intake could not turn into alerts.
pub const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
