//! `spawn_app()`: the real `alert-center` binary as a child process, on a redb file in a
//! temporary directory and a free 127.0.0.1 port, with its embedded Kafka broker (no
//! `KAFKA_BROKER`). It returns once the app has logged `alert-center ready: open
//! http://ADDR/`, and can then be killed (`SIGKILL`, as `kill -9`), stopped (`SIGTERM`)
//! and restarted on the same file and the same address, as many times as a test likes.
//!
//! By default the app runs alone (`--no-supervisor`): the test is its supervisor, and
//! the process it kills is the app itself. `AppOptions::supervised()` runs the binary as
//! a person does, supervisor and app; the supervisor restarts the app on the same
//! address when it dies, and `wait_for_supervisor_restart` waits for that.
//!
//! The process calls here block the calling thread (for a bounded time) rather than
//! being async: a std thread drains the child's stderr for its whole life, whatever
//! runtime the test uses, so a chatty child never stalls on a full pipe.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use alert_center::alerts::store;

use crate::support;

/// What the app logs once it serves; the listening address follows it.
const READY_MARK: &str = "alert-center ready: open http://";

/// The longest a start may take (a debug build starts in well under a second).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest a stopped or crashing process may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest any one HTTP request of `TestApp::http` may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How the app is started.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// `--lease-secs`.
    pub lease_secs: f64,
    /// Run the supervisor too (the binary's default) instead of `--no-supervisor`.
    pub supervised: bool,
    /// Extra environment variables, such as `ALERT_CENTER_CRASH_AT`.
    pub env: Vec<(String, String)>,
    /// `KAFKA_BROKER`: a broker the test owns. None: the app's embedded broker.
    pub kafka_broker: Option<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            lease_secs: 30.0,
            supervised: false,
            env: Vec::new(),
            kafka_broker: None,
        }
    }
}

impl AppOptions {
    pub fn lease_secs(lease_secs: f64) -> AppOptions {
        AppOptions {
            lease_secs,
            ..AppOptions::default()
        }
    }

    /// Alone, on a broker the test owns.
    pub fn with_broker(bootstrap: &str) -> AppOptions {
        AppOptions {
            kafka_broker: Some(bootstrap.to_string()),
            ..AppOptions::default()
        }
    }

    pub fn supervised() -> AppOptions {
        AppOptions {
            supervised: true,
            ..AppOptions::default()
        }
    }
}

/// The app as a child process (in a process group of its own, with the app under it when
/// supervised). Dropping it kills the group (`SIGKILL`).
pub struct TestApp {
    dir: tempfile::TempDir,
    db: PathBuf,
    addr: SocketAddr,
    options: AppOptions,
    child: Option<Child>,
    /// The address of each ready line of the running process, as it is logged.
    ready: Option<mpsc::Receiver<SocketAddr>>,
    lives: usize,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

/// Starts the app alone with the default 30 s lease and waits until it serves.
pub fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default())
}

/// Starts the app with `options` and waits until it serves.
pub fn spawn_app_with(options: AppOptions) -> TestApp {
    let mut app = new_app(options);
    app.start();
    app
}

/// A start that never served: how the process exited, and what it logged.
#[derive(Debug)]
pub struct Refused {
    pub status: ExitStatus,
    pub log: String,
}

/// Starts the app alone on a copy of the database file `db`, as `spawn_app` would;
/// `Err` if the process exits before it serves.
pub fn try_spawn_app_on(db: &std::path::Path) -> Result<TestApp, Refused> {
    let mut app = new_app(AppOptions::default());
    std::fs::copy(db, &app.db).expect("cannot copy the database file");
    app.try_start().map(|()| app)
}

