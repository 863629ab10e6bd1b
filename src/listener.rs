//! The daemon's HTTP listeners, hardened the way Prometheus exporters are: TLS and basic auth
//! from an exporter-toolkit web-config file ([`WebConfig`]), a bearer token for the run-time API,
//! and limits that a hostile client cannot get around: open connections, the time to send the
//! headers, the time per request, the body size, the TLS handshake.
//!
//! The web config is the one node_exporter reads (`--web.config.file`): `tls_server_config`
//! (`cert_file`/`key_file` or inline `cert`/`key`, `client_auth_type`, `client_ca_file` or
//! `client_ca`, `min_version`, `max_version`), `http_server_config` (`headers`, `http2`) and
//! `basic_auth_users` (bcrypt hashes). Relative paths are relative to the web config's folder.
//! What rustls cannot honour faithfully (`cipher_suites`, `curve_preferences`,
//! `prefer_server_cipher_suites`, `client_allowed_sans`, `rate_limit`, and the client-auth
//! types that accept unverified certificates) is refused with the reason, never ignored.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::config::ConfigError;

/// A client that has not sent its request headers in this long is disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request that has not been answered in this long gets 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake that has not finished in this long is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections per listener; beyond it, a new connection is closed as soon as it is
/// accepted. Left waiting in the kernel's backlog instead, a flood of slow clients would queue
/// every later client (a health probe too) behind a header timeout per this many connections.
pub const MAX_CONNECTIONS: usize = 256;
/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The connection limit is logged at most this often (a flood would fill the log).
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long open connections may take to finish at shutdown.
pub const DRAIN: Duration = Duration::from_secs(5);
/// At most this many accepted credentials are remembered (a bcrypt check costs milliseconds
/// of CPU; without the cache every request would pay it).
const AUTH_CACHE: usize = 1024;

