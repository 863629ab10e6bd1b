//! In-process OTLP receivers on 127.0.0.1: gRPC (tonic, opentelemetry-proto's TraceService) and
//! HTTP/protobuf (axum, POST /v1/traces). Each keeps every request it took. [`Answer`] makes
//! one reject spans (partial success), refuse requests (an HTTP status or gRPC code), demand
//! TLS or mutual TLS (certificates from [`TestPki`], made with rcgen), or take gzip.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use tokio::sync::oneshot;

/// Requests a receiver got, in arrival order.
pub type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// How a receiver answers.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Take each request but answer `partial_success`: this many of its spans rejected (at
    /// most as many as it held), with this message.
    pub reject: Option<(i64, String)>,
    /// HTTP receiver: refuse each request with this status and body text.
    pub http_status: Option<(u16, String)>,
    /// gRPC receiver: refuse each request with this code and message.
    pub grpc_status: Option<(tonic::Code, String)>,
    /// With a refusal: `Retry-After` seconds (HTTP) or a `google.rpc.RetryInfo` delay (gRPC).
    pub retry_after_secs: Option<i64>,
    /// Serve TLS with this certificate (and demand client certificates when it says so).
    pub tls: Option<ServerTls>,
    /// gRPC receiver: take gzip-compressed requests (tonic refuses them otherwise).
    pub accept_gzip: bool,
}

/// A server certificate and key (PEM), and the CA client certificates must chain to for mutual
/// TLS.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

/// What a receiver saw of one request it took.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// HTTP `Content-Encoding`, gRPC `grpc-encoding`.
    pub encoding: Option<String>,
    pub user_agent: Option<String>,
    /// Spans answered as rejected.
    pub rejected: i64,
}

#[derive(Clone, Default)]
struct Shared {
    received: Received,
    meta: Arc<Mutex<Vec<Meta>>>,
    /// Every request that reached the service, taken or refused.
    attempts: Arc<AtomicUsize>,
    rejected: Arc<AtomicU64>,
}

impl Shared {
    /// Keeps a request taken; the response's partial success, if `answer` rejects.
    fn take(
        &self,
        answer: &Answer,
        req: ExportTraceServiceRequest,
        mut meta: Meta,
    ) -> ExportTraceServiceResponse {
        let spans: usize = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let partial_success = answer.reject.as_ref().map(|(n, message)| {
            let rejected = (*n).min(spans as i64);
            ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message.clone(),
            }
        });
        meta.rejected = partial_success.as_ref().map_or(0, |p| p.rejected_spans);
        self.rejected
            .fetch_add(meta.rejected as u64, Ordering::SeqCst);
        self.received.lock().unwrap().push(req);
        self.meta.lock().unwrap().push(meta);
        ExportTraceServiceResponse { partial_success }
    }
}

/// A running receiver; dropping it stops the server.
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Received,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.received.lock().unwrap().clone()
    }

    /// What it saw of each request it took.
    pub fn meta(&self) -> Vec<Meta> {
        self.shared.meta.lock().unwrap().clone()
    }

    /// Requests that reached the service (past TLS), taken or refused.
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    /// Spans answered as rejected, over all requests.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::SeqCst)
    }
}

use durable_exporter::otlp::rpc;

#[derive(Clone)]
struct Grpc {
    shared: Shared,
    answer: Answer,
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.shared.attempts.fetch_add(1, Ordering::SeqCst);
        let text = |k: &str| {
            request
                .metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let meta = Meta {
            encoding: text("grpc-encoding"),
            user_agent: text("user-agent"),
            rejected: 0,
        };
        if let Some((code, message)) = &self.answer.grpc_status {
            let details = rpc::Status {
                code: *code as i32,
                message: message.clone(),
                details: self
                    .answer
                    .retry_after_secs
                    .map(|s| {
                        rpc::Any::retry_info(std::time::Duration::from_secs(
                            u64::try_from(s).unwrap_or(0),
                        ))
                    })
                    .into_iter()
                    .collect(),
            };
            return Err(tonic::Status::with_details(
                *code,
                message.clone(),
                details.encode_to_vec().into(),
            ));
        }
        let response = self.shared.take(&self.answer, request.into_inner(), meta);
        Ok(tonic::Response::new(response))
    }
}

