//! The shell's OTLP client: spans encoded once by [`crate::trace::proto::encode_request`] and
//! sent as they are, over OTLP/HTTP (hyper, protobuf body) or OTLP/gRPC (tonic, with a codec
//! that passes the encoded bytes through). One [`OtlpClient`] serves every resource.
//! [`OtlpClient::export`] returns only after the collector answered, which is what a checkpoint
//! needs, and says how many spans the collector rejected (OTLP `partial_success`).
//!
//! `https://` endpoints use TLS (rustls, ring) with the system's CA certificates plus an
//! optional CA file, and an optional client certificate for mutual TLS ([`OtlpTls`]). There is
//! no way to turn certificate verification off.
//!
//! OTLP/HTTP requests can be signed with AWS SigV4 ([`OtlpClient::with_sigv4`], for X-Ray's
//! OTLP endpoint): credentials are fetched before each request (the [`Signer`] keeps them while
//! fresh) and the request is signed as it is sent.

use std::collections::HashMap;
use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::sigv4::Signer;
use crate::trace::proto::encode_request;
use crate::trace::{Resource, Span};

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    /// Reads `grpc`, `http/protobuf` (and `http` as its short form).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" | "http" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }

    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        }
    }
}

/// Compression of the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

impl Compression {
    /// Reads `none` or `gzip`, as `OTEL_EXPORTER_OTLP_COMPRESSION` writes them.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
        }
    }

    /// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, else `OTEL_EXPORTER_OTLP_COMPRESSION`, read
    /// through `var` (`|name| std::env::var(name).ok()` for the process environment). None when
    /// neither is set; an empty value counts as unset, as the OpenTelemetry specification says.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, EnvError> {
        let Some((variable, value)) = first_set(&var, COMPRESSION_VARS) else {
            return Ok(None);
        };
        match Compression::parse(&value) {
            Some(c) => Ok(Some(c)),
            None => Err(EnvError {
                variable,
                message: format!(
                    "{:?} is not a compression; write none or gzip",
                    value.trim()
                ),
            }),
        }
    }
}

/// An OpenTelemetry environment variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct EnvError {
    pub variable: &'static str,
    pub message: String,
}

const CA_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
];
const CLIENT_CERT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
];
const CLIENT_KEY_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
];
const COMPRESSION_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
];

/// The first of `names` that `var` has a non-blank value for.
fn first_set(
    var: &impl Fn(&str) -> Option<String>,
    names: [&'static str; 2],
) -> Option<(&'static str, String)> {
    names
        .into_iter()
        .find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
}

/// TLS files for `https://` endpoints, all PEM. The system's CA certificates are always
/// trusted; `ca_file` adds to them (a private CA). A client certificate and its key go together
/// (mutual TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpTls {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl OtlpTls {
    /// From the standard variables, read through `var` (`|name| std::env::var(name).ok()` for
    /// the process environment): `OTEL_EXPORTER_OTLP_CERTIFICATE`,
    /// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY`, each
    /// `OTEL_EXPORTER_OTLP_TRACES_*` variant winning over the general one. Empty values count as
    /// unset. The files are read by [`OtlpClient::new`].
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> OtlpTls {
        let path = |names| first_set(&var, names).map(|(_, v)| PathBuf::from(v.trim()));
        OtlpTls {
            ca_file: path(CA_VARS),
            client_cert_file: path(CLIENT_CERT_VARS),
            client_key_file: path(CLIENT_KEY_VARS),
        }
    }

    fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert_file.is_none() && self.client_key_file.is_none()
    }
}

/// Where and how spans go.
#[derive(Debug, Clone)]
pub struct OtlpTarget {
    /// `http://` or `https://`. For HTTP, a base URL (`/v1/traces` is appended when it has no
    /// path) or the full URL.
    pub endpoint: String,
    pub protocol: Protocol,
    /// For one request, from connecting to the collector's answer.
    pub timeout: Duration,
    /// HTTP headers, or gRPC metadata.
    pub headers: HashMap<String, String>,
    pub compression: Compression,
    /// Used for `https://` endpoints only; setting it for an `http://` endpoint is an error.
    pub tls: OtlpTls,
}

impl Default for OtlpTarget {
    /// gRPC to `http://localhost:4317`, 10 s, no headers, no compression.
    fn default() -> Self {
        OtlpTarget {
            endpoint: Protocol::Grpc.default_endpoint().to_owned(),
            protocol: Protocol::Grpc,
            timeout: Duration::from_secs(10),
            headers: HashMap::new(),
            compression: Compression::None,
            tls: OtlpTls::default(),
        }
    }
}

