//! The scale benchmark: the real daemon (a separate process, the release binary) tracking
//! 10,000 running executions on the in-process simulator, exporting to an in-process OTLP/gRPC
//! receiver, on one machine. Reports API calls per page of new events, events/s,
//! event-to-export latency (p50, p99), the daemon's peak RSS and CPU, and whether the rate
//! budget held. docs/BENCHMARKS.md has the results and how to reproduce them:
//!
//! ```text
//! cargo build --release && cargo run --release --example scale -- --adaptive true
//! cargo run --release --example scale -- --adaptive false
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use durable_exporter::sim::server::{self, SimHandle};
use durable_exporter::sim::{SimSpec, Simulation};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Args {
    /// The daemon binary.
    #[arg(long, default_value = "target/release/durable-exporter")]
    bin: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    executions: usize,
    /// New executions per minute, to keep the population up as executions finish.
    #[arg(long, default_value_t = 600.0)]
    arrivals_per_minute: f64,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    spread: Duration,
    /// The whole run.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Excluded from the steady-state figures (discovery and the first reads).
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// aws.max_requests_per_second.
    #[arg(long, default_value_t = 400.0)]
    rate: f64,
    /// poll.interval.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// poll.max_interval: the longest idle back-off (callbacks).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    max_interval: Duration,
    /// poll.adaptive: wait-aware scheduling and idle back-off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    adaptive: bool,
    /// poll.mode (fresh or economy); left out of the config when not given, so that builds
    /// from before the key existed run the same load.
    #[arg(long)]
    mode: Option<String>,
    /// A name for the run, copied into the results.
    #[arg(long)]
    label: Option<String>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Operations per execution (the simulator's mix draws between these).
    #[arg(long)]
    min_operations: Option<usize>,
    #[arg(long)]
    max_operations: Option<usize>,
    /// poll.page_size.
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    /// track.max_executions (left to the daemon's default when not given).
    #[arg(long)]
    max_executions: Option<usize>,
    /// Also write the results here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the daemon's log (stderr) here (RUST_LOG for it: BENCH_DAEMON_LOG, default warn).
    #[arg(long)]
    daemon_log: Option<PathBuf>,
}

/// Export-latency samples (ms) of spans received after the warm-up.
#[derive(Clone, Default)]
struct Latencies {
    samples: Arc<Mutex<Vec<u32>>>,
    /// The same samples by kind of span (see [`span_kind`]).
    by_kind: Arc<Mutex<BTreeMap<&'static str, Vec<u32>>>>,
    spans: Arc<std::sync::atomic::AtomicU64>,
    from_ms: Arc<std::sync::atomic::AtomicI64>,
}

#[tonic::async_trait]
impl TraceService for Latencies {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let now = durable_exporter::clock::now_ms();
        let from = self.from_ms.load(std::sync::atomic::Ordering::Relaxed);
        let mut n = 0;
        let mut lat = Vec::new();
        let mut kinds = Vec::new();
        for rs in &request.get_ref().resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    n += 1;
                    let end_ms = (s.end_time_unix_nano / 1_000_000) as i64;
                    if now >= from && end_ms >= from {
                        lat.push((now - end_ms).max(0) as u32);
                        kinds.push(span_kind(&s.name));
                    }
                }
            }
        }
        self.spans
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        {
            let mut by_kind = self.by_kind.lock().unwrap();
            for (k, l) in kinds.iter().zip(&lat) {
                by_kind.entry(k).or_default().push(*l);
            }
        }
        self.samples.lock().unwrap().extend(lat);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The kind of a span by its name (the trace model's names: docs/TRACE_MODEL.md).
fn span_kind(name: &str) -> &'static str {
    match name {
        "Workflow" => "workflow",
        "Invocation" => "invocation",
        "Suspended" => "suspension",
        n if n.contains(" attempt ") => "attempt",
        n if n.contains(" back-off ") => "back-off",
        _ => "operation",
    }
}

/// `/proc/PID`: (resident KiB, peak resident KiB, CPU seconds).
fn proc_stats(pid: u32) -> Option<(u64, u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((kib("VmRSS:")?, kib("VmHWM:")?, ticks / 100.0))
}

async fn scrape(addr: SocketAddr) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body).await;
    body
}

/// Sum of a metric's samples whose labels contain every `filter`.
fn metric(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            (n == name && filters.iter().all(|f| labels.contains(f)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        // + 0.0: an empty sum is -0.0.
        .sum::<f64>()
        + 0.0
}

struct Snapshot {
    at: Instant,
    history_calls: f64,
    all_calls: f64,
    pages: f64,
    events: f64,
    tracked: f64,
    dormant: f64,
    cpu: f64,
    events_served: u64,
    /// `durable_exporter_polls_total` by reason and result, and the discovery calls.
    calls_by_kind: BTreeMap<String, f64>,
}

/// The window's API calls by what they were for: history polls by why they were scheduled and
/// what they found, and listing calls.
fn calls_by_kind(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            let key = format!("{name}=\"");
            let rest = &series[series.find(&key)? + key.len()..];
            Some(rest[..rest.find('"')?].to_owned())
        };
        let key = if series.starts_with("durable_exporter_polls_total{") {
            label("reason")
                .zip(label("result"))
                .map(|(r, o)| format!("poll {r} {o}"))
        } else if series.starts_with("durable_exporter_api_requests_total{") {
            label("operation").filter(|o| o != "GetDurableExecutionHistory")
        } else {
            None
        };
        if let Some(k) = key {
            *out.entry(k).or_insert(0.0) += v;
        }
    }
    out
}

