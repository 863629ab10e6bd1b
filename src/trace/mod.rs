//! Spans from an execution's transitions: the "execution view" of AWS's OpenTelemetry plugins
//! (`shared/reference/span-model.md`), plus what only a history shows.
//!
//! | span | name | parent | emitted when |
//! |---|---|---|---|
//! | Workflow | `Workflow` | none, or the caller's remote parent | the execution ends |
//! | Invocation | `Invocation` | Workflow | the event after its InvocationCompleted, or settling |
//! | operation | Name, else type | its ParentId's span, else Workflow | the operation ends |
//! | attempt | `<name> attempt N` | its step | the attempt ends |
//! | back-off | `<name> back-off N` | its step | the next attempt starts |
//! | suspension | `Suspended` | Workflow | the next invocation starts, or the execution ends |
//!
//! Pure and deterministic: the same transitions give byte-identical spans.

pub mod ids;
pub mod otlp_json;
pub mod proto;
pub mod tree;

use std::fmt::Write as _;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::arn::{ExecutionArn, FunctionParts};
use crate::history::{ErrorInfo, Payload};
use crate::state::{
    Attempt, AttemptOutcome, Backoff, Details, ExecutionInfo, ExecutionStatus, Invocation,
    InvocationStatus, Observer, Operation, OperationStatus, Suspension, Transition,
};
use crate::time::Timestamp;
use ids::{ArnHashes, IdScheme, OwnSpan, SpanId, TraceHeader, TraceId};

/// The instrumentation scope every span carries.
pub const SCOPE_NAME: &str = "durable-exporter";
pub const SCOPE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Payloads longer than this are cut (at a character boundary) unless configured otherwise.
pub const DEFAULT_MAX_ATTRIBUTE_LENGTH: usize = 4096;

/// Text on a span: a constant, a string shared with the state (ARN, operation id, name), or
/// one of its own. Compares by content.
#[derive(Debug, Clone)]
pub enum Text {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
            Text::Owned(s) => s,
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &**self == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl From<&'static str> for Text {
    fn from(s: &'static str) -> Self {
        Text::Static(s)
    }
}
impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Owned(s)
    }
}
impl From<&Arc<str>> for Text {
    fn from(s: &Arc<str>) -> Self {
        Text::Shared(s.clone())
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Text),
    Int(i64),
    Bool(bool),
    Double(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    pub key: &'static str,
    pub value: Value,
}

fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue {
        key,
        value: value.into(),
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::Str(Text::Static(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Text::Owned(s))
    }
}
impl From<&Arc<str>> for Value {
    fn from(s: &Arc<str>) -> Self {
        Value::Str(Text::Shared(s.clone()))
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub name: &'static str,
    pub time: Timestamp,
    pub attributes: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub attributes: Vec<KeyValue>,
}

/// A finished span with given ids and historical times (kind INTERNAL).
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    /// The parent comes from the caller's trace header (another process).
    pub parent_is_remote: bool,
    pub name: Text,
    pub start: Timestamp,
    pub end: Timestamp,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub links: Vec<Link>,
    pub status: StatusCode,
    pub status_message: Option<String>,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }
}

/// The resource every span of an execution shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
}

impl Resource {
    /// A canonical text of the attributes: equal resources, equal keys.
    pub fn key(&self) -> String {
        let mut k = String::new();
        for a in &self.attributes {
            let _ = write!(k, "{}={:?};", a.key, a.value);
        }
        k
    }

    /// `service.name` (given, else the function name, else `unknown_service`) and the cloud and
    /// faas attributes the ARN gives.
    pub fn for_execution(arn: &ExecutionArn, service_name: Option<&str>) -> Self {
        Self::for_function(arn.function(), service_name)
    }

