//! A scripted source for the simulator's server: executions given as explicit event lists,
//! made visible by the caller, so a test can let an execution progress while it is polled.
//!
//! - Executions are added with [`ScriptedExecution`]; only their first `visible` events exist
//!   for the API, and [`ScriptedApi::reveal_more`] and friends make the history grow by
//!   appending (EventIds stay stable).
//! - Markers are opaque tokens mapped to a position in a table; they can expire
//!   ([`Faults::expire_markers_after`]) or all be rejected ([`Faults::reject_all_markers`]).
//!   `NextMarker` is present only when more visible events exist (see
//!   [`ScriptedApi::set_tail_markers`] for the other plausible behaviour); an empty page never
//!   carries one.
//! - The routes, the error answers, the fault injection and the request log are the
//!   simulator's ([`super::server`]); [`ScriptedApi`] is a [`SimHandle`] (it derefs to one)
//!   with the scripting on top.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::SimSummary;
use super::server::{self, SimHandle, Source};
use super::wire::{self, ListQuery, Params, Reply, function_ref};
use crate::arn::FunctionParts;
use crate::synth::Rng;

pub use super::server::{FaultKind, Faults, RecordedRequest};
/// Operation names, as the API spells them (and as the request log records them).
pub use super::wire::{GET_EXECUTION, GET_HISTORY, LIST_BY_FUNCTION, UNKNOWN_OPERATION};

// ---------------------------------------------------------------------------------------------
// What callers put in.

/// One durable execution as the scripted source serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedExecution {
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
    /// How many of `events` the API shows; the rest appear with [`ScriptedApi::reveal`].
    pub visible: usize,
}

impl ScriptedExecution {
    /// An execution serving `events` (all visible), in the exact wire form
    /// [`crate::history::json::to_wire_json`] writes. Name, FunctionArn and Version come from a
    /// real-form ARN (`arn:aws:lambda:R:A:function:F:Q/durable-execution/NAME/ID`); for any other
    /// identifier (the emulator's `<uuid>/<uuid>`) the name is the ExecutionStarted event's Name
    /// and the function `arn:aws:lambda:us-east-1:123456789012:function:unknown:$LATEST`.
    pub fn from_events(arn: &str, events: &[crate::history::Event]) -> Self {
        let wire: Value = serde_json::from_str(&crate::history::json::to_wire_json(events, None))
            .expect("to_wire_json writes valid JSON");
        let Value::Object(mut body) = wire else {
            unreachable!("a history response is an object")
        };
        let Some(Value::Array(events)) = body.remove("Events") else {
            unreachable!("a history response has Events")
        };
        Self::from_wire_events(arn, events)
    }

