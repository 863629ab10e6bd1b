//! The `durable-exporter` command line.
//!
//! Exit codes: 0 success; 1 a runtime failure (the collector refused or rejected spans, or did not
//! answer); 2 bad input or bad arguments (one line on stderr naming the input and the position).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use durable_exporter::arn::ExecutionArn;
use durable_exporter::convert::{Format, convert};
use durable_exporter::history::json::parse_history;
use durable_exporter::otlp::{Compression, OtlpClient, OtlpTarget, OtlpTls, Protocol};
use durable_exporter::trace::ids::{IdScheme, TraceHeader};
use durable_exporter::trace::{DEFAULT_MAX_ATTRIBUTE_LENGTH, TraceOptions};

#[derive(Parser)]
#[command(
    name = "durable-exporter",
    version,
    about = "AWS Lambda durable execution histories as OpenTelemetry traces and Prometheus metrics"
)]
struct Cli {
    /// Log format on stderr (levels from RUST_LOG; default info for run, warn otherwise).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a saved GetDurableExecutionHistory output into a trace (or state, or a tree).
    Convert(ConvertArgs),
    /// Load and validate a daemon config file (with its environment overrides), then summarize it.
    CheckConfig(CheckConfigArgs),
    /// Run the daemon: poll tracked executions, export spans over OTLP, checkpoint on disk.
    /// Stops cleanly on SIGTERM or SIGINT.
    Run(RunArgs),
    /// The product in one command, no AWS account needed: a simulated Lambda durable API with
    /// generated executions, and the daemon reading it (metrics on --listen, spans over OTLP when
    /// OTEL_EXPORTER_OTLP_ENDPOINT is set, else to --spans-file), with a live summary.
    Demo(DemoArgs),
    /// Serve a simulated Lambda durable-execution API on 127.0.0.1 (history, GetDurableExecution,
    /// ListDurableExecutionsByFunction, callbacks) for generated executions, with fault injection.
    Simulate(SimulateArgs),
    /// Exit 0 when the daemon's /healthz (or the given path) answers 200 within 2 s, else 1:
    /// a container HEALTHCHECK that needs no shell or curl in the image.
    Healthcheck(HealthcheckArgs),
    /// Which replica tracks each execution ARN when shard.count replicas split the work: one
    /// line per ARN, `INDEX ARN`.
    Shard(ShardArgs),
}

#[derive(clap::Args)]
struct ShardArgs {
    /// shard.count: how many replicas split the executions.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(durable_exporter::shard::MAX_COUNT)))]
    count: u32,
    /// Execution ARNs.
    #[arg(required = true)]
    arns: Vec<String>,
}

/// The simulated executions and faults (`simulate` and `demo`).
#[derive(clap::Args)]
struct SimArgs {
    /// Executions running at the start [simulate: 1000, demo: 40].
    #[arg(long)]
    executions: Option<usize>,
    /// How far back the initial executions started [simulate: 60s, demo: 10s].
    #[arg(long, value_parser = humantime::parse_duration)]
    spread: Option<Duration>,
    /// New executions per minute [simulate: 0, demo: 30].
    #[arg(long)]
    arrivals_per_minute: Option<f64>,
    /// No more executions than this in all.
    #[arg(long, default_value_t = 1_000_000)]
    max_executions: usize,
    /// Time compression: 60 makes an hour-long wait last a minute [simulate: 1, demo: 10].
    #[arg(long)]
    speed: Option<f64>,
    /// Every choice follows from it.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Function names (`name` or `name:qualifier`), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = durable_exporter::sim::DEFAULT_FUNCTIONS.map(String::from))]
    functions: Vec<String>,
    #[arg(long, default_value_t = 4)]
    min_operations: usize,
    #[arg(long, default_value_t = 40)]
    max_operations: usize,
    /// Percent of executions stopped by an operator.
    #[arg(long, default_value_t = 3)]
    stopped_percent: u8,
    /// Percent of executions that time out.
    #[arg(long, default_value_t = 3)]
    timed_out_percent: u8,
    /// Markers expire after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    marker_ttl: Duration,
    /// Share of requests answered 429 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    /// Share of requests answered 500 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of requests with a Marker answered "expired" (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    expired_marker_rate: f64,
    /// Added to every answer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    latency: Duration,
    /// A request-rate quota in requests per second; above it, 429.
    #[arg(long)]
    rate_limit: Option<f64>,
}