    /// The same from the function's parts, when known.
    pub fn for_function(f: Option<&FunctionParts>, service_name: Option<&str>) -> Self {
        let service = service_name
            .map(str::to_owned)
            .or_else(|| f.map(|f| f.name.clone()))
            .unwrap_or_else(|| "unknown_service".to_owned());
        let mut attributes = vec![
            kv("service.name", service),
            kv("cloud.provider", "aws"),
            kv("cloud.platform", "aws_lambda"),
        ];
        if let Some(f) = f {
            attributes.push(kv("cloud.region", f.region.clone()));
            if !f.account.is_empty() {
                attributes.push(kv("cloud.account.id", f.account.clone()));
            }
            attributes.push(kv("faas.name", f.name.clone()));
            if let Some(q) = &f.qualifier {
                attributes.push(kv("faas.version", q.clone()));
            }
        }
        Resource { attributes }
    }
}

/// How spans are drawn.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub id_scheme: IdScheme,
    /// A caller's X-Ray (or W3C) trace context: its trace id wins, its parent becomes the
    /// Workflow span's remote parent.
    pub trace_header: Option<TraceHeader>,
    /// Put inputs and results on spans (cut to `max_attribute_length`).
    pub include_payloads: bool,
    pub max_attribute_length: usize,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            id_scheme: IdScheme::Python,
            trace_header: None,
            include_payloads: false,
            max_attribute_length: DEFAULT_MAX_ATTRIBUTE_LENGTH,
        }
    }
}

/// Builds an execution's spans from the fold's transitions (an [`Observer`]).
#[derive(Debug)]
pub struct TraceBuilder {
    arn: Arc<str>,
    options: TraceOptions,
    trace_id: Option<TraceId>,
    workflow_span_id: SpanId,
    spans: Vec<Span>,
    /// Span ids of open operations (derived once, used by their attempts, back-offs, children).
    op_span_ids: FxHashMap<Arc<str>, SpanId>,
    /// Invocation span ids by index - 1.
    invocation_span_ids: Vec<SpanId>,
    /// The ARN's hash states while spans are being drawn (dropped by [`Self::take_spans`], so
    /// that an execution waiting in memory does not hold them).
    hashes: Option<Box<ArnHashes>>,
}

impl TraceBuilder {
    pub fn new(arn: impl Into<Arc<str>>, options: TraceOptions) -> Self {
        let arn = arn.into();
        let workflow_span_id = options.id_scheme.workflow_span_id(&arn);
        TraceBuilder {
            trace_id: options.trace_header.map(|h| h.trace_id),
            arn,
            options,
            workflow_span_id,
            spans: Vec::new(),
            op_span_ids: FxHashMap::default(),
            invocation_span_ids: Vec::new(),
            hashes: None,
        }
    }

    /// Fixes the trace id from the execution's start when no trace header gave one. The daemon
    /// calls this when it resumes mid-history (ExecutionStarted already applied).
    pub fn set_execution_start(&mut self, start: Timestamp) {
        if self.trace_id.is_none() {
            self.trace_id = Some(self.options.id_scheme.trace_id(&self.arn, start));
        }
    }

    pub fn trace_id(&self) -> Option<TraceId> {
        self.trace_id
    }

    pub fn workflow_span_id(&self) -> SpanId {
        self.workflow_span_id
    }

    /// Spans completed so far, in the order they completed.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Takes the spans completed so far.
    pub fn take_spans(&mut self) -> Vec<Span> {
        self.hashes = None;
        std::mem::take(&mut self.spans)
    }

    fn hashes(&mut self) -> &mut ArnHashes {
        let (scheme, arn) = (self.options.id_scheme, &self.arn);
        self.hashes
            .get_or_insert_with(|| Box::new(ArnHashes::new(scheme, Arc::clone(arn))))
    }

    /// The id of a span only the exporter draws, keyed `<operation id>:<n>` or `<n>`.
    fn own_span_id(&mut self, kind: OwnSpan, op_id: Option<&str>, n: u32) -> SpanId {
        let mut digits = itoa::Buffer::new();
        let n = digits.format(n).as_bytes();
        match op_id {
            Some(op) => self.hashes().own_span_id(kind, &[op.as_bytes(), b":", n]),
            None => self.hashes().own_span_id(kind, &[n]),
        }
    }

