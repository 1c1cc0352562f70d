//! The alert center: employees, alerts, leases, and the workflows that move them.
//!
//! - [`model`]: domain types, parsed at the edge (`EmployeeName::parse`, ...).
//! - [`rules`]: pure lease rules.
//! - [`store`]: every state change as a function over one redb transaction, and the
//!   invariant checker.
//! - [`workflows`]: assignment (with its lease watcher) and send.
//!
//! [`AlertCenter`] is the typed front: no caller spells a workflow or event name.

pub mod model;
pub mod rules;
pub mod store;
pub mod workflows;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::engine::{Engine, EngineError};
use crate::telemetry::metric;
use model::{AlertId, AlertMessage, AlertRecord, EmployeeName};
use store::{AlertError, Assignment};
pub use workflows::AlertPublisher;
use workflows::{ASSIGN, ASSIGN_EVENT, AssignInput, SEND, SendInput};

/// What changed, for live updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The list of alerts changed (new, assigned, freed, resolved, cleaned).
    History,
    /// This employee's assignment changed.
    Employee(EmployeeName),
}

/// Broadcasts changes to live-update streams. Sending never blocks and never fails:
/// with no listener the change is simply dropped.
#[derive(Clone)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes {
            sender: broadcast::channel(1024).0,
        }
    }

    pub fn send(&self, change: Change) {
        if let Change::Employee(_) = change {
            let _ = self.sender.send(Change::History);
        }
        let _ = self.sender.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}

impl Default for Changes {
    fn default() -> Self {
        Changes::new()
    }
}

/// Why an alert-center request did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Refused(#[from] AlertError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// An assignment as of `now_ms`, for the page.
#[derive(Debug, Clone)]
pub struct AssignmentView {
    pub assignment: Assignment,
    pub now_ms: u64,
}

/// What a send did.
#[derive(Debug, Clone)]
pub struct Sent {
    pub workflow_id: String,
    /// None when the send is still in progress (the broker is slow or down): it
    /// completes by itself, durably.
    pub alert_id: Option<AlertId>,
}

/// The typed front of the alert center. Cheap to clone.
#[derive(Clone)]
pub struct AlertCenter {
    engine: Engine,
    lease_ms: u64,
    changes: Changes,
    wait: Duration,
    seq: Arc<AtomicU64>,
}

impl AlertCenter {
    /// Registers the alert center's workflows on `engine` (before its recovery).
    pub fn new(engine: Engine, lease: Duration, publisher: Arc<dyn AlertPublisher>) -> AlertCenter {
        let changes = Changes::new();
        workflows::register(&engine, changes.clone(), publisher);
        AlertCenter {
            engine,
            lease_ms: lease.as_millis() as u64,
            changes,
            wait: Duration::from_secs(10),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// A workflow id unique across restarts: time, process and a sequence number.
    fn unique_id(&self, kind: &str, name: &str) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let now = self.engine.clock().now_ms();
        format!("{kind}-{name}-{now}-{}-{seq}", std::process::id())
    }

    /// The employee's assignment; gives them the oldest free alert if they hold none,
    /// or more time if asked. Answers from a read transaction, writing nothing, when
    /// nothing would change (they hold one already, or no alert is free).
    pub async fn assignment(
        &self,
        name: &EmployeeName,
        more_time: bool,
    ) -> Result<AssignmentView, RequestError> {
        let now_ms = self.engine.clock().now_ms();
        if let Some(assignment) = self.read_only_assignment(name, more_time)? {
            return Ok(AssignmentView { assignment, now_ms });
        }
        let input = AssignInput {
            name: name.clone(),
            more_time,
            lease_ms: self.lease_ms,
        };
        let id = self.unique_id("assign", name.as_str());
        self.engine.start(ASSIGN, id.clone(), &input).await?;
        let (now_ms, assignment): (u64, Result<Assignment, AlertError>) =
            self.engine.get_event(&id, ASSIGN_EVENT, self.wait).await?;
        Ok(AssignmentView {
            assignment: assignment?,
            now_ms,
        })
    }

    fn read_only_assignment(
        &self,
        name: &EmployeeName,
        more_time: bool,
    ) -> Result<Option<Assignment>, RequestError> {
        let read = self
            .engine
            .store()
            .begin_read()
            .map_err(EngineError::from)?;
        let employee = store::read::employee(&read, name)?.unwrap_or_default();
        match employee.lease {
            Some(lease) if !more_time => Ok(Some(Assignment {
                employee: name.clone(),
                lease: Some(lease),
                alert: store::read::alert(&read, lease.alert_id)?,
                new_assignment: false,
            })),
            None if !store::read::any_unassigned(&read)? => Ok(Some(Assignment {
                employee: name.clone(),
                lease: None,
                alert: None,
                new_assignment: false,
            })),
            _ => Ok(None),
        }
    }

    /// "I need more time": extends the employee's lease; refused if they hold none.
    pub async fn more_time(&self, name: &EmployeeName) -> Result<AssignmentView, RequestError> {
        let read = self
            .engine
            .store()
            .begin_read()
            .map_err(EngineError::from)?;
        if store::read::employee(&read, name)?
            .and_then(|e| e.lease)
            .is_none()
        {
            return Err(AlertError::NoAssignment(name.to_string()).into());
        }
        drop(read);
        self.assignment(name, true).await
    }

    /// "I fixed it!": resolves the employee's alert.
    pub async fn fixed(&self, name: &EmployeeName) -> Result<AlertId, RequestError> {
        let who = name.clone();
        let id = self
            .engine
            .transact(move |txn| store::resolve(txn, &who))
            .await??;
        metrics::counter!(metric::LEASES, "event" => "resolved").increment(1);
        self.changes.send(Change::Employee(name.clone()));
        Ok(id)
    }

    /// "I'm out of here!": frees the employee's alert for others at once.
    pub async fn log_out(&self, name: &EmployeeName) -> Result<AlertId, RequestError> {
        let who = name.clone();
        let id = self
            .engine
            .transact(move |txn| store::release(txn, &who))
            .await??;
        metrics::counter!(metric::LEASES, "event" => "released").increment(1);
        self.changes.send(Change::Employee(name.clone()));
        Ok(id)
    }

    /// Deletes resolved alerts; returns how many.
    pub async fn clean(&self) -> Result<usize, RequestError> {
        let deleted = self.engine.transact(store::clean_resolved).await??;
        self.changes.send(Change::History);
        Ok(deleted)
    }

    /// Every alert, ascending id.
    pub fn history(&self) -> Result<Vec<(AlertId, AlertRecord)>, RequestError> {
        let read = self
            .engine
            .store()
            .begin_read()
            .map_err(EngineError::from)?;
        Ok(store::read::history(&read)?)
    }

    /// Sends a new alert through Kafka. With an idempotency key, a retried request
    /// starts the same workflow instead of a second one.
    pub async fn send(
        &self,
        message: AlertMessage,
        idempotency_key: Option<&str>,
    ) -> Result<Sent, RequestError> {
        let workflow_id = match idempotency_key {
            Some(key) => format!("send-key-{key}"),
            None => self.unique_id("send", "page"),
        };
        let handle = self
            .engine
            .start(SEND, workflow_id.clone(), &SendInput { message })
            .await?;
        match handle.result(self.wait).await {
            Ok(id) => Ok(Sent {
                workflow_id,
                alert_id: Some(id),
            }),
            Err(EngineError::Timeout { .. }) => Ok(Sent {
                workflow_id,
                alert_id: None,
            }),
            Err(e) => Err(e.into()),
        }
    }
}
