//! The crash-test harness: the child program (`examples/engine_crash_child.rs`, built
//! once), its lives under a crash point, and what each life and the file show.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use alert_center::engine::{Engine, EngineConfig, SystemClock, WorkflowInfo, WorkflowStatus};
use alert_center::faults::CRASH_AT_ENV;
use alert_center::storage::Store;
use redb::ReadableTable;

use crate::support;
pub(super) use crate::support::now_ms;

use super::{ALL_STEPS, COUNTER, Case, LIFE_TIMEOUT, Output, SLEEP_MS};

/// Runs every case at once, each in its own directory and processes (they mostly sleep),
/// and fails with the list of the cases that failed.
pub(super) fn run_table(cases: &[Case]) {
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

pub(super) fn run_case(case: &Case) {
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

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
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
pub(super) fn open_store(path: &Path) -> Store {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    support::reopen(path)
}

/// The child program, built from the current sources. `cargo test` builds examples, but
/// `cargo test --test it` does not, and an example left from an earlier build would run
/// the engine as it was then: so the first test to need it asks cargo to bring it up to
/// date (the outer cargo holds no lock while tests run; an up-to-date build takes a
/// fraction of a second).
pub(super) fn child_program() -> &'static Path {
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
pub(super) struct Scenario {
    pub(super) dir: tempfile::TempDir,
    pub(super) program: PathBuf,
    pub(super) max_recovery_attempts: u32,
}

impl Scenario {
    pub(super) fn new(max_recovery_attempts: u32) -> Scenario {
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

    pub(super) fn db(&self) -> PathBuf {
        self.dir.path().join("engine.redb")
    }

    pub(super) fn step_log(&self) -> PathBuf {
        self.dir.path().join("steps.log")
    }

    /// Starts a life of the child, with `crash_at` armed if given.
    pub(super) fn spawn(&self, crash_at: Option<&str>) -> Running {
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
    pub(super) fn run(&self, crash_at: Option<&str>) -> Ended {
        self.spawn(crash_at).finish()
    }

    /// Runs a life until its sleep is durable, kills it there with SIGKILL from outside,
    /// and returns the recorded wake time.
    pub(super) fn kill_during_the_sleep(&self) -> u64 {
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
    pub(super) fn inspect(&self) -> Inspection {
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
    pub(super) fn assert_completed_once(
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
pub(super) struct Inspection {
    pub(super) info: WorkflowInfo,
    /// `"<kind> <name>"` of each recorded step, in order.
    pub(super) steps: Vec<String>,
    /// Rows `t1` and `t2` of the counter table.
    pub(super) counters: (u64, u64),
    /// Runs of the `before` and `after` step bodies.
    pub(super) body_runs: (usize, usize),
    /// The `woke` event, if set.
    pub(super) event: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Out,
    Err,
    /// The end of a line that the kill cut short: shown, never parsed.
    Cut,
}

/// Sends each line of `pipe` to `tx` from a thread of its own, until end of file.
pub(super) fn forward_lines(
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
pub(super) struct Running {
    pub(super) child: Child,
    pub(super) lines: mpsc::Receiver<(Stream, String)>,
    pub(super) seen: Vec<(Stream, String)>,
    pub(super) spawned_at_ms: u64,
    pub(super) deadline: Instant,
    pub(super) label: String,
}

impl Running {
    pub(super) fn start(mut command: Command, label: &str) -> Running {
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
    pub(super) fn next_line(&mut self) -> Option<(Stream, String)> {
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
    pub(super) fn wait_for_stderr(&mut self, prefix: &str) -> String {
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
    pub(super) fn finish(mut self) -> Ended {
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
pub(super) struct Ended {
    pub(super) status: ExitStatus,
    pub(super) lines: Vec<(Stream, String)>,
    pub(super) spawned_at_ms: u64,
    pub(super) label: String,
}

/// What the child printed once recovery had dispatched the pending work.
pub(super) struct Recovery {
    pub(super) at_ms: u64,
    pub(super) runnable: usize,
    pub(super) sleeping: usize,
}

impl Ended {
    pub(super) fn transcript(&self) -> String {
        format!(
            "the {} ended with {}\n{}",
            self.label,
            self.status,
            render(&self.lines)
        )
    }

    pub(super) fn assert_killed(&self) {
        assert_eq!(
            self.status.signal(),
            Some(libc::SIGKILL),
            "the child did not die by SIGKILL\n{}",
            self.transcript()
        );
    }

    /// The rest of the first line of `stream` that starts with `prefix`.
    pub(super) fn line_after(&self, stream: Stream, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .find_map(|(_, line)| line.strip_prefix(prefix))
    }

    /// The output of a life that finished the workflow.
    pub(super) fn done(&self) -> Output {
        let json = self
            .line_after(Stream::Out, "DONE ")
            .filter(|_| self.status.success())
            .unwrap_or_else(|| panic!("the child did not finish\n{}", self.transcript()));
        serde_json::from_str(json).unwrap()
    }

    /// Why the workflow failed, from a life that reported it.
    pub(super) fn failed(&self) -> String {
        match self.line_after(Stream::Out, "FAILED ") {
            Some(why) if self.status.code() == Some(2) => why.to_string(),
            _ => panic!("the child did not report a failure\n{}", self.transcript()),
        }
    }

    pub(super) fn recovery(&self) -> Recovery {
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

pub(super) fn render(lines: &[(Stream, String)]) -> String {
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
