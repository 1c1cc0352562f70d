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

/// One employee's move in a wave of `random_interleavings_...`.
#[derive(Debug, Clone, Copy)]
enum Move {
    Ask,
    MoreTime,
    Fix,
    LogOut,
}

/// Sixteen employees against a handful of alerts, for 40 waves: in each wave every
/// employee makes a random move (ask, more time, fix, log out), all at once. After
/// every wave the invariants hold as the API shows them, every fix acknowledged is
/// resolved, and nothing resolved is ever assigned again; every ten waves the app is
/// stopped and the full check runs on the file. Seeded (`TEST_SEED` replays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_keep_every_invariant_after_each_wave() {
    let mut app = spawn_app();
    let api = Api::of(&app);
    let staff = names("racer", 0..16);
    let mut rng = crate::support::Rng::from_env("races");
    // Each alert fixed, and who fixed it (a resolved alert keeps its fixer's name).
    let mut resolved: BTreeMap<u64, String> = BTreeMap::new();
    let mut answered = BTreeMap::<&str, usize>::new();
    for wave in 0..40 {
        if wave % 4 == 0 {
            let labels: Vec<String> = (0..3).map(|i| format!("wave {wave} alert {i}")).collect();
            api.send_all(&labels.iter().map(String::as_str).collect::<Vec<_>>())
                .await;
        }
        let moves: Vec<(String, Move)> = staff
            .iter()
            .map(|name| {
                let pick = match rng.between(0, 9) {
                    0..=3 => Move::Ask,
                    4..=5 => Move::MoreTime,
                    6..=7 => Move::Fix,
                    _ => Move::LogOut,
                };
                (name.clone(), pick)
            })
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(moves.len()));
        let tasks: Vec<_> = moves
            .into_iter()
            .map(|(name, pick)| {
                let (api, barrier) = (api.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let body = json!({ "name": name });
                    let answer = match pick {
                        Move::Ask => api.get(&assignment_path(&name, false)).await,
                        Move::MoreTime => api.post("/respond/more_time", &body).await,
                        Move::Fix => api.post("/respond/fixed", &body).await,
                        Move::LogOut => api.post("/respond/cancel", &body).await,
                    };
                    (name, pick, answer)
                })
            })
            .collect();
        let mut fixed_now = BTreeMap::new();
        for task in tasks {
            let (name, pick, answer) = task.await.expect("a racing request failed");
            let outcome = match (pick, answer.status) {
                (Move::Ask, StatusCode::OK) => "asked",
                (Move::MoreTime, StatusCode::OK) => "more time",
                (Move::Fix, StatusCode::OK) => {
                    fixed_now.insert(answer.json()["alert_id"].as_u64().unwrap(), name);
                    "fixed"
                }
                (Move::LogOut, StatusCode::OK) => "logged out",
                (Move::MoreTime | Move::Fix | Move::LogOut, StatusCode::CONFLICT) => {
                    answer.error();
                    "had nothing"
                }
                _ => panic!("{}: {} {}", answer.what, answer.status, answer.body),
            };
            *answered.entry(outcome).or_default() += 1;
        }

        let holders = check_over_http(&api).await;
        let history = api.history().await;
        resolved.extend(fixed_now);
        for (id, fixer) in &resolved {
            assert_eq!(
                state_of(&history, *id),
                (RESOLVED, Some(fixer.clone())),
                "wave {wave}: alert {id} was fixed"
            );
        }
        assert!(
            holders.values().all(|id| !resolved.contains_key(id)),
            "wave {wave}: a resolved alert is held: {holders:?}"
        );
        if wave % 10 == 9 {
            checkpoint(&mut app);
        }
    }
    println!("races: 40 waves of 16 moves: {answered:?}");
    assert!(
        answered.get("fixed").copied().unwrap_or(0) >= 10,
        "{answered:?}"
    );
    stop_and_check(&mut app);
}
