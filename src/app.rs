//! Wires the modules together: the only file that knows all of them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::engine::{Engine, EngineConfig, SystemClock};
use crate::storage::Store;

/// Opens the database, recovers pending workflows and serves until a shutdown signal.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.db)?;
    let engine = Engine::new(
        store,
        Arc::new(SystemClock),
        EngineConfig {
            max_recovery_attempts: config.max_recovery_attempts,
            retention: config.retention(),
            ..EngineConfig::default()
        },
    );
    let report = engine.recover().await?;
    tracing::info!(
        db = %config.db.display(),
        runnable = report.runnable,
        sleeping = report.sleeping,
        elapsed_ms = report.elapsed.as_secs_f64() * 1e3,
        "recovered pending workflows"
    );
    let retention = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run_retention_until_stopped(Duration::from_secs(60))
                .await
        }
    });
    shutdown_signal().await;
    tracing::info!("shutting down");
    retention.abort();
    engine.shutdown().await;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
