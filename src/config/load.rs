//! Loading: the file read (bounded) and parsed as YAML, the `DURABLE_EXPORTER__` variables laid
//! over it, the tree deserialized into [`Config`] by serde derive with the path of whatever
//! fails, the `OTEL_*` variables filling what is not configured, then [`Config::validate`].
//! Every error is blamed on its real source: the variable that set the key, else the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tree::{DeError, Node, parse_header_list, quote};
use super::{Config, ENV_PREFIX, MAX_CONFIG_FILE_BYTES, Problem, de};
use crate::otlp::{Compression, OtlpTls, Protocol};

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
        let mut loader = Loader {
            file: path,
            file_tree: Node::Map(Vec::new()),
            env_keys: BTreeMap::new(),
            otel: HashMap::new(),
            pod_name: None,
            aws_region: Vec::new(),
        };
        if let Some(p) = path {
            loader.file_tree = loader.read_file(p)?;
        }
        let mut tree = loader.file_tree.clone();
        for (name, value) in env {
            let is_ours = name
                .get(..ENV_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX));
            if is_ours {
                let key: Vec<String> = name[ENV_PREFIX.len()..]
                    .to_lowercase()
                    .split("__")
                    .map(str::to_owned)
                    .collect();
                if key.iter().any(String::is_empty) {
                    return Err(ConfigError {
                        file: None,
                        key: None,
                        message: format!(
                            "the environment variable {name} names no key; write {ENV_PREFIX}SECTION__KEY"
                        ),
                    });
                }
                loader.env_keys.insert(key.join("."), name.clone());
                tree.set(&key, Node::Env(value));
            } else if (name == "POD_NAME" || (name == "HOSTNAME" && loader.pod_name.is_none()))
                && !value.trim().is_empty()
            {
                loader.pod_name = Some((name.clone(), value));
            } else if name.starts_with("OTEL_") && !value.trim().is_empty() {
                // The OpenTelemetry specification reads an empty variable as unset.
                loader.otel.insert(name, value);
            } else if AWS_REGION_VARS.contains(&name.as_str()) && !value.trim().is_empty() {
                loader.aws_region.push((name, value));
            }
        }
        let mut config: Config = serde_path_to_error::deserialize(tree.clone())
            .map_err(|e| loader.deserialize_error(e))?;
        loader.sigv4_region(&mut config)?;
        loader.apply_otel(&tree, &mut config)?;
        loader.apply_pod_name(&mut config)?;
        // With status events, listing only reconciles what events missed: less often, unless
        // asked.
        if config.track.status_events.queue_url.is_some()
            && tree.at("track.discovery_interval").is_none()
        {
            config.track.discovery_interval = super::STATUS_EVENTS_DISCOVERY_INTERVAL;
        }
        config.validate().map_err(|p| loader.problem(p))?;
        Ok(config)
    }
}

/// Knows where each value came from.
struct Loader<'a> {
    /// `POD_NAME` (else `HOSTNAME`) and its value, for `shard.from_pod_name`.
    pod_name: Option<(String, String)>,
    file: Option<&'a Path>,
    /// What the file set.
    file_tree: Node,
    /// Config key (`poll.interval`) → the `DURABLE_EXPORTER__` variable that set it.
    env_keys: BTreeMap<String, String>,
    /// Non-empty `OTEL_*` variables.
    otel: HashMap<String, String>,
    /// Non-empty [`AWS_REGION_VARS`], for `otlp.aws_sigv4.region`.
    aws_region: Vec<(String, String)>,
}

/// Where the AWS SDK reads the region from the environment, first winning.
const AWS_REGION_VARS: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];

