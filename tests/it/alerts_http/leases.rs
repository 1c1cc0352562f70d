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
