//! The daemon (`durable-exporter run`): polls tracked executions incrementally, exports their
//! spans over OTLP, and keeps read positions on disk so a restart neither loses nor repeats.
//!
//! ```text
//!  run-time API ──commands──▶ coordinator ──jobs──▶ poll tasks ──▶ aws-sdk-lambda (rate budget)
//!                            │  ▲ results ◀──────────┘
//!                 spans ─────▼  │ acks
//!                          exporter ──▶ OTLP collector
//!                            └── checkpoints move only on acks
//! ```

pub mod checkpoint;
pub mod coordinator;
pub mod exporter;
pub mod http;
pub mod lambda;
pub mod limiter;
mod memory;
pub mod metrics;
pub mod reload;
pub mod schedule;
pub mod status_events;
pub mod ui;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::{Config, ConfigError};
use crate::listener::{Access, Listener};
use crate::otlp::{ExportError, OtlpClient};

/// How long shutdown may take to flush spans and checkpoints (ECS waits 30 s by default).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("checkpoint.dir: {0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("{key} {addr}: {source}")]
    Listen {
        key: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("otlp: {0}")]
    Otlp(#[from] ExportError),
    /// A checkpoint a newer version wrote (exit 2: a rollback must not re-export everything).
    #[error("{0}")]
    NewerCheckpoint(#[from] checkpoint::NewerFile),
    /// A file the configuration names (web config, token) that cannot be used now.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

impl DaemonError {
    /// Bad input rather than a runtime failure (the command exits 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DaemonError::NewerCheckpoint(_) | DaemonError::Config(_)
        )
    }
}

/// Who may use each listener, as the configuration says: the web configs and the token read
/// now (at start and at every reload).
pub fn listener_access(config: &Config) -> Result<(Access, Access), ConfigError> {
    let web = |path: &Option<std::path::PathBuf>| {
        path.as_deref()
            .map(crate::listener::WebConfig::load)
            .transpose()
    };
    let token = match &config.api.token_file {
        Some(p) => Some(crate::config::read_token(p).map_err(|message| ConfigError {
            file: None,
            key: Some("api.token_file".into()),
            message,
        })?),
        None => None,
    };
    Ok((
        Access {
            web: web(&config.http.web_config_file)?,
            token: None,
            open_paths: http::PROBE_PATHS,
        },
        Access {
            web: web(&config.api.web_config_file)?,
            token,
            open_paths: &[],
        },
    ))
}

/// A started daemon: where it listens (port 0 in the config becomes the real port) and the
/// handles of its own metrics.
#[derive(Clone)]
pub struct Started {
    pub http: std::net::SocketAddr,
    pub api: std::net::SocketAddr,
    pub metrics: metrics::ExporterMetrics,
}

async fn bind(
    key: &'static str,
    addr: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, DaemonError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { key, addr, source })
}

/// What `/readyz` judges by, kept where it happens (not metrics: moments and an error).
#[derive(Debug, Default)]
pub struct Health {
    /// Unix ms since which API calls have gone unanswered: set when a call starts or fails while
    /// it is 0, back to 0 by any answer (anything but a transport error or a 5xx). A daemon
    /// with nothing to read makes no calls and keeps it at 0: quiet is not unanswered.
    pub unanswered_since_ms: std::sync::atomic::AtomicI64,
    /// Unix ms since which the export in flight has been trying to deliver its spans (0:
    /// nothing in flight): a hung or failing collector shows here.
    pub sending_since_ms: std::sync::atomic::AtomicI64,
    /// Why checkpoints cannot be written now (None: they can). While set, nothing more is
    /// exported: what cannot be checkpointed would be exported again after a crash.
    pub checkpoint_error: std::sync::Mutex<Option<String>>,
    /// Why `tracked.json` cannot be written now: run-time registrations are refused.
    pub tracking_error: std::sync::Mutex<Option<String>>,
}

