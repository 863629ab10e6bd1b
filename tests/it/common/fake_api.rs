//! An in-process fake of the Lambda durable-execution REST API (version 2025-12-01) on
//! 127.0.0.1, close enough to the real service that aws-sdk-lambda talks to it unchanged: the
//! test double for the poller.
//!
//! - `GET /2025-12-01/durable-executions/{arn}/history` (GetDurableExecutionHistory),
//!   `GET /2025-12-01/durable-executions/{arn}` (GetDurableExecution) and
//!   `GET /2025-12-01/functions/{function}/durable-executions` (ListDurableExecutionsByFunction).
//!   The ARN is one percent-encoded path segment, as the SDK sends it.
//! - Executions are added with [`FakeExecution`]; only their first `visible` events exist for the
//!   API, and [`FakeApi::reveal_more`] and friends make the history grow by appending (EventIds
//!   stay stable), so a test can let an execution progress while it is polled.
//! - Markers are opaque tokens mapped server-side to a position; they can expire
//!   ([`Faults::expire_markers_after`]) or all be rejected. `NextMarker` is present only when more
//!   visible events exist (see [`FakeApi::set_tail_markers`] for the other plausible behaviour);
//!   an empty page never carries one.
//! - Errors are `{"Type": T, "message": M}` with the `x-amzn-errortype` header, so the SDK maps
//!   each to its typed error. Throttling and 500s are injected deterministically from a seed.
//! - Every request is logged with its operation name, target, query, arrival time
//!   (`tokio::time::Instant`, so paused-clock tests see virtual time) and status.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use durable_exporter::sim::wire::{self, Params, check_function, function_ref};
/// Operation names, as the API spells them (and as the request log records them), and the
/// API's limits: the simulator's (`durable_exporter::sim::wire`), which this fake shares.
pub use durable_exporter::sim::wire::{GET_EXECUTION, GET_HISTORY, LIST_BY_FUNCTION};
/// What the log records for a path no route matches.
pub const UNKNOWN_OPERATION: &str = "UnknownOperation";

// ---------------------------------------------------------------------------------------------
// What tests put in.

/// One durable execution as the fake serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeExecution {
    pub arn: String,
    /// DurableExecutionName.
    pub name: String,
    /// FunctionArn as GetDurableExecution reports it (usually qualified, `...:function:f:$LATEST`).
    pub function_arn: String,
    /// Version as GetDurableExecution reports it (`$LATEST`, `3`, ...).
    pub version: String,
    /// `TraceHeader.XAmznTraceId` of GetDurableExecution, when set.
    pub trace_header: Option<String>,
    /// The whole history, wire-form events (`{"EventType":..., "EventId":..., ...}`), in order.
    pub events: Vec<Value>,
    /// How many of `events` the API shows; the rest appear with [`FakeApi::reveal`].
    pub visible: usize,
}

impl FakeExecution {
    /// An execution serving `events` (all visible), in the exact wire form
    /// [`durable_exporter::history::json::to_wire_json`] writes. Name, FunctionArn and Version come from a
    /// real-form ARN (`arn:aws:lambda:R:A:function:F:Q/durable-execution/NAME/ID`); for any other
    /// identifier (the emulator's `<uuid>/<uuid>`) the name is the ExecutionStarted event's Name
    /// and the function `arn:aws:lambda:us-east-1:123456789012:function:unknown:$LATEST`.
    pub fn from_events(arn: &str, events: &[durable_exporter::history::Event]) -> Self {
        let wire: Value =
            serde_json::from_str(&durable_exporter::history::json::to_wire_json(events, None))
                .expect("to_wire_json writes valid JSON");
        let Value::Object(mut body) = wire else {
            unreachable!("a history response is an object")
        };
        let Some(Value::Array(events)) = body.remove("Events") else {
            unreachable!("a history response has Events")
        };
        Self::from_wire_events(arn, events)
    }

