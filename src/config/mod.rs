//! The daemon's configuration: one typed [`Config`], derived with serde, read from a YAML file,
//! overridden by environment variables, and validated when loaded. Every error names the file
//! (or the environment variable), the key, and what to do.
//!
//! Precedence, highest first:
//! 1. `DURABLE_EXPORTER__SECTION__KEY` environment variables, e.g.
//!    `DURABLE_EXPORTER__POLL__INTERVAL=10s`; lists are comma-separated
//!    (`DURABLE_EXPORTER__TRACK__EXECUTIONS=arn1,arn2`), headers are `name=value` pairs
//!    (`DURABLE_EXPORTER__OTLP__HEADERS=x-api-key=secret`) or one variable per header
//!    (`DURABLE_EXPORTER__OTLP__HEADERS__AUTHORIZATION=...`), nested keys take one more `__`
//!    (`DURABLE_EXPORTER__OTLP__TLS__CA_FILE`);
//! 2. the config file;
//! 3. the standard OpenTelemetry variables, for the keys they describe: `otlp.endpoint`
//!    (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as-is, then `OTEL_EXPORTER_OTLP_ENDPOINT` as a base
//!    URL), `otlp.protocol`, `otlp.headers` (merged per header name, the file winning),
//!    `otlp.timeout` (milliseconds), `otlp.compression`, `otlp.tls.*` (the certificate
//!    variables), `otlp.enabled` (`OTEL_SDK_DISABLED=true`) and `trace.service_name`
//!    (`OTEL_SERVICE_NAME`);
//! 4. the defaults ([`Config::default`]; `config/durable-exporter.yaml` spells them out).
//!
//! Adding a key: a field in its section's struct with its `deserialize_with` (the value's kind
//! and bounds), its default, a line in `config/durable-exporter.yaml` and a row in
//! docs/CONFIG.md (tests hold both to the struct), and a check in [`Config::validate`] when it
//! depends on another key.
//!
//! The AWS region is left unset unless configured: the AWS SDK's own chain (`AWS_REGION`, the
//! profile, ...) applies later.

mod de;
mod load;
mod tree;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::ConfigError;
pub(crate) use load::load_yaml_file;

use crate::arn::{ExecutionArn, FunctionParts};
use crate::otlp::{Compression, OtlpTls, Protocol};
use crate::trace::DEFAULT_MAX_ATTRIBUTE_LENGTH;
use crate::trace::ids::IdScheme;

/// Environment variables starting with this (any case) override config keys:
/// `DURABLE_EXPORTER__POLL__INTERVAL` sets `poll.interval`.
pub const ENV_PREFIX: &str = "DURABLE_EXPORTER__";
/// A config file larger than this is refused before it is parsed.
pub const MAX_CONFIG_FILE_BYTES: usize = 1 << 20;

pub const DEFAULT_MAX_REQUESTS_PER_SECOND: f64 = 5.0;
/// `aws.max_requests_per_second` bounds: one call every 100 s at the least.
pub const MIN_REQUESTS_PER_SECOND: f64 = 0.01;
pub const MAX_REQUESTS_PER_SECOND: f64 = 10_000.0;
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);
/// `track.discovery_interval` when `track.status_events` is on and the interval is not given:
/// listing then only reconciles events that were missed.
pub const STATUS_EVENTS_DISCOVERY_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// `track.discovery_interval` may not be shorter: listing executions is a paged API call.
pub const MIN_DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(60 * 60);
pub const DEFAULT_MAX_EXECUTIONS: usize = 50_000;
/// `metrics.operation_names_top_n` when unset.
pub const DEFAULT_OPERATION_NAMES_TOP_N: usize = 20;

/// The execution statuses `track.functions[].statuses` may name.
pub const EXECUTION_STATUSES: &[&str] = &["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];
pub const DEFAULT_STATUSES: &[&str] = &["RUNNING"];
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The API's largest page of history events.
pub const MAX_PAGE_SIZE: u32 = 1000;
pub const DEFAULT_OTLP_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_BUFFERED_SPANS: usize = 100_000;
pub const DEFAULT_MAX_BATCH_SIZE: usize = 512;
pub const DEFAULT_CHECKPOINT_DIR: &str = "/var/lib/durable-exporter";
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9464));
pub const DEFAULT_API_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9465));
pub const DEFAULT_READY_WINDOW: Duration = Duration::from_secs(30);

