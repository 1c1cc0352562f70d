//! tansu, a Kafka-compatible broker with persistent storage, as a child process the
//! test owns: on a free 127.0.0.1 port with its own sqlite file, with the alert topic
//! created by `tansu topic create`, and restarted (SIGKILL, then started again on the
//! same file and port) when the test asks.
//!
//! The binary is `TANSU_BIN` if set, else `target/tools/bin/tansu`, where
//! `scripts/setup.sh` installs it. Without it the test fails and says so: a test that
//! skipped itself would pass without checking anything.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kafka_support::{PARTITIONS, TOPIC};

/// The longest tansu may take to listen after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Tansu {
    dir: tempfile::TempDir,
    bin: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    let bin = std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/tansu")
        });
    assert!(
        bin.exists(),
        "tansu is not installed at {}: run scripts/setup.sh (it installs tansu 0.6.0 there), \
         or set TANSU_BIN",
        bin.display()
    );
    bin
}

impl Tansu {
    /// Starts tansu on a new sqlite file, with no topic.
    pub fn start_empty() -> Tansu {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut tansu = Tansu {
            dir: tempfile::tempdir().unwrap(),
            bin: binary(),
            addr,
            child: None,
        };
        tansu.spawn();
        tansu
    }

    /// Starts tansu on a new sqlite file and creates the alert topic.
    pub fn start() -> Tansu {
        let tansu = Tansu::start_empty();
        let created = Command::new(&tansu.bin)
            .args(["topic", "create", TOPIC, "--broker", &tansu.url()])
            .args(["--partitions", &PARTITIONS.to_string()])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "tansu topic create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        tansu
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Kills the broker with SIGKILL and starts it again on the same file and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Grows the alert topic to `partitions` while the broker runs. tansu 0.6 has no
    /// CreatePartitions request (nor has librdkafka's mock cluster), so this writes what
    /// creating a partition writes into tansu's own sqlite storage (a `topition` row and
    /// its `watermark` per partition), with Python's sqlite3; tansu reads its metadata
    /// from there on every request.
    pub fn add_partitions(&self, partitions: i32) {
        let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
topic, partitions = sys.argv[2], int(sys.argv[3])
with db:
    (topic_id, before), = db.execute(
        "select id, partitions from topic where name = ?", (topic,)).fetchall()
    for partition in range(before, partitions):
        db.execute("insert into topition (topic, partition) values (?, ?)",
                   (topic_id, partition))
        db.execute("insert into watermark (topition) select id from topition "
                   "where topic = ? and partition = ?", (topic_id, partition))
    db.execute("update topic set partitions = ? where id = ?", (partitions, topic_id))
"#;
        let added = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(self.dir.path().join("tansu.db"))
            .arg(TOPIC)
            .arg(partitions.to_string())
            .output()
            .unwrap();
        assert!(
            added.status.success(),
            "adding partitions failed: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }

    fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .arg("broker")
            .args(["--listener-url", &self.url()])
            .args(["--advertised-listener-url", &self.url()])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tansu exited at start ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- tansu log ---\n{}", self.log());
        }
    }
}
