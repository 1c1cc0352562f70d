//! How fast alert-center comes back after `kill -9`, measured on the real binary.
//!
//! For N = 1,000 and 10,000 employees each holding an alert (so N sleeping lease
//! workflows) and 100,000 resolved alerts of history: SIGKILL the app, start it again,
//! and measure (a) the time until `/assignment` answers correctly and (b) the time until
//! every lease timer is re-armed (the app logs it); then the same after a clean stop
//! (SIGTERM), and the ratio. Also: a lease whose expiry passed while the app was down
//! is released, and a message produced while it was down is ingested, within a second.
//!
//! The broker is librdkafka's mock cluster, owned by this process, so it keeps its
//! messages while the app is down. Figures are printed as `name: value unit` lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

const HISTORY: u64 = 100_000;
const RUNS: usize = 3;

struct App {
    child: Child,
    lines: mpsc::Receiver<String>,
    started: Instant,
}

/// Where an app instance finds its broker and topic.
#[derive(Clone, Copy)]
struct Kafka<'a> {
    brokers: &'a str,
    topic: &'a str,
}

fn start_app(db: &std::path::Path, port: u16, kafka: Kafka<'_>, lease_secs: u32) -> App {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alert-center"))
        .args(["--no-supervisor", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(db)
        .args([
            "--lease-secs",
            &lease_secs.to_string(),
            "--log-format",
            "json",
        ])
        .env("KAFKA_BROKER", kafka.brokers)
        .env("KAFKA_TOPIC", kafka.topic)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start alert-center");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    App {
        child,
        lines,
        started,
    }
}

impl App {
    /// Waits for a log line containing `needle`; returns the time since start.
    fn wait_line(&self, needle: &str, timeout: Duration) -> Duration {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return self.started.elapsed(),
                Ok(_) => {}
                Err(_) => panic!("no log line {needle:?} within {timeout:?}"),
            }
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "clean stop failed: {status}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn produce_all(producer: &FutureProducer, topic: &str, payloads: Vec<(String, String)>) {
    let sends = payloads.iter().map(|(key, payload)| {
        producer.send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(30),
        )
    });
    for (i, chunk) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        chunk.unwrap_or_else(|(e, _)| panic!("produce {i} failed: {e}"));
    }
}

