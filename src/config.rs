//! The daemon's configuration: one typed [`Config`], loaded from a YAML file with the `config`
//! crate, overridden by environment variables, and validated when loaded. Every error names the
//! file (or the environment variable), the key, and what to do.
//!
//! Precedence, highest first:
//! 1. `DURABLE_EXPORTER__SECTION__KEY` environment variables, e.g.
//!    `DURABLE_EXPORTER__POLL__INTERVAL=10s`; lists are comma-separated
//!    (`DURABLE_EXPORTER__TRACK__EXECUTIONS=arn1,arn2`), headers are `name=value` pairs
//!    (`DURABLE_EXPORTER__OTLP__HEADERS=x-api-key=secret`) or one variable per header
//!    (`DURABLE_EXPORTER__OTLP__HEADERS__AUTHORIZATION=...`);
//! 2. the config file;
//! 3. the standard OpenTelemetry variables, for the keys they describe: `otlp.endpoint`
//!    (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as-is, then `OTEL_EXPORTER_OTLP_ENDPOINT` as a base
//!    URL), `otlp.protocol`, `otlp.headers` (merged per header name, the file winning),
//!    `otlp.timeout` (milliseconds), `otlp.enabled` (`OTEL_SDK_DISABLED=true`) and
//!    `trace.service_name` (`OTEL_SERVICE_NAME`);
//! 4. the defaults ([`Config::default`]; `config/durable-exporter.yaml` spells them out).
//!
//! The AWS region is left unset unless configured: the AWS SDK's own chain (`AWS_REGION`, the
//! profile, ...) applies later.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::config::{Value, ValueKind};

use crate::arn::{ExecutionArn, FunctionParts};
use crate::otlp::Protocol;
use crate::trace::DEFAULT_MAX_ATTRIBUTE_LENGTH;
use crate::trace::ids::IdScheme;

/// Environment variables starting with this (any case) override config keys:
/// `DURABLE_EXPORTER__POLL__INTERVAL` sets `poll.interval`.
pub const ENV_PREFIX: &str = "DURABLE_EXPORTER__";

pub const DEFAULT_MAX_REQUESTS_PER_SECOND: f64 = 5.0;
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);
/// `track.discovery_interval` may not be shorter: listing executions is a paged API call.
pub const MIN_DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(60 * 60);
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

/// The whole configuration of the daemon.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub aws: AwsConfig,
    pub track: TrackConfig,
    pub poll: PollConfig,
    pub otlp: OtlpConfig,
    pub trace: TraceConfig,
    pub checkpoint: CheckpointConfig,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
}

/// Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsConfig {
    /// Whether operation names become a `name` label: off (default), an allowlist, or the
    /// first N distinct names.
    pub operation_name_label: crate::metrics::NameLabel,
}

/// How the Lambda API is called.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsConfig {
    /// None: the AWS SDK's region chain (`AWS_REGION`, profile, instance metadata).
    pub region: Option<String>,
    /// A different Lambda API endpoint (LocalStack, the local emulator).
    pub endpoint_url: Option<String>,
    /// Lambda API calls per second, all executions together (> 0).
    pub max_requests_per_second: f64,
    /// Lambda API calls in flight at once (>= 1).
    pub max_concurrency: usize,
}

/// Which executions are followed.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    /// Executions followed by ARN.
    pub executions: Vec<ExecutionArn>,
    /// Functions whose executions are discovered and followed.
    pub functions: Vec<FunctionTrack>,
    /// How often each function's executions are listed.
    pub discovery_interval: Duration,
    /// Also follow the child executions that chained invokes start.
    pub follow_chained_invokes: bool,
}

/// One function whose executions are discovered.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTrack {
    /// A function name or ARN (non-empty).
    pub name: String,
    /// A version or alias.
    pub qualifier: Option<String>,
    /// Execution statuses to list: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED.
    pub statuses: Vec<String>,
    /// Every listing asks only for executions started within this window.
    pub lookback: Duration,
}

/// How each execution's history is read.
#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    /// Shortest time between two reads of one execution (>= 100ms).
    pub interval: Duration,
    /// Longest time between two reads of an idle execution (>= interval).
    pub max_interval: Duration,
    /// History events per API page (1..=1000).
    pub page_size: u32,
    /// Ask the API for inputs and results (needed for payloads on spans).
    pub include_execution_data: bool,
    /// Wait-aware scheduling and idle back-off (true); false reads every execution every
    /// `interval` (for comparison: it costs many more API calls).
    pub adaptive: bool,
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub enabled: bool,
    /// gRPC: the collector URL. HTTP: a base URL (`/v1/traces` appended) or the full URL.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Header names in lowercase.
    pub headers: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Spans waiting for the collector; when reached, polling pauses (nothing is dropped).
    pub max_buffered_spans: usize,
    /// Spans per export request.
    pub max_batch_size: usize,
}

/// How spans are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceConfig {
    pub id_scheme: IdScheme,
    /// service.name; None: the function name from the ARN.
    pub service_name: Option<String>,
    pub include_payloads: bool,
    /// Payload attributes are cut to this many bytes (>= 1).
    pub max_attribute_length: usize,
}

/// Where read positions are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointConfig {
    pub dir: PathBuf,
    /// How long a finished execution's cursor is kept.
    pub retention: Duration,
}

/// The HTTP server (metrics, health).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
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
        }
    }
}

impl FunctionTrack {
    /// A function tracked with the default qualifier, statuses and lookback.
    pub fn new(name: impl Into<String>) -> Self {
        FunctionTrack {
            name: name.into(),
            qualifier: None,
            statuses: DEFAULT_STATUSES.iter().map(|s| (*s).to_owned()).collect(),
            lookback: DEFAULT_LOOKBACK,
        }
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
            max_buffered_spans: DEFAULT_MAX_BUFFERED_SPANS,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
        }
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
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: DEFAULT_LISTEN,
        }
    }
}

/// A configuration that cannot be used. Displays as one line, `<file>: <key>: <message>`, the
/// parts that are unknown left out; when an environment variable set the value, the message
/// names it and `file` is None.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_error(.file.as_deref(), .key.as_deref(), .message))]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub key: Option<String>,
    pub message: String,
}

fn render_error(file: Option<&Path>, key: Option<&str>, message: &str) -> String {
    let mut parts = Vec::with_capacity(3);
    if let Some(f) = file {
        parts.push(f.display().to_string());
    }
    if let Some(k) = key {
        parts.push(k.to_owned());
    }
    parts.push(message.to_owned());
    parts.join(": ").replace(['\n', '\r'], " ")
}

impl Config {
    /// Loads the file (None: defaults plus environment), applies environment overrides, validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        // Variables that are not Unicode cannot be ours (ours are checked as text).
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::load_with_env(path, env)
    }

    /// Same, but reads variables from the given iterator instead of the process environment (for
    /// tests; load() calls this with the process environment).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut own = HashMap::new();
        let mut env_keys = BTreeMap::new();
        let mut otel = HashMap::new();
        for (name, value) in env {
            let is_ours = name
                .get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX));
            if is_ours {
                // The key the `config` crate derives from the name: lowercase, `__` → `.`.
                let key = name[ENV_PREFIX.len()..].to_lowercase().replace("__", ".");
                env_keys.insert(key, name.clone());
                own.insert(name, value);
            } else if name.starts_with("OTEL_") && !value.trim().is_empty() {
                // The OpenTelemetry specification reads an empty variable as unset.
                otel.insert(name, value);
            }
        }
        let loader = Loader {
            file: path,
            env_keys,
            otel,
        };

        let mut builder = ::config::Config::builder();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|e| loader.file_error(&e))?;
            builder =
                builder.add_source(::config::File::from_str(&text, ::config::FileFormat::Yaml));
        }
        let builder = builder.add_source(
            ::config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
                .separator("__")
                .source(Some(own.into_iter().collect())),
        );
        let merged = builder.build().map_err(|e| {
            let message = match e {
                ::config::ConfigError::FileParse { cause, .. } => format!(
                    "not a valid config file: {cause}; it must be YAML, a map of sections ({})",
                    TOP_KEYS.join(", ")
                ),
                other => other.to_string(),
            };
            ConfigError {
                file: path.map(Path::to_path_buf),
                key: None,
                message,
            }
        })?;
        loader.read(merged.cache)
    }

    /// A few lines for people: what is tracked, where spans go, where state is kept.
    pub fn summary(&self) -> String {
        let otlp = if self.otlp.enabled {
            format!(
                "{} ({})",
                self.otlp.endpoint,
                protocol_name(self.otlp.protocol)
            )
        } else {
            "disabled".to_owned()
        };
        format!(
            "  tracked executions: {}\n  functions: {}\n  otlp: {}\n  checkpoint dir: {}\n  http listen: {}\n",
            self.track.executions.len(),
            self.track.functions.len(),
            otlp,
            self.checkpoint.dir.display(),
            self.http.listen,
        )
    }
}

