//! The HTTP API (warp), compatible with the original app, plus live updates (SSE) and
//! the embedded page. Handlers parse at the edge and call [`AlertCenter`]; no domain
//! rule lives here. Every failure is an [`error::ApiError`] with its status code.

mod dto;
mod error;
mod events;
mod handlers;
mod ops;
mod page;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::alerts::AlertCenter;
use crate::kafka::health::BrokerHealth;
use crate::kafka::intake::IntakeStats;

pub use error::ApiError;

/// Largest request body accepted.
pub const BODY_BYTES_MAX: u64 = 16 * 1024;

/// What the handlers need. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub center: AlertCenter,
    /// "Crash the Application": kills the process the way `kill -9` would.
    pub crash: Arc<dyn Fn() + Send + Sync>,
    /// What readiness and metrics report on; None in tests that run no intake.
    pub ops: Option<Ops>,
}

/// The running parts an operator asks about.
#[derive(Clone)]
pub struct Ops {
    pub intake: Arc<IntakeStats>,
    pub broker: Arc<BrokerHealth>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
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

type Route = BoxedFilter<(Response,)>;

fn query_string() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Every route, with errors turned into JSON answers. Each route is boxed before they
/// are joined: warp's nested filter types otherwise make compile times explode.
pub fn routes(
    state: HttpState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with = warp::any().map(move || state.clone());
    let idempotency_key = warp::header::optional::<String>("idempotency-key");
    let all: Vec<Route> = vec![
        warp::path!("assignment")
            .and(warp::get())
            .and(query_string())
            .and(with.clone())
            .then(handlers::assignment)
            .boxed(),
        warp::path!("alert_history")
            .and(warp::get())
            .and(with.clone())
            .then(handlers::history)
            .boxed(),
        warp::path!("respond" / "fixed")
            .and(warp::post())
            .and(json_body())
            .and(with.clone())
            .then(handlers::fixed)
            .boxed(),
        warp::path!("respond" / "cancel")
            .and(warp::post())
            .and(json_body())
            .and(with.clone())
            .then(handlers::log_out)
            .boxed(),
        warp::path!("respond" / "more_time")
            .and(warp::post())
            .and(json_body())
            .and(with.clone())
            .then(handlers::more_time)
            .boxed(),
        warp::path!("do_send")
            .and(warp::post())
            .and(json_body())
            .and(idempotency_key)
            .and(with.clone())
            .then(handlers::send)
            .boxed(),
        warp::path!("dashboard" / "cleanalerts")
            .and(warp::post())
            .and(with.clone())
            .then(handlers::clean)
            .boxed(),
        warp::path!("crash_application")
            .and(warp::post())
            .and(with.clone())
            .then(handlers::crash)
            .boxed(),
        warp::path!("dead_letters")
            .and(warp::get())
            .and(query_string())
            .and(with.clone())
            .then(handlers::dead_letters)
            .boxed(),
        warp::path!("events")
            .and(warp::get())
            .and(with.clone())
            .map(events::stream)
            .boxed(),
        warp::path!("healthz")
            .and(warp::get())
            .map(ops::healthz)
            .boxed(),
        warp::path!("readyz")
            .and(warp::get())
            .and(with.clone())
            .then(ops::readyz)
            .boxed(),
        warp::path!("metrics")
            .and(warp::get())
            .and(with.clone())
            .then(ops::metrics)
            .boxed(),
        warp::path!("workflows")
            .and(warp::get())
            .and(query_string())
            .and(with.clone())
            .then(ops::list_workflows)
            .boxed(),
        warp::path!("workflows" / String)
            .and(warp::get())
            .and(with.clone())
            .then(ops::get_workflow)
            .boxed(),
        warp::path!("workflows" / String / "steps")
            .and(warp::get())
            .and(with.clone())
            .then(ops::workflow_steps)
            .boxed(),
        warp::path!("workflows" / String / "cancel")
            .and(warp::post())
            .and(with.clone())
            .then(ops::cancel_workflow)
            .boxed(),
        warp::path!("workflows" / String / "resume")
            .and(warp::post())
            .and(with.clone())
            .then(ops::resume_workflow)
            .boxed(),
        page::routes().boxed(),
    ];
    let joined = all
        .into_iter()
        .reduce(|a, b| a.or(b).unify().boxed())
        .expect("at least one route");
    joined.recover(error::recover).unify()
}