// Sanity bounds in milliseconds (for `deserialize_with`).
const MS_SECOND: u64 = 1000;
const MS_HOUR: u64 = 3600 * MS_SECOND;
const MS_DAY: u64 = 24 * MS_HOUR;

/// The whole configuration of the daemon.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub aws: AwsConfig,
    pub track: TrackConfig,
    pub poll: PollConfig,
    pub otlp: OtlpConfig,
    pub trace: TraceConfig,
    pub checkpoint: CheckpointConfig,
    pub http: HttpConfig,
    pub api: ApiConfig,
    pub ui: UiConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub shard: ShardConfig,
    pub runtime: RuntimeConfig,
}

/// The daemon's async runtime (`run` only; read at start).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Threads that run the daemon's tasks (file writes run on threads of their own). One
    /// spends the least CPU per API call: with two, a third of the daemon's CPU went to waking
    /// and parking them (docs/BENCHMARKS.md).
    #[serde(deserialize_with = "de::int::<_, _, 1, 256>")]
    pub worker_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            worker_threads: DEFAULT_WORKER_THREADS,
        }
    }
}

pub const DEFAULT_WORKER_THREADS: usize = 1;

/// What the daemon logs (the format is `--log-format`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: a level (`info`), or directives (`info,durable_exporter=debug`).
    /// `RUST_LOG`, when set, wins. Reloaded on SIGHUP.
    #[serde(deserialize_with = "log_filter")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: DEFAULT_LOG_LEVEL.to_owned(),
        }
    }
}

pub const DEFAULT_LOG_LEVEL: &str = "info";

/// The AWS SDK's crates log every retry at info: quieter unless the filter names them.
const QUIET: &str = "aws_config=warn,aws_smithy_runtime=warn,aws_smithy_http_client=warn";

impl LogConfig {
    /// The filter the daemon applies.
    pub fn filter(&self) -> String {
        if self.level.contains("aws_") {
            self.level.clone()
        } else {
            format!("{},{QUIET}", self.level)
        }
    }
}

fn log_filter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let level = de::token(d)?;
    tracing_subscriber::EnvFilter::builder()
        .parse(&level)
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "{} is not a log filter ({e}); write a level (error, warn, info, debug, trace) or directives such as \"info,durable_exporter=debug\"",
                tree::quote(&level)
            ))
        })?;
    Ok(level)
}

/// How the Lambda API is called.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsConfig {
    /// None: the AWS SDK's region chain (`AWS_REGION`, profile, instance metadata).
    #[serde(deserialize_with = "de::opt_token")]
    pub region: Option<String>,
    /// A different Lambda API endpoint (LocalStack, the local emulator).
    #[serde(deserialize_with = "de::opt_url")]
    pub endpoint_url: Option<String>,
    /// Lambda API calls per second, all executions together.
    #[serde(deserialize_with = "de::rate")]
    pub max_requests_per_second: f64,
    /// Lambda API calls in flight at once.
    #[serde(deserialize_with = "de::int::<_, _, 1, 1024>")]
    pub max_concurrency: usize,
}

/// Which executions are followed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackConfig {
    /// Executions followed by ARN.
    #[serde(deserialize_with = "de::arns", serialize_with = "de::ser_arns")]
    pub executions: Vec<ExecutionArn>,
    /// Functions whose executions are discovered and followed.
    #[serde(deserialize_with = "de::list")]
    pub functions: Vec<FunctionTrack>,
    /// How often each function's executions are listed.
    #[serde(
        deserialize_with = "de::duration::<_, MS_SECOND, MS_DAY>",
        serialize_with = "de::ser_duration"
    )]
    pub discovery_interval: Duration,
    /// Also follow the child executions that chained invokes start.
    #[serde(deserialize_with = "de::boolean")]
    pub follow_chained_invokes: bool,
    /// No more executions than this are tracked at once: a run-time registration beyond it is
    /// refused (429) and discovery skips (and counts) the rest.
    #[serde(deserialize_with = "de::int::<_, _, 1, 10_000_000>")]
    pub max_executions: usize,
    /// Lambda's status-change events, from the SQS queue an EventBridge rule fills.
    pub status_events: StatusEventsConfig,
}