/// The HTTP traces URL for an endpoint: a bare base gets `/v1/traces`, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` does.
pub fn http_traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, r)| r);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// The collector's answer to a request it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Spans sent minus those rejected.
    pub accepted: usize,
    /// `partial_success.rejected_spans`: spans the collector will not keep. Sending them again
    /// would not change that.
    pub rejected: u64,
    /// `partial_success.error_message`, when the collector gave one (with nothing rejected, a
    /// warning).
    pub message: Option<String>,
}

impl ExportOutcome {
    fn from_response(sent: usize, response: &ExportTraceServiceResponse) -> Self {
        let (rejected, message) = match &response.partial_success {
            Some(p) => (
                u64::try_from(p.rejected_spans).unwrap_or(0),
                Some(p.error_message.clone()).filter(|m| !m.is_empty()),
            ),
            None => (0, None),
        };
        ExportOutcome {
            accepted: sent.saturating_sub(usize::try_from(rejected).unwrap_or(usize::MAX)),
            rejected,
            message,
        }
    }

    fn all(sent: usize) -> Self {
        ExportOutcome {
            accepted: sent,
            rejected: 0,
            message: None,
        }
    }
}

/// At most this much of an HTTP error body goes into an error message.
const ERROR_BODY_BYTES: usize = 300;
/// Replies are small; a larger one is not read to the end.
const MAX_REPLY_BYTES: usize = 1 << 20;
const USER_AGENT: &str = concat!("durable-exporter/", env!("CARGO_PKG_VERSION"));
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The client cannot be made: a bad endpoint or header, or a TLS file that cannot be read
    /// or used. Nothing was sent.
    #[error("cannot build the OTLP client for {endpoint}: {reason}")]
    Build { endpoint: String, reason: String },
    /// No answer: the connection or the TLS handshake failed, or broke.
    #[error("cannot send {count} spans to the OTLP collector at {endpoint}: {message}")]
    Transport {
        endpoint: String,
        count: usize,
        message: String,
    },
    #[error("the OTLP collector at {endpoint} did not answer within {timeout:?} ({count} spans)")]
    Timeout {
        endpoint: String,
        count: usize,
        timeout: Duration,
    },
    /// OTLP/HTTP: an answer other than 2xx.
    #[error(
        "the OTLP collector at {endpoint} answered HTTP {status} to {count} spans: {}",
        or_none(message)
    )]
    Http {
        endpoint: String,
        count: usize,
        status: u16,
        /// The collector's message: a `google.rpc.Status` message, or the body's first 300
        /// bytes.
        message: String,
        retry_after: Option<Duration>,
    },
    /// Requests are signed (AWS SigV4) and no credentials could be had (the provider failed or
    /// did not answer), or the request could not be signed. Nothing was sent.
    #[error("cannot sign the export of {count} spans to {endpoint} with AWS SigV4: {message}")]
    Credentials {
        endpoint: String,
        count: usize,
        message: String,
    },
    /// OTLP/gRPC: a status other than OK.
    #[error("the OTLP collector at {endpoint} answered gRPC {} to {count} spans: {}", grpc_code_name(*code), or_none(message))]
    Grpc {
        endpoint: String,
        count: usize,
        code: tonic::Code,
        message: String,
        retry_after: Option<Duration>,
    },
}

fn or_none(message: &str) -> &str {
    if message.is_empty() {
        "(no message)"
    } else {
        message
    }
}

impl ExportError {
    /// Whether sending the same spans again may succeed, as the OTLP specification says: HTTP
    /// 429, 502, 503 and 504, gRPC UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED,
    /// CANCELLED, OUT_OF_RANGE and DATA_LOSS, no answer at all, and time-outs. Any other answer
    /// means the collector refuses this data for good.
    ///
    /// Beyond the specification, answers that say the exporter is misconfigured, not that the
    /// data is bad, are retryable too: HTTP 401, 403 and 404 and redirects (3xx; redirects are
    /// not followed), gRPC UNAUTHENTICATED, PERMISSION_DENIED and UNIMPLEMENTED. The operator
    /// fixes the credentials or the URL; dropping the spans meanwhile would lose them silently.
    /// A [`ExportError::Build`] error is not retryable: nothing changes until the config does.
    /// Missing credentials ([`ExportError::Credentials`]) are: they expire and come back.
    pub fn retryable(&self) -> bool {
        match self {
            ExportError::Build { .. } => false,
            ExportError::Transport { .. }
            | ExportError::Timeout { .. }
            | ExportError::Credentials { .. } => true,
            ExportError::Http { status, .. } => http_status_retryable(*status),
            ExportError::Grpc { code, .. } => grpc_code_retryable(*code),
        }
    }

    /// How long the collector asked to wait before the next attempt: HTTP `Retry-After` in
    /// seconds, gRPC `google.rpc.RetryInfo` in the status details.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ExportError::Http { retry_after, .. } | ExportError::Grpc { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

fn http_status_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504 | 401 | 403 | 404 | 300..=399)
}

