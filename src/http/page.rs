//! The page, embedded in the binary: it works offline, with no CDN.

use warp::Filter;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::reply::Response;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const CONSOLE_HTML: &str = include_str!("../../web/console.html");
const CONSOLE_JS: &str = include_str!("../../web/console.js");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type.parse().expect("static header"));
    headers.insert(CACHE_CONTROL, "no-cache".parse().expect("static header"));
    response
}

/// The path is matched before the method, so that a POST to an unknown path is a 404,
/// not a 405.
pub fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let index = warp::path::end()
        .and(warp::get())
        .map(|| asset(INDEX_HTML, "text/html; charset=utf-8"));
    let app = warp::path!("app.js")
        .and(warp::get())
        .map(|| asset(APP_JS, "text/javascript; charset=utf-8"));
    let style = warp::path!("style.css")
        .and(warp::get())
        .map(|| asset(STYLE_CSS, "text/css; charset=utf-8"));
    let console = warp::path!("console")
        .and(warp::get())
        .map(|| asset(CONSOLE_HTML, "text/html; charset=utf-8"));
    let console_js = warp::path!("console.js")
        .and(warp::get())
        .map(|| asset(CONSOLE_JS, "text/javascript; charset=utf-8"));
    index
        .or(app)
        .unify()
        .or(style)
        .unify()
        .or(console)
        .unify()
        .or(console_js)
        .unify()
}
