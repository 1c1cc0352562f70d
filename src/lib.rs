//! alert-center: a durable alert queue. Kafka messages become alerts exactly once;
//! employees take them on leases that survive `kill -9`; one binary, one redb file.
//!
//! # Code map
//! - [`storage`]: the redb file: opening it safely, schema version and migrations,
//!   every table in one place (`storage::tables`).
//! - [`engine`]: generic durable execution (workflows, checkpointed steps,
//!   transactions, durable time and sleeps, events, group commit, recovery).
//! - [`alerts`]: the domain: employees, alerts, leases, the assignment and send
//!   workflows, and the invariants every commit keeps.
//! - [`kafka`]: the exactly-once intake (cursors in redb), the producer behind
//!   "send", the embedded broker, the wire format and dead letters, and broker health
//!   (client errors plus a metadata probe every second).
//! - [`http`]: warp routes compatible with the original app, live updates (SSE),
//!   the embedded page, `ApiError` to status codes; `/healthz`, `/readyz`,
//!   `/metrics` and the workflow API (DBOS admin paths) for operators.
//! - [`faults`]: injected faults for tests of the real binary: named crash points
//!   that kill the process, and a full disk (a failing redb backend in `storage`).
//! - [`config`]: flags and environment variables; [`telemetry`]: logging setup and
//!   every Prometheus metric name.
//! - [`supervisor`]: the default process: holds the embedded broker and the listening
//!   socket, runs the app as a child and restarts it when it dies (answering 503 in
//!   between when the disk refused a write).
//! - [`app`]: the only module that knows all the others; wires them and runs them.
//!
//! # Architecture invariants
//! - **`engine` never names an alert.** It knows workflows by name and bincode bytes.
//! - **`alerts` never names Kafka or HTTP.** It publishes through the `AlertPublisher`
//!   trait and is driven through `AlertCenter`.
//! - **`http` holds no domain rule**: it parses, calls `AlertCenter`, shapes answers.
//! - **Every durable write goes through the engine's single writer** (group commit):
//!   a caller is answered only after the commit that holds its write is durable.
//! - **A write transaction never lives across an `.await`.** Transaction closures run on
//!   the writer thread and must depend only on the database (they may run twice).
//! - **Time is read only through a `Clock`**; records hold wall-clock milliseconds.
//! - **Recovery reads only the pending index**: its cost grows with pending work, never
//!   with history.
//! - **A commit the disk refuses stops the process** (exit code 75): redb refuses every
//!   later write until the file is reopened, and the supervisor restarts the app.

pub mod alerts;
pub mod app;
pub mod config;
pub mod engine;
pub mod faults;
pub mod http;
pub mod kafka;
pub mod storage;
pub mod supervisor;
pub mod telemetry;
