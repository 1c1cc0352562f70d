//! Wires the modules together: the only file that knows all of them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::alerts::AlertCenter;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, SystemClock};
use crate::http::{HttpState, Ops};
use crate::kafka::embedded::EmbeddedBroker;
use crate::kafka::health::BrokerHealth;
use crate::kafka::intake::Intake;
use crate::kafka::producer::KafkaPublisher;
use crate::storage::Store;
use crate::supervisor::EXIT_STORAGE_FAILED;
use crate::telemetry::metric;

/// Opens the database, recovers pending workflows and serves until a shutdown signal
/// (exit code 0) or until the disk refuses a write ([`EXIT_STORAGE_FAILED`]).
pub fn run(config: Config) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(config));
    // Sleeping workflows are durable: do not wait for their tasks.
    runtime.shutdown_background();
    result
}

async fn serve(config: Config) -> anyhow::Result<i32> {
    // Listen for stop signals before anything else: a SIGTERM that arrives during
    // start-up (even before "ready" is logged) must still mean a clean stop.
    let mut signals = StopSignals::new()?;
    let store = Store::open_with(&config.db, &crate::faults::storage_options())?;
    let engine = Engine::new(
        store,
        Arc::new(SystemClock),
        EngineConfig {
            max_recovery_attempts: config.max_recovery_attempts,
            retention: config.retention(),
            ..EngineConfig::default()
        },
    );
    let (embedded, brokers) = match &config.kafka_broker {
        Some(brokers) => (None, brokers.clone()),
        None => {
            let broker =
                EmbeddedBroker::start(&config.kafka_topic, config.kafka_topic_partitions.max(1))
                    .map_err(anyhow::Error::msg)?;
            let brokers = broker.bootstrap_servers().to_string();
            (Some(broker), brokers)
        }
    };
    let kafka = config.kafka(brokers);
    let health = BrokerHealth::new();
    let metrics_handle = crate::telemetry::install_metrics();
    let publisher = KafkaPublisher::new(&kafka, health.clone()).map_err(anyhow::Error::msg)?;
    let center = AlertCenter::new(engine.clone(), config.lease(), Arc::new(publisher));
    let intake = Intake::new(
        &engine,
        kafka.clone(),
        health.clone(),
        center.changes().clone(),
    );

    let listener = listen(&config).await?;
    let report = engine.recover().await?;
    metrics::gauge!(metric::RECOVERY_SECONDS).set(report.elapsed.as_secs_f64());
    metrics::gauge!(metric::RECOVERED, "state" => "runnable").set(report.runnable as f64);
    metrics::gauge!(metric::RECOVERED, "state" => "sleeping").set(report.sleeping as f64);
    tracing::info!(
        runnable = report.runnable,
        sleeping = report.sleeping,
        elapsed_ms = report.elapsed.as_secs_f64() * 1e3,
        "recovered pending workflows"
    );
    let broker_text = match (
        &embedded,
        std::env::var_os(crate::supervisor::EMBEDDED_BROKER_ENV),
    ) {
        (Some(_), _) => format!("embedded (in this process, {})", kafka.brokers),
        (None, Some(_)) => format!("embedded (held by the supervisor, {})", kafka.brokers),
        (None, None) => kafka.brokers.clone(),
    };
    tracing::info!(
        db = %config.db.display(),
        broker = %broker_text,
        topic = %kafka.topic,
        lease_secs = config.lease_secs,
        pid = std::process::id(),
        "alert-center ready: open http://{}/",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let intake_task = tokio::spawn({
        let intake = intake.clone();
        let stop = stop_rx.clone();
        async move { intake.run_until_stopped(stop).await }
    });
    let probe_task = tokio::spawn(crate::kafka::health::probe_until_stopped(
        health.clone(),
        kafka.clone(),
        stop_rx.clone(),
    ));
    let retention_task = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run_retention_until_stopped(Duration::from_secs(60))
                .await
        }
    });
    let state = HttpState {
        center,
        crash: Arc::new(|| std::process::abort()),
        ops: Some(Ops {
            intake: intake.stats().clone(),
            broker: health,
            metrics: metrics_handle,
        }),
    };
    let server = tokio::spawn(crate::http::serve(listener, state, {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }
    }));

    let exit_code = tokio::select! {
        () = signals.recv() => {
            tracing::info!("shutting down: finishing the commits in flight (Ctrl-C again to quit at once)");
            0
        }
        failure = engine.storage_failed() => {
            // redb refuses every write after a failed commit until the file is opened
            // again: stop, and let the supervisor start a fresh process on it.
            tracing::error!(error = %failure, "the database can no longer be written; stopping so that a restart reopens it");
            EXIT_STORAGE_FAILED
        }
    };
    tokio::spawn(async move {
        signals.recv().await;
        std::process::exit(130);
    });
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), intake_task).await;
    retention_task.abort();
    probe_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    engine.shutdown().await;
    drop(embedded);
    tracing::info!(exit_code, "stopped");
    Ok(exit_code)
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from the start of the process.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// The listening socket: inherited from the supervisor (the same socket in every life
/// of the app, so a restart refuses no connection and keeps the port), or bound here.
async fn listen(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    if let Some(listener) = crate::supervisor::inherited_listener()? {
        return Ok(listener);
    }
    tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))
}
