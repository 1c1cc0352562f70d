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

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alert_center::engine::{Engine, EngineConfig, SystemClock, WorkflowInfo, WorkflowStatus};
use alert_center::faults::CRASH_AT_ENV;
use alert_center::storage::Store;
use redb::{ReadableTable, TableDefinition};
use serde::Deserialize;

use crate::support;

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

/// Runs every case at once, each in its own directory and processes (they mostly sleep),
/// and fails with the list of the cases that failed.
fn run_table(cases: &[Case]) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = cases
            .iter()
            .map(|case| (case.crash_at, scope.spawn(|| run_case(case))))
            .collect();
        running
            .into_iter()
            .filter_map(|(crash_at, thread)| {
                let panic = thread.join().err()?;
                Some(format!("{crash_at}: {}", panic_message(&*panic)))
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn run_case(case: &Case) {
    let scenario = Scenario::new(10);
    let killed = scenario.run(Some(case.crash_at));
    killed.assert_killed();
    let output = scenario.run(None).done();
    // The sleep was durable before the kill: the restart must keep its wake time.
    if let Some(wake_at_ms) = killed.line_after(Stream::Err, "sleeping until ") {
        assert_eq!(
            Ok(output.wake_at_ms),
            wake_at_ms.parse(),
            "the recorded wake time was not kept"
        );
    }
    scenario.assert_completed_once(&output, case.body_runs, case.recovery_attempts);
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Opens a scenario's database in this process, one open at a time: `Store::open`
/// swaps the process-wide panic hook while it runs, and concurrent opens can leave it
/// silent, which would hide the failure messages of every test (see
/// [`concurrent_store_opens_do_not_silence_panics`]).
fn open_store(path: &Path) -> Store {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    support::reopen(path)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The child program, built from the current sources. `cargo test` builds examples, but
/// `cargo test --test it` does not, and an example left from an earlier build would run
/// the engine as it was then: so the first test to need it asks cargo to bring it up to
/// date (the outer cargo holds no lock while tests run; an up-to-date build takes a
/// fraction of a second).
fn child_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        // This binary is <target>/<profile>/deps/it-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let target_dir = profile_dir.parent().unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--locked", "--example", "engine_crash_child"])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let built = build.output().unwrap();
        let program = profile_dir.join("examples").join("engine_crash_child");
        assert!(
            built.status.success() && program.is_file(),
            "cannot build {} ({}); build it with `cargo build --example engine_crash_child`\n{}",
            program.display(),
            built.status,
            String::from_utf8_lossy(&built.stderr)
        );
        program
    })
}

/// One database and step log that successive lives of the child share.
struct Scenario {
    dir: tempfile::TempDir,
    program: PathBuf,
    max_recovery_attempts: u32,
}

impl Scenario {
    fn new(max_recovery_attempts: u32) -> Scenario {
        // In the target directory, on the file system of the child program, to link it.
        let dir = tempfile::Builder::new()
            .prefix("engine-crash-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        // A link of its own: a build in the same target directory (another `cargo test`
        // in this checkout) may replace the program while this test runs, and a link
        // keeps the file it was made to. A copy if the file system has no links.
        let program = dir.path().join("engine_crash_child");
        if std::fs::hard_link(child_program(), &program).is_err() {
            std::fs::copy(child_program(), &program).unwrap();
        }
        Scenario {
            dir,
            program,
            max_recovery_attempts,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("engine.redb")
    }

    fn step_log(&self) -> PathBuf {
        self.dir.path().join("steps.log")
    }

    /// Starts a life of the child, with `crash_at` armed if given.
    fn spawn(&self, crash_at: Option<&str>) -> Running {
        let mut command = Command::new(&self.program);
        command
            .arg(self.db())
            .arg(self.step_log())
            .arg(self.max_recovery_attempts.to_string())
            .env_remove(CRASH_AT_ENV)
            .env_remove("RUST_LOG");
        if let Some(point) = crash_at {
            command.env(CRASH_AT_ENV, point);
        }
        Running::start(command, &format!("child armed with {crash_at:?}"))
    }

    /// One whole life of the child.
    fn run(&self, crash_at: Option<&str>) -> Ended {
        self.spawn(crash_at).finish()
    }

    /// Runs a life until its sleep is durable, kills it there with SIGKILL from outside,
    /// and returns the recorded wake time.
    fn kill_during_the_sleep(&self) -> u64 {
        let mut first = self.spawn(None);
        let wake_at_ms: u64 = first.wait_for_stderr("sleeping until ").parse().unwrap();
        first.child.kill().unwrap();
        let killed_at_ms = now_ms();
        first.finish().assert_killed();
        assert!(
            killed_at_ms < wake_at_ms,
            "killed {} ms after the wake time, not during the sleep",
            killed_at_ms - wake_at_ms
        );
        wake_at_ms
    }

    /// Reads the database back once the child is gone.
    fn inspect(&self) -> Inspection {
        let store = open_store(&self.db());
        let (counters, info, steps, event) = {
            let read = store.begin_read().unwrap();
            let counters = match read.open_table(COUNTER) {
                Ok(table) => {
                    let row = |key| table.get(key).unwrap().map_or(0, |v| v.value());
                    (row("t1"), row("t2"))
                }
                Err(redb::TableError::TableDoesNotExist(_)) => (0, 0),
                Err(e) => panic!("cannot open the counter table: {e}"),
            };
            drop(read);
            let engine = Engine::new(store, Arc::new(SystemClock), EngineConfig::default());
            let info = engine.get("wf").unwrap();
            let steps: Vec<String> = engine
                .steps("wf")
                .unwrap()
                .into_iter()
                .map(|s| format!("{} {}", s.kind, s.name))
                .collect();
            let event = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(engine.get_event::<u64>("wf", "woke", Duration::ZERO))
                .ok();
            (counters, info, steps, event)
        };
        // The engine's writer thread lets go of the file a moment after the engine is
        // dropped: wait for that, so that the next life of the child can open it.
        drop(open_store(&self.db()));
        let log = std::fs::read_to_string(self.step_log()).unwrap_or_default();
        let runs = |name| log.lines().filter(|l| *l == name).count();
        Inspection {
            info,
            steps,
            counters,
            body_runs: (runs("before"), runs("after")),
            event,
        }
    }

    /// The workflow succeeded with every step recorded once, in order, each transaction
    /// applied exactly once, and the sleep fired no earlier than its wake time.
    fn assert_completed_once(
        &self,
        output: &Output,
        body_runs: (usize, usize),
        recovery_attempts: u32,
    ) {
        let seen = self.inspect();
        assert_eq!(
            seen.info.status,
            WorkflowStatus::Succeeded,
            "{:?}",
            seen.info
        );
        assert_eq!(seen.steps, ALL_STEPS, "recorded steps");
        assert_eq!(seen.counters, (1, 1), "transaction rows (t1, t2)");
        assert_eq!((output.t1, output.t2), (1, 1), "transaction results");
        assert_eq!(seen.body_runs, body_runs, "runs of the step bodies");
        assert_eq!(
            seen.info.recovery_attempts, recovery_attempts,
            "recovery attempts"
        );
        assert_eq!(output.wake_at_ms, output.started_ms + SLEEP_MS);
        assert!(
            output.woke_ms >= output.wake_at_ms,
            "woke {} ms early",
            output.wake_at_ms - output.woke_ms
        );
        assert_eq!(seen.event, Some(output.woke_ms), "event `woke`");
    }
}

/// What a scenario's database and step log hold.
struct Inspection {
    info: WorkflowInfo,
    /// `"<kind> <name>"` of each recorded step, in order.
    steps: Vec<String>,
    /// Rows `t1` and `t2` of the counter table.
    counters: (u64, u64),
    /// Runs of the `before` and `after` step bodies.
    body_runs: (usize, usize),
    /// The `woke` event, if set.
    event: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
    /// The end of a line that the kill cut short: shown, never parsed.
    Cut,
}

/// Sends each line of `pipe` to `tx` from a thread of its own, until end of file.
fn forward_lines(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    tx: mpsc::Sender<(Stream, String)>,
) {
    std::thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        let mut line = String::new();
        while matches!(pipe.read_line(&mut line), Ok(n) if n > 0) {
            let whole = line.ends_with('\n');
            let text = line.trim_end_matches('\n').to_string();
            line.clear();
            if tx
                .send((if whole { stream } else { Stream::Cut }, text))
                .is_err()
            {
                return;
            }
        }
    });
}

/// A live child, its output read as it comes.
struct Running {
    child: Child,
    lines: mpsc::Receiver<(Stream, String)>,
    seen: Vec<(Stream, String)>,
    spawned_at_ms: u64,
    deadline: Instant,
    label: String,
}

impl Running {
    fn start(mut command: Command, label: &str) -> Running {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned_at_ms = now_ms();
        let mut child = command.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        forward_lines(child.stdout.take().unwrap(), Stream::Out, tx.clone());
        forward_lines(child.stderr.take().unwrap(), Stream::Err, tx);
        Running {
            child,
            lines,
            seen: Vec::new(),
            spawned_at_ms,
            deadline: Instant::now() + LIFE_TIMEOUT,
            label: label.to_string(),
        }
    }

    /// The next line, or `None` once both pipes are closed (the child is gone). Kills the
    /// child and fails the test when the life outlasts [`LIFE_TIMEOUT`].
    fn next_line(&mut self) -> Option<(Stream, String)> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the {} was still running after {LIFE_TIMEOUT:?}\n{}",
                    self.label,
                    render(&self.seen)
                );
            }
        }
    }

    /// Waits for a stderr line starting with `prefix` and returns the rest of it.
    fn wait_for_stderr(&mut self, prefix: &str) -> String {
        while let Some((stream, line)) = self.next_line() {
            if let (Stream::Err, Some(rest)) = (stream, line.strip_prefix(prefix)) {
                return rest.to_string();
            }
        }
        let status = self.child.wait().unwrap();
        panic!(
            "the child ended ({status}) without printing {prefix:?}\n{}",
            render(&self.seen)
        );
    }

    /// Reads the rest of the output and reaps the child.
    fn finish(mut self) -> Ended {
        while self.next_line().is_some() {}
        // Both pipes are closed, so the child has exited: this does not block for long.
        let status = self.child.wait().unwrap();
        Ended {
            status,
            lines: self.seen,
            spawned_at_ms: self.spawned_at_ms,
            label: self.label,
        }
    }
}