    fn trace(&mut self, fallback_start: Timestamp) -> TraceId {
        self.set_execution_start(fallback_start);
        self.trace_id.unwrap_or(TraceId([0; 16]))
    }

    /// An operation's span id: from the cache while it is open, else derived.
    fn op_span_id(&mut self, op_id: &str) -> SpanId {
        match self.op_span_ids.get(op_id) {
            Some(id) => *id,
            None => self.hashes().operation_span_id(op_id),
        }
    }

    fn invocation_span_id(&mut self, index: u32) -> SpanId {
        let i = index.saturating_sub(1) as usize;
        while self.invocation_span_ids.len() <= i {
            let n = self.invocation_span_ids.len() as u32 + 1;
            let id = self.own_span_id(OwnSpan::Invocation, None, n);
            self.invocation_span_ids.push(id);
        }
        self.invocation_span_ids[i]
    }

    fn invocation_link(&mut self, trace_id: TraceId, index: u32) -> Link {
        Link {
            trace_id,
            span_id: self.invocation_span_id(index),
            attributes: Vec::new(),
        }
    }

    /// `durable.execution.arn` and the operation's identity attributes.
    fn identity(&self, op: &Operation) -> Vec<KeyValue> {
        let mut a = Vec::with_capacity(12);
        a.push(kv("durable.execution.arn", &self.arn));
        a.push(kv("durable.operation.id", &op.id));
        a.push(kv("durable.operation.type", op.op_type().as_str()));
        if let Some(s) = &op.sub_type {
            a.push(kv("durable.operation.subtype", s));
        }
        if let Some(n) = &op.name {
            a.push(kv("durable.operation.name", n));
        }
        a
    }

    fn payload_attribute(&self, attrs: &mut Vec<KeyValue>, key: &'static str, p: &Payload) {
        if !self.options.include_payloads {
            return;
        }
        if let Some(text) = &p.payload {
            let cut = cut_to(text, self.options.max_attribute_length);
            attrs.push(kv(key, cut.to_owned()));
            if p.truncated || cut.len() < text.len() {
                attrs.push(kv("durable.payload.truncated", true));
            }
        }
    }
}

fn new_span(
    trace_id: TraceId,
    span_id: SpanId,
    parent: SpanId,
    name: Text,
    start: Timestamp,
    end: Timestamp,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id,
        span_id,
        parent_span_id: Some(parent),
        parent_is_remote: false,
        name,
        start,
        end: end.max(start),
        attributes,
        events: Vec::new(),
        links: Vec::new(),
        status: StatusCode::Unset,
        status_message: None,
    }
}

impl TraceBuilder {
    fn attempt_span(&mut self, op: &Operation, a: &Attempt) {
        let trace_id = self.trace(a.start);
        let mut attrs = self.identity(op);
        attrs.push(kv("durable.attempt.number", a.number));
        attrs.push(kv("durable.attempt.outcome", a.outcome.as_str()));
        if a.outcome == AttemptOutcome::Interrupted {
            attrs.push(kv("durable.attempt.interrupted", true));
        }
        if let Some(d) = a.next_attempt_delay_seconds {
            attrs.push(kv("durable.attempt.next_attempt_delay_seconds", d));
        }
        let mut span = new_span(
            trace_id,
            self.own_span_id(OwnSpan::Attempt, Some(&op.id), a.number),
            self.op_span_id(&op.id),
            Text::Owned(format!("{} attempt {}", op.display_name(), a.number)),
            a.start,
            a.end,
            attrs,
        );
        span.links
            .push(self.invocation_link(trace_id, a.invocation));
        // Each attempt follows its own outcome (AWS's conformance suite checks OK, not UNSET).
        match a.outcome {
            AttemptOutcome::Succeeded => span.status = StatusCode::Ok,
            AttemptOutcome::Failed => set_error(&mut span, a.error.as_ref(), a.end, "FAILED"),
            AttemptOutcome::Interrupted => {
                span.status = StatusCode::Error;
                span.status_message =
                    Some("attempt interrupted: no end event before the step went on".into());
            }
        }
        self.spans.push(span);
    }

