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
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::scripted::Scripted;
use super::wire::{self, Params, Reply};
use super::{CallbackAnswer, SimSummary, Simulation};
use crate::clock::now_ms;
use crate::synth::Rng;

/// Faults to inject. The random ones are drawn per request from a generator seeded by `seed`
/// (mixed with the simulation's seed for a generated source): the same requests in the same
/// order get the same answers. `Faults::default()` injects nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Seeds the generator deciding which requests are throttled, fail or find their marker
    /// expired; [`SimHandle::set_faults`] restarts it.
    pub seed: u64,
    /// Share of requests answered 429 TooManyRequestsException.
    pub throttle_probability: f64,
    /// `Retry-After` header (and `retryAfterSeconds` body field) of throttled answers.
    pub retry_after_seconds: Option<u32>,
    /// Share of requests answered 500 ServiceException (drawn after throttling).
    pub server_error_probability: f64,
    /// Every request waits this long before it is answered (counted from arrival).
    pub latency: Duration,
    /// Share of requests with a Marker answered "the marker has expired".
    pub expired_marker_probability: f64,
    /// A request-rate quota (requests per second, burst of one second's worth); above it, 429.
    pub rate_limit: Option<f64>,
    /// A marker used longer than this after it was issued is an InvalidParameterValueException
    /// (the scripted source's markers; a generated simulation's expire after
    /// [`super::SimSpec::marker_ttl`]). `None`: they never expire.
    pub expire_markers_after: Option<Duration>,
    /// Every request carrying a Marker is an InvalidParameterValueException.
    pub reject_all_markers: bool,
    /// Restricts the drawn and scripted faults, the quota and latency to these operations
    /// (empty: all).
    pub only_operations: Vec<&'static str>,
}

/// A fault for [`SimHandle::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 TooManyRequestsException with the current [`Faults::retry_after_seconds`].
    Throttle,
    /// 500 ServiceException.
    ServerError,
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

/// One request the server received (kept when [`SimHandle::keep_request_log`] is on).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// [`wire::GET_HISTORY`], [`wire::GET_EXECUTION`], [`wire::LIST_BY_FUNCTION`], a callback
    /// operation or [`wire::UNKNOWN_OPERATION`].
    pub op: &'static str,
    /// The execution ARN, the function or the callback id, percent-decoded; `METHOD path` for
    /// unknown routes.
    pub target: String,
    /// Query parameters, decoded, in order (a repeated parameter appears repeatedly).
    pub query: Vec<(String, String)>,
    /// `tokio::time::Instant`, so paused-clock tests see virtual time.
    pub arrived: Instant,
    /// The HTTP status answered; `None` while the request is in flight.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params(name).into_iter().next()
    }

    /// Every value of a query parameter, in order.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What the server answers from: a generated [`Simulation`] or a [`Scripted`] source.
pub enum Source {
    Generated(Simulation),
    Scripted(Scripted),
}

impl From<Simulation> for Source {
    fn from(sim: Simulation) -> Source {
        Source::Generated(sim)
    }
}

impl From<Scripted> for Source {
    fn from(s: Scripted) -> Source {
        Source::Scripted(s)
    }
}

struct Shared {
    source: Mutex<Source>,
    faults: Mutex<FaultState>,
    log: Mutex<Log>,
    /// Woken on every answered request and every change made through the handle.
    changed: Notify,
}

struct FaultState {
    faults: Faults,
    /// Mixed into `faults.seed`: the simulation's seed for a generated source.
    base_seed: u64,
    draws: Rng,
    /// [`SimHandle::fail_next`]'s faults, first come first served.
    scripted: VecDeque<FaultKind>,
    /// Token bucket for the quota: (tokens, last refill).
    bucket: Option<(f64, Instant)>,
}

/// The one request log: counters always, every request when `keep` is on.
#[derive(Default)]
struct Log {
    served: ServedStats,
    window: VecDeque<Instant>,
    keep: bool,
    /// (request number, request): the number finds the entry again after a reset.
    entries: Vec<(u64, RecordedRequest)>,
    seen: u64,
}

impl Shared {
    fn stats(&self) -> ServedStats {
        lock(&self.log).served.clone()
    }