impl Health {
    /// Marks `ms` as the start of unanswered calls, unless an earlier start is marked.
    pub fn waiting_since(&self, ms: i64) {
        let _ = self.unanswered_since_ms.compare_exchange(
            0,
            ms.max(1),
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// The OTLP client, signing with the credentials the Lambda client uses (the SDK's chain,
/// or the embedding's).
fn sign_with(
    client: OtlpClient,
    target: crate::sigv4::SigV4Target,
    sdk: &aws_config::SdkConfig,
) -> Result<OtlpClient, DaemonError> {
    let Some(provider) = sdk.credentials_provider() else {
        return Err(DaemonError::Otlp(ExportError::Build {
            endpoint: client.endpoint().to_owned(),
            reason: "otlp.aws_sigv4 is set but the AWS SDK has no credentials provider".into(),
        }));
    };
    tracing::info!(
        endpoint = client.endpoint(),
        service = %target.service,
        region = %target.region,
        "export requests are signed with AWS SigV4 (credentials from the AWS SDK's default chain)"
    );
    Ok(client.with_sigv4(crate::sigv4::Signer::new(target, provider))?)
}

/// What a program embedding the daemon (the demo) changes about [`run`].
#[derive(Default)]
pub struct Embedding {
    /// Spans are appended to this file as OTLP/JSON lines instead of going where `otlp` says.
    pub spans_file: Option<std::fs::File>,
    /// These credentials instead of the standard chain (a simulator checks none).
    pub credentials: Option<aws_sdk_lambda::config::Credentials>,
    /// Told where the daemon listens and what it counts with, once it has started.
    pub started: Option<tokio::sync::oneshot::Sender<Started>>,
    /// SIGHUP reloads the configuration from this file (None: the defaults and the
    /// environment).
    pub reload_on_sighup: bool,
    pub config_path: Option<std::path::PathBuf>,
    /// Sets the log filter when `log.level` is reloaded.
    pub log: Option<reload::LogSetter>,
}

/// Runs until `shutdown` completes, then drains within [`SHUTDOWN_GRACE`]. With
/// `reload_on_sighup`, SIGHUP reloads `config_path`.
pub async fn run(
    config: Config,
    embedding: Embedding,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    run_embedded(config, embedding, shutdown).await
}

/// [`run`], with what an embedding program changes.
pub async fn run_embedded(
    config: Config,
    embedding: Embedding,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    // Before anything else: from here on SIGHUP reloads instead of ending the process.
    #[cfg(unix)]
    let mut hangups = if embedding.reload_on_sighup {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: no config reloads");
                None
            }
        }
    } else {
        None
    };
    let loaded = config.clone();
    let config = Arc::new(config);
    let store = checkpoint::CheckpointStore::open(&config.checkpoint.dir)?;
    // Built before anything runs: a bad endpoint, header or TLS file stops the start.
    let otlp = if embedding.spans_file.is_none() && config.otlp.enabled {
        Some(OtlpClient::new(&config.otlp.target())?)
    } else {
        None
    };
    let (metrics_access, api_access) = listener_access(&config)?;

    let health = Arc::new(Health::default());
    let mut metrics = crate::metrics::Metrics::new(config.metrics.name_label());
    let exporter_metrics = metrics::ExporterMetrics::register(metrics.registry_mut());
    let metrics = Arc::new(metrics);
    let aws = crate::aws::sdk_config(
        config.aws.region.as_deref(),
        Duration::from_secs(30),
        embedding.credentials,
    )
    .await;
    let otlp = match (otlp, config.otlp.sigv4()) {
        (Some(client), Some(target)) => Some(sign_with(client, target, &aws)?),
        (client, _) => client,
    };
    let client = lambda::lambda_client(&aws, config.aws.endpoint_url.as_deref());
    // aws.max_requests_per_second is the account's figure: each of shard.count replicas
    // spends its share.
    let shard = config.shard.shard();
    exporter_metrics.shard_index.set(i64::from(shard.index));
    exporter_metrics.shard_count.set(i64::from(shard.count));
    if shard.count > 1 {
        tracing::info!(
            shard = shard.index,
            shard_count = shard.count,
            max_requests_per_second = shard.share_of(config.aws.max_requests_per_second),
            "tracking the executions whose ARN hashes to this replica"
        );
    }
    let limiter = limiter::RateLimiter::new(shard.share_of(config.aws.max_requests_per_second));
    let lambda = lambda::Lambda::new(client, limiter, exporter_metrics.clone(), health.clone());

    let metrics_tcp = bind("http.listen", config.http.listen).await?;
    let api_tcp = bind("api.listen", config.api.listen).await?;

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
        exporter::ExportCounters {
            metrics: exporter_metrics.clone(),
            health: health.clone(),
        },
        stop_rx.clone(),
    ));

    exporter_metrics.reload_successful.set(1);
    exporter_metrics
        .reload_success_time
        .set(crate::clock::now_seconds());
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let cmd_tx_for_events = cmd_tx.clone();
    let state = Arc::new(http::AppState {
        commands: cmd_tx.clone(),
        health: health.clone(),
        metrics: metrics.clone(),
        exporter_metrics: exporter_metrics.clone(),
        ready_window: config.http.ready_window,
        lambda: lambda.clone(),
        page_size: config.poll.page_size,
        include_execution_data: config.poll.include_execution_data,
        include_payloads: config.trace.include_payloads,
        ui: Arc::new(ui::Ui::new(config.ui.clone())),
    });
    let coordinator = coordinator::Coordinator::new(
        config.clone(),
        lambda,
        store,
        export_tx,
        health,
        metrics,
        exporter_metrics.clone(),
    )?;

    let (metrics_access_tx, metrics_access_rx) = watch::channel(metrics_access);
    let (api_access_tx, api_access_rx) = watch::channel(api_access);
    let mut reloader = reload::Reloader {
        path: embedding.config_path,
        loaded,
        running: config.clone(),
        metrics_access: metrics_access_tx,
        api_access: api_access_tx,
        commands: cmd_tx,
        log: embedding.log,
        metrics: exporter_metrics.clone(),
    };
    let listeners = [
        Listener {
            name: "http",
            tcp: metrics_tcp,
            router: http::metrics_router(state.clone()),
            access: metrics_access_rx,
            stats: exporter_metrics.listener("http"),
        },
        Listener {
            name: "api",
            tcp: api_tcp,
            router: http::api_router(state),
            access: api_access_rx,
            stats: exporter_metrics.listener("api"),
        },
    ];
    let bound = Started {
        http: listeners[0].local_addr().unwrap_or(config.http.listen),
        api: listeners[1].local_addr().unwrap_or(config.api.listen),
        metrics: exporter_metrics,
    };
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(l.serve(stop_rx.clone())))
        .collect();
    if let Some(tx) = embedding.started {
        let _ = tx.send(bound.clone());
    }
    tracing::info!(
        http = %bound.http,
        api = %bound.api,
        otlp = if spans_to_file { "file" } else if !config.otlp.enabled { "disabled" } else { config.otlp.endpoint.as_str() },
        checkpoint_dir = %config.checkpoint.dir.display(),
        "durable-exporter running"
    );
    let status_events = &config.track.status_events;
    let intake = match &status_events.queue_url {
        Some(queue) => Some(tokio::spawn(status_events::run(
            crate::aws::sqs_client(&aws, status_events.endpoint_url.as_deref()),
            queue.clone(),
            cmd_tx_for_events,
            bound.metrics.clone(),
            stop_rx.clone(),
        ))),
        None => None,
    };
    tokio::spawn(memory::trim_until(stop_rx.clone()));
    let coordinator =
        tokio::spawn(coordinator.run(cmd_rx, ack_rx, stop_rx, exporter, SHUTDOWN_GRACE));
    #[cfg(unix)]
    {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(()) = async {
                    match hangups.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    reloader.reload().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = &mut reloader;
        shutdown.await;
    }
    let _ = stop_tx.send(true);
    if let Some(intake) = intake {
        let _ = intake.await;
    }
    let _ = coordinator.await;
    for s in servers {
        let _ = s.await;
    }
    Ok(())
}