    fn backoff_span(&mut self, op: &Operation, b: &Backoff) {
        let trace_id = self.trace(b.start);
        let mut attrs = self.identity(op);
        attrs.push(kv("durable.attempt.number", b.after_attempt));
        if let Some(d) = b.scheduled_delay_seconds {
            attrs.push(kv("durable.backoff.scheduled_seconds", d));
            let late = (b.end.millis() - b.start.millis()) as f64 / 1000.0 - d as f64;
            attrs.push(kv("durable.backoff.lateness_seconds", late));
        }
        let span = new_span(
            trace_id,
            self.own_span_id(OwnSpan::Backoff, Some(&op.id), b.after_attempt),
            self.op_span_id(&op.id),
            Text::Owned(format!(
                "{} back-off {}",
                op.display_name(),
                b.after_attempt
            )),
            b.start,
            b.end,
            attrs,
        );
        self.spans.push(span);
    }

    fn operation_span(&mut self, op: &Operation) {
        let trace_id = self.trace(op.start);
        let mut attrs = self.identity(op);
        attrs.push(kv("durable.operation.status", op.status.as_str()));
        if op.unfinished {
            attrs.push(kv("durable.operation.unfinished", true));
        }
        let end = op.end.unwrap_or(op.start);
        let mut events = Vec::new();
        let mut links = Vec::new();
        if let Some(i) = op.end_invocation {
            links.push(self.invocation_link(trace_id, i));
        }
        match &op.details {
            Details::Step(s) => {
                attrs.push(kv("durable.step.attempts", s.attempts));
                if s.failed_attempts > 0 {
                    attrs.push(kv("durable.step.failed_attempts", s.failed_attempts));
                }
                if let Some(next) = s.next_attempt {
                    attrs.push(kv("durable.step.next_attempt_time", next.to_iso8601()));
                }
            }
            Details::Wait {
                duration_seconds,
                scheduled_end,
            } => {
                if let Some(d) = duration_seconds {
                    attrs.push(kv("durable.wait.duration_seconds", *d));
                }
                if let Some(se) = scheduled_end {
                    attrs.push(kv("durable.wait.scheduled_end_time", se.to_iso8601()));
                    if op.status == OperationStatus::Succeeded {
                        let late = (end.millis() - se.millis()) as f64 / 1000.0;
                        attrs.push(kv("durable.wait.lateness_seconds", late));
                    }
                    events.push(SpanEvent {
                        name: "wait scheduled end",
                        time: *se,
                        attributes: Vec::new(),
                    });
                }
            }
            Details::Callback {
                callback_id,
                timeout_seconds,
                heartbeat_timeout_seconds,
            } => {
                if let Some(c) = callback_id {
                    attrs.push(kv("durable.callback.id", c.clone()));
                }
                if let Some(t) = timeout_seconds {
                    attrs.push(kv("durable.callback.timeout_seconds", *t));
                }
                if let Some(t) = heartbeat_timeout_seconds {
                    attrs.push(kv("durable.callback.heartbeat_timeout_seconds", *t));
                }
            }
            Details::ChainedInvoke {
                function_name,
                tenant_id,
                input,
                executed_version,
                durable_execution_arn,
            } => {
                if let Some(f) = function_name {
                    attrs.push(kv("durable.chained_invoke.function_name", f.clone()));
                }
                if let Some(v) = executed_version {
                    attrs.push(kv("durable.chained_invoke.executed_version", v.clone()));
                }
                if let Some(t) = tenant_id {
                    attrs.push(kv("durable.chained_invoke.tenant_id", t.clone()));
                }
                if let Some(child) = durable_execution_arn {
                    attrs.push(kv("durable.chained_invoke.execution_arn", child.clone()));
                    // The child's Workflow span. Its trace id needs the child's start, which the
                    // parent's history does not hold: ChainedInvokeStarted's time stands in.
                    let scheme = self.options.id_scheme;
                    links.push(Link {
                        trace_id: scheme.trace_id(child, op.start),
                        span_id: scheme.workflow_span_id(child),
                        attributes: vec![kv("durable.link.type", "chained_invoke_target")],
                    });
                }
                if let Some(p) = input {
                    self.payload_attribute(&mut attrs, "durable.operation.input", p);
                }
            }
            Details::Context | Details::Execution { .. } => {}
        }
        if let Some(r) = &op.result {
            self.payload_attribute(&mut attrs, "durable.operation.result", r);
        }
        let parent = match &op.parent_id {
            Some(p) if op.parent_known => self.op_span_id(p),
            _ => self.workflow_span_id,
        };
        let mut span = new_span(
            trace_id,
            self.op_span_id(&op.id),
            parent,
            match &op.name {
                Some(n) => Text::Shared(n.clone()),
                None => Text::Static(op.op_type().as_str()),
            },
            op.start,
            end,
            attrs,
        );
        span.events = events;
        span.links = links;
        self.op_span_ids.remove(&*op.id);
        match op.status {
            OperationStatus::Succeeded => span.status = StatusCode::Ok,
            OperationStatus::Failed | OperationStatus::TimedOut => {
                set_error(&mut span, op.error.as_ref(), end, op.status.as_str())
            }
            _ if op.error.is_some() => {
                set_error(&mut span, op.error.as_ref(), end, op.status.as_str())
            }
            _ => {}
        }
        self.spans.push(span);
    }

