//! Property-based hostile input over HTTP (proptest), against the real binary: random
//! employee names, random bodies with random content types, random paths (traversal
//! attempts among them) with random methods, and random query strings. Every answer is
//! below 500, every error is `{"error": "..."}`, the server stays healthy, and the
//! invariants hold on the file afterwards. Stronger properties where the answer is
//! known: a name is accepted exactly when `EmployeeName::parse` accepts it, and a page
//! served is always one of the embedded `web/` files.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use alert_center::alerts::model::EmployeeName;

use super::*;

/// Cases per property: each is one to four requests to a debug build.
const CASES: u32 = 400;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        // No regression files in the tree: the failing input is in the panic message.
        failure_persistence: None,
        ..Config::default()
    })
}

/// Names: valid ones, printable Unicode, anything at all (controls, NUL, surrogate
/// escapes are impossible in a `String` but lone combining marks are not), long ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9 ._-]{1,40}",
        "\\PC{0,60}",
        any::<String>(),
        "[a-z]{100,300}",
        Just(String::new()),
        Just("   ".to_string()),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof!["name", "message", "alerts", "\\PC{0,8}"],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: JSON of any shape, JSON objects with the fields the routes read, or bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (json_value(), json_value()).prop_map(|(name, message)| {
            serde_json::to_vec(&json!({"name": name, "message": message})).unwrap()
        }),
        prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(Some("application/json")),
        Just(Some("application/json; charset=latin1")),
        Just(Some("text/plain")),
        Just(Some("application/x-www-form-urlencoded")),
        Just(Some("nonsense")),
        Just(None),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::PATCH),
        Just(Method::OPTIONS),
        Just(Method::HEAD),
    ]
}

/// Paths built from pieces of real routes, traversal attempts and encodings. No piece
/// makes `/crash_application` or `/events`, which crash the process or stream for ever,
/// by design.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just(".."),
        Just("%2e%2e"),
        Just("%2E%2E%2F"),
        Just("..%2f"),
        Just("%252e%252e"),
        Just("."),
        Just(""),
        Just("%00"),
        Just("etc"),
        Just("passwd"),
        Just("Cargo.toml"),
        Just("src"),
        Just("web"),
        Just("index.html"),
        Just("app.js"),
        Just("style.css"),
        Just("console"),
        Just("console.js"),
        Just("workflows"),
        Just("respond"),
        Just("alert_history"),
        Just("dead_letters"),
        Just("~"),
        Just("%ZZ"),
    ];
    prop::collection::vec(segment, 1..6).prop_map(|parts| format!("/{}", parts.join("/")))
}

/// Below 500; a 4xx carries `{"error": "..."}`.
fn check_answer(answer: &Answer) -> Result<(), TestCaseError> {
    prop_assert!(
        answer.status.as_u16() < 500,
        "{}: {} {}",
        answer.what,
        answer.status,
        answer.body
    );
    if answer.status.is_client_error() && !answer.what.starts_with("HEAD") {
        answer.error();
    }
    Ok(())
}

#[test]
fn random_names_are_accepted_exactly_when_valid() {
    let mut app = spawn_app();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api::of(&app);
    rt.block_on(api.send_all(&["bait one", "bait two"]));
    runner()
        .run(&name(), |name| {
            rt.block_on(async {
                let valid = EmployeeName::parse(&name).is_ok();
                let answer = api.get(&assignment_path(&name, false)).await;
                check_answer(&answer)?;
                let expected = if valid { 200 } else { 400 };
                prop_assert_eq!(answer.status.as_u16(), expected, "{:?}", name);
                for route in ["/respond/more_time", "/respond/fixed", "/respond/cancel"] {
                    let answer = api.post(route, &json!({ "name": name })).await;
                    check_answer(&answer)?;
                    let allowed: &[u16] = if valid { &[200, 409] } else { &[400] };
                    prop_assert!(
                        allowed.contains(&answer.status.as_u16()),
                        "{route} {name:?}: {} {}",
                        answer.status,
                        answer.body
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    rt.block_on(async {
        assert_eq!(api.get("/healthz").await.status, StatusCode::OK);
    });
    assert!(!app.logs().contains("panicked"), "{}", app.logs());
    stop_and_check(&mut app);
}

#[test]
fn random_bodies_and_content_types_get_no_5xx() {
    let mut app = spawn_app();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = Api::of(&app);
    let routes = prop_oneof![
        Just("/respond/fixed"),
        Just("/respond/cancel"),
        Just("/respond/more_time"),
        Just("/do_send"),
        Just("/dashboard/cleanalerts"),
        Just("/workflows/x/cancel"),
        Just("/workflows/x/resume"),
    ];
    runner()
        .run(&(routes, body(), content_type()), |(route, body, kind)| {
            rt.block_on(async {
                let answer = match kind {
                    Some(kind) => api.request(Method::POST, route, Some((kind, body))).await,
                    None => api.post_untyped(route, body).await,
                };
                check_answer(&answer)
            })
        })
        .unwrap();
    rt.block_on(async {
        assert_eq!(api.get("/healthz").await.status, StatusCode::OK);
    });
    assert!(!app.logs().contains("panicked"), "{}", app.logs());
    stop_and_check(&mut app);
}

/// One request straight on the socket, as written: no client normalizes `..` or
/// re-encodes the target. Returns the status, the content type and the body.
async fn raw_request(app: &TestApp, method: &Method, target: &str) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let what = format!("{method} {target}");
    let mut socket = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    let request =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut bytes))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 10 s"))
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{what}: not an HTTP answer: {text:?}"));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no status: {head:?}"));
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    Answer {
        what,
        status: StatusCode::from_u16(status).unwrap(),
        content_type: header("content-type").unwrap_or_default(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    }
}

/// The body of a chunked answer.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// `raw` as a query may carry it (RFC 3986): every byte that may not appear there is
/// percent-encoded, so that the request reaches the app rather than being refused by
/// the HTTP parser. A `%` stays as it is: malformed escapes reach the app's parser.
fn as_target(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn random_paths_methods_and_queries_serve_only_the_embedded_page() {
    let mut app = spawn_app();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let pages: Vec<String> = [
        "index.html",
        "app.js",
        "style.css",
        "console.html",
        "console.js",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(web.join(f)).unwrap())
    .collect();
    let query = prop_oneof!["\\PC{0,60}", "[a-z_=&%0-9]{0,40}", any::<String>()];
    let query_routes = prop_oneof![
        Just("/assignment"),
        Just("/dead_letters"),
        Just("/workflows"),
        Just("/alert_history"),
    ];
    let case = (method(), path(), query_routes, query);
    runner()
        .run(&case, |(method, path, route, query)| {
            rt.block_on(async {
                let answer = raw_request(&app, &method, &path).await;
                check_answer(&answer)?;
                if answer.status == StatusCode::OK
                    && method == Method::GET
                    && !answer.content_type.starts_with("application/json")
                {
                    prop_assert!(
                        pages.contains(&answer.body),
                        "{path}: served something that is not an embedded page"
                    );
                }
                let target = format!("{route}?{}", as_target(&query));
                check_answer(&raw_request(&app, &Method::GET, &target).await)
            })
        })
        .unwrap();
    let api = Api::of(&app);
    rt.block_on(async {
        assert_eq!(api.get("/healthz").await.status, StatusCode::OK);
    });
    assert!(!app.logs().contains("panicked"), "{}", app.logs());
    stop_and_check(&mut app);
}