    /// As [`FakeExecution::from_events`], from events already in wire form.
    pub fn from_wire_events(arn: &str, events: Vec<Value>) -> Self {
        let parts = ExecutionArnParts::parse(arn);
        let name = parts
            .as_ref()
            .map(|p| p.execution_name.clone())
            .or_else(|| {
                events
                    .first()
                    .and_then(|e| e.get("Name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or(arn).to_owned());
        let (function_arn, version) = match &parts {
            Some(p) => (
                format!("{}:{}", p.unqualified_function_arn, p.qualifier),
                p.qualifier.clone(),
            ),
            None => (
                "arn:aws:lambda:us-east-1:123456789012:function:unknown:$LATEST".to_owned(),
                "$LATEST".to_owned(),
            ),
        };
        FakeExecution {
            arn: arn.to_owned(),
            name,
            function_arn,
            version,
            trace_header: None,
            visible: events.len(),
            events,
        }
    }

    /// Shows only the first `n` events (clamped to the history's length).
    pub fn with_visible(mut self, n: usize) -> Self {
        self.visible = n.min(self.events.len());
        self
    }

    /// Sets `TraceHeader.XAmznTraceId`.
    pub fn with_trace_header(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_header = Some(trace_id.into());
        self
    }

    /// The EventIds of the events, in order.
    pub fn event_ids(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| e.get("EventId").and_then(Value::as_u64))
            .collect()
    }
}

/// Injected faults. All random choices follow from `seed`: the same requests in the same order
/// get the same answers. `Faults::default()` injects nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Seeds the generator deciding which requests are throttled or fail.
    pub seed: u64,
    /// Share of requests answered 429 TooManyRequestsException.
    pub throttle_probability: f64,
    /// `Retry-After` header (and `retryAfterSeconds` body field) of throttled answers.
    pub retry_after_seconds: Option<u32>,
    /// Share of requests answered 500 ServiceException (drawn after throttling).
    pub server_error_probability: f64,
    /// Every request waits this long before it is answered (counted from arrival).
    pub latency: Duration,
    /// A marker used longer than this after it was issued is an InvalidParameterValueException.
    /// `None`: markers never expire (the real service: 24 hours).
    pub expire_markers_after: Option<Duration>,
    /// Every request carrying a Marker is an InvalidParameterValueException.
    pub reject_all_markers: bool,
    /// Restricts throttling, server errors and latency to these operations (empty: all).
    pub only_operations: Vec<&'static str>,
}

/// A fault for [`FakeApi::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 TooManyRequestsException with the current [`Faults::retry_after_seconds`].
    Throttle,
    /// 500 ServiceException.
    ServerError,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// [`GET_HISTORY`], [`GET_EXECUTION`], [`LIST_BY_FUNCTION`] or [`UNKNOWN_OPERATION`].
    pub op: &'static str,
    /// The execution ARN or the function, percent-decoded; the path for unknown routes.
    pub target: String,
    /// Query parameters, decoded, in order (a repeated parameter appears repeatedly).
    pub query: Vec<(String, String)>,
    pub arrived: Instant,
    /// The HTTP status answered; `None` while the request is in flight.
    pub status: Option<u16>,
}

impl RecordedRequest {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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

// ---------------------------------------------------------------------------------------------
// The handle tests hold.

/// A running fake API. Clones share one server; it stops when the last clone is dropped or on
/// [`FakeApi::stop`].
#[derive(Clone)]
pub struct FakeApi {
    handle: Arc<ServerHandle>,
}

struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
    }
}

