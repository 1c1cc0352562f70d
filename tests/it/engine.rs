//! The durable engine in one process: replay, checkpoints, transactions, timers,
//! events, idempotent start, non-determinism, management, retention, group commit.
//! A "crash" here drops the runtime and the engine without shutdown, so only what was
//! committed survives; `engine_crash` does the same with a real process and SIGKILL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alert_center::engine::{
    EngineConfig, EngineError, ListFilter, ManualClock, WorkflowContext, WorkflowDef,
    WorkflowError, WorkflowStatus,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::support::{Life, T0_MS, eventually};

const COUNTER: TableDefinition<&str, u64> = TableDefinition::new("test_counter");
const WAIT: Duration = Duration::from_secs(10);

fn bump(txn: &WriteTransaction, key: &str) -> Result<u64, String> {
    let mut table = txn.open_table(COUNTER).map_err(|e| e.to_string())?;
    let next = table
        .get(key)
        .map_err(|e| e.to_string())?
        .map(|v| v.value())
        .unwrap_or(0)
        + 1;
    table.insert(key, next).map_err(|e| e.to_string())?;
    Ok(next)
}

fn counter(life: &Life, key: &str) -> u64 {
    let read = life.engine.store().db().begin_read().unwrap();
    match read.open_table(COUNTER) {
        Ok(table) => table.get(key).unwrap().map(|v| v.value()).unwrap_or(0),
        Err(_) => 0,
    }
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("engine.redb");
    (dir, path, ManualClock::new(T0_MS))
}

/// step "a" (counted), transaction "t" (bumps a row), sleep 60 s, step "b" (counted).
const TWO_STEPS: WorkflowDef<u64, (u64, u64)> = WorkflowDef::new("two_steps");

#[derive(Default)]
struct Calls {
    a: AtomicUsize,
    b: AtomicUsize,
}

fn register_two_steps(engine: &alert_center::engine::Engine, calls: &Arc<Calls>) {
    let calls = calls.clone();
    engine.register(TWO_STEPS, move |ctx: WorkflowContext, x: u64| {
        let calls = calls.clone();
        async move {
            let a = ctx
                .step("a", || async {
                    calls.a.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(x * 2)
                })
                .await?;
            let id = ctx.workflow_id().to_string();
            let t = ctx
                .transaction("t", move |txn| bump(txn, &id))
                .await?
                .map_err(WorkflowError::app)?;
            ctx.sleep(Duration::from_secs(60)).await?;
            ctx.step("b", || async {
                calls.b.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(())
            })
            .await?;
            Ok((a, t))
        }
    });
}

#[test]
fn checkpointed_steps_replay_after_a_crash_and_sleep_resumes_at_its_wake_time() {
    let (_dir, path, clock) = setup();
    let calls = Arc::new(Calls::default());
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        life.engine.start(TWO_STEPS, "wf-1", &21).await.unwrap();
        eventually("the workflow to sleep", WAIT, || clock.sleepers() == 1).await;
    });
    assert_eq!(counter(&life, "wf-1"), 1);
    let path = life.crash();

    clock.advance(Duration::from_secs(30));
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    assert_eq!(life.engine.armed_timers(), 0, "no task has been polled yet");
    life.block_on(async {
        eventually("the timer to be re-armed", WAIT, || {
            life.engine.armed_timers() == 1
        })
        .await;
        // 30 s of the 60 s are left: 29 s is not enough, 31 s is.
        clock.advance(Duration::from_secs(29));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            calls.b.load(Ordering::SeqCst),
            0,
            "woke before its wake time"
        );
        clock.advance(Duration::from_secs(2));
        let out = life
            .engine
            .handle::<(u64, u64)>("wf-1")
            .result(WAIT)
            .await
            .unwrap();
        assert_eq!(out, (42, 1));
    });
    assert_eq!(
        calls.a.load(Ordering::SeqCst),
        1,
        "step a ran again on replay"
    );
    assert_eq!(calls.b.load(Ordering::SeqCst), 1);
    assert_eq!(
        counter(&life, "wf-1"),
        1,
        "the transaction's effect happened twice"
    );
    let info = life.engine.get("wf-1").unwrap();
    assert_eq!(info.status, WorkflowStatus::Succeeded);
    assert_eq!(info.recovery_attempts, 1);
    assert_eq!(info.output, Some(serde_json::json!([42, 1])));
    let kinds: Vec<_> = life
        .engine
        .steps("wf-1")
        .unwrap()
        .iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds, ["step", "transaction", "sleep", "step"]);
}