// ---------------------------------------------------------------------------------------------
// The web-config file.

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct WebConfigFile {
    tls_server_config: Option<TlsServerFile>,
    http_server_config: HttpServerFile,
    basic_auth_users: BTreeMap<String, String>,
    rate_limit: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct TlsServerFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    prefer_server_cipher_suites: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct HttpServerFile {
    /// Accepted for compatibility; the listeners speak HTTP/1.1.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: BTreeMap<String, String>,
}

/// The response headers exporter-toolkit allows, and the values it accepts (None: any).
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

/// A loaded and checked web config.
#[derive(Clone)]
pub struct WebConfig {
    pub path: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// User → bcrypt hash.
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebConfig {
    /// Reads and checks the file: certificates and keys parse and fit together, hashes are
    /// bcrypt. Errors name the file and the key.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let file: WebConfigFile = crate::config::load_yaml_file(
            path,
            "tls_server_config, http_server_config, basic_auth_users",
        )?;
        let err = |key: &str, message: String| ConfigError {
            file: Some(path.to_path_buf()),
            key: Some(key.to_owned()),
            message,
        };
        if file.rate_limit.is_some() {
            return Err(err(
                "rate_limit",
                "is not supported; the listeners cap open connections and request times instead"
                    .into(),
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match file.tls_server_config {
            Some(t) => {
                Some(Arc::new(server_config(&t, dir).map_err(|(k, m)| {
                    err(&format!("tls_server_config.{k}"), m)
                })?))
            }
            None => None,
        };
        for (user, hash) in &file.basic_auth_users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(err(
                    &format!("basic_auth_users.{user}"),
                    "is not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
                        .into(),
                ));
            }
        }
        let mut headers = Vec::new();
        for (name, value) in &file.http_server_config.headers {
            let key = format!("http_server_config.headers.{name}");
            let Some((canonical, allowed)) = ALLOWED_HEADERS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            else {
                return Err(err(
                    &key,
                    format!(
                        "is not a header the web config may set; it may set {}",
                        ALLOWED_HEADERS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            if value.trim().is_empty() {
                continue;
            }
            if let Some(allowed) = allowed
                && !allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim()))
            {
                return Err(err(&key, format!("must be one of {}", allowed.join(", "))));
            }
            let v = HeaderValue::from_str(value.trim())
                .map_err(|_| err(&key, "is not a valid header value".into()))?;
            let name = HeaderName::from_bytes(canonical.to_ascii_lowercase().as_bytes())
                .expect("the allowed headers are valid names");
            headers.push((name, v));
        }
        Ok(WebConfig {
            path: path.to_path_buf(),
            tls,
            users: file.basic_auth_users,
            headers,
        })
    }

    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn basic_auth(&self) -> bool {
        !self.users.is_empty()
    }
}

/// The rustls server config of a `tls_server_config`; an error is (key, message).
fn server_config(t: &TlsServerFile, dir: &Path) -> Result<rustls::ServerConfig, (String, String)> {
    let e = |k: &str, m: String| (k.to_owned(), m);
    for (key, set) in [
        ("cipher_suites", t.cipher_suites.is_some()),
        ("curve_preferences", t.curve_preferences.is_some()),
        (
            "prefer_server_cipher_suites",
            t.prefer_server_cipher_suites.is_some(),
        ),
        ("client_allowed_sans", t.client_allowed_sans.is_some()),
    ] {
        if set {
            return Err(e(
                key,
                "is not supported (rustls offers only its own modern suites and curves); remove it"
                    .into(),
            ));
        }
    }
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    // Inline PEM or a file, exactly one of the two.
    let pem =
        |inline: &Option<String>, file: &Option<PathBuf>, key: &str, file_key: &str, what: &str| {
            match (inline, file) {
                (Some(_), Some(_)) => Err(e(key, format!("and {file_key} are both set; give one"))),
                (Some(text), None) => {
                    Ok(Some((format!("(inline {key})"), text.clone().into_bytes())))
                }
                (None, Some(path)) => {
                    let path = resolve(path);
                    crate::tls::read(what, &path)
                        .map(|b| Some((path.display().to_string(), b)))
                        .map_err(|m| e(file_key, m))
                }
                (None, None) => Ok(None),
            }
        };
    let Some((cert_origin, cert_pem)) =
        pem(&t.cert, &t.cert_file, "cert", "cert_file", "certificate")?
    else {
        return Err(e(
            "cert_file",
            "missing; TLS needs the server's certificate".into(),
        ));
    };
    let Some((key_origin, key_pem)) = pem(&t.key, &t.key_file, "key", "key_file", "key")? else {
        return Err(e(
            "key_file",
            "missing; TLS needs the server's private key".into(),
        ));
    };
    let chain = crate::tls::certificates("certificate", &cert_origin, &cert_pem)
        .map_err(|m| e("cert_file", m))?;
    let key =
        crate::tls::private_key("key", &key_origin, &key_pem).map_err(|m| e("key_file", m))?;

    let version = |v: &Option<String>, key: &str, default| -> Result<u8, (String, String)> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some("TLS12") => Ok(12),
            Some("TLS13") => Ok(13),
            Some("TLS10" | "TLS11") => Err(e(
                key,
                "TLS 1.0 and 1.1 are not supported; use TLS12 or TLS13".into(),
            )),
            Some(other) => Err(e(
                key,
                format!("unknown TLS version {other:?}; use TLS12 or TLS13"),
            )),
        }
    };
    let min = version(&t.min_version, "min_version", 12)?;
    let max = version(&t.max_version, "max_version", 13)?;
    if min > max {
        return Err(e("min_version", "is above max_version".into()));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let client_ca = pem(
        &t.client_ca,
        &t.client_ca_file,
        "client_ca",
        "client_ca_file",
        "client CA file",
    )?;
    let auth = t
        .client_auth_type
        .as_deref()
        .map(str::trim)
        .unwrap_or("NoClientCert");
    let verifier = match (auth, client_ca) {
        ("NoClientCert", None) => None,
        ("NoClientCert", Some(_)) => {
            return Err(e(
                "client_auth_type",
                "is NoClientCert, yet a client CA is set; set VerifyClientCertIfGiven or RequireAndVerifyClientCert".into(),
            ));
        }
        ("RequestClientCert" | "RequireAnyClientCert", _) => {
            return Err(e(
                "client_auth_type",
                format!(
                    "{auth} accepts client certificates without verifying them; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
                ),
            ));
        }
        ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert", None) => {
            return Err(e(
                "client_ca_file",
                format!("missing; {auth} needs the CA that signs client certificates"),
            ));
        }
        (
            kind @ ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert"),
            Some((origin, pem)),
        ) => {
            let roots = crate::tls::roots("client CA file", &origin, &pem)
                .map_err(|m| e("client_ca_file", m))?;
            let b = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                crate::tls::provider(),
            );
            let b = if kind == "VerifyClientCertIfGiven" {
                b.allow_unauthenticated()
            } else {
                b
            };
            Some(b.build().map_err(|x| e("client_ca_file", x.to_string()))?)
        }
        (other, _) => {
            return Err(e(
                "client_auth_type",
                format!(
                    "unknown client auth type {other:?}; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ),
            ));
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&versions)
        .map_err(|x| e("min_version", x.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|x| match x {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => e(
            "key_file",
            format!("{key_origin} does not match the certificate {cert_origin}"),
        ),
        x => e(
            "cert_file",
            format!("{cert_origin} and {key_origin} cannot be used: {x}"),
        ),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// Who may use a listener.

/// What one listener requires of a request. Replaced as a whole on reload (SIGHUP).
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub web: Option<WebConfig>,
    /// `Authorization: Bearer <token>` (the run-time API's `api.token_file`).
    pub token: Option<String>,
    /// Paths answered without credentials (health probes).
    pub open_paths: &'static [&'static str],
}

/// What a listener counts with (`durable_exporter_http_*`).
#[derive(Debug, Clone, Default)]
pub struct ListenerStats {
    pub open_connections: prometheus_client::metrics::gauge::Gauge,
    pub rejected_requests: prometheus_client::metrics::counter::Counter,
    pub tls_failures: prometheus_client::metrics::counter::Counter,
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    pub refused_connections: prometheus_client::metrics::counter::Counter,
}

#[derive(Clone)]
struct Guard {
    access: watch::Receiver<Access>,
    stats: ListenerStats,
    /// sha256(user, password, hash) of credentials already checked.
    accepted: Arc<Mutex<HashMap<[u8; 32], ()>>>,
}

/// A well-formed bcrypt hash of a random password: unknown users cost the same time as known
/// ones (no user enumeration by timing).
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

impl Guard {
    /// None when the request may pass; else what the 401 says.
    async fn check(&self, path: &str, auth: &str) -> Option<&'static str> {
        let access = self.access.borrow().clone();
        if access.open_paths.contains(&path) {
            return None;
        }
        let users = access
            .web
            .as_ref()
            .map(|w| &w.users)
            .filter(|u| !u.is_empty());
        if access.token.is_none() && users.is_none() {
            return None;
        }
        let (scheme, credentials) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(token) = &access.token {
                // Compared as digests: no timing difference by length or by prefix.
                if digest(&[credentials.trim().as_bytes()]) == digest(&[token.as_bytes()]) {
                    return None;
                }
            }
            return Some("invalid bearer token");
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Some(users) = users else {
                return Some("basic auth is not configured on this listener");
            };
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Some("malformed basic credentials");
            };
            let hash = users.get(user).cloned();
            let key = digest(&[
                user.as_bytes(),
                password.as_bytes(),
                hash.as_deref().unwrap_or("").as_bytes(),
            ]);
            if hash.is_some()
                && self
                    .accepted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&key)
            {
                return None;
            }
            let password = password.to_owned();
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
            // bcrypt is slow on purpose: off the async threads.
            let ok = tokio::task::spawn_blocking(move || {
                bcrypt::verify(password, &hash).unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            if ok && known {
                let mut cache = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= AUTH_CACHE {
                    cache.clear();
                }
                cache.insert(key, ());
                return None;
            }
            return Some("invalid user or password");
        }
        Some("credentials required")
    }
}

async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let headers = g
        .access
        .borrow()
        .web
        .as_ref()
        .map(|w| w.headers.clone())
        .unwrap_or_default();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let verdict = g.check(req.uri().path(), &auth).await;
    let mut response = match verdict {
        None => next.run(req).await,
        Some(why) => {
            g.stats.rejected_requests.inc();
            let access = g.access.borrow().clone();
            let mut challenges = Vec::new();
            if access.token.is_some() {
                challenges.push("Bearer");
            }
            if access.web.as_ref().is_some_and(WebConfig::basic_auth) {
                challenges.push("Basic realm=\"durable-exporter\"");
            }
            let mut r = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "error": why })),
            )
                .into_response();
            for c in challenges {
                r.headers_mut()
                    .append(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
            r
        }
    };
    for (n, v) in headers {
        response.headers_mut().insert(n, v);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Serving.

/// Until `shutdown` turns true (the borrow is not held across the wait).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// A bound listener and what it serves.
pub struct Listener {
    pub name: &'static str,
    pub tcp: tokio::net::TcpListener,
    pub router: Router,
    pub access: watch::Receiver<Access>,
    pub stats: ListenerStats,
}

impl Listener {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }

    /// Serves until `shutdown` turns true, then lets open requests finish for up to [`DRAIN`].
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) {
        use hyper_util::rt::{TokioIo, TokioTimer};
        let Listener {
            name,
            tcp,
            router,
            access,
            stats,
        } = self;
        let guard_state = Guard {
            access: access.clone(),
            stats: stats.clone(),
            accepted: Arc::default(),
        };
        let app = router
            .layer(axum::middleware::from_fn_with_state(guard_state, guard))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(
                MAX_BODY_BYTES,
            ))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ));
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        // When the limit was last logged (at most every LIMIT_LOG_EVERY under a flood).
        let mut limit_logged: Option<tokio::time::Instant> = None;
        loop {
            let (stream, peer) = tokio::select! {
                a = tcp.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait a moment instead of spinning.
                        tracing::warn!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = stopped(&mut shutdown) => break,
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                stats.refused_connections.inc();
                if limit_logged.is_none_or(|at| at.elapsed() >= LIMIT_LOG_EVERY) {
                    limit_logged = Some(tokio::time::Instant::now());
                    tracing::warn!(
                        listener = name,
                        %peer,
                        max_connections = MAX_CONNECTIONS,
                        refused_so_far = stats.refused_connections.get(),
                        "connection limit reached: new connections are closed until some end"
                    );
                }
                drop(stream);
                continue;
            };
            let tls = access.borrow().web.as_ref().and_then(|w| w.tls.clone());
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let watcher = graceful.watcher();
            let stats = stats.clone();
            stats.open_connections.inc();
            tokio::spawn(async move {
                let _permit = permit;
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(64 * 1024);
                match tls {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        let _ = watcher.watch(conn).await;
                    }
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => {
                                let conn = http.serve_connection(TokioIo::new(tls), service);
                                let _ = watcher.watch(conn).await;
                            }
                            Ok(Err(e)) => {
                                stats.tls_failures.inc();
                                tracing::debug!(listener = name, %peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                stats.tls_failures.inc();
                                tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                            }
                        }
                    }
                }
                stats.open_connections.dec();
            });
        }
        drop(tcp);
        if tokio::time::timeout(DRAIN, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::debug!(
                listener = name,
                "connections still open after the drain time"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Probing (the container's HEALTHCHECK, which has no curl).

/// How `probe` reaches a listener that serves TLS.
#[derive(Debug, Clone, Default)]
pub struct ProbeTls {
    /// CA certificates to trust (PEM); None: the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for `RequireAndVerifyClientCert`.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate must carry; None: the address's host.
    pub server_name: Option<String>,
}

/// GET `path` on `addr` (blocking, `timeout` for each step), `host` as the Host header
/// (`host:port`); the status line of the answer.
pub fn probe(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    tls: Option<&ProbeTls>,
    timeout: Duration,
) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    let mut tcp =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    match tls {
        None => {
            tcp.write_all(request.as_bytes())
                .map_err(|e| e.to_string())?;
            tcp.read_to_end(&mut answer).map_err(|e| e.to_string())?;
        }
        Some(t) => {
            let config = probe_client_config(t)?;
            let name = t.server_name.clone().unwrap_or_else(|| {
                let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
                h.trim_matches(['[', ']']).to_owned()
            });
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| format!("{name:?} is not a server name"))?;
            let conn =
                rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream
                .write_all(request.as_bytes())
                .map_err(|e| e.to_string())?;
            // A server that closes without close_notify still answered.
            match stream.read_to_end(&mut answer) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    let text = String::from_utf8_lossy(&answer);
    Ok(text.lines().next().unwrap_or("no answer").to_owned())
}

fn probe_client_config(t: &ProbeTls) -> Result<rustls::ClientConfig, String> {
    let roots = match &t.ca_file {
        Some(path) => crate::tls::roots(
            "CA file",
            &path.display().to_string(),
            &crate::tls::read("CA file", path)?,
        )?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match &t.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = crate::tls::certificates(
                "client certificate",
                &cert.display().to_string(),
                &crate::tls::read("client certificate", cert)?,
            )?;
            let key = crate::tls::private_key(
                "client key",
                &key.display().to_string(),
                &crate::tls::read("client key", key)?,
            )?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())
        }
    }
}
