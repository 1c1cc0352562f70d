use super::*;

const JSON: &str = "application/json";
const NAME_ROUTES: [&str; 3] = ["/respond/fixed", "/respond/cancel", "/respond/more_time"];
const BODY_ROUTES: [&str; 4] = [
    "/respond/fixed",
    "/respond/cancel",
    "/respond/more_time",
    "/do_send",
];

#[tokio::test]
async fn wrong_methods_are_405_and_unknown_get_routes_404() {
    let app = spawn_app();
    let api = Api::of(&app);
    for path in [
        "/nope",
        "/assignment/extra",
        "/respond",
        "/respond/fixed/x",
        "/app.js/x",
    ] {
        api.get(path).await.expect_error(StatusCode::NOT_FOUND);
    }
    let wrong = [
        (Method::GET, "/respond/fixed"),
        (Method::GET, "/respond/cancel"),
        (Method::GET, "/respond/more_time"),
        (Method::GET, "/do_send"),
        (Method::GET, "/dashboard/cleanalerts"),
        (Method::GET, "/crash_application"),
        (Method::POST, "/assignment"),
        (Method::POST, "/alert_history"),
        (Method::DELETE, "/alert_history"),
        (Method::PUT, "/respond/cancel"),
        (Method::PATCH, "/do_send"),
    ];
    for (method, path) in wrong {
        api.request(method, path, None)
            .await
            .expect_error(StatusCode::METHOD_NOT_ALLOWED);
    }
    assert_eq!(api.get("/healthz").await.status, StatusCode::OK, "no crash");
}

