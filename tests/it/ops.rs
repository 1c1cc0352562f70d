//! What an operator sees, on the real binary: `/healthz`, `/readyz`, Prometheus
//! `/metrics` whose counters move when alerts flow, and the workflow API (list, get,
//! steps, cancel, resume) with the DBOS admin paths.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app_support::{TestApp, spawn_app};

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let response = app
        .http()
        .get(format!("{}{path}", app.base_url()))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http()
        .post(format!("{}{path}", app.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Parses Prometheus text: every sample line as (name with labels, value). Panics on a
/// line that is neither a comment nor `name[{labels}] value`.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let metric = name.split('{').next().unwrap();
            assert!(
                metric
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            if let Some(labels) = name.strip_prefix(metric) {
                assert!(
                    labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                    "{line:?}"
                );
            }
            (name.to_string(), value)
        })
        .collect()
}

fn sample(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or(0.0)
}

async fn metrics(app: &TestApp) -> Vec<(String, f64)> {
    let (status, text) = get(app, "/metrics").await;
    assert_eq!(status, 200);
    samples(&text)
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_that_move_with_the_traffic() {
    let app = spawn_app();
    assert_eq!(get(&app, "/healthz").await, (200, "ok".to_string()));
    until("readiness", async || get(&app, "/readyz").await.0 == 200).await;
    let before = metrics(&app).await;
    for i in 0..3 {
        assert_eq!(
            post(
                &app,
                "/do_send",
                serde_json::json!({"message": format!("m{i}")})
            )
            .await
            .0,
            200
        );
    }
    until("the alerts to be counted", async || {
        sample(&metrics(&app).await, "alert_center_alerts_ingested_total") >= 3.0
    })
    .await;
    let (status, _) = get(&app, "/assignment?name=ann").await;
    assert_eq!(status, 200);
    let after = metrics(&app).await;
    assert!(
        sample(&after, "alert_center_intake_messages_total")
            >= sample(&before, "alert_center_intake_messages_total") + 3.0
    );
    assert_eq!(
        sample(&after, "alert_center_leases_total{event=\"granted\"}"),
        1.0
    );
    assert_eq!(
        sample(&after, "alert_center_workflows_pending"),
        1.0,
        "the lease watcher"
    );
    assert!(sample(&after, "alert_center_commit_batch_size_count") > 0.0);
    assert!(
        after
            .iter()
            .any(|(n, _)| n.starts_with("alert_center_step_seconds_bucket{kind=\"transaction\""))
    );
    assert!(
        after
            .iter()
            .any(|(n, _)| n == "alert_center_recovery_seconds")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_api_lists_shows_steps_cancels_and_resumes() {
    let app = spawn_app();
    assert_eq!(
        post(&app, "/do_send", serde_json::json!({"message": "watch me"}))
            .await
            .0,
        200
    );
    until("the alert", async || {
        get(&app, "/alert_history").await.1.contains("watch me")
    })
    .await;
    assert_eq!(get(&app, "/assignment?name=ann lee").await.0, 200);

    let (status, body) = get(&app, "/workflows?status=PENDING").await;
    assert_eq!(status, 200);
    let pending: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(pending.len(), 1, "{body}");
    let id = pending[0]["id"].as_str().unwrap().to_string();
    assert_eq!(pending[0]["name"], "assignment");
    assert_eq!(pending[0]["input"]["name"], "ann lee");
    let path_id = id.replace(' ', "%20");

    let (status, body) = get(&app, &format!("/workflows/{path_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "PENDING"
    );
    // The answer comes with the event; the watcher records its sleep just after.
    let steps_path = format!("/workflows/{path_id}/steps");
    until("the watcher's sleep step", async || {
        get(&app, &steps_path).await.1.contains("\"sleep\"")
    })
    .await;
    let (_, body) = get(&app, &steps_path).await;
    let kinds: Vec<String> = serde_json::from_str::<Vec<Value>>(&body)
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["now", "transaction", "set_event", "sleep"]);

    let (status, body) = post(&app, &format!("/workflows/{path_id}/cancel"), Value::Null).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
    let (_, body) = get(&app, "/workflows?status=CANCELLED").await;
    assert!(body.contains(&id));
    let (status, body) = post(&app, &format!("/workflows/{path_id}/resume"), Value::Null).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")));
    until("the resumed workflow to sleep again", async || {
        get(&app, "/workflows?status=PENDING").await.1.contains(&id)
    })
    .await;

    let (_, all) = get(&app, "/workflows?limit=100").await;
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&all)
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"send_alert".to_string()) && names.contains(&"inbound_alerts".to_string()),
        "{names:?}"
    );
    let (_, sends) = get(&app, "/workflows?name=send_alert").await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&sends).unwrap().len(), 1);

    for (path, status) in [
        ("/workflows/nope", 404),
        ("/workflows/nope/steps", 404),
        ("/workflows?status=SLEEPY", 400),
        ("/workflows?limit=0", 400),
        ("/workflows?start_time=yesterday", 400),
        ("/workflows/bad%zz", 400),
    ] {
        let (got, body) = get(&app, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(
            serde_json::from_str::<Value>(&body).unwrap()["error"].is_string(),
            "{path}: {body}"
        );
    }
    let (status, body) = post(&app, "/workflows/nope/cancel", Value::Null).await;
    assert_eq!(status, 404, "{body}");
    let sends: Vec<Value> = serde_json::from_str(&sends).unwrap();
    let send_id = sends[0]["id"].as_str().unwrap();
    let (status, body) = post(&app, &format!("/workflows/{send_id}/resume"), Value::Null).await;
    assert_eq!(status, 409, "resuming a succeeded workflow: {body}");
}
