//! Request handlers: parse, call the alert center, shape the answer.

use std::collections::HashMap;

use warp::Reply;
use warp::http::StatusCode;
use warp::reply::{Response, json, with_status};

use super::dto::{AlertDto, AssignmentDto, DeadLetterDto, NameBody, SendBody, SentDto};
use super::{ApiError, HttpState};
use crate::alerts::model::{AlertMessage, EmployeeName};
use crate::kafka::ledger;

pub(super) fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| e.into_response())
}

pub(super) fn parse_query(raw: &str) -> Result<HashMap<String, String>, ApiError> {
    serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::BadRequest(format!("query string is malformed: {e}")))
}

/// `limit=N` of a listing: 1..=10000, 100 when absent.
pub(super) fn parse_limit(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    let Some(raw) = query.get("limit") else {
        return Ok(100);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| ApiError::BadRequest(format!("limit must be 1..=10000, not {raw:?}")))
}

fn parse_name(raw: Option<&str>) -> Result<EmployeeName, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::BadRequest("name is missing".into()))?;
    EmployeeName::parse(raw).map_err(ApiError::BadRequest)
}

fn parse_flag(raw: Option<&str>, what: &str) -> Result<bool, ApiError> {
    match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{what} must be true or false, not {other:?}"
        ))),
    }
}

pub async fn assignment(query: String, state: HttpState) -> Response {
    answer(
        async {
            let query = parse_query(&query)?;
            let name = parse_name(query.get("name").map(String::as_str))?;
            let more_time = parse_flag(query.get("more_time").map(String::as_str), "more_time")?;
            let view = state.center.assignment(&name, more_time).await?;
            Ok(json(&AssignmentDto::from(&view)).into_response())
        }
        .await,
    )
}

pub async fn history(state: HttpState) -> Response {
    answer(
        async {
            let alerts = state.center.history()?;
            let dto: Vec<_> = alerts.iter().map(|(id, a)| AlertDto::new(*id, a)).collect();
            Ok(json(&dto).into_response())
        }
        .await,
    )
}

pub async fn fixed(body: NameBody, state: HttpState) -> Response {
    answer(
        async {
            let name = parse_name(Some(&body.name))?;
            let id = state.center.fixed(&name).await?;
            Ok(json(&serde_json::json!({"alert_id": id.get(), "alert_status": 2})).into_response())
        }
        .await,
    )
}

pub async fn log_out(body: NameBody, state: HttpState) -> Response {
    answer(
        async {
            let name = parse_name(Some(&body.name))?;
            let id = state.center.log_out(&name).await?;
            Ok(json(&serde_json::json!({"alert_id": id.get(), "released": true})).into_response())
        }
        .await,
    )
}

pub async fn more_time(body: NameBody, state: HttpState) -> Response {
    answer(
        async {
            let name = parse_name(Some(&body.name))?;
            let view = state.center.more_time(&name).await?;
            Ok(json(&AssignmentDto::from(&view)).into_response())
        }
        .await,
    )
}

/// Longest `Idempotency-Key` accepted.
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 200;

pub async fn send(body: SendBody, key: Option<String>, state: HttpState) -> Response {
    answer(async {
        let message = AlertMessage::parse(&body.message).map_err(ApiError::BadRequest)?;
        if let Some(key) = &key {
            let ok = (1..=IDEMPOTENCY_KEY_CHARS_MAX).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(ApiError::BadRequest(format!(
                    "Idempotency-Key must be 1..={IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters"
                )));
            }
        }
        let sent = state.center.send(message, key.as_deref()).await?;
        let status = if sent.alert_id.is_some() { StatusCode::OK } else { StatusCode::ACCEPTED };
        let dto = SentDto {
            workflow_id: sent.workflow_id,
            alert_id: sent.alert_id.map(|id| id.get()),
        };
        Ok(with_status(json(&dto), status).into_response())
    }
    .await)
}

pub async fn clean(state: HttpState) -> Response {
    answer(
        async {
            let deleted = state.center.clean().await?;
            Ok(json(&serde_json::json!({"deleted": deleted})).into_response())
        }
        .await,
    )
}

pub async fn crash(state: HttpState) -> Response {
    tracing::warn!("crash requested over HTTP: the process dies now, as with kill -9");
    // Let the answer leave first, so the page knows the crash was on purpose.
    let crash = state.crash.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        crash();
    });
    with_status(
        json(&serde_json::json!({"crashing": true})),
        StatusCode::ACCEPTED,
    )
    .into_response()
}

pub async fn dead_letters(query: String, state: HttpState) -> Response {
    answer(
        async {
            let query = parse_query(&query)?;
            let limit = parse_limit(&query)?;
            let read = state
                .center
                .engine()
                .store()
                .begin_read()
                .map_err(crate::engine::EngineError::from)?;
            let letters = ledger::dead_letters(&read, limit)?;
            let dto: Vec<_> = letters
                .into_iter()
                .map(|(id, l)| DeadLetterDto::new(id, l))
                .collect();
            Ok(json(&dto).into_response())
        }
        .await,
    )
}
