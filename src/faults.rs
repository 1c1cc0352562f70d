//! Injected faults for tests of the real binary: named crash points that kill the
//! process at exact places, and a disk that is full while a switch file exists.
//!
//! `ALERT_CENTER_CRASH_AT=name` kills the process with SIGKILL the first time the code
//! reaches `crash_point("name")`; `name:N` does it on the N-th time. Nothing else changes
//! behaviour, and with the variable unset a crash point costs one atomic load.
//! SIGKILL rather than `abort`: no handler, no unwinding, no flush runs, exactly like
//! `kill -9` from outside.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms one crash point.
pub const CRASH_AT_ENV: &str = "ALERT_CENTER_CRASH_AT";

/// `ALERT_CENTER_DISK_FULL_WHILE=PATH`: the database file behaves like a full disk
/// (every write fails with `ENOSPC`) while the file `PATH` exists.
pub const DISK_FULL_WHILE_ENV: &str = "ALERT_CENTER_DISK_FULL_WHILE";

/// How to open the database: with the full-disk switch when the test asked for it.
pub fn storage_options() -> crate::storage::OpenOptions {
    crate::storage::OpenOptions {
        disk_full_while: std::env::var_os(DISK_FULL_WHILE_ENV).map(Into::into),
    }
}

/// Every crash point in the code, so that a misspelled one is refused, not ignored.
pub const KNOWN: &[&str] = &[
    "writer.before_commit",
    "writer.after_commit",
    "step.before_checkpoint",
    "transaction.applied",
    "sleep.recorded",
    "intake.received",
    "intake.durable",
    "intake.kafka_commit",
    "send.published",
];

struct Armed {
    name: String,
    at_hit: u64,
    hits: AtomicU64,
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();

fn armed() -> &'static Option<Armed> {
    ARMED.get_or_init(|| {
        let spec = std::env::var(CRASH_AT_ENV).ok()?;
        let (name, at_hit) = match spec.rsplit_once(':') {
            Some((name, n)) => match n.parse::<u64>() {
                Ok(n) if n >= 1 => (name.to_string(), n),
                _ => {
                    // A test that asked for a crash must not silently run without one.
                    eprintln!(
                        "{CRASH_AT_ENV}={spec:?}: the count after ':' must be a whole number >= 1"
                    );
                    std::process::exit(2);
                }
            },
            None => (spec.clone(), 1),
        };
        if !KNOWN.contains(&name.as_str()) {
            eprintln!(
                "{CRASH_AT_ENV}={spec:?}: unknown crash point (known: {})",
                KNOWN.join(", ")
            );
            std::process::exit(2);
        }
        Some(Armed {
            name,
            at_hit,
            hits: AtomicU64::new(0),
        })
    })
}

/// Kills the process here if this crash point is armed and its hit count is reached.
pub fn crash_point(name: &str) {
    if let Some(armed) = armed()
        && armed.name == name
        && armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.at_hit
    {
        kill_self();
    }
}

/// Dies at once, as `kill -9` would: no destructor, no flush, no exit handler.
pub fn kill_self() -> ! {
    // SAFETY: kill(2) with our own pid and a valid signal number has no memory effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; this line is reached only if the kernel refused it.
    std::process::abort()
}