#[test]
fn a_wake_time_that_passed_while_down_fires_at_once() {
    let (_dir, path, clock) = setup();
    let calls = Arc::new(Calls::default());
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        life.engine.start(TWO_STEPS, "wf-1", &1).await.unwrap();
        eventually("the workflow to sleep", WAIT, || clock.sleepers() == 1).await;
    });
    let path = life.crash();
    clock.advance(Duration::from_secs(3600));
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        let out = life
            .engine
            .handle::<(u64, u64)>("wf-1")
            .result(WAIT)
            .await
            .unwrap();
        assert_eq!(out, (2, 1));
    });
    assert_eq!(clock.sleepers(), 0);
}

#[test]
fn starting_an_existing_id_returns_it_and_never_runs_it_twice() {
    let (_dir, path, clock) = setup();
    let calls = Arc::new(Calls::default());
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        let starts = (0..8).map(|i| {
            let engine = life.engine.clone();
            tokio::spawn(async move { engine.start(TWO_STEPS, "same", &(i + 100)).await })
        });
        for start in futures::future::join_all(starts).await {
            assert_eq!(start.unwrap().unwrap().id(), "same");
        }
        eventually("the workflow to sleep", WAIT, || clock.sleepers() == 1).await;
        clock.advance(Duration::from_secs(61));
        let (a, t) = life
            .engine
            .handle::<(u64, u64)>("same")
            .result(WAIT)
            .await
            .unwrap();
        assert!((200..216).contains(&a));
        assert_eq!(t, 1);
        // Starting it again after it finished still returns the finished one.
        let again = life.engine.start(TWO_STEPS, "same", &7).await.unwrap();
        assert_eq!(again.result(WAIT).await.unwrap(), (a, t));
    });
    assert_eq!(calls.a.load(Ordering::SeqCst), 1);
    assert_eq!(counter(&life, "same"), 1);
}

const NOW_THEN_SLEEP: WorkflowDef<(), u64> = WorkflowDef::new("now_then_sleep");

#[test]
fn durable_now_is_replayed_not_read_again() {
    let (_dir, path, clock) = setup();
    let register = |e: &alert_center::engine::Engine| {
        e.register(NOW_THEN_SLEEP, |ctx: WorkflowContext, ()| async move {
            let now = ctx.now_ms().await?;
            ctx.sleep_until(now + 1_000).await?;
            Ok(now)
        })
    };
    let life = Life::boot(&path, &clock, EngineConfig::default(), register);
    life.block_on(async {
        life.engine.start(NOW_THEN_SLEEP, "n", &()).await.unwrap();
        eventually("the sleep", WAIT, || clock.sleepers() == 1).await;
    });
    let path = life.crash();
    clock.advance(Duration::from_secs(5));
    let life = Life::boot(&path, &clock, EngineConfig::default(), register);
    let now = life
        .block_on(life.engine.handle::<u64>("n").result(WAIT))
        .unwrap();
    assert_eq!(now, T0_MS);
}

const FAILING_TXN: WorkflowDef<String, String> = WorkflowDef::new("failing_txn");

#[test]
fn a_failed_transaction_rolls_back_alone_and_its_error_is_recorded() {
    let (_dir, path, clock) = setup();
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        e.register(
            FAILING_TXN,
            |ctx: WorkflowContext, key: String| async move {
                let k = key.clone();
                let result = ctx
                    .transaction("maybe", move |txn| {
                        let n = bump(txn, &k)?;
                        if k.starts_with("bad") {
                            Err(format!("refused after writing {n}"))
                        } else {
                            Ok(n)
                        }
                    })
                    .await?;
                Ok(format!("{result:?}"))
            },
        )
    });
    life.block_on(async {
        // Many at once so that good and bad ones share commits.
        let runs = (0..40).map(|i| {
            let engine = life.engine.clone();
            let key = if i % 4 == 0 {
                format!("bad-{i}")
            } else {
                format!("good-{i}")
            };
            tokio::spawn(async move {
                let handle = engine.start(FAILING_TXN, key.clone(), &key).await.unwrap();
                (key, handle.result(WAIT).await.unwrap())
            })
        });
        for run in futures::future::join_all(runs).await {
            let (key, out) = run.unwrap();
            if key.starts_with("bad") {
                assert_eq!(out, "Err(\"refused after writing 1\")");
                assert_eq!(
                    counter(&life, &key),
                    0,
                    "{key}: a failed transaction left its write"
                );
            } else {
                assert_eq!(out, "Ok(1)");
                assert_eq!(counter(&life, &key), 1);
            }
        }
    });
    assert!(
        life.engine
            .writer()
            .stats()
            .rollbacks
            .load(Ordering::Relaxed)
            >= 10
    );
}