    fn invocation_span(&mut self, inv: &Invocation) {
        let trace_id = self.trace(inv.start);
        let mut attrs = vec![
            kv("durable.execution.arn", &self.arn),
            kv("durable.invocation.first", inv.index == 1),
            kv("durable.invocation.status", inv.status.as_str()),
            kv("durable.invocation.index", inv.index),
        ];
        if let Some(r) = &inv.request_id {
            attrs.push(kv("faas.invocation_id", r.clone()));
            attrs.push(kv("durable.invocation.request_id", r.clone()));
        }
        if !inv.exact_bounds {
            attrs.push(kv("durable.invocation.estimated_bounds", true));
        }
        if !inv.completed {
            attrs.push(kv("durable.invocation.completed", false));
        }
        let mut span = new_span(
            trace_id,
            self.invocation_span_id(inv.index),
            self.workflow_span_id,
            Text::Static("Invocation"),
            inv.start,
            inv.end,
            attrs,
        );
        match inv.status {
            InvocationStatus::Succeeded | InvocationStatus::Pending => {
                span.status = StatusCode::Ok;
            }
            InvocationStatus::Failed | InvocationStatus::Retrying => {
                set_error(&mut span, inv.error.as_ref(), inv.end, inv.status.as_str())
            }
        }
        self.spans.push(span);
    }

    fn suspension_span(&mut self, s: &Suspension) {
        let trace_id = self.trace(s.start);
        let mut attrs = vec![
            kv("durable.execution.arn", &self.arn),
            kv("durable.suspension.after_invocation", s.after_invocation),
        ];
        if !s.waiting_for.is_empty() {
            attrs.push(kv(
                "durable.suspension.waiting_for",
                s.waiting_for.join(","),
            ));
        }
        if s.ended_execution {
            attrs.push(kv("durable.suspension.ended_execution", true));
        }
        let span = new_span(
            trace_id,
            self.own_span_id(OwnSpan::Suspension, None, s.after_invocation),
            self.workflow_span_id,
            Text::Static("Suspended"),
            s.start,
            s.end,
            attrs,
        );
        self.spans.push(span);
    }

    fn workflow_span(&mut self, info: &ExecutionInfo) {
        let (Some(start), Some(end)) = (info.start, info.end) else {
            return;
        };
        let trace_id = self.trace(start);
        let mut attrs = vec![
            kv("durable.execution.arn", &self.arn),
            kv("durable.execution.status", info.status.as_str()),
        ];
        if let Some(r) = &info.result {
            self.payload_attribute(&mut attrs, "durable.execution.result", r);
        }
        let remote_parent = self.options.trace_header.and_then(|h| h.parent);
        let mut span = new_span(
            trace_id,
            self.workflow_span_id,
            SpanId([0; 8]),
            Text::Static("Workflow"),
            start,
            end,
            attrs,
        );
        span.parent_span_id = remote_parent;
        span.parent_is_remote = remote_parent.is_some();
        match info.status {
            ExecutionStatus::Succeeded => span.status = StatusCode::Ok,
            ExecutionStatus::Running => {}
            other => set_error(&mut span, info.error.as_deref(), end, other.as_str()),
        }
        self.spans.push(span);
    }