struct Shared {
    state: Mutex<ApiState>,
    /// Woken on every answered request and every change a test makes.
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take every later assertion down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeApi {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start() -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(ApiState::default()),
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
            .fallback(unknown_route)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeApi {
            handle: Arc::new(ServerHandle {
                addr,
                shared,
                stop: Mutex::new(Some(stop)),
                task: Mutex::new(Some(task)),
            }),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// `http://127.0.0.1:PORT`, for the SDK's `endpoint_url`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// An aws-sdk-lambda client for this fake with SDK retries disabled (one call, one request).
    pub fn client(&self) -> aws_sdk_lambda::Client {
        use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDFAKE", "secret", None, None, "fake"))
            .endpoint_url(self.endpoint_url())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_lambda::Client::from_conf(config)
    }

    /// Stops the server: the port stops accepting at once; requests in flight are answered,
    /// idle keep-alive connections closed. Waits (at most 5 s) until that is done.
    pub async fn stop(&self) {
        if let Some(stop) = lock(&self.handle.stop).take() {
            let _ = stop.send(());
        }
        let task = lock(&self.handle.task).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, ApiState> {
        lock(&self.handle.shared.state)
    }

    fn changed(&self) {
        self.handle.shared.changed.notify_waiters();
    }

    /// Adds an execution, or replaces the one with the same ARN. Its function becomes known.
    pub fn add_execution(&self, exec: FakeExecution) {
        let mut exec = exec;
        exec.visible = exec.visible.min(exec.events.len());
        {
            let mut st = self.state();
            match st.index.get(&exec.arn) {
                Some(&i) => st.executions[i] = exec,
                None => {
                    let i = st.executions.len();
                    st.index.insert(exec.arn.clone(), i);
                    st.executions.push(exec);
                }
            }
        }
        self.changed();
    }

    /// Makes a function known without executions (ListDurableExecutionsByFunction then answers an
    /// empty list instead of ResourceNotFoundException). Name, partial or full ARN.
    pub fn add_function(&self, function: &str) {
        let (name, _) = function_ref(function)
            .unwrap_or_else(|| panic!("fake API: not a function name or ARN: {function}"));
        self.state().functions.push(name);
        self.changed();
    }

    /// Appends events (not yet visible) to an execution's history.
    pub fn append_events(&self, arn: &str, events: impl IntoIterator<Item = Value>) {
        self.with_execution(arn, |x| x.events.extend(events));
    }

    /// Makes the first `n` events visible (clamped to the history's length). Panics when that
    /// would hide events already shown: the history only grows.
    pub fn reveal(&self, arn: &str, n: usize) {
        self.with_execution(arn, |x| {
            let n = n.min(x.events.len());
            assert!(
                n >= x.visible,
                "fake API: reveal({arn}, {n}) would hide events ({} visible)",
                x.visible
            );
            x.visible = n;
        });
    }

    /// Makes `k` more events visible; returns how many are visible now.
    pub fn reveal_more(&self, arn: &str, k: usize) -> usize {
        self.with_execution(arn, |x| {
            x.visible = (x.visible + k).min(x.events.len());
            x.visible
        })
    }

    /// Makes the whole history visible.
    pub fn reveal_all(&self, arn: &str) {
        self.with_execution(arn, |x| x.visible = x.events.len());
    }

    /// How many events of the execution are visible.
    pub fn visible(&self, arn: &str) -> usize {
        self.with_execution(arn, |x| x.visible)
    }

    /// A copy of the execution as the fake holds it.
    pub fn execution(&self, arn: &str) -> Option<FakeExecution> {
        let st = self.state();
        st.index.get(arn).map(|&i| st.executions[i].clone())
    }

    fn with_execution<R>(&self, arn: &str, f: impl FnOnce(&mut FakeExecution) -> R) -> R {
        let r = {
            let mut st = self.state();
            let i = *st
                .index
                .get(arn)
                .unwrap_or_else(|| panic!("fake API: no execution {arn}"));
            f(&mut st.executions[i])
        };
        self.changed();
        r
    }

    /// Replaces the injected faults and restarts the fault generator from `faults.seed`.
    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.state();
        st.rng = SplitMix(faults.seed);
        st.faults = faults;
    }

    /// Injects nothing any more (also drops pending [`FakeApi::fail_next`] faults).
    pub fn clear_faults(&self) {
        let mut st = self.state();
        st.faults = Faults::default();
        st.rng = SplitMix(0);
        st.scripted.clear();
    }

    /// The next `n` requests (of the operations [`Faults::only_operations`] selects) get `kind`,
    /// before any random fault is drawn.
    pub fn fail_next(&self, n: usize, kind: FaultKind) {
        let mut st = self.state();
        st.scripted.extend(std::iter::repeat_n(kind, n));
    }

    /// When on, the last page of a history whose terminal event is not visible yet carries a
    /// NextMarker pointing past its last event (a "tail" marker to resume from once the history
    /// grows); following it before anything new is visible gives an empty page without
    /// NextMarker. Off by default: NextMarker only when more visible events exist, as documented.
    pub fn set_tail_markers(&self, on: bool) {
        self.state().tail_markers = on;
    }

    /// How many markers the fake has issued so far.
    pub fn markers_issued(&self) -> usize {
        self.state().markers.len()
    }

    /// Every request since the start or the last [`FakeApi::reset_log`], in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().log.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Requests of an operation.
    pub fn count(&self, op: &str) -> usize {
        self.state().log.iter().filter(|(_, r)| r.op == op).count()
    }

    /// Requests of an operation answered with `status`.
    pub fn count_status(&self, op: &str, status: u16) -> usize {
        self.state()
            .log
            .iter()
            .filter(|(_, r)| r.op == op && r.status == Some(status))
            .count()
    }

    /// The most requests (all operations) that arrived within any window of this length
    /// (`later - earlier < window`): at most N per window means the rate budget held.
    pub fn max_requests_in_window(&self, window: Duration) -> usize {
        self.max_in_window(window, |_| true)
    }

    /// [`FakeApi::max_requests_in_window`] for one operation.
    pub fn max_requests_in_window_for(&self, op: &str, window: Duration) -> usize {
        self.max_in_window(window, |r| r.op == op)
    }

    fn max_in_window(&self, window: Duration, keep: impl Fn(&RecordedRequest) -> bool) -> usize {
        let mut times: Vec<Instant> = self
            .state()
            .log
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

    /// Forgets the logged requests.
    pub fn reset_log(&self) {
        self.state().log.clear();
    }

    /// Waits until `cond` holds, re-checking after every answered request and every change a
    /// test makes. False when `timeout` passed first.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&FakeApi) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.handle.shared.changed.notified();
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
        self.wait_until(timeout, |api| {
            api.state()
                .log
                .iter()
                .filter(|(_, r)| r.op == op && r.status.is_some())
                .count()
                >= n
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The server.

#[derive(Default)]
struct ApiState {
    executions: Vec<FakeExecution>,
    index: HashMap<String, usize>,
    functions: Vec<String>,
    markers: HashMap<String, Marker>,
    marker_rng: SplitMix,
    faults: Faults,
    rng: SplitMix,
    scripted: VecDeque<FaultKind>,
    tail_markers: bool,
    /// (request number, request): the number finds the entry again after a reset.
    log: Vec<(u64, RecordedRequest)>,
    requests_seen: u64,
}

struct Marker {
    scope: MarkerScope,
    issued: Instant,
}

enum MarkerScope {
    /// Forward: the index of the next event; reverse: the (exclusive) upper end of what is left.
    History {
        arn: String,
        reverse: bool,
        pos: usize,
    },
    /// The sort key (start micros, insertion index) of the last execution returned.
    List {
        function: String,
        reverse: bool,
        after: (i64, usize),
    },
}

/// splitmix64: deterministic, tiny.
#[derive(Debug, Clone, Default)]
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One answer, before it becomes an HTTP response.
struct Reply {
    status: StatusCode,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
            headers: Vec::new(),
        }
    }

    fn error(status: StatusCode, error_type: &str, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: json!({ "Type": error_type, "message": message.into() }),
            headers: vec![("x-amzn-errortype", error_type.to_owned())],
        }
    }

    fn invalid(message: impl Into<String>) -> Reply {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    fn not_found(message: impl Into<String>) -> Reply {
        Reply::error(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    fn throttled(retry_after_seconds: Option<u32>) -> Reply {
        let mut r = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate exceeded",
        );
        r.body["Reason"] = "CallerRateLimitExceeded".into();
        if let Some(s) = retry_after_seconds {
            r.body["retryAfterSeconds"] = s.to_string().into();
            r.headers.push(("Retry-After", s.to_string()));
        }
        r
    }

    fn service_error() -> Reply {
        Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "The service encountered an internal error (injected by the fake API)",
        )
    }

    fn into_response(self, request_number: u64) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let request_id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            request_number as u32, request_number
        );
        headers.insert(
            HeaderName::from_static("x-amzn-requestid"),
            HeaderValue::from_str(&request_id).expect("hex is a valid header value"),
        );
        for (k, v) in self.headers {
            headers.insert(
                HeaderName::from_static(if k == "Retry-After" { "retry-after" } else { k }),
                HeaderValue::from_str(&v).expect("ASCII header value"),
            );
        }
        response
    }
}

/// The package's error answers (bad parameters) as this fake's.
impl From<wire::Reply> for Reply {
    fn from(r: wire::Reply) -> Reply {
        Reply {
            status: StatusCode::from_u16(r.status).expect("a valid status"),
            body: serde_json::from_str(&r.body).expect("the package writes JSON"),
            headers: r
                .error_type
                .map(|t| vec![("x-amzn-errortype", t.to_owned())])
                .unwrap_or_default(),
        }
    }
}

type SharedState = State<Arc<Shared>>;

async fn history_route(State(s): SharedState, Path(arn): Path<String>, uri: Uri) -> Response {
    serve(s, GET_HISTORY, arn, &uri).await
}

async fn execution_route(State(s): SharedState, Path(arn): Path<String>, uri: Uri) -> Response {
    serve(s, GET_EXECUTION, arn, &uri).await
}

async fn list_route(State(s): SharedState, Path(function): Path<String>, uri: Uri) -> Response {
    serve(s, LIST_BY_FUNCTION, function, &uri).await
}

async fn unknown_route(State(s): SharedState, method: Method, uri: Uri) -> Response {
    let target = format!("{method} {}", uri.path());
    serve(s, UNKNOWN_OPERATION, target, &uri).await
}

async fn serve(shared: Arc<Shared>, op: &'static str, target: String, uri: &Uri) -> Response {
    let query = Query::<Vec<(String, String)>>::try_from_uri(uri).map(|q| q.0);
    let logged_query = query.as_ref().map(Vec::clone).unwrap_or_default();
    let (number, latency, fault) = lock(&shared.state).arrive(op, &target, logged_query);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let reply = {
        let mut st = lock(&shared.state);
        match fault {
            Some(FaultKind::Throttle) => Reply::throttled(st.faults.retry_after_seconds),
            Some(FaultKind::ServerError) => Reply::service_error(),
            None => match query {
                Err(e) => Reply::invalid(format!("Malformed query string: {e}")),
                Ok(q) => st.handle(op, &target, &Params(&q), Instant::now()),
            },
        }
    };
    {
        let mut st = lock(&shared.state);
        if let Some((_, r)) = st.log.iter_mut().rev().find(|(n, _)| *n == number) {
            r.status = Some(reply.status.as_u16());
        }
    }
    shared.changed.notify_waiters();
    reply.into_response(number)
}

impl ApiState {
    /// Logs the request and decides its fault: (request number, latency, fault).
    fn arrive(
        &mut self,
        op: &'static str,
        target: &str,
        query: Vec<(String, String)>,
    ) -> (u64, Duration, Option<FaultKind>) {
        self.requests_seen += 1;
        let number = self.requests_seen;
        self.log.push((
            number,
            RecordedRequest {
                op,
                target: target.to_owned(),
                query,
                arrived: Instant::now(),
                status: None,
            },
        ));
        let applies = op != UNKNOWN_OPERATION
            && (self.faults.only_operations.is_empty()
                || self.faults.only_operations.contains(&op));
        if !applies {
            return (number, Duration::ZERO, None);
        }
        // Both draws always happen, so the sequence does not depend on the probabilities.
        let throttle = self.rng.unit() < self.faults.throttle_probability;
        let server_error = self.rng.unit() < self.faults.server_error_probability;
        let fault = self.scripted.pop_front().or(if throttle {
            Some(FaultKind::Throttle)
        } else if server_error {
            Some(FaultKind::ServerError)
        } else {
            None
        });
        (number, self.faults.latency, fault)
    }

    fn handle(&mut self, op: &str, target: &str, p: &Params<'_>, now: Instant) -> Reply {
        let result = match op {
            GET_HISTORY => self.history(target, p, now),
            GET_EXECUTION => self.get_execution(target, p),
            LIST_BY_FUNCTION => self.list(target, p, now),
            _ => Err(Reply::error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                format!("Unknown path pattern: {target}"),
            )),
        };
        result.unwrap_or_else(|e| e)
    }

    fn execution(&self, arn: &str) -> Result<&FakeExecution, Reply> {
        wire::check_arn(arn)?;
        self.index
            .get(arn)
            .map(|&i| &self.executions[i])
            .ok_or_else(|| Reply::not_found(format!("Durable Execution does not exist: {arn}")))
    }

    fn issue_marker(&mut self, scope: MarkerScope, now: Instant) -> String {
        let token = loop {
            let (a, b) = (self.marker_rng.next_u64(), self.marker_rng.next_u64());
            let t = format!("mk{a:016x}{b:016x}");
            if !self.markers.contains_key(&t) {
                break t;
            }
        };
        self.markers
            .insert(token.clone(), Marker { scope, issued: now });
        token
    }

    fn marker(&self, token: &str, now: Instant) -> Result<&MarkerScope, Reply> {
        if self.faults.reject_all_markers {
            return Err(Reply::invalid(format!(
                "Invalid Marker: the marker {token:?} is not valid"
            )));
        }
        let Some(m) = self.markers.get(token) else {
            return Err(Reply::invalid(format!(
                "Invalid Marker: the marker {token:?} is not valid"
            )));
        };
        if let Some(ttl) = self.faults.expire_markers_after
            && now.duration_since(m.issued) > ttl
        {
            return Err(Reply::invalid(format!(
                "Invalid Marker: the marker {token:?} has expired"
            )));
        }
        Ok(&m.scope)
    }

    fn history(&mut self, arn: &str, p: &Params<'_>, now: Instant) -> Result<Reply, Reply> {
        let include = p.bool("IncludeExecutionData")?.unwrap_or(true);
        let max = p.max_items()?;
        let reverse = p.bool("ReverseOrder")?.unwrap_or(false);
        let marker = p.one("Marker");
        let exec = self.execution(arn)?;
        let visible = exec.visible;
        let start = match marker {
            None => None,
            Some(token) => match self.marker(token, now)? {
                MarkerScope::History {
                    arn: a,
                    reverse: r,
                    pos,
                } if a == arn && *r == reverse => Some(*pos),
                _ => {
                    return Err(Reply::invalid(format!(
                        "Invalid Marker: the marker {token:?} belongs to another request"
                    )));
                }
            },
        };
        let (page, next): (Vec<Value>, Option<usize>) = if reverse {
            let upper = start.unwrap_or(visible).min(visible);
            let lower = upper.saturating_sub(max);
            let page = exec.events[lower..upper].iter().rev().cloned().collect();
            (page, (lower > 0).then_some(lower))
        } else {
            let lower = start.unwrap_or(0).min(visible);
            let upper = (lower + max).min(visible);
            let page: Vec<Value> = exec.events[lower..upper].to_vec();
            let more = upper < visible;
            let tail = self.tail_markers && upper > lower && terminal(exec).is_none();
            (page, (more || tail).then_some(upper))
        };
        let mut body = json!({
            "Events": if include { page } else { page.into_iter().map(strip_payloads).collect() }
        });
        if let Some(pos) = next {
            let scope = MarkerScope::History {
                arn: arn.to_owned(),
                reverse,
                pos,
            };
            body["NextMarker"] = self.issue_marker(scope, now).into();
        }
        Ok(Reply::ok(body))
    }

    fn get_execution(&self, arn: &str, p: &Params<'_>) -> Result<Reply, Reply> {
        let include = p.bool("IncludeExecutionData")?.unwrap_or(true);
        let exec = self.execution(arn)?;
        let mut body = summary(exec);
        body["Version"] = exec.version.clone().into();
        if let Some(t) = &exec.trace_header {
            body["TraceHeader"] = json!({ "XAmznTraceId": t });
        }
        let visible = &exec.events[..exec.visible];
        if include {
            let input = visible
                .iter()
                .find(|e| e["EventType"] == "ExecutionStarted")
                .and_then(|e| e["ExecutionStartedDetails"]["Input"]["Payload"].as_str());
            if let Some(input) = input {
                body["InputPayload"] = input.into();
            }
        }
        if let Some(end) = terminal(exec) {
            let details = &end[format!("{}Details", end["EventType"].as_str().unwrap_or(""))];
            if include && let Some(result) = details["Result"]["Payload"].as_str() {
                body["Result"] = result.into();
            }
            if let Some(error) = details["Error"]["Payload"].as_object() {
                body["Error"] = Value::Object(error.clone());
            }
        }
        Ok(Reply::ok(body))
    }

    fn list(&mut self, function: &str, p: &Params<'_>, now: Instant) -> Result<Reply, Reply> {
        let (name, arn_qualifier) = check_function(function)?;
        let qualifier = p
            .one("Qualifier")
            .map(str::to_owned)
            .or(arn_qualifier)
            .unwrap_or_else(|| "$LATEST".to_owned());
        let statuses = p.statuses()?;
        let after = p.timestamp_micros("StartedAfter")?;
        let before = p.timestamp_micros("StartedBefore")?;
        let name_filter = p.one("DurableExecutionName");
        let reverse = p.bool("ReverseOrder")?.unwrap_or(false);
        let max = p.max_items()?;
        let anchor = match p.one("Marker") {
            None => None,
            Some(token) => match self.marker(token, now)? {
                MarkerScope::List {
                    function: f,
                    reverse: r,
                    after,
                } if *f == name && *r == reverse => Some(*after),
                _ => {
                    return Err(Reply::invalid(format!(
                        "Invalid Marker: the marker {token:?} belongs to another request"
                    )));
                }
            },
        };
        let known = self.functions.contains(&name)
            || self
                .executions
                .iter()
                .any(|x| exec_function(x).0.as_deref() == Some(name.as_str()));
        if !known {
            return Err(Reply::not_found(format!("Function not found: {function}")));
        }
        let mut matching: Vec<((i64, usize), &FakeExecution)> = self
            .executions
            .iter()
            .enumerate()
            .filter(|(_, x)| {
                let (fname, fqual) = exec_function(x);
                fname.as_deref() == Some(name.as_str())
                    && (fqual == qualifier || x.version == qualifier)
            })
            .filter(|(_, x)| statuses.is_empty() || statuses.contains(&status(x)))
            .filter(|(_, x)| name_filter.is_none_or(|n| x.name.contains(n)))
            .filter_map(|(i, x)| {
                let start = start_micros(x);
                let in_range = after.is_none_or(|a| start.is_some_and(|s| s > a))
                    && before.is_none_or(|b| start.is_some_and(|s| s < b));
                in_range.then(|| ((start.unwrap_or(0), i), x))
            })
            .collect();
        matching.sort_by_key(|(k, _)| *k);
        if reverse {
            matching.reverse();
        }
        if let Some(a) = anchor {
            matching.retain(|(k, _)| if reverse { *k < a } else { *k > a });
        }
        let more = matching.len() > max;
        matching.truncate(max);
        let last = matching.last().map(|(k, _)| *k);
        let items: Vec<Value> = matching.into_iter().map(|(_, x)| summary(x)).collect();
        let mut body = json!({ "DurableExecutions": items });
        if let (true, Some(after)) = (more, last) {
            let scope = MarkerScope::List {
                function: name,
                reverse,
                after,
            };
            body["NextMarker"] = self.issue_marker(scope, now).into();
        }
        Ok(Reply::ok(body))
    }
}

// ---------------------------------------------------------------------------------------------
// Executions as the API describes them.

/// The last visible terminal Execution event.
fn terminal(x: &FakeExecution) -> Option<&Value> {
    x.events[..x.visible]
        .iter()
        .rev()
        .find(|e| terminal_status(e).is_some())
}

fn terminal_status(e: &Value) -> Option<&'static str> {
    match e.get("EventType")?.as_str()? {
        "ExecutionSucceeded" => Some("SUCCEEDED"),
        "ExecutionFailed" => Some("FAILED"),
        "ExecutionTimedOut" => Some("TIMED_OUT"),
        "ExecutionStopped" => Some("STOPPED"),
        _ => None,
    }
}

