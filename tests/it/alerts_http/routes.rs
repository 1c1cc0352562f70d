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
        (json!({"message": "a\u{0}b"}), "control character U+0000"),
        (json!({"message": "\u{1b}[2J"}), "control character U+001B"),
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
