//! The alert center's state changes, each a function over one redb transaction.
//! Callers run them inside engine transactions (`ctx.transaction`), so each change is
//! exactly once and commits with its workflow checkpoint.
//!
//! Invariants kept by every function here (checked by [`check_invariants`]): an alert
//! has at most one assignee; an employee holds at most one alert; the alert and the
//! employee point at each other; a resolved alert is never assigned again; an alert is
//! in the unassigned index exactly when it is active.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::model::{
    ALERT_ID_MAX, AlertId, AlertRecord, AlertStatus, EmployeeName, EmployeeRecord, Lease, NewAlert,
};
use super::rules;
use crate::engine::record::{decode, encode};
use crate::storage::tables::{ALERTS, COUNTERS, EMPLOYEES, UNASSIGNED};

/// Why an alert-center change could not be made. Serializable: it is recorded as the
/// result of the transaction that refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AlertError {
    #[error("{0} has no assignment right now")]
    NoAssignment(String),
    #[error("no alert id is left (all ids up to {ALERT_ID_MAX} are used)")]
    IdsExhausted,
    #[error("storage: {0}")]
    Storage(String),
}

macro_rules! alert_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for AlertError {
            fn from(e: $t) -> Self {
                AlertError::Storage(e.to_string())
            }
        }
    )*};
}
alert_error_from!(
    redb::TableError,
    redb::StorageError,
    crate::engine::EngineError
);

const NEXT_ALERT_ID: &str = "next_alert_id";
const NEXT_LEASE_ID: &str = "next_lease_id";

/// What inserting a batch of alerts did, alert by alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertOutcome {
    pub inserted: Vec<AlertId>,
    /// Already present with the same message: a replayed send or a redelivery.
    pub duplicates: Vec<AlertId>,
    /// Already present with a different message: never silently dropped.
    pub conflicts: Vec<(AlertId, String)>,
}

/// Inserts alerts; an alert without an id gets the next free one. The id counter
/// always ends above every id seen.
pub fn insert_alerts(
    txn: &WriteTransaction,
    alerts: &[NewAlert],
    now_ms: u64,
) -> Result<InsertOutcome, AlertError> {
    let mut outcome = InsertOutcome::default();
    for alert in alerts {
        let id = match alert.id {
            Some(id) => {
                raise_counter_past(txn, NEXT_ALERT_ID, id.get())?;
                id
            }
            None => allocate_alert_id(txn)?,
        };
        let mut table = txn.open_table(ALERTS)?;
        if let Some(existing) = table.get(id.get())? {
            let existing: AlertRecord = decode(existing.value())?;
            if existing.message == alert.message.as_str() {
                outcome.duplicates.push(id);
            } else {
                let reason = format!(
                    "alert {id} already exists with another message ({:?}); refusing {:?}",
                    existing.message,
                    alert.message.as_str()
                );
                outcome.conflicts.push((id, reason));
            }
            continue;
        }
        let record = AlertRecord {
            status: alert.status,
            message: alert.message.as_str().to_string(),
            assignee: None,
            created_at_ms: now_ms,
        };
        table.insert(id.get(), encode(&record)?.as_slice())?;
        if alert.status == AlertStatus::Active {
            txn.open_table(UNASSIGNED)?.insert(id.get(), ())?;
        }
        outcome.inserted.push(id);
    }
    Ok(outcome)
}

/// Hands out the next alert id; never the same twice, even across crashes (the counter
/// commits with the caller's transaction).
pub fn allocate_alert_id(txn: &WriteTransaction) -> Result<AlertId, AlertError> {
    let id = next_counter(txn, NEXT_ALERT_ID)?;
    AlertId::new(id).map_err(|_| AlertError::IdsExhausted)
}

fn next_counter(txn: &WriteTransaction, name: &str) -> Result<u64, AlertError> {
    let mut counters = txn.open_table(COUNTERS)?;
    let next = counters.get(name)?.map(|v| v.value()).unwrap_or(1).max(1);
    counters.insert(name, next + 1)?;
    Ok(next)
}

fn raise_counter_past(txn: &WriteTransaction, name: &str, seen: u64) -> Result<(), AlertError> {
    let mut counters = txn.open_table(COUNTERS)?;
    let next = counters.get(name)?.map(|v| v.value()).unwrap_or(1);
    if next <= seen {
        counters.insert(name, seen + 1)?;
    }
    Ok(())
}

/// The answer to "what is my assignment?", as of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub employee: EmployeeName,
    pub lease: Option<Lease>,
    pub alert: Option<AlertRecord>,
    /// True when this very request assigned the alert.
    pub new_assignment: bool,
}