/// `track.status_events`: executions heard of from `Durable Execution Status Change` events
/// (EventBridge → SQS), tracked account-wide and read at once when they end.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusEventsConfig {
    /// The queue's URL; unset: off.
    #[serde(deserialize_with = "de::opt_url")]
    pub queue_url: Option<String>,
    /// Function names to follow (`*` matches any run of characters); empty: every function.
    #[serde(deserialize_with = "de::tokens")]
    pub functions: Vec<String>,
    /// Qualifiers (in the execution ARN) to follow; empty: any.
    #[serde(deserialize_with = "de::tokens")]
    pub qualifiers: Vec<String>,
    /// Another SQS endpoint than AWS's (a local SQS, a VPC endpoint).
    #[serde(deserialize_with = "de::opt_url")]
    pub endpoint_url: Option<String>,
}

impl StatusEventsConfig {
    /// Whether an execution of `function` under `qualifier` is followed.
    pub fn wants(&self, function: &str, qualifier: Option<&str>) -> bool {
        (self.functions.is_empty() || self.functions.iter().any(|p| glob(p, function)))
            && (self.qualifiers.is_empty()
                || qualifier.is_some_and(|q| self.qualifiers.iter().any(|w| w == q)))
    }
}

/// `pattern` matches all of `text`, `*` standing for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One function whose executions are discovered: a name, or a map with these keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionTrack {
    /// A function name or ARN (non-empty).
    pub name: String,
    /// A version or alias.
    pub qualifier: Option<String>,
    /// Execution statuses to list: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED.
    pub statuses: Vec<String>,
    /// Every listing asks only for executions started within this window.
    #[serde(serialize_with = "de::ser_duration")]
    pub lookback: Duration,
}

/// How each execution's history is read.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollConfig {
    /// Shortest time between two reads of one execution.
    #[serde(
        deserialize_with = "de::duration::<_, 100, MS_HOUR>",
        serialize_with = "de::ser_duration"
    )]
    pub interval: Duration,
    /// Longest time between two reads of an idle execution (>= interval).
    #[serde(
        deserialize_with = "de::duration::<_, 100, MS_DAY>",
        serialize_with = "de::ser_duration"
    )]
    pub max_interval: Duration,
    /// History events per API page.
    #[serde(deserialize_with = "de::int_between::<_, _, 1, 1000>")]
    pub page_size: u32,
    /// Ask the API for inputs and results (needed for payloads on spans).
    #[serde(deserialize_with = "de::boolean")]
    pub include_execution_data: bool,
    /// Wait-aware scheduling and idle back-off (true); false reads every execution every
    /// `interval` (for comparison: it costs many more API calls).
    #[serde(deserialize_with = "de::boolean")]
    pub adaptive: bool,
    /// Executions suspended on something with no known time (a callback, a chained invoke):
    /// `fresh` reads them whenever the request budget has room (at most every `interval`
    /// each, most overdue first); `economy` backs off towards `max_interval` while nothing
    /// happens, for fewer calls.
    pub mode: crate::daemon::schedule::Mode,
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    #[serde(deserialize_with = "de::boolean")]
    pub enabled: bool,
    /// gRPC: the collector URL. HTTP: a base URL (`/v1/traces` appended) or the full URL.
    #[serde(deserialize_with = "de::url")]
    pub endpoint: String,
    #[serde(deserialize_with = "protocol", serialize_with = "ser_protocol")]
    pub protocol: Protocol,
    /// Header names in lowercase.
    #[serde(deserialize_with = "de::headers")]
    pub headers: BTreeMap<String, String>,
    #[serde(
        deserialize_with = "de::duration::<_, 1, { 10 * 60 * MS_SECOND }>",
        serialize_with = "de::ser_duration"
    )]
    pub timeout: Duration,
    /// gzip or none.
    #[serde(deserialize_with = "compression", serialize_with = "ser_compression")]
    pub compression: Compression,
    /// A CA and a client certificate for `https://` endpoints.
    pub tls: OtlpTls,
    /// Spans waiting for the collector; when reached, polling pauses (nothing is dropped).
    #[serde(deserialize_with = "de::int::<_, _, 1, 10_000_000>")]
    pub max_buffered_spans: usize,
    /// Spans per export request.
    #[serde(deserialize_with = "de::int::<_, _, 1, 100_000>")]
    pub max_batch_size: usize,
    /// Sign every export request with AWS SigV4 (X-Ray's OTLP endpoint). None: no signing.
    pub aws_sigv4: Option<AwsSigV4Config>,
}

