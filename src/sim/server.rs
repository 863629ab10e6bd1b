//! The simulator over HTTP: the Lambda durable REST paths aws-sdk-lambda calls, with injected
//! faults (throttling, 5xx, latency, expired markers, a request-rate quota) and counters of
//! what it served.
//!
//! - `GET /2025-12-01/durable-executions/{arn}/history`, `GET /2025-12-01/durable-executions/{arn}`,
//!   `GET /2025-12-01/functions/{function}/durable-executions`,
//!   `POST /2025-12-01/durable-execution-callbacks/{id}/{succeed|fail|heartbeat}`.
//! - `GET /sim/stats`: the executions by status and the requests served (JSON).
//! - `GET /sim/callbacks`: callback ids pending now, oldest first (JSON), to answer by hand.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use super::wire::{self, Params, Reply};
use super::{CallbackAnswer, SimSummary, Simulation};
use crate::clock::now_ms;
use crate::synth::Rng;

/// Faults to inject, each drawn per request from a seeded generator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share of requests answered 429 TooManyRequestsException (Retry-After: 1).
    pub throttle_probability: f64,
    /// Share of requests answered 500 ServiceException.
    pub server_error_probability: f64,
    /// Added before every answer.
    pub latency: Duration,
    /// Share of requests with a Marker answered "the marker has expired".
    pub expired_marker_probability: f64,
    /// A request-rate quota (requests per second, burst of one second's worth); above it, 429.
    pub rate_limit: Option<f64>,
}

/// What the server counted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServedStats {
    /// Requests by operation and HTTP status.
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    /// The most requests that arrived within any one second.
    pub max_requests_per_second: u64,
    /// History events returned in successful pages.
    pub events_served: u64,
}

impl ServedStats {
    /// Requests of one operation (every status).
    pub fn count(&self, op: &str) -> u64 {
        self.requests.get(op).map_or(0, |m| m.values().sum())
    }

    pub fn total(&self) -> u64 {
        self.requests.values().flat_map(|m| m.values()).sum()
    }
}

struct Shared {
    sim: Mutex<Simulation>,
    faults: Mutex<(Faults, Rng)>,
    stats: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    served: ServedStats,
    window: VecDeque<Instant>,
    /// Token bucket for the quota: (tokens, last refill).
    bucket: Option<(f64, Instant)>,
}

impl Shared {
    fn stats(&self) -> ServedStats {
        lock(&self.stats).served.clone()
    }