/// A life of the child that has ended.
struct Ended {
    status: ExitStatus,
    lines: Vec<(Stream, String)>,
    spawned_at_ms: u64,
    label: String,
}

/// What the child printed once recovery had dispatched the pending work.
struct Recovery {
    at_ms: u64,
    runnable: usize,
    sleeping: usize,
}

impl Ended {
    fn transcript(&self) -> String {
        format!(
            "the {} ended with {}\n{}",
            self.label,
            self.status,
            render(&self.lines)
        )
    }

    fn assert_killed(&self) {
        assert_eq!(
            self.status.signal(),
            Some(libc::SIGKILL),
            "the child did not die by SIGKILL\n{}",
            self.transcript()
        );
    }

    /// The rest of the first line of `stream` that starts with `prefix`.
    fn line_after(&self, stream: Stream, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .find_map(|(_, line)| line.strip_prefix(prefix))
    }

    /// The output of a life that finished the workflow.
    fn done(&self) -> Output {
        let json = self
            .line_after(Stream::Out, "DONE ")
            .filter(|_| self.status.success())
            .unwrap_or_else(|| panic!("the child did not finish\n{}", self.transcript()));
        serde_json::from_str(json).unwrap()
    }

    /// Why the workflow failed, from a life that reported it.
    fn failed(&self) -> String {
        match self.line_after(Stream::Out, "FAILED ") {
            Some(why) if self.status.code() == Some(2) => why.to_string(),
            _ => panic!("the child did not report a failure\n{}", self.transcript()),
        }
    }

    fn recovery(&self) -> Recovery {
        let line = self
            .line_after(Stream::Err, "recovered at ")
            .unwrap_or_else(|| panic!("no recovery line\n{}", self.transcript()));
        // "<ms>: runnable=<n> sleeping=<n>"
        let fields: Vec<&str> = line
            .split([':', ' ', '='])
            .filter(|f| !f.is_empty())
            .collect();
        match fields[..] {
            [at_ms, "runnable", runnable, "sleeping", sleeping] => Recovery {
                at_ms: at_ms.parse().unwrap(),
                runnable: runnable.parse().unwrap(),
                sleeping: sleeping.parse().unwrap(),
            },
            _ => panic!("cannot parse the recovery line {line:?}"),
        }
    }
}

fn render(lines: &[(Stream, String)]) -> String {
    lines
        .iter()
        .map(|(stream, line)| match stream {
            Stream::Out => format!("  out| {line}"),
            Stream::Err => format!("  err| {line}"),
            Stream::Cut => format!("  cut| {line}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
