//! Raw-JSON histories: what the API sends, what `aws lambda get-durable-execution-history`
//! prints, and what people save.
//!
//! Accepted input: one response `{"Events": [...], "NextMarker"?}`, a JSON array of responses,
//! or several responses concatenated or newline-delimited. Timestamps are epoch-second numbers
//! (wire) or ISO-8601 strings (CLI), up to [`crate::time::MAX_EPOCH_SECONDS`] either way (beyond
//! that, an error with the position); times a span cannot carry are kept as read, for the fold to
//! report. Absent details are tolerated; unknown EventTypes are kept.
//!
//! Read with sonic-rs (SIMD string scanning and validation) through serde, into raw types that
//! borrow text from the input where it has no escapes: the EventType, which is only matched,
//! and the operation's id, name, parent and subtype, each made shared text once.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{
    Anomaly, ErrorInfo, Event, EventDetails, OperationRef, Payload, RetryDetails, nonempty,
    nonzero, present_time,
};
use crate::time::Timestamp;

/// A history read from JSON: events in EventId order, duplicates collapsed.
#[derive(Debug, Default)]
pub struct ParsedHistory {
    pub events: Vec<Event>,
    /// How many responses (pages) the input held.
    pub pages: usize,
    /// Identical copies of an event dropped (overlapping pages: harmless).
    pub duplicates: usize,
    /// Copies of an EventId whose contents differ from the first copy read (which is kept): one
    /// `ConflictingDuplicateEvent` anomaly each, for the shell to report.
    pub conflicts: Vec<Anomaly>,
    /// The NextMarker of the last page, when it had one.
    pub next_marker: Option<String>,
}

/// Bad JSON, or JSON that is not a history, with where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<sonic_rs::Error> for ParseError {
    fn from(e: sonic_rs::Error) -> Self {
        // sonic-rs appends " at line L column C" and a snippet of the input to its Display;
        // keep the bare message.
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        let message = match full.find(&format!(" at line {line} column {column}")) {
            Some(i) => full[..i].to_owned(),
            None => full,
        };
        ParseError {
            line,
            column,
            message,
        }
    }
}

/// Parses every response in `bytes` and returns the merged, ordered history.
pub fn parse_history(bytes: &[u8]) -> Result<ParsedHistory, ParseError> {
    let mut out = ParsedHistory::default();
    let mut stream = sonic_rs::Deserializer::from_slice(bytes).into_stream::<Doc>();
    for doc in stream.by_ref() {
        match doc? {
            Doc::Page(p) => out.add(p),
            Doc::Pages(ps) => ps.into_iter().for_each(|p| out.add(p)),
        }
    }
    if out.pages == 0 {
        return Err(ParseError {
            line: 1,
            column: 1,
            message: "no history in the input: expected {\"Events\": [...]}".into(),
        });
    }
    let found = super::normalize(&mut out.events);
    out.duplicates = found.repeats;
    out.conflicts = found.conflicts;
    Ok(out)
}

/// Parses one GetDurableExecutionHistory response body (as the daemon's tests and the simulator
/// see it), keeping events in the order given.
pub fn parse_page(bytes: &[u8]) -> Result<Page, ParseError> {
    Ok(sonic_rs::from_slice(bytes)?)
}

impl ParsedHistory {
    fn add(&mut self, p: Page) {
        self.pages += 1;
        if self.events.is_empty() {
            self.events = p.events;
        } else {
            self.events.extend(p.events);
        }
        self.next_marker = p.next_marker;
    }
}

enum Doc {
    Page(Page),
    Pages(Vec<Page>),
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DocVisitor;
        impl<'de> Visitor<'de> for DocVisitor {
            type Value = Doc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a history response {\"Events\": [...]} or an array of them")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Doc, A::Error> {
                Page::deserialize(de::value::MapAccessDeserializer::new(map)).map(Doc::Page)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
                let mut pages = Vec::new();
                while let Some(p) = seq.next_element::<Page>()? {
                    pages.push(p);
                }
                Ok(Doc::Pages(pages))
            }
        }
        d.deserialize_any(DocVisitor)
    }
}

/// One GetDurableExecutionHistory response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Page {
    pub events: Vec<Event>,
    #[serde(default)]
    pub next_marker: Option<String>,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawEvent::<'de>::deserialize(d)?
            .into_event()
            .map_err(de::Error::custom)
    }
}