/// Gives `name` the oldest free alert if they hold none, or extends their lease by
/// `lease_ms` from `now_ms` if `more_time` and they hold one. Creates the employee on
/// first use.
pub fn assign_or_extend(
    txn: &WriteTransaction,
    name: &EmployeeName,
    now_ms: u64,
    lease_ms: u64,
    more_time: bool,
) -> Result<Assignment, AlertError> {
    let mut employee = read_employee_w(txn, name)?.unwrap_or_default();
    let mut new_assignment = false;
    match employee.lease {
        None => {
            let oldest = txn
                .open_table(UNASSIGNED)?
                .first()?
                .map(|(id, _)| id.value());
            if let Some(alert_id) = oldest {
                let alert_id = AlertId::new(alert_id).map_err(AlertError::Storage)?;
                let lease = Lease {
                    id: next_counter(txn, NEXT_LEASE_ID)?,
                    alert_id,
                    expires_at_ms: now_ms + lease_ms,
                };
                update_alert(txn, alert_id, |alert| {
                    alert.status = AlertStatus::Assigned;
                    alert.assignee = Some(name.as_str().to_string());
                })?;
                txn.open_table(UNASSIGNED)?.remove(alert_id.get())?;
                employee.lease = Some(lease);
                new_assignment = true;
            }
            write_employee(txn, name, &employee)?;
        }
        Some(ref mut lease) if more_time => {
            lease.expires_at_ms = rules::extended_expiry(lease.expires_at_ms, now_ms, lease_ms);
            write_employee(txn, name, &employee)?;
        }
        Some(_) => {}
    }
    let alert = match employee.lease {
        Some(lease) => read_alert_w(txn, lease.alert_id)?,
        None => None,
    };
    Ok(Assignment {
        employee: name.clone(),
        lease: employee.lease,
        alert,
        new_assignment,
    })
}

/// What the watcher of a lease found when it woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseCheck {
    /// Still held, now until this time (it was extended): sleep again.
    HeldUntil(u64),
    /// Time was up: the alert is free for others again.
    Expired(AlertId),
    /// The lease ended otherwise (fixed, logged out, or an older lease): nothing to do.
    Ended,
}

/// Checks lease `lease_id` of `name` at `now_ms`, freeing its alert if it ran out.
pub fn check_lease(
    txn: &WriteTransaction,
    name: &EmployeeName,
    lease_id: u64,
    now_ms: u64,
) -> Result<LeaseCheck, AlertError> {
    let Some(mut employee) = read_employee_w(txn, name)? else {
        return Ok(LeaseCheck::Ended);
    };
    let Some(lease) = employee.lease.filter(|l| l.id == lease_id) else {
        return Ok(LeaseCheck::Ended);
    };
    if !rules::is_expired(lease.expires_at_ms, now_ms) {
        return Ok(LeaseCheck::HeldUntil(lease.expires_at_ms));
    }
    free_alert(txn, lease.alert_id)?;
    employee.lease = None;
    write_employee(txn, name, &employee)?;
    Ok(LeaseCheck::Expired(lease.alert_id))
}

/// "I fixed it": the alert is resolved (its assignee kept for the history) and the
/// employee is free.
pub fn resolve(txn: &WriteTransaction, name: &EmployeeName) -> Result<AlertId, AlertError> {
    let (mut employee, lease) = current_lease(txn, name)?;
    update_alert(txn, lease.alert_id, |alert| {
        alert.status = AlertStatus::Resolved
    })?;
    employee.lease = None;
    write_employee(txn, name, &employee)?;
    Ok(lease.alert_id)
}

/// "I'm out of here": the employee's alert is free for others at once.
pub fn release(txn: &WriteTransaction, name: &EmployeeName) -> Result<AlertId, AlertError> {
    let (mut employee, lease) = current_lease(txn, name)?;
    free_alert(txn, lease.alert_id)?;
    employee.lease = None;
    write_employee(txn, name, &employee)?;
    Ok(lease.alert_id)
}

/// Deletes every resolved alert; returns how many.
pub fn clean_resolved(txn: &WriteTransaction) -> Result<usize, AlertError> {
    let mut deleted = 0;
    txn.open_table(ALERTS)?.retain(|_, bytes| {
        let resolved =
            decode::<AlertRecord>(bytes).is_ok_and(|a| a.status == AlertStatus::Resolved);
        deleted += usize::from(resolved);
        !resolved
    })?;
    Ok(deleted)
}

fn current_lease(
    txn: &WriteTransaction,
    name: &EmployeeName,
) -> Result<(EmployeeRecord, Lease), AlertError> {
    let employee = read_employee_w(txn, name)?;
    match employee {
        Some(employee @ EmployeeRecord { lease: Some(lease) }) => Ok((employee, lease)),
        _ => Err(AlertError::NoAssignment(name.to_string())),
    }
}

fn free_alert(txn: &WriteTransaction, alert_id: AlertId) -> Result<(), AlertError> {
    let mut freed = false;
    update_alert(txn, alert_id, |alert| {
        if alert.status == AlertStatus::Assigned {
            alert.status = AlertStatus::Active;
            alert.assignee = None;
            freed = true;
        }
    })?;
    if freed {
        txn.open_table(UNASSIGNED)?.insert(alert_id.get(), ())?;
    }
    Ok(())
}

/// Applies `change` to an alert; an alert deleted meanwhile (cleaned) is left alone.
fn update_alert(
    txn: &WriteTransaction,
    id: AlertId,
    change: impl FnOnce(&mut AlertRecord),
) -> Result<(), AlertError> {
    let mut table = txn.open_table(ALERTS)?;
    let Some(mut alert) = table
        .get(id.get())?
        .map(|v| decode::<AlertRecord>(v.value()))
        .transpose()?
    else {
        return Ok(());
    };
    change(&mut alert);
    table.insert(id.get(), encode(&alert)?.as_slice())?;
    Ok(())
}