impl SimArgs {
    /// The spec and faults, with the command's defaults for what was not given.
    fn resolve(
        &self,
        executions: usize,
        spread: Duration,
        arrivals_per_minute: f64,
        speed: f64,
    ) -> Result<
        (
            durable_exporter::sim::SimSpec,
            durable_exporter::sim::server::Faults,
        ),
        String,
    > {
        for (name, v) in [
            ("--throttle-rate", self.throttle_rate),
            ("--error-rate", self.error_rate),
            ("--expired-marker-rate", self.expired_marker_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1 (got {v})"));
            }
        }
        if self.rate_limit.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            return Err("--rate-limit must be above 0".into());
        }
        let spec = durable_exporter::sim::SimSpec {
            seed: self.seed,
            executions: self.executions.unwrap_or(executions),
            spread: self.spread.unwrap_or(spread),
            arrivals_per_minute: self.arrivals_per_minute.unwrap_or(arrivals_per_minute),
            max_executions: self.max_executions,
            speed: self.speed.unwrap_or(speed),
            functions: self.functions.clone(),
            min_operations: self.min_operations,
            max_operations: self.max_operations,
            stopped_percent: self.stopped_percent,
            timed_out_percent: self.timed_out_percent,
            marker_ttl: self.marker_ttl,
            ..Default::default()
        };
        spec.validate().map_err(|e| e.to_string())?;
        let faults = durable_exporter::sim::server::Faults {
            throttle_probability: self.throttle_rate,
            server_error_probability: self.error_rate,
            latency: self.latency,
            expired_marker_probability: self.expired_marker_rate,
            rate_limit: self.rate_limit,
            retry_after_seconds: Some(1),
            ..Default::default()
        };
        Ok((spec, faults))
    }
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Where to serve the API (127.0.0.1:0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: std::net::SocketAddr,
    /// Also publish each execution's status changes to this SQS queue, as an EventBridge rule
    /// for `Durable Execution Status Change` events would (credentials and region from the
    /// standard AWS variables).
    #[arg(long)]
    status_events_queue: Option<String>,
    /// The SQS endpoint for --status-events-queue (a local SQS such as moto or ElasticMQ).
    #[arg(long, requires = "status_events_queue")]
    sqs_endpoint_url: Option<String>,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Stop after this long (default: at Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Where the daemon serves /metrics and /healthz.
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: std::net::SocketAddr,
    /// Where the daemon serves its run-time API (/v1/executions).
    #[arg(long, default_value = "127.0.0.1:9465")]
    api_listen: std::net::SocketAddr,
    /// Spans are appended here as OTLP/JSON lines when no OTLP endpoint is set.
    #[arg(long, default_value = "demo-spans.otlp.jsonl")]
    spans_file: PathBuf,
    /// Checkpoints (default: a new temporary directory, removed at the end).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// A daemon config file whose otlp, trace, metrics and aws.max_requests_per_second apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How often to print the summary line.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    summary_every: Duration,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(clap::Args)]
struct HealthcheckArgs {
    /// The daemon's address (its http.listen; 0.0.0.0 is asked as 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:9464")]
    addr: String,
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Speak TLS (the listener has a web config with tls_server_config).
    #[arg(long)]
    tls: bool,
    /// CA certificates (PEM) to verify the listener with; default: the system's.
    #[arg(long, requires = "tls")]
    ca_file: Option<PathBuf>,
    /// A client certificate (PEM), when the listener requires one.
    #[arg(long, requires_all = ["tls", "client_key"])]
    client_cert: Option<PathBuf>,
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// The name the listener's certificate carries (default: localhost).
    #[arg(long, requires = "tls")]
    server_name: Option<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The YAML config file; without it, the defaults and DURABLE_EXPORTER__* variables.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CheckConfigArgs {
    /// The YAML config file (every key documented in config/durable-exporter.yaml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// One OTLP/JSON ExportTraceServiceRequest (the Collector file exporter's form).
    OtlpJson,
    /// The operations, shaped like a GetDurableExecutionState response.
    StateJson,
    /// An indented timeline for the terminal.
    Tree,
    /// What the history contributes to the metrics, in the Prometheus text format.
    Prometheus,
}

#[derive(Clone, Copy, ValueEnum)]
enum IdSchemeArg {
    /// Ids as AWS's Python OpenTelemetry plugin derives them (BLAKE2b).
    Python,
    /// Ids as AWS's JS OpenTelemetry plugin derives them (SHA-256).
    Js,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Grpc,
    #[value(name = "http", alias = "http/protobuf")]
    Http,
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// The durable execution ARN the history belongs to.
    #[arg(long)]
    arn: String,
    #[arg(long, value_enum, default_value_t = FormatArg::OtlpJson)]
    format: FormatArg,
    /// service.name of the resource (default: the function name from the ARN).
    #[arg(long)]
    service_name: Option<String>,
    /// The execution's X-Ray trace header (`Root=1-...;Parent=...;Sampled=1`), or a W3C
    /// traceparent: its trace id wins and its parent becomes Workflow's parent.
    #[arg(long)]
    trace_header: Option<String>,
    #[arg(long, value_enum, default_value_t = IdSchemeArg::Python)]
    id_scheme: IdSchemeArg,
    /// Put inputs and results on spans, cut to --max-attribute-length bytes.
    #[arg(long)]
    include_payloads: bool,
    #[arg(long, default_value_t = DEFAULT_MAX_ATTRIBUTE_LENGTH)]
    max_attribute_length: usize,
    /// Send the spans to this OTLP endpoint instead of printing them [default with
    /// --aws-sigv4-region: X-Ray's, https://xray.REGION.amazonaws.com/v1/traces].
    #[arg(long)]
    otlp_endpoint: Option<String>,
    #[arg(long, value_enum, default_value_t = ProtocolArg::Grpc)]
    otlp_protocol: ProtocolArg,
    /// Seconds to wait for the collector.
    #[arg(long, default_value_t = 10)]
    otlp_timeout: u64,
    /// Compress the request [default: OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION, else none].
    /// TLS files for https:// endpoints come from OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE,
    /// ..._CLIENT_CERTIFICATE and ..._CLIENT_KEY.
    #[arg(long, value_enum)]
    otlp_compression: Option<CompressionArg>,
    /// Sign the export with AWS SigV4 for this region (X-Ray's OTLP endpoint; needs
    /// --otlp-protocol http). Credentials come from the AWS SDK's default chain
    /// (AWS_ACCESS_KEY_ID..., AWS_PROFILE, the instance or task role).
    #[arg(long, value_parser = aws_name)]
    aws_sigv4_region: Option<String>,
    /// The SigV4 signing name, with --aws-sigv4-region.
    #[arg(long, value_parser = aws_name, default_value = "xray", requires = "aws_sigv4_region")]
    aws_sigv4_service: String,
    /// The history: a file of one or more GetDurableExecutionHistory responses, or - for stdin.
    #[arg(default_value = "-")]
    input: String,
}

/// Logs on stderr; `RUST_LOG` overrides the default level (`info` for the daemon, `warn` for
/// the one-shot commands).
fn init_logs(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Run(args) = &cli.command {
        // Its log filter comes from its config (log.level) and follows its reloads.
        return run_daemon(args, cli.log_format);
    }
    let default_level = match cli.command {
        Command::Simulate(_) => {
            "info,aws_config=warn,aws_smithy_runtime=warn,aws_smithy_http_client=warn"
        }
        _ => "warn",
    };
    init_logs(cli.log_format, default_level);
    match cli.command {
        Command::Convert(args) => run_convert(args),
        Command::CheckConfig(args) => run_check_config(&args),
        Command::Run(_) => unreachable!("handled above"),
        Command::Healthcheck(args) => healthcheck(&args),
        Command::Demo(args) => run_demo(args),
        Command::Simulate(args) => run_simulate(&args),
        Command::Shard(args) => run_shard(&args),
    }
}

fn run_shard(args: &ShardArgs) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for arn in &args.arns {
        match ExecutionArn::parse(arn) {
            Ok(a) => println!(
                "{} {}",
                durable_exporter::shard::owner(a.as_str(), args.count),
                a.as_str()
            ),
            Err(e) => {
                eprintln!("durable-exporter shard: {arn}: {e}");
                code = ExitCode::from(2);
            }
        }
    }
    code
}

fn run_simulate(args: &SimulateArgs) -> ExitCode {
    let (spec, faults) = match args.sim.resolve(1000, Duration::from_secs(60), 0.0, 1.0) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    let Some(rt) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async {
        let started = std::time::Instant::now();
        let now = durable_exporter::clock::now_ms();
        let sim = match durable_exporter::sim::Simulation::new(spec, now) {
            Ok(s) => s,
            Err(e) => return bad_input(e),
        };
        let functions: Vec<String> = sim.functions().map(|(n, q)| format!("{n}:{q}")).collect();
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("durable-exporter: simulate: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (handle, task) =
            match durable_exporter::sim::server::serve(listener, sim, faults, stop_rx).await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("durable-exporter: simulate: {e}");
                    return ExitCode::FAILURE;
                }
            };
        let publisher = match &args.status_events_queue {
            Some(queue) => {
                let aws = durable_exporter::aws::sdk_config(None, Duration::from_secs(30), None).await;
                let client = durable_exporter::aws::sqs_client(&aws, args.sqs_endpoint_url.as_deref());
                Some(tokio::spawn(durable_exporter::sim::publish::status_events(
                    handle.clone(),
                    client,
                    queue.clone(),
                    Duration::from_millis(200),
                    stop_tx.subscribe(),
                )))
            }
            None => None,
        };
        // The signal handlers go in before the first line: a caller may send SIGTERM as soon
        // as it has read it (a first poll registers them).
        let stop = shutdown_signal();
        tokio::pin!(stop);
        let stopped = tokio::select! {
            biased;
            _ = &mut stop => true,
            _ = std::future::ready(()) => false,
        };
        let s = handle.summary();
        println!(
            "durable-exporter simulate: {} executions ({} running) of {} on {} (ready in {:.1}s)",
            s.executions,
            s.running,
            functions.join(", "),
            handle.endpoint_url(),
            started.elapsed().as_secs_f64()
        );
        println!(
            "  point the daemon at it: DURABLE_EXPORTER__AWS__ENDPOINT_URL={} with track.functions {:?}",
            handle.endpoint_url(),
            functions
        );
        println!("  stats: {}/sim/stats   pending callbacks: {}/sim/callbacks", handle.endpoint_url(), handle.endpoint_url());
        if let Some(q) = &args.status_events_queue {
            println!("  status events -> {q}");
        }
        if !stopped {
            stop.await;
        }
        let _ = stop_tx.send(true);
        let _ = task.await;
        println!("durable-exporter simulate: API requests served: {}", handle.stats().total());
        if let Some(p) = publisher {
            println!("durable-exporter simulate: status events published: {}", p.await.unwrap_or(0));
        }
        ExitCode::SUCCESS
    })
}

