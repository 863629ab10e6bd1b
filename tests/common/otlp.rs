//! In-process OTLP receivers on 127.0.0.1: gRPC (tonic, opentelemetry-proto's TraceService) and
//! HTTP/protobuf (axum, POST /v1/traces). Each keeps every request it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use tokio::sync::oneshot;

/// Requests a receiver got, in arrival order.
pub type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// A running receiver; dropping it stops the server.
pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Received,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.received.lock().unwrap().clone()
    }
}

#[derive(Clone)]
struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts an OTLP/gRPC receiver on a free port.
pub async fn grpc() -> Receiver {
    grpc_on("127.0.0.1:0".parse().unwrap()).await
}

/// Starts an OTLP/gRPC receiver on the given address (a collector that comes up late).
pub async fn grpc_on(addr: SocketAddr) -> Receiver {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let service = TraceServiceServer::new(Grpc(received.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
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
        received,
        _stop: stop,
    }
}

/// Starts an OTLP/HTTP (protobuf) receiver on a free port.
pub async fn http() -> Receiver {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::post;

    async fn traces(
        State(received): State<Received>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut out = HeaderMap::new();
        out.insert(
            header::CONTENT_TYPE,
            "application/x-protobuf".parse().unwrap(),
        );
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct != "application/x-protobuf" {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, out, Vec::new());
        }
        match ExportTraceServiceRequest::decode(body) {
            Ok(req) => {
                received.lock().unwrap().push(req);
                let resp = ExportTraceServiceResponse {
                    partial_success: None,
                };
                (StatusCode::OK, out, resp.encode_to_vec())
            }
            Err(_) => (StatusCode::BAD_REQUEST, out, Vec::new()),
        }
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(received.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Receiver {
        addr,
        received,
        _stop: stop,
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
