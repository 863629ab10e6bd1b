//! `durable-exporter demo`: the simulator and the daemon in one process, so the product can be
//! seen working in one command with no AWS account.
//!
//! The simulator serves generated executions on a free local port; the daemon discovers them
//! by function, reads their histories through aws-sdk-lambda like it would read Lambda's, serves
//! `/metrics`, and sends spans over OTLP when an endpoint is configured
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`), otherwise appends them to a file as OTLP/JSON lines. A
//! summary line is printed every few seconds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::arn::ExecutionArn;
use crate::config::{Config, FunctionTrack};
use crate::convert::{Format, convert};
use crate::daemon::Embedding;
use crate::sim::server::{Faults, SimHandle};
use crate::sim::{SimSpec, SimSummary, Simulation};

/// What the demo runs.
pub struct DemoOptions {
    pub spec: SimSpec,
    pub faults: Faults,
    /// The daemon's config before the demo points it at the simulator (file and environment:
    /// OTLP settings, rate budget, log of nothing else).
    pub config: Config,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Where the daemon serves /metrics, /healthz and its API.
    pub listen: SocketAddr,
    /// Where the daemon serves its run-time API (`/v1/executions`).
    pub api_listen: SocketAddr,
    /// Spans go here when no OTLP endpoint is configured.
    pub spans_file: PathBuf,
    /// Checkpoints (a fresh temporary directory when None).
    pub checkpoint_dir: Option<PathBuf>,
    pub summary_every: Duration,
    /// Send spans over OTLP (an endpoint was configured) instead of to `spans_file`.
    pub otlp: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("simulator: {0}")]
    Simulator(#[from] crate::sim::SimSpecError),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
}

/// What the demo did, for its last lines.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub executions: SimSummary,
    pub api_calls: u64,
    pub events_read: u64,
    pub spans_exported: u64,
    /// A finished execution drawn as a tree.
    pub example: Option<(String, String)>,
}

/// Points `config` at the simulator: discovery of every function (all statuses, so short
/// executions are not missed), quick polling, a rate budget the simulator can take.
fn daemon_config(mut config: Config, sim: &SimHandle, opts: &DemoOptions, dir: PathBuf) -> Config {
    config.aws.endpoint_url = Some(sim.endpoint_url());
    config.aws.region = Some(opts.spec.region.clone());
    config.aws.max_requests_per_second = config.aws.max_requests_per_second.max(50.0);
    config.track.executions.clear();
    config.track.functions = sim.with_simulation(|s| {
        s.functions()
            .map(|(name, qualifier)| FunctionTrack {
                name: name.to_owned(),
                qualifier: Some(qualifier.to_owned()),
                statuses: crate::sim::wire::EXECUTION_STATUSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                lookback: Duration::from_secs(24 * 3600),
            })
            .collect()
    });
    config.track.discovery_interval = Duration::from_secs(3);
    config.poll.interval = Duration::from_secs(1);
    config.poll.max_interval = Duration::from_secs(30);
    config.poll.include_execution_data = config.trace.include_payloads;
    config.checkpoint.dir = dir;
    config.http.listen = opts.listen;
    config.api.listen = opts.api_listen;
    config.otlp.enabled = true;
    config
}

/// Runs until `duration` passes or `shutdown` completes; `print` gets each summary line.
pub async fn run(
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()>,
    mut print: impl FnMut(&str),
) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    // The run-time API is as closed in the demo as in the daemon.
    if !opts.api_listen.ip().is_loopback() && opts.config.api.token_file.is_none() {
        return Err(DemoError::Io(format!(
            "--api-listen {} is reachable from the network: give a config (--config) with api.token_file, or listen on 127.0.0.1",
            opts.api_listen
        )));
    }
    let sim = Simulation::new(opts.spec.clone(), crate::clock::now_ms())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| DemoError::Io(format!("simulator: cannot listen on 127.0.0.1: {e}")))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (handle, sim_task) =
        crate::sim::server::serve(listener, sim, opts.faults.clone(), stop_rx.clone())
            .await
            .map_err(|e| DemoError::Io(format!("simulator: {e}")))?;

    let temp = match &opts.checkpoint_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("durable-exporter-demo-")
                .tempdir()
                .map_err(|e| DemoError::Io(format!("cannot make a checkpoint directory: {e}")))?,
        ),
    };
    let dir = opts
        .checkpoint_dir
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().to_owned()))
        .expect("one of the two");
    let spans_file = if opts.otlp {
        None
    } else {
        Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&opts.spans_file)
                .map_err(|e| DemoError::Io(format!("{}: {e}", opts.spans_file.display())))?,
        )
    };
    let config = daemon_config(opts.config.clone(), &handle, &opts, dir);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let embedding = Embedding {
        spans_file,
        credentials: Some(aws_sdk_lambda::config::Credentials::new(
            "demo",
            "demo",
            None,
            None,
            "durable-exporter-demo",
        )),
        started: Some(started_tx),
        ..Default::default()
    };
    let otlp_to = format!(
        "{} ({})",
        config.otlp.endpoint,
        crate::config::protocol_name(config.otlp.protocol)
    );
    let mut daemon_stop = stop_rx.clone();
    let mut daemon = tokio::spawn(crate::daemon::run_embedded(config, embedding, async move {
        let _ = daemon_stop.wait_for(|s| *s).await;
    }));
    let bound = match started_rx.await {
        Ok(started) => started,
        // It stopped before it started: its error says why.
        Err(_) => {
            let _ = stop_tx.send(true);
            let _ = sim_task.await;
            return match (&mut daemon).await {
                Ok(Err(e)) => Err(e.into()),
                Ok(Ok(())) => Err(DemoError::Io("the daemon stopped at start".into())),
                Err(e) => Err(DemoError::Io(format!("the daemon failed: {e}"))),
            };
        }
    };
    let counters = bound.metrics.clone();
    // First: where to look.
    print(&format!(
        "durable-exporter demo: browse the executions at http://{}/",
        bound.api
    ));
    let summary = handle.summary();
    print(&format!(
        "durable-exporter demo: {} executions of {} functions on a simulated Lambda at {} (speed {}x)",
        summary.executions,
        opts.spec.functions.len(),
        handle.endpoint_url(),
        opts.spec.speed
    ));
    print(&format!(
        "  metrics  http://{}/metrics   health http://{}/healthz   executions http://{}/v1/executions",
        bound.http, bound.http, bound.api
    ));
    if opts.otlp {
        print(&format!("  spans -> OTLP {otlp_to}"));
    } else {
        print(&format!(
            "  spans -> {} (OTLP/JSON lines; set OTEL_EXPORTER_OTLP_ENDPOINT to send them to a collector)",
            opts.spans_file.display()
        ));
    }

    let report = |handle: &SimHandle| DemoReport {
        executions: handle.summary(),
        api_calls: handle.stats().total(),
        events_read: counters.events.get(),
        spans_exported: counters.spans_exported.get(),
        example: None,
    };
    let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
    let mut ticker = tokio::time::interval(opts.summary_every);
    ticker.tick().await;
    tokio::pin!(shutdown);
    let daemon_result = loop {
        tokio::select! {
            _ = ticker.tick() => print(&line(started, &report(&handle))),
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break None,
            _ = &mut shutdown => break None,
            r = &mut daemon => break Some(r),
        }
    };
    let _ = stop_tx.send(true);
    let result = match daemon_result {
        Some(r) => r,
        None => daemon.await,
    };
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = sim_task.await;
            return Err(e.into());
        }
        Err(e) => return Err(DemoError::Io(format!("the daemon task failed: {e}"))),
    }
    let mut last = report(&handle);
    print(&line(started, &last));
    last.example = example(&handle);
    let _ = sim_task.await;
    Ok(last)
}

fn line(started: Instant, r: &DemoReport) -> String {
    let e = &r.executions;
    format!(
        "[{:>4}s] executions {} ({} running, {} succeeded, {} failed, {} timed out, {} stopped) | events read {} | spans exported {} | API calls {}",
        started.elapsed().as_secs(),
        e.executions,
        e.running,
        e.succeeded,
        e.failed,
        e.timed_out,
        e.stopped,
        r.events_read,
        r.spans_exported,
        r.api_calls
    )
}

/// More kinds of events first, then fewer events.
type ExampleScore = (usize, std::cmp::Reverse<usize>);

/// A finished execution showing many kinds of events in few lines, drawn as
/// `convert --format tree` draws it.
fn example(handle: &SimHandle) -> Option<(String, String)> {
    let now = crate::clock::now_ms();
    handle.with_simulation(|s| {
        let mut best: Option<(ExampleScore, String, Vec<crate::history::Event>)> = None;
        for arn in s.arns() {
            if s.status(arn, now) != Some("SUCCEEDED") {
                continue;
            }
            let Some(events) = s.visible_events(arn, now) else {
                continue;
            };
            let n = events.len();
            let kinds: std::collections::HashSet<&str> =
                events.iter().map(|e| e.details.event_type()).collect();
            let score = (kinds.len(), std::cmp::Reverse(n));
            if n <= 80 && best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                best = Some((score, arn.to_owned(), events));
            }
        }
        let (_, arn, events) = best?;
        let parsed = ExecutionArn::parse(&arn).ok()?;
        let tree = convert(&events, &parsed, None, Default::default()).render(Format::Tree);
        Some((arn, tree))
    })
}