/// `otlp.aws_sigv4`: how export requests are signed. The credentials are the AWS SDK's
/// default chain, the same the Lambda API calls use.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSigV4Config {
    /// The signing name: `xray` for X-Ray's OTLP endpoint.
    #[serde(deserialize_with = "de::aws_name")]
    pub service: String,
    /// The signing region. None in the file: `aws.region`, else `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, filled in when the config is loaded (a loaded config has one).
    #[serde(deserialize_with = "de::opt_aws_name")]
    pub region: Option<String>,
}

/// `otlp.aws_sigv4.service` when unset.
pub const DEFAULT_SIGV4_SERVICE: &str = "xray";

impl Default for AwsSigV4Config {
    fn default() -> Self {
        AwsSigV4Config {
            service: DEFAULT_SIGV4_SERVICE.to_owned(),
            region: None,
        }
    }
}

/// X-Ray's OTLP traces URL in `region`: where signed spans go when `otlp.endpoint` is not set.
pub fn xray_traces_url(region: &str) -> String {
    format!("https://xray.{region}.amazonaws.com/v1/traces")
}

/// How spans are drawn.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    #[serde(deserialize_with = "id_scheme", serialize_with = "ser_id_scheme")]
    pub id_scheme: IdScheme,
    /// service.name; None: the function name from the ARN.
    #[serde(deserialize_with = "de::opt_string")]
    pub service_name: Option<String>,
    #[serde(deserialize_with = "de::boolean")]
    pub include_payloads: bool,
    /// Payload attributes are cut to this many bytes.
    #[serde(deserialize_with = "de::int::<_, _, 1, 1_048_576>")]
    pub max_attribute_length: usize,
}

/// What to do with a checkpoint file that a newer version of the exporter wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNewerVersion {
    /// Refuse to start (exit 2), naming the file and its version: a rollback must not re-export
    /// everything.
    #[default]
    Refuse,
    /// Move the file aside and read that execution again from the start.
    Reread,
}

/// Where read positions are kept.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    #[serde(deserialize_with = "de::path")]
    pub dir: PathBuf,
    /// How long a finished execution's cursor is kept.
    #[serde(
        deserialize_with = "de::duration::<_, 1, { 3650 * MS_DAY }>",
        serialize_with = "de::ser_duration"
    )]
    pub retention: Duration,
    pub on_newer_version: OnNewerVersion,
}

/// The metrics and health listener: open to the network, read-only.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(deserialize_with = "de::socket_addr")]
    pub listen: SocketAddr,
    /// TLS and basic auth, in the Prometheus exporter-toolkit web-config format.
    #[serde(deserialize_with = "de::opt_path")]
    pub web_config_file: Option<PathBuf>,
    /// /readyz turns 503 once the API or the collector has failed for longer than this.
    #[serde(
        deserialize_with = "de::duration::<_, MS_SECOND, MS_DAY>",
        serialize_with = "de::ser_duration"
    )]
    pub ready_window: Duration,
}

/// The run-time API (`/v1/...`, the execution browser): it can add and remove tracked
/// executions and read their operations, so it stays on loopback or behind a token.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(deserialize_with = "de::socket_addr")]
    pub listen: SocketAddr,
    /// A file holding the bearer token every request must carry; required when `listen` is not
    /// a loopback address.
    #[serde(deserialize_with = "de::opt_path")]
    pub token_file: Option<PathBuf>,
    /// TLS and basic auth, in the Prometheus exporter-toolkit web-config format.
    #[serde(deserialize_with = "de::opt_path")]
    pub web_config_file: Option<PathBuf>,
}

/// The execution browser, served at `/` on `api.listen` (its access rules apply).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Serve the page and its JSON endpoints.
    #[serde(deserialize_with = "de::boolean")]
    pub enabled: bool,
    /// A link from an execution to its trace elsewhere (Jaeger, Tempo, X-Ray): `{trace_id}`
    /// becomes the trace id in hex.
    #[serde(deserialize_with = "trace_url_template")]
    pub trace_url_template: Option<String>,
    /// A link to a dashboard (Grafana); `{function}`, when there, becomes the function name.
    #[serde(deserialize_with = "dashboard_url")]
    pub dashboard_url: Option<String>,
    /// How many executions' histories the browser keeps in memory once it has read them (a
    /// finished one is never read twice while it is kept).
    #[serde(deserialize_with = "de::int_between::<_, _, 1, 10000>")]
    pub cache_executions: usize,
}