/// Starts an OTLP/gRPC receiver on a free port.
pub async fn grpc() -> Receiver {
    grpc_with(Answer::default()).await
}

/// Starts an OTLP/gRPC receiver on the given address (a collector that comes up late).
pub async fn grpc_on(addr: SocketAddr) -> Receiver {
    grpc_serve(addr, Answer::default()).await
}

/// Starts an OTLP/gRPC receiver answering as told, on a free port.
pub async fn grpc_with(answer: Answer) -> Receiver {
    grpc_serve("127.0.0.1:0".parse().unwrap(), answer).await
}

async fn grpc_serve(addr: SocketAddr, answer: Answer) -> Receiver {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Shared::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut service = TraceServiceServer::new(Grpc {
        shared: shared.clone(),
        answer: answer.clone(),
    });
    if answer.accept_gzip {
        service = service.accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &answer.tls {
        let mut config = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem),
        );
        if let Some(ca) = &tls.client_ca_pem {
            // Client certificates required (client_auth_optional stays false).
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config).unwrap();
    }
    tokio::spawn(async move {
        builder
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .unwrap();
    });
    Receiver {
        addr,
        received: shared.received.clone(),
        shared,
        _stop: stop,
    }
}

/// Starts an OTLP/HTTP (protobuf) receiver on a free port.
pub async fn http() -> Receiver {
    http_with(Answer::default()).await
}

/// A TCP listener whose connections are TLS (rustls), handshakes done in `accept`; a
/// failed handshake (no client certificate, an unknown CA) drops that connection.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), handshake).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn rustls_server_config(tls: &ServerTls) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match &tls.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(chain, key).unwrap()
}

/// Starts an OTLP/HTTP (protobuf) receiver answering as told, on a free port. It takes
/// `Content-Encoding: gzip` bodies.
pub async fn http_with(answer: Answer) -> Receiver {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::post;

    async fn traces(
        State((shared, answer)): State<(Shared, Answer)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        shared.attempts.fetch_add(1, Ordering::SeqCst);
        let mut out = HeaderMap::new();
        out.insert(
            header::CONTENT_TYPE,
            "application/x-protobuf".parse().unwrap(),
        );
        let text = |h| {
            headers
                .get(h)
                .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let ct = text(header::CONTENT_TYPE).unwrap_or_default();
        if ct != "application/x-protobuf" {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, out, Vec::new());
        }
        if let Some((status, body)) = &answer.http_status {
            out.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
            if let Some(s) = answer.retry_after_secs {
                out.insert(header::RETRY_AFTER, s.to_string().parse().unwrap());
            }
            return (
                StatusCode::from_u16(*status).unwrap(),
                out,
                body.clone().into_bytes(),
            );
        }
        let encoding = text(header::CONTENT_ENCODING);
        let body = match encoding.as_deref() {
            None => body.to_vec(),
            Some("gzip") => {
                use std::io::Read as _;
                let mut plain = Vec::new();
                if flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut plain)
                    .is_err()
                {
                    return (StatusCode::BAD_REQUEST, out, Vec::new());
                }
                plain
            }
            Some(_) => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, out, Vec::new()),
        };
        match ExportTraceServiceRequest::decode(body.as_slice()) {
            Ok(req) => {
                let meta = Meta {
                    encoding,
                    user_agent: text(header::USER_AGENT),
                    rejected: 0,
                };
                let resp = shared.take(&answer, req, meta);
                (StatusCode::OK, out, resp.encode_to_vec())
            }
            Err(_) => (StatusCode::BAD_REQUEST, out, Vec::new()),
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state((shared.clone(), answer.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    match &answer.tls {
        None => {
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
            });
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(rustls_server_config(tls)));
            let listener = TlsListener {
                tcp: listener,
                acceptor,
            };
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                    .unwrap();
            });
        }
    }
    Receiver {
        addr,
        received: shared.received.clone(),
        shared,
        _stop: stop,
    }
}

/// A test CA, a server certificate it signed for `localhost` and 127.0.0.1, a client
/// certificate it signed, and a second CA that signed nothing here; all PEM, also written to
/// files in a temporary directory.
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// A client certificate from another CA, which the receiver does not trust.
    pub stranger_cert_pem: String,
    pub stranger_key_pem: String,
    pub dir: tempfile::TempDir,
}

