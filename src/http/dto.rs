//! Wire types, compatible with the original app so its page and scripts keep working.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::alerts::AssignmentView;
use crate::alerts::model::{AlertId, AlertRecord};
use crate::alerts::rules;
use crate::kafka::ledger::DeadLetter;

#[derive(Debug, Serialize)]
pub struct AlertDto {
    pub alert_id: u64,
    pub alert_status: u8,
    pub message: String,
    pub employee_name: Option<String>,
}

impl AlertDto {
    pub fn new(id: AlertId, alert: &AlertRecord) -> AlertDto {
        AlertDto {
            alert_id: id.get(),
            alert_status: alert.status.code(),
            message: alert.message.clone(),
            employee_name: alert.assignee.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EmployeeDto {
    pub employee_name: String,
    pub alert_id: Option<u64>,
    /// ISO 8601, as the original app's JSON dates.
    pub expiration: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AssignmentDto {
    pub employee: EmployeeDto,
    pub alert: Vec<AlertDto>,
    #[serde(rename = "newAssignment")]
    pub new_assignment: bool,
    #[serde(rename = "expirationSecs")]
    pub expiration_secs: Option<f64>,
}

pub fn iso_ms(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<&AssignmentView> for AssignmentDto {
    fn from(view: &AssignmentView) -> AssignmentDto {
        let a = &view.assignment;
        let alert = match (a.lease, &a.alert) {
            (Some(lease), Some(alert)) => vec![AlertDto::new(lease.alert_id, alert)],
            _ => Vec::new(),
        };
        AssignmentDto {
            employee: EmployeeDto {
                employee_name: a.employee.to_string(),
                alert_id: a.lease.map(|l| l.alert_id.get()),
                expiration: a.lease.map(|l| iso_ms(l.expires_at_ms)),
            },
            alert,
            new_assignment: a.new_assignment,
            expiration_secs: a
                .lease
                .map(|l| rules::seconds_left(l.expires_at_ms, view.now_ms)),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NameBody {
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct SendBody {
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct SentDto {
    pub workflow_id: String,
    pub alert_id: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct DeadLetterDto {
    pub id: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
    /// The first KiB of the message, as text (invalid UTF-8 replaced).
    pub raw: String,
    pub raw_bytes: usize,
    pub at: String,
}

impl DeadLetterDto {
    pub fn new(id: u64, letter: DeadLetter) -> DeadLetterDto {
        DeadLetterDto {
            id,
            raw: String::from_utf8_lossy(&letter.raw).into_owned(),
            raw_bytes: letter.raw_len,
            at: iso_ms(letter.at_ms),
            topic: letter.topic,
            partition: letter.partition,
            offset: letter.offset,
            reason: letter.reason,
        }
    }
}
