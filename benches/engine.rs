//! Checkpointed steps per second at 1, 16 and 128 workflows in flight, against the raw
//! fdatasync rate of the file system that holds the database.
//!
//! Run with `cargo bench --bench engine`. Every figure is one `name: value unit` line;
//! lines starting with `#` are context. Each workflow runs a loop of K checkpointed
//! `ctx.step` calls with trivial bodies; K is calibrated by a short pilot run so that
//! each configuration takes about 3 s (`ENGINE_BENCH_SECS` overrides it). The raw rate
//! (4 KiB written in place + `sync_data`, in the same temporary directory) is measured
//! for 1 s before each configuration and once after, since the disk may be shared; each
//! ratio uses the measurement just before its run.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alert_center::engine::{Engine, EngineConfig, SystemClock, WorkflowContext, WorkflowDef};
use alert_center::storage::Store;

/// A loop of `k` checkpointed steps; returns `k`.
const LOOP: WorkflowDef<u32, u32> = WorkflowDef::new("bench_loop");

const CONCURRENCIES: [usize; 3] = [1, 16, 128];
const PILOT_STEPS: u32 = 30;
const FSYNC_SECS: f64 = 1.0;
const GOAL_RATIO_C128: f64 = 50.0;

fn main() {
    let target_secs: f64 = std::env::var("ENGINE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    println!("# tempdir: {}", describe_fs(dir.path()));

    // The disk and the CPUs may be shared: the fsync rate is measured again right before
    // each configuration, and each ratio uses the measurement next to it.
    let mut fsync_rates = Vec::new();
    let mut ratio_c128 = 0.0;
    for concurrency in CONCURRENCIES {
        let c = concurrency;
        let fsync = fsync_rate(dir.path(), FSYNC_SECS);
        fsync_rates.push(fsync.per_sec);
        println!("fsync_per_sec_before_c{c}: {:.0} fsyncs/s", fsync.per_sec);
        println!("fsync_latency_p50_before_c{c}: {:.3} ms", ms(fsync.p50));
        println!("fsync_latency_p99_before_c{c}: {:.3} ms", ms(fsync.p99));
        let pilot = run(dir.path(), concurrency, PILOT_STEPS);
        let k = ((target_secs * pilot.steps_per_sec / c as f64) as u32).clamp(50, 1_000_000);
        let r = run(dir.path(), concurrency, k);
        let ratio = r.steps_per_sec / fsync.per_sec;
        let secs = r.elapsed.as_secs_f64();
        println!(
            "# c{c}: {c} workflows x {k} steps in {secs:.2} s; {}",
            pressure()
        );
        println!("steps_per_sec_c{c}: {:.0} steps/s", r.steps_per_sec);
        println!("steps_vs_fsync_ratio_c{c}: {ratio:.1} x");
        println!(
            "commits_per_sec_c{c}: {:.0} commits/s",
            r.commits as f64 / secs
        );
        println!(
            "commit_batch_avg_c{c}: {:.1} items/commit",
            r.items as f64 / r.commits as f64
        );
        println!(
            "commit_time_avg_c{c}: {:.3} ms",
            r.commit_micros as f64 / 1000.0 / r.commits as f64
        );
        println!("step_latency_p50_c{c}: {:.3} ms", ms(r.p50));
        println!("step_latency_p99_c{c}: {:.3} ms", ms(r.p99));
        // Where the writer thread's time went: on a CPU, runnable but waiting for one,
        // and the rest blocked (in fdatasync, or waiting for items).
        let on_cpu = r.writer.on_cpu.as_secs_f64();
        println!("writer_on_cpu_c{c}: {:.0} %", 100.0 * on_cpu / secs);
        println!(
            "writer_waiting_for_cpu_c{c}: {:.0} %",
            100.0 * r.writer.runqueue.as_secs_f64() / secs
        );
        println!(
            "writer_cpu_per_commit_c{c}: {:.3} ms",
            on_cpu * 1e3 / r.commits as f64
        );
        if concurrency == 128 {
            ratio_c128 = ratio;
        }
    }
    let fsync = fsync_rate(dir.path(), FSYNC_SECS);
    fsync_rates.push(fsync.per_sec);
    println!("fsync_per_sec_after: {:.0} fsyncs/s", fsync.per_sec);
    fsync_rates.sort_by(f64::total_cmp);
    println!(
        "fsync_per_sec: {:.0} fsyncs/s (median of {} probes, min {:.0}, max {:.0})",
        fsync_rates[fsync_rates.len() / 2],
        fsync_rates.len(),
        fsync_rates[0],
        fsync_rates[fsync_rates.len() - 1]
    );
    println!(
        "# ceiling: a redb commit with quick repair costs 2 fdatasyncs and 128 workflows give at most ~128 writes per commit: 64 x at best"
    );
    let verdict = if ratio_c128 >= GOAL_RATIO_C128 {
        "met"
    } else {
        "missed"
    };
    println!(
        "# goal: at least {GOAL_RATIO_C128:.0} x the raw fsync rate with 128 in flight: {verdict}"
    );
    println!("engine_vs_fsync_ratio_c128: {ratio_c128:.1} x");
}

struct FsyncRate {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Overwrites the same 4 KiB block and `fdatasync`s it, in a loop, for `secs`.
fn fsync_rate(dir: &Path, secs: f64) -> FsyncRate {
    let path = dir.join("fsync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("cannot create the fsync probe file");
    let mut block = [0u8; 4096];
    file.write_all_at(&block, 0).unwrap();
    file.sync_all().unwrap();
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs {
        block[0] = block[0].wrapping_add(1);
        let t = Instant::now();
        file.write_all_at(&block, 0).unwrap();
        file.sync_data().unwrap();
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    latencies.sort_unstable();
    FsyncRate {
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

struct RunResult {
    elapsed: Duration,
    steps_per_sec: f64,
    commits: u64,
    items: u64,
    commit_micros: u64,
    p50: Duration,
    p99: Duration,
    writer: ThreadTimes,
}

/// Runs `concurrency` workflows of `k` steps each on a fresh database file and waits for
/// all of them. The elapsed time covers their starts and ends too (2 writes per workflow
/// besides the `k` steps).
fn run(dir: &Path, concurrency: usize, k: u32) -> RunResult {
    let path = dir.join(format!("engine-c{concurrency}-k{k}.redb"));
    let store = Store::open(&path).expect("cannot open the database");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(store, Arc::new(SystemClock), EngineConfig::default());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(concurrency * k as usize)));
    register_loop(&engine, &latencies);
    rt.block_on(engine.recover()).unwrap();

    let stats = engine.writer().stats();
    let commits_before = stats.commits.load(Ordering::Relaxed);
    let items_before = stats.items.load(Ordering::Relaxed);
    let micros_before = stats.commit_micros.load(Ordering::Relaxed);
    let writer_before = writer_thread_times();
    let started = Instant::now();
    rt.block_on(async {
        let starts = (0..concurrency).map(|i| engine.start(LOOP, format!("wf-{i}"), &k));
        let handles = futures::future::join_all(starts).await;
        for handle in handles {
            let done = handle
                .unwrap()
                .result(Duration::from_secs(600))
                .await
                .unwrap();
            assert_eq!(done, k);
        }
    });
    let elapsed = started.elapsed();
    let writer = writer_thread_times().since(&writer_before);
    let commits = stats.commits.load(Ordering::Relaxed) - commits_before;
    let items = stats.items.load(Ordering::Relaxed) - items_before;
    let commit_micros = stats.commit_micros.load(Ordering::Relaxed) - micros_before;

    rt.block_on(engine.shutdown());
    drop(engine);
    drop(rt);
    let _ = std::fs::remove_file(&path);

    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    assert_eq!(latencies.len(), concurrency * k as usize);
    latencies.sort_unstable();
    RunResult {
        elapsed,
        steps_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        commits,
        items,
        commit_micros,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        writer,
    }
}

/// Registers [`LOOP`]: each `ctx.step` call is timed inside the workflow, and the times are
/// handed over once the loop ends.
fn register_loop(engine: &Engine, latencies: &Arc<Mutex<Vec<Duration>>>) {
    let latencies = latencies.clone();
    engine.register(LOOP, move |ctx: WorkflowContext, k: u32| {
        let latencies = latencies.clone();
        async move {
            let mut mine = Vec::with_capacity(k as usize);
            for i in 0..k {
                let t = Instant::now();
                ctx.step("s", || async move { Ok::<u32, String>(i) })
                    .await?;
                mine.push(t.elapsed());
            }
            latencies.lock().unwrap().extend(mine);
            Ok(k)
        }
    });
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `path (fstype device, mounted at mountpoint)`, from the longest mount point that
/// contains `path`.
fn describe_fs(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = PathBuf::from(fields.next()?.replace("\\040", " "));
            let fs_type = fields.next()?;
            path.starts_with(&mount_point)
                .then(|| (mount_point, device.to_string(), fs_type.to_string()))
        })
        .max_by_key(|(mount_point, _, _)| mount_point.as_os_str().len());
    match best {
        Some((mount_point, device, fs_type)) => format!(
            "{} ({fs_type} on {device}, mounted at {})",
            path.display(),
            mount_point.display()
        ),
        None => path.display().to_string(),
    }
}

/// Scheduler times of the engine's writer threads (named `redb-writer`), by thread id,
/// from `/proc/self/task/*/schedstat`: nanoseconds on a CPU and waiting for one.
#[derive(Default)]
struct ThreadTimes {
    on_cpu: Duration,
    runqueue: Duration,
    by_tid: Vec<(String, u64, u64)>,
}

impl ThreadTimes {
    fn since(&self, before: &ThreadTimes) -> ThreadTimes {
        let mut delta = ThreadTimes::default();
        for (tid, on_cpu, runqueue) in &self.by_tid {
            let (cpu0, rq0) = before
                .by_tid
                .iter()
                .find(|(t, _, _)| t == tid)
                .map(|(_, c, r)| (*c, *r))
                .unwrap_or((0, 0));
            delta.on_cpu += Duration::from_nanos(on_cpu - cpu0);
            delta.runqueue += Duration::from_nanos(runqueue - rq0);
        }
        delta
    }
}

fn writer_thread_times() -> ThreadTimes {
    let mut times = ThreadTimes::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return times;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "redb-writer" {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let mut fields = schedstat
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let (on_cpu, runqueue) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        let tid = task.file_name().to_string_lossy().into_owned();
        times.by_tid.push((tid, on_cpu, runqueue));
    }
    times
}

/// Load context: the load average and the share of time some task waited for a CPU or
/// for I/O over the last 10 s (Linux pressure stall information), when available.
fn pressure() -> String {
    let read = |what: &str| {
        std::fs::read_to_string(format!("/proc/pressure/{what}"))
            .ok()
            .and_then(|s| {
                let line = s.lines().next()?.to_string();
                let avg10 = line.split_whitespace().find(|f| f.starts_with("avg10="))?;
                Some(format!("{what} pressure {}%", &avg10[6..]))
            })
            .unwrap_or_default()
    };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    format!("load average {load}, {}, {}", read("cpu"), read("io"))
}