const EVENTFUL: WorkflowDef<(), ()> = WorkflowDef::new("eventful");

#[test]
fn events_wake_waiters_and_time_out_clearly() {
    let (_dir, path, clock) = setup();
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        e.register(EVENTFUL, |ctx: WorkflowContext, ()| async move {
            ctx.sleep(Duration::from_secs(10)).await?;
            ctx.set_event("rec", &"hello".to_string()).await?;
            ctx.sleep(Duration::from_secs(10)).await?;
            Ok(())
        })
    });
    life.block_on(async {
        life.engine.start(EVENTFUL, "ev", &()).await.unwrap();
        let err = life
            .engine
            .get_event::<String>("ev", "rec", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Timeout { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("timed out after 50 ms waiting for event \"rec\""),
            "{err}"
        );

        let engine = life.engine.clone();
        let waiter =
            tokio::spawn(async move { engine.get_event::<String>("ev", "rec", WAIT).await });
        eventually("the first sleep", WAIT, || clock.sleepers() == 1).await;
        clock.advance(Duration::from_secs(10));
        assert_eq!(waiter.await.unwrap().unwrap(), "hello");
        // Already set: answered from the table at once.
        assert_eq!(
            life.engine
                .get_event::<String>("ev", "rec", Duration::ZERO)
                .await
                .unwrap(),
            "hello"
        );
        let err = life
            .engine
            .get_event::<String>("ev", "other", Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Timeout { .. }));
        eventually("the second sleep", WAIT, || clock.sleepers() == 1).await;
        clock.advance(Duration::from_secs(10));
        life.engine.handle::<()>("ev").result(WAIT).await.unwrap();
        let err = life
            .engine
            .get_event::<String>("ev", "other", WAIT)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::EventNeverSet { .. }), "{err}");
    });
}

const V1: WorkflowDef<(), ()> = WorkflowDef::new("versioned");

#[test]
fn replay_that_reaches_a_different_step_fails_as_non_deterministic() {
    let (_dir, path, clock) = setup();
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        e.register(V1, |ctx: WorkflowContext, ()| async move {
            ctx.step("fetch", || async { Ok::<_, String>(1) }).await?;
            ctx.sleep(Duration::from_secs(5)).await?;
            Ok(())
        })
    });
    life.block_on(async {
        life.engine.start(V1, "v", &()).await.unwrap();
        eventually("the sleep", WAIT, || clock.sleepers() == 1).await;
    });
    let path = life.crash();
    // The code changed under the pending workflow: another step comes first now.
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        e.register(V1, |ctx: WorkflowContext, ()| async move {
            ctx.step("produce", || async { Ok::<_, String>(2) }).await?;
            ctx.sleep(Duration::from_secs(5)).await?;
            Ok(())
        })
    });
    clock.advance(Duration::from_secs(5));
    let err = life
        .block_on(life.engine.handle::<()>("v").result(WAIT))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, EngineError::WorkflowFailed { .. }),
        "{message}"
    );
    assert!(
        message.contains("non-deterministic replay of workflow v: step 0 was recorded as step \"fetch\" but the code now calls step \"produce\""),
        "{message}"
    );
    assert_eq!(
        life.engine.steps("v").unwrap().len(),
        2,
        "the failed replay wrote a step"
    );
}

#[test]
fn cancel_stops_a_sleeping_workflow_and_resume_continues_it() {
    let (_dir, path, clock) = setup();
    let calls = Arc::new(Calls::default());
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        life.engine.start(TWO_STEPS, "c", &5).await.unwrap();
        eventually("the sleep", WAIT, || clock.sleepers() == 1).await;
        assert_eq!(
            life.engine.cancel("c").await.unwrap(),
            WorkflowStatus::Cancelled
        );
        let err = life
            .engine
            .handle::<(u64, u64)>("c")
            .result(WAIT)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Cancelled(_)), "{err}");
        eventually("the task to end", WAIT, || {
            life.engine.active_workflows() == 0
        })
        .await;
        // Cancelling again changes nothing; an unknown id is NotFound.
        assert_eq!(
            life.engine.cancel("c").await.unwrap(),
            WorkflowStatus::Cancelled
        );
        assert!(matches!(
            life.engine.cancel("nope").await,
            Err(EngineError::NotFound(_))
        ));
        let pending = ListFilter {
            status: Some(WorkflowStatus::Pending),
            ..ListFilter::default()
        };
        assert!(life.engine.list(&pending).unwrap().is_empty());

        assert_eq!(
            life.engine.resume("c").await.unwrap(),
            WorkflowStatus::Pending
        );
        eventually("the resumed sleep", WAIT, || clock.sleepers() == 1).await;
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            life.engine
                .handle::<(u64, u64)>("c")
                .result(WAIT)
                .await
                .unwrap(),
            (10, 1)
        );
        let err = life.engine.resume("c").await.unwrap_err();
        assert!(err.to_string().contains("already succeeded"), "{err}");
    });
    assert_eq!(
        calls.a.load(Ordering::SeqCst),
        1,
        "resume re-ran a checkpointed step"
    );
    assert_eq!(counter(&life, "c"), 1);
}

