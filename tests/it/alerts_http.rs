//! The alert center over HTTP, against the real binary (`app_support::spawn_app`): every
//! route and every error case, the invariants while employees race for alerts, and lease
//! timers with a short lease.
//!
//! The crashes reproduced (in `leases` and `process`): the process is killed with
//! `SIGKILL` while a lease runs, with and without more time asked for, and while a lease
//! runs out; it is then restarted on the same file and address. After each restart the
//! lease still ends at the expiry time it had (an expiry passed while the app was down
//! frees the alert at once), the alert goes to the next employee, and every invariant of
//! `alerts::store::check_invariants` holds on the file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app_support::{AppOptions, TestApp, spawn_app, spawn_app_with};

/// Status codes as the API spells them.
const ACTIVE: u64 = 0;
const ASSIGNED: u64 = 1;
const RESOLVED: u64 = 2;

/// How long an alert sent with `/do_send` may take to come back through Kafka.
const INTAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// How late after its expiry time a lease may free its alert and still count as on time.
const LATE_MS: u64 = 1_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn sleep_until_ms(at_ms: u64) {
    tokio::time::sleep(Duration::from_millis(at_ms.saturating_sub(now_ms()))).await;
}

/// Stops the app with `SIGTERM` (it must exit 0) and checks every invariant on its file.
fn stop_and_check(app: &mut TestApp) {
    let status = app.stop();
    assert!(status.success(), "SIGTERM: the app exited with {status}");
    if let Err(violation) = app.check_invariants() {
        panic!("invariant violated: {violation}");
    }
}

/// One HTTP answer, read whole.
#[derive(Debug)]
struct Answer {
    what: String,
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("{}: the body is not JSON ({e}): {:?}", self.what, self.body)
        })
    }

    /// Asserts `status` and returns the JSON body.
    fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}: {}", self.what, self.body);
        self.json()
    }

    /// Asserts `status` and an error body of exactly `{"error": "<non-empty>"}`; returns
    /// the message.
    fn expect_error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}: {}", self.what, self.body);
        self.error()
    }

    /// Asserts an error body of exactly `{"error": "<non-empty>"}`; returns the message.
    fn error(&self) -> String {
        assert!(
            self.content_type.starts_with("application/json"),
            "{}: an error answered {:?}, not JSON",
            self.what,
            self.content_type
        );
        let body = self.json();
        let fields = body.as_object().map(|o| o.len());
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            fields == Some(1) && !message.is_empty(),
            "{}: error body is not {{\"error\": \"...\"}}: {body}",
            self.what
        );
        message.to_string()
    }
}