/// `grpc` or `http/protobuf`, as the config file and `OTEL_EXPORTER_OTLP_PROTOCOL` write it.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
    }
}

const TOP_KEYS: &[&str] = &[
    "aws",
    "track",
    "poll",
    "otlp",
    "trace",
    "checkpoint",
    "http",
    "metrics",
];
const METRICS_KEYS: &[&str] = &[
    "operation_name_label",
    "operation_names",
    "operation_names_top_n",
];
const AWS_KEYS: &[&str] = &[
    "region",
    "endpoint_url",
    "max_requests_per_second",
    "max_concurrency",
];
const TRACK_KEYS: &[&str] = &[
    "executions",
    "functions",
    "discovery_interval",
    "follow_chained_invokes",
];
const FUNCTION_KEYS: &[&str] = &["name", "qualifier", "statuses", "lookback"];
const POLL_KEYS: &[&str] = &[
    "interval",
    "max_interval",
    "page_size",
    "include_execution_data",
    "adaptive",
];
const OTLP_KEYS: &[&str] = &[
    "enabled",
    "endpoint",
    "protocol",
    "headers",
    "timeout",
    "max_buffered_spans",
    "max_batch_size",
];
const TRACE_KEYS: &[&str] = &[
    "id_scheme",
    "service_name",
    "include_payloads",
    "max_attribute_length",
];
const CHECKPOINT_KEYS: &[&str] = &["dir", "retention"];
const HTTP_KEYS: &[&str] = &["listen"];

const DURATION_HINT: &str = r#"write a number and a unit, e.g. "250ms", "5s", "1h 30m", "7d""#;

/// Turns the merged `config` tree into a [`Config`], knowing where each value came from.
struct Loader<'a> {
    file: Option<&'a Path>,
    /// Config key (`poll.interval`) → the `DURABLE_EXPORTER__` variable that set it.
    env_keys: BTreeMap<String, String>,
    /// Non-empty `OTEL_*` variables.
    otel: HashMap<String, String>,
}

/// A map in the tree whose keys have been checked against the known ones.
struct Section {
    path: String,
    entries: BTreeMap<String, Value>,
}

impl Section {
    /// The value under `name` and its full key; None when absent or null.
    fn take(&mut self, name: &str) -> Option<(String, Value)> {
        let v = self.entries.remove(name)?;
        if matches!(v.kind, ValueKind::Nil) {
            return None;
        }
        Some((join_key(&self.path, name), v))
    }
}

fn join_key(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn describe(kind: &ValueKind) -> String {
    match kind {
        ValueKind::Nil => "nothing (null)".to_owned(),
        ValueKind::Boolean(b) => format!("{b}"),
        ValueKind::I64(n) => format!("{n}"),
        ValueKind::I128(n) => format!("{n}"),
        ValueKind::U64(n) => format!("{n}"),
        ValueKind::U128(n) => format!("{n}"),
        ValueKind::Float(f) => format!("{f}"),
        ValueKind::String(s) => quote(s),
        ValueKind::Table(_) => "a map".to_owned(),
        ValueKind::Array(_) => "a list".to_owned(),
    }
}

/// A value quoted for a message, cut when long.
fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}... ({} characters)", s.chars().count())
    }
}

/// The known key closest to a mistyped one, if any is close.
fn closest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let unknown = unknown.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&unknown, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `k1=v1,k2=v2` with percent-encoded values, as `OTEL_EXPORTER_OTLP_HEADERS` writes headers.
/// Errors never repeat a value: headers carry secrets.
fn parse_header_list(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, pair) in s.split(',').enumerate() {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!(
                "entry {} has no `=`; write name=value pairs separated by commas",
                i + 1
            ));
        };
        let value = percent_decode(value.trim()).ok_or_else(|| {
            format!(
                "the value of {:?} is not UTF-8 once percent-decoded",
                name.trim()
            )
        })?;
        out.push((name.trim().to_owned(), value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|c| (*c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An http:// or https:// URL with a host.
fn check_url(s: &str) -> Result<(), String> {
    let ok = s.parse::<http::Uri>().ok().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not an http:// or https:// URL; write e.g. http://localhost:4317",
            quote(s)
        ))
    }
}