fn status(x: &FakeExecution) -> &'static str {
    terminal(x).and_then(terminal_status).unwrap_or("RUNNING")
}

/// The ExecutionStarted time (EventId 1 is written when the execution starts, so it counts even
/// while not yet visible).
fn start_timestamp(x: &FakeExecution) -> Option<&Value> {
    x.events.first().and_then(|e| e.get("EventTimestamp"))
}

fn start_micros(x: &FakeExecution) -> Option<i64> {
    start_timestamp(x)
        .and_then(Value::as_f64)
        .map(|s| (s * 1e6).round() as i64)
}

/// The fields GetDurableExecution and a ListDurableExecutionsByFunction item share.
fn summary(x: &FakeExecution) -> Value {
    let mut v = Map::new();
    v.insert("DurableExecutionArn".into(), x.arn.clone().into());
    v.insert("DurableExecutionName".into(), x.name.clone().into());
    v.insert("FunctionArn".into(), x.function_arn.clone().into());
    v.insert("Status".into(), status(x).into());
    if let Some(t) = start_timestamp(x) {
        v.insert("StartTimestamp".into(), t.clone());
    }
    if let Some(t) = terminal(x).and_then(|e| e.get("EventTimestamp")) {
        v.insert("EndTimestamp".into(), t.clone());
    }
    Value::Object(v)
}