    /// The executions by status now (those due to have arrived included).
    fn summary(&self) -> SimSummary {
        match &mut *lock(&self.source) {
            Source::Generated(sim) => {
                let now = now_ms();
                sim.advance(now);
                sim.summary(now)
            }
            Source::Scripted(s) => s.summary(),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking caller must not take every later request down with it.
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

    /// Replaces the injected faults and restarts the fault generator from `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        let mut f = lock(&self.shared.faults);
        f.draws = Rng(faults.seed ^ f.base_seed);
        f.faults = faults;
    }

    /// Injects nothing any more (also drops pending [`SimHandle::fail_next`] faults).
    pub fn clear_faults(&self) {
        let mut f = lock(&self.shared.faults);
        f.draws = Rng(f.base_seed);
        f.faults = Faults::default();
        f.scripted.clear();
    }

    /// The next `n` requests (of the operations [`Faults::only_operations`] selects) get `kind`,
    /// before any random fault is drawn.
    pub fn fail_next(&self, n: usize, kind: FaultKind) {
        lock(&self.shared.faults)
            .scripted
            .extend(std::iter::repeat_n(kind, n));
    }

    /// Runs `f` on the source; waiters ([`SimHandle::wait_until`]) look again afterwards.
    pub fn with_source<R>(&self, f: impl FnOnce(&mut Source) -> R) -> R {
        let r = f(&mut lock(&self.shared.source));
        self.shared.changed.notify_waiters();
        r
    }

    /// Runs `f` on the model (for tests and the demo). Panics for a scripted source.
    pub fn with_simulation<R>(&self, f: impl FnOnce(&mut Simulation) -> R) -> R {
        self.with_source(|source| match source {
            Source::Generated(sim) => f(sim),
            Source::Scripted(_) => panic!("the simulator serves a scripted source"),
        })
    }

    /// Keeps every request in the log from now on (on: [`SimHandle::requests`] and the counts
    /// below see them), or only the counters of [`SimHandle::stats`] (off, the default: a long
    /// simulation would fill memory).
    pub fn keep_request_log(&self, on: bool) {
        lock(&self.shared.log).keep = on;
    }

    /// Every request kept since the start or the last [`SimHandle::reset_log`], in arrival
    /// order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log)
            .entries
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Requests of an operation.
    pub fn count(&self, op: &str) -> usize {
        self.count_where(|r| r.op == op)
    }

    /// Requests of an operation answered with `status`.
    pub fn count_status(&self, op: &str, status: u16) -> usize {
        self.count_where(|r| r.op == op && r.status == Some(status))
    }

    fn count_where(&self, keep: impl Fn(&RecordedRequest) -> bool) -> usize {
        lock(&self.shared.log)
            .entries
            .iter()
            .filter(|(_, r)| keep(r))
            .count()
    }

    /// The most requests (all operations) that arrived within any window of this length
    /// (`later - earlier < window`): at most N per window means the rate budget held.
    pub fn max_requests_in_window(&self, window: Duration) -> usize {
        self.max_in_window(window, |_| true)
    }

    /// [`SimHandle::max_requests_in_window`] for one operation.
    pub fn max_requests_in_window_for(&self, op: &str, window: Duration) -> usize {
        self.max_in_window(window, |r| r.op == op)
    }

    fn max_in_window(&self, window: Duration, keep: impl Fn(&RecordedRequest) -> bool) -> usize {
        let mut times: Vec<Instant> = lock(&self.shared.log)
            .entries
            .iter()
            .filter(|(_, r)| keep(r))
            .map(|(_, r)| r.arrived)
            .collect();
        times.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while lo <= hi && times[hi].duration_since(times[lo]) >= window {
                lo += 1;
            }
            best = best.max(hi + 1 - lo);
        }
        best
    }

    /// Forgets the kept requests.
    pub fn reset_log(&self) {
        lock(&self.shared.log).entries.clear();
    }

    /// Waits until `cond` holds, re-checking after every answered request and every change
    /// made through the handle. False when `timeout` passed first.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&SimHandle) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond(self) {
                return true;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return cond(self),
            }
        }
    }

    /// Waits until `n` requests of `op` have been answered; false on timeout.
    pub async fn wait_for_requests(&self, op: &str, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |h| {
            h.count_where(|r| r.op == op && r.status.is_some()) >= n
        })
        .await
    }
}