/// Splitting the executions between replicas by a hash of their ARN (docs/SCALING.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShardConfig {
    /// This replica's index, 0 to `count - 1` (not read with `from_pod_name`).
    #[serde(deserialize_with = "de::int::<_, _, 0, 1023>")]
    pub index: u32,
    /// How many replicas share the work.
    #[serde(deserialize_with = "de::int_between::<_, _, 1, 1024>")]
    pub count: u32,
    /// The index is the ordinal that ends the pod's name (a StatefulSet's `NAME-N`), read from
    /// the environment variable `POD_NAME`, else `HOSTNAME`.
    #[serde(deserialize_with = "de::boolean")]
    pub from_pod_name: bool,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            index: 0,
            count: 1,
            from_pod_name: false,
        }
    }
}

impl ShardConfig {
    /// This replica's shard (the loader has put the pod's ordinal in `index` when
    /// `from_pod_name` is on, and validated both).
    pub fn shard(&self) -> crate::shard::Shard {
        crate::shard::Shard::new(self.index, self.count).unwrap_or_default()
    }
}

/// Whether operation names become a `name` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NameLabelPolicy {
    #[default]
    Off,
    Allowlist,
    TopN,
}

/// Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// off (default: names can be unbounded), allowlist or top_n.
    #[serde(deserialize_with = "name_label_policy")]
    pub operation_name_label: NameLabelPolicy,
    /// The names an allowlist keeps; others are `other`.
    #[serde(deserialize_with = "de::tokens")]
    pub operation_names: Vec<String>,
    /// How many distinct names top_n keeps.
    #[serde(deserialize_with = "de::int::<_, _, 1, 10_000>")]
    pub operation_names_top_n: usize,
}

impl MetricsConfig {
    /// The policy as the metrics apply it.
    pub fn name_label(&self) -> crate::metrics::NameLabel {
        use crate::metrics::NameLabel;
        match self.operation_name_label {
            NameLabelPolicy::Off => NameLabel::Off,
            NameLabelPolicy::Allowlist => NameLabel::Allowlist(self.operation_names.clone()),
            NameLabelPolicy::TopN => NameLabel::TopN(self.operation_names_top_n),
        }
    }
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: None,
            endpoint_url: None,
            max_requests_per_second: DEFAULT_MAX_REQUESTS_PER_SECOND,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            executions: Vec::new(),
            functions: Vec::new(),
            discovery_interval: DEFAULT_DISCOVERY_INTERVAL,
            follow_chained_invokes: false,
            max_executions: DEFAULT_MAX_EXECUTIONS,
            status_events: StatusEventsConfig::default(),
        }
    }
}

impl FunctionTrack {
    /// A function tracked with the default qualifier, statuses and lookback.
    pub fn new(name: impl Into<String>) -> Self {
        FunctionTrack {
            name: name.into(),
            qualifier: None,
            statuses: default_statuses(),
            lookback: default_lookback(),
        }
    }
}

fn default_statuses() -> Vec<String> {
    DEFAULT_STATUSES.iter().map(|s| (*s).to_owned()).collect()
}

fn default_lookback() -> Duration {
    DEFAULT_LOOKBACK
}

