//! The engine survives `kill -9` of a real process. `examples/engine_crash_child.rs` runs
//! one workflow (step, transaction, now, sleep 1.5 s, now, event, step, transaction) and
//! is killed with SIGKILL, then started again on the same file until it prints the result.
//! The crashes reproduced: a kill just before each of the ten commits of a run becomes
//! durable (`writer.before_commit:1..=10`); just after each one, before its caller is
//! answered (`writer.after_commit:1..=10`); in a step after its body ran and before its
//! checkpoint; inside a transaction's write; right after a sleep is recorded; from
//! outside during the sleep, restarted at once or after the wake time has passed; after
//! every third commit of every life; and in a step that kills every life until recovery
//! gives up. After each: transaction effects happened exactly once, no recorded step is
//! lost, a step body ran again only when its checkpoint was lost, the sleep fired at its
//! recorded wake time (or at once if that had passed), and recovery attempts are counted.
//! One more test shows a bug these tests ran into: concurrent `Store::open` calls can
//! silence every later panic message of the process.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use alert_center::engine::WorkflowStatus;
use alert_center::storage::Store;
use redb::TableDefinition;
use serde::Deserialize;

mod harness;

use harness::*;

/// The child's counter table (row -> increments); the child declares the same.
const COUNTER: TableDefinition<&str, u64> = TableDefinition::new("crash_test_counter");

/// The child's sleep length.
const SLEEP_MS: u64 = 1_500;

/// The longest one life of the child may take before the test kills it and fails.
const LIFE_TIMEOUT: Duration = Duration::from_secs(60);

/// The operations of a complete run, in order, as `Engine::steps` shows them.
const ALL_STEPS: [&str; 8] = [
    "step before",
    "transaction t1",
    "now now",
    "sleep sleep",
    "now now",
    "set_event woke",
    "step after",
    "transaction t2",
];

/// The workflow's result, from the child's `DONE` line.
#[derive(Debug, Deserialize)]
struct Output {
    t1: u64,
    t2: u64,
    started_ms: u64,
    wake_at_ms: u64,
    woke_ms: u64,
}

/// One kill at a crash point armed in the first life, then one clean life.
struct Case {
    crash_at: &'static str,
    /// Runs of the `before` and `after` step bodies over both lives: 2 only where the
    /// kill came after a body ran and before its checkpoint was durable.
    body_runs: (usize, usize),
    /// 0 when nothing of the workflow was durable (or it had finished) at the kill.
    recovery_attempts: u32,
}

const fn case(crash_at: &'static str, body_runs: (usize, usize), recovery_attempts: u32) -> Case {
    Case {
        crash_at,
        body_runs,
        recovery_attempts,
    }
}

#[test]
fn a_kill_before_any_commit_is_durable_loses_only_that_commit() {
    run_table(&[
        // The start is lost: the restart starts the workflow afresh, it recovers nothing.
        case("writer.before_commit:1", (1, 1), 0),
        // The checkpoint of `before` is lost after its body ran: the body runs again.
        case("writer.before_commit:2", (2, 1), 1),
        case("writer.before_commit:3", (1, 1), 1),
        case("writer.before_commit:4", (1, 1), 1),
        case("writer.before_commit:5", (1, 1), 1),
        case("writer.before_commit:6", (1, 1), 1),
        case("writer.before_commit:7", (1, 1), 1),
        case("writer.before_commit:8", (1, 2), 1),
        case("writer.before_commit:9", (1, 1), 1),
        // Every step is durable, the end is not: the restart replays all and finishes.
        case("writer.before_commit:10", (1, 1), 1),
    ]);
}

#[test]
fn a_kill_after_a_commit_before_its_caller_is_answered_loses_nothing() {
    run_table(&[
        case("writer.after_commit:1", (1, 1), 1),
        case("writer.after_commit:2", (1, 1), 1),
        case("writer.after_commit:3", (1, 1), 1),
        case("writer.after_commit:4", (1, 1), 1),
        case("writer.after_commit:5", (1, 1), 1),
        case("writer.after_commit:6", (1, 1), 1),
        case("writer.after_commit:7", (1, 1), 1),
        case("writer.after_commit:8", (1, 1), 1),
        case("writer.after_commit:9", (1, 1), 1),
        // The end is durable: the restart finds the workflow finished and recovers nothing.
        case("writer.after_commit:10", (1, 1), 0),
    ]);
}

#[test]
fn a_kill_inside_a_step_a_transaction_or_right_after_a_sleep_is_recorded() {
    run_table(&[
        case("step.before_checkpoint:1", (2, 1), 1),
        case("step.before_checkpoint:2", (1, 2), 1),
        case("transaction.applied:1", (1, 1), 1),
        case("transaction.applied:2", (1, 1), 1),
        case("sleep.recorded:1", (1, 1), 1),
    ]);
}