    fn execution_started(&mut self, info: &ExecutionInfo) {
        if let Some(start) = info.start {
            self.set_execution_start(start);
        }
    }
}

/// Marks a span ERROR with the error's message and adds the `exception` event.
fn set_error(span: &mut Span, error: Option<&ErrorInfo>, at: Timestamp, fallback: &str) {
    span.status = StatusCode::Error;
    let Some(e) = error else {
        span.status_message = Some(fallback.to_owned());
        return;
    };
    let summary = e.summary();
    span.status_message = Some(if summary.is_empty() {
        fallback.to_owned()
    } else {
        e.error_message.clone().unwrap_or(summary)
    });
    let mut attributes = Vec::with_capacity(3);
    attributes.push(kv(
        "exception.type",
        e.error_type.clone().unwrap_or_else(|| fallback.to_owned()),
    ));
    if let Some(m) = &e.error_message {
        attributes.push(kv("exception.message", m.clone()));
    }
    if !e.stack_trace.is_empty() {
        let mut st = String::new();
        for (i, line) in e.stack_trace.iter().enumerate() {
            if i > 0 {
                st.push('\n');
            }
            let _ = write!(st, "{line}");
        }
        attributes.push(kv("exception.stacktrace", st));
    }
    span.events.push(SpanEvent {
        name: "exception",
        time: at,
        attributes,
    });
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

impl Observer for TraceBuilder {
    fn observe(&mut self, t: Transition<'_>) {
        match t {
            Transition::ExecutionStarted(info) => self.execution_started(info),
            Transition::AttemptEnded(op, a) => self.attempt_span(op, a),
            Transition::BackoffEnded(op, b) => self.backoff_span(op, b),
            Transition::OperationFinished(op) => self.operation_span(op),
            Transition::InvocationEnded(inv) => self.invocation_span(inv),
            Transition::Suspended(s) => self.suspension_span(s),
            Transition::ExecutionFinished(info) => self.workflow_span(info),
            Transition::OperationStarted(op) => {
                let id = self.hashes().operation_span_id(&op.id);
                self.op_span_ids.insert(op.id.clone(), id);
            }
            Transition::Anomaly(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut_to("héllo", 2), "h");
        assert_eq!(cut_to("héllo", 3), "hé");
        assert_eq!(cut_to("abc", 10), "abc");
    }

    #[test]
    fn resource_from_a_real_arn() {
        let arn = ExecutionArn::parse(
            "arn:aws:lambda:eu-west-1:210987654321:function:payments:7/durable-execution/o/1",
        )
        .unwrap();
        let r = Resource::for_execution(&arn, None);
        let get = |k: &str| {
            r.attributes
                .iter()
                .find(|a| a.key == k)
                .map(|a| a.value.clone())
        };
        assert_eq!(get("service.name"), Some(Value::from("payments")));
        assert_eq!(Value::from("x"), Value::from("x".to_owned()));
        assert_eq!(get("cloud.region"), Some(Value::from("eu-west-1")));
        assert_eq!(get("cloud.account.id"), Some(Value::from("210987654321")));
        assert_eq!(get("faas.version"), Some(Value::from("7")));
        let r = Resource::for_execution(&arn, Some("checkout"));
        assert_eq!(r.attributes[0].value, Value::from("checkout"));
        let emu = ExecutionArn::parse("a/b").unwrap();
        let r = Resource::for_execution(&emu, None);
        assert_eq!(r.attributes[0].value, Value::from("unknown_service"));
        assert!(r.attributes.iter().all(|a| a.key != "cloud.region"));
    }
}
