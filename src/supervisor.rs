//! The supervisor: `alert-center` with no `--no-supervisor` runs the app as a child
//! process and restarts it whenever it dies (crash button, panic, SIGKILL, abort), with
//! a short backoff that grows while it keeps dying right after start. Without
//! `KAFKA_BROKER`, the embedded broker lives here, so it keeps its messages when the
//! app crashes, as a real broker would.
//!
//! Stopping: SIGTERM or Ctrl-C is passed to the app, which shuts down gracefully; the
//! supervisor then exits with the app's code. A second signal kills the app at once.
//! If the supervisor itself is killed, the kernel kills the app too (parent-death
//! signal), so no orphan keeps the port or the database.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::kafka::embedded::EmbeddedBroker;

/// Exit code of an app that cannot start (bad file, port taken, bad settings):
/// restarting would fail the same way, so the supervisor gives up and passes it on.
pub const EXIT_CANNOT_START: i32 = 78;

/// Set in the child's environment when its broker is the supervisor's embedded one.
pub const EMBEDDED_BROKER_ENV: &str = "ALERT_CENTER_EMBEDDED_BROKER";

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A child that lived this long is considered healthy: the backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

pub fn run(config: Config) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(supervise(config))
}

async fn supervise(config: Config) -> anyhow::Result<i32> {
    let embedded = match &config.kafka_broker {
        Some(_) => None,
        None => Some(
            EmbeddedBroker::start(&config.kafka_topic, config.kafka_topic_partitions.max(1))
                .map_err(anyhow::Error::msg)?,
        ),
    };
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let mut child = spawn_app(embedded.as_ref())?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(pid, "supervisor started the app");
        let status = tokio::select! {
            status = child.wait() => status.context("cannot wait for the app")?,
            _ = term.recv() => return stop(child, libc::SIGTERM, &mut term, &mut int).await,
            _ = int.recv() => return stop(child, libc::SIGINT, &mut term, &mut int).await,
        };
        match status.code() {
            Some(0) => return Ok(0),
            Some(code @ (EXIT_CANNOT_START | 2)) => return Ok(code),
            _ => {}
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!(pid, how = %describe(status), restart_in_ms = backoff.as_millis() as u64, "the app died; restarting it");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = term.recv() => return Ok(0),
            _ = int.recv() => return Ok(130),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn spawn_app(embedded: Option<&EmbeddedBroker>) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the alert-center executable")?;
    let mut command = Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .arg("--no-supervisor");
    if let Some(broker) = embedded {
        command
            .env("KAFKA_BROKER", broker.bootstrap_servers())
            .env(EMBEDDED_BROKER_ENV, "1");
    }
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
    // parent; it makes the kernel SIGKILL the app if the supervisor dies.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().context("cannot start the app process")
}

/// Passes a stop signal to the app and waits for it; a second signal kills it.
async fn stop(
    mut child: Child,
    signal_number: i32,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<i32> {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, signal_number);
        }
    }
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = term.recv() => { child.kill().await?; child.wait().await? }
        _ = int.recv() => { child.kill().await?; child.wait().await? }
    };
    Ok(status.code().unwrap_or(128 + status.signal().unwrap_or(0)))
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(libc::SIGKILL)) => "killed (SIGKILL)".to_string(),
        (None, Some(libc::SIGABRT)) => "aborted (SIGABRT)".to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "unknown".to_string(),
    }
}