#[test]
fn a_kill_during_the_sleep_wakes_the_restarted_process_at_the_recorded_time() {
    let scenario = Scenario::new(10);
    let wake_at_ms = scenario.kill_during_the_sleep();

    let restarted = scenario.run(None);
    let output = restarted.done();
    let recovery = restarted.recovery();
    assert_eq!(
        (recovery.runnable, recovery.sleeping),
        (0, 1),
        "the restart did not find the workflow asleep\n{}",
        restarted.transcript()
    );
    assert_eq!(output.wake_at_ms, wake_at_ms, "the wake time changed");
    assert!(
        output.woke_ms >= wake_at_ms,
        "woke {} ms before its wake time",
        wake_at_ms - output.woke_ms
    );
    let due_ms = wake_at_ms.max(recovery.at_ms);
    assert!(
        output.woke_ms - due_ms < 1_000,
        "woke {} ms after it was due",
        output.woke_ms - due_ms
    );
    scenario.assert_completed_once(&output, (1, 1), 1);
}

#[test]
fn a_wake_time_that_passed_while_the_process_was_down_fires_at_once() {
    let scenario = Scenario::new(10);
    let wake_at_ms = scenario.kill_during_the_sleep();
    // Waits for a wall-clock time, not for the child: nothing runs meanwhile.
    std::thread::sleep(Duration::from_millis(
        (wake_at_ms + 200).saturating_sub(now_ms()),
    ));

    let restarted = scenario.run(None);
    let output = restarted.done();
    let recovery = restarted.recovery();
    assert_eq!(
        (recovery.runnable, recovery.sleeping),
        (1, 0),
        "the restart did not find the workflow due\n{}",
        restarted.transcript()
    );
    assert!(output.woke_ms >= wake_at_ms);
    // Sleeping the whole length again would take SLEEP_MS (1.5 s) after the start.
    let took_ms = output.woke_ms - restarted.spawned_at_ms;
    assert!(
        took_ms < 1_000,
        "the restarted process took {took_ms} ms to wake a workflow already due"
    );
    scenario.assert_completed_once(&output, (1, 1), 1);
}

#[test]
fn a_kill_after_every_third_commit_of_every_life_loses_nothing() {
    let scenario = Scenario::new(10);
    let mut kills = 0;
    let output = loop {
        let life = scenario.run(Some("writer.after_commit:3"));
        if life.status.signal().is_none() {
            break life.done();
        }
        life.assert_killed();
        kills += 1;
        // Every life but the last commits at least one new step: at most 9 of them.
        assert!(kills <= 9, "no progress after {kills} kills");
    };
    assert!(kills >= 3, "only {kills} kills for ten commits");
    scenario.assert_completed_once(&output, (1, 1), 1);
}

#[test]
fn a_step_that_kills_every_life_is_failed_after_max_recovery_attempts() {
    let scenario = Scenario::new(3);
    for life in 1..=4 {
        scenario.run(Some("step.before_checkpoint")).assert_killed();
        let seen = scenario.inspect();
        assert_eq!(seen.info.status, WorkflowStatus::Pending);
        assert_eq!(
            seen.info.recovery_attempts,
            life - 1,
            "attempts after life {life}"
        );
        assert_eq!(seen.body_runs, (life as usize, 0), "after life {life}");
    }
    let last = scenario.run(Some("step.before_checkpoint"));
    let why = last.failed();
    assert!(
        why.contains("gave up after 3 recovery attempts without progress"),
        "{why}"
    );
    let seen = scenario.inspect();
    assert_eq!(seen.info.status, WorkflowStatus::Failed);
    assert_eq!(seen.info.recovery_attempts, 4);
    assert_eq!(seen.body_runs, (4, 0), "the last life ran the step again");
    assert!(seen.steps.is_empty(), "{:?}", seen.steps);
    assert_eq!(seen.counters, (0, 0));
}

/// Makes this test binary, started by [`concurrent_store_opens_do_not_silence_panics`],
/// the probe rather than the test.
const HOOK_PROBE_ENV: &str = "ALERT_CENTER_HOOK_PROBE";
const PROBE_PANIC: &str = "the probe panics after concurrent opens";

/// Not a crash, but a bug these tests ran into: `Store::open` silences panics while it
/// opens (so that a damaged file yields one clear line) by swapping the process-wide
/// panic hook out and back in, and two opens that overlap can put the silent hook back
/// for good. Every later panic in the process then prints nothing: a failing assertion
/// of any test in this binary shows no message. The probe runs in a copy of this binary,
/// so that the hook of this one is left alone.
#[test]
fn concurrent_store_opens_do_not_silence_panics() {
    if std::env::var_os(HOOK_PROBE_ENV).is_some() {
        open_stores_concurrently_then_panic();
    }
    // This very binary, even if a build has replaced the file at its path since.
    let mut probe = Command::new("/proc/self/exe");
    probe
        .args([
            "--exact",
            "engine_crash::concurrent_store_opens_do_not_silence_panics",
            "--nocapture",
        ])
        .env(HOOK_PROBE_ENV, "1");
    let ended = Running::start(probe, "hook probe").finish();
    assert!(!ended.status.success(), "{}", ended.transcript());
    assert!(
        ended
            .lines
            .iter()
            .any(|(_, line)| line.contains(PROBE_PANIC)),
        "a panic after concurrent Store::open calls printed nothing\n{}",
        ended.transcript()
    );
}

fn open_stores_concurrently_then_panic() -> ! {
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let dir = dir.path();
            scope.spawn(move || {
                for i in 0..10 {
                    drop(Store::open(dir.join(format!("{thread}-{i}.redb"))).unwrap());
                }
            });
        }
    });
    panic!("{PROBE_PANIC}");
}
