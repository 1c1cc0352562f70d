//! What an operator uses: health, readiness, Prometheus metrics, and workflow
//! management with the paths of the DBOS admin API. Errors are JSON with a message.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use warp::Reply;
use warp::http::StatusCode;
use warp::reply::{Response, json, with_status};

use super::handlers::{answer, parse_limit, parse_query};
use super::{ApiError, HttpState};
use crate::engine::{EngineError, ListFilter, WorkflowStatus};
use crate::telemetry::metric;

pub fn healthz() -> Response {
    "ok".into_response()
}

/// 200 when the database takes a write and the Kafka intake is consuming; otherwise 503
/// with the reasons.
pub async fn readyz(state: HttpState) -> Response {
    let mut problems = Vec::new();
    let writable = state
        .center
        .engine()
        .transact(|_| Ok::<(), EngineError>(()))
        .await;
    if let Err(e) | Ok(Err(e)) = writable {
        problems.push(format!("database is not writable: {e}"));
    }
    if let Some(ops) = &state.ops {
        if ops.broker.is_down() {
            problems.push("Kafka broker is unreachable".to_string());
        }
        if !ops.intake.running.load(Ordering::SeqCst) {
            problems.push("Kafka intake is not consuming".to_string());
        }
    }
    if problems.is_empty() {
        json(&serde_json::json!({"ready": true})).into_response()
    } else {
        with_status(
            json(&serde_json::json!({"ready": false, "error": problems.join("; ")})),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response()
    }
}

pub async fn metrics(state: HttpState) -> Response {
    let engine = state.center.engine();
    if let Ok(pending) = engine.pending_count() {
        metrics::gauge!(metric::WORKFLOWS_PENDING).set(pending as f64);
    }
    metrics::gauge!(metric::WORKFLOWS_ACTIVE).set(engine.active_workflows() as f64);
    let body = state
        .ops
        .as_ref()
        .and_then(|ops| ops.metrics.as_ref())
        .map(|handle| handle.render())
        .unwrap_or_default();
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
            .parse()
            .expect("static header"),
    );
    response
}

/// Decodes a `%XX`-escaped path segment (workflow ids may hold spaces and more).
pub fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::BadRequest(format!("bad %-escape in {segment:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::BadRequest(format!("{segment:?} is not UTF-8 once decoded")))
}

fn parse_ms(query: &HashMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    let Some(raw) = query.get(key) else {
        return Ok(None);
    };
    if let Ok(ms) = raw.parse::<u64>() {
        return Ok(Some(ms));
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| Some(t.timestamp_millis().max(0) as u64))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{key} must be ms since the epoch or an RFC 3339 time, not {raw:?}"
            ))
        })
}

pub async fn list_workflows(query: String, state: HttpState) -> Response {
    answer((|| {
        let query = parse_query(&query)?;
        let status = query
            .get("status")
            .map(|s| s.parse::<WorkflowStatus>())
            .transpose()
            .map_err(ApiError::BadRequest)?;
        let limit = parse_limit(&query)?;
        let filter = ListFilter {
            status,
            name: query.get("name").cloned(),
            created_from_ms: parse_ms(&query, "start_time")?.or(parse_ms(&query, "from")?),
            created_until_ms: parse_ms(&query, "end_time")?.or(parse_ms(&query, "until")?),
            limit,
        };
        Ok(json(&state.center.engine().list(&filter)?).into_response())
    })())
}

pub async fn get_workflow(id: String, state: HttpState) -> Response {
    answer((|| {
        let id = percent_decode(&id)?;
        Ok(json(&state.center.engine().get(&id)?).into_response())
    })())
}

pub async fn workflow_steps(id: String, state: HttpState) -> Response {
    answer((|| {
        let id = percent_decode(&id)?;
        Ok(json(&state.center.engine().steps(&id)?).into_response())
    })())
}

pub async fn cancel_workflow(id: String, state: HttpState) -> Response {
    answer(
        async {
            let id = percent_decode(&id)?;
            let status = state.center.engine().cancel(&id).await?;
            Ok(json(&serde_json::json!({"workflow_id": id, "status": status})).into_response())
        }
        .await,
    )
}

pub async fn resume_workflow(id: String, state: HttpState) -> Response {
    answer(
        async {
            let id = percent_decode(&id)?;
            let status = state.center.engine().resume(&id).await?;
            Ok(json(&serde_json::json!({"workflow_id": id, "status": status})).into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("assign-ann%20lee-1").unwrap(),
            "assign-ann lee-1"
        );
        assert_eq!(percent_decode("J%C3%BCrgen").unwrap(), "Jürgen");
        assert!(percent_decode("bad%zz").is_err());
        assert!(percent_decode("cut%2").is_err());
        assert!(percent_decode("%ff").is_err());
    }
}