/// A timestamp in either form.
struct Ts(Timestamp);

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("epoch seconds or an ISO-8601 date-time")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ts, E> {
                Timestamp::from_secs_f64(v)
                    .map(Ts)
                    .ok_or_else(|| E::custom(format!("timestamp {v} is out of range")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ts, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ts, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ts, E> {
                Timestamp::parse_iso8601(v)
                    .map(Ts)
                    .ok_or_else(|| E::custom(format!("not an ISO-8601 date-time: {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A whole number of seconds (or a count) that is never negative; floats are rounded.
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count)
                    .map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                if (0.0..1.8e19).contains(&v) {
                    Ok(Count(v.round() as u64))
                } else {
                    Err(E::custom(format!("{v} is not a non-negative number")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Count>::deserialize(d)?.map(|c| c.0))
}

fn ts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    Ok(Option::<Ts>::deserialize(d)?.map(|t| t.0))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPayload {
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    truncated: Option<bool>,
}

impl From<RawPayload> for Payload {
    fn from(r: RawPayload) -> Self {
        Payload {
            payload: r.payload,
            truncated: r.truncated.unwrap_or(false),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawErrorObject {
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_data: Option<String>,
    #[serde(default)]
    stack_trace: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawError {
    #[serde(default)]
    payload: Option<RawErrorObject>,
    #[serde(default)]
    truncated: Option<bool>,
}

impl From<RawError> for ErrorInfo {
    fn from(r: RawError) -> Self {
        let p = r.payload.unwrap_or_default();
        ErrorInfo {
            error_type: p.error_type,
            error_message: p.error_message,
            error_data: p.error_data,
            stack_trace: p.stack_trace.unwrap_or_default(),
            truncated: r.truncated.unwrap_or(false),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRetry {
    #[serde(default, deserialize_with = "count")]
    current_attempt: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    next_attempt_delay_seconds: Option<u64>,
}

impl From<RawRetry> for RetryDetails {
    fn from(r: RawRetry) -> Self {
        RetryDetails {
            current_attempt: r.current_attempt.map(|a| a.min(u64::from(u32::MAX)) as u32),
            next_attempt_delay_seconds: r.next_attempt_delay_seconds,
        }
    }
}

/// Details that hold one result.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct WithResult {
    #[serde(default)]
    result: Option<RawPayload>,
    #[serde(default)]
    retry_details: Option<RawRetry>,
}

/// Details that hold one error.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct WithError {
    #[serde(default)]
    error: Option<RawError>,
    #[serde(default)]
    retry_details: Option<RawRetry>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawExecutionStarted {
    #[serde(default)]
    input: Option<RawPayload>,
    #[serde(default, deserialize_with = "count")]
    execution_timeout: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawWait {
    #[serde(default, deserialize_with = "count")]
    duration: Option<u64>,
    #[serde(default, deserialize_with = "ts")]
    scheduled_end_timestamp: Option<Timestamp>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawChainedInvokeStarted {
    #[serde(default)]
    function_name: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    input: Option<RawPayload>,
    #[serde(default)]
    executed_version: Option<String>,
    #[serde(default)]
    durable_execution_arn: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawCallbackStarted {
    #[serde(default)]
    callback_id: Option<String>,
    #[serde(default, deserialize_with = "count")]
    timeout: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    heartbeat_timeout: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawInvocationCompleted {
    #[serde(default, deserialize_with = "ts")]
    start_timestamp: Option<Timestamp>,
    #[serde(default, deserialize_with = "ts")]
    end_timestamp: Option<Timestamp>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    error: Option<RawError>,
}

/// The event as it is on the wire: every details key optional; the EventType picks the one used.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEvent<'a> {
    /// Borrowed from the input where it has no escapes: it is matched, not kept.
    #[serde(default, borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "count")]
    event_id: Option<u64>,
    #[serde(default, deserialize_with = "ts")]
    event_timestamp: Option<Timestamp>,
    /// The operation's fields, borrowed where they have no escapes and made shared text once.
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sub_type: Option<Cow<'a, str>>,
    #[serde(default)]
    execution_started_details: Option<RawExecutionStarted>,
    /// Any of the five `*SucceededDetails`: the EventType says which.
    #[serde(
        default,
        rename = "ExecutionSucceededDetails",
        alias = "ContextSucceededDetails",
        alias = "StepSucceededDetails",
        alias = "ChainedInvokeSucceededDetails",
        alias = "CallbackSucceededDetails"
    )]
    succeeded_details: Option<WithResult>,
    /// Any of the details that hold an error.
    #[serde(
        default,
        rename = "ExecutionFailedDetails",
        alias = "ExecutionTimedOutDetails",
        alias = "ExecutionStoppedDetails",
        alias = "ContextFailedDetails",
        alias = "WaitCancelledDetails",
        alias = "StepFailedDetails",
        alias = "ChainedInvokeFailedDetails",
        alias = "ChainedInvokeTimedOutDetails",
        alias = "ChainedInvokeStoppedDetails",
        alias = "CallbackFailedDetails",
        alias = "CallbackTimedOutDetails"
    )]
    error_details: Option<WithError>,
    /// WaitStartedDetails or WaitSucceededDetails.
    #[serde(default, alias = "WaitSucceededDetails")]
    wait_started_details: Option<RawWait>,
    #[serde(default)]
    chained_invoke_started_details: Option<RawChainedInvokeStarted>,
    #[serde(default)]
    callback_started_details: Option<RawCallbackStarted>,
    #[serde(default)]
    invocation_completed_details: Option<RawInvocationCompleted>,
    // ContextStartedDetails and StepStartedDetails are empty objects: ignored with the rest.
}

impl RawEvent<'_> {
    fn into_event(self) -> Result<Event, String> {
        let event_type = self.event_type.ok_or("an event without EventType")?;
        let id = self
            .event_id
            .ok_or_else(|| format!("a {event_type} event without EventId"))?;
        let timestamp = self
            .event_timestamp
            .ok_or_else(|| format!("event {id} ({event_type}) has no EventTimestamp"))?;
        let result = || self.succeeded_details.unwrap_or_default();
        let err = || self.error_details.unwrap_or_default();
        use EventDetails as D;
        let details = match &*event_type {
            "ExecutionStarted" => {
                let d = self.execution_started_details.unwrap_or_default();
                D::ExecutionStarted {
                    input: d.input.map(Into::into),
                    execution_timeout_seconds: nonzero(d.execution_timeout),
                }
            }
            "ExecutionSucceeded" => D::ExecutionSucceeded {
                result: result().result.map(Into::into),
            },
            "ContextSucceeded" => D::ContextSucceeded {
                result: result().result.map(Into::into),
            },
            "ChainedInvokeSucceeded" => D::ChainedInvokeSucceeded {
                result: result().result.map(Into::into),
            },
            "CallbackSucceeded" => D::CallbackSucceeded {
                result: result().result.map(Into::into),
            },
            "StepSucceeded" => {
                let r = result();
                D::StepSucceeded {
                    result: r.result.map(Into::into),
                    retry: r
                        .retry_details
                        .and_then(|r| RetryDetails::from(r).meaningful()),
                }
            }
            "StepFailed" => {
                let e = err();
                D::StepFailed {
                    error: e.error.map(Into::into),
                    retry: e
                        .retry_details
                        .and_then(|r| RetryDetails::from(r).meaningful()),
                }
            }
            "ExecutionFailed" => D::ExecutionFailed {
                error: err().error.map(Into::into),
            },
            "ExecutionTimedOut" => D::ExecutionTimedOut {
                error: err().error.map(Into::into),
            },
            "ExecutionStopped" => D::ExecutionStopped {
                error: err().error.map(Into::into),
            },
            "ContextFailed" => D::ContextFailed {
                error: err().error.map(Into::into),
            },
            "WaitCancelled" => D::WaitCancelled {
                error: err().error.map(Into::into),
            },
            "ChainedInvokeFailed" => D::ChainedInvokeFailed {
                error: err().error.map(Into::into),
            },
            "ChainedInvokeTimedOut" => D::ChainedInvokeTimedOut {
                error: err().error.map(Into::into),
            },
            "ChainedInvokeStopped" => D::ChainedInvokeStopped {
                error: err().error.map(Into::into),
            },
            "CallbackFailed" => D::CallbackFailed {
                error: err().error.map(Into::into),
            },
            "CallbackTimedOut" => D::CallbackTimedOut {
                error: err().error.map(Into::into),
            },
            "ContextStarted" => D::ContextStarted,
            "StepStarted" => D::StepStarted,
            "WaitStarted" => {
                let w = self.wait_started_details.unwrap_or_default();
                D::WaitStarted {
                    duration_seconds: nonzero(w.duration),
                    scheduled_end: present_time(w.scheduled_end_timestamp),
                }
            }
            "WaitSucceeded" => D::WaitSucceeded {
                duration_seconds: nonzero(self.wait_started_details.unwrap_or_default().duration),
            },
            "ChainedInvokeStarted" => {
                let c = self.chained_invoke_started_details.unwrap_or_default();
                D::ChainedInvokeStarted {
                    function_name: nonempty(c.function_name),
                    tenant_id: c.tenant_id,
                    input: c.input.map(Into::into),
                    executed_version: c.executed_version,
                    durable_execution_arn: c.durable_execution_arn,
                }
            }
            "CallbackStarted" => {
                let c = self.callback_started_details.unwrap_or_default();
                D::CallbackStarted {
                    callback_id: nonempty(c.callback_id),
                    timeout_seconds: c.timeout,
                    heartbeat_timeout_seconds: c.heartbeat_timeout,
                }
            }
            "InvocationCompleted" => {
                let i = self.invocation_completed_details.unwrap_or_default();
                D::InvocationCompleted {
                    start: present_time(i.start_timestamp),
                    end: present_time(i.end_timestamp),
                    request_id: nonempty(i.request_id),
                    error: i.error.map(Into::into),
                }
            }
            _ => D::Unknown {
                event_type: event_type.into_owned(),
            },
        };
        let shared = |s: Option<Cow<'_, str>>| s.map(|s| Arc::<str>::from(&*s));
        let operation = self.id.map(|id| OperationRef {
            id: Arc::from(&*id),
            name: shared(self.name),
            parent_id: shared(self.parent_id),
            sub_type: shared(self.sub_type),
        });
        Ok(Event {
            id,
            timestamp,
            operation,
            details,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Writing: the wire form back (the simulator's pages, the benchmarks' input).

/// Writes events as one `GetDurableExecutionHistory` response body:
/// `{"Events":[...],"NextMarker":"..."}` (NextMarker only when given), compact, keys spelled and
/// ordered as the API sends them, timestamps as epoch seconds with milliseconds
/// (`1795248229.436`), absent fields omitted. Started events carry their empty details object
/// (`"StepStartedDetails":{}`) as the API does; an InvocationCompleted without details carries
/// none; an unknown EventType is written with the common fields only.
///
/// [`parse_history`] reads the output back into equal events.
pub fn to_wire_json(events: &[Event], next_marker: Option<&str>) -> String {
    // Generated events average ~330 bytes with payloads.
    let mut buf = Vec::with_capacity(64 + events.len() * 360);
    buf.extend_from_slice(b"{\"Events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_event(&mut buf, e);
    }
    buf.push(b']');
    if let Some(m) = next_marker {
        buf.extend_from_slice(b",\"NextMarker\":");
        json_string(&mut buf, m);
    }
    buf.push(b'}');
    String::from_utf8(buf).expect("JSON written from UTF-8 strings is UTF-8")
}

// ---------------------------------------------------------------------------------------------
// The wire writer.

fn json_string(buf: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *buf, s).expect("writing a string to a Vec cannot fail");
}

/// One JSON object being written: keys in call order, commas handled.
struct Obj<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(buf: &'a mut Vec<u8>) -> Self {
        buf.push(b'{');
        Obj { buf, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        json_string(self.buf, v);
    }

    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(self.buf, "{v}");
    }

    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.num(k, v);
        }
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
    }

    /// Epoch seconds with up to three decimals, the wire form.
    fn ts(&mut self, k: &str, t: Timestamp) {
        self.key(k);
        let _ = write!(self.buf, "{t}");
    }

    fn opt_ts(&mut self, k: &str, t: Option<Timestamp>) {
        if let Some(t) = t {
            self.ts(k, t);
        }
    }

    fn object(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) {
        self.key(k);
        let mut inner = Obj::open(self.buf);
        f(&mut inner);
        inner.close();
    }

    fn payload(&mut self, k: &str, p: Option<&Payload>) {
        if let Some(p) = p {
            self.object(k, |o| {
                o.bool("Truncated", p.truncated);
                o.opt_str("Payload", p.payload.as_deref());
            });
        }
    }

    fn error(&mut self, k: &str, e: Option<&ErrorInfo>) {
        if let Some(e) = e {
            self.object(k, |o| {
                o.bool("Truncated", e.truncated);
                o.object("Payload", |p| {
                    p.opt_str("ErrorType", e.error_type.as_deref());
                    p.opt_str("ErrorMessage", e.error_message.as_deref());
                    p.opt_str("ErrorData", e.error_data.as_deref());
                    if !e.stack_trace.is_empty() {
                        p.key("StackTrace");
                        p.buf.push(b'[');
                        for (i, line) in e.stack_trace.iter().enumerate() {
                            if i > 0 {
                                p.buf.push(b',');
                            }
                            json_string(p.buf, line);
                        }
                        p.buf.push(b']');
                    }
                });
            });
        }
    }

    fn retry(&mut self, r: Option<&RetryDetails>) {
        if let Some(r) = r {
            self.object("RetryDetails", |o| {
                o.opt_num("CurrentAttempt", r.current_attempt.map(u64::from));
                o.opt_num("NextAttemptDelaySeconds", r.next_attempt_delay_seconds);
            });
        }
    }

    fn close(self) {
        self.buf.push(b'}');
    }
}

fn write_event(buf: &mut Vec<u8>, e: &Event) {
    use EventDetails as D;
    let event_type = e.details.event_type();
    let mut o = Obj::open(buf);
    o.str("EventType", event_type);
    o.ts("EventTimestamp", e.timestamp);
    o.num("EventId", e.id);
    if let Some(r) = &e.operation {
        o.opt_str("SubType", r.sub_type.as_deref());
        o.str("Id", &r.id);
        o.opt_str("Name", r.name.as_deref());
        o.opt_str("ParentId", r.parent_id.as_deref());
    }
    let key = format!("{event_type}Details");
    match &e.details {
        D::ExecutionStarted {
            input,
            execution_timeout_seconds,
        } => o.object(&key, |d| {
            d.payload("Input", input.as_ref());
            d.opt_num("ExecutionTimeout", *execution_timeout_seconds);
        }),
        D::ExecutionSucceeded { result }
        | D::ContextSucceeded { result }
        | D::ChainedInvokeSucceeded { result }
        | D::CallbackSucceeded { result } => {
            o.object(&key, |d| d.payload("Result", result.as_ref()))
        }
        D::StepSucceeded { result, retry } => o.object(&key, |d| {
            d.payload("Result", result.as_ref());
            d.retry(retry.as_ref());
        }),
        D::StepFailed { error, retry } => o.object(&key, |d| {
            d.error("Error", error.as_ref());
            d.retry(retry.as_ref());
        }),
        D::ExecutionFailed { error }
        | D::ExecutionTimedOut { error }
        | D::ExecutionStopped { error }
        | D::ContextFailed { error }
        | D::WaitCancelled { error }
        | D::ChainedInvokeFailed { error }
        | D::ChainedInvokeTimedOut { error }
        | D::ChainedInvokeStopped { error }
        | D::CallbackFailed { error }
        | D::CallbackTimedOut { error } => o.object(&key, |d| d.error("Error", error.as_ref())),
        D::ContextStarted | D::StepStarted => o.object(&key, |_| {}),
        D::WaitStarted {
            duration_seconds,
            scheduled_end,
        } => o.object(&key, |d| {
            d.opt_num("Duration", *duration_seconds);
            d.opt_ts("ScheduledEndTimestamp", *scheduled_end);
        }),
        D::WaitSucceeded { duration_seconds } => {
            o.object(&key, |d| d.opt_num("Duration", *duration_seconds))
        }
        D::ChainedInvokeStarted {
            function_name,
            tenant_id,
            input,
            executed_version,
            durable_execution_arn,
        } => o.object(&key, |d| {
            d.opt_str("FunctionName", function_name.as_deref());
            d.payload("Input", input.as_ref());
            d.opt_str("ExecutedVersion", executed_version.as_deref());
            d.opt_str("DurableExecutionArn", durable_execution_arn.as_deref());
            d.opt_str("TenantId", tenant_id.as_deref());
        }),
        D::CallbackStarted {
            callback_id,
            timeout_seconds,
            heartbeat_timeout_seconds,
        } => o.object(&key, |d| {
            d.opt_str("CallbackId", callback_id.as_deref());
            d.opt_num("Timeout", *timeout_seconds);
            d.opt_num("HeartbeatTimeout", *heartbeat_timeout_seconds);
        }),
        D::InvocationCompleted {
            start,
            end,
            request_id,
            error,
        } => {
            // The emulator sends none of these; write the object only when something is in it.
            if start.is_some() || end.is_some() || request_id.is_some() || error.is_some() {
                o.object(&key, |d| {
                    d.opt_ts("StartTimestamp", *start);
                    d.opt_ts("EndTimestamp", *end);
                    d.opt_str("RequestId", request_id.as_deref());
                    d.error("Error", error.as_ref());
                });
            }
        }
        D::Unknown { .. } => {}
    }
    o.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1: &str = r#"{"EventType":"ExecutionStarted","EventTimestamp":1795248229.082658,"EventId":1,"Id":"x","ExecutionStartedDetails":{"Input":{"Truncated":false,"Payload":"{}"},"ExecutionTimeout":120}}"#;
    const E2: &str = r#"{"EventType":"StepStarted","EventTimestamp":1795248229.435674,"EventId":2,"SubType":"Step","Id":"s","Name":"a","StepStartedDetails":{}}"#;
    const E3: &str = r#"{"EventType":"StepSucceeded","EventTimestamp":1795248229.435674,"EventId":3,"SubType":"Step","Id":"s","Name":"a","StepSucceededDetails":{"Result":{"Truncated":false}}}"#;

    fn page(events: &[&str], marker: Option<&str>) -> String {
        let m = marker.map_or(String::new(), |m| format!(",\"NextMarker\":\"{m}\""));
        format!("{{\"Events\":[{}]{m}}}", events.join(","))
    }

    #[test]
    fn every_input_form_gives_the_same_history() {
        let one = parse_history(page(&[E1, E2, E3], None).as_bytes()).unwrap();
        assert_eq!(one.events.len(), 3);
        let p1 = page(&[E1, E2], Some("2"));
        let p2 = page(&[E2, E3], None);
        let forms = [
            format!("[{p1},{p2}]"),
            format!("{p1}{p2}"),
            format!("{p1}\n{p2}\n"),
            format!("{p2}\n{p1}"),
        ];
        for f in forms {
            let h = parse_history(f.as_bytes()).unwrap();
            assert_eq!(h.events, one.events, "{f}");
            assert_eq!(h.pages, 2);
            assert_eq!(h.duplicates, 1);
            assert!(h.conflicts.is_empty());
        }
    }

    #[test]
    fn a_conflicting_copy_across_pages_is_reported_and_the_first_kept() {
        let e2_failed = E2.replace("StepStarted", "StepFailed");
        let h = parse_history(
            format!(
                "{}{}",
                page(&[E1, E2], Some("2")),
                page(&[&e2_failed, E3], None)
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(h.events.len(), 3);
        assert_eq!(h.events[1].details, EventDetails::StepStarted);
        assert_eq!(h.duplicates, 0);
        assert_eq!(h.conflicts.len(), 1);
        assert_eq!(h.conflicts[0].event_id, 2);
        assert_eq!(
            h.conflicts[0].kind,
            super::super::AnomalyKind::ConflictingDuplicateEvent
        );
    }

    #[test]
    fn iso_timestamps_equal_epoch_numbers() {
        let wire = parse_history(page(&[E1, E2], None).as_bytes()).unwrap();
        let cli = page(
            &[
                &E1.replace("1795248229.082658", "\"2026-11-21T08:03:49.082658+00:00\""),
                &E2.replace("1795248229.435674", "\"2026-11-21T08:03:49.435674+00:00\""),
            ],
            None,
        );
        let cli = parse_history(cli.as_bytes()).unwrap();
        assert_eq!(cli.events, wire.events);
        assert_eq!(wire.events[0].timestamp, Timestamp(1_795_248_229_083));
    }

    #[test]
    fn times_out_of_the_drawable_range_are_read_as_they_are() {
        let h = parse_history(
            page(
                &[
                    r#"{"EventType":"StepStarted","EventTimestamp":-1e12,"EventId":1,"Id":"s"}"#,
                    r#"{"EventType":"StepStarted","EventTimestamp":2.5e14,"EventId":2,"Id":"t"}"#,
                    r#"{"EventType":"StepStarted","EventTimestamp":"1900-01-01T00:00:00Z","EventId":3,"Id":"u"}"#,
                    r#"{"EventType":"InvocationCompleted","EventTimestamp":4,"EventId":4,"InvocationCompletedDetails":{"StartTimestamp":-2,"EndTimestamp":0}}"#,
                    r#"{"EventType":"WaitStarted","EventTimestamp":5,"EventId":5,"Id":"w","WaitStartedDetails":{"ScheduledEndTimestamp":"9999-12-31T23:59:59Z"}}"#,
                ],
                None,
            )
            .as_bytes(),
        )
        .unwrap();
        let undrawable = |i: usize| -> Vec<(&str, i64)> {
            h.events[i]
                .undrawable_timestamps()
                .map(|(f, t)| (f, t.millis()))
                .collect()
        };
        assert_eq!(undrawable(0), [("EventTimestamp", -1_000_000_000_000_000)]);
        assert_eq!(undrawable(1), [("EventTimestamp", 250_000_000_000_000_000)]);
        assert_eq!(undrawable(2), [("EventTimestamp", -2_208_988_800_000)]);
        // A details time before the epoch is kept; 0 stays "absent" (the SDK's placeholder).
        assert_eq!(undrawable(3), [("StartTimestamp", -2000)]);
        assert_eq!(
            h.events[3].details,
            EventDetails::InvocationCompleted {
                start: Some(Timestamp(-2000)),
                end: None,
                request_id: None,
                error: None
            }
        );
        assert_eq!(
            undrawable(4),
            [("ScheduledEndTimestamp", 253_402_300_799_000)]
        );
        // Beyond 1e15 s (where milliseconds and their differences could overflow): refused.
        let e = parse_history(
            page(
                &[r#"{"EventType":"StepStarted","EventTimestamp":-1.5e15,"EventId":1}"#],
                None,
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
    }

    #[test]
    fn absent_details_and_unknown_types_are_tolerated() {
        let h = parse_history(
            page(
                &[
                    r#"{"EventType":"InvocationCompleted","EventTimestamp":1,"EventId":1}"#,
                    r#"{"EventType":"ExecutionPaused","EventTimestamp":2,"EventId":2,"ExecutionPausedDetails":{"X":1}}"#,
                    r#"{"EventType":"StepSucceeded","EventTimestamp":3,"EventId":3,"Id":"s"}"#,
                ],
                None,
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            h.events[0].details,
            EventDetails::InvocationCompleted {
                start: None,
                end: None,
                request_id: None,
                error: None
            }
        );
        assert_eq!(
            h.events[1].details,
            EventDetails::Unknown {
                event_type: "ExecutionPaused".into()
            }
        );
        assert_eq!(
            h.events[2].details,
            EventDetails::StepSucceeded {
                result: None,
                retry: None
            }
        );
    }

    #[test]
    fn details_are_read_for_their_event_type() {
        let h = parse_history(
            page(
                &[
                    r#"{"EventType":"StepFailed","EventTimestamp":1,"EventId":1,"Id":"s","StepFailedDetails":{"Error":{"Truncated":true,"Payload":{"ErrorType":"E","ErrorMessage":"m","ErrorData":"d","StackTrace":["a","b"]}},"RetryDetails":{"CurrentAttempt":2,"NextAttemptDelaySeconds":4}}}"#,
                    r#"{"EventType":"CallbackStarted","EventTimestamp":2,"EventId":2,"Id":"c","CallbackStartedDetails":{"CallbackId":"cb","Timeout":60,"HeartbeatTimeout":10}}"#,
                    r#"{"EventType":"InvocationCompleted","EventTimestamp":3,"EventId":3,"InvocationCompletedDetails":{"StartTimestamp":"1970-01-01T00:00:01.5Z","EndTimestamp":3,"RequestId":"r"}}"#,
                    r#"{"EventType":"WaitSucceeded","EventTimestamp":4,"EventId":4,"Id":"w","WaitSucceededDetails":{"Duration":30}}"#,
                ],
                None,
            )
            .as_bytes(),
        )
        .unwrap();
        let EventDetails::StepFailed { error, retry } = &h.events[0].details else {
            panic!("{:?}", h.events[0])
        };
        let e = error.as_ref().unwrap();
        assert_eq!(
            (
                e.error_type.as_deref(),
                e.error_message.as_deref(),
                e.error_data.as_deref()
            ),
            (Some("E"), Some("m"), Some("d"))
        );
        assert_eq!(e.stack_trace, ["a", "b"]);
        assert!(e.truncated);
        assert_eq!(
            *retry,
            Some(RetryDetails {
                current_attempt: Some(2),
                next_attempt_delay_seconds: Some(4)
            })
        );
        assert_eq!(
            h.events[1].details,
            EventDetails::CallbackStarted {
                callback_id: Some("cb".into()),
                timeout_seconds: Some(60),
                heartbeat_timeout_seconds: Some(10)
            }
        );
        assert_eq!(
            h.events[2].details,
            EventDetails::InvocationCompleted {
                start: Some(Timestamp(1500)),
                end: Some(Timestamp(3000)),
                request_id: Some("r".into()),
                error: None
            }
        );
        assert_eq!(
            h.events[3].details,
            EventDetails::WaitSucceeded {
                duration_seconds: Some(30)
            }
        );
    }

    #[test]
    fn bad_input_is_an_error_with_a_position() {
        let cases: [(&str, usize, &str); 8] = [
            ("", 1, "no history"),
            ("{\"Events\": [", 1, "EOF"),
            (
                "{\"Events\": [{\"EventType\":\"StepStarted\"}]}",
                1,
                "EventId",
            ),
            (
                "{\"Events\": [\n{\"EventId\":1,\"EventTimestamp\":1}]}",
                2,
                "EventType",
            ),
            (
                "{\"Events\": [{\"EventType\":\"X\",\"EventId\":1}]}",
                1,
                "EventTimestamp",
            ),
            (
                "{\"Events\": [{\"EventType\":\"X\",\"EventId\":-1,\"EventTimestamp\":1}]}",
                1,
                "negative",
            ),
            (
                "{\"Events\": [{\"EventType\":\"X\",\"EventId\":1,\"EventTimestamp\":\"yesterday\"}]}",
                1,
                "ISO-8601",
            ),
            ("{\"Items\": []}\n", 1, "Events"),
        ];
        for (input, line, needle) in cases {
            let e = parse_history(input.as_bytes()).unwrap_err();
            assert_eq!(e.line, line, "{input}: {e}");
            assert!(e.message.contains(needle), "{input}: {e}");
            // The position once, in front; no second position or snippet of the input after.
            assert!(
                !e.message.contains(" at line ") && !e.message.contains('\n'),
                "{input}: {e:?}"
            );
        }
        // Bytes that are not UTF-8 inside a string, and a lone surrogate escape: refused with a
        // position, never read into an event.
        let mut bad = b"{\"Events\": [{\"EventType\":\"StepStarted\",\"EventId\":1,\"EventTimestamp\":1,\"Id\":\"".to_vec();
        bad.extend_from_slice(b"op\xff\xfe\"}]}");
        let e = parse_history(&bad).unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        assert!(e.message.to_lowercase().contains("utf-8"), "{e}");
        let lone = br#"{"Events": [{"EventType":"StepStarted","EventId":1,"EventTimestamp":1,"Id":"\ud800"}]}"#;
        assert!(parse_history(lone).is_err());
        let e = parse_history(b"{\"Events\": []}\n\n  nonsense").unwrap_err();
        // Within the bad token (`nonsense`, columns 3 to 10 of line 3).
        assert!(e.line == 3 && (3..=10).contains(&e.column), "{e}");
        // Nesting deep enough to overflow a recursive reader: refused where a value is wanted,
        // skipped (without recursion) in an unknown field; never a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse_history(deep.as_bytes()).unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        let ignored = format!("{{\"Events\": [], \"X\": {deep}}}");
        assert!(parse_history(ignored.as_bytes()).unwrap().events.is_empty());
    }
}