/// Serves `source` (a [`Simulation`] or a [`Scripted`] source) on `listener` until `shutdown`
/// turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: impl Into<Source>,
    faults: Faults,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SimHandle, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let source = source.into();
    let base_seed = match &source {
        Source::Generated(sim) => sim.spec().seed ^ 0xfa17,
        Source::Scripted(_) => 0,
    };
    let shared = Arc::new(Shared {
        source: Mutex::new(source),
        faults: Mutex::new(FaultState {
            draws: Rng(faults.seed ^ base_seed),
            faults,
            base_seed,
            scripted: VecDeque::new(),
            bucket: None,
        }),
        log: Mutex::new(Log::default()),
        changed: Notify::new(),
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

/// What a source is asked, besides the parameters.
struct Ask<'a> {
    params: Params<'a>,
    /// Wall-clock milliseconds, for a generated simulation.
    now_ms: i64,
    /// For the scripted source's markers.
    now: Instant,
    marker_ttl: Option<Duration>,
}

async fn history_route(State(s): St, Path(arn): Path<String>, uri: Uri) -> Response {
    let target = arn.clone();
    answer(
        s,
        wire::GET_HISTORY,
        target,
        &uri,
        move |source, a| match source {
            Source::Generated(sim) => sim.history(&arn, &a.params, a.now_ms),
            Source::Scripted(x) => x.history(&arn, &a.params, a.now, a.marker_ttl),
        },
    )
    .await
}

async fn execution_route(State(s): St, Path(arn): Path<String>, uri: Uri) -> Response {
    let target = arn.clone();
    answer(
        s,
        wire::GET_EXECUTION,
        target,
        &uri,
        move |source, a| match source {
            Source::Generated(sim) => sim.get_execution(&arn, &a.params, a.now_ms),
            Source::Scripted(x) => x.get_execution(&arn, &a.params),
        },
    )
    .await
}

async fn list_route(State(s): St, Path(function): Path<String>, uri: Uri) -> Response {
    let target = function.clone();
    answer(
        s,
        wire::LIST_BY_FUNCTION,
        target,
        &uri,
        move |source, a| match source {
            Source::Generated(sim) => sim.list(&function, &a.params, a.now_ms),
            Source::Scripted(x) => x.list(&function, &a.params, a.now, a.marker_ttl),
        },
    )
    .await
}

async fn callback_route(
    State(s): St,
    Path((id, action)): Path<(String, String)>,
    method: Method,
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
        _ => return unknown(s, method, &uri).await,
    };
    let target = id.clone();
    answer(s, op, target, &uri, move |source, a| {
        match (source, parsed) {
            (_, Err(e)) => Reply::invalid(e),
            (Source::Generated(sim), Ok(answer)) => sim.answer_callback(&id, answer, a.now_ms),
            // A scripted history is what the caller wrote: nothing is waiting for an answer.
            (Source::Scripted(_), Ok(_)) => {
                Reply::not_found(format!("Callback does not exist: {id}"))
            }
        }
    })
    .await
}

async fn stats_route(State(s): St) -> Response {
    let body = serde_json::json!({ "executions": s.summary(), "served": s.stats() });
    json_response(StatusCode::OK, body.to_string())
}

async fn callbacks_route(State(s): St) -> Response {
    let ids = match &*lock(&s.source) {
        Source::Generated(sim) => sim.pending_callbacks(now_ms()),
        Source::Scripted(_) => Vec::new(),
    };
    json_response(
        StatusCode::OK,
        serde_json::json!({ "PendingCallbacks": ids }).to_string(),
    )
}

async fn unknown_route(State(s): St, method: Method, uri: Uri) -> Response {
    unknown(s, method, &uri).await
}

async fn unknown(s: Arc<Shared>, method: Method, uri: &Uri) -> Response {
    let target = format!("{method} {}", uri.path());
    let path = uri.path().to_owned();
    answer(s, wire::UNKNOWN_OPERATION, target, uri, move |_, _| {
        Reply::error(
            404,
            "UnknownOperationException",
            format!("Unknown path pattern: {path}"),
        )
    })
    .await
}