fn read_alert_w(txn: &WriteTransaction, id: AlertId) -> Result<Option<AlertRecord>, AlertError> {
    let table = txn.open_table(ALERTS)?;
    let alert = table.get(id.get())?;
    Ok(alert.map(|v| decode(v.value())).transpose()?)
}

fn read_employee_w(
    txn: &WriteTransaction,
    name: &EmployeeName,
) -> Result<Option<EmployeeRecord>, AlertError> {
    let table = txn.open_table(EMPLOYEES)?;
    let employee = table.get(name.as_str())?;
    Ok(employee.map(|v| decode(v.value())).transpose()?)
}

fn write_employee(
    txn: &WriteTransaction,
    name: &EmployeeName,
    employee: &EmployeeRecord,
) -> Result<(), AlertError> {
    txn.open_table(EMPLOYEES)?
        .insert(name.as_str(), encode(employee)?.as_slice())?;
    Ok(())
}

/// Read-side queries, on a snapshot.
pub mod read {
    use super::*;

    /// Every alert, ascending id.
    pub fn history(read: &ReadTransaction) -> Result<Vec<(AlertId, AlertRecord)>, AlertError> {
        let table = read.open_table(ALERTS)?;
        let mut alerts = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            let id = AlertId::new(id.value()).map_err(AlertError::Storage)?;
            alerts.push((id, decode(bytes.value())?));
        }
        Ok(alerts)
    }

    pub fn employee(
        read: &ReadTransaction,
        name: &EmployeeName,
    ) -> Result<Option<EmployeeRecord>, AlertError> {
        let table = read.open_table(EMPLOYEES)?;
        let employee = table.get(name.as_str())?;
        Ok(employee.map(|v| decode(v.value())).transpose()?)
    }

    pub fn alert(read: &ReadTransaction, id: AlertId) -> Result<Option<AlertRecord>, AlertError> {
        let table = read.open_table(ALERTS)?;
        let alert = table.get(id.get())?;
        Ok(alert.map(|v| decode(v.value())).transpose()?)
    }

    /// Whether some active alert is waiting for someone.
    pub fn any_unassigned(read: &ReadTransaction) -> Result<bool, AlertError> {
        Ok(read.open_table(UNASSIGNED)?.first()?.is_some())
    }

    /// Every employee and their lease.
    pub fn employees(
        read: &ReadTransaction,
    ) -> Result<Vec<(EmployeeName, EmployeeRecord)>, AlertError> {
        let table = read.open_table(EMPLOYEES)?;
        let mut employees = Vec::new();
        for entry in table.iter()? {
            let (name, bytes) = entry?;
            let name = EmployeeName::parse(name.value()).map_err(AlertError::Storage)?;
            employees.push((name, decode(bytes.value())?));
        }
        Ok(employees)
    }
}

/// Checks every invariant of the module doc over a snapshot; tests call it after each
/// step. Returns the first violation found.
pub fn check_invariants(read: &ReadTransaction) -> Result<(), String> {
    let alerts = read::history(read).map_err(|e| e.to_string())?;
    let employees = read::employees(read).map_err(|e| e.to_string())?;
    let unassigned: std::collections::BTreeSet<u64> = read
        .open_table(UNASSIGNED)
        .map_err(|e| e.to_string())?
        .iter()
        .map_err(|e| e.to_string())?
        .map(|e| e.map(|(k, _)| k.value()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut holders = std::collections::HashMap::new();
    for (name, employee) in &employees {
        if let Some(lease) = employee.lease
            && let Some(previous) = holders.insert(lease.alert_id, name.as_str())
        {
            return Err(format!(
                "alert {} is held by both {previous} and {name}",
                lease.alert_id
            ));
        }
    }
    for (id, alert) in &alerts {
        let holder = holders.get(id).copied();
        match alert.status {
            AlertStatus::Assigned if holder != alert.assignee.as_deref() || holder.is_none() => {
                return Err(format!(
                    "alert {id} is assigned to {:?} but held by {holder:?}",
                    alert.assignee
                ));
            }
            AlertStatus::Active | AlertStatus::Resolved if holder.is_some() => {
                return Err(format!(
                    "alert {id} is {} but held by {holder:?}",
                    alert.status.name()
                ));
            }
            AlertStatus::Active if alert.assignee.is_some() => {
                return Err(format!(
                    "active alert {id} names assignee {:?}",
                    alert.assignee
                ));
            }
            _ => {}
        }
        if (alert.status == AlertStatus::Active) != unassigned.contains(&id.get()) {
            return Err(format!(
                "alert {id} ({}) is wrongly (not) in the unassigned index",
                alert.status.name()
            ));
        }
    }
    for id in holders.keys() {
        if !alerts.iter().any(|(a, _)| a == id) {
            return Err(format!(
                "an employee holds alert {id}, which does not exist"
            ));
        }
    }
    Ok(())
}