/// The API of one app, cheap to clone into tasks. It stays valid across restarts: the
/// address does not change.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn of(app: &TestApp) -> Api {
        Api {
            http: app.http().clone(),
            base: app.base_url(),
        }
    }

    async fn request(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Answer {
        let what = format!("{method} {path}");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: body: {e}"));
        Answer {
            what,
            status,
            content_type,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        self.request(Method::POST, path, Some(("application/json", bytes)))
            .await
    }

    /// `GET /assignment?name=NAME`, which must answer 200.
    async fn assignment(&self, name: &str) -> Value {
        self.get(&assignment_path(name, false))
            .await
            .expect(StatusCode::OK)
    }

    /// `GET /assignment?name=NAME&more_time=true`, which must answer 200.
    async fn assignment_more_time(&self, name: &str) -> Value {
        self.get(&assignment_path(name, true))
            .await
            .expect(StatusCode::OK)
    }

    async fn history(&self) -> Vec<Value> {
        let history = self.get("/alert_history").await.expect(StatusCode::OK);
        history.as_array().expect("history is an array").clone()
    }

    /// Sends each message through `/do_send` (in order) and waits until every one is in
    /// the history; returns their ids.
    async fn send_all(&self, messages: &[&str]) -> Vec<u64> {
        let mut ids = Vec::new();
        for message in messages {
            let sent = self
                .post("/do_send", &json!({ "message": message }))
                .await
                .expect(StatusCode::OK);
            ids.push(sent["alert_id"].as_u64().expect("alert_id"));
        }
        let deadline = now_ms() + INTAKE_TIMEOUT.as_millis() as u64;
        loop {
            let history = self.history().await;
            if ids.iter().all(|id| find(&history, *id).is_some()) {
                return ids;
            }
            assert!(
                now_ms() < deadline,
                "alerts {ids:?} did not reach the history: {history:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls NAME's assignment every 50 ms until they hold `alert_id`; returns the time
    /// the answer that showed it arrived. Panics if they get another alert, or at
    /// `deadline_ms`.
    async fn wait_until_holds(&self, name: &str, alert_id: u64, deadline_ms: u64) -> u64 {
        loop {
            let answer = self.assignment(name).await;
            let at_ms = now_ms();
            match held(&answer) {
                Some(id) if id == alert_id => return at_ms,
                Some(_) => panic!("{name} got another alert than {alert_id}: {answer}"),
                None => {}
            }
            assert!(
                at_ms < deadline_ms,
                "{name} still does not hold alert {alert_id}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn assignment_path(name: &str, more_time: bool) -> String {
    let mut query = vec![("name", name)];
    if more_time {
        query.push(("more_time", "true"));
    }
    format!(
        "/assignment?{}",
        serde_urlencoded::to_string(&query).unwrap()
    )
}

/// The alert an assignment answer shows, checking that both halves agree.
fn held(answer: &Value) -> Option<u64> {
    let alerts = answer["alert"].as_array().expect("alert is an array");
    assert!(alerts.len() <= 1, "two alerts in one answer: {answer}");
    let id = alerts.first().map(|a| a["alert_id"].as_u64().unwrap());
    assert_eq!(
        answer["employee"]["alert_id"].as_u64(),
        id,
        "employee.alert_id and alert[0] disagree: {answer}"
    );
    id
}

/// `employee.expiration` in wall-clock milliseconds.
fn expiration_ms(answer: &Value) -> u64 {
    let text = answer["employee"]["expiration"]
        .as_str()
        .unwrap_or_else(|| panic!("no expiration in {answer}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("expiration {text:?}: {e}"))
        .timestamp_millis() as u64
}

fn assert_coast_clear(answer: &Value, name: &str) {
    assert_eq!(
        answer,
        &json!({
            "employee": {"employee_name": name, "alert_id": null, "expiration": null},
            "alert": [],
            "newAssignment": false,
            "expirationSecs": null,
        })
    );
}

fn find(history: &[Value], id: u64) -> Option<&Value> {
    history.iter().find(|a| a["alert_id"].as_u64() == Some(id))
}

/// `(status, employee_name)` of alert `id` in `history`.
fn state_of(history: &[Value], id: u64) -> (u64, Option<String>) {
    let alert = find(history, id).unwrap_or_else(|| panic!("alert {id} is not in {history:?}"));
    (
        alert["alert_status"].as_u64().unwrap(),
        alert["employee_name"].as_str().map(str::to_string),
    )
}

fn assigned_to(name: &str) -> (u64, Option<String>) {
    (ASSIGNED, Some(name.to_string()))
}

mod routes {
    use super::*;

    #[tokio::test]
    async fn assignment_gives_the_oldest_free_alert_and_keeps_it() {
        let app = spawn_app();
        let api = Api::of(&app);
        assert_coast_clear(&api.assignment("ann").await, "ann");
        let ids = api
            .send_all(&["disk full on db-1", "cpu hot on web-2"])
            .await;

        let before_ms = now_ms();
        let ann = api.assignment("ann").await;
        assert_eq!(
            held(&ann),
            Some(ids[0]),
            "the oldest free alert comes first"
        );
        assert_eq!(ann["newAssignment"], json!(true));
        assert_eq!(
            ann["alert"][0],
            json!({"alert_id": ids[0], "alert_status": ASSIGNED,
                   "message": "disk full on db-1", "employee_name": "ann"})
        );
        assert_eq!(ann["employee"]["employee_name"], json!("ann"));
        let expires_ms = expiration_ms(&ann);
        assert!((before_ms + 29_000..=now_ms() + 30_000).contains(&expires_ms));
        let secs = ann["expirationSecs"].as_f64().unwrap();
        assert!((29.0..=30.0).contains(&secs), "expirationSecs {secs}");

        let again = api.assignment("ann").await;
        assert_eq!(held(&again), Some(ids[0]));
        assert_eq!(again["newAssignment"], json!(false));
        assert_eq!(expiration_ms(&again), expires_ms, "polling changes nothing");

        assert_eq!(held(&api.assignment("bob").await), Some(ids[1]));
        assert_coast_clear(&api.assignment("carl").await, "carl");

        tokio::time::sleep(Duration::from_millis(300)).await;
        let extended = api.assignment_more_time("ann").await;
        assert_eq!(held(&extended), Some(ids[0]));
        assert_eq!(extended["newAssignment"], json!(false));
        assert!(
            expiration_ms(&extended) >= expires_ms + 250,
            "more_time=true extends the lease: {expires_ms} -> {extended}"
        );

        let history = api.history().await;
        assert_eq!(state_of(&history, ids[0]), assigned_to("ann"));
        assert_eq!(state_of(&history, ids[1]), assigned_to("bob"));
    }

    #[tokio::test]
    async fn bad_names_are_refused_with_a_reason() {
        let app = spawn_app();
        let api = Api::of(&app);
        api.send_all(&["bait: no bad name may take this"]).await;
        let (long_ascii, long_accented) = ("x".repeat(65), "é".repeat(65));
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            (long_ascii.as_str(), "65 characters"),
            (long_accented.as_str(), "65 characters"),
            ("<script>", "'<'"),
            ("a/b", "'/'"),
            ("tab\there", "'\\t'"),
            ("semi;colon", "';'"),
        ];
        for (name, reason) in cases {
            let error = api
                .get(&assignment_path(name, false))
                .await
                .expect_error(StatusCode::BAD_REQUEST);
            assert!(error.contains(reason), "{name:?}: {error:?}");
            for route in ["/respond/fixed", "/respond/cancel", "/respond/more_time"] {
                let error = api
                    .post(route, &json!({ "name": name }))
                    .await
                    .expect_error(StatusCode::BAD_REQUEST);
                assert!(error.contains(reason), "{route} {name:?}: {error:?}");
            }
        }
        for path in ["/assignment", "/assignment?", "/assignment?more_time=true"] {
            let error = api.get(path).await.expect_error(StatusCode::BAD_REQUEST);
            assert!(error.contains("name is missing"), "{path}: {error:?}");
        }
        let error = api
            .get("/assignment?name=ann&more_time=maybe")
            .await
            .expect_error(StatusCode::BAD_REQUEST);
        assert!(error.contains("more_time"), "{error:?}");

        let history = api.history().await;
        assert_eq!(history[0]["alert_status"], json!(ACTIVE), "{history:?}");
        let longest = "x".repeat(64);
        assert_eq!(api.assignment(&longest).await["newAssignment"], json!(true));
    }

    #[tokio::test]
    async fn unicode_names_work_and_names_are_trimmed() {
        let app = spawn_app();
        let api = Api::of(&app);
        let ids = api.send_all(&["first", "second", "third"]).await;

        assert_eq!(held(&api.assignment("Jürgen").await), Some(ids[0]));
        assert_eq!(held(&api.assignment("山田 太郎").await), Some(ids[1]));
        let ann = api.assignment("  ann ").await;
        assert_eq!(held(&ann), Some(ids[2]));
        assert_eq!(ann["employee"]["employee_name"], json!("ann"));
        assert_eq!(held(&api.assignment("ann").await), Some(ids[2]));

        let history = api.history().await;
        assert_eq!(state_of(&history, ids[0]), assigned_to("Jürgen"));
        assert_eq!(state_of(&history, ids[1]), assigned_to("山田 太郎"));
        assert_eq!(state_of(&history, ids[2]), assigned_to("ann"));

        let fixed = api.post("/respond/fixed", &json!({"name": "Jürgen"})).await;
        assert_eq!(fixed.expect(StatusCode::OK)["alert_id"], json!(ids[0]));
        let cancel = api
            .post("/respond/cancel", &json!({"name": " 山田 太郎 "}))
            .await;
        assert_eq!(cancel.expect(StatusCode::OK)["alert_id"], json!(ids[1]));
    }

    #[tokio::test]
    async fn history_lists_every_alert_in_ascending_id_order() {
        let app = spawn_app();
        let api = Api::of(&app);
        assert_eq!(api.history().await, Vec::<Value>::new());
        let messages = [
            "one",
            "two <script>alert(1)</script>",
            "drei: Größe überschritten",
            "四",
            "  five, trimmed  ",
        ];
        let ids = api.send_all(&messages).await;
        let history = api.history().await;
        let listed: Vec<u64> = history
            .iter()
            .map(|a| a["alert_id"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, ids);
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
        for (alert, message) in history.iter().zip(messages) {
            assert_eq!(
                alert,
                &json!({"alert_id": alert["alert_id"], "alert_status": ACTIVE,
                        "message": message.trim(), "employee_name": null})
            );
        }
    }

    #[tokio::test]
    async fn fixed_resolves_the_alert_and_is_a_409_without_an_assignment() {
        let app = spawn_app();
        let api = Api::of(&app);
        let error = api
            .post("/respond/fixed", &json!({"name": "ann"}))
            .await
            .expect_error(StatusCode::CONFLICT);
        assert!(error.contains("ann has no assignment"), "{error:?}");

        let ids = api.send_all(&["disk full"]).await;
        assert_eq!(held(&api.assignment("ann").await), Some(ids[0]));
        let fixed = api.post("/respond/fixed", &json!({"name": "ann"})).await;
        assert_eq!(
            fixed.expect(StatusCode::OK),
            json!({"alert_id": ids[0], "alert_status": RESOLVED})
        );
        let history = api.history().await;
        assert_eq!(
            state_of(&history, ids[0]),
            (RESOLVED, Some("ann".to_string())),
            "a resolved alert keeps who fixed it"
        );

        api.post("/respond/fixed", &json!({"name": "ann"}))
            .await
            .expect_error(StatusCode::CONFLICT);
        assert_coast_clear(&api.assignment("ann").await, "ann");
        assert_coast_clear(&api.assignment("bob").await, "bob");
    }

    #[tokio::test]
    async fn cancel_frees_the_alert_for_immediate_reassignment() {
        let app = spawn_app();
        let api = Api::of(&app);
        let error = api
            .post("/respond/cancel", &json!({"name": "ann"}))
            .await
            .expect_error(StatusCode::CONFLICT);
        assert!(error.contains("ann has no assignment"), "{error:?}");

        let ids = api.send_all(&["disk full"]).await;
        assert_eq!(held(&api.assignment("ann").await), Some(ids[0]));
        let cancel = api.post("/respond/cancel", &json!({"name": "ann"})).await;
        assert_eq!(
            cancel.expect(StatusCode::OK),
            json!({"alert_id": ids[0], "released": true})
        );
        assert_eq!(state_of(&api.history().await, ids[0]), (ACTIVE, None));

        let bob = api.assignment("bob").await;
        assert_eq!(held(&bob), Some(ids[0]));
        assert_eq!(bob["newAssignment"], json!(true));
        api.post("/respond/cancel", &json!({"name": "ann"}))
            .await
            .expect_error(StatusCode::CONFLICT);
        assert_eq!(state_of(&api.history().await, ids[0]), assigned_to("bob"));
    }

    #[tokio::test]
    async fn more_time_extends_the_lease_and_is_a_409_without_an_assignment() {
        let app = spawn_app();
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full"]).await;
        let error = api
            .post("/respond/more_time", &json!({"name": "ann"}))
            .await
            .expect_error(StatusCode::CONFLICT);
        assert!(error.contains("ann has no assignment"), "{error:?}");
        assert_eq!(
            state_of(&api.history().await, ids[0]),
            (ACTIVE, None),
            "a refused more_time assigns nothing"
        );

        let ann = api.assignment("ann").await;
        let expires_ms = expiration_ms(&ann);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let extended = api
            .post("/respond/more_time", &json!({"name": "ann"}))
            .await
            .expect(StatusCode::OK);
        assert_eq!(held(&extended), Some(ids[0]));
        assert_eq!(extended["newAssignment"], json!(false));
        assert!(expiration_ms(&extended) >= expires_ms + 250, "{extended}");
        let secs = extended["expirationSecs"].as_f64().unwrap();
        assert!((29.0..=30.0).contains(&secs), "expirationSecs {secs}");
        assert_eq!(
            expiration_ms(&api.assignment("ann").await),
            expiration_ms(&extended)
        );
    }

    #[tokio::test]
    async fn send_checks_the_message() {
        let app = spawn_app();
        let api = Api::of(&app);
        let cases = [
            (json!({"message": ""}), "message is empty"),
            (json!({"message": " \n\t "}), "message is empty"),
            (json!({"message": "m".repeat(1001)}), "1001 characters"),
            (json!({"message": 5}), "expected JSON"),
            (json!({"text": "hi"}), "missing field `message`"),
        ];
        for (body, reason) in cases {
            let error = api
                .post("/do_send", &body)
                .await
                .expect_error(StatusCode::BAD_REQUEST);
            assert!(error.contains(reason), "{body}: {error:?}");
        }
        let longest = "m".repeat(1000);
        let ids = api.send_all(&[longest.as_str()]).await;
        let history = api.history().await;
        assert_eq!(history.len(), 1, "only the valid message became an alert");
        assert_eq!(find(&history, ids[0]).unwrap()["message"], json!(longest));
    }

    #[tokio::test]
    async fn a_send_retried_with_the_same_idempotency_key_makes_one_alert() {
        let app = spawn_app();
        let api = Api::of(&app);
        let first = send_with_key(&api, "key-1").await.expect(StatusCode::OK);
        let second = send_with_key(&api, "key-1").await.expect(StatusCode::OK);
        assert_eq!(first, second);
        let id = first["alert_id"].as_u64().unwrap();
        api.send_all(&["after"]).await;
        let history = api.history().await;
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(state_of(&history, id), (ACTIVE, None));
        for bad in ["with space".to_string(), "k".repeat(201)] {
            let error = send_with_key(&api, &bad)
                .await
                .expect_error(StatusCode::BAD_REQUEST);
            assert!(error.contains("Idempotency-Key"), "{error:?}");
        }
    }

    async fn send_with_key(api: &Api, key: &str) -> Answer {
        let body = serde_json::to_vec(&json!({"message": "once"})).unwrap();
        let response = api
            .http
            .post(format!("{}/do_send", api.base))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body)
            .send()
            .await
            .unwrap();
        Answer {
            what: format!("POST /do_send with Idempotency-Key {key:?}"),
            status: response.status(),
            content_type: response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string(),
            body: response.text().await.unwrap(),
        }
    }

    #[tokio::test]
    async fn clean_deletes_resolved_alerts_only() {
        let app = spawn_app();
        let api = Api::of(&app);
        let ids = api.send_all(&["resolved", "assigned", "active"]).await;
        assert_eq!(held(&api.assignment("ann").await), Some(ids[0]));
        api.post("/respond/fixed", &json!({"name": "ann"}))
            .await
            .expect(StatusCode::OK);
        assert_eq!(held(&api.assignment("bob").await), Some(ids[1]));

        let cleaned = api
            .request(Method::POST, "/dashboard/cleanalerts", None)
            .await;
        assert_eq!(cleaned.expect(StatusCode::OK), json!({"deleted": 1}));
        let history = api.history().await;
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(state_of(&history, ids[1]), assigned_to("bob"));
        assert_eq!(state_of(&history, ids[2]), (ACTIVE, None));

        let again = api
            .request(Method::POST, "/dashboard/cleanalerts", None)
            .await;
        assert_eq!(again.expect(StatusCode::OK), json!({"deleted": 0}));
        assert_eq!(held(&api.assignment("bob").await), Some(ids[1]));
    }

    #[tokio::test]
    async fn the_page_and_the_service_routes_answer() {
        let app = spawn_app();
        let api = Api::of(&app);
        let page = api.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.content_type.starts_with("text/html"), "{page:?}");
        for id in ["btn-send", "btn-crash", "banner-offline", "history"] {
            assert!(page.body.contains(&format!("id=\"{id}\"")), "no #{id}");
        }
        let script = api.get("/app.js").await;
        assert_eq!(script.status, StatusCode::OK);
        assert!(script.content_type.starts_with("text/javascript"));
        let style = api.get("/style.css").await;
        assert_eq!(style.status, StatusCode::OK);
        assert!(style.content_type.starts_with("text/css"));
        let health = api.get("/healthz").await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (StatusCode::OK, "ok")
        );
        assert_eq!(
            api.get("/dead_letters").await.expect(StatusCode::OK),
            json!([])
        );
        api.get("/dead_letters?limit=0")
            .await
            .expect_error(StatusCode::BAD_REQUEST);

        let mut events = api
            .http
            .get(format!("{}/events", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), StatusCode::OK);
        let content_type = events.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let first = tokio::time::timeout(Duration::from_secs(10), events.chunk())
            .await
            .expect("no first event within 10 s")
            .unwrap()
            .expect("the stream ended");
        let first = String::from_utf8_lossy(&first);
        assert!(first.contains("event:history"), "{first:?}");
    }
}

mod errors {
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
}

mod concurrency {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use super::*;

    /// Every request of `names` at once (after a barrier); `copies` requests per name.
    /// Returns each name's answers. Each request is bounded by the client's timeout.
    async fn race(api: &Api, names: &[String], copies: usize) -> BTreeMap<String, Vec<Value>> {
        let barrier = Arc::new(tokio::sync::Barrier::new(names.len() * copies));
        let mut tasks = Vec::new();
        for name in names {
            for _ in 0..copies {
                let (api, name, barrier) = (api.clone(), name.clone(), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let answer = api.assignment(&name).await;
                    (name, answer)
                }));
            }
        }
        let mut answers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for task in tasks {
            let (name, answer) = task.await.expect("a racing request failed");
            answers.entry(name).or_default().push(answer);
        }
        answers
    }

    /// The one alert each employee holds after a race (all their answers must agree).
    fn holdings(answers: &BTreeMap<String, Vec<Value>>) -> BTreeMap<String, u64> {
        let mut holdings = BTreeMap::new();
        for (name, answers) in answers {
            let seen: BTreeSet<Option<u64>> = answers.iter().map(held).collect();
            assert_eq!(seen.len(), 1, "{name} got different answers: {answers:?}");
            if let Some(Some(id)) = seen.into_iter().next() {
                holdings.insert(name.clone(), id);
            }
        }
        let distinct: BTreeSet<u64> = holdings.values().copied().collect();
        assert_eq!(
            distinct.len(),
            holdings.len(),
            "one alert, two holders: {holdings:?}"
        );
        holdings
    }

    /// The invariants as the API shows them, changing nothing: an assigned alert names
    /// one employee and no employee is named on two; an active alert names nobody; and
    /// each holder's own (read-only) assignment answer shows that very alert.
    async fn check_over_http(api: &Api) -> BTreeMap<String, u64> {
        let history = api.history().await;
        let mut holders = BTreeMap::new();
        for alert in &history {
            let id = alert["alert_id"].as_u64().unwrap();
            let name = alert["employee_name"].as_str();
            match alert["alert_status"].as_u64().unwrap() {
                ACTIVE => assert_eq!(name, None, "active alert names someone: {alert}"),
                ASSIGNED => {
                    let name = name.unwrap_or_else(|| panic!("nobody on {alert}"));
                    let before = holders.insert(name.to_string(), id);
                    assert_eq!(before, None, "{name} holds two alerts: {history:?}");
                }
                RESOLVED => {}
                other => panic!("unknown status {other}: {alert}"),
            }
        }
        for (name, id) in &holders {
            assert_eq!(held(&api.assignment(name).await), Some(*id), "{name}");
        }
        holders
    }

    fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("{prefix}{i:02}")).collect()
    }

    /// Stops the app, runs the full invariant check on the file, starts it again.
    fn checkpoint(app: &mut TestApp) {
        stop_and_check(app);
        app.restart();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn employees_racing_for_alerts_each_get_at_most_one_distinct_alert() {
        let mut app = spawn_app();
        let api = Api::of(&app);
        let staff = names("emp", 0..20);

        // One alert, twenty employees: exactly one gets it.
        let first = api.send_all(&["the only one"]).await;
        let won = holdings(&race(&api, &staff, 1).await);
        assert_eq!(won.values().copied().collect::<Vec<_>>(), first, "{won:?}");
        assert_eq!(check_over_http(&api).await, won);
        checkpoint(&mut app);

        // Four more, and each employee asks twice at once: the holder keeps theirs,
        // four others get the four new ones, nobody gets two.
        let four = api.send_all(&["a", "b", "c", "d"]).await;
        let after = holdings(&race(&api, &staff, 2).await);
        assert_eq!(after.len(), 5, "{after:?}");
        for (name, id) in &won {
            assert_eq!(after.get(name), Some(id), "{name} lost their alert");
        }
        let new: BTreeSet<u64> = after
            .values()
            .copied()
            .filter(|id| !first.contains(id))
            .collect();
        assert_eq!(
            new,
            four.iter().copied().collect(),
            "the oldest free go first"
        );
        assert_eq!(check_over_http(&api).await, after);
        checkpoint(&mut app);

        // More alerts than employees: everyone ends with one; the newest 15 stay free.
        let labels: Vec<String> = (0..30).map(|i| format!("alert {i}")).collect();
        let thirty = api
            .send_all(&labels.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
        let full = holdings(&race(&api, &staff, 1).await);
        assert_eq!(full.len(), 20, "{full:?}");
        let history = api.history().await;
        for id in &thirty[15..] {
            assert_eq!(state_of(&history, *id), (ACTIVE, None));
        }
        assert_eq!(check_over_http(&api).await, full);
        checkpoint(&mut app);

        // All at once: half fix, half log out, ten newcomers ask for work.
        let newcomers = names("new", 0..10);
        let mut tasks = Vec::new();
        for (i, name) in staff.iter().enumerate() {
            let route = if i % 2 == 0 {
                "/respond/fixed"
            } else {
                "/respond/cancel"
            };
            let (api, name) = (api.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                let answer = api.post(route, &json!({ "name": name })).await;
                answer.expect(StatusCode::OK)["alert_id"].as_u64().unwrap()
            }));
        }
        let arrivals = race(&api, &newcomers, 1).await;
        let mut resolved = BTreeSet::new();
        for (i, task) in tasks.into_iter().enumerate() {
            let id = task.await.expect("a fixed or cancel request failed");
            assert_eq!(Some(&id), full.get(&staff[i]));
            if i % 2 == 0 {
                resolved.insert(id);
            }
        }
        let arrived = holdings(&arrivals);
        assert_eq!(arrived.len(), 10, "{arrived:?}");
        for id in arrived.values() {
            assert!(!resolved.contains(id), "resolved alert {id} was handed out");
        }
        let history = api.history().await;
        for id in &resolved {
            assert_eq!(state_of(&history, *id).0, RESOLVED);
        }
        let holders = check_over_http(&api).await;
        assert_eq!(holders, arrived, "only the newcomers hold alerts");
        let count = |status| {
            history
                .iter()
                .filter(|a| a["alert_status"] == json!(status))
                .count()
        };
        assert_eq!(
            (count(ACTIVE), count(ASSIGNED), count(RESOLVED)),
            (15, 10, 10)
        );
        stop_and_check(&mut app);
    }
}

mod leases {
    use super::*;

    /// Starts `name` polling in the background until they hold `alert_id`.
    fn poll_in_background(
        api: &Api,
        name: &'static str,
        alert_id: u64,
    ) -> tokio::task::JoinHandle<u64> {
        let api = api.clone();
        let deadline_ms = now_ms() + 30_000;
        tokio::spawn(async move { api.wait_until_holds(name, alert_id, deadline_ms).await })
    }

    /// Asserts that `got_ms` is at or after `expires_ms` and not much later.
    fn assert_on_time(what: &str, got_ms: u64, expires_ms: u64) {
        assert!(
            got_ms >= expires_ms,
            "{what}: the alert moved {} ms before its lease ended",
            expires_ms - got_ms
        );
        let late_ms = got_ms - expires_ms;
        assert!(
            late_ms <= LATE_MS,
            "{what}: the alert moved {late_ms} ms after its lease ended"
        );
        eprintln!("{what}: moved {late_ms} ms after the lease ended");
    }

    /// Gives `name` the one free alert `id`; returns its expiry time.
    async fn take(api: &Api, name: &str, id: u64) -> u64 {
        let answer = api.assignment(name).await;
        assert_eq!(held(&answer), Some(id), "{answer}");
        assert_eq!(answer["newAssignment"], json!(true));
        expiration_ms(&answer)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_expired_lease_moves_the_alert_to_the_next_employee() {
        let mut app = spawn_app_with(AppOptions::lease_secs(2.0));
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full"]).await;
        let before_ms = now_ms();
        let expires_ms = take(&api, "ann", ids[0]).await;
        assert!((before_ms + 2_000..=now_ms() + 2_000).contains(&expires_ms));
        assert_coast_clear(&api.assignment("bob").await, "bob");

        let got_ms = poll_in_background(&api, "bob", ids[0]).await.unwrap();
        assert_on_time("expiry", got_ms, expires_ms);
        assert_coast_clear(&api.assignment("ann").await, "ann");
        assert_eq!(state_of(&api.history().await, ids[0]), assigned_to("bob"));
        stop_and_check(&mut app);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_time_keeps_the_alert_past_its_first_expiry() {
        let mut app = spawn_app_with(AppOptions::lease_secs(2.0));
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full"]).await;
        let first_ms = take(&api, "ann", ids[0]).await;
        let bob = poll_in_background(&api, "bob", ids[0]);

        sleep_until_ms(first_ms - 1_000).await;
        let answer = api
            .post("/respond/more_time", &json!({"name": "ann"}))
            .await;
        let second_ms = expiration_ms(&answer.expect(StatusCode::OK));
        assert!(second_ms >= first_ms + 700, "{first_ms} -> {second_ms}");

        sleep_until_ms(second_ms - 1_000).await;
        let answer = api.assignment_more_time("ann").await;
        assert_eq!(held(&answer), Some(ids[0]));
        let third_ms = expiration_ms(&answer);
        assert!(third_ms >= second_ms + 700, "{second_ms} -> {third_ms}");

        let got_ms = bob.await.unwrap();
        assert_on_time("twice extended lease", got_ms, third_ms);
        stop_and_check(&mut app);
    }

    /// The watcher of a lease is tied to that lease: when it wakes after its employee
    /// fixed the alert and took another, it leaves the newer lease alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watcher_of_an_old_lease_leaves_a_newer_one_alone() {
        let mut app = spawn_app_with(AppOptions::lease_secs(2.0));
        let api = Api::of(&app);
        let ids = api.send_all(&["first", "second"]).await;
        let first_ms = take(&api, "ann", ids[0]).await;
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        api.post("/respond/fixed", &json!({"name": "ann"}))
            .await
            .expect(StatusCode::OK);
        let second_ms = take(&api, "ann", ids[1]).await;
        assert!(second_ms >= first_ms + 900);

        let got_ms = poll_in_background(&api, "bob", ids[1]).await.unwrap();
        assert_on_time("newer lease", got_ms, second_ms);
        let history = api.history().await;
        assert_eq!(state_of(&history, ids[0]), (RESOLVED, Some("ann".into())));
        stop_and_check(&mut app);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_running_at_a_kill_ends_at_its_time_after_restart() {
        // 3 s rather than 2: room for a slow restart on a busy machine.
        let mut app = spawn_app_with(AppOptions::lease_secs(3.0));
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full"]).await;
        let expires_ms = take(&api, "ann", ids[0]).await;

        app.kill();
        app.restart();
        assert!(
            now_ms() + 500 < expires_ms,
            "the restart took too long to test this"
        );
        let ann = api.assignment("ann").await;
        assert_eq!(held(&ann), Some(ids[0]), "the lease survives the kill");
        assert_eq!(expiration_ms(&ann), expires_ms);
        assert_coast_clear(&api.assignment("bob").await, "bob");

        let got_ms = poll_in_background(&api, "bob", ids[0]).await.unwrap();
        assert_on_time("lease across a kill", got_ms, expires_ms);
        stop_and_check(&mut app);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_time_survives_a_kill() {
        // 3 s rather than 2: room for a slow restart on a busy machine.
        let mut app = spawn_app_with(AppOptions::lease_secs(3.0));
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full"]).await;
        let first_ms = take(&api, "ann", ids[0]).await;
        sleep_until_ms(first_ms - 2_000).await;
        let answer = api
            .post("/respond/more_time", &json!({"name": "ann"}))
            .await;
        let extended_ms = expiration_ms(&answer.expect(StatusCode::OK));
        assert!(extended_ms >= first_ms + 800, "{first_ms} -> {extended_ms}");

        app.kill();
        app.restart();
        assert!(
            now_ms() + 300 < first_ms,
            "the restart took too long to test this"
        );
        assert_eq!(expiration_ms(&api.assignment("ann").await), extended_ms);

        let got_ms = poll_in_background(&api, "bob", ids[0]).await.unwrap();
        assert_on_time("extended lease across a kill", got_ms, extended_ms);
        stop_and_check(&mut app);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_that_ran_out_while_the_app_was_down_ends_at_restart() {
        let mut app = spawn_app_with(AppOptions::lease_secs(1.0));
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full"]).await;
        let expires_ms = take(&api, "ann", ids[0]).await;

        app.kill();
        sleep_until_ms(expires_ms + 1_000).await;
        app.restart();
        let ready_ms = now_ms();
        let got_ms = api.wait_until_holds("bob", ids[0], ready_ms + 30_000).await;
        let after_ms = got_ms - ready_ms;
        eprintln!("expired while down: moved {after_ms} ms after the restart");
        assert!(after_ms <= LATE_MS, "freed {after_ms} ms after the restart");
        assert_coast_clear(&api.assignment("ann").await, "ann");
        stop_and_check(&mut app);
    }
}

mod process {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[tokio::test]
    async fn the_crash_button_kills_the_process_and_a_restart_keeps_everything() {
        let mut app = spawn_app();
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full", "cpu hot"]).await;
        let expires_ms = expiration_ms(&api.assignment("ann").await);

        let crash = api.request(Method::POST, "/crash_application", None).await;
        assert_eq!(
            crash.expect(StatusCode::ACCEPTED),
            json!({"crashing": true})
        );
        let status = app.wait_for_exit(Duration::from_secs(10));
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{status}");

        app.restart();
        let ann = api.assignment("ann").await;
        assert_eq!(held(&ann), Some(ids[0]));
        assert_eq!(expiration_ms(&ann), expires_ms);
        assert_eq!(held(&api.assignment("bob").await), Some(ids[1]));
        stop_and_check(&mut app);
    }

    #[tokio::test]
    async fn under_its_supervisor_the_app_comes_back_by_itself_after_the_crash_button() {
        let mut app = spawn_app_with(AppOptions::supervised());
        let api = Api::of(&app);
        let ids = api.send_all(&["disk full"]).await;
        let expires_ms = expiration_ms(&api.assignment("ann").await);

        let crash = api.request(Method::POST, "/crash_application", None).await;
        crash.expect(StatusCode::ACCEPTED);
        app.wait_for_supervisor_restart();
        let ann = api.assignment("ann").await;
        assert_eq!(held(&ann), Some(ids[0]));
        assert_eq!(expiration_ms(&ann), expires_ms);
        api.send_all(&["sent after the crash"]).await;
        stop_and_check(&mut app);
    }

    /// Bug: the app logs that it is ready before it installs its `SIGTERM` handler
    /// (`shutdown_signal()` in `app::serve` registers it only after the server task is
    /// spawned), so a `SIGTERM` that follows the ready line closely kills it with the
    /// default action instead of a clean exit 0. Ten tries make a pass by luck unlikely.
    #[test]
    fn sigterm_right_after_the_ready_line_exits_cleanly() {
        for attempt in 0..10 {
            let mut app = spawn_app();
            let status = app.stop();
            assert!(status.success(), "attempt {attempt}: SIGTERM gave {status}");
        }
    }
}