impl Loader<'_> {
    /// The file, bounded (see [`parse_file`]).
    fn read_file(&self, path: &Path) -> Result<Node, ConfigError> {
        parse_file(path, &Config::sections().join(", "))
    }

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

    /// A check across keys: each key's source is named, the file blamed only when it set one.
    fn problem(&self, p: Problem) -> ConfigError {
        if p.others.is_empty() {
            return self.err(&p.key, p.message);
        }
        let mut in_file = false;
        let mut sources = Vec::new();
        for key in std::iter::once(&p.key).chain(&p.others) {
            match self.env_var_for(key) {
                Some(var) => sources.push(format!("{key} from {var}")),
                None if self.file_tree.at(key).is_some() => in_file = true,
                None => {}
            }
        }
        let message = if sources.is_empty() {
            p.message
        } else {
            format!("{} ({})", p.message, sources.join(", "))
        };
        ConfigError {
            file: if in_file {
                self.file.map(Path::to_path_buf)
            } else {
                None
            },
            key: Some(p.key),
            message,
        }
    }

    fn deserialize_error(&self, e: serde_path_to_error::Error<DeError>) -> ConfigError {
        let path = e.path().to_string();
        let path: String = path
            .split('.')
            .filter(|s| *s != "?" && !s.is_empty())
            .collect::<Vec<_>>()
            .join(".");
        let path = path.trim_start_matches('.').to_owned();
        let join = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.clone()
            } else {
                format!("{path}.{name}")
            }
        };
        match e.into_inner() {
            DeError::Message(m) => self.err(&path, m),
            DeError::MissingField(field) => {
                let hint = if field == "name" {
                    "; give the function's name or ARN"
                } else {
                    ""
                };
                self.err(&join(field), format!("missing{hint}"))
            }
            DeError::UnknownField { field, expected } => {
                let key = join(&field);
                let section = key.rsplit_once('.').map_or("", |(s, _)| s);
                let place = if section.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in section {section}")
                };
                let hint = closest(&field, expected)
                    .map(|k| format!("did you mean {k}? "))
                    .unwrap_or_default();
                self.err(
                    &key,
                    format!(
                        "unknown key {field:?} {place}; {hint}the keys are: {}",
                        expected.join(", ")
                    ),
                )
            }
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

    /// The first of `vars` that is set (non-empty), with its name.
    fn otel_var(&self, vars: &[&'static str]) -> Option<(&'static str, &str)> {
        vars.iter()
            .find_map(|v| self.otel.get(*v).map(|val| (*v, val.trim())))
    }

    /// `otlp.aws_sigv4.region` when the section is given without one: `aws.region`, else the
    /// AWS SDK's variables (`AWS_REGION`, then `AWS_DEFAULT_REGION`). Still none: `validate`
    /// says it is missing.
    fn sigv4_region(&self, c: &mut Config) -> Result<(), ConfigError> {
        let Some(sigv4) = &mut c.otlp.aws_sigv4 else {
            return Ok(());
        };
        if sigv4.region.is_some() {
            return Ok(());
        }
        if let Some(r) = &c.aws.region {
            let r = de::check_aws_name(r).map_err(|m| self.err("aws.region", m))?;
            sigv4.region = Some(r);
            return Ok(());
        }
        let from_env = AWS_REGION_VARS
            .iter()
            .find_map(|var| self.aws_region.iter().find(|(n, _)| n == var));
        if let Some((var, value)) = from_env {
            let r = de::check_aws_name(value).map_err(|m| ConfigError {
                file: None,
                key: Some("otlp.aws_sigv4.region".into()),
                message: format!(
                    "{m} (from the environment variable {var}; fix it, or set otlp.aws_sigv4.region)"
                ),
            })?;
            sigv4.region = Some(r);
        }
        Ok(())
    }

    /// The `OTEL_*` variables, for the keys neither the file nor a `DURABLE_EXPORTER__`
    /// variable set.
    /// With `shard.from_pod_name`, the index is the ordinal ending the pod's name.
    fn apply_pod_name(&self, c: &mut Config) -> Result<(), ConfigError> {
        if !c.shard.from_pod_name {
            return Ok(());
        }
        let Some((var, name)) = &self.pod_name else {
            return Err(ConfigError {
                file: self.file.map(Path::to_path_buf),
                key: Some("shard.from_pod_name".into()),
                message: "neither POD_NAME nor HOSTNAME is set; pass the pod's name in POD_NAME (a fieldRef to metadata.name), or set shard.index instead".into(),
            });
        };
        c.shard.index = crate::shard::ordinal_of_pod_name(name).ok_or_else(|| ConfigError {
            file: None,
            key: Some("shard.from_pod_name".into()),
            message: format!(
                "the environment variable {var} is {}, which does not end in -N (a StatefulSet pod's ordinal)",
                quote(name)
            ),
        })?;
        Ok(())
    }

    fn apply_otel(&self, tree: &Node, c: &mut Config) -> Result<(), ConfigError> {
        let set = |key: &str| tree.at(key).is_some();
        let o = &mut c.otlp;
        if !set("otlp.enabled")
            && let Some((_, v)) = self.otel_var(&["OTEL_SDK_DISABLED"])
        {
            o.enabled = !v.eq_ignore_ascii_case("true");
        }
        if !set("otlp.protocol")
            && let Some((var, p)) = self.otel_var(&[
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ])
        {
            o.protocol = Protocol::parse(&p.to_ascii_lowercase()).ok_or_else(|| {
                self.otel_err(
                    "otlp.protocol",
                    var,
                    format!(
                        "unsupported protocol {}; expected grpc or http/protobuf",
                        quote(p)
                    ),
                )
            })?;
        }
        if !set("otlp.endpoint") {
            let traces = self.otel_var(&["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
            let base = self.otel_var(&["OTEL_EXPORTER_OTLP_ENDPOINT"]);
            o.endpoint = match (traces, base) {
                (Some((var, e)), _) => {
                    de::check_url(e).map_err(|m| self.otel_err("otlp.endpoint", var, m))?;
                    e.to_owned()
                }
                (None, Some((var, e))) => {
                    de::check_url(e).map_err(|m| self.otel_err("otlp.endpoint", var, m))?;
                    match o.protocol {
                        // A base URL: the signal's path is appended for HTTP.
                        Protocol::HttpProtobuf => format!("{}/v1/traces", e.trim_end_matches('/')),
                        Protocol::Grpc => e.to_owned(),
                    }
                }
                (None, None) => match o.aws_sigv4.as_ref().and_then(|s| s.region.as_deref()) {
                    // Signed spans go to X-Ray unless told otherwise.
                    Some(region) => super::xray_traces_url(region),
                    None => o.protocol.default_endpoint().to_owned(),
                },
            };
        }
        if let Some((var, list)) = self.otel_var(&[
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ]) {
            let pairs =
                parse_header_list(list).map_err(|m| self.otel_err("otlp.headers", var, m))?;
            for (name, value) in pairs {
                let (name, value) =
                    de::header(&name, &value).map_err(|m| self.otel_err("otlp.headers", var, m))?;
                // Per header name, the file and DURABLE_EXPORTER__ variables win over OTEL_*.
                o.headers.entry(name).or_insert(value);
            }
        }
        if !set("otlp.timeout")
            && let Some((var, ms)) = self.otel_var(&[
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ])
        {
            o.timeout = match ms.parse::<u64>() {
                Ok(ms) if ms > 0 && ms <= 600_000 => Duration::from_millis(ms),
                _ => {
                    return Err(self.otel_err(
                            "otlp.timeout",
                            var,
                            format!(
                                "invalid timeout {}; expected a whole number of milliseconds from 1 to 600000",
                                quote(ms)
                            ),
                        ));
                }
            };
        }
        if !set("otlp.compression") {
            let lookup = |name: &str| self.otel.get(name).cloned();
            if let Some(c) = Compression::from_env(lookup)
                .map_err(|e| self.otel_err("otlp.compression", e.variable, &e.message))?
            {
                o.compression = c;
            }
        }
        let from_env = OtlpTls::from_env(|name: &str| self.otel.get(name).cloned());
        let tls = &mut o.tls;
        for (key, field, value) in [
            ("otlp.tls.ca_file", &mut tls.ca_file, from_env.ca_file),
            (
                "otlp.tls.client_cert_file",
                &mut tls.client_cert_file,
                from_env.client_cert_file,
            ),
            (
                "otlp.tls.client_key_file",
                &mut tls.client_key_file,
                from_env.client_key_file,
            ),
        ] {
            if !set(key) && value.is_some() {
                *field = value;
            }
        }
        if !set("trace.service_name")
            && let Some((_, v)) = self.otel_var(&["OTEL_SERVICE_NAME"])
        {
            c.trace.service_name = Some(v.to_owned());
        }
        Ok(())
    }
}

/// A YAML file of one map, bounded in size and in what anchors and aliases may expand to.
/// `shape` names what the map holds, for the error.
fn parse_file(path: &Path, shape: &str) -> Result<Node, ConfigError> {
    let file_err = |message: String| ConfigError {
        file: Some(path.to_path_buf()),
        key: None,
        message,
    };
    let bytes = read_bounded(path).map_err(|e| {
        file_err(match e.kind() {
            std::io::ErrorKind::NotFound => "no such config file; check the path (config/durable-exporter.yaml is a documented example)".to_owned(),
            std::io::ErrorKind::FileTooLarge => format!("larger than {} KiB: not a config file", MAX_CONFIG_FILE_BYTES >> 10),
            _ => format!("cannot read the config file: {e}"),
        })
    })?;
    let invalid = |cause: String| {
        file_err(format!(
            "not a valid config file: {cause}; it must be YAML, a map of {shape}"
        ))
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Ok(Node::Map(Vec::new()));
    }
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    // A config file is small: anything near these is an attack (an alias bomb), not a config.
    budget.max_events = 100_000;
    budget.max_nodes = 50_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_depth = 32;
    budget.max_documents = 1;
    options.budget = Some(budget);
    // What aliases may replay, in all.
    options.alias_limits.max_total_replayed_events = 10_000;
    options.with_snippet = false;
    // `yes`, `on` and the like stay text: a typo must not turn into a boolean.
    options.strict_booleans = true;
    let node: Node =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| invalid(e.to_string()))?;
    match node {
        Node::Map(_) => Ok(node),
        Node::Null => Ok(Node::Map(Vec::new())),
        Node::Seq(_) => Err(invalid("it is a list".into())),
        _ => Err(invalid("it is a single value".into())),
    }
}

/// Another YAML file the configuration names (a web config), read like the config file: bounded,
/// every error naming the file and the key.
pub(crate) fn load_yaml_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    shape: &str,
) -> Result<T, ConfigError> {
    let tree = parse_file(path, shape)?;
    let loader = Loader {
        file: Some(path),
        file_tree: Node::Map(Vec::new()),
        env_keys: BTreeMap::new(),
        otel: HashMap::new(),
        pod_name: None,
        aws_region: Vec::new(),
    };
    serde_path_to_error::deserialize(tree).map_err(|e| loader.deserialize_error(e))
}

/// The file's bytes, refused when larger than [`MAX_CONFIG_FILE_BYTES`] (without reading more).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > MAX_CONFIG_FILE_BYTES {
        return Err(std::io::ErrorKind::FileTooLarge.into());
    }
    Ok(bytes)
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