fn grpc_code_retryable(code: tonic::Code) -> bool {
    use tonic::Code as C;
    matches!(
        code,
        C::Unavailable
            | C::ResourceExhausted
            | C::DeadlineExceeded
            | C::Aborted
            | C::Cancelled
            | C::OutOfRange
            | C::DataLoss
            | C::Unauthenticated
            | C::PermissionDenied
            | C::Unimplemented
    )
}

/// The code as gRPC writes it (`UNAVAILABLE`).
fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An error and its sources, each once: `client error (Connect): tcp connect error: ...`.
fn error_chain(e: &dyn std::error::Error) -> String {
    with_sources(e.to_string(), e.source())
}

/// A status made here: its message and the causes (its Display is a debug dump).
fn status_chain(status: &tonic::Status) -> String {
    with_sources(status.message().to_owned(), status.source())
}

fn with_sources(
    mut text: String,
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// At most the first `max` bytes of `bytes`, as text (cut at a character boundary).
fn text_prefix(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let text = match std::str::from_utf8(cut) {
        Ok(s) => s,
        // A character cut in two at the end: drop its first bytes.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&cut[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return String::from_utf8_lossy(cut).trim().to_owned(),
    };
    text.trim().to_owned()
}

/// `google.rpc.Status` and `google.rpc.RetryInfo`, the little of them an error answer needs
/// (public for the tests' receivers, which send what this client reads).
pub mod rpc {
    use std::time::Duration;

    use prost::Message as _;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(message, repeated, tag = "3")]
        pub details: Vec<Any>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        pub retry_delay: Option<RpcDuration>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RpcDuration {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

    impl Any {
        /// A `RetryInfo` detail asking for `delay`.
        pub fn retry_info(delay: Duration) -> Any {
            let info = RetryInfo {
                retry_delay: Some(RpcDuration {
                    seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                    nanos: delay.subsec_nanos() as i32,
                }),
            };
            Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: info.encode_to_vec(),
            }
        }
    }
}
use rpc::{Any as RpcAny, RETRY_INFO_TYPE, RetryInfo, Status as RpcStatus};

/// The delay of a `google.rpc.RetryInfo` among the details, if any.
fn retry_info(details: &[RpcAny]) -> Option<Duration> {
    let any = details.iter().find(|d| d.type_url == RETRY_INFO_TYPE)?;
    let delay = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
    let seconds = u64::try_from(delay.seconds).ok()?;
    let nanos = u32::try_from(delay.nanos).ok()?;
    Some(Duration::from_secs(seconds) + Duration::from_nanos(u64::from(nanos.min(999_999_999))))
}

/// `Retry-After` in seconds (the HTTP-date form is not read: back-off applies then).
fn retry_after_header(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

struct HttpTransport {
    client: HttpsClient,
    uri: http::Uri,
    headers: http::HeaderMap,
}

enum Transport {
    Http(Box<HttpTransport>),
    Grpc {
        channel: tonic::transport::Channel,
        metadata: tonic::metadata::MetadataMap,
    },
}

/// Sends spans to one collector. Cheap to share; requests may run concurrently.
pub struct OtlpClient {
    /// Where requests go, as errors name it (for HTTP, the traces URL).
    endpoint: String,
    timeout: Duration,
    compression: Compression,
    transport: Transport,
    /// Signs every HTTP request (AWS SigV4). Boxed: most clients do not sign.
    signer: Option<Box<Signer>>,
}

impl std::fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpClient")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("sigv4", &self.signer.as_ref().map(|s| s.target()))
            .finish_non_exhaustive()
    }
}