    /// The executions by status now (those due to have arrived included).
    fn summary(&self) -> SimSummary {
        let now = now_ms();
        let mut sim = lock(&self.sim);
        sim.advance(now);
        sim.summary(now)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running simulator.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for `aws.endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> ServedStats {
        self.shared.stats()
    }

    pub fn summary(&self) -> SimSummary {
        self.shared.summary()
    }

    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).0 = faults;
    }

    /// Runs `f` on the model (for tests and the demo).
    pub fn with_simulation<R>(&self, f: impl FnOnce(&mut Simulation) -> R) -> R {
        f(&mut lock(&self.shared.sim))
    }
}

/// Serves `sim` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Simulation,
    faults: Faults,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SimHandle, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let seed = sim.spec().seed;
    let shared = Arc::new(Shared {
        sim: Mutex::new(sim),
        faults: Mutex::new((faults, Rng(seed ^ 0xfa17))),
        stats: Mutex::new(Counters::default()),
    });
    let app = Router::new()
        .route(
            "/2025-12-01/durable-executions/{arn}/history",
            get(history_route),
        )
        .route("/2025-12-01/durable-executions/{arn}", get(execution_route))
        .route(
            "/2025-12-01/functions/{function}/durable-executions",
            get(list_route),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/{action}",
            post(callback_route),
        )
        .route("/sim/stats", get(stats_route))
        .route("/sim/callbacks", get(callbacks_route))
        .fallback(unknown_route)
        .with_state(shared.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
    });
    Ok((SimHandle { shared, addr }, task))
}

type St = State<Arc<Shared>>;

async fn history_route(State(s): St, Path(arn): Path<String>, uri: Uri) -> Response {
    answer(s, wire::GET_HISTORY, &uri, |sim, p, now| {
        sim.history(&arn, p, now)
    })
    .await
}

async fn execution_route(State(s): St, Path(arn): Path<String>, uri: Uri) -> Response {
    answer(s, wire::GET_EXECUTION, &uri, |sim, p, now| {
        sim.get_execution(&arn, p, now)
    })
    .await
}

async fn list_route(State(s): St, Path(function): Path<String>, uri: Uri) -> Response {
    answer(s, wire::LIST_BY_FUNCTION, &uri, |sim, p, now| {
        sim.list(&function, p, now)
    })
    .await
}

async fn callback_route(
    State(s): St,
    Path((id, action)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let (op, parsed) = match action.as_str() {
        "succeed" => (
            wire::CALLBACK_SUCCESS,
            Ok(CallbackAnswer::Success(body.to_vec())),
        ),
        "fail" => (
            wire::CALLBACK_FAILURE,
            CallbackAnswer::failure_from_body(&body),
        ),
        "heartbeat" => (wire::CALLBACK_HEARTBEAT, Ok(CallbackAnswer::Heartbeat)),
        _ => return unknown(&s, &uri).await,
    };
    answer(s, op, &uri, move |sim, _, now| match parsed {
        Ok(a) => sim.answer_callback(&id, a, now),
        Err(e) => Reply::invalid(e),
    })
    .await
}

async fn stats_route(State(s): St) -> Response {
    let body = serde_json::json!({ "executions": s.summary(), "served": s.stats() });
    json_response(StatusCode::OK, body.to_string())
}

async fn callbacks_route(State(s): St) -> Response {
    let ids = lock(&s.sim).pending_callbacks(now_ms());
    json_response(
        StatusCode::OK,
        serde_json::json!({ "PendingCallbacks": ids }).to_string(),
    )
}

async fn unknown_route(State(s): St, uri: Uri) -> Response {
    unknown(&s, &uri).await
}

async fn unknown(s: &Shared, uri: &Uri) -> Response {
    let reply = Reply::error(
        404,
        "UnknownOperationException",
        format!("Unknown path pattern: {}", uri.path()),
    );
    count(s, "UnknownOperation", &reply, 0);
    into_response(reply)
}

/// Applies faults, then asks the model.
async fn answer(
    s: Arc<Shared>,
    op: &'static str,
    uri: &Uri,
    ask: impl FnOnce(&mut Simulation, &Params<'_>, i64) -> Reply,
) -> Response {
    let query = Query::<Vec<(String, String)>>::try_from_uri(uri).map(|q| q.0);
    let (latency, fault) = decide(&s, query.as_ref().ok());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let reply = match (fault, query) {
        (Some(r), _) => r,
        (None, Err(e)) => Reply::invalid(format!("Malformed query string: {e}")),
        (None, Ok(q)) => {
            let now = now_ms();
            let mut sim = lock(&s.sim);
            sim.advance(now);
            ask(&mut sim, &Params(&q), now)
        }
    };
    let events = if op == wire::GET_HISTORY && reply.is_ok() {
        count_events(&reply.body)
    } else {
        0
    };
    count(&s, op, &reply, events);
    into_response(reply)
}

fn decide(s: &Shared, query: Option<&Vec<(String, String)>>) -> (Duration, Option<Reply>) {
    let mut guard = lock(&s.faults);
    let (faults, draws) = &mut *guard;
    let throttle = draws.unit() < faults.throttle_probability;
    let error = draws.unit() < faults.server_error_probability;
    let expire = draws.unit() < faults.expired_marker_probability;
    let has_marker = query.is_some_and(|q| q.iter().any(|(k, _)| k == "Marker"));
    let over_quota = faults.rate_limit.is_some_and(|rate| {
        let mut c = lock(&s.stats);
        let now = Instant::now();
        let (tokens, last) = c.bucket.get_or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate.max(1.0));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            false
        } else {
            true
        }
    });
    let fault = if throttle || over_quota {
        Some(Reply::throttled(Some(1)))
    } else if error {
        Some(Reply::service_error(
            "The service encountered an internal error (injected by the simulator)",
        ))
    } else if expire && has_marker {
        Some(Reply::invalid(
            "Invalid Marker: the marker has expired (injected by the simulator)",
        ))
    } else {
        None
    };
    (faults.latency, fault)
}

fn count_events(body: &str) -> u64 {
    // Every event carries exactly one EventId key.
    body.matches("\"EventId\":").count() as u64
}

fn count(s: &Shared, op: &str, reply: &Reply, events: u64) {
    let mut c = lock(&s.stats);
    let now = Instant::now();
    while c
        .window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        c.window.pop_front();
    }
    c.window.push_back(now);
    c.served.max_requests_per_second = c.served.max_requests_per_second.max(c.window.len() as u64);
    *c.served
        .requests
        .entry(op.to_owned())
        .or_default()
        .entry(reply.status)
        .or_default() += 1;
    c.served.events_served += events;
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(status, reply.body);
    let headers = r.headers_mut();
    if let Some(t) = reply.error_type {
        headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(t),
        );
    }
    if let Some(s) = reply.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}