impl TestPki {
    pub fn new() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = p.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(p, key))
        };
        let leaf =
            |issuer: &Issuer<'_, KeyPair>, names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
                let key = KeyPair::generate().unwrap();
                let mut p = CertificateParams::new(names.clone()).unwrap();
                p.distinguished_name
                    .push(DnType::CommonName, names[0].clone());
                p.extended_key_usages = vec![usage];
                let cert = p.signed_by(&key, issuer).unwrap();
                (cert.pem(), key.serialize_pem())
            };
        let (ca_pem, issuer) = ca("durable-exporter test CA");
        let (server_cert_pem, server_key_pem) = leaf(
            &issuer,
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert_pem, client_key_pem) = leaf(
            &issuer,
            vec!["durable-exporter-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (_, other) = ca("another CA");
        let (stranger_cert_pem, stranger_key_pem) = leaf(
            &other,
            vec!["stranger".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki {
            ca_pem,
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            stranger_cert_pem,
            stranger_key_pem,
            dir,
        };
        for (name, text) in [
            ("ca.pem", &pki.ca_pem),
            ("client.pem", &pki.client_cert_pem),
            ("client.key", &pki.client_key_pem),
            ("stranger.pem", &pki.stranger_cert_pem),
            ("stranger.key", &pki.stranger_key_pem),
        ] {
            std::fs::write(pki.path(name), text).unwrap();
        }
        pki
    }

    /// A file written by [`TestPki::new`]: `ca.pem`, `client.pem`, `client.key`,
    /// `stranger.pem`, `stranger.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The receiver's TLS: this PKI's server certificate; client certificates from this CA
    /// required when `mutual`.
    pub fn server(&self, mutual: bool) -> ServerTls {
        ServerTls {
            cert_pem: self.server_cert_pem.clone(),
            key_pem: self.server_key_pem.clone(),
            client_ca_pem: mutual.then(|| self.ca_pem.clone()),
        }
    }
}

/// A span reduced to what a collector shows, attributes sorted by key.
#[derive(Debug, PartialEq)]
pub struct Seen {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent: Vec<u8>,
    pub name: String,
    pub kind: i32,
    pub start: u64,
    pub end: u64,
    pub attributes: Vec<String>,
    pub events: Vec<(String, u64, Vec<String>)>,
    pub links: Vec<(Vec<u8>, Vec<u8>, Vec<String>)>,
    pub status: (i32, String),
}

pub fn attrs(kvs: &[KeyValue]) -> Vec<String> {
    let mut v: Vec<String> = kvs
        .iter()
        .map(|kv| format!("{}={:?}", kv.key, kv.value))
        .collect();
    v.sort();
    v
}

/// Every span of the requests, with the resource and scope each came under.
pub fn flatten(
    reqs: &[ExportTraceServiceRequest],
) -> (Vec<Seen>, Vec<String>, Vec<(String, String)>) {
    let mut spans = Vec::new();
    let mut resource = Vec::new();
    let mut scopes = Vec::new();
    for r in reqs {
        for rs in &r.resource_spans {
            resource = attrs(&rs.resource.as_ref().unwrap().attributes);
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().unwrap();
                scopes.push((scope.name.clone(), scope.version.clone()));
                for s in &ss.spans {
                    let status = s.status.clone().unwrap_or_default();
                    spans.push(Seen {
                        trace_id: s.trace_id.clone(),
                        span_id: s.span_id.clone(),
                        parent: s.parent_span_id.clone(),
                        name: s.name.clone(),
                        kind: s.kind,
                        start: s.start_time_unix_nano,
                        end: s.end_time_unix_nano,
                        attributes: attrs(&s.attributes),
                        events: s
                            .events
                            .iter()
                            .map(|e| (e.name.clone(), e.time_unix_nano, attrs(&e.attributes)))
                            .collect(),
                        links: s
                            .links
                            .iter()
                            .map(|l| (l.trace_id.clone(), l.span_id.clone(), attrs(&l.attributes)))
                            .collect(),
                        status: (status.code, status.message),
                    });
                }
            }
        }
    }
    spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    scopes.dedup();
    (spans, resource, scopes)
}