    /// As [`ScriptedExecution::from_events`], from events already in wire form.
    pub fn from_wire_events(arn: &str, events: Vec<Value>) -> Self {
        // A real-form execution ARN: a qualified function, then `/durable-execution/NAME/ID`.
        let execution_name = arn
            .split_once("/durable-execution/")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(name, _)| name.to_owned());
        let function = FunctionParts::from_execution_arn(arn)
            .filter(|f| f.qualifier.is_some() && execution_name.is_some());
        let name = function
            .as_ref()
            .and(execution_name)
            .or_else(|| {
                events
                    .first()
                    .and_then(|e| e.get("Name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| arn.rsplit('/').next().unwrap_or(arn).to_owned());
        let (function_arn, version) = match &function {
            Some(f) => {
                let q = f.qualifier.clone().unwrap_or_default();
                (
                    format!(
                        "arn:{}:lambda:{}:{}:function:{}:{q}",
                        f.partition, f.region, f.account, f.name
                    ),
                    q,
                )
            }
            None => (
                "arn:aws:lambda:us-east-1:123456789012:function:unknown:$LATEST".to_owned(),
                "$LATEST".to_owned(),
            ),
        };
        ScriptedExecution {
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
        self.visible = written_together(&self.events, n);
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

// ---------------------------------------------------------------------------------------------
// The model.

/// The scripted executions, the functions known without executions and the markers issued.
/// Told the time (`tokio::time::Instant`, so paused-clock tests see virtual time) on every call
/// that needs it.
pub struct Scripted {
    executions: Vec<ScriptedExecution>,
    index: HashMap<String, usize>,
    functions: Vec<String>,
    markers: HashMap<String, Marker>,
    marker_rng: Rng,
    tail_markers: bool,
    /// Listing pages hold at most this many executions, whatever `MaxItems` asks.
    list_page_limit: Option<usize>,
}

impl Default for Scripted {
    fn default() -> Self {
        Scripted {
            executions: Vec::new(),
            index: HashMap::new(),
            functions: Vec::new(),
            markers: HashMap::new(),
            marker_rng: Rng(0),
            tail_markers: false,
            list_page_limit: None,
        }
    }
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

impl Scripted {
    /// Adds an execution, or replaces the one with the same ARN. Its function becomes known.
    pub fn add_execution(&mut self, mut exec: ScriptedExecution) {
        exec.visible = exec.visible.min(exec.events.len());
        match self.index.get(&exec.arn) {
            Some(&i) => self.executions[i] = exec,
            None => {
                self.index.insert(exec.arn.clone(), self.executions.len());
                self.executions.push(exec);
            }
        }
    }

    /// Makes a function known without executions. Name, partial or full ARN.
    pub fn add_function(&mut self, function: &str) {
        let (name, _) = function_ref(function)
            .unwrap_or_else(|| panic!("scripted API: not a function name or ARN: {function}"));
        self.functions.push(name);
    }

    pub fn execution(&self, arn: &str) -> Option<&ScriptedExecution> {
        self.index.get(arn).map(|&i| &self.executions[i])
    }

    pub fn execution_mut(&mut self, arn: &str) -> Option<&mut ScriptedExecution> {
        self.index.get(arn).map(|&i| &mut self.executions[i])
    }

    pub fn set_tail_markers(&mut self, on: bool) {
        self.tail_markers = on;
    }

    pub fn set_list_page_limit(&mut self, limit: Option<usize>) {
        self.list_page_limit = limit;
    }

    pub fn markers_issued(&self) -> usize {
        self.markers.len()
    }

    /// The executions by status, and the events visible.
    pub fn summary(&self) -> SimSummary {
        let mut s = SimSummary::default();
        for x in &self.executions {
            s.add(status(x), x.visible as u64);
        }
        s
    }

    fn lookup(&self, arn: &str) -> Result<&ScriptedExecution, Reply> {
        wire::check_arn(arn)?;
        self.execution(arn)
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

    fn marker(
        &self,
        token: &str,
        now: Instant,
        ttl: Option<Duration>,
    ) -> Result<&MarkerScope, Reply> {
        let Some(m) = self.markers.get(token) else {
            return Err(Reply::invalid(format!(
                "Invalid Marker: the marker {token:?} is not valid"
            )));
        };
        if let Some(ttl) = ttl
            && now.duration_since(m.issued) > ttl
        {
            return Err(Reply::invalid(format!(
                "Invalid Marker: the marker {token:?} has expired"
            )));
        }
        Ok(&m.scope)
    }

    /// GetDurableExecutionHistory; markers older than `ttl` are refused as expired.
    pub fn history(
        &mut self,
        arn: &str,
        p: &Params<'_>,
        now: Instant,
        ttl: Option<Duration>,
    ) -> Reply {
        self.try_history(arn, p, now, ttl).unwrap_or_else(|e| e)
    }

    fn try_history(
        &mut self,
        arn: &str,
        p: &Params<'_>,
        now: Instant,
        ttl: Option<Duration>,
    ) -> Result<Reply, Reply> {
        let include = p.bool("IncludeExecutionData")?.unwrap_or(true);
        let max = p.max_items()?;
        let reverse = p.bool("ReverseOrder")?.unwrap_or(false);
        let marker = p.one("Marker");
        let exec = self.lookup(arn)?;
        let visible = exec.visible;
        let start = match marker {
            None => None,
            Some(token) => match self.marker(token, now, ttl)? {
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
        Ok(Reply::ok(body.to_string()))
    }

    /// GetDurableExecution.
    pub fn get_execution(&self, arn: &str, p: &Params<'_>) -> Reply {
        self.try_get_execution(arn, p).unwrap_or_else(|e| e)
    }

    fn try_get_execution(&self, arn: &str, p: &Params<'_>) -> Result<Reply, Reply> {
        let include = p.bool("IncludeExecutionData")?.unwrap_or(true);
        let exec = self.lookup(arn)?;
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
        Ok(Reply::ok(body.to_string()))
    }

    /// ListDurableExecutionsByFunction; markers older than `ttl` are refused as expired.
    pub fn list(
        &mut self,
        function: &str,
        p: &Params<'_>,
        now: Instant,
        ttl: Option<Duration>,
    ) -> Reply {
        self.try_list(function, p, now, ttl).unwrap_or_else(|e| e)
    }

    fn try_list(
        &mut self,
        function: &str,
        p: &Params<'_>,
        now: Instant,
        ttl: Option<Duration>,
    ) -> Result<Reply, Reply> {
        let mut q = ListQuery::parse(function, p)?;
        if let Some(limit) = self.list_page_limit {
            q.max = q.max.min(limit);
        }
        let name = q.function.clone();
        let anchor = match q.marker {
            None => None,
            Some(token) => match self.marker(token, now, ttl)? {
                MarkerScope::List {
                    function: f,
                    reverse: r,
                    after,
                } if *f == name && *r == q.reverse => Some(*after),
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
        let matching: Vec<((i64, usize), &ScriptedExecution)> = self
            .executions
            .iter()
            .enumerate()
            .filter(|(_, x)| {
                let (fname, fqual) = exec_function(x);
                fname.as_deref() == Some(name.as_str())
                    && (fqual == q.qualifier || x.version == q.qualifier)
            })
            .filter_map(|(i, x)| {
                let start = start_micros(x);
                q.wants(status(x), &x.name, start)
                    .then(|| ((start.unwrap_or(0), i), x))
            })
            .collect();
        let (page, next) = q.page(matching, anchor);
        let items: Vec<Value> = page.into_iter().map(summary).collect();
        let mut body = json!({ "DurableExecutions": items });
        if let Some(after) = next {
            let scope = MarkerScope::List {
                function: name,
                reverse: q.reverse,
                after,
            };
            body["NextMarker"] = self.issue_marker(scope, now).into();
        }
        Ok(Reply::ok(body.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Executions as the API describes them.

/// The last visible terminal Execution event.
fn terminal(x: &ScriptedExecution) -> Option<&Value> {
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

fn status(x: &ScriptedExecution) -> &'static str {
    terminal(x).and_then(terminal_status).unwrap_or("RUNNING")
}

/// The ExecutionStarted time (EventId 1 is written when the execution starts, so it counts even
/// while not yet visible).
fn start_timestamp(x: &ScriptedExecution) -> Option<&Value> {
    x.events.first().and_then(|e| e.get("EventTimestamp"))
}

fn start_micros(x: &ScriptedExecution) -> Option<i64> {
    start_timestamp(x)
        .and_then(Value::as_f64)
        .map(|s| (s * 1e6).round() as i64)
}

/// The fields GetDurableExecution and a ListDurableExecutionsByFunction item share.
fn summary(x: &ScriptedExecution) -> Value {
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
pub(super) fn strip_payloads(mut event: Value) -> Value {
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

/// The execution's function name and the qualifier it ran under: from a real-form execution
/// ARN, else from FunctionArn, else Version.
fn exec_function(x: &ScriptedExecution) -> (Option<String>, String) {
    let from_arn = x
        .arn
        .contains("/durable-execution/")
        .then(|| FunctionParts::from_execution_arn(&x.arn))
        .flatten()
        .map(|f| (f.name, f.qualifier));
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

// ---------------------------------------------------------------------------------------------
// The handle.

/// `n` events clamped to the history, one more when the `n`-th is an InvocationCompleted the
/// execution's success or failure follows: the service writes the two together.
fn written_together(events: &[Value], n: usize) -> usize {
    let n = n.min(events.len());
    let kind = |i: usize| events.get(i).and_then(|e| e["EventType"].as_str());
    match (n.checked_sub(1).and_then(kind), kind(n)) {
        (Some("InvocationCompleted"), Some("ExecutionSucceeded" | "ExecutionFailed")) => n + 1,
        _ => n,
    }
}

/// A running simulator serving a scripted source on 127.0.0.1. Clones share one server; it
/// stops when the last clone is dropped or on [`ScriptedApi::stop`]. Derefs to the
/// [`SimHandle`] (faults, the request log, waiting on it).
#[derive(Clone)]
pub struct ScriptedApi {
    inner: Arc<Running>,
}

struct Running {
    handle: SimHandle,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Deref for ScriptedApi {
    type Target = SimHandle;

    fn deref(&self) -> &SimHandle {
        &self.inner.handle
    }
}

impl ScriptedApi {
    /// Starts a server with an empty scripted source on a free port of 127.0.0.1; every
    /// request is kept in the log.
    pub async fn start() -> ScriptedApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let (stop, stopped) = watch::channel(false);
        let (handle, task) = server::serve(
            listener,
            Source::Scripted(Scripted::default()),
            Faults::default(),
            stopped,
        )
        .await
        .expect("the listener has an address");
        handle.keep_request_log(true);
        ScriptedApi {
            inner: Arc::new(Running {
                handle,
                stop,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// An aws-sdk-lambda client for this server with SDK retries disabled (one call, one
    /// request).
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
        let _ = self.inner.stop.send(true);
        let task = server::lock(&self.inner.task).take();
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

    fn scripted<R>(&self, f: impl FnOnce(&mut Scripted) -> R) -> R {
        self.with_source(|source| match source {
            Source::Scripted(s) => f(s),
            Source::Generated(_) => unreachable!("a ScriptedApi serves a scripted source"),
        })
    }

    /// Adds an execution, or replaces the one with the same ARN. Its function becomes known.
    pub fn add_execution(&self, exec: ScriptedExecution) {
        self.scripted(|s| s.add_execution(exec));
    }

    /// Makes a function known without executions (ListDurableExecutionsByFunction then answers an
    /// empty list instead of ResourceNotFoundException). Name, partial or full ARN.
    pub fn add_function(&self, function: &str) {
        self.scripted(|s| s.add_function(function));
    }

    /// Appends events (not yet visible) to an execution's history.
    pub fn append_events(&self, arn: &str, events: impl IntoIterator<Item = Value>) {
        self.with_execution(arn, |x| x.events.extend(events));
    }

    /// Makes the first `n` events visible (clamped to the history's length). Panics when that
    /// would hide events already shown: the history only grows. Like the service, which writes
    /// an execution's success or failure within milliseconds of the InvocationCompleted before
    /// it, never shows one of those InvocationCompleted events without the end after it.
    pub fn reveal(&self, arn: &str, n: usize) {
        self.with_execution(arn, |x| {
            let n = written_together(&x.events, n);
            assert!(
                n >= x.visible,
                "scripted API: reveal({arn}, {n}) would hide events ({} visible)",
                x.visible
            );
            x.visible = n;
        });
    }

    /// Makes `k` more events visible (see [`ScriptedApi::reveal`]); returns how many are
    /// visible now.
    pub fn reveal_more(&self, arn: &str, k: usize) -> usize {
        self.with_execution(arn, |x| {
            x.visible = written_together(&x.events, x.visible + k);
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

    /// A copy of the execution as the source holds it.
    pub fn execution(&self, arn: &str) -> Option<ScriptedExecution> {
        self.scripted(|s| s.execution(arn).cloned())
    }

    fn with_execution<R>(&self, arn: &str, f: impl FnOnce(&mut ScriptedExecution) -> R) -> R {
        self.scripted(|s| {
            let x = s
                .execution_mut(arn)
                .unwrap_or_else(|| panic!("scripted API: no execution {arn}"));
            f(x)
        })
    }

    /// When on, the last page of a history whose terminal event is not visible yet carries a
    /// NextMarker pointing past its last event (a "tail" marker to resume from once the history
    /// grows); following it before anything new is visible gives an empty page without
    /// NextMarker. Off by default: NextMarker only when more visible events exist, as documented.
    pub fn set_tail_markers(&self, on: bool) {
        self.scripted(|s| s.set_tail_markers(on));
    }

    /// Listing pages of at most `limit` executions (a listing of many pages without that many
    /// executions); None: as many as `MaxItems` asks.
    pub fn set_list_page_limit(&self, limit: Option<usize>) {
        self.scripted(|s| s.set_list_page_limit(limit));
    }

    /// How many markers the source has issued so far.
    pub fn markers_issued(&self) -> usize {
        self.scripted(|s| s.markers_issued())
    }
}
