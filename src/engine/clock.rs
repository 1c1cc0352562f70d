//! Time, read only through a [`Clock`] handle.
//!
//! Durable records hold wall-clock milliseconds since the Unix epoch (`*_ms`), never an
//! `Instant`: an `Instant` means nothing after a restart. Tests use a [`ManualClock`]
//! that they advance; sleepers wake when it passes their wake time.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall-clock time and of sleeps measured against it.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Completes once `now_ms() >= wake_at_ms`; at once if that time has passed.
    fn sleep_until(&self, wake_at_ms: u64) -> Sleep;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, wake_at_ms: u64) -> Sleep {
        let clock = *self;
        Box::pin(async move {
            // Sleep in bounded slices so that a wall-clock jump (NTP, suspend) is noticed
            // within half a minute instead of oversleeping by the jump; longer slices
            // would make thousands of sleepers cost thousands of wake-ups a second.
            loop {
                let now = clock.now_ms();
                if now >= wake_at_ms {
                    return;
                }
                let left_ms = (wake_at_ms - now).min(30_000);
                tokio::time::sleep(Duration::from_millis(left_ms)).await;
            }
        })
    }
}

/// A clock that moves only when a test advances it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now_ms: AtomicU64,
    /// Sleepers by (wake time, sequence number).
    sleepers: Mutex<BTreeMap<(u64, u64), oneshot::Sender<()>>>,
    next_seq: AtomicU64,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            inner: Arc::new(ManualInner {
                now_ms: AtomicU64::new(start_ms),
                sleepers: Mutex::new(BTreeMap::new()),
                next_seq: AtomicU64::new(0),
            }),
        }
    }

    /// Moves time forward and wakes every sleeper whose wake time is now reached.
    pub fn advance(&self, by: Duration) {
        let now = self
            .inner
            .now_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst)
            + by.as_millis() as u64;
        let due: Vec<_> = {
            let mut sleepers = lock(&self.inner.sleepers);
            let later = sleepers.split_off(&(now + 1, 0));
            std::mem::replace(&mut *sleepers, later)
                .into_values()
                .collect()
        };
        for sender in due {
            let _ = sender.send(());
        }
    }

    /// Number of sleepers waiting on this clock (not counting abandoned sleeps); tests
    /// wait for it to reach a count.
    pub fn sleepers(&self) -> usize {
        let mut sleepers = lock(&self.inner.sleepers);
        sleepers.retain(|_, waker| !waker.is_closed());
        sleepers.len()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.inner.now_ms.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, wake_at_ms: u64) -> Sleep {
        let (tx, rx) = oneshot::channel();
        {
            let mut sleepers = lock(&self.inner.sleepers);
            // Checked under the lock that `advance` takes, so no wake-up can slip between
            // the check and the registration.
            if self.now_ms() >= wake_at_ms {
                return Box::pin(async {});
            }
            let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
            sleepers.insert((wake_at_ms, seq), tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Locks a std mutex, ignoring poisoning: the data these mutexes guard stays valid
/// even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_only_due_sleepers() {
        let clock = ManualClock::new(1_000);
        let early = clock.sleep_until(1_500);
        let late = tokio::spawn(clock.sleep_until(3_000));
        assert_eq!(clock.sleepers(), 2);
        clock.advance(Duration::from_millis(600));
        early.await;
        assert_eq!(clock.sleepers(), 1);
        assert!(!late.is_finished());
        clock.advance(Duration::from_secs(5));
        late.await.unwrap();
    }

    #[tokio::test]
    async fn past_wake_time_fires_at_once() {
        let clock = ManualClock::new(10_000);
        clock.sleep_until(5).await;
        SystemClock.sleep_until(1).await;
    }
}
