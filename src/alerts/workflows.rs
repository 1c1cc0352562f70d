//! The alert center's workflows: assignment with its lease watcher, and send.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::model::{AlertId, AlertMessage, AlertStatus, EmployeeName, NewAlert};
use super::store::{self, Assignment, LeaseCheck};
use super::{Change, Changes};
use crate::engine::{Engine, WorkflowContext, WorkflowDef, WorkflowError};
use crate::faults::crash_point;
use crate::telemetry::metric;

/// Where a sent alert goes: the Kafka producer in the app, so that it comes back
/// through the intake like any other alert.
pub trait AlertPublisher: Send + Sync + 'static {
    /// Publishes one alert; retries until it is accepted or returns why it cannot be.
    fn publish(&self, alert: NewAlert) -> BoxFuture<'static, Result<(), String>>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssignInput {
    pub name: EmployeeName,
    pub more_time: bool,
    pub lease_ms: u64,
}

/// The assignment workflow, as in the original app: durable now; assign or extend in
/// one transaction; publish the result as event `"rec"`; if this assigned an alert,
/// watch the lease: sleep until expiry, check, sleep again if it was extended, free
/// the alert if it ran out.
pub const ASSIGN: WorkflowDef<AssignInput, ()> = WorkflowDef::new("assignment");

/// The event the HTTP handler waits on.
pub const ASSIGN_EVENT: &str = "rec";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendInput {
    pub message: AlertMessage,
}

/// Send: allocate the next alert id in a transaction, then publish in a step. A replay
/// may publish again; the intake's "id already present" rule keeps it to one alert.
pub const SEND: WorkflowDef<SendInput, AlertId> = WorkflowDef::new("send_alert");

pub(super) fn register(engine: &Engine, changes: Changes, publisher: Arc<dyn AlertPublisher>) {
    engine.register(ASSIGN, move |ctx, input| {
        let changes = changes.clone();
        async move { assign(ctx, input, changes).await }
    });
    engine.register(SEND, move |ctx, input| {
        let publisher = publisher.clone();
        async move { send(ctx, input, publisher).await }
    });
}

async fn assign(
    ctx: WorkflowContext,
    input: AssignInput,
    changes: Changes,
) -> Result<(), WorkflowError> {
    let now_ms = ctx.now_ms().await?;
    let AssignInput {
        name,
        more_time,
        lease_ms,
    } = input;
    let who = name.clone();
    let assignment: Result<Assignment, store::AlertError> = ctx
        .transaction("assign", move |txn| {
            store::assign_or_extend(txn, &who, now_ms, lease_ms, more_time)
        })
        .await?;
    ctx.set_event(ASSIGN_EVENT, &(now_ms, &assignment)).await?;
    let assignment = assignment.map_err(WorkflowError::app)?;
    if assignment.new_assignment {
        metrics::counter!(metric::LEASES, "event" => "granted").increment(1);
    } else if more_time && assignment.lease.is_some() {
        metrics::counter!(metric::LEASES, "event" => "extended").increment(1);
    }
    if assignment.new_assignment || more_time {
        changes.send(Change::Employee(name.clone()));
    }
    let Some(lease) = assignment.lease.filter(|_| assignment.new_assignment) else {
        return Ok(());
    };
    let mut wake_at_ms = lease.expires_at_ms;
    loop {
        ctx.sleep_until(wake_at_ms).await?;
        let now_ms = ctx.now_ms().await?;
        let who = name.clone();
        let check = ctx
            .transaction("check_lease", move |txn| {
                store::check_lease(txn, &who, lease.id, now_ms)
            })
            .await?
            .map_err(WorkflowError::app)?;
        match check {
            LeaseCheck::HeldUntil(expires_at_ms) => wake_at_ms = expires_at_ms,
            LeaseCheck::Expired(alert_id) => {
                tracing::info!(employee = %name, alert = %alert_id, "lease expired; alert is free again");
                metrics::counter!(metric::LEASES, "event" => "expired").increment(1);
                changes.send(Change::Employee(name.clone()));
                return Ok(());
            }
            LeaseCheck::Ended => return Ok(()),
        }
    }
}

async fn send(
    ctx: WorkflowContext,
    input: SendInput,
    publisher: Arc<dyn AlertPublisher>,
) -> Result<AlertId, WorkflowError> {
    let id = ctx
        .transaction("allocate_id", store::allocate_alert_id)
        .await?
        .map_err(WorkflowError::app)?;
    let alert = NewAlert {
        id: Some(id),
        status: AlertStatus::Active,
        message: input.message,
    };
    ctx.step("publish", || async move {
        publisher.publish(alert).await?;
        // Produced but not yet checkpointed: a replay produces the alert again, and the
        // intake's "id already present" rule keeps it to one alert.
        crash_point("send.published");
        Ok::<(), String>(())
    })
    .await?;
    Ok(id)
}