/// A name (`orders`), or a map with `name` and any of the other keys.
impl<'de> Deserialize<'de> for FunctionTrack {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            #[serde(deserialize_with = "de::function_name")]
            name: String,
            #[serde(default, deserialize_with = "de::opt_token")]
            qualifier: Option<String>,
            #[serde(default = "default_statuses", deserialize_with = "de::statuses")]
            statuses: Vec<String>,
            #[serde(
                default = "default_lookback",
                deserialize_with = "de::duration::<_, 0, { 365 * MS_DAY }>"
            )]
            lookback: Duration,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FunctionTrack;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a function name or a map with the keys name, qualifier, statuses, lookback",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FunctionTrack, E> {
                de::check_function_name(v)
                    .map(FunctionTrack::new)
                    .map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<FunctionTrack, A::Error> {
                let e = Entry::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let mut statuses = e.statuses;
                // A status listed twice is listed once.
                let mut seen = std::collections::BTreeSet::new();
                statuses.retain(|s| seen.insert(s.clone()));
                Ok(FunctionTrack {
                    name: e.name,
                    qualifier: e.qualifier,
                    statuses,
                    lookback: e.lookback,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: DEFAULT_POLL_INTERVAL,
            max_interval: DEFAULT_MAX_POLL_INTERVAL,
            page_size: MAX_PAGE_SIZE,
            include_execution_data: false,
            adaptive: true,
            mode: crate::daemon::schedule::Mode::Fresh,
        }
    }
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            enabled: true,
            endpoint: Protocol::default().default_endpoint().to_owned(),
            protocol: Protocol::default(),
            headers: BTreeMap::new(),
            timeout: DEFAULT_OTLP_TIMEOUT,
            compression: Compression::None,
            tls: OtlpTls::default(),
            max_buffered_spans: DEFAULT_MAX_BUFFERED_SPANS,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            aws_sigv4: None,
        }
    }
}

impl OtlpConfig {
    /// What the OTLP client needs.
    pub fn target(&self) -> crate::otlp::OtlpTarget {
        crate::otlp::OtlpTarget {
            endpoint: self.endpoint.clone(),
            protocol: self.protocol,
            timeout: self.timeout,
            headers: self.headers.clone().into_iter().collect(),
            compression: self.compression,
            tls: self.tls.clone(),
        }
    }

    /// What the signer needs: the service and the region, when requests are signed (a loaded
    /// config always has the region).
    pub fn sigv4(&self) -> Option<crate::sigv4::SigV4Target> {
        let s = self.aws_sigv4.as_ref()?;
        Some(crate::sigv4::SigV4Target {
            service: s.service.clone(),
            region: s.region.clone()?,
        })
    }
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            id_scheme: IdScheme::default(),
            service_name: None,
            include_payloads: false,
            max_attribute_length: DEFAULT_MAX_ATTRIBUTE_LENGTH,
        }
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            dir: PathBuf::from(DEFAULT_CHECKPOINT_DIR),
            retention: DEFAULT_RETENTION,
            on_newer_version: OnNewerVersion::Refuse,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: DEFAULT_LISTEN,
            web_config_file: None,
            ready_window: DEFAULT_READY_WINDOW,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: DEFAULT_API_LISTEN,
            token_file: None,
            web_config_file: None,
        }
    }
}

fn trace_url_template<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de::opt_url_template(d, &["trace_id"], Some("trace_id"))
}

fn dashboard_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de::opt_url_template(d, &["function"], None)
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: true,
            trace_url_template: None,
            dashboard_url: None,
            cache_executions: 64,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            operation_name_label: NameLabelPolicy::Off,
            operation_names: Vec::new(),
            operation_names_top_n: DEFAULT_OPERATION_NAMES_TOP_N,
        }
    }
}

fn protocol<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
    let p = de::string(d)?;
    Protocol::parse(&p.trim().to_ascii_lowercase()).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown protocol {}; expected grpc or http/protobuf (or http)",
            tree::quote(&p)
        ))
    })
}

fn ser_protocol<S: serde::Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(protocol_name(*p))
}

fn compression<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
    let c = de::string(d)?;
    Compression::parse(&c).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown compression {}; expected none or gzip",
            tree::quote(&c)
        ))
    })
}

fn ser_compression<S: serde::Serializer>(c: &Compression, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.as_str())
}

fn id_scheme<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IdScheme, D::Error> {
    let scheme = de::string(d)?;
    match scheme.trim().to_ascii_lowercase().as_str() {
        "python" => Ok(IdScheme::Python),
        "js" => Ok(IdScheme::Js),
        _ => Err(serde::de::Error::custom(format!(
            "unknown id scheme {}; expected python (ids as AWS's Python plugin derives them) or js",
            tree::quote(&scheme)
        ))),
    }
}

fn ser_id_scheme<S: serde::Serializer>(i: &IdScheme, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(i.as_str())
}

fn name_label_policy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NameLabelPolicy, D::Error> {
    let p = de::token(d)?;
    match p.as_str() {
        "off" => Ok(NameLabelPolicy::Off),
        "allowlist" => Ok(NameLabelPolicy::Allowlist),
        "top_n" => Ok(NameLabelPolicy::TopN),
        other => Err(serde::de::Error::custom(format!(
            "{} is not off, allowlist or top_n",
            tree::quote(other)
        ))),
    }
}

