//! `ApiError`: every way a request can fail, mapped to a status code in one place.
//! Every error answers JSON `{"error": "..."}`.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::{Rejection, Reply};

use crate::alerts::RequestError;
use crate::alerts::store::AlertError;
use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Internal(String),
}

impl Reject for ApiError {}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Storage { io: true, message } => ApiError::Unavailable(format!(
                "the database cannot write right now ({message}); try again later"
            )),
            EngineError::ShuttingDown | EngineError::WriterGone => ApiError::Unavailable(
                "the alert center is shutting down; try again in a moment".into(),
            ),
            EngineError::Timeout { .. } => ApiError::Timeout(e.to_string()),
            EngineError::NotFound(_) => ApiError::NotFound(e.to_string()),
            EngineError::InvalidState(_) => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Refused(AlertError::NoAssignment(name)) => {
                ApiError::Conflict(format!("{name} has no assignment right now"))
            }
            RequestError::Refused(e @ AlertError::IdsExhausted) => {
                ApiError::Unavailable(e.to_string())
            }
            RequestError::Refused(e @ AlertError::Storage(_)) => ApiError::Internal(e.to_string()),
            RequestError::Engine(e) => e.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

pub fn json_error(status: StatusCode, message: &str) -> warp::reply::Response {
    warp::reply::with_status(warp::reply::json(&ErrorBody { error: message }), status)
        .into_response()
}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        json_error(self.status(), &self.to_string())
    }
}

/// Turns every rejection into a JSON error with the right status: unknown routes 404,
/// wrong methods 405, oversized bodies 413, malformed JSON or queries 400.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    if let Some(e) = rejection.find::<ApiError>() {
        return Ok(json_error(e.status(), &e.to_string()));
    }
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such route".to_string())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is too large (at most 16 KiB)".to_string(),
        )
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        (
            StatusCode::BAD_REQUEST,
            format!("request body is not the expected JSON: {e}"),
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        (
            StatusCode::BAD_REQUEST,
            format!("query string is malformed: {e}"),
        )
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request body must be JSON (Content-Type: application/json)".to_string(),
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "a Content-Length header is required".to_string(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route".to_string(),
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else {
        tracing::debug!(?rejection, "unhandled rejection");
        (StatusCode::BAD_REQUEST, "bad request".to_string())
    };
    Ok(json_error(status, &message))
}
