//! Domain types, parsed at the edge: inside the app nothing is a bare string that
//! could be invalid.

use serde::{Deserialize, Serialize};

/// Largest alert id: ids were Postgres `integer`s in the original app, and pages and
/// scripts written for it expect them to fit in 31 bits.
pub const ALERT_ID_MAX: u64 = i32::MAX as u64;

/// Longest alert message, in characters.
pub const MESSAGE_CHARS_MAX: usize = 1000;

/// Longest employee name, in characters.
pub const NAME_CHARS_MAX: usize = 64;

/// An alert id, 1..=[`ALERT_ID_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(u64);

impl AlertId {
    pub fn new(id: u64) -> Result<AlertId, String> {
        if (1..=ALERT_ID_MAX).contains(&id) {
            Ok(AlertId(id))
        } else {
            Err(format!(
                "alert id {id} is out of range (1..={ALERT_ID_MAX})"
            ))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for AlertId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Status codes as the original app stored them (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertStatus {
    Active,
    Assigned,
    Resolved,
}

impl AlertStatus {
    pub fn code(self) -> u8 {
        match self {
            AlertStatus::Active => 0,
            AlertStatus::Assigned => 1,
            AlertStatus::Resolved => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AlertStatus::Active => "ACTIVE",
            AlertStatus::Assigned => "ASSIGNED",
            AlertStatus::Resolved => "RESOLVED",
        }
    }
}

/// An employee name: trimmed, 1..=64 characters, each a letter or digit of any script,
/// a space, `.`, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmployeeName(String);

impl EmployeeName {
    pub fn parse(raw: &str) -> Result<EmployeeName, String> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err("name is empty".to_string());
        }
        if chars > NAME_CHARS_MAX {
            return Err(format!(
                "name is {chars} characters long; at most {NAME_CHARS_MAX} are allowed"
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_')))
        {
            return Err(format!(
                "name contains {bad:?}; only letters, digits, spaces, '.', '-' and '_' are allowed"
            ));
        }
        Ok(EmployeeName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EmployeeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An alert message: 1..=[`MESSAGE_CHARS_MAX`] characters after trimming, with no
/// control character but tabs and line breaks (a NUL or a terminal escape sequence in
/// an alert is hostile input, not text to show an employee or write to a log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertMessage(String);

impl AlertMessage {
    pub fn parse(raw: &str) -> Result<AlertMessage, String> {
        let message = raw.trim();
        let chars = message.chars().count();
        if chars == 0 {
            return Err("message is empty".to_string());
        }
        if chars > MESSAGE_CHARS_MAX {
            return Err(format!(
                "message is {chars} characters long; at most {MESSAGE_CHARS_MAX} are allowed"
            ));
        }
        if let Some(bad) = message
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(format!(
                "message contains the control character U+{:04X}; only text, tabs and line breaks are allowed",
                bad as u32
            ));
        }
        Ok(AlertMessage(message.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An alert as it arrives (from Kafka or from a send): the id may be left to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAlert {
    pub id: Option<AlertId>,
    pub status: AlertStatus,
    pub message: AlertMessage,
}

/// One alert, as stored in `tables::ALERTS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub status: AlertStatus,
    pub message: String,
    pub assignee: Option<String>,
    pub created_at_ms: u64,
}

/// One employee, as stored in `tables::EMPLOYEES`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmployeeRecord {
    pub lease: Option<Lease>,
}

/// An employee's hold on an alert until `expires_at_ms`. The lease id ties a watcher
/// workflow to this one lease, so a later lease on the same alert is not confused
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: u64,
    pub alert_id: AlertId,
    pub expires_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            EmployeeName::parse("  Ann-Marie_2.0 ").unwrap().as_str(),
            "Ann-Marie_2.0"
        );
        assert_eq!(
            EmployeeName::parse("Jürgen Ødegård").unwrap().as_str(),
            "Jürgen Ødegård"
        );
        assert_eq!(
            EmployeeName::parse("山田 太郎").unwrap().as_str(),
            "山田 太郎"
        );
        assert!(EmployeeName::parse("   ").unwrap_err().contains("empty"));
        assert!(EmployeeName::parse("<script>").unwrap_err().contains("'<'"));
        assert!(EmployeeName::parse("a/b").is_err());
        assert!(EmployeeName::parse("tab\there").is_err());
        assert!(EmployeeName::parse(&"x".repeat(64)).is_ok());
        assert!(
            EmployeeName::parse(&"é".repeat(65))
                .unwrap_err()
                .contains("65 characters")
        );
    }

    #[test]
    fn messages_and_ids_are_bounded() {
        assert!(AlertMessage::parse("").is_err());
        assert!(AlertMessage::parse(&"m".repeat(1000)).is_ok());
        assert!(AlertMessage::parse(&"m".repeat(1001)).is_err());
        assert!(AlertId::new(0).is_err());
        assert!(AlertId::new(ALERT_ID_MAX).is_ok());
        assert!(AlertId::new(ALERT_ID_MAX + 1).is_err());
    }

    #[test]
    fn messages_keep_tabs_and_line_breaks_but_no_other_control_character() {
        assert!(AlertMessage::parse("disk full\n\tat /var\r\n").is_ok());
        for hostile in [
            "a\u{0}b",
            "\u{1b}[2Jcleared",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}next line",
        ] {
            let reason = AlertMessage::parse(hostile).unwrap_err();
            assert!(
                reason.contains("control character U+"),
                "{hostile:?}: {reason}"
            );
        }
    }
}
