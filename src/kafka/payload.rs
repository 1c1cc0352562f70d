//! The wire format of alert messages, parsed at the edge: bytes in, domain alerts or a
//! reason out. Every way a payload can be wrong has a reason, and never a panic.

use serde::{Deserialize, Serialize};

use crate::alerts::model::{AlertId, AlertMessage, AlertStatus, NewAlert};

/// Largest payload the intake accepts.
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// Most alerts in one message.
pub const ALERTS_PER_MESSAGE_MAX: usize = 1000;

#[derive(Deserialize)]
struct WirePayload {
    alerts: Vec<WireAlert>,
}

#[derive(Deserialize)]
struct WireAlert {
    #[serde(default)]
    alert_id: Option<u64>,
    #[serde(default)]
    alert_status: Option<u64>,
    message: String,
}

#[derive(Serialize)]
struct OutPayload<'a> {
    alerts: [OutAlert<'a>; 1],
}

#[derive(Serialize)]
struct OutAlert<'a> {
    alert_id: u64,
    alert_status: u8,
    message: &'a str,
}

/// Turns a message value into alerts, or says exactly why it cannot.
pub fn parse(value: Option<&[u8]>) -> Result<Vec<NewAlert>, String> {
    let bytes = value.ok_or("message has no value (a tombstone)")?;
    if bytes.is_empty() {
        return Err("message is empty".to_string());
    }
    if bytes.len() > PAYLOAD_BYTES_MAX {
        return Err(format!(
            "message is {} bytes; at most {PAYLOAD_BYTES_MAX} are accepted",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("message is not UTF-8 (invalid byte at {})", e.valid_up_to()))?;
    let payload: WirePayload =
        serde_json::from_str(text).map_err(|e| format!("message is not an alert payload: {e}"))?;
    if payload.alerts.is_empty() {
        return Err("message has no alerts (\"alerts\" is empty)".to_string());
    }
    if payload.alerts.len() > ALERTS_PER_MESSAGE_MAX {
        return Err(format!(
            "message has {} alerts; at most {ALERTS_PER_MESSAGE_MAX} are accepted",
            payload.alerts.len()
        ));
    }
    payload
        .alerts
        .into_iter()
        .enumerate()
        .map(|(i, alert)| to_domain(alert).map_err(|e| format!("alert {i}: {e}")))
        .collect()
}

fn to_domain(alert: WireAlert) -> Result<NewAlert, String> {
    let id = alert.alert_id.map(AlertId::new).transpose()?;
    let status = match alert.alert_status.unwrap_or(0) {
        0 => AlertStatus::Active,
        2 => AlertStatus::Resolved,
        1 => {
            return Err(
                "alert_status 1 (ASSIGNED) cannot arrive from Kafka: the app assigns alerts".into(),
            );
        }
        other => {
            return Err(format!(
                "alert_status {other} is not 0 (ACTIVE) or 2 (RESOLVED)"
            ));
        }
    };
    Ok(NewAlert {
        id,
        status,
        message: AlertMessage::parse(&alert.message)?,
    })
}

/// The payload that publishes one alert, as the original app's send did.
pub fn encode(id: AlertId, status: AlertStatus, message: &AlertMessage) -> Vec<u8> {
    let payload = OutPayload {
        alerts: [OutAlert {
            alert_id: id.get(),
            alert_status: status.code(),
            message: message.as_str(),
        }],
    };
    serde_json::to_vec(&payload).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(bytes: &[u8]) -> String {
        parse(Some(bytes)).unwrap_err()
    }

    #[test]
    fn the_original_payload_parses() {
        let alerts = parse(Some(
            br#"{"alerts":[{"alert_id":7,"alert_status":0,"message":"disk full"}]}"#,
        ))
        .unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].id, Some(AlertId::new(7).unwrap()));
        assert_eq!(alerts[0].message.as_str(), "disk full");
        let alerts = parse(Some(br#"{"alerts":[{"message":"no id"}],"extra":1}"#)).unwrap();
        assert_eq!(alerts[0].id, None);
        assert_eq!(alerts[0].status, AlertStatus::Active);
    }

    #[test]
    fn every_bad_payload_has_a_reason() {
        assert!(parse(None).unwrap_err().contains("tombstone"));
        assert!(reason(b"").contains("empty"));
        assert!(reason(b"\xff\xfe{}").contains("not UTF-8"));
        assert!(reason(b"not json").contains("not an alert payload"));
        assert!(reason(b"[1,2]").contains("not an alert payload"));
        assert!(reason(br#"{"alerts":[]}"#).contains("no alerts"));
        assert!(reason(br#"{"alerts":[{"alert_id":"5","message":"x"}]}"#).contains("invalid type"));
        assert!(reason(br#"{"alerts":[{"alert_id":5}]}"#).contains("missing field `message`"));
        assert!(
            reason(br#"{"alerts":[{"alert_id":null,"message":null}]}"#)
                .contains("invalid type: null")
        );
        assert!(
            reason(br#"{"alerts":[{"alert_id":99999999999999999999999,"message":"x"}]}"#)
                .contains("not an alert payload")
        );
        assert!(
            reason(br#"{"alerts":[{"alert_id":-1,"message":"x"}]}"#)
                .contains("not an alert payload")
        );
        assert!(reason(br#"{"alerts":[{"alert_id":0,"message":"x"}]}"#).contains("out of range"));
        assert!(
            reason(br#"{"alerts":[{"alert_id":4294967296,"message":"x"}]}"#)
                .contains("out of range")
        );
        assert!(reason(br#"{"alerts":[{"alert_status":1,"message":"x"}]}"#).contains("ASSIGNED"));
        assert!(reason(br#"{"alerts":[{"alert_status":9,"message":"x"}]}"#).contains("not 0"));
        assert!(reason(br#"{"alerts":[{"message":""}]}"#).contains("message is empty"));
        let long = format!(r#"{{"alerts":[{{"message":"{}"}}]}}"#, "m".repeat(1001));
        assert!(reason(long.as_bytes()).contains("1001 characters"));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(reason(deep.as_bytes()).contains("not an alert payload"));
        // Nesting as deep as the size limit allows, in a field the parser skips: parsed
        // (unknown fields are ignored), and no stack overflow.
        let depth = PAYLOAD_BYTES_MAX / 2 - 64;
        let nested = format!(
            r#"{{"alerts":[{{"message":"x","extra":{}{}}}]}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert_eq!(parse(Some(nested.as_bytes())).unwrap().len(), 1);
        assert!(reason(&vec![b' '; PAYLOAD_BYTES_MAX + 1]).contains("at most"));
        let many = format!(
            r#"{{"alerts":[{}]}}"#,
            vec![r#"{"message":"m"}"#; 1001].join(",")
        );
        assert!(reason(many.as_bytes()).contains("1001 alerts"));
    }

    proptest::proptest! {
        /// Random bytes never panic: they parse or get a reason, and a reason is one line.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            if let Err(reason) = parse(Some(&bytes)) {
                proptest::prop_assert!(!reason.is_empty());
            }
        }

        /// Payloads of the right shape with random field values parse or are refused
        /// with a reason, never a panic.
        #[test]
        fn random_field_values_never_panic(
            id in proptest::option::of(proptest::num::i128::ANY),
            status in proptest::option::of(proptest::num::i64::ANY),
            message in ".{0,1200}",
        ) {
            let mut alert = serde_json::json!({ "message": message });
            if let Some(id) = id {
                alert["alert_id"] = serde_json::Value::from(id as f64);
            }
            if let Some(status) = status {
                alert["alert_status"] = serde_json::Value::from(status);
            }
            let bytes = serde_json::to_vec(&serde_json::json!({ "alerts": [alert] })).unwrap();
            match parse(Some(&bytes)) {
                Ok(alerts) => proptest::prop_assert_eq!(alerts.len(), 1),
                Err(reason) => proptest::prop_assert!(!reason.is_empty()),
            }
        }
    }

    #[test]
    fn encoded_payloads_parse_back() {
        let message = AlertMessage::parse("quote \" and <tag>").unwrap();
        let id = AlertId::new(42).unwrap();
        let alerts = parse(Some(&encode(id, AlertStatus::Active, &message))).unwrap();
        assert_eq!(alerts[0].id, Some(id));
        assert_eq!(alerts[0].message, message);
    }
}
