//! The page in a real browser: headless Debian Chromium (`/usr/bin/chromium`), driven by
//! npm `playwright-core` from `tests/browser/two_tabs.mjs`, with two tabs of one browser
//! as two employees. Both log in, one alert is sent from the page, exactly one tab gets
//! it, its countdown runs, "more time" extends it, "I fixed it" resolves it and the
//! history shows it green. Then the crash button kills the app (`abort`): both tabs show
//! the offline banner, the supervisor starts the app again on the same file and port, and
//! the tabs recover by themselves.
//!
//! Screenshots of every stage land in `target/browser-screenshots/`. Chromium, Node.js
//! and `node_modules/playwright-core` come from `scripts/setup.sh`; when one is missing
//! the test fails and says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::app_support::{AppOptions, spawn_app_with};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The longest the whole browser script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Kills the child (the node script and its browser) if the test ends early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/browser-screenshots`, emptied of older screenshots.
fn screenshot_dir(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("browser-screenshots");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sends each line of `from` to `lines`, prefixed with `tag`.
fn forward(from: impl Read + Send + 'static, tag: &'static str, lines: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if lines.send(format!("{tag}{line}")).is_err() {
                return;
            }
        }
    });
}

#[test]
fn two_tabs_share_the_work_and_recover_from_a_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)"
    );
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "node_modules/playwright-core is missing: run scripts/setup.sh (it runs npm ci)"
    );
    let shots = screenshot_dir(root);
    let mut app = spawn_app_with(AppOptions::supervised());

    let node = Command::new("node")
        .arg(root.join("tests/browser/two_tabs.mjs"))
        .arg(app.base_url())
        .arg(&shots)
        .current_dir(root)
        .env("CHROMIUM_PATH", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): run scripts/setup.sh"));
    let mut node = KillOnDrop(node);
    let mut stdin = node.0.stdin.take().unwrap();
    let (tx, lines) = mpsc::channel();
    forward(node.0.stdout.take().unwrap(), "", tx.clone());
    forward(node.0.stderr.take().unwrap(), "node stderr: ", tx);

    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let mut transcript = Vec::new();
    let mut finished = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "the browser script took over {SCRIPT_TIMEOUT:?}:\n{}",
                transcript.join("\n")
            ),
        };
        eprintln!("{line}");
        match line.as_str() {
            "CRASHED" => {
                app.wait_for_supervisor_restart();
                writeln!(stdin, "BACK").unwrap();
            }
            "OK" => finished = true,
            _ => {}
        }
        transcript.push(line);
    }
    let status = node.0.wait().unwrap();
    assert!(
        status.success() && finished,
        "the browser script failed ({status}); screenshots in {}:\n{}",
        shots.display(),
        transcript.join("\n")
    );

    let status = app.stop();
    assert!(status.success(), "SIGTERM: {status}");
    if let Err(violation) = app.check_invariants() {
        panic!("invariant violated: {violation}");
    }
}