/// `grpc` or `http/protobuf`, as the config file and `OTEL_EXPORTER_OTLP_PROTOCOL` write it.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
    }
}

/// A check of one key against others, before the loader says where each came from.
#[derive(Debug)]
struct Problem {
    key: String,
    /// Other keys the check read (their sources are named too).
    others: Vec<String>,
    message: String,
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        others: Vec::new(),
        message: message.into(),
    }
}

impl Config {
    /// Every key, as `section.key` (`otlp.tls.ca_file`, `track.functions[].name`), from the
    /// struct itself: the list docs/CONFIG.md and the shipped config are held to.
    pub fn keys() -> Vec<String> {
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) if !m.is_empty() => {
                    for (k, v) in m {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let mut tree = serde_json::to_value(Config::default()).expect("the config serializes");
        // A list's entries have keys of their own.
        tree["track"]["functions"] = serde_json::json!([]);
        // An optional section (unset by default) has keys of its own too.
        tree["otlp"]["aws_sigv4"] =
            serde_json::to_value(AwsSigV4Config::default()).expect("serializes");
        let mut out = Vec::new();
        walk("", &tree, &mut out);
        let function = serde_json::to_value(FunctionTrack::new("f")).expect("serializes");
        walk("track.functions[]", &function, &mut out);
        out
    }

    /// The sections, in the struct's order.
    pub fn sections() -> Vec<String> {
        tree::struct_fields::<Config>()
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// What no single key's reader can check: keys against each other, and files that must
    /// be there.
    fn validate(&self) -> Result<(), Problem> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, a) in self.track.executions.iter().enumerate() {
            if let Some(first) = seen.insert(a.as_str(), i) {
                return Err(problem(
                    format!("track.executions[{i}]"),
                    format!("the same ARN as track.executions[{first}]; remove one"),
                ));
            }
        }
        let mut seen: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
        for (i, f) in self.track.functions.iter().enumerate() {
            let in_arn = FunctionParts::from_execution_arn(&f.name).and_then(|p| p.qualifier);
            if let (Some(q), Some(a)) = (&f.qualifier, &in_arn)
                && q != a
            {
                return Err(problem(
                    format!("track.functions[{i}].qualifier"),
                    format!(
                        "{} differs from the qualifier {} in track.functions[{i}].name; give it in one place",
                        tree::quote(q),
                        tree::quote(a)
                    ),
                ));
            }
            if f.statuses.is_empty() {
                return Err(problem(
                    format!("track.functions[{i}].statuses"),
                    format!(
                        "lists no status, so nothing would be discovered; give one or more of {}",
                        EXECUTION_STATUSES.join(", ")
                    ),
                ));
            }
            if let Some(first) = seen.insert((f.name.as_str(), f.qualifier.as_deref()), i) {
                return Err(problem(
                    format!("track.functions[{i}]"),
                    format!(
                        "the same function and qualifier as track.functions[{first}]; merge the two"
                    ),
                ));
            }
        }
        if self.shard.index >= self.shard.count {
            return Err(Problem {
                key: if self.shard.from_pod_name {
                    "shard.from_pod_name"
                } else {
                    "shard.index"
                }
                .into(),
                others: vec!["shard.count".into()],
                message: format!(
                    "this replica's index {} is not below shard.count ({}): indexes run from 0 to {}",
                    self.shard.index,
                    self.shard.count,
                    self.shard.count - 1
                ),
            });
        }
        if self.poll.max_interval < self.poll.interval {
            return Err(Problem {
                key: "poll.max_interval".into(),
                others: vec!["poll.interval".into()],
                message: format!(
                    "must be at least poll.interval ({}); got {}",
                    humantime::format_duration(self.poll.interval),
                    humantime::format_duration(self.poll.max_interval)
                ),
            });
        }
        if self.otlp.max_batch_size > self.otlp.max_buffered_spans {
            return Err(Problem {
                key: "otlp.max_batch_size".into(),
                others: vec!["otlp.max_buffered_spans".into()],
                message: format!(
                    "must not exceed otlp.max_buffered_spans ({}); got {}",
                    self.otlp.max_buffered_spans, self.otlp.max_batch_size
                ),
            });
        }
        if let Some(sigv4) = &self.otlp.aws_sigv4 {
            if self.otlp.protocol != Protocol::HttpProtobuf {
                return Err(Problem {
                    key: "otlp.aws_sigv4".into(),
                    others: vec!["otlp.protocol".into()],
                    message: format!(
                        "SigV4 signs OTLP/HTTP requests, but otlp.protocol is {}: set otlp.protocol to http/protobuf (X-Ray takes OTLP/HTTP protobuf at {}), or remove otlp.aws_sigv4",
                        protocol_name(self.otlp.protocol),
                        xray_traces_url("REGION")
                    ),
                });
            }
            if sigv4.region.is_none() {
                return Err(problem(
                    "otlp.aws_sigv4.region",
                    "missing: requests are signed for a region; set otlp.aws_sigv4.region (e.g. us-east-1), aws.region, or the AWS_REGION environment variable",
                ));
            }
        }
        let tls = &self.otlp.tls;
        match (&tls.client_cert_file, &tls.client_key_file) {
            (Some(_), None) => {
                return Err(problem(
                    "otlp.tls.client_key_file",
                    "missing: otlp.tls.client_cert_file is set, and a client certificate needs its key",
                ));
            }
            (None, Some(_)) => {
                return Err(problem(
                    "otlp.tls.client_cert_file",
                    "missing: otlp.tls.client_key_file is set, and a key needs its client certificate",
                ));
            }
            _ => {}
        }
        if !self.api.listen.ip().is_loopback() && self.api.token_file.is_none() {
            return Err(Problem {
                key: "api.listen".into(),
                others: vec!["api.token_file".into()],
                message: format!(
                    "{} is reachable from the network, and the run-time API can add and remove tracked executions and read their operations: set api.token_file (a file holding a bearer token every request must carry), or listen on 127.0.0.1",
                    self.api.listen
                ),
            });
        }
        if let Some(path) = &self.api.token_file {
            read_token(path).map_err(|m| problem("api.token_file", m))?;
        }
        if self.http.listen == self.api.listen && self.http.listen.port() != 0 {
            return Err(Problem {
                key: "api.listen".into(),
                others: vec!["http.listen".into()],
                message: format!(
                    "is the same address as http.listen ({}); the run-time API needs a listener of its own",
                    self.http.listen
                ),
            });
        }
        for (key, file) in [
            ("http.web_config_file", &self.http.web_config_file),
            ("api.web_config_file", &self.api.web_config_file),
        ] {
            if let Some(path) = file {
                crate::listener::WebConfig::load(path).map_err(|e| problem(key, e.to_string()))?;
            }
        }
        Ok(())
    }