/// Logs the request, applies faults, then asks the source; counts and logs the answer.
async fn answer(
    s: Arc<Shared>,
    op: &'static str,
    target: String,
    uri: &Uri,
    ask: impl FnOnce(&mut Source, &Ask<'_>) -> Reply,
) -> Response {
    let query = Query::<Vec<(String, String)>>::try_from_uri(uri).map(|q| q.0);
    let number = arrive(&s, op, target, query.as_ref().ok());
    let (latency, fault, marker_ttl) = decide(&s, op, query.as_ref().ok());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let reply = match (fault, query) {
        (Some(r), _) => r,
        (None, Err(e)) => Reply::invalid(format!("Malformed query string: {e}")),
        (None, Ok(q)) => {
            let a = Ask {
                params: Params(&q),
                now_ms: now_ms(),
                now: Instant::now(),
                marker_ttl,
            };
            let mut source = lock(&s.source);
            if let Source::Generated(sim) = &mut *source {
                sim.advance(a.now_ms);
            }
            ask(&mut source, &a)
        }
    };
    let events = if op == wire::GET_HISTORY && reply.is_ok() {
        count_events(&reply.body)
    } else {
        0
    };
    finish(&s, number, op, &reply, events);
    s.changed.notify_waiters();
    into_response(reply, number)
}

/// Numbers the request and, when the log keeps requests, records it (status still unknown).
fn arrive(
    s: &Shared,
    op: &'static str,
    target: String,
    query: Option<&Vec<(String, String)>>,
) -> u64 {
    let mut log = lock(&s.log);
    log.seen += 1;
    let number = log.seen;
    if log.keep {
        log.entries.push((
            number,
            RecordedRequest {
                op,
                target,
                query: query.cloned().unwrap_or_default(),
                arrived: Instant::now(),
                status: None,
            },
        ));
    }
    number
}

/// (latency, the fault answer if any, the scripted markers' time to live).
fn decide(
    s: &Shared,
    op: &str,
    query: Option<&Vec<(String, String)>>,
) -> (Duration, Option<Reply>, Option<Duration>) {
    let mut guard = lock(&s.faults);
    let state = &mut *guard;
    let marker = query.and_then(|q| Params(q).one("Marker").map(str::to_owned));
    let ttl = state.faults.expire_markers_after;
    let applies = op != wire::UNKNOWN_OPERATION
        && (state.faults.only_operations.is_empty() || state.faults.only_operations.contains(&op));
    // Only the operations that page take a Marker.
    let reject_all = state.faults.reject_all_markers
        && (op == wire::GET_HISTORY || op == wire::LIST_BY_FUNCTION);
    let rejected = || {
        marker
            .as_ref()
            .filter(|_| reject_all)
            .map(|m| Reply::invalid(format!("Invalid Marker: the marker {m:?} is not valid")))
    };
    if !applies {
        return (Duration::ZERO, rejected(), ttl);
    }
    let faults = &state.faults;
    // Every draw always happens, so the sequence does not depend on the probabilities.
    let throttle = state.draws.unit() < faults.throttle_probability;
    let error = state.draws.unit() < faults.server_error_probability;
    let expire = state.draws.unit() < faults.expired_marker_probability;
    let over_quota = faults.rate_limit.is_some_and(|rate| {
        let now = Instant::now();
        let (tokens, last) = state.bucket.get_or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate.max(1.0));
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            false
        } else {
            true
        }
    });
    let drawn = if throttle || over_quota {
        Some(FaultKind::Throttle)
    } else if error {
        Some(FaultKind::ServerError)
    } else {
        None
    };
    let fault = match state.scripted.pop_front().or(drawn) {
        Some(FaultKind::Throttle) => Some(Reply::throttled(
            faults.retry_after_seconds.or(over_quota.then_some(1)),
        )),
        Some(FaultKind::ServerError) => Some(Reply::service_error(
            "The service encountered an internal error (injected by the simulator)",
        )),
        None if expire && marker.is_some() => Some(Reply::invalid(
            "Invalid Marker: the marker has expired (injected by the simulator)",
        )),
        None => rejected(),
    };
    (faults.latency, fault, ttl)
}

fn count_events(body: &str) -> u64 {
    // Every event carries exactly one EventId key.
    body.matches("\"EventId\":").count() as u64
}

/// Counts the answer and records its status in the kept request.
fn finish(s: &Shared, number: u64, op: &str, reply: &Reply, events: u64) {
    let mut log = lock(&s.log);
    if let Some((_, r)) = log.entries.iter_mut().rev().find(|(n, _)| *n == number) {
        r.status = Some(reply.status);
    }
    let now = Instant::now();
    while log
        .window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        log.window.pop_front();
    }
    log.window.push_back(now);
    log.served.max_requests_per_second = log
        .served
        .max_requests_per_second
        .max(log.window.len() as u64);
    *log.served
        .requests
        .entry(op.to_owned())
        .or_default()
        .entry(reply.status)
        .or_default() += 1;
    log.served.events_served += events;
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn into_response(reply: Reply, request_number: u64) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(status, reply.body);
    let headers = r.headers_mut();
    let request_id = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        request_number as u32, request_number
    );
    headers.insert(
        HeaderName::from_static("x-amzn-requestid"),
        HeaderValue::from_str(&request_id).expect("hex is a valid header value"),
    );
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