impl OtlpClient {
    /// Checks the target and reads its TLS files. Call it inside a Tokio runtime: the gRPC
    /// channel connects lazily from a background task (nothing is sent until
    /// [`OtlpClient::export`]).
    pub fn new(target: &OtlpTarget) -> Result<Self, ExportError> {
        let endpoint = match target.protocol {
            Protocol::Grpc => target.endpoint.trim_end_matches('/').to_owned(),
            Protocol::HttpProtobuf => http_traces_url(&target.endpoint),
        };
        let build = |reason: String| ExportError::Build {
            endpoint: endpoint.clone(),
            reason,
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| build(format!("not a URL: {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(build(
                    "the endpoint must start with http:// or https://".into(),
                ));
            }
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(build("the endpoint has no host".into()));
        }
        if !https && !target.tls.is_empty() {
            return Err(build(
                "TLS files are set but the endpoint is plain http://; write https:// to use TLS"
                    .into(),
            ));
        }
        let headers = header_map(&target.headers).map_err(build)?;
        let tls = if https {
            Some(TlsFiles::load(&target.tls).map_err(build)?)
        } else {
            None
        };
        let transport = match target.protocol {
            Protocol::HttpProtobuf => {
                let config = match &tls {
                    Some(t) => t.client_config().map_err(build)?,
                    // Never used: every request goes to the http:// URI.
                    None => rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                        .with_safe_default_protocol_versions()
                        .map_err(|e| build(e.to_string()))?
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                };
                let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(target.timeout));
                let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
                let connector = if https {
                    connector.https_only()
                } else {
                    connector.https_or_http()
                };
                let connector = connector.enable_http1().wrap_connector(http);
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector);
                Transport::Http(Box::new(HttpTransport {
                    client,
                    uri,
                    headers,
                }))
            }
            Protocol::Grpc => {
                let mut ep = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| build(error_chain(&e)))?
                    .connect_timeout(target.timeout)
                    .tcp_nodelay(true)
                    .user_agent(USER_AGENT)
                    .map_err(|e| build(error_chain(&e)))?;
                if let Some(t) = &tls {
                    // Checked by building the same rustls config the HTTP client would use:
                    // tonic's own errors do not name the file.
                    t.client_config().map_err(build)?;
                    let mut config = tonic::transport::ClientTlsConfig::new()
                        .trust_anchors(t.roots.roots.clone())
                        .timeout(target.timeout);
                    if let Some(id) = &t.identity {
                        config = config.identity(tonic::transport::Identity::from_pem(
                            &id.cert_pem,
                            &id.key_pem,
                        ));
                    }
                    ep = ep.tls_config(config).map_err(|e| build(error_chain(&e)))?;
                }
                Transport::Grpc {
                    channel: ep.connect_lazy(),
                    metadata: tonic::metadata::MetadataMap::from_headers(headers),
                }
            }
        };
        Ok(OtlpClient {
            endpoint,
            timeout: target.timeout,
            compression: target.compression,
            transport,
            signer: None,
        })
    }

    /// Signs every request with AWS SigV4 from now on. OTLP/HTTP only: a gRPC client is a
    /// build error (X-Ray takes OTLP/HTTP).
    pub fn with_sigv4(mut self, signer: Signer) -> Result<Self, ExportError> {
        if matches!(self.transport, Transport::Grpc { .. }) {
            return Err(ExportError::Build {
                endpoint: self.endpoint,
                reason: "AWS SigV4 signs OTLP/HTTP requests; use the http/protobuf protocol".into(),
            });
        }
        self.signer = Some(Box::new(signer));
        Ok(self)
    }

    /// Where requests go (for HTTP, the traces URL).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends the spans under `resource` in one request and waits for the collector's answer.
    /// No spans: nothing is sent.
    pub async fn export(
        &self,
        resource: &Resource,
        spans: &[Span],
    ) -> Result<ExportOutcome, ExportError> {
        if spans.is_empty() {
            return Ok(ExportOutcome::all(0));
        }
        let body = encode_request(resource, spans);
        // Before the request's own time-out: a provider that does not answer is named as such.
        let credentials = match &self.signer {
            Some(signer) => {
                let fetch = signer.credentials(std::time::SystemTime::now());
                let got = match tokio::time::timeout(self.timeout, fetch).await {
                    Ok(got) => got,
                    Err(_) => Err(format!(
                        "the AWS credential provider did not answer within {:?}",
                        self.timeout
                    )),
                };
                Some(got.map_err(|message| self.credentials_error(spans.len(), message))?)
            }
            None => None,
        };
        let send = async {
            match &self.transport {
                Transport::Http(t) => {
                    let signing = self.signer.as_deref().zip(credentials.as_ref());
                    self.send_http(t, body, spans.len(), signing).await
                }
                Transport::Grpc { channel, metadata } => {
                    self.send_grpc(channel, metadata, body, spans.len()).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(ExportError::Timeout {
                endpoint: self.endpoint.clone(),
                count: spans.len(),
                timeout: self.timeout,
            }),
        }
    }

    fn credentials_error(&self, count: usize, message: String) -> ExportError {
        ExportError::Credentials {
            endpoint: self.endpoint.clone(),
            count,
            message,
        }
    }

    fn transport_error(&self, count: usize, message: String) -> ExportError {
        ExportError::Transport {
            endpoint: self.endpoint.clone(),
            count,
            message,
        }
    }

    async fn send_http(
        &self,
        transport: &HttpTransport,
        body: Vec<u8>,
        count: usize,
        signing: Option<(&Signer, &aws_credential_types::Credentials)>,
    ) -> Result<ExportOutcome, ExportError> {
        use http::header;
        let mut headers = transport.headers.clone();
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        let body = match self.compression {
            Compression::None => body,
            Compression::Gzip => {
                headers.insert(
                    header::CONTENT_ENCODING,
                    http::HeaderValue::from_static("gzip"),
                );
                gzip(&body).map_err(|e| {
                    self.transport_error(count, format!("cannot compress the request: {e}"))
                })?
            }
        };
        // Signed last, over the headers and the bytes that go out.
        if let Some((signer, credentials)) = signing {
            signer
                .sign(
                    credentials,
                    std::time::SystemTime::now(),
                    "POST",
                    &transport.uri.to_string(),
                    &mut headers,
                    &body,
                )
                .map_err(|m| self.credentials_error(count, m))?;
        }
        let mut request = http::Request::post(transport.uri.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.transport_error(count, e.to_string()))?;
        *request.headers_mut() = headers;
        let response = transport
            .client
            .request(request)
            .await
            .map_err(|e| self.transport_error(count, error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_REPLY_BYTES).collect().await;
        if parts.status.is_success() {
            let body = match body {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    // Taken (the status says so), but what was rejected is unknown.
                    tracing::warn!(endpoint = %self.endpoint, error = %error_chain(&*e), "cannot read the collector's reply; counting every span as accepted");
                    return Ok(ExportOutcome::all(count));
                }
            };
            if body.is_empty() || !is_protobuf(&parts.headers) {
                return Ok(ExportOutcome::all(count));
            }
            return match ExportTraceServiceResponse::decode(body) {
                Ok(r) => Ok(ExportOutcome::from_response(count, &r)),
                Err(e) => {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, "the collector's reply is not an ExportTraceServiceResponse; counting every span as accepted");
                    Ok(ExportOutcome::all(count))
                }
            };
        }
        let body = body.map(|b| b.to_bytes()).unwrap_or_default();
        let mut message = http_error_message(&parts.headers, &body);
        if parts.status.is_redirection()
            && let Some(to) = parts.headers.get(header::LOCATION)
        {
            let to = String::from_utf8_lossy(to.as_bytes());
            message = format!("redirected to {to} (not followed; set the endpoint to it)");
        }
        Err(ExportError::Http {
            endpoint: self.endpoint.clone(),
            count,
            status: parts.status.as_u16(),
            message,
            retry_after: retry_after_header(&parts.headers),
        })
    }

    async fn send_grpc(
        &self,
        channel: &tonic::transport::Channel,
        metadata: &tonic::metadata::MetadataMap,
        body: Vec<u8>,
        count: usize,
    ) -> Result<ExportOutcome, ExportError> {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        if self.compression == Compression::Gzip {
            grpc = grpc
                .send_compressed(tonic::codec::CompressionEncoding::Gzip)
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        grpc.ready()
            .await
            .map_err(|e| self.transport_error(count, error_chain(&e)))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = metadata.clone();
        request.set_timeout(self.timeout);
        let path = http::uri::PathAndQuery::from_static(GRPC_EXPORT_PATH);
        match grpc.unary(request, path, PassThrough).await {
            Ok(response) => match response.into_inner() {
                Ok(r) => Ok(ExportOutcome::from_response(count, &r)),
                Err(e) => {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, "the collector's reply is not an ExportTraceServiceResponse; counting every span as accepted");
                    Ok(ExportOutcome::all(count))
                }
            },
            // A status made here (the connection failed or broke) carries its cause; one the
            // collector sent does not.
            Err(status) if status.source().is_some() => {
                Err(self.transport_error(count, status_chain(&status)))
            }
            Err(status) => {
                let retry_after = RpcStatus::decode(status.details())
                    .ok()
                    .and_then(|s| retry_info(&s.details));
                Err(ExportError::Grpc {
                    endpoint: self.endpoint.clone(),
                    count,
                    code: status.code(),
                    message: status.message().to_owned(),
                    retry_after,
                })
            }
        }
    }
}

