//! The HTTP API (warp), compatible with the original app, plus live updates (SSE) and
//! the embedded page. Handlers parse at the edge and call [`AlertCenter`]; no domain
//! rule lives here. Every failure is an [`error::ApiError`] with its status code.

mod dto;
mod error;
mod events;
mod handlers;
mod page;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::Filter;
use warp::reply::Response;

use crate::alerts::AlertCenter;

pub use error::ApiError;

/// Largest request body accepted.
pub const BODY_BYTES_MAX: u64 = 16 * 1024;

/// What the handlers need. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub center: AlertCenter,
    /// "Crash the Application": kills the process the way `kill -9` would.
    pub crash: Arc<dyn Fn() + Send + Sync>,
}

/// Serves on `listener` until `shutdown` completes; requests in progress then finish.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}

fn json_body<T: serde::de::DeserializeOwned + Send>()
-> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(BODY_BYTES_MAX).and(warp::body::json())
}

/// Every route, with errors turned into JSON answers.
pub fn routes(
    state: HttpState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with = warp::any().map(move || state.clone());
    let idempotency_key = warp::header::optional::<String>("idempotency-key");

    let assignment = warp::path!("assignment")
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with.clone())
        .then(handlers::assignment);
    let history = warp::path!("alert_history")
        .and(warp::get())
        .and(with.clone())
        .then(handlers::history);
    let fixed = warp::path!("respond" / "fixed")
        .and(warp::post())
        .and(json_body())
        .and(with.clone())
        .then(handlers::fixed);
    let cancel = warp::path!("respond" / "cancel")
        .and(warp::post())
        .and(json_body())
        .and(with.clone())
        .then(handlers::log_out);
    let more_time = warp::path!("respond" / "more_time")
        .and(warp::post())
        .and(json_body())
        .and(with.clone())
        .then(handlers::more_time);
    let send = warp::path!("do_send")
        .and(warp::post())
        .and(json_body())
        .and(idempotency_key)
        .and(with.clone())
        .then(handlers::send);
    let clean = warp::path!("dashboard" / "cleanalerts")
        .and(warp::post())
        .and(with.clone())
        .then(handlers::clean);
    let crash = warp::path!("crash_application")
        .and(warp::post())
        .and(with.clone())
        .then(handlers::crash);
    let dead_letters = warp::path!("dead_letters")
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(with.clone())
        .then(handlers::dead_letters);
    let healthz = warp::path!("healthz").and(warp::get()).map(|| {
        use warp::Reply;
        "ok".into_response()
    });
    let live = warp::path!("events")
        .and(warp::get())
        .and(with.clone())
        .map(events::stream);

    assignment
        .or(history)
        .unify()
        .or(fixed)
        .unify()
        .or(cancel)
        .unify()
        .or(more_time)
        .unify()
        .or(send)
        .unify()
        .or(clean)
        .unify()
        .or(crash)
        .unify()
        .or(dead_letters)
        .unify()
        .or(healthz)
        .unify()
        .or(live)
        .unify()
        .or(page::routes())
        .unify()
        .recover(error::recover)
        .unify()
}
