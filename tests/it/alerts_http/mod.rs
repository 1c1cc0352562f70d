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

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app_support::{AppOptions, TestApp, spawn_app, spawn_app_with};
use crate::support::now_ms;

/// Status codes as the API spells them.
const ACTIVE: u64 = 0;
const ASSIGNED: u64 = 1;
const RESOLVED: u64 = 2;

/// How long an alert sent with `/do_send` may take to come back through Kafka.
const INTAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// How late after its expiry time a lease may free its alert and still count as on time.
const LATE_MS: u64 = 1_000;

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
        Self::answer(what, request).await
    }

    /// POSTs `bytes` with no content type at all.
    async fn post_untyped(&self, path: &str, bytes: Vec<u8>) -> Answer {
        let request = self.http.post(format!("{}{path}", self.base)).body(bytes);
        Self::answer(format!("POST {path} (no content type)"), request).await
    }

    async fn answer(what: String, request: reqwest::RequestBuilder) -> Answer {
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

mod concurrency;
mod errors;
mod leases;
mod process;
mod properties;
mod routes;
