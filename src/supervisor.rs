//! The supervisor: `alert-center` with no `--no-supervisor` runs the app as a child
//! process and restarts it whenever it dies (crash button, panic, SIGKILL, abort), with
//! a short backoff that grows while it keeps dying right after start. Without
//! `KAFKA_BROKER`, the embedded broker lives here, so it keeps its messages when the
//! app crashes, as a real broker would.
//!
//! When the app stopped because its disk refused a write (exit code 75), the supervisor
//! answers requests with a 503 saying so until the next life starts, instead of leaving
//! them waiting for as long as the disk stays full.
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

/// Exit code of an app whose disk refused a write (full, say), or that cannot open its
/// file for that reason: it stops so that a restart reopens the file, and the
/// supervisor restarts it with backoff until the disk has room again.
pub const EXIT_STORAGE_FAILED: i32 = 75;

/// Set in the child's environment when its broker is the supervisor's embedded one.
pub const EMBEDDED_BROKER_ENV: &str = "ALERT_CENTER_EMBEDDED_BROKER";

/// Set in the child's environment to the file descriptor of the listening socket the
/// supervisor opened once for every life of the app.
pub const LISTEN_FD_ENV: &str = "ALERT_CENTER_LISTEN_FD";

/// The listening socket passed by the supervisor, if any (taken once: the variable is
/// removed so that nothing else adopts the descriptor).
pub fn inherited_listener() -> anyhow::Result<Option<tokio::net::TcpListener>> {
    use std::os::fd::FromRawFd;
    let Some(raw) = std::env::var_os(LISTEN_FD_ENV) else {
        return Ok(None);
    };
    // SAFETY: called once at start-up, before any other thread reads the environment.
    unsafe { std::env::remove_var(LISTEN_FD_ENV) };
    let fd: i32 = raw
        .to_str()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{LISTEN_FD_ENV} is not a file descriptor"))?;
    // SAFETY: the supervisor passed this descriptor, a listening TCP socket, to this
    // process alone; nothing else in the process owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener
        .set_nonblocking(true)
        .context("cannot use the inherited socket")?;
    Ok(Some(
        tokio::net::TcpListener::from_std(listener).context("cannot use the inherited socket")?,
    ))
}

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
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let stand_in = stand_in_listener(&listener)?;
    let mut backoff = BACKOFF_MIN;
    let mut restarts = 0u64;
    loop {
        let started = Instant::now();
        let mut child = spawn_app(embedded.as_ref(), &listener)?;
        let pid = child.id().unwrap_or_default();
        if restarts == 0 {
            tracing::debug!(pid, "supervisor started the app");
        } else {
            tracing::info!(pid, restarts, "supervisor restarted the app");
        }
        restarts += 1;
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
        // After a crash the next life comes in milliseconds: requests just wait for it.
        // When the disk refused a write, lives may fail until it has room: answer them.
        let storage_failed = status.code() == Some(EXIT_STORAGE_FAILED);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = answer_unavailable(&stand_in, backoff), if storage_failed => {}
            _ = term.recv() => return Ok(0),
            _ = int.recv() => return Ok(130),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A second handle on the listening socket, for the supervisor's own answers between
/// two lives of the app. It is close-on-exec (the app gets the original descriptor),
/// and it accepts only while [`answer_unavailable`] runs, so it takes no connection
/// from a running app.
fn stand_in_listener(listener: &std::net::TcpListener) -> anyhow::Result<tokio::net::TcpListener> {
    let dup = listener
        .try_clone()
        .context("cannot duplicate the listening socket")?;
    // Non-blocking is a property of the socket, shared with the app, which sets it too.
    dup.set_nonblocking(true)
        .context("cannot make the listening socket non-blocking")?;
    tokio::net::TcpListener::from_std(dup).context("cannot watch the listening socket")
}

/// Answers every request with a 503 that says why, until the future is dropped (when
/// the next life starts): while the disk refuses writes, a request would otherwise
/// wait with no answer for as long as it stays full.
async fn answer_unavailable(listener: &tokio::net::TcpListener, retry_in: Duration) {
    let body = serde_json::json!({
        "error": "alert-center cannot write its database right now (the disk is full or \
                  failing); it restarts by itself once it can: try again in a moment"
    })
    .to_string();
    let retry_secs = retry_in.as_secs().max(1);
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: {retry_secs}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            // Read the request head first, so that closing does not reset the
            // connection under a client still sending it.
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            let read_head = async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), read_head).await;
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

fn spawn_app(
    embedded: Option<&EmbeddedBroker>,
    listener: &std::net::TcpListener,
) -> anyhow::Result<Child> {
    use std::os::fd::AsRawFd;
    let fd = listener.as_raw_fd();
    let exe = std::env::current_exe().context("cannot find the alert-center executable")?;
    let mut command = Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .arg("--no-supervisor")
        .env(LISTEN_FD_ENV, fd.to_string());
    if let Some(broker) = embedded {
        command
            .env("KAFKA_BROKER", broker.bootstrap_servers())
            .env(EMBEDDED_BROKER_ENV, "1");
    }
    // SAFETY: prctl(2) and fcntl(2) are async-signal-safe and touch no memory of the
    // parent; the first makes the kernel SIGKILL the app if the supervisor dies.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The listening socket is close-on-exec like every descriptor Rust opens:
            // keep this one open across exec, for the app.
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
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