    /// A few lines for people: what is tracked, where spans go, where state is kept.
    pub fn summary(&self) -> String {
        let otlp = if self.otlp.enabled {
            let signed = match &self.otlp.aws_sigv4 {
                Some(s) => format!(
                    ", signed with SigV4 for {} in {}",
                    s.service,
                    s.region.as_deref().unwrap_or("?")
                ),
                None => String::new(),
            };
            format!(
                "{} ({}{signed})",
                self.otlp.endpoint,
                protocol_name(self.otlp.protocol)
            )
        } else {
            "disabled".to_owned()
        };
        let secured = |web: &Option<PathBuf>, token: bool| match (web.is_some(), token) {
            (true, true) => " (web config, bearer token)",
            (true, false) => " (web config)",
            (false, true) => " (bearer token)",
            (false, false) => "",
        };
        format!(
            "  tracked executions: {}\n  functions: {}\n  otlp: {}\n  checkpoint dir: {}\n  http listen: {}{}\n  api listen: {}{}\n",
            self.track.executions.len(),
            self.track.functions.len(),
            otlp,
            self.checkpoint.dir.display(),
            self.http.listen,
            secured(&self.http.web_config_file, false),
            self.api.listen,
            secured(&self.api.web_config_file, self.api.token_file.is_some()),
        )
    }
}

/// The bearer token in `path`: its first line, trimmed; at least 16 characters.
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.len() < 16 {
        return Err(format!(
            "{} holds no token of at least 16 characters on its first line (generate one with `openssl rand -hex 32`)",
            path.display()
        ));
    }
    if token.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the token in {} contains whitespace",
            path.display()
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests;