fn new_app(options: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let db = dir.path().join("alert-center.redb");
    let http = reqwest::Client::builder()
        // Only ever 127.0.0.1: never through a proxy from the environment.
        .no_proxy()
        // No pooled connections: after a kill and restart, none is stale.
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("cannot build the HTTP client");
    // Alone, the app binds port 0 and logs the port it got (no race with anyone). A
    // supervisor passes its own arguments to every restart, so it needs the real port.
    let port = if options.supervised { free_port() } else { 0 };
    TestApp {
        dir,
        db,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        options,
        child: None,
        ready: None,
        lives: 0,
        log: Arc::default(),
        http,
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

impl TestApp {
    /// `http://127.0.0.1:PORT`, without a trailing slash; the same in every life.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The pid of the process the test started (the supervisor, when supervised).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the app is not running").id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The options of the next (re)start, to change, say, the crash point armed.
    pub fn options_mut(&mut self) -> &mut AppOptions {
        &mut self.options
    }

    /// A client for this app: no proxy, no pooled connections, bounded timeouts.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The database file (open it only while the app is stopped).
    pub fn db_path(&self) -> &std::path::Path {
        &self.db
    }

    /// How many log lines so far contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Everything the app wrote on stderr so far, in every life, without colours.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Kills the running process (and the app under a supervisor) with `SIGKILL`, and
    /// returns once the database file is free again.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the app is not running");
        kill_group(&child);
        child.wait().expect("cannot reap the app");
        self.ready = None;
        if self.options.supervised {
            // The app under the supervisor is not our child: wait for its file lock.
            drop(support::reopen(&self.db));
        }
    }

    /// Asks the running process to stop (`SIGTERM`) and returns how it exited.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.child.as_ref().expect("the app is not running").id();
        // SAFETY: kill(2) on our own child, not yet reaped, so the pid is still ours.
        let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "cannot SIGTERM the app");
        self.wait_for_exit(EXIT_TIMEOUT)
    }

    /// Waits until the running process exits by itself (say, the crash it was asked for)
    /// and returns how it exited; kills it and panics after `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the app is not running");
        self.ready = None;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("cannot wait for the app") {
                return status;
            }
            if Instant::now() >= deadline {
                kill_group(&child);
                let _ = child.wait();
                panic!(
                    "the app did not exit within {timeout:?}; killed it. Its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a new life on the same database file and address; waits until it serves.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart: the app still runs; kill or stop it first"
        );
        self.start();
    }

    /// Supervised only: waits until the supervisor has restarted the app after it died
    /// and the new app serves (on the same address).
    pub fn wait_for_supervisor_restart(&mut self) {
        assert!(self.options.supervised, "the app runs without a supervisor");
        let ready = self.ready.as_ref().expect("the supervisor is not running");
        match ready.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => assert_eq!(addr, self.addr, "the app came back on another address"),
            Err(_) => panic!(
                "the supervisor did not bring the app back within {READY_TIMEOUT:?}. Its log:\n{}",
                self.log_tail()
            ),
        }
    }

    /// Runs `alert_center::alerts::store::check_invariants` on the database file. The app
    /// must be stopped: it holds the file open while it runs.
    pub fn check_invariants(&self) -> Result<(), String> {
        assert!(
            self.child.is_none(),
            "check_invariants: stop the app first (it holds the file)"
        );
        let store = support::reopen(&self.db);
        let read = store.begin_read().map_err(|e| e.to_string())?;
        store::check_invariants(&read)
    }

    fn start(&mut self) {
        if let Err(refused) = self.try_start() {
            panic!(
                "life {} of the app exited before it was ready ({}). Its log:\n{}",
                self.lives, refused.status, refused.log
            );
        }
    }

    /// Starts a life; `Err` if the process exits before it serves. Panics if it neither
    /// serves nor exits within `READY_TIMEOUT`.
    fn try_start(&mut self) -> Result<(), Refused> {
        self.lives += 1;
        let life = self.lives;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alert-center"));
        cmd.arg("--db")
            .arg(&self.db)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--lease-secs")
            .arg(self.options.lease_secs.to_string());
        if !self.options.supervised {
            cmd.arg("--no-supervisor");
        }
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("ALERT_CENTER_") || key_text.starts_with("KAFKA_") {
                cmd.env_remove(&key);
            }
        }
        if let Some(broker) = &self.options.kafka_broker {
            cmd.env("KAFKA_BROKER", broker);
        }
        cmd.env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            // Its own directory: no `.env` of the checkout is read.
            .current_dir(self.dir.path())
            // Its own process group: one signal reaches the supervisor and the app.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start the alert-center binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || drain_stderr(stderr, life, &log, &ready_tx));
        self.child = Some(child);
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(addr) => self.addr = addr,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.kill();
                panic!(
                    "life {life} of the app was not ready within {READY_TIMEOUT:?}. Its log:\n{}",
                    self.log_tail()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.wait_for_exit(EXIT_TIMEOUT);
                return Err(Refused {
                    status,
                    log: self.log_tail(),
                });
            }
        }
        self.ready = Some(ready_rx);
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(80);
        log[from..].join("\n")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&child);
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- alert-center log ---\n{}", self.log_tail());
        }
    }
}

/// `SIGKILL` to the child's process group: the child and, when supervised, its app.
fn kill_group(child: &Child) {
    // SAFETY: killpg(2) on the group our own unreaped child leads, so the id is ours.
    unsafe {
        libc::killpg(child.id() as libc::pid_t, libc::SIGKILL);
    }
}

/// Copies the child's stderr into `log` until it closes; sends the address of each
/// ready line.
fn drain_stderr(
    stderr: std::process::ChildStderr,
    life: usize,
    log: &Mutex<Vec<String>>,
    ready: &mpsc::Sender<SocketAddr>,
) {
    let mut reader = BufReader::new(stderr);
    let mut bytes = Vec::new();
    loop {
        bytes.clear();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = strip_ansi(String::from_utf8_lossy(&bytes).trim_end());
        log.lock().unwrap().push(format!("[life {life}] {line}"));
        if let Some(addr) = ready_addr(&line) {
            let _ = ready.send(addr);
        }
    }
}

fn ready_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(READY_MARK)? + READY_MARK.len()..];
    rest[..rest.find('/')?].parse().ok()
}

/// Removes terminal colour sequences (`ESC [ ... letter`), in case colours are on.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