#[test]
fn a_cancelled_sleeper_stays_cancelled_across_a_restart() {
    let (_dir, path, clock) = setup();
    let calls = Arc::new(Calls::default());
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        life.engine.start(TWO_STEPS, "c", &5).await.unwrap();
        eventually("the sleep", WAIT, || clock.sleepers() == 1).await;
        life.engine.cancel("c").await.unwrap();
    });
    let path = life.crash();
    clock.advance(Duration::from_secs(120));
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    assert_eq!(life.engine.active_workflows(), 0);
    assert_eq!(
        life.engine.get("c").unwrap().status,
        WorkflowStatus::Cancelled
    );
    assert_eq!(calls.b.load(Ordering::SeqCst), 0);
}

const STUCK: WorkflowDef<(), ()> = WorkflowDef::new("stuck");

#[test]
fn a_workflow_that_never_progresses_is_failed_after_max_recovery_attempts() {
    let (_dir, path, clock) = setup();
    let config = EngineConfig {
        max_recovery_attempts: 2,
        ..EngineConfig::default()
    };
    let register = |e: &alert_center::engine::Engine| {
        // Stands in for a workflow that crashes the process: each life ends inside it.
        e.register(STUCK, |ctx: WorkflowContext, ()| async move {
            ctx.step("hang", std::future::pending::<Result<(), String>>)
                .await?;
            Ok(())
        })
    };
    let life = Life::boot(&path, &clock, config.clone(), register);
    life.block_on(life.engine.start(STUCK, "s", &())).unwrap();
    let mut path = life.crash();
    for attempt in 1..=2 {
        let life = Life::boot(&path, &clock, config.clone(), register);
        life.block_on(eventually("the attempt to be counted", WAIT, || {
            life.engine.get("s").unwrap().recovery_attempts == attempt
        }));
        path = life.crash();
    }
    let life = Life::boot(&path, &clock, config, register);
    let err = life
        .block_on(life.engine.handle::<()>("s").result(WAIT))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("gave up after 2 recovery attempts without progress"),
        "{err}"
    );
    assert_eq!(life.engine.get("s").unwrap().status, WorkflowStatus::Failed);
}

const QUICK: WorkflowDef<u32, u32> = WorkflowDef::new("quick");

fn register_quick(e: &alert_center::engine::Engine) {
    e.register(QUICK, |ctx: WorkflowContext, x: u32| async move {
        let y = ctx
            .step("double", || async move { Ok::<_, String>(x * 2) })
            .await?;
        if x == 13 {
            return Err(WorkflowError::app("unlucky"));
        }
        Ok(y)
    })
}