fn batch_payloads(first: u64, count: u64, status: u8, per_message: u64) -> Vec<(String, String)> {
    (0..count.div_ceil(per_message))
        .map(|m| {
            let start = first + m * per_message;
            let end = (start + per_message).min(first + count);
            let alerts: Vec<Value> = (start..end)
                .map(|id| serde_json::json!({"alert_id": id, "alert_status": status, "message": format!("alert {id}")}))
                .collect();
            (start.to_string(), serde_json::json!({ "alerts": alerts }).to_string())
        })
        .collect()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client.get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

async fn wait_history(client: &reqwest::Client, base: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(Value::Array(alerts)) = get_json(client, &format!("{base}/alert_history")).await
            && alerts.len() >= count
        {
            return;
        }
        assert!(Instant::now() < deadline, "history did not reach {count}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Polls `/assignment` of `employee` every millisecond until it answers with `alert_id`.
async fn time_until_answer(
    client: &reqwest::Client,
    base: &str,
    employee: &str,
    alert_id: u64,
    started: Instant,
) -> Duration {
    let url = format!("{base}/assignment?name={employee}");
    loop {
        if let Some(v) = get_json(client, &url).await
            && v["employee"]["alert_id"].as_u64() == Some(alert_id)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "app did not answer"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

struct Restart {
    answer_ms: f64,
    rearmed_ms: f64,
}

async fn measure_restart(
    client: &reqwest::Client,
    app: App,
    crash: bool,
    db: &std::path::Path,
    port: u16,
    kafka: Kafka<'_>,
    probe: (&str, u64),
) -> (Restart, App) {
    if crash {
        app.kill9()
    } else {
        app.stop()
    }
    let app = start_app(db, port, kafka, 3600);
    let base = format!("http://127.0.0.1:{port}");
    let answer = time_until_answer(client, &base, probe.0, probe.1, app.started).await;
    let rearmed = app.wait_line(
        "every sleeping workflow found by recovery is re-armed",
        Duration::from_secs(60),
    );
    let restart = Restart {
        answer_ms: answer.as_secs_f64() * 1e3,
        rearmed_ms: rearmed.as_secs_f64() * 1e3,
    };
    (restart, app)
}

async fn leases_scenario(
    n: u64,
    kafka: Kafka<'_>,
    producer: &FutureProducer,
    client: &reqwest::Client,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.redb");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let app = start_app(&db, port, kafka, 3600);
    app.wait_line("alert-center ready", Duration::from_secs(30));
    // History first (lower ids), so that the oldest free alerts are the active ones.
    produce_all(producer, kafka.topic, batch_payloads(1, HISTORY, 2, 100)).await;
    produce_all(
        producer,
        kafka.topic,
        batch_payloads(HISTORY + 1, n, 0, 100),
    )
    .await;
    wait_history(client, &base, (HISTORY + n) as usize).await;
    let setup = Instant::now();
    let mut assigned = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let urls: Vec<String> = chunk
            .iter()
            .map(|i| format!("{base}/assignment?name=e{i}"))
            .collect();
        let requests = urls.iter().map(|url| get_json(client, url));
        for answer in futures::future::join_all(requests).await {
            let answer = answer.expect("assignment failed");
            assert!(
                answer["employee"]["alert_id"].is_u64(),
                "no alert for an employee: {answer}"
            );
            assigned += 1;
        }
    }
    eprintln!(
        "setup: {assigned} leases in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let probe_alert = get_json(client, &format!("{base}/assignment?name=e0"))
        .await
        .unwrap()["employee"]["alert_id"]
        .as_u64()
        .unwrap();
    let file_mb = std::fs::metadata(&db)
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    println!("crash_recovery_n{n}_db_size: {file_mb:.1} MB");

    let mut app = app;
    let (mut crash_answer, mut crash_armed, mut clean_answer, mut clean_armed) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let (r, next) =
            measure_restart(client, app, true, &db, port, kafka, ("e0", probe_alert)).await;
        crash_answer.push(r.answer_ms);
        crash_armed.push(r.rearmed_ms);
        let (r, next) =
            measure_restart(client, next, false, &db, port, kafka, ("e0", probe_alert)).await;
        clean_answer.push(r.answer_ms);
        clean_armed.push(r.rearmed_ms);
        app = next;
    }
    let (ca, ra, cl, rl) = (
        median(crash_answer),
        median(crash_armed),
        median(clean_answer),
        median(clean_armed),
    );
    println!("crash_recovery_n{n}_kill9_until_answer: {ca:.1} ms");
    println!("crash_recovery_n{n}_kill9_until_timers_rearmed: {ra:.1} ms");
    println!("crash_recovery_n{n}_clean_until_answer: {cl:.1} ms");
    println!("crash_recovery_n{n}_clean_until_timers_rearmed: {rl:.1} ms");
    println!(
        "crash_recovery_n{n}_ratio_answer_crash_over_clean: {:.2} x",
        ca / cl
    );
    println!(
        "crash_recovery_n{n}_ratio_rearmed_crash_over_clean: {:.2} x",
        ra / rl
    );
    app.stop();
}

/// A lease that expired while the app was down, and a message produced while it was
/// down: time from start until each is handled.
async fn while_down_scenario(
    kafka: Kafka<'_>,
    producer: &FutureProducer,
    client: &reqwest::Client,
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("down.redb");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let app = start_app(&db, port, kafka, 1);
    app.wait_line("alert-center ready", Duration::from_secs(30));
    let id = 1u64;
    produce_all(producer, kafka.topic, batch_payloads(id, 1, 0, 1)).await;
    let held = loop {
        let v = get_json(client, &format!("{base}/assignment?name=holder"))
            .await
            .unwrap();
        if v["employee"]["alert_id"].as_u64() == Some(id) {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(held["employee"]["alert_id"].as_u64(), Some(id));
    app.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    produce_all(producer, kafka.topic, batch_payloads(id + 1, 1, 0, 1)).await;
    let app = start_app(&db, port, kafka, 1);
    let (mut released, mut ingested) = (None, None);
    while released.is_none() || ingested.is_none() {
        if let Some(Value::Array(alerts)) = get_json(client, &format!("{base}/alert_history")).await
        {
            let find = |i: u64| {
                alerts
                    .iter()
                    .find(|a| a["alert_id"].as_u64() == Some(i))
                    .cloned()
            };
            if released.is_none() && find(id).is_some_and(|a| a["employee_name"].is_null()) {
                released = Some(app.started.elapsed());
            }
            if ingested.is_none() && find(id + 1).is_some() {
                ingested = Some(app.started.elapsed());
            }
        }
        assert!(
            app.started.elapsed() < Duration::from_secs(30),
            "not released or not ingested"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!(
        "expired_while_down_released_after_start: {:.1} ms",
        released.unwrap().as_secs_f64() * 1e3
    );
    println!(
        "produced_while_down_ingested_after_start: {:.1} ms",
        ingested.unwrap().as_secs_f64() * 1e3
    );
    app.stop();
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let mock = MockCluster::new(1).expect("mock cluster");
    for topic in ["while-down", "leases-1000", "leases-10000"] {
        mock.create_topic(topic, 3, 1).expect("topic");
    }
    let brokers = mock.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let kafka = |topic| Kafka {
            brokers: &brokers,
            topic,
        };
        while_down_scenario(kafka("while-down"), &producer, &client).await;
        leases_scenario(1_000, kafka("leases-1000"), &producer, &client).await;
        leases_scenario(10_000, kafka("leases-10000"), &producer, &client).await;
    });
}
