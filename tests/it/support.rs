//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_center::engine::{Engine, EngineConfig, ManualClock};
use alert_center::storage::{StorageError, Store};

/// Wall-clock start of every manual clock: a fixed, realistic time.
pub const T0_MS: u64 = 1_800_000_000_000;

/// One life of an engine in this process: a runtime of its own, so that dropping it
/// drops every task at once, as a crash would (only what was committed survives).
pub struct Life {
    pub rt: tokio::runtime::Runtime,
    pub engine: Engine,
    path: PathBuf,
}

impl Life {
    /// Opens `path`, lets `register` add the workflows, then recovers.
    pub fn boot(
        path: &Path,
        clock: &ManualClock,
        config: EngineConfig,
        register: impl FnOnce(&Engine),
    ) -> Life {
        let store = reopen(path);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let engine = Engine::new(store, Arc::new(clock.clone()), config);
        register(&engine);
        rt.block_on(engine.recover()).unwrap();
        Life {
            rt,
            engine,
            path: path.to_path_buf(),
        }
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Drops every task and the engine without a shutdown, and waits until the file can
    /// be opened again.
    pub fn crash(self) -> PathBuf {
        let Life { rt, engine, path } = self;
        drop(engine);
        rt.shutdown_timeout(Duration::from_secs(5));
        path
    }
}

/// Opens the store, waiting (bounded) for a previous life's writer thread to let go.
pub fn reopen(path: &Path) -> Store {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(path) {
            Ok(store) => return store,
            Err(StorageError::AlreadyOpen { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("cannot reopen {}: {e}", path.display()),
        }
    }
}

/// Polls `check` every few ms until it is true; panics after `timeout` with `what`.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A small seeded generator (splitmix64), so that a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `TEST_SEED` if set, else from the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("{test}: seed {seed} (replay with TEST_SEED={seed})");
        Rng(seed)
    }

    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high` (close enough for test timings).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }
}

/// Wall-clock milliseconds since the Unix epoch, as the app records times.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