#[test]
fn list_get_and_steps_show_workflows_and_retention_deletes_old_ones() {
    let (_dir, path, clock) = setup();
    let config = EngineConfig {
        retention: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let life = Life::boot(&path, &clock, config, register_quick);
    life.block_on(async {
        for x in 0..5 {
            let h = life.engine.start(QUICK, format!("q{x}"), &x).await.unwrap();
            assert_eq!(h.result(WAIT).await.unwrap(), x * 2);
            clock.advance(Duration::from_secs(1));
        }
        let err = life
            .engine
            .start(QUICK, "q13", &13)
            .await
            .unwrap()
            .result(WAIT)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unlucky"), "{err}");

        let all = life.engine.list(&ListFilter::default()).unwrap();
        let ids: Vec<_> = all.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(ids, ["q13", "q4", "q3", "q2", "q1", "q0"], "newest first");
        let failed = ListFilter {
            status: Some(WorkflowStatus::Failed),
            ..ListFilter::default()
        };
        assert_eq!(
            life.engine.list(&failed).unwrap()[0].error.as_deref(),
            Some("unlucky")
        );
        let window = ListFilter {
            created_from_ms: Some(T0_MS + 1_000),
            created_until_ms: Some(T0_MS + 3_000),
            limit: 10,
            ..ListFilter::default()
        };
        let ids: Vec<_> = life
            .engine
            .list(&window)
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(ids, ["q2", "q1"]);
        let by_name = ListFilter {
            name: Some("other".into()),
            ..ListFilter::default()
        };
        assert!(life.engine.list(&by_name).unwrap().is_empty());
        let q3 = life.engine.get("q3").unwrap();
        assert_eq!(
            (q3.input, q3.output),
            (Some(serde_json::json!(3)), Some(serde_json::json!(6)))
        );
        assert_eq!(life.engine.steps("q3").unwrap()[0].name, "double");
        assert!(matches!(
            life.engine.get("zz"),
            Err(EngineError::NotFound(_))
        ));

        assert_eq!(life.engine.sweep_retention_once(1000).await.unwrap(), 0);
        clock.advance(Duration::from_secs(3600 - 2));
        // q0..q2 finished more than an hour ago now; q3, q4, q13 not.
        assert_eq!(life.engine.sweep_retention_once(2).await.unwrap(), 2);
        assert_eq!(life.engine.sweep_retention_once(1000).await.unwrap(), 1);
        let ids: Vec<_> = life
            .engine
            .list(&ListFilter::default())
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(ids, ["q13", "q4", "q3"]);
        assert!(matches!(
            life.engine.steps("q0"),
            Err(EngineError::NotFound(_))
        ));
    });
    let read = life.engine.store().begin_read().unwrap();
    let steps = read
        .open_table(alert_center::storage::tables::STEPS)
        .unwrap();
    assert_eq!(
        steps.iter().unwrap().count(),
        3,
        "steps of deleted workflows are left"
    );
}

#[test]
fn concurrent_workflows_share_commits() {
    let (_dir, path, clock) = setup();
    let life = Life::boot(&path, &clock, EngineConfig::default(), register_quick);
    life.block_on(async {
        let runs = (0..200u32).map(|x| {
            let engine = life.engine.clone();
            tokio::spawn(async move {
                engine
                    .start(QUICK, format!("g{x}"), &x)
                    .await
                    .unwrap()
                    .result(WAIT)
                    .await
            })
        });
        for (x, run) in futures::future::join_all(runs)
            .await
            .into_iter()
            .enumerate()
        {
            let x = x as u32;
            if x == 13 {
                assert!(run.unwrap().is_err());
            } else {
                assert_eq!(run.unwrap().unwrap(), x * 2);
            }
        }
    });
    let stats = life.engine.writer().stats();
    let (commits, items) = (
        stats.commits.load(Ordering::Relaxed),
        stats.items.load(Ordering::Relaxed),
    );
    assert_eq!(items, 600, "start, step and end of 200 workflows");
    assert!(
        commits < items / 3,
        "{commits} commits for {items} writes: no batching"
    );
}

#[test]
fn shutdown_does_not_wait_for_sleeping_workflows() {
    let (_dir, path, clock) = setup();
    let calls = Arc::new(Calls::default());
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        life.engine.start(TWO_STEPS, "z", &1).await.unwrap();
        eventually("the sleep", WAIT, || clock.sleepers() == 1).await;
        tokio::time::timeout(Duration::from_secs(2), life.engine.shutdown())
            .await
            .expect("shutdown waited");
        let err = life.engine.start(TWO_STEPS, "y", &1).await.unwrap_err();
        assert_eq!(err, EngineError::ShuttingDown);
    });
    let path = life.crash();
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    assert_eq!(
        life.engine.get("z").unwrap().status,
        WorkflowStatus::Pending
    );
    assert_eq!(life.engine.active_workflows(), 1);
}

#[test]
fn unknown_or_mismatched_workflow_names_fail_clearly() {
    let (_dir, path, clock) = setup();
    let calls = Arc::new(Calls::default());
    let life = Life::boot(&path, &clock, EngineConfig::default(), |e| {
        register_two_steps(e, &calls)
    });
    life.block_on(async {
        life.engine.start(TWO_STEPS, "x", &1).await.unwrap();
        eventually("the sleep", WAIT, || clock.sleepers() == 1).await;
    });
    let path = life.crash();
    // A build that no longer has `two_steps`.
    let life = Life::boot(&path, &clock, EngineConfig::default(), register_quick);
    life.block_on(async {
        let err = life.engine.start(TWO_STEPS, "y", &1).await.unwrap_err();
        assert_eq!(err, EngineError::UnknownWorkflow("two_steps".into()));
        let err = life.engine.start(QUICK, "x", &1).await.unwrap_err();
        assert!(
            matches!(err, EngineError::WrongWorkflowType { .. }),
            "{err}"
        );
        clock.advance(Duration::from_secs(60));
        let err = life
            .engine
            .handle::<(u64, u64)>("x")
            .result(WAIT)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no workflow named \"two_steps\" is registered"),
            "{err}"
        );
    });
}