fn is_protobuf(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // No content type: OTLP/HTTP answers in the request's encoding.
        .is_none_or(|v| v.trim().starts_with("application/x-protobuf"))
}

/// The collector's message in an error answer: a `google.rpc.Status` (protobuf, as OTLP/HTTP
/// asks), else the body's first [`ERROR_BODY_BYTES`] bytes.
fn http_error_message(headers: &http::HeaderMap, body: &[u8]) -> String {
    if !body.is_empty()
        && is_protobuf(headers)
        && let Ok(s) = RpcStatus::decode(body)
        && !s.message.is_empty()
    {
        return text_prefix(s.message.as_bytes(), ERROR_BODY_BYTES);
    }
    text_prefix(body, ERROR_BODY_BYTES)
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    enc.finish()
}

/// The target's headers as HTTP headers (gRPC: metadata); an error names the header, never
/// its value (headers carry secrets).
fn header_map(headers: &HashMap<String, String>) -> Result<http::HeaderMap, String> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("header {k:?} is not a valid header name"))?;
        let value = http::HeaderValue::from_str(v.trim())
            .map_err(|_| format!("the value of header {k:?} is not a valid header value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// The gRPC codec of the Export call: the request is the encoded `ExportTraceServiceRequest`
/// as it is; the reply is decoded (an undecodable reply is a value, not an error: the call
/// succeeded).
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

struct BytesEncoder;
struct ReplyDecoder;

impl tonic::codec::Codec for PassThrough {
    type Encode = Vec<u8>;
    type Decode = Result<ExportTraceServiceResponse, prost::DecodeError>;
    type Encoder = BytesEncoder;
    type Decoder = ReplyDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReplyDecoder
    }
}

impl tonic::codec::Encoder for BytesEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for ReplyDecoder {
    type Item = Result<ExportTraceServiceResponse, prost::DecodeError>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, tonic::Status> {
        Ok(Some(ExportTraceServiceResponse::decode(src)))
    }
}

/// A client certificate chain and its key, as read (PEM).
struct Identity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// What an https:// endpoint is verified with, read and checked.
struct TlsFiles {
    roots: rustls::RootCertStore,
    identity: Option<Identity>,
}

fn pem_certificates(
    what: &str,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let pem = crate::tls::read(what, path)?;
    let certs = crate::tls::certificates(what, &path.display().to_string(), &pem)?;
    Ok((pem, certs))
}

impl TlsFiles {
    fn load(tls: &OtlpTls) -> Result<TlsFiles, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = &tls.ca_file {
            let pem = crate::tls::read("CA file", path)?;
            roots
                .roots
                .extend(crate::tls::roots("CA file", &path.display().to_string(), &pem)?.roots);
        } else if added == 0 {
            let why = native
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(format!(
                "no CA certificate to verify the collector with: the system has none{why} and no CA file is set"
            ));
        }
        let identity = match (&tls.client_cert_file, &tls.client_key_file) {
            (None, None) => None,
            (Some(c), None) => {
                return Err(format!(
                    "the client certificate {} has no key: set the client key file too",
                    c.display()
                ));
            }
            (None, Some(k)) => {
                return Err(format!(
                    "the client key {} has no certificate: set the client certificate file too",
                    k.display()
                ));
            }
            (Some(cert_file), Some(key_file)) => {
                let (cert_pem, chain) = pem_certificates("client certificate", cert_file)?;
                let key_pem = crate::tls::read("client key", key_file)?;
                let key = crate::tls::private_key(
                    "client key",
                    &key_file.display().to_string(),
                    &key_pem,
                )?;
                Some(Identity {
                    cert_pem,
                    key_pem,
                    chain,
                    key,
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                })
            }
        };
        Ok(TlsFiles { roots, identity })
    }

    /// The rustls config (no ALPN: HTTP/1.1); checks that the client key fits its certificate.
    fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(self.roots.clone());
        match &self.identity {
            None => Ok(builder.with_no_client_auth()),
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                        format!(
                            "the client key {} does not match the client certificate {}",
                            id.key_file.display(),
                            id.cert_file.display()
                        )
                    }
                    e => format!(
                        "the client certificate {} and key {} cannot be used: {e}",
                        id.cert_file.display(),
                        id.key_file.display()
                    ),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: &str, protocol: Protocol) -> OtlpTarget {
        OtlpTarget {
            endpoint: endpoint.into(),
            protocol,
            timeout: Duration::from_secs(1),
            ..OtlpTarget::default()
        }
    }

    fn http_error(status: u16, retry_after: Option<Duration>) -> ExportError {
        ExportError::Http {
            endpoint: "http://c:4318/v1/traces".into(),
            count: 7,
            status,
            message: "nope".into(),
            retry_after,
        }
    }

    fn grpc_error(code: tonic::Code) -> ExportError {
        ExportError::Grpc {
            endpoint: "http://c:4317".into(),
            count: 7,
            code,
            message: "nope".into(),
            retry_after: None,
        }
    }

    #[test]
    fn retryable_follows_the_otlp_specification() {
        for s in [429, 502, 503, 504] {
            assert!(http_error(s, None).retryable(), "{s}");
        }
        for s in [400, 413, 415, 422, 500, 501] {
            assert!(!http_error(s, None).retryable(), "{s}");
        }
        use tonic::Code as C;
        for c in [
            C::Unavailable,
            C::ResourceExhausted,
            C::DeadlineExceeded,
            C::Aborted,
            C::Cancelled,
            C::OutOfRange,
            C::DataLoss,
        ] {
            assert!(grpc_error(c).retryable(), "{c:?}");
        }
        for c in [
            C::InvalidArgument,
            C::Internal,
            C::Unknown,
            C::FailedPrecondition,
            C::AlreadyExists,
            C::NotFound,
        ] {
            assert!(!grpc_error(c).retryable(), "{c:?}");
        }
        let t = ExportError::Transport {
            endpoint: "e".into(),
            count: 1,
            message: "refused".into(),
        };
        assert!(t.retryable());
        let t = ExportError::Timeout {
            endpoint: "e".into(),
            count: 1,
            timeout: Duration::from_secs(1),
        };
        assert!(t.retryable());
        let b = ExportError::Build {
            endpoint: "e".into(),
            reason: "bad".into(),
        };
        assert!(!b.retryable());
    }

    #[test]
    fn misconfiguration_answers_are_retried_not_dropped() {
        for s in [401, 403, 404, 301, 307, 308] {
            assert!(http_error(s, None).retryable(), "{s}");
        }
        use tonic::Code as C;
        for c in [C::Unauthenticated, C::PermissionDenied, C::Unimplemented] {
            assert!(grpc_error(c).retryable(), "{c:?}");
        }
    }

    #[test]
    fn messages_name_the_endpoint_the_count_the_status_and_the_message() {
        let e = http_error(400, None).to_string();
        assert_eq!(
            e,
            "the OTLP collector at http://c:4318/v1/traces answered HTTP 400 to 7 spans: nope"
        );
        let e = grpc_error(tonic::Code::InvalidArgument).to_string();
        assert_eq!(
            e,
            "the OTLP collector at http://c:4317 answered gRPC INVALID_ARGUMENT to 7 spans: nope"
        );
    }

    #[test]
    fn retry_after_comes_from_the_header_or_retry_info() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after_header(&h), Some(Duration::from_secs(7)));
        h.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_header(&h), None);
        assert_eq!(
            http_error(503, Some(Duration::from_secs(3))).retry_after(),
            Some(Duration::from_secs(3))
        );

        let details = vec![
            RpcAny {
                type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                value: vec![1, 2, 3],
            },
            RpcAny::retry_info(Duration::from_millis(2500)),
        ];
        assert_eq!(retry_info(&details), Some(Duration::from_millis(2500)));
        assert_eq!(retry_info(&details[..1]), None);
    }

    #[test]
    fn http_error_bodies_are_cut_and_statuses_read() {
        let long = "é".repeat(400);
        let m = http_error_message(&http::HeaderMap::new(), long.as_bytes());
        assert!(
            m.len() <= ERROR_BODY_BYTES && m.len() >= ERROR_BODY_BYTES - 1,
            "{}",
            m.len()
        );
        assert!(m.chars().all(|c| c == 'é'));

        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            "application/x-protobuf".parse().unwrap(),
        );
        let status = RpcStatus {
            code: 3,
            message: "bad span id".into(),
            details: vec![],
        };
        assert_eq!(
            http_error_message(&h, &status.encode_to_vec()),
            "bad span id"
        );
        h.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(http_error_message(&h, b"  overloaded\n"), "overloaded");
    }

    #[test]
    fn outcomes_from_partial_success() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let r = |rejected_spans, msg: &str| ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans,
                error_message: msg.into(),
            }),
        };
        assert_eq!(
            ExportOutcome::from_response(10, &r(3, "too old")),
            ExportOutcome {
                accepted: 7,
                rejected: 3,
                message: Some("too old".into())
            }
        );
        assert_eq!(
            ExportOutcome::from_response(2, &r(5, "")),
            ExportOutcome {
                accepted: 0,
                rejected: 5,
                message: None
            }
        );
        assert_eq!(
            ExportOutcome::from_response(4, &r(-1, "")),
            ExportOutcome::all(4)
        );
        assert_eq!(
            ExportOutcome::from_response(4, &ExportTraceServiceResponse::default()),
            ExportOutcome::all(4)
        );
    }

    #[test]
    fn http_urls() {
        assert_eq!(
            http_traces_url("http://localhost:4318"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("http://localhost:4318/"),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            http_traces_url("https://c.example/otlp/v1/traces"),
            "https://c.example/otlp/v1/traces"
        );
    }

    #[test]
    fn the_traces_variables_win_and_empty_ones_are_unset() {
        let env: HashMap<&str, &str> = [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/general/ca.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "/general/client.pem",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "  "),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/general/client.key"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP"),
        ]
        .into_iter()
        .collect();
        let var = |n: &str| env.get(n).map(|v| v.to_string());
        assert_eq!(
            OtlpTls::from_env(var),
            OtlpTls {
                ca_file: Some("/traces/ca.pem".into()),
                client_cert_file: Some("/general/client.pem".into()),
                client_key_file: Some("/general/client.key".into()),
            }
        );
        assert_eq!(Compression::from_env(var), Ok(Some(Compression::Gzip)));
        assert_eq!(OtlpTls::from_env(|_| None), OtlpTls::default());
        assert_eq!(Compression::from_env(|_| None), Ok(None));
        let bad = Compression::from_env(|n| {
            (n == "OTEL_EXPORTER_OTLP_COMPRESSION").then(|| "zstd".to_owned())
        });
        assert_eq!(
            bad.unwrap_err().to_string(),
            "OTEL_EXPORTER_OTLP_COMPRESSION: \"zstd\" is not a compression; write none or gzip"
        );
    }

    fn build_error(t: &OtlpTarget) -> String {
        match OtlpClient::new(t) {
            Err(e @ ExportError::Build { .. }) => e.to_string(),
            other => panic!("expected a build error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn both_protocols_build_for_http_and_https() {
        for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
            for endpoint in ["http://127.0.0.1:4317", "https://collector.example:4317"] {
                let built = OtlpClient::new(&target(endpoint, protocol));
                assert!(built.is_ok(), "{endpoint} {protocol:?}: {:?}", built.err());
            }
        }
        let c = OtlpClient::new(&target("http://c:4318", Protocol::HttpProtobuf)).unwrap();
        assert_eq!(c.endpoint(), "http://c:4318/v1/traces");
        // Nothing to send: no request, no error even though nothing listens there.
        let none = c
            .export(&Resource { attributes: vec![] }, &[])
            .await
            .unwrap();
        assert_eq!(none, ExportOutcome::all(0));
    }

    #[tokio::test]
    async fn bad_endpoints_and_headers_are_build_errors() {
        let e = build_error(&target("localhost:4317", Protocol::Grpc));
        assert!(e.contains("http:// or https://"), "{e}");
        let mut t = target("http://c:4317", Protocol::Grpc);
        t.headers.insert("bad header".into(), "secret-value".into());
        let e = build_error(&t);
        assert!(
            e.contains("\"bad header\"") && !e.contains("secret-value"),
            "{e}"
        );
        let mut t = target("http://c:4318", Protocol::HttpProtobuf);
        t.tls.ca_file = Some("/ca.pem".into());
        let e = build_error(&t);
        assert!(e.contains("plain http://"), "{e}");
    }

    /// A CA and a client certificate it signed, in a temporary directory.
    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca.distinguished_name
                .push(rcgen::DnType::CommonName, "unit test CA");
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca, ca_key);
            let client_key = rcgen::KeyPair::generate().unwrap();
            let client = rcgen::CertificateParams::new(vec!["client".to_owned()])
                .unwrap()
                .signed_by(&client_key, &issuer)
                .unwrap();
            let other_key = rcgen::KeyPair::generate().unwrap();
            let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
            w("ca.pem", &ca_cert.pem());
            w("client.pem", &client.pem());
            w("client.key", &client_key.serialize_pem());
            w("other.key", &other_key.serialize_pem());
            w("empty.pem", "no PEM here\n");
            Pki { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn target(&self, protocol: Protocol, ca: &str, cert: &str, key: &str) -> OtlpTarget {
            let file = |n: &str| (!n.is_empty()).then(|| self.path(n));
            OtlpTarget {
                tls: OtlpTls {
                    ca_file: file(ca),
                    client_cert_file: file(cert),
                    client_key_file: file(key),
                },
                ..target("https://127.0.0.1:4317", protocol)
            }
        }
    }

    #[tokio::test]
    async fn tls_files_are_checked_when_the_client_is_built() {
        let pki = Pki::new();
        for p in [Protocol::Grpc, Protocol::HttpProtobuf] {
            let ok = OtlpClient::new(&pki.target(p, "ca.pem", "client.pem", "client.key"));
            assert!(ok.is_ok(), "{p:?}: {:?}", ok.err());

            let e = build_error(&pki.target(p, "missing.pem", "", ""));
            assert!(
                e.contains("cannot read the CA file") && e.contains("missing.pem"),
                "{e}"
            );
            let e = build_error(&pki.target(p, "empty.pem", "", ""));
            assert!(
                e.contains("CA file") && e.contains("empty.pem") && e.contains("no certificate"),
                "{e}"
            );
            // A key where a certificate belongs.
            let e = build_error(&pki.target(p, "", "client.key", "client.key"));
            assert!(
                e.contains("client certificate") && e.contains("no certificate"),
                "{e}"
            );
            let e = build_error(&pki.target(p, "", "client.pem", "client.pem"));
            assert!(
                e.contains("client key")
                    && e.contains("client.pem")
                    && e.contains("no private key"),
                "{e}"
            );
            let e = build_error(&pki.target(p, "", "client.pem", "other.key"));
            assert!(
                e.contains("other.key") && e.contains("does not match") && e.contains("client.pem"),
                "{e}"
            );
            let e = build_error(&pki.target(p, "", "client.pem", ""));
            assert!(e.contains("has no key"), "{e}");
            let e = build_error(&pki.target(p, "", "", "client.key"));
            assert!(e.contains("has no certificate"), "{e}");
        }
    }
}