impl Loader<'_> {
    /// The `DURABLE_EXPORTER__` variable that set `key`, itself or a list or map holding it, or
    /// (for an unknown section) one below it.
    fn env_var_for(&self, key: &str) -> Option<&str> {
        self.env_keys
            .iter()
            .find(|(k, _)| {
                key == k.as_str()
                    || key
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
                    || k.strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|(_, var)| var.as_str())
    }

    /// An error about `key`, blamed on the variable that set it, else on the file.
    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let message = message.into();
        match self.env_var_for(key) {
            Some(var) => ConfigError {
                file: None,
                key: Some(key.to_owned()),
                message: format!("{message} (set by the environment variable {var})"),
            },
            None => ConfigError {
                file: self.file.map(Path::to_path_buf),
                key: Some(key.to_owned()),
                message,
            },
        }
    }

    /// An error about `key` whose value came from an `OTEL_*` variable.
    fn otel_err(&self, key: &str, var: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            file: None,
            key: Some(key.to_owned()),
            message: format!(
                "{message} (from the environment variable {var}; fix or unset it, or set {key} in the config file)"
            ),
        }
    }

    fn file_error(&self, e: &std::io::Error) -> ConfigError {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            "no such config file; check the path (config/durable-exporter.yaml is a documented example)"
                .to_owned()
        } else {
            format!("cannot read the config file: {e}")
        };
        ConfigError {
            file: self.file.map(Path::to_path_buf),
            key: None,
            message,
        }
    }

    /// The first of `vars` that is set (non-empty), with its name.
    fn otel_var(&self, vars: &[&'static str]) -> Option<(&'static str, &str)> {
        vars.iter()
            .find_map(|v| self.otel.get(*v).map(|val| (*v, val.trim())))
    }

    fn section(
        &self,
        path: &str,
        value: Option<Value>,
        known: &[&str],
    ) -> Result<Section, ConfigError> {
        let table = match value.map(|v| v.kind) {
            None | Some(ValueKind::Nil) => Default::default(),
            Some(ValueKind::Table(t)) => t,
            Some(other) => {
                return Err(self.err(
                    path,
                    format!(
                        "expected a section (a map with the keys {}), found {}",
                        known.join(", "),
                        describe(&other)
                    ),
                ));
            }
        };
        let entries: BTreeMap<String, Value> = table.into_iter().collect();
        if let Some(unknown) = entries.keys().find(|k| !known.contains(&k.as_str())) {
            let place = if path.is_empty() {
                "at the top level".to_owned()
            } else {
                format!("in section {path}")
            };
            let hint = closest(unknown, known)
                .map(|k| format!("did you mean {k}? "))
                .unwrap_or_default();
            return Err(self.err(
                &join_key(path, unknown),
                format!(
                    "unknown key {unknown:?} {place}; {hint}the keys are: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(Section {
            path: path.to_owned(),
            entries,
        })
    }

    fn subsection(
        &self,
        parent: &mut Section,
        name: &str,
        known: &[&str],
    ) -> Result<Section, ConfigError> {
        match parent.take(name) {
            Some((key, value)) => self.section(&key, Some(value), known),
            None => self.section(&join_key(&parent.path, name), None, known),
        }
    }

    fn string(&self, key: &str, v: Value) -> Result<String, ConfigError> {
        match v.kind {
            ValueKind::String(s) => Ok(s),
            ValueKind::Boolean(b) => Ok(b.to_string()),
            ValueKind::I64(n) => Ok(n.to_string()),
            ValueKind::I128(n) => Ok(n.to_string()),
            ValueKind::U64(n) => Ok(n.to_string()),
            ValueKind::U128(n) => Ok(n.to_string()),
            ValueKind::Float(f) => Ok(f.to_string()),
            other => Err(self.err(
                key,
                format!("expected a string, found {}", describe(&other)),
            )),
        }
    }

    /// A string that must not be empty nor hold whitespace (names, URLs).
    fn token(&self, key: &str, v: Value) -> Result<String, ConfigError> {
        let s = self.string(key, v)?;
        let s = s.trim();
        if s.is_empty() {
            return Err(self.err(key, "must not be empty"));
        }
        if s.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(self.err(key, format!("{} must not contain whitespace", quote(s))));
        }
        Ok(s.to_owned())
    }

    /// An optional token: empty means unset.
    fn optional_token(&self, key: &str, v: Value) -> Result<Option<String>, ConfigError> {
        let s = self.string(key, v.clone())?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        self.token(key, v).map(Some)
    }

    fn boolean(&self, key: &str, v: Value) -> Result<bool, ConfigError> {
        match v.kind {
            ValueKind::Boolean(b) => Ok(b),
            ValueKind::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
            ValueKind::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
            other => Err(self.err(
                key,
                format!("expected true or false, found {}", describe(&other)),
            )),
        }
    }

    /// A whole number in `min..=max`.
    fn integer(&self, key: &str, v: Value, min: u64, max: u64) -> Result<u64, ConfigError> {
        let n: Option<i128> = match &v.kind {
            ValueKind::I64(n) => Some(i128::from(*n)),
            ValueKind::I128(n) => Some(*n),
            ValueKind::U64(n) => Some(i128::from(*n)),
            ValueKind::U128(n) => i128::try_from(*n).ok().or(Some(i128::MAX)),
            ValueKind::String(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        let Some(n) = n else {
            return Err(self.err(
                key,
                format!("expected a whole number, found {}", describe(&v.kind)),
            ));
        };
        if n < i128::from(min) || n > i128::from(max) {
            let limits = if max == u64::MAX || max == usize::MAX as u64 {
                format!("must be at least {min}")
            } else {
                format!("must be between {min} and {max}")
            };
            return Err(self.err(key, format!("{limits}; got {n}")));
        }
        Ok(n as u64)
    }

    fn count(&self, key: &str, v: Value, min: usize) -> Result<usize, ConfigError> {
        self.integer(key, v, min as u64, usize::MAX as u64)
            .map(|n| n as usize)
    }

    fn positive_number(&self, key: &str, v: Value) -> Result<f64, ConfigError> {
        let f = match &v.kind {
            ValueKind::Float(f) => Some(*f),
            ValueKind::I64(n) => Some(*n as f64),
            ValueKind::I128(n) => Some(*n as f64),
            ValueKind::U64(n) => Some(*n as f64),
            ValueKind::U128(n) => Some(*n as f64),
            ValueKind::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match f {
            Some(f) if f.is_finite() && f > 0.0 => Ok(f),
            Some(f) => Err(self.err(
                key,
                format!("must be a finite number greater than 0; got {f}"),
            )),
            None => Err(self.err(
                key,
                format!("expected a number, found {}", describe(&v.kind)),
            )),
        }
    }

    fn duration(&self, key: &str, v: Value) -> Result<Duration, ConfigError> {
        match v.kind {
            ValueKind::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                self.err(
                    key,
                    format!("invalid duration {}: {e}; {DURATION_HINT}", quote(&s)),
                )
            }),
            other @ (ValueKind::I64(_)
            | ValueKind::I128(_)
            | ValueKind::U64(_)
            | ValueKind::U128(_)
            | ValueKind::Float(_)) => {
                let n = describe(&other);
                Err(self.err(
                    key,
                    format!("invalid duration {n}: a unit is needed, e.g. \"{n}s\" or \"{n}ms\""),
                ))
            }
            other => Err(self.err(
                key,
                format!("invalid duration {}: {DURATION_HINT}", describe(&other)),
            )),
        }
    }

    fn duration_at_least(
        &self,
        key: &str,
        v: Value,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, v)?;
        if d < min {
            let min = if min <= Duration::from_nanos(1) {
                "greater than 0".to_owned()
            } else {
                format!("at least {}", humantime::format_duration(min))
            };
            return Err(self.err(
                key,
                format!("must be {min}; got {}", humantime::format_duration(d)),
            ));
        }
        Ok(d)
    }

    /// A list's items with their keys (`track.executions[0]`). A variable sets a list as one
    /// comma-separated string (blank items skipped).
    fn list(&self, key: &str, v: Value) -> Result<Vec<(String, Value)>, ConfigError> {
        let items = match v.kind {
            ValueKind::Array(items) => items,
            ValueKind::String(s) if self.env_keys.contains_key(key) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::new(None, s))
                .collect(),
            other => {
                return Err(self.err(key, format!("expected a list, found {}", describe(&other))));
            }
        };
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{key}[{i}]"), v))
            .collect())
    }

    fn header(&self, key: &str, name: &str, value: &str) -> Result<(String, String), ConfigError> {
        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            self.err(
                key,
                format!("{} is not a valid HTTP header name", quote(name)),
            )
        })?;
        if http::HeaderValue::from_str(value).is_err() {
            return Err(self.err(
                key,
                format!(
                    "the value of header {name} is not a valid HTTP header value (printable ASCII only)"
                ),
            ));
        }
        Ok((name.as_str().to_owned(), value.to_owned()))
    }

    fn headers(&self, key: &str, v: Value) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        match v.kind {
            ValueKind::Table(t) => {
                let t: BTreeMap<String, Value> = t.into_iter().collect();
                for (name, value) in t {
                    let k = format!("{key}.{name}");
                    let value = self.string(&k, value)?;
                    let (n, v) = self.header(&k, &name, &value)?;
                    out.insert(n, v);
                }
            }
            ValueKind::String(s) if self.env_keys.contains_key(key) => {
                for (name, value) in parse_header_list(&s).map_err(|e| self.err(key, e))? {
                    let (n, v) = self.header(key, &name, &value)?;
                    out.insert(n, v);
                }
            }
            other => {
                return Err(self.err(
                    key,
                    format!(
                        "expected a map of header names to values, found {}",
                        describe(&other)
                    ),
                ));
            }
        }
        Ok(out)
    }

    fn function(&self, key: &str, v: Value) -> Result<FunctionTrack, ConfigError> {
        let mut s = match v.kind {
            ValueKind::Table(_) => self.section(key, Some(v), FUNCTION_KEYS)?,
            ValueKind::String(_) => {
                let name = self.function_name(key, v)?;
                return Ok(FunctionTrack::new(name));
            }
            other => {
                return Err(self.err(
                    key,
                    format!(
                        "expected a function name or a map with the keys {}, found {}",
                        FUNCTION_KEYS.join(", "),
                        describe(&other)
                    ),
                ));
            }
        };
        let Some((name_key, name)) = s.take("name") else {
            return Err(self.err(
                &format!("{key}.name"),
                "missing; give the function's name or ARN",
            ));
        };
        let mut f = FunctionTrack::new(self.function_name(&name_key, name)?);
        if let Some((k, v)) = s.take("qualifier") {
            f.qualifier = self.optional_token(&k, v)?;
            let in_arn = FunctionParts::from_execution_arn(&f.name).and_then(|p| p.qualifier);
            match (&f.qualifier, &in_arn) {
                (Some(q), Some(a)) if q != a => {
                    return Err(self.err(
                        &k,
                        format!(
                            "{} differs from the qualifier {} in {name_key}; give it in one place",
                            quote(q),
                            quote(a)
                        ),
                    ));
                }
                _ => {}
            }
        }
        if let Some((k, v)) = s.take("statuses") {
            let mut statuses: Vec<String> = Vec::new();
            for (ik, iv) in self.list(&k, v)? {
                let status = self.string(&ik, iv)?;
                if !EXECUTION_STATUSES.contains(&status.as_str()) {
                    let hint = EXECUTION_STATUSES
                        .iter()
                        .find(|s| s.eq_ignore_ascii_case(status.trim()))
                        .map(|s| format!(" (statuses are upper case: {s})"))
                        .unwrap_or_default();
                    return Err(self.err(
                        &ik,
                        format!(
                            "unknown execution status {}{hint}; expected one of {}",
                            quote(&status),
                            EXECUTION_STATUSES.join(", ")
                        ),
                    ));
                }
                if !statuses.contains(&status) {
                    statuses.push(status);
                }
            }
            if statuses.is_empty() {
                return Err(self.err(
                    &k,
                    format!(
                        "lists no status, so nothing would be discovered; give one or more of {}",
                        EXECUTION_STATUSES.join(", ")
                    ),
                ));
            }
            f.statuses = statuses;
        }
        if let Some((k, v)) = s.take("lookback") {
            f.lookback = self.duration(&k, v)?;
        }
        Ok(f)
    }

    fn function_name(&self, key: &str, v: Value) -> Result<String, ConfigError> {
        let name = self.token(key, v)?;
        if name.starts_with("arn:") {
            if name.contains("/durable-execution/") {
                return Err(self.err(
                    key,
                    format!(
                        "{} is an execution ARN; list it under track.executions, or give its function here",
                        quote(&name)
                    ),
                ));
            }
            if FunctionParts::from_execution_arn(&name).is_none() || name.contains('/') {
                return Err(self.err(
                    key,
                    format!(
                        "{} is not a function ARN; expected arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] or a plain function name",
                        quote(&name)
                    ),
                ));
            }
        }
        Ok(name)
    }

    fn read(&self, root: Value) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let mut top = self.section("", Some(root), TOP_KEYS)?;

        let mut s = self.subsection(&mut top, "aws", AWS_KEYS)?;
        if let Some((k, v)) = s.take("region") {
            c.aws.region = self.optional_token(&k, v)?;
        }
        if let Some((k, v)) = s.take("endpoint_url") {
            c.aws.endpoint_url = self.optional_token(&k, v)?;
            if let Some(u) = &c.aws.endpoint_url {
                check_url(u).map_err(|m| self.err(&k, m))?;
            }
        }
        if let Some((k, v)) = s.take("max_requests_per_second") {
            c.aws.max_requests_per_second = self.positive_number(&k, v)?;
        }
        if let Some((k, v)) = s.take("max_concurrency") {
            c.aws.max_concurrency = self.count(&k, v, 1)?;
        }

        let mut s = self.subsection(&mut top, "track", TRACK_KEYS)?;
        if let Some((k, v)) = s.take("executions") {
            let mut seen: HashMap<String, String> = HashMap::new();
            for (ik, iv) in self.list(&k, v)? {
                let raw = self.string(&ik, iv)?;
                let arn = ExecutionArn::parse(&raw).map_err(|e| {
                    self.err(
                        &ik,
                        format!(
                            "{}: {e}; expected arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]/durable-execution/NAME/ID",
                            quote(&raw)
                        ),
                    )
                })?;
                if let Some(first) = seen.insert(raw, ik.clone()) {
                    return Err(self.err(&ik, format!("the same ARN as {first}; remove one")));
                }
                c.track.executions.push(arn);
            }
        }
        if let Some((k, v)) = s.take("functions") {
            let mut seen: HashMap<(String, Option<String>), String> = HashMap::new();
            for (ik, iv) in self.list(&k, v)? {
                let f = self.function(&ik, iv)?;
                if let Some(first) = seen.insert((f.name.clone(), f.qualifier.clone()), ik.clone())
                {
                    return Err(self.err(
                        &ik,
                        format!("the same function and qualifier as {first}; merge the two"),
                    ));
                }
                c.track.functions.push(f);
            }
        }
        if let Some((k, v)) = s.take("discovery_interval") {
            c.track.discovery_interval = self.duration_at_least(&k, v, MIN_DISCOVERY_INTERVAL)?;
        }
        if let Some((k, v)) = s.take("follow_chained_invokes") {
            c.track.follow_chained_invokes = self.boolean(&k, v)?;
        }

        let mut s = self.subsection(&mut top, "poll", POLL_KEYS)?;
        if let Some((k, v)) = s.take("interval") {
            c.poll.interval = self.duration_at_least(&k, v, MIN_POLL_INTERVAL)?;
        }
        if let Some((k, v)) = s.take("max_interval") {
            c.poll.max_interval = self.duration(&k, v)?;
        }
        if let Some((k, v)) = s.take("page_size") {
            c.poll.page_size = self.integer(&k, v, 1, u64::from(MAX_PAGE_SIZE))? as u32;
        }
        if let Some((k, v)) = s.take("include_execution_data") {
            c.poll.include_execution_data = self.boolean(&k, v)?;
        }
        if let Some((k, v)) = s.take("adaptive") {
            c.poll.adaptive = self.boolean(&k, v)?;
        }
        if c.poll.max_interval < c.poll.interval {
            return Err(self.err(
                "poll.max_interval",
                format!(
                    "must be at least poll.interval ({}); got {}",
                    humantime::format_duration(c.poll.interval),
                    humantime::format_duration(c.poll.max_interval)
                ),
            ));
        }

        self.read_otlp(&mut top, &mut c.otlp)?;

        let mut s = self.subsection(&mut top, "trace", TRACE_KEYS)?;
        if let Some((k, v)) = s.take("id_scheme") {
            let scheme = self.string(&k, v)?;
            c.trace.id_scheme = match scheme.trim().to_ascii_lowercase().as_str() {
                "python" => IdScheme::Python,
                "js" => IdScheme::Js,
                _ => {
                    return Err(self.err(
                        &k,
                        format!(
                            "unknown id scheme {}; expected python (ids as AWS's Python plugin derives them) or js",
                            quote(&scheme)
                        ),
                    ));
                }
            };
        }
        match s.take("service_name") {
            Some((k, v)) => {
                let name = self.string(&k, v)?;
                c.trace.service_name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
            }
            None => {
                c.trace.service_name = self
                    .otel_var(&["OTEL_SERVICE_NAME"])
                    .map(|(_, v)| v.to_owned());
            }
        }
        if let Some((k, v)) = s.take("include_payloads") {
            c.trace.include_payloads = self.boolean(&k, v)?;
        }
        if let Some((k, v)) = s.take("max_attribute_length") {
            c.trace.max_attribute_length = self.count(&k, v, 1)?;
        }

        let mut s = self.subsection(&mut top, "checkpoint", CHECKPOINT_KEYS)?;
        if let Some((k, v)) = s.take("dir") {
            let dir = self.string(&k, v)?;
            if dir.trim().is_empty() {
                return Err(self.err(
                    &k,
                    "must not be empty; give a directory the exporter can write to",
                ));
            }
            c.checkpoint.dir = PathBuf::from(dir);
        }
        if let Some((k, v)) = s.take("retention") {
            c.checkpoint.retention = self.duration_at_least(&k, v, Duration::from_nanos(1))?;
        }

        let mut s = self.subsection(&mut top, "metrics", METRICS_KEYS)?;
        let policy = s.take("operation_name_label");
        let names = s.take("operation_names");
        let top_n = s.take("operation_names_top_n");
        let policy = match policy {
            Some((k, v)) => {
                let p = self.token(&k, v)?;
                match p.as_str() {
                    "off" | "allowlist" | "top_n" => Some((k, p)),
                    other => {
                        return Err(self.err(
                            &k,
                            format!("{} is not off, allowlist or top_n", quote(other)),
                        ));
                    }
                }
            }
            None => None,
        };
        c.metrics.operation_name_label = match policy.as_ref().map(|(_, p)| p.as_str()) {
            None | Some("off") => crate::metrics::NameLabel::Off,
            Some("allowlist") => {
                let mut list = Vec::new();
                if let Some((k, v)) = names {
                    for (ik, iv) in self.list(&k, v)? {
                        list.push(self.token(&ik, iv)?);
                    }
                }
                crate::metrics::NameLabel::Allowlist(list)
            }
            _ => {
                let n = match top_n {
                    Some((k, v)) => self.count(&k, v, 1)?,
                    None => DEFAULT_OPERATION_NAMES_TOP_N,
                };
                crate::metrics::NameLabel::TopN(n)
            }
        };

        let mut s = self.subsection(&mut top, "http", HTTP_KEYS)?;
        if let Some((k, v)) = s.take("listen") {
            let listen = self.string(&k, v)?;
            c.http.listen = listen.trim().parse().map_err(|_| {
                self.err(
                    &k,
                    format!(
                        "{} is not an IP address and port; write e.g. 0.0.0.0:9464, 127.0.0.1:9464 or [::]:9464",
                        quote(&listen)
                    ),
                )
            })?;
        }
        Ok(c)
    }

    fn read_otlp(&self, top: &mut Section, o: &mut OtlpConfig) -> Result<(), ConfigError> {
        let mut s = self.subsection(top, "otlp", OTLP_KEYS)?;

        match s.take("enabled") {
            Some((k, v)) => o.enabled = self.boolean(&k, v)?,
            None => {
                if let Some((_, v)) = self.otel_var(&["OTEL_SDK_DISABLED"]) {
                    o.enabled = !v.eq_ignore_ascii_case("true");
                }
            }
        }

        o.protocol = match s.take("protocol") {
            Some((k, v)) => {
                let p = self.string(&k, v)?;
                Protocol::parse(&p.trim().to_ascii_lowercase()).ok_or_else(|| {
                    self.err(
                        &k,
                        format!(
                            "unknown protocol {}; expected grpc or http/protobuf (or http)",
                            quote(&p)
                        ),
                    )
                })?
            }
            None => match self.otel_var(&[
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ]) {
                Some((var, p)) => Protocol::parse(&p.to_ascii_lowercase()).ok_or_else(|| {
                    self.otel_err(
                        "otlp.protocol",
                        var,
                        format!(
                            "unsupported protocol {}; expected grpc or http/protobuf",
                            quote(p)
                        ),
                    )
                })?,
                None => Protocol::default(),
            },
        };

        o.endpoint = match s.take("endpoint") {
            Some((k, v)) => {
                let e = self.token(&k, v)?;
                check_url(&e).map_err(|m| self.err(&k, m))?;
                e
            }
            None => {
                let traces = self.otel_var(&["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
                let base = self.otel_var(&["OTEL_EXPORTER_OTLP_ENDPOINT"]);
                match (traces, base) {
                    (Some((var, e)), _) => {
                        check_url(e).map_err(|m| self.otel_err("otlp.endpoint", var, m))?;
                        e.to_owned()
                    }
                    (None, Some((var, e))) => {
                        check_url(e).map_err(|m| self.otel_err("otlp.endpoint", var, m))?;
                        match o.protocol {
                            // A base URL: the signal's path is appended for HTTP.
                            Protocol::HttpProtobuf => {
                                format!("{}/v1/traces", e.trim_end_matches('/'))
                            }
                            Protocol::Grpc => e.to_owned(),
                        }
                    }
                    (None, None) => o.protocol.default_endpoint().to_owned(),
                }
            }
        };

        if let Some((var, list)) = self.otel_var(&[
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ]) {
            let pairs =
                parse_header_list(list).map_err(|m| self.otel_err("otlp.headers", var, m))?;
            for (name, value) in pairs {
                let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    self.otel_err(
                        "otlp.headers",
                        var,
                        format!("{} is not a valid HTTP header name", quote(&name)),
                    )
                })?;
                if http::HeaderValue::from_str(&value).is_err() {
                    return Err(self.otel_err(
                        "otlp.headers",
                        var,
                        format!("the value of header {name} is not a valid HTTP header value"),
                    ));
                }
                o.headers.insert(name.as_str().to_owned(), value);
            }
        }
        if let Some((k, v)) = s.take("headers") {
            // Per header name, the file and DURABLE_EXPORTER__ variables win over OTEL_*.
            o.headers.extend(self.headers(&k, v)?);
        }

        match s.take("timeout") {
            Some((k, v)) => o.timeout = self.duration_at_least(&k, v, Duration::from_nanos(1))?,
            None => {
                if let Some((var, ms)) = self.otel_var(&[
                    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                ]) {
                    o.timeout = match ms.parse::<u64>() {
                        Ok(ms) if ms > 0 => Duration::from_millis(ms),
                        _ => {
                            return Err(self.otel_err(
                                "otlp.timeout",
                                var,
                                format!(
                                    "invalid timeout {}; expected a whole number of milliseconds greater than 0",
                                    quote(ms)
                                ),
                            ));
                        }
                    };
                }
            }
        }
        if let Some((k, v)) = s.take("max_buffered_spans") {
            o.max_buffered_spans = self.count(&k, v, 1)?;
        }
        if let Some((k, v)) = s.take("max_batch_size") {
            o.max_batch_size = self.count(&k, v, 1)?;
        }
        if o.max_batch_size > o.max_buffered_spans {
            return Err(self.err(
                "otlp.max_batch_size",
                format!(
                    "must not exceed otlp.max_buffered_spans ({}); got {}",
                    o.max_buffered_spans, o.max_batch_size
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN1: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/order-42/6a1f0b2c";
    const ARN2: &str = "c9d0ddd5-4e8b-4da5-ba01-445cf9e50869/b5601dd1-2043-4852-8088-c1ff0fa7bf73";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Loads `text` as a config file, with only `vars` in the environment. Returns the file's
    /// path too (the file is gone by then; errors still name it).
    fn load_yaml_env(text: &str, vars: &[(&str, &str)]) -> (Result<Config, ConfigError>, PathBuf) {
        let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        let path = file.path().to_path_buf();
        (Config::load_with_env(Some(&path), env(vars)), path)
    }

    fn load_yaml(text: &str) -> Config {
        let (result, _) = load_yaml_env(text, &[]);
        result.unwrap_or_else(|e| panic!("{e}"))
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_with_env(None, env(vars))
    }

    /// Asserts `text` is rejected, the error naming the file, `key`, and containing `fragment`.
    #[track_caller]
    fn assert_rejected(text: &str, key: &str, fragment: &str) {
        let (result, path) = load_yaml_env(text, &[]);
        let e = result.expect_err(text);
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!(e.file.as_deref(), Some(path.as_path()), "{e}");
        let line = e.to_string();
        assert!(
            line.starts_with(&format!("{}: {key}: ", path.display())),
            "{line}"
        );
        assert!(line.contains(fragment), "{line:?} lacks {fragment:?}");
        assert!(!line.contains('\n'), "{line:?}");
    }

    fn manifest_path(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.aws.region, None);
        assert_eq!(c.aws.endpoint_url, None);
        assert_eq!(c.aws.max_requests_per_second, 5.0);
        assert_eq!(c.aws.max_concurrency, 8);
        assert!(c.track.executions.is_empty());
        assert!(c.track.functions.is_empty());
        assert_eq!(c.track.discovery_interval, Duration::from_secs(60));
        assert!(!c.track.follow_chained_invokes);
        assert_eq!(c.poll.interval, Duration::from_secs(5));
        assert_eq!(c.poll.max_interval, Duration::from_secs(300));
        assert_eq!(c.poll.page_size, 1000);
        assert!(!c.poll.include_execution_data);
        assert!(c.otlp.enabled);
        assert_eq!(c.otlp.endpoint, "http://localhost:4317");
        assert_eq!(c.otlp.protocol, Protocol::Grpc);
        assert!(c.otlp.headers.is_empty());
        assert_eq!(c.otlp.timeout, Duration::from_secs(10));
        assert_eq!(c.otlp.max_buffered_spans, 100_000);
        assert_eq!(c.otlp.max_batch_size, 512);
        assert_eq!(c.trace.id_scheme, IdScheme::Python);
        assert_eq!(c.trace.service_name, None);
        assert!(!c.trace.include_payloads);
        assert_eq!(c.trace.max_attribute_length, 4096);
        assert_eq!(c.checkpoint.dir, Path::new("/var/lib/durable-exporter"));
        assert_eq!(c.checkpoint.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:9464");

        let f = FunctionTrack::new("orders");
        assert_eq!(f.statuses, vec!["RUNNING".to_owned()]);
        assert_eq!(f.lookback, Duration::from_secs(3600));
        assert_eq!(f.qualifier, None);
    }

    #[test]
    fn no_file_empty_file_and_comments_only_are_the_defaults() {
        assert_eq!(load_env(&[]).unwrap(), Config::default());
        assert_eq!(load_yaml(""), Config::default());
        assert_eq!(load_yaml("# nothing here\n\n"), Config::default());
        // Sections whose keys are all commented out are null: the defaults too.
        assert_eq!(
            load_yaml("aws:\npoll:\n  # interval: 1s\n"),
            Config::default()
        );
        // Unrelated variables change nothing.
        assert_eq!(
            load_env(&[("PATH", "/bin"), ("AWS_REGION", "eu-west-1")]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn every_key_from_yaml() {
        let c = load_yaml(&format!(
            r#"
aws:
  region: eu-west-1
  endpoint_url: http://localhost:5000
  max_requests_per_second: 2.5
  max_concurrency: 3
track:
  executions:
    - {ARN1}
    - {ARN2}
  functions:
    - name: orders
      qualifier: live
      statuses: [RUNNING, FAILED, TIMED_OUT]
      lookback: 1h 30m
    - payments
  discovery_interval: 2m
  follow_chained_invokes: true
poll:
  interval: 250ms
  max_interval: 30s
  page_size: 50
  include_execution_data: true
  adaptive: false
otlp:
  enabled: false
  endpoint: https://collector.example.com:4318/v1/traces
  protocol: http/protobuf
  headers:
    Authorization: Bearer abc
    x-team: pay
  timeout: 3s
  max_buffered_spans: 1000
  max_batch_size: 100
trace:
  id_scheme: js
  service_name: checkout
  include_payloads: true
  max_attribute_length: 128
checkpoint:
  dir: /tmp/cursors
  retention: 1d
http:
  listen: "[::1]:9000"
metrics:
  operation_name_label: allowlist
  operation_names: [charge-card, ship]
"#
        ));
        let expected = Config {
            aws: AwsConfig {
                region: Some("eu-west-1".into()),
                endpoint_url: Some("http://localhost:5000".into()),
                max_requests_per_second: 2.5,
                max_concurrency: 3,
            },
            track: TrackConfig {
                executions: vec![
                    ExecutionArn::parse(ARN1).unwrap(),
                    ExecutionArn::parse(ARN2).unwrap(),
                ],
                functions: vec![
                    FunctionTrack {
                        name: "orders".into(),
                        qualifier: Some("live".into()),
                        statuses: vec!["RUNNING".into(), "FAILED".into(), "TIMED_OUT".into()],
                        lookback: Duration::from_secs(5400),
                    },
                    FunctionTrack::new("payments"),
                ],
                discovery_interval: Duration::from_secs(120),
                follow_chained_invokes: true,
            },
            poll: PollConfig {
                interval: Duration::from_millis(250),
                max_interval: Duration::from_secs(30),
                page_size: 50,
                include_execution_data: true,
                adaptive: false,
            },
            otlp: OtlpConfig {
                enabled: false,
                endpoint: "https://collector.example.com:4318/v1/traces".into(),
                protocol: Protocol::HttpProtobuf,
                headers: [("authorization", "Bearer abc"), ("x-team", "pay")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                timeout: Duration::from_secs(3),
                max_buffered_spans: 1000,
                max_batch_size: 100,
            },
            trace: TraceConfig {
                id_scheme: IdScheme::Js,
                service_name: Some("checkout".into()),
                include_payloads: true,
                max_attribute_length: 128,
            },
            checkpoint: CheckpointConfig {
                dir: PathBuf::from("/tmp/cursors"),
                retention: Duration::from_secs(86_400),
            },
            http: HttpConfig {
                listen: "[::1]:9000".parse().unwrap(),
            },
            metrics: MetricsConfig {
                operation_name_label: crate::metrics::NameLabel::Allowlist(vec![
                    "charge-card".into(),
                    "ship".into(),
                ]),
            },
        };
        assert_eq!(c, expected);
    }

    #[test]
    fn env_overrides_win_over_the_file() {
        let (c, _) = load_yaml_env(
            &format!(
                "poll:\n  interval: 2s\ntrack:\n  executions: [{ARN2}]\notlp:\n  enabled: true\n"
            ),
            &[
                ("DURABLE_EXPORTER__POLL__INTERVAL", "10s"),
                (
                    "DURABLE_EXPORTER__TRACK__EXECUTIONS",
                    &format!("{ARN1}, {ARN2},"),
                ),
                ("DURABLE_EXPORTER__OTLP__ENABLED", "false"),
                ("DURABLE_EXPORTER__AWS__REGION", "eu-west-1"),
                ("DURABLE_EXPORTER__POLL__PAGE_SIZE", "20"),
                ("DURABLE_EXPORTER__AWS__MAX_REQUESTS_PER_SECOND", "0.5"),
                ("DURABLE_EXPORTER__TRACE__ID_SCHEME", "js"),
            ],
        );
        let c = c.unwrap();
        assert_eq!(c.poll.interval, Duration::from_secs(10));
        assert_eq!(
            c.track
                .executions
                .iter()
                .map(ExecutionArn::as_str)
                .collect::<Vec<_>>(),
            vec![ARN1, ARN2]
        );
        assert!(!c.otlp.enabled);
        assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.poll.page_size, 20);
        assert_eq!(c.aws.max_requests_per_second, 0.5);
        assert_eq!(c.trace.id_scheme, IdScheme::Js);
        // What the variables do not set stays as the file and the defaults have it.
        assert_eq!(c.poll.max_interval, DEFAULT_MAX_POLL_INTERVAL);
    }

    #[test]
    fn env_lists_maps_and_empty_values() {
        let c = load_env(&[
            ("DURABLE_EXPORTER__TRACK__FUNCTIONS", "orders,payments"),
            ("DURABLE_EXPORTER__OTLP__HEADERS__AUTHORIZATION", "Bearer x"),
            ("DURABLE_EXPORTER__CHECKPOINT__DIR", "/data"),
            // Variable names are case-insensitive, as the config crate reads them.
            ("durable_exporter__http__listen", "127.0.0.1:1"),
        ])
        .unwrap();
        assert_eq!(
            c.track.functions,
            vec![FunctionTrack::new("orders"), FunctionTrack::new("payments")]
        );
        assert_eq!(c.otlp.headers["authorization"], "Bearer x");
        assert_eq!(c.checkpoint.dir, Path::new("/data"));
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:1");

        let c = load_env(&[(
            "DURABLE_EXPORTER__OTLP__HEADERS",
            "x-api-key=a%3Db, x-team=pay",
        )])
        .unwrap();
        assert_eq!(c.otlp.headers["x-api-key"], "a=b");
        assert_eq!(c.otlp.headers["x-team"], "pay");

        // An empty list variable empties the file's list; an empty optional value unsets it.
        let (c, _) = load_yaml_env(
            &format!("track:\n  executions: [{ARN1}]\naws:\n  region: us-east-1\n"),
            &[
                ("DURABLE_EXPORTER__TRACK__EXECUTIONS", ""),
                ("DURABLE_EXPORTER__AWS__REGION", ""),
            ],
        );
        let c = c.unwrap();
        assert!(c.track.executions.is_empty());
        assert_eq!(c.aws.region, None);
    }

    #[test]
    fn env_errors_name_the_variable_and_the_key() {
        let e = load_env(&[("DURABLE_EXPORTER__POLL__INTERVAL", "fast")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("poll.interval"));
        assert_eq!(e.file, None);
        let line = e.to_string();
        assert!(
            line.starts_with("poll.interval: invalid duration \"fast\""),
            "{line}"
        );
        assert!(line.contains("DURABLE_EXPORTER__POLL__INTERVAL"), "{line}");

        // Even with a file loaded, a bad variable is not blamed on the file.
        let (r, _) = load_yaml_env(
            "poll:\n  interval: 1s\n",
            &[("DURABLE_EXPORTER__POLL__INTERVALL", "1s")],
        );
        let e = r.unwrap_err();
        assert_eq!(e.key.as_deref(), Some("poll.intervall"));
        assert_eq!(e.file, None);
        assert!(
            e.message.contains("DURABLE_EXPORTER__POLL__INTERVALL"),
            "{e}"
        );
        assert!(e.message.contains("did you mean interval"), "{e}");

        let e = load_env(&[("DURABLE_EXPORTER__TRACK__EXECUTIONS", "ok,a\u{7}b")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("track.executions[1]"));
        assert!(
            e.message.contains("DURABLE_EXPORTER__TRACK__EXECUTIONS"),
            "{e}"
        );

        let e = load_env(&[("DURABLE_EXPORTER__POLLING__INTERVAL", "1s")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("polling"));
        assert!(
            e.message.contains("DURABLE_EXPORTER__POLLING__INTERVAL"),
            "{e}"
        );

        for (var, value, key) in [
            (
                "DURABLE_EXPORTER__AWS__MAX_REQUESTS_PER_SECOND",
                "nan",
                "aws.max_requests_per_second",
            ),
            (
                "DURABLE_EXPORTER__AWS__MAX_REQUESTS_PER_SECOND",
                "-1",
                "aws.max_requests_per_second",
            ),
            ("DURABLE_EXPORTER__OTLP__ENABLED", "maybe", "otlp.enabled"),
            (
                "DURABLE_EXPORTER__POLL__PAGE_SIZE",
                "lots",
                "poll.page_size",
            ),
            ("DURABLE_EXPORTER__OTLP__HEADERS", "novalue", "otlp.headers"),
        ] {
            let e = load_env(&[(var, value)]).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{var}={value}: {e}");
            assert!(e.message.contains(var), "{e}");
        }
    }

    #[test]
    fn otel_variables_fill_what_is_not_configured() {
        let c = load_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=a%20b%2Cc,X-Team = pay",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_SERVICE_NAME", "checkout"),
        ])
        .unwrap();
        // A base URL: /v1/traces is appended for HTTP.
        assert_eq!(c.otlp.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.otlp.headers["api-key"], "a b,c");
        assert_eq!(c.otlp.headers["x-team"], "pay");
        assert_eq!(c.otlp.timeout, Duration::from_millis(2500));
        assert_eq!(c.trace.service_name.as_deref(), Some("checkout"));
        assert!(c.otlp.enabled);

        // gRPC takes the base URL as it is; the traces endpoint is always taken as it is, and
        // the traces-specific variables win over the general ones.
        let c = load_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]).unwrap();
        assert_eq!(c.otlp.endpoint, "http://collector:4317");
        let c = load_env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert_eq!(c.otlp.endpoint, "http://traces:4318/custom");
        assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);

        // No endpoint anywhere: the chosen protocol's default.
        let c = load_env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap();
        assert_eq!(c.otlp.endpoint, "http://localhost:4318");
        let c = load_yaml("otlp:\n  protocol: http\n");
        assert_eq!(c.otlp.endpoint, "http://localhost:4318");
        assert_eq!(c.otlp.protocol, Protocol::HttpProtobuf);

        assert!(
            !load_env(&[("OTEL_SDK_DISABLED", "TRUE")])
                .unwrap()
                .otlp
                .enabled
        );
        assert!(
            load_env(&[("OTEL_SDK_DISABLED", "false")])
                .unwrap()
                .otlp
                .enabled
        );
        // Empty means unset, as the OpenTelemetry specification says.
        assert_eq!(
            load_env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
                ("OTEL_SERVICE_NAME", " ")
            ])
            .unwrap(),
            Config::default()
        );
    }

    #[test]
    fn precedence_env_then_file_then_otel_then_defaults() {
        let otel = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=otel,b=otel"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_SERVICE_NAME", "otel-name"),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        let file = "otlp:\n  enabled: true\n  endpoint: http://file:4317\n  protocol: grpc\n  headers:\n    b: file\n    c: file\n  timeout: 2s\ntrace:\n  service_name: file-name\n";

        // The file wins over OTEL_*; headers merge per name.
        let (c, _) = load_yaml_env(file, &otel);
        let c = c.unwrap();
        assert!(c.otlp.enabled);
        assert_eq!(c.otlp.endpoint, "http://file:4317");
        assert_eq!(c.otlp.protocol, Protocol::Grpc);
        assert_eq!(
            c.otlp
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            vec!["a=otel", "b=file", "c=file"]
        );
        assert_eq!(c.otlp.timeout, Duration::from_secs(2));
        assert_eq!(c.trace.service_name.as_deref(), Some("file-name"));

        // DURABLE_EXPORTER__ wins over the file.
        let mut vars = otel.to_vec();
        vars.extend([
            ("DURABLE_EXPORTER__OTLP__ENDPOINT", "http://env:4317"),
            ("DURABLE_EXPORTER__OTLP__TIMEOUT", "3s"),
            ("DURABLE_EXPORTER__TRACE__SERVICE_NAME", "env-name"),
            ("DURABLE_EXPORTER__OTLP__ENABLED", "false"),
        ]);
        let (c, _) = load_yaml_env(file, &vars);
        let c = c.unwrap();
        assert_eq!(c.otlp.endpoint, "http://env:4317");
        assert_eq!(c.otlp.timeout, Duration::from_secs(3));
        assert_eq!(c.trace.service_name.as_deref(), Some("env-name"));
        assert!(!c.otlp.enabled);

        // Without a file, OTEL_* win over the defaults.
        let c = load_env(&otel).unwrap();
        assert_eq!(c.otlp.endpoint, "http://otel:4317/v1/traces");
        assert_eq!(c.otlp.timeout, Duration::from_secs(1));
        assert!(!c.otlp.enabled);
    }

    #[test]
    fn bad_otel_variables_are_errors_naming_them() {
        for (var, value, key) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "otlp.protocol"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "carrier-pigeon",
                "otlp.protocol",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "collector:4317",
                "otlp.endpoint",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "otlp.timeout"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0", "otlp.timeout"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "just-a-token", "otlp.headers"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=x", "otlp.headers"),
        ] {
            let e = load_env(&[(var, value)]).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{var}={value}: {e}");
            assert_eq!(e.file, None);
            assert!(e.message.contains(var), "{e}");
        }
        // A configured value makes the variable irrelevant, even a bad one.
        let (c, _) = load_yaml_env(
            "otlp:\n  protocol: grpc\n",
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
        );
        assert_eq!(c.unwrap().otlp.protocol, Protocol::Grpc);
        // Header values are secrets: never repeated in errors.
        let e =
            load_env(&[("OTEL_EXPORTER_OTLP_HEADERS", "authorization=sec\u{1}ret")]).unwrap_err();
        assert!(!e.to_string().contains("sec"), "{e}");
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        assert_rejected(
            "pol:\n  interval: 1s\n",
            "pol",
            "unknown key \"pol\" at the top level",
        );
        assert_rejected("pol:\n  interval: 1s\n", "pol", "did you mean poll?");
        assert_rejected(
            "poll:\n  intervall: 1s\n",
            "poll.intervall",
            "unknown key \"intervall\" in section poll; did you mean interval?",
        );
        assert_rejected("aws:\n  regoin: x\n", "aws.regoin", "in section aws");
        assert_rejected(
            "otlp:\n  header: {}\n",
            "otlp.header",
            "did you mean headers?",
        );
        assert_rejected(
            "track:\n  functions:\n    - name: orders\n      statuss: [RUNNING]\n",
            "track.functions[0].statuss",
            "in section track.functions[0]",
        );
        assert_rejected(
            "http:\n  listen: 0.0.0.0:1\n  port: 2\n",
            "http.port",
            "the keys are: listen",
        );
        // Keys are case-sensitive in the file.
        assert_rejected("Poll:\n  interval: 1s\n", "Poll", "did you mean poll?");
    }

    #[test]
    fn malformed_values_are_rejected_naming_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            // ARNs
            (
                &format!("track:\n  executions:\n    - {ARN1}\n    - a b\n"),
                "track.executions[1]",
                "whitespace",
            ),
            (
                "track:\n  executions: [\"\"]\n",
                "track.executions[0]",
                "the execution ARN is empty",
            ),
            (
                "track:\n  executions:\n    -\n",
                "track.executions[0]",
                "expected a string",
            ),
            (
                "track:\n  executions: arn\n",
                "track.executions",
                "expected a list",
            ),
            (
                &format!("track:\n  executions: [{ARN2}, {ARN2}]\n"),
                "track.executions[1]",
                "the same ARN as track.executions[0]",
            ),
            // durations
            (
                "poll:\n  interval: five seconds\n",
                "poll.interval",
                "invalid duration \"five seconds\"",
            ),
            (
                "poll:\n  interval: 5\n",
                "poll.interval",
                "a unit is needed, e.g. \"5s\"",
            ),
            (
                "poll:\n  interval: 50ms\n",
                "poll.interval",
                "must be at least 100ms; got 50ms",
            ),
            (
                "poll:\n  interval: 10m\n",
                "poll.max_interval",
                "must be at least poll.interval (10m); got 5m",
            ),
            (
                "poll:\n  interval: 1s\n  max_interval: 500ms\n",
                "poll.max_interval",
                "must be at least poll.interval",
            ),
            (
                "track:\n  discovery_interval: 100ms\n",
                "track.discovery_interval",
                "at least 1s",
            ),
            (
                "checkpoint:\n  retention: 0s\n",
                "checkpoint.retention",
                "greater than 0",
            ),
            ("otlp:\n  timeout: 0ms\n", "otlp.timeout", "greater than 0"),
            (
                "track:\n  functions:\n    - name: f\n      lookback: soon\n",
                "track.functions[0].lookback",
                "invalid duration",
            ),
            // numbers
            (
                "poll:\n  page_size: 0\n",
                "poll.page_size",
                "must be between 1 and 1000; got 0",
            ),
            (
                "poll:\n  page_size: 1001\n",
                "poll.page_size",
                "must be between 1 and 1000; got 1001",
            ),
            ("poll:\n  page_size: -5\n", "poll.page_size", "got -5"),
            (
                "poll:\n  page_size: 10.5\n",
                "poll.page_size",
                "expected a whole number, found 10.5",
            ),
            (
                "aws:\n  max_requests_per_second: 0\n",
                "aws.max_requests_per_second",
                "greater than 0; got 0",
            ),
            (
                "aws:\n  max_requests_per_second: -2.5\n",
                "aws.max_requests_per_second",
                "greater than 0; got -2.5",
            ),
            (
                "aws:\n  max_requests_per_second: fast\n",
                "aws.max_requests_per_second",
                "expected a number",
            ),
            (
                "aws:\n  max_concurrency: 0\n",
                "aws.max_concurrency",
                "must be at least 1; got 0",
            ),
            (
                "otlp:\n  max_buffered_spans: 0\n",
                "otlp.max_buffered_spans",
                "at least 1",
            ),
            (
                "otlp:\n  max_batch_size: 0\n",
                "otlp.max_batch_size",
                "at least 1",
            ),
            (
                "otlp:\n  max_buffered_spans: 100\n",
                "otlp.max_batch_size",
                "must not exceed otlp.max_buffered_spans (100); got 512",
            ),
            (
                "trace:\n  max_attribute_length: 0\n",
                "trace.max_attribute_length",
                "at least 1",
            ),
            // enumerations
            (
                "otlp:\n  protocol: grpcs\n",
                "otlp.protocol",
                "unknown protocol \"grpcs\"; expected grpc or http/protobuf",
            ),
            (
                "trace:\n  id_scheme: go\n",
                "trace.id_scheme",
                "unknown id scheme \"go\"; expected python",
            ),
            (
                "track:\n  functions:\n    - name: f\n      statuses: [RUNNING, DONE]\n",
                "track.functions[0].statuses[1]",
                "unknown execution status \"DONE\"",
            ),
            (
                "track:\n  functions:\n    - name: f\n      statuses: [running]\n",
                "track.functions[0].statuses[0]",
                "statuses are upper case: RUNNING",
            ),
            (
                "track:\n  functions:\n    - name: f\n      statuses: []\n",
                "track.functions[0].statuses",
                "lists no status",
            ),
            (
                "otlp:\n  enabled: yes\n",
                "otlp.enabled",
                "expected true or false, found \"yes\"",
            ),
            // functions
            (
                "track:\n  functions:\n    - qualifier: live\n",
                "track.functions[0].name",
                "missing",
            ),
            (
                "track:\n  functions:\n    - name: \"\"\n",
                "track.functions[0].name",
                "must not be empty",
            ),
            (
                "track:\n  functions:\n    - \"my function\"\n",
                "track.functions[0]",
                "must not contain whitespace",
            ),
            (
                &format!("track:\n  functions:\n    - name: {ARN1}\n"),
                "track.functions[0].name",
                "is an execution ARN",
            ),
            (
                "track:\n  functions:\n    - name: \"arn:aws:s3:::bucket\"\n",
                "track.functions[0].name",
                "is not a function ARN",
            ),
            (
                "track:\n  functions:\n    - name: \"arn:aws:lambda:us-east-1:1:function:f:live\"\n      qualifier: \"2\"\n",
                "track.functions[0].qualifier",
                "differs from the qualifier \"live\"",
            ),
            (
                "track:\n  functions: [orders, {name: orders}]\n",
                "track.functions[1]",
                "the same function and qualifier as track.functions[0]",
            ),
            (
                "track:\n  functions: [7]\n",
                "track.functions[0]",
                "expected a function name or a map",
            ),
            // addresses, URLs, headers
            (
                "http:\n  listen: localhost:9464\n",
                "http.listen",
                "is not an IP address and port",
            ),
            (
                "otlp:\n  endpoint: localhost:4317\n",
                "otlp.endpoint",
                "is not an http:// or https:// URL",
            ),
            (
                "otlp:\n  endpoint: \"\"\n",
                "otlp.endpoint",
                "must not be empty",
            ),
            (
                "aws:\n  endpoint_url: ftp://x\n",
                "aws.endpoint_url",
                "is not an http:// or https:// URL",
            ),
            (
                "otlp:\n  headers:\n    \"bad name\": x\n",
                "otlp.headers.bad name",
                "not a valid HTTP header name",
            ),
            (
                "otlp:\n  headers: [a, b]\n",
                "otlp.headers",
                "expected a map of header names",
            ),
            (
                "checkpoint:\n  dir: \"\"\n",
                "checkpoint.dir",
                "must not be empty",
            ),
            // shapes
            (
                "poll: 5\n",
                "poll",
                "expected a section (a map with the keys interval, max_interval",
            ),
        ];
        for (text, key, fragment) in cases {
            assert_rejected(text, key, fragment);
        }
    }

    #[test]
    fn unreadable_and_invalid_files_name_the_file() {
        let missing = Path::new("/nonexistent/durable-exporter.yaml");
        let e = Config::load_with_env(Some(missing), env(&[])).unwrap_err();
        assert_eq!(e.file.as_deref(), Some(missing));
        assert_eq!(e.key, None);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/durable-exporter.yaml: no such config file"),
            "{e}"
        );

        for text in [
            "poll:\n  interval: [1s\n",
            "just a string\n",
            "- a\n- b\n",
            "a: 1\n---\nb: 2\n",
        ] {
            let (r, path) = load_yaml_env(text, &[]);
            let e = r.unwrap_err();
            assert_eq!(e.file.as_deref(), Some(path.as_path()), "{e}");
            assert_eq!(e.key, None, "{e}");
            assert!(e.message.starts_with("not a valid config file"), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn error_lines_leave_out_missing_parts() {
        let e = ConfigError {
            file: Some(PathBuf::from("c.yaml")),
            key: Some("poll.interval".into()),
            message: "bad\nvalue".into(),
        };
        assert_eq!(e.to_string(), "c.yaml: poll.interval: bad value");
        let e = ConfigError {
            file: None,
            key: Some("k".into()),
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "k: m");
        let e = ConfigError {
            file: Some(PathBuf::from("c.yaml")),
            key: None,
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "c.yaml: m");
    }

    #[test]
    fn shipped_config_is_exactly_the_defaults() {
        let path = manifest_path("config/durable-exporter.yaml");
        let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn operation_name_label_policies() {
        let c = load_yaml("metrics:\n  operation_name_label: top_n\n  operation_names_top_n: 5\n");
        assert_eq!(
            c.metrics.operation_name_label,
            crate::metrics::NameLabel::TopN(5)
        );
        let c = load_yaml("metrics:\n  operation_name_label: top_n\n");
        assert_eq!(
            c.metrics.operation_name_label,
            crate::metrics::NameLabel::TopN(DEFAULT_OPERATION_NAMES_TOP_N)
        );
        assert_rejected(
            "metrics:\n  operation_name_label: all\n",
            "metrics.operation_name_label",
            "not off, allowlist or top_n",
        );
        assert_rejected(
            "metrics:\n  operation_name_label: top_n\n  operation_names_top_n: 0\n",
            "metrics.operation_names_top_n",
            "",
        );
    }

    #[test]
    fn shipped_config_documents_every_key_and_its_variable() {
        let text = std::fs::read_to_string(manifest_path("config/durable-exporter.yaml")).unwrap();
        let sections: &[(&str, &[&str])] = &[
            ("aws", AWS_KEYS),
            ("track", TRACK_KEYS),
            ("poll", POLL_KEYS),
            ("otlp", OTLP_KEYS),
            ("trace", TRACE_KEYS),
            ("checkpoint", CHECKPOINT_KEYS),
            ("http", HTTP_KEYS),
            ("metrics", METRICS_KEYS),
        ];
        assert_eq!(
            sections.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            TOP_KEYS
        );
        for (section, keys) in sections {
            assert!(text.contains(&format!("\n{section}:\n")), "{section}");
            for key in *keys {
                assert!(
                    text.contains(&format!("  {key}:")) || text.contains(&format!("# {key}:")),
                    "{section}.{key} is not in the shipped config"
                );
                let var = format!(
                    "{ENV_PREFIX}{}__{}",
                    section.to_uppercase(),
                    key.to_uppercase()
                );
                assert!(text.contains(&var), "{var} is not documented");
            }
        }
        for key in FUNCTION_KEYS {
            assert!(text.contains(&format!("{key}:")), "functions[].{key}");
        }
    }

    #[test]
    fn shipped_config_leaves_otel_variables_in_effect() {
        let path = manifest_path("config/durable-exporter.yaml");
        let c = Config::load_with_env(
            Some(&path),
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_SERVICE_NAME", "svc"),
            ]),
        )
        .unwrap();
        assert_eq!(c.otlp.endpoint, "http://collector:4317");
        assert_eq!(c.trace.service_name.as_deref(), Some("svc"));
    }

    #[test]
    fn every_shipped_config_file_loads() {
        let mut loaded = Vec::new();
        for dir in ["config", "config/examples"] {
            for entry in std::fs::read_dir(manifest_path(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    let c = Config::load_with_env(Some(&path), env(&[]))
                        .unwrap_or_else(|e| panic!("{e}"));
                    loaded.push((path.file_name().unwrap().to_string_lossy().into_owned(), c));
                }
            }
        }
        loaded.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["durable-exporter.yaml", "service.yaml", "sidecar.yaml"]
        );

        let service = &loaded[1].1;
        assert_eq!(service.track.functions.len(), 2);
        assert_eq!(service.otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(service.otlp.headers.len(), 2);
        assert_ne!(service.checkpoint.dir, CheckpointConfig::default().dir);
        let sidecar = &loaded[2].1;
        assert_eq!(sidecar.track.executions.len(), 3);
        assert_eq!(sidecar.otlp.protocol, Protocol::Grpc);
        assert_eq!(sidecar.otlp.endpoint, "http://localhost:4317");
    }

    #[test]
    fn header_lists_and_percent_decoding() {
        assert_eq!(
            parse_header_list(" a = 1 ,, b=x%2Cy%ZZ%4").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x,y%ZZ%4".into())]
        );
        assert!(parse_header_list("a").is_err());
        assert_eq!(percent_decode("%E2%9C%93"), Some("\u{2713}".into()));
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn summary_says_where_spans_go() {
        let s = Config::default().summary();
        assert!(s.contains("tracked executions: 0"), "{s}");
        assert!(s.contains("otlp: http://localhost:4317 (grpc)"), "{s}");
        assert!(
            s.contains("checkpoint dir: /var/lib/durable-exporter"),
            "{s}"
        );
        assert!(s.contains("http listen: 0.0.0.0:9464"), "{s}");
        let mut c = Config::default();
        c.otlp.enabled = false;
        assert!(c.summary().contains("otlp: disabled"));
    }
}