/// IncludeExecutionData=false, as the emulator does it: Input and Result objects lose their
/// Payload, and every Input, Result and Error says `"Truncated": true` (error payloads stay).
fn strip_payloads(mut event: Value) -> Value {
    if let Some(obj) = event.as_object_mut() {
        for (k, details) in obj.iter_mut() {
            let Some(details) = details.as_object_mut().filter(|_| k.ends_with("Details")) else {
                continue;
            };
            for field in ["Input", "Result", "Error"] {
                if let Some(p) = details.get_mut(field).and_then(Value::as_object_mut) {
                    if field != "Error" {
                        p.remove("Payload");
                    }
                    p.insert("Truncated".into(), true.into());
                }
            }
        }
    }
    event
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER/durable-execution/EXEC_NAME/EXEC_ID`.
struct ExecutionArnParts {
    unqualified_function_arn: String,
    qualifier: String,
    execution_name: String,
}

impl ExecutionArnParts {
    fn parse(arn: &str) -> Option<Self> {
        let (function, rest) = arn.split_once("/durable-execution/")?;
        let (execution_name, _id) = rest.split_once('/')?;
        let segments: Vec<&str> = function.split(':').collect();
        if segments.len() != 8 || segments[0] != "arn" || segments[5] != "function" {
            return None;
        }
        Some(ExecutionArnParts {
            unqualified_function_arn: segments[..7].join(":"),
            qualifier: segments[7].to_owned(),
            execution_name: execution_name.to_owned(),
        })
    }
}

/// The execution's function name and the qualifier it ran under: from a real-form execution
/// ARN, else from FunctionArn, else Version.
fn exec_function(x: &FakeExecution) -> (Option<String>, String) {
    let from_arn = x
        .arn
        .split_once("/durable-execution/")
        .filter(|(f, _)| f.contains(":function:"))
        .and_then(|(f, _)| function_ref(f));
    let (name, qualifier) = match from_arn.or_else(|| function_ref(&x.function_arn)) {
        Some((n, q)) => (Some(n), q),
        None => (None, None),
    };
    let qualifier = qualifier.unwrap_or_else(|| {
        if x.version.is_empty() {
            "$LATEST".to_owned()
        } else {
            x.version.clone()
        }
    });
    (name, qualifier)
}