fn run_demo(args: DemoArgs) -> ExitCode {
    let (spec, faults) = match args.sim.resolve(40, Duration::from_secs(10), 30.0, 10.0) {
        Ok(x) => x,
        Err(e) => return bad_input(e),
    };
    let config = match durable_exporter::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return bad_input(e),
    };
    // Spans go over OTLP only when an endpoint was asked for; otherwise to the file.
    let otlp = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "DURABLE_EXPORTER__OTLP__ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
        || args.config.is_some() && config.otlp.enabled;
    let opts = durable_exporter::demo::DemoOptions {
        spec,
        faults,
        config,
        duration: args.duration,
        listen: args.listen,
        api_listen: args.api_listen,
        spans_file: args.spans_file,
        checkpoint_dir: args.checkpoint_dir,
        summary_every: args.summary_every,
        otlp,
    };
    let Some(rt) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = rt.block_on(durable_exporter::demo::run(opts, shutdown_signal(), |l| {
        println!("{l}");
    }));
    match result {
        Ok(report) => {
            if let Some((arn, tree)) = report.example {
                println!(
                    "\nOne of the finished executions, as `convert --format tree` draws it:\n{arn}\n{tree}"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let hint = match &e {
                durable_exporter::demo::DemoError::Daemon(
                    durable_exporter::daemon::DaemonError::Listen { .. },
                ) => " (pick another address with --listen)",
                _ => "",
            };
            eprintln!("durable-exporter: demo: {e}{hint}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 and a summary when the config loads; 2 and its one-line error otherwise.
fn run_check_config(args: &CheckConfigArgs) -> ExitCode {
    match durable_exporter::config::Config::load(Some(&args.config)) {
        Ok(config) => {
            println!("durable-exporter: {} is valid", args.config.display());
            print!("{}", config.summary());
            ExitCode::SUCCESS
        }
        Err(e) => bad_input(e),
    }
}

/// Logs on stderr for the daemon: `RUST_LOG` when set, else the config's `log.level`, which a
/// reload can change. Returns what changes it.
fn init_daemon_logs(format: LogFormat, level: &str) -> durable_exporter::daemon::reload::LogSetter {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    std::sync::Arc::new(move |level: &str| {
        let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

fn run_daemon(args: &RunArgs, log_format: LogFormat) -> ExitCode {
    let config = match durable_exporter::config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return bad_input(e),
    };
    let log = init_daemon_logs(log_format, &config.log.filter());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(config.runtime.worker_threads);
    let Some(rt) = runtime(builder) else {
        return ExitCode::FAILURE;
    };
    let embedding = durable_exporter::daemon::Embedding {
        reload_on_sighup: true,
        config_path: args.config.clone(),
        log: Some(log),
        ..Default::default()
    };
    match rt.block_on(durable_exporter::daemon::run(
        config,
        embedding,
        shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cannot run");
            eprintln!("durable-exporter: {e}");
            if e.is_bad_input() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn healthcheck(args: &HealthcheckArgs) -> ExitCode {
    use std::net::{SocketAddr, ToSocketAddrs as _};
    let addr = args.addr.replace("0.0.0.0", "127.0.0.1");
    let target: Option<SocketAddr> = addr.to_socket_addrs().ok().and_then(|mut a| a.next());
    let Some(target) = target else {
        eprintln!("durable-exporter: healthcheck: cannot resolve {addr}");
        return ExitCode::FAILURE;
    };
    let tls = args.tls.then(|| durable_exporter::listener::ProbeTls {
        ca_file: args.ca_file.clone(),
        client: args.client_cert.clone().zip(args.client_key.clone()),
        server_name: Some(
            args.server_name
                .clone()
                .unwrap_or_else(|| "localhost".into()),
        ),
    });
    match durable_exporter::listener::probe(
        target,
        &addr,
        &args.path,
        tls.as_ref(),
        Duration::from_secs(2),
    ) {
        Ok(status) if status.split(' ').nth(1) == Some("200") => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("durable-exporter: healthcheck: {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("durable-exporter: healthcheck: {target}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (ECS, Kubernetes, docker stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// The async runtime, or a one-line error when the system refuses one.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("durable-exporter: cannot start the async runtime: {e}"))
        .ok()
}

/// Prints a one-line error and returns exit code 2.
/// An AWS region or signing name, for clap.
fn aws_name(s: &str) -> Result<String, String> {
    durable_exporter::sigv4::check_name(s)?;
    Ok(s.to_owned())
}

fn bad_input(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("durable-exporter: {msg}");
    ExitCode::from(2)
}

fn run_convert(args: ConvertArgs) -> ExitCode {
    let arn = match ExecutionArn::parse(&args.arn) {
        Ok(a) => a,
        Err(e) => return bad_input(format!("--arn: {e}")),
    };
    let trace_header = match args.trace_header.as_deref().map(TraceHeader::parse) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => return bad_input(format!("--trace-header: {e}")),
    };
    let (name, bytes) = if args.input == "-" {
        let mut buf = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
            return bad_input(format!("<stdin>: {e}"));
        }
        ("<stdin>".to_owned(), buf)
    } else {
        let path = PathBuf::from(&args.input);
        match std::fs::read(&path) {
            Ok(b) => (args.input.clone(), b),
            Err(e) => return bad_input(format!("{}: {e}", args.input)),
        }
    };
    let parsed = match parse_history(&bytes) {
        Ok(p) => p,
        Err(e) => return bad_input(format!("{name}:{}:{}: {}", e.line, e.column, e.message)),
    };
    if parsed.duplicates > 0 {
        tracing::info!(
            input = %name,
            duplicates = parsed.duplicates,
            "collapsed events repeated across pages"
        );
    }
    let options_scheme = match args.id_scheme {
        IdSchemeArg::Python => IdScheme::Python,
        IdSchemeArg::Js => IdScheme::Js,
    };
    let options = TraceOptions {
        id_scheme: options_scheme,
        trace_header,
        include_payloads: args.include_payloads,
        max_attribute_length: args.max_attribute_length,
    };
    let conversion = convert(&parsed, &arn, args.service_name.as_deref(), options);
    for a in &conversion.anomalies {
        tracing::warn!(
            input = %name,
            event_id = a.event_id,
            kind = a.kind.as_str(),
            "{}",
            a.message
        );
    }

    let sigv4 = args
        .aws_sigv4_region
        .as_ref()
        .map(|region| durable_exporter::sigv4::SigV4Target {
            service: args.aws_sigv4_service.clone(),
            region: region.clone(),
        });
    let endpoint = args.otlp_endpoint.clone().or_else(|| {
        sigv4
            .as_ref()
            .map(|s| durable_exporter::config::xray_traces_url(&s.region))
    });
    if let Some(endpoint) = endpoint {
        let env = |name: &str| std::env::var(name).ok();
        let compression = match args.otlp_compression {
            Some(CompressionArg::None) => Compression::None,
            Some(CompressionArg::Gzip) => Compression::Gzip,
            None => match Compression::from_env(env) {
                Ok(c) => c.unwrap_or_default(),
                Err(e) => return bad_input(e),
            },
        };
        let target = OtlpTarget {
            endpoint,
            protocol: match args.otlp_protocol {
                ProtocolArg::Grpc => Protocol::Grpc,
                ProtocolArg::Http => Protocol::HttpProtobuf,
            },
            timeout: Duration::from_secs(args.otlp_timeout),
            headers: Default::default(),
            compression,
            tls: OtlpTls::from_env(env),
        };
        if sigv4.is_some() && target.protocol != Protocol::HttpProtobuf {
            return bad_input(
                "--aws-sigv4-region signs OTLP/HTTP requests: add --otlp-protocol http (X-Ray takes OTLP/HTTP protobuf)",
            );
        }
        return send(&target, sigv4, &conversion);
    }

    let out = match args.format {
        FormatArg::OtlpJson => conversion.render(Format::OtlpJson),
        FormatArg::StateJson => conversion.render(Format::StateJson),
        FormatArg::Tree => conversion.render(Format::Tree),
        FormatArg::Prometheus => durable_exporter::convert::prometheus(
            &parsed.events,
            &arn,
            &TraceOptions {
                id_scheme: options_scheme,
                trace_header,
                ..TraceOptions::default()
            },
        ),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("durable-exporter: writing the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 0 when the collector took every span; 1 when it refused or rejected any (or did not
/// answer); 2 when the target cannot be used (a bad endpoint or TLS file).
fn send(
    target: &OtlpTarget,
    sigv4: Option<durable_exporter::sigv4::SigV4Target>,
    conversion: &durable_exporter::convert::Conversion,
) -> ExitCode {
    let Some(rt) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = rt.block_on(async {
        let mut client = match OtlpClient::new(target) {
            Ok(c) => c,
            Err(e) => return Err(bad_input(e)),
        };
        if let Some(sigv4) = sigv4 {
            // The credentials the daemon's Lambda client would use: the SDK's default chain.
            let sdk =
                durable_exporter::aws::sdk_config(Some(&sigv4.region), target.timeout, None).await;
            let Some(provider) = sdk.credentials_provider() else {
                return Err(bad_input("the AWS SDK has no credentials provider"));
            };
            let signer = durable_exporter::sigv4::Signer::new(sigv4, provider);
            client = match client.with_sigv4(signer) {
                Ok(c) => c,
                Err(e) => return Err(bad_input(e)),
            };
        }
        match client.export(&conversion.resource, &conversion.spans).await {
            Ok(outcome) => Ok((client.endpoint().to_owned(), outcome)),
            Err(e) => {
                eprintln!("durable-exporter: {e}");
                Err(ExitCode::FAILURE)
            }
        }
    });
    let (endpoint, outcome) = match result {
        Ok(x) => x,
        Err(code) => return code,
    };
    let sent = conversion.spans.len();
    let message = outcome.message.as_deref();
    if outcome.rejected > 0 {
        eprintln!(
            "durable-exporter: the collector at {endpoint} rejected {} of {sent} spans: {}",
            outcome.rejected,
            message.unwrap_or("(no message)")
        );
        return ExitCode::FAILURE;
    }
    if let Some(m) = message {
        eprintln!(
            "durable-exporter: the collector at {endpoint} accepted every span with a warning: {m}"
        );
    }
    eprintln!("durable-exporter: sent {sent} spans to {endpoint}");
    ExitCode::SUCCESS
}