async fn snapshot(metrics: SocketAddr, pid: u32, sim: &SimHandle) -> Snapshot {
    let text = scrape(metrics).await;
    Snapshot {
        at: Instant::now(),
        history_calls: metric(
            &text,
            "durable_exporter_api_requests_total",
            &["operation=\"GetDurableExecutionHistory\""],
        ),
        all_calls: metric(&text, "durable_exporter_api_requests_total", &[]),
        pages: metric(
            &text,
            "durable_exporter_history_pages_with_new_events_total",
            &[],
        ),
        events: metric(&text, "durable_exporter_events_processed_total", &[]),
        tracked: metric(&text, "durable_exporter_tracked_executions", &[]),
        dormant: metric(&text, "durable_exporter_dormant_executions", &[]),
        cpu: proc_stats(pid).map_or(0.0, |s| s.2),
        events_served: sim.stats().events_served,
        calls_by_kind: calls_by_kind(&text),
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_daemon(
    args: &Args,
    sim: &SimHandle,
    otlp: SocketAddr,
    metrics: SocketAddr,
    dir: &std::path::Path,
) -> Child {
    let functions: Vec<String> = sim.with_simulation(|s| {
        s.functions()
            .map(|(n, q)| {
                format!(
                    "    - name: {n}\n      qualifier: \"{q}\"\n      statuses: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED]\n      lookback: 1h\n"
                )
            })
            .collect()
    });
    let config = format!(
        "aws:\n  region: us-east-1\n  endpoint_url: {}\n  max_requests_per_second: {}\n  max_concurrency: 32\ntrack:\n  functions:\n{}  discovery_interval: 15s\n{}poll:\n  interval: {}ms\n  max_interval: {}ms\n  page_size: {}\n  adaptive: {}\n{}otlp:\n  endpoint: http://{otlp}\n  protocol: grpc\ncheckpoint:\n  dir: {}\nhttp:\n  listen: {metrics}\n",
        sim.endpoint_url(),
        args.rate,
        functions.concat(),
        args.max_executions
            .map_or(String::new(), |m| format!("  max_executions: {m}\n")),
        args.interval.as_millis(),
        args.max_interval.as_millis(),
        args.page_size,
        args.adaptive,
        args.mode
            .as_ref()
            .map_or(String::new(), |m| format!("  mode: {m}\n")),
        dir.join("checkpoints").display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).expect("write the config");
    Command::new(&args.bin)
        .args(["run", "--config"])
        .arg(&path)
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_DAEMON_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(
                args.daemon_log
                    .clone()
                    .unwrap_or_else(|| dir.join("daemon.log")),
            )
            .expect("log file"),
        )
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --release first)", args.bin.display()))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = SimSpec {
        seed: args.seed,
        executions: args.executions,
        spread: args.spread,
        arrivals_per_minute: args.arrivals_per_minute,
        ..SimSpec::default()
    };
    let spec = SimSpec {
        min_operations: args.min_operations.unwrap_or(spec.min_operations),
        max_operations: args.max_operations.unwrap_or(spec.max_operations),
        ..spec
    };
    let t = Instant::now();
    let sim = Simulation::new(spec, durable_exporter::clock::now_ms()).expect("valid spec");
    eprintln!(
        "simulator: {} executions in {:.1}s",
        sim.len(),
        t.elapsed().as_secs_f64()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sim, sim_task) = server::serve(listener, sim, Default::default(), stop_rx)
        .await
        .unwrap();

    let latencies = Latencies::default();
    latencies.from_ms.store(
        durable_exporter::clock::now_ms() + args.warmup.as_millis() as i64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let otlp = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let receiver = latencies.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver).max_decoding_message_size(64 << 20))
            .serve(otlp)
            .await
            .expect("the OTLP receiver")
    });
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut daemon = start_daemon(&args, &sim, otlp, metrics, dir.path());
    let pid = daemon.id();
    let started = Instant::now();
    let mut running: Vec<usize> = Vec::new();
    let mut first: Option<Snapshot> = None;
    let mut peak_rss = 0;
    while started.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Some((rss, hwm, _)) = proc_stats(pid) {
            peak_rss = peak_rss.max(hwm);
            let s = sim.summary();
            let text = scrape(metrics).await;
            eprintln!(
                "[{:>4}s] running {:>5} | daemon RSS {:>4} MiB | tracked {:>5} (dormant {:>5}) | events {:>8} | spans received {:>8} | API {:>7}",
                started.elapsed().as_secs(),
                s.running,
                rss / 1024,
                metric(&text, "durable_exporter_tracked_executions", &[]),
                metric(&text, "durable_exporter_dormant_executions", &[]),
                metric(&text, "durable_exporter_events_processed_total", &[]),
                latencies.spans.load(std::sync::atomic::Ordering::Relaxed),
                sim.stats().total()
            );
            if started.elapsed() >= args.warmup {
                running.push(s.running);
            }
        } else {
            panic!(
                "the daemon exited; see {}",
                dir.path().join("daemon.log").display()
            );
        }
        if first.is_none() && started.elapsed() >= args.warmup {
            first = Some(snapshot(metrics, pid, &sim).await);
        }
    }
    let last = snapshot(metrics, pid, &sim).await;
    let (last_rss, hwm, _) = proc_stats(pid).unwrap_or_default();
    peak_rss = peak_rss.max(hwm);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = daemon.wait();
    let _ = stop_tx.send(true);
    let _ = sim_task.await;

    let first = first.expect("the run is longer than the warm-up");
    let window = last.at.duration_since(first.at).as_secs_f64();
    let mut lat = std::mem::take(&mut *latencies.samples.lock().unwrap());
    lat.sort_unstable();
    let served = sim.stats();
    let history_calls = last.history_calls - first.history_calls;
    let all_calls = last.all_calls - first.all_calls;
    let pages = last.pages - first.pages;
    let mut results = BTreeMap::new();
    let mut put = |k: &str, v: serde_json::Value| {
        results.insert(k.to_owned(), v);
    };
    put("adaptive", args.adaptive.into());
    put("mode", args.mode.clone().into());
    put("label", args.label.clone().into());
    put("binary", args.bin.display().to_string().into());
    put("executions_at_start", args.executions.into());
    put(
        "running_in_window_min_avg_max",
        serde_json::json!([
            running.iter().min(),
            running.iter().sum::<usize>() / running.len().max(1),
            running.iter().max()
        ]),
    );
    put("window_seconds", window.round().into());
    put("poll_interval_seconds", args.interval.as_secs_f64().into());
    put(
        "poll_max_interval_seconds",
        args.max_interval.as_secs_f64().into(),
    );
    put("rate_budget_per_second", args.rate.into());
    put(
        "history_calls_per_page_of_new_events",
        (history_calls / pages.max(1.0)).into(),
    );
    put(
        "api_calls_per_page_of_new_events",
        (all_calls / pages.max(1.0)).into(),
    );
    put("api_calls_per_second", (all_calls / window).into());
    let by_kind: BTreeMap<&str, f64> = last
        .calls_by_kind
        .iter()
        .map(|(k, v)| (k.as_str(), v - first.calls_by_kind.get(k).unwrap_or(&0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    put("calls_by_kind", serde_json::json!(by_kind));
    put(
        "events_per_second",
        ((last.events - first.events) / window).into(),
    );
    put(
        "events_served_per_history_call",
        ((last.events_served - first.events_served) as f64 / history_calls.max(1.0)).into(),
    );
    put("latency_ms_p50", percentile(&lat, 0.5).into());
    put("latency_ms_p99", percentile(&lat, 0.99).into());
    put("latency_samples", lat.len().into());
    let by_kind: BTreeMap<&str, serde_json::Value> =
        std::mem::take(&mut *latencies.by_kind.lock().unwrap())
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                let row = serde_json::json!({
                    "spans": v.len(),
                    "p50_ms": percentile(&v, 0.5),
                    "p99_ms": percentile(&v, 0.99),
                });
                (k, row)
            })
            .collect();
    put("latency_by_span_kind", serde_json::json!(by_kind));
    put("daemon_peak_rss_mib", (peak_rss as f64 / 1024.0).into());
    put(
        "daemon_cpu_percent_of_one_core",
        ((last.cpu - first.cpu) / window * 100.0).into(),
    );
    put(
        "daemon_cpu_ms_per_api_call",
        ((last.cpu - first.cpu) * 1000.0 / all_calls.max(1.0)).into(),
    );
    put(
        "budget_used_percent",
        (all_calls / window / args.rate * 100.0).into(),
    );
    put("tracked_at_end", last.tracked.into());
    put("dormant_at_end", last.dormant.into());
    put(
        "rss_kib_per_tracked_execution",
        (last_rss as f64 / last.tracked.max(1.0)).into(),
    );
    put(
        "max_requests_in_one_second",
        served.max_requests_per_second.into(),
    );
    put(
        "throttled_responses",
        served
            .requests
            .values()
            .filter_map(|m| m.get(&429))
            .sum::<u64>()
            .into(),
    );
    put(
        "spans_received",
        latencies
            .spans
            .load(std::sync::atomic::Ordering::Relaxed)
            .into(),
    );
    let json = serde_json::to_string_pretty(&results).unwrap();
    println!("{json}");
    if let Some(out) = &args.out {
        std::fs::write(out, &json).expect("write --out");
    }
}