/// Bug: warp answers 405 for every non-GET request to a path no route has, because
/// the page's `warp::get()` filter rejects with "method not allowed" before its path
/// rejects with "not found", and warp ranks 405 above 404.
#[tokio::test]
async fn an_unknown_route_is_404_whatever_the_method() {
    let app = spawn_app();
    let api = Api::of(&app);
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
        api.request(method, "/no/such/route", None)
            .await
            .expect_error(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn bodies_over_16_kib_are_413() {
    let app = spawn_app();
    let api = Api::of(&app);
    for route in BODY_ROUTES {
        let padding = " ".repeat(16 * 1024);
        let body = format!("{{\"name\": \"ann\", \"message\": \"m\"}}{padding}");
        let answer = api
            .request(Method::POST, route, Some((JSON, body.into())))
            .await;
        let error = answer.expect_error(StatusCode::PAYLOAD_TOO_LARGE);
        assert!(error.contains("16 KiB"), "{route}: {error:?}");
    }
    // Exactly 16 KiB is allowed: the name in it is refused, the body is not.
    let name = "x".repeat(16 * 1024 - r#"{"name":""}"#.len());
    let body = format!(r#"{{"name":"{name}"}}"#);
    assert_eq!(body.len(), 16 * 1024);
    let answer = api
        .request(Method::POST, "/respond/fixed", Some((JSON, body.into())))
        .await;
    let error = answer.expect_error(StatusCode::BAD_REQUEST);
    assert!(error.contains("at most 64"), "{error:?}");
}

#[tokio::test]
async fn malformed_or_incomplete_bodies_are_400() {
    let app = spawn_app();
    let api = Api::of(&app);
    let bodies: [&[u8]; 8] = [
        b"{",
        b"{\"name\": ",
        b"not json",
        b"[1]",
        b"{\"name\": 5}",
        b"{\"name\": null}",
        b"{\"nam\": \"ann\"}",
        b"{\"name\": \"\xff\xfe\"}",
    ];
    for route in NAME_ROUTES {
        for body in bodies {
            let answer = api
                .request(Method::POST, route, Some((JSON, body.to_vec())))
                .await;
            answer.expect_error(StatusCode::BAD_REQUEST);
        }
        let error = api
            .post(route, &json!({}))
            .await
            .expect_error(StatusCode::BAD_REQUEST);
        assert!(error.contains("missing field `name`"), "{route}: {error:?}");
    }
    let send_bodies: [&[u8]; 3] = [b"{", b"{\"message\": [1]}", b"{}"];
    for body in send_bodies {
        let answer = api
            .request(Method::POST, "/do_send", Some((JSON, body.to_vec())))
            .await;
        answer.expect_error(StatusCode::BAD_REQUEST);
    }
    // No body and no Content-Length: 411, still as JSON.
    api.request(Method::POST, "/respond/fixed", None)
        .await
        .expect_error(StatusCode::LENGTH_REQUIRED);
    // A body that is not declared JSON.
    let answer = api
        .request(
            Method::POST,
            "/respond/fixed",
            Some(("text/plain", b"{\"name\":\"ann\"}".to_vec())),
        )
        .await;
    answer.expect_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// A battery of odd requests: each must get an answer below 500 (errors as JSON), and
/// the server must still serve afterwards.
#[tokio::test]
async fn no_request_makes_the_server_fail() {
    let mut app = spawn_app();
    let api = Api::of(&app);
    api.send_all(&["bait"]).await;
    let long_name = "n".repeat(8 * 1024);
    let nested = format!("{{\"name\": {}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let gets = [
        "/assignment?name=%ZZ".to_string(),
        "/assignment?name=%FF%FE".to_string(),
        "/assignment?name=%00".to_string(),
        "/assignment?name=a%0Ab".to_string(),
        "/assignment?name=ann&name=bob&name=".to_string(),
        "/assignment?name=ann&more_time=".to_string(),
        "/assignment?name=ann&more_time=%FF".to_string(),
        "/assignment?=&&&=".to_string(),
        format!("/assignment?name={long_name}"),
        "/assignment?name=%F0%9F%98%80".to_string(),
        "/alert_history?x=1".to_string(),
        "/dead_letters?limit=-1".to_string(),
        "/dead_letters?limit=99999999999999999999999".to_string(),
        "/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/events/x".to_string(),
    ];
    for path in &gets {
        check_below_500(&api.get(path).await);
    }
    let posts: [&[u8]; 7] = [
        nested.as_bytes(),
        b"{\"name\": \"\\ud800\"}",
        b"{\"name\": \"ann\\u0000\"}",
        b"{\"name\": \"ann\", \"name\": \"bob\"}",
        b"{\"name\": \"ann\", \"extra\": {\"deep\": [1, 2, 3]}}",
        b"\xef\xbb\xbf{\"name\": \"ann\"}",
        b"{\"name\": \"ann\"} trailing",
    ];
    for route in BODY_ROUTES {
        for body in posts {
            let answer = api
                .request(Method::POST, route, Some((JSON, body.to_vec())))
                .await;
            check_below_500(&answer);
        }
    }
    raw_garbage_gets_no_5xx(&app).await;
    assert_eq!(api.get("/healthz").await.status, StatusCode::OK);
    assert!(!app.logs().contains("panicked"), "{}", app.logs());
    stop_and_check(&mut app);
}

fn check_below_500(answer: &Answer) {
    assert!(
        answer.status.as_u16() < 500,
        "{}: {} {}",
        answer.what,
        answer.status,
        answer.body
    );
    if answer.status.is_client_error() {
        answer.error();
    }
}

/// Bytes that are not HTTP, straight on the socket.
async fn raw_garbage_gets_no_5xx(app: &TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let requests: [&[u8]; 3] = [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"POST /respond/fixed HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999999\r\n\r\n",
        b"POST /respond/fixed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":",
    ];
    for request in requests {
        let mut socket = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
        socket.write_all(request).await.unwrap();
        let _ = socket.shutdown().await;
        let mut answer = Vec::new();
        let read = socket.read_to_end(&mut answer);
        let _ = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server neither answered nor closed within 10 s");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            !answer.starts_with("HTTP/1.1 5"),
            "{:?}: {answer}",
            String::from_utf8_lossy(request)
        );
    }
}
