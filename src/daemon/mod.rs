//! The daemon (`durable-exporter run`): polls tracked executions incrementally, exports their
//! spans over OTLP, and keeps read positions on disk so a restart neither loses nor repeats.
//!
//! ```text
//!  HTTP API ──commands──▶ coordinator ──jobs──▶ poll tasks ──▶ aws-sdk-lambda (rate budget)
//!                            │  ▲ results ◀──────────┘
//!                 spans ─────▼  │ acks
//!                          exporter ──▶ OTLP collector
//!                            └── checkpoints move only on acks
//! ```

pub mod api;
pub mod checkpoint;
pub mod coordinator;
pub mod exporter;
pub mod http;
pub mod limiter;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::otlp::{Compression, ExportError, OtlpClient, OtlpTarget, OtlpTls};

/// Wall-clock milliseconds since the epoch (the shell's clock; the core has none).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long shutdown may take to flush spans and checkpoints (ECS waits 30 s by default).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("checkpoint.dir: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("http.listen {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("otlp: {0}")]
    Otlp(#[from] ExportError),
}

/// Shared counters, for logs, the HTTP API and metrics.
#[derive(Default)]
pub struct Counters {
    pub api: Arc<api::ApiCounters>,
    pub export: Arc<exporter::ExportCounters>,
    pub coordinator: Arc<coordinator::CoordinatorCounters>,
}

/// What a program embedding the daemon (the demo) changes about [`run`].
#[derive(Default)]
pub struct Embedding {
    /// Spans are appended to this file as OTLP/JSON lines instead of going where `otlp` says.
    pub spans_file: Option<std::fs::File>,
    /// These credentials instead of the standard chain (a simulator checks none).
    pub credentials: Option<aws_sdk_lambda::config::Credentials>,
    /// The daemon's counters, shared with the embedding program.
    pub counters: Option<Arc<Counters>>,
}

/// Runs until `shutdown` completes, then drains within [`SHUTDOWN_GRACE`].
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    run_embedded(config, Embedding::default(), shutdown).await
}

/// [`run`], with what an embedding program changes.
pub async fn run_embedded(
    config: Config,
    embedding: Embedding,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let store = checkpoint::CheckpointStore::open(&config.checkpoint.dir)?;
    // Built before anything runs: a bad endpoint, header or TLS file stops the start.
    let otlp = if embedding.spans_file.is_none() && config.otlp.enabled {
        Some(OtlpClient::new(&OtlpTarget {
            endpoint: config.otlp.endpoint.clone(),
            protocol: config.otlp.protocol,
            timeout: config.otlp.timeout,
            headers: config.otlp.headers.clone().into_iter().collect(),
            // Not config keys (yet): plain requests, TLS with the system's CA certificates.
            compression: Compression::None,
            tls: OtlpTls::default(),
        })?)
    } else {
        None
    };

    let counters = embedding.counters.unwrap_or_default();
    let metrics = Arc::new(crate::metrics::Metrics::new(config.metrics.name_label()));
    let exporter_metrics = Arc::new(metrics::ExporterMetrics::new(metrics.registry(), &counters));
    let client = api::sdk_client(
        config.aws.region.as_deref(),
        config.aws.endpoint_url.as_deref(),
        Duration::from_secs(30),
        embedding.credentials,
    )
    .await;
    let limiter = Arc::new(limiter::RateLimiter::new(
        config.aws.max_requests_per_second,
    ));
    let api = api::Api::new(client, limiter, counters.api.clone());

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: config.http.listen,
            source,
        })?;
    let local = listener.local_addr().ok();

    let spans_to_file = embedding.spans_file.is_some();
    let (export_tx, export_rx) = mpsc::unbounded_channel();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sink = if let Some(file) = embedding.spans_file {
        exporter::Sink::JsonLines(std::io::BufWriter::new(file))
    } else if let Some(client) = otlp {
        exporter::Sink::Otlp(client)
    } else {
        exporter::Sink::Discard
    };
    let exporter = tokio::spawn(exporter::run(
        export_rx,
        ack_tx,
        sink,
        config.otlp.max_batch_size,
        counters.export.clone(),
        stop_rx.clone(),
    ));

    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let app = http::router(http::AppState {
        commands: cmd_tx,
        counters: counters.coordinator.clone(),
        all_counters: counters.clone(),
        metrics: metrics.clone(),
        exporter_metrics: exporter_metrics.clone(),
        started: std::time::Instant::now(),
        ready_window: (config.poll.max_interval * 2).max(Duration::from_secs(60)),
        api: api.clone(),
        page_size: config.poll.page_size,
        include_execution_data: config.poll.include_execution_data,
        include_payloads: config.trace.include_payloads,
    });
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
    });

    let coordinator = coordinator::Coordinator::new(
        config.clone(),
        api,
        store,
        export_tx,
        counters.coordinator.clone(),
        metrics,
        exporter_metrics,
    );
    tracing::info!(
        listen = ?local,
        otlp = if spans_to_file { "file" } else if !config.otlp.enabled { "disabled" } else { config.otlp.endpoint.as_str() },
        checkpoint_dir = %config.checkpoint.dir.display(),
        "durable-exporter running"
    );
    let coordinator =
        tokio::spawn(coordinator.run(cmd_rx, ack_rx, stop_rx, exporter, SHUTDOWN_GRACE));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = coordinator.await;
    let _ = server.await;
    Ok(())
}
