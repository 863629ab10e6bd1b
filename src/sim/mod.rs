//! A simulator of the Lambda durable-execution API: generated executions that progress in real
//! time (or faster), served over the same REST paths as the real service, so the daemon, the
//! demo and the scale benchmark run with no AWS account.
//!
//! [`Simulation`] is the model, pure like the rest of the core: it is told the time on every
//! call. [`server`] puts it behind HTTP with fault injection and a request log; it serves
//! either a generated [`Simulation`] or a [`scripted`] source (executions given as event lists
//! that the caller reveals step by step: the test suite's API fake).
//!
//! - Each execution is a seed. Its history is [`crate::synth::history`] of that seed, its times
//!   compressed by [`SimSpec::speed`], and for a few a fate: stopped or timed out while
//!   suspended. Only the events whose time has come are visible, so histories grow by
//!   appending with stable EventIds, as on the service.
//! - Nothing but a timeline (event times) is kept per execution; pages are generated again
//!   from the seed when asked for. 10,000 executions take a few tens of megabytes.
//! - Callbacks answered through the API (`succeed`, `fail`) replace the planned outcome: it
//!   happens now, and the rest of the execution moves earlier by the time saved.
//! - Markers are opaque and stateless ([`markers`]); they expire after
//!   [`SimSpec::marker_ttl`].

pub mod markers;
pub mod publish;
pub mod scripted;
pub mod server;
pub mod wire;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::history::json::to_wire_json;
use crate::history::{ErrorInfo, Event, EventDetails, Payload};
use crate::synth::{Rng, SynthSpec};
use crate::time::Timestamp;
use markers::{MarkerCodec, MarkerError, MarkerScope};
use wire::{Params, Reply};

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSpec {
    /// Every choice follows from it: the same spec gives the same executions.
    pub seed: u64,
    /// Executions running when the simulation starts (started during the last `spread`).
    pub executions: usize,
    /// How far back the initial executions started (real time).
    pub spread: Duration,
    /// New executions per minute after the start, evenly spaced.
    pub arrivals_per_minute: f64,
    /// No more executions than this, initial ones included.
    pub max_executions: usize,
    /// Time compression: 1 is real time; 60 makes an hour-long wait last a minute.
    pub speed: f64,
    /// Functions, `name` or `name:qualifier` (default qualifier `$LATEST`).
    pub functions: Vec<String>,
    /// Operations per execution, inclusive.
    pub min_operations: usize,
    pub max_operations: usize,
    /// Executions stopped by an operator while suspended, in percent.
    pub stopped_percent: u8,
    /// Executions that run into their ExecutionTimeout while suspended, in percent.
    pub timed_out_percent: u8,
    pub region: String,
    pub account: String,
    /// Markers older than this are refused as expired (real time).
    pub marker_ttl: Duration,
}

impl Default for SimSpec {
    fn default() -> Self {
        SimSpec {
            seed: 1,
            executions: 100,
            spread: Duration::from_secs(60),
            arrivals_per_minute: 0.0,
            max_executions: 1_000_000,
            speed: 1.0,
            functions: DEFAULT_FUNCTIONS.iter().map(|s| s.to_string()).collect(),
            min_operations: 4,
            max_operations: 40,
            stopped_percent: 3,
            timed_out_percent: 3,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            marker_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

pub const DEFAULT_FUNCTIONS: [&str; 4] = [
    "order-processor",
    "payment-workflow",
    "shipment-tracker",
    "customer-onboarding",
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimSpecError {
    #[error("speed must be a finite number >= 1 (got {0})")]
    Speed(f64),
    #[error("at least one function is needed")]
    NoFunctions,
    #[error("function {0:?} is not a valid name or name:qualifier, or is listed twice")]
    Function(String),
    #[error("operations: min {0} must be between 1 and max {1}, max at most 3000")]
    Operations(usize, usize),
    #[error("stopped_percent + timed_out_percent must be at most 100")]
    Fates,
    #[error("arrivals_per_minute must be a finite number >= 0 (got {0})")]
    Arrivals(f64),
}

impl SimSpec {
    pub fn validate(&self) -> Result<(), SimSpecError> {
        if !self.speed.is_finite() || self.speed < 1.0 {
            return Err(SimSpecError::Speed(self.speed));
        }
        if self.functions.is_empty() {
            return Err(SimSpecError::NoFunctions);
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.functions {
            // A Lambda function name (letters, digits, `-`, `_`; at most 64), optionally with a
            // qualifier (`$LATEST`, a version or an alias).
            let word = |s: &str, max: usize| {
                !s.is_empty()
                    && s.len() <= max
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            };
            let (name, qualifier) = f.split_once(':').unwrap_or((f, "$LATEST"));
            let qualifier_ok = qualifier == "$LATEST" || word(qualifier, 128);
            if !word(name, 64) || !qualifier_ok || !names.insert(name) {
                return Err(SimSpecError::Function(f.clone()));
            }
        }
        if self.min_operations == 0
            || self.min_operations > self.max_operations
            || self.max_operations > crate::synth::MAX_OPERATIONS
        {
            return Err(SimSpecError::Operations(
                self.min_operations,
                self.max_operations,
            ));
        }
        if u16::from(self.stopped_percent) + u16::from(self.timed_out_percent) > 100 {
            return Err(SimSpecError::Fates);
        }
        if !self.arrivals_per_minute.is_finite() || self.arrivals_per_minute < 0.0 {
            return Err(SimSpecError::Arrivals(self.arrivals_per_minute));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct SimFunction {
    name: String,
    qualifier: String,
    /// `arn:aws:lambda:R:A:function:NAME`.
    arn: String,
    /// Executions carry an X-Ray TraceHeader (active tracing on).
    traced: bool,
}

/// What happens to an execution besides its generated course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Completes,
    /// Ends after the first `keep` events with ExecutionStopped at `end_ms`.
    Stopped {
        keep: u32,
        end_ms: i64,
    },
    /// Ends after the first `keep` events with ExecutionTimedOut; ExecutionTimeout is
    /// `timeout_s`.
    TimedOut {
        keep: u32,
        timeout_s: u64,
    },
}

/// A callback answered through the API.
#[derive(Debug, Clone)]
struct Answer {
    /// The outcome event's index.
    index: u32,
    at_ms: i64,
    outcome: EventDetails,
}

#[derive(Debug, Clone)]
struct SimExecution {
    arn: Box<str>,
    name: Box<str>,
    id: Box<str>,
    function: u32,
    seed: u64,
    operations: u16,
    start_ms: i64,
    fate: Fate,
    answers: Vec<Answer>,
    /// Each event's time (ms); the whole course, visible or not.
    timeline: Box<[i64]>,
    /// The terminal status the course ends in.
    terminal: &'static str,
    trace_header: Option<Box<str>>,
}

impl SimExecution {
    fn visible(&self, now_ms: i64) -> usize {
        self.timeline.partition_point(|&t| t <= now_ms)
    }

    fn status(&self, now_ms: i64) -> &'static str {
        if self.visible(now_ms) == self.timeline.len() {
            self.terminal
        } else {
            "RUNNING"
        }
    }

    fn end_ms(&self, now_ms: i64) -> Option<i64> {
        (self.visible(now_ms) == self.timeline.len())
            .then(|| self.timeline.last().copied())
            .flatten()
    }
}

#[derive(Debug, Clone, Copy)]
struct CallbackRef {
    execution: u32,
    started: u32,
    /// The planned outcome event, if the execution gets that far.
    outcome: Option<u32>,
}

/// Counts by status, for summaries.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimSummary {
    pub executions: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub stopped: usize,
    /// Events visible now, over all executions.
    pub events: u64,
}

impl SimSummary {
    /// Counts one execution, in `status`, with `events` visible.
    pub(crate) fn add(&mut self, status: &str, events: u64) {
        self.executions += 1;
        self.events += events;
        match status {
            "RUNNING" => self.running += 1,
            "SUCCEEDED" => self.succeeded += 1,
            "FAILED" => self.failed += 1,
            "TIMED_OUT" => self.timed_out += 1,
            _ => self.stopped += 1,
        }
    }
}

/// The simulated service.
pub struct Simulation {
    spec: SimSpec,
    codec: MarkerCodec,
    origin_ms: i64,
    functions: Vec<SimFunction>,
    executions: Vec<SimExecution>,
    by_arn: HashMap<Box<str>, u32>,
    callbacks: HashMap<Box<str>, CallbackRef>,
}

impl Simulation {
    /// Creates the initial executions, as of `now_ms`.
    pub fn new(spec: SimSpec, now_ms: i64) -> Result<Self, SimSpecError> {
        spec.validate()?;
        let functions = spec
            .functions
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (name, qualifier) = wire::function_ref(f).expect("validated");
                SimFunction {
                    arn: format!(
                        "arn:aws:lambda:{}:{}:function:{name}",
                        spec.region, spec.account
                    ),
                    name,
                    qualifier: qualifier.unwrap_or_else(|| "$LATEST".into()),
                    traced: i % 2 == 0,
                }
            })
            .collect();
        let mut sim = Simulation {
            codec: MarkerCodec::new(spec.seed),
            origin_ms: now_ms,
            functions,
            executions: Vec::with_capacity(spec.executions),
            by_arn: HashMap::with_capacity(spec.executions),
            callbacks: HashMap::new(),
            spec,
        };
        let spread = sim.spec.spread.as_millis() as i64;
        let initial = sim.spec.executions.min(sim.spec.max_executions);
        for i in 0..initial {
            let mut d =
                Rng(sim.spec.seed ^ (i as u64 ^ 0x5eed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let start = now_ms - d.below(spread.max(0) as u64 + 1) as i64;
            sim.create(start);
        }
        Ok(sim)
    }

    pub fn spec(&self) -> &SimSpec {
        &self.spec
    }

    pub fn len(&self) -> usize {
        self.executions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.executions.is_empty()
    }

    /// Every execution ARN, in creation order.
    pub fn arns(&self) -> impl Iterator<Item = &str> {
        self.executions.iter().map(|x| &*x.arn)
    }

    /// Function names with their qualifier (`name:qualifier`).
    pub fn functions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.functions
            .iter()
            .map(|f| (f.name.as_str(), f.qualifier.as_str()))
    }

    /// An execution's status now; None for an ARN the simulation does not have.
    pub fn status(&self, arn: &str, now_ms: i64) -> Option<&'static str> {
        let &i = self.by_arn.get(arn)?;
        Some(self.executions[i as usize].status(now_ms))
    }

    /// The events of an execution visible now, what reading its whole history returns.
    pub fn visible_events(&self, arn: &str, now_ms: i64) -> Option<Vec<Event>> {
        let &i = self.by_arn.get(arn)?;
        let x = &self.executions[i as usize];
        let mut events = self.events(x);
        events.truncate(x.visible(now_ms));
        Some(events)
    }

    /// The status-change events Lambda would have published (EventBridge envelopes) for every
    /// execution whose status at `now_ms` is not the one in `seen` (by creation order; grown
    /// and updated): RUNNING when it starts, then its terminal status when it ends.
    pub fn status_events(&self, seen: &mut Vec<Option<&'static str>>, now_ms: i64) -> Vec<Value> {
        use crate::status_event::{Status, envelope};
        seen.resize(self.executions.len(), None);
        let iso = |ms: i64| crate::time::Timestamp::from_millis(ms).to_iso8601();
        let mut out = Vec::new();
        for (i, x) in self.executions.iter().enumerate() {
            if x.start_ms > now_ms {
                continue;
            }
            let now = x.status(now_ms);
            if seen[i] == Some(now) {
                continue;
            }
            let f = &self.functions[x.function as usize];
            let function_arn = format!("{}:{}", f.arn, f.qualifier);
            let start = iso(x.start_ms);
            let mut publish = |status: Status, end: Option<i64>| {
                out.push(envelope(
                    &x.arn,
                    &x.name,
                    &function_arn,
                    status,
                    &start,
                    end.map(iso).as_deref(),
                    &format!("{}-{}", x.id, status.as_str()),
                ));
            };
            if seen[i].is_none() {
                publish(Status::Running, None);
            }
            if now != "RUNNING"
                && let Some(status) = [
                    Status::Succeeded,
                    Status::Failed,
                    Status::TimedOut,
                    Status::Stopped,
                ]
                .into_iter()
                .find(|s| s.as_str() == now)
            {
                publish(status, x.end_ms(now_ms));
            }
            seen[i] = Some(now);
        }
        out
    }

    /// Starts the executions whose arrival time has come.
    pub fn advance(&mut self, now_ms: i64) {
        if self.spec.arrivals_per_minute <= 0.0 {
            return;
        }
        let every = 60_000.0 / self.spec.arrivals_per_minute;
        let due = ((now_ms - self.origin_ms) as f64 / every).floor().max(0.0) as usize;
        let arrived = self.executions.len() - self.spec.executions.min(self.spec.max_executions);
        for k in arrived..due {
            if self.executions.len() >= self.spec.max_executions {
                break;
            }
            let start = self.origin_ms + ((k + 1) as f64 * every) as i64;
            self.create(start);
        }
    }

    fn create(&mut self, start_ms: i64) {
        let index = self.executions.len() as u32;
        let mut d = Rng(self.spec.seed.wrapping_mul(0x1000_0000_01b3) ^ u64::from(index));
        let seed = d.next_u64();
        let span = (self.spec.max_operations - self.spec.min_operations) as u64 + 1;
        let operations = self.spec.min_operations + d.below(span) as usize;
        let function = d.below(self.functions.len() as u64) as u32;
        let f = &self.functions[function as usize];
        let name = format!("{}-{}", f.name, d.hex(8));
        let id = d.uuid();
        let arn = format!("{}:{}/durable-execution/{name}/{id}", f.arn, f.qualifier);
        let trace_header = f.traced.then(|| {
            format!(
                "Root=1-{:08x}-{};Parent={};Sampled=1",
                start_ms / 1000,
                d.hex(24),
                d.hex(16)
            )
            .into_boxed_str()
        });
        let fate_roll = d.below(100);
        let cut_roll = d.unit();
        let end_roll = d.unit();
        let mut x = SimExecution {
            arn: arn.into(),
            name: name.into(),
            id: id.into(),
            function,
            seed,
            operations: operations as u16,
            start_ms,
            fate: Fate::Completes,
            answers: Vec::new(),
            timeline: Box::new([]),
            terminal: "SUCCEEDED",
            trace_header,
        };
        let course = self.course(&x);
        let stopped = u64::from(self.spec.stopped_percent);
        let timed_out = stopped + u64::from(self.spec.timed_out_percent);
        if fate_roll < timed_out {
            x.fate = fate(&course, start_ms, fate_roll < stopped, cut_roll, end_roll);
        }
        let events = if x.fate == Fate::Completes {
            course
        } else {
            self.events(&x)
        };
        for (i, e) in events.iter().enumerate() {
            if let EventDetails::CallbackStarted {
                callback_id: Some(cb),
                ..
            } = &e.details
            {
                let op = e.operation.as_ref().map(|o| &*o.id);
                let outcome = events[i + 1..]
                    .iter()
                    .position(|o| {
                        o.operation.as_ref().map(|o| &*o.id) == op
                            && matches!(
                                o.details,
                                EventDetails::CallbackSucceeded { .. }
                                    | EventDetails::CallbackFailed { .. }
                                    | EventDetails::CallbackTimedOut { .. }
                            )
                    })
                    .map(|p| (i + 1 + p) as u32);
                self.callbacks.insert(
                    cb.as_str().into(),
                    CallbackRef {
                        execution: index,
                        started: i as u32,
                        outcome,
                    },
                );
            }
        }
        x.terminal = events
            .last()
            .and_then(|e| e.details.terminal_status())
            .map_or("RUNNING", crate::history::Terminal::as_str);
        x.timeline = events.iter().map(|e| e.timestamp.millis()).collect();
        self.by_arn.insert(x.arn.clone(), index);
        self.executions.push(x);
    }

    /// The generated course, its times compressed, before fates and answers.
    fn course(&self, x: &SimExecution) -> Vec<Event> {
        let mut events = crate::synth::history(&SynthSpec {
            operations: usize::from(x.operations),
            seed: x.seed,
            start: Timestamp::from_millis(x.start_ms),
            include_payloads: true,
            finished: true,
        });
        retime(&mut events, x.start_ms, self.spec.speed);
        // The execution's own operation: the ARN's name and id.
        let synth_id = events
            .first()
            .and_then(|e| e.operation.as_ref())
            .map(|o| o.id.clone());
        for e in &mut events {
            if let Some(op) = e
                .operation
                .as_mut()
                .filter(|o| Some(&o.id) == synth_id.as_ref())
            {
                op.id = x.id.to_string().into();
                op.name = Some(x.name.to_string().into());
            }
        }
        events
    }

    /// The whole history as it will be (visible or not).
    fn events(&self, x: &SimExecution) -> Vec<Event> {
        let mut events = self.course(x);
        match x.fate {
            Fate::Completes => {}
            Fate::Stopped { keep, end_ms } => {
                events.truncate(keep as usize);
                push_terminal(
                    &mut events,
                    end_ms,
                    EventDetails::ExecutionStopped {
                        error: Some(ErrorInfo {
                            error_type: Some("OperatorStop".into()),
                            error_message: Some("stopped by operator".into()),
                            ..ErrorInfo::default()
                        }),
                    },
                );
            }
            Fate::TimedOut { keep, timeout_s } => {
                events.truncate(keep as usize);
                if let Some(EventDetails::ExecutionStarted {
                    execution_timeout_seconds,
                    ..
                }) = events.first_mut().map(|e| &mut e.details)
                {
                    *execution_timeout_seconds = Some(timeout_s);
                }
                push_terminal(
                    &mut events,
                    x.start_ms + timeout_s as i64 * 1000,
                    EventDetails::ExecutionTimedOut {
                        error: Some(ErrorInfo {
                            error_message: Some(format!(
                                "Execution timed out after {timeout_s} seconds."
                            )),
                            ..ErrorInfo::default()
                        }),
                    },
                );
            }
        }
        for a in &x.answers {
            let i = a.index as usize;
            let delta = a.at_ms - events[i].timestamp.millis();
            shift(&mut events[i..], delta);
            events[i].details = a.outcome.clone();
        }
        events
    }

    fn lookup(&self, arn: &str) -> Result<(u32, &SimExecution), Reply> {
        wire::check_arn(arn)?;
        self.by_arn
            .get(arn)
            .map(|&i| (i, &self.executions[i as usize]))
            .ok_or_else(|| Reply::not_found(format!("Durable Execution does not exist: {arn}")))
    }

    fn open_marker(&self, token: &str, now_ms: i64) -> Result<MarkerScope, Reply> {
        let ttl = self.spec.marker_ttl.as_millis() as i64;
        self.codec.open(token, now_ms, ttl).map_err(|e| match e {
            MarkerError::Invalid => {
                Reply::invalid(format!("Invalid Marker: the marker {token:?} is not valid"))
            }
            MarkerError::Expired => {
                Reply::invalid(format!("Invalid Marker: the marker {token:?} has expired"))
            }
        })
    }

    /// GetDurableExecutionHistory.
    pub fn history(&self, arn: &str, p: &Params<'_>, now_ms: i64) -> Reply {
        self.try_history(arn, p, now_ms).unwrap_or_else(|e| e)
    }

    fn try_history(&self, arn: &str, p: &Params<'_>, now_ms: i64) -> Result<Reply, Reply> {
        let include = p.bool("IncludeExecutionData")?.unwrap_or(true);
        let max = p.max_items()?;
        let reverse = p.bool("ReverseOrder")?.unwrap_or(false);
        let (index, x) = self.lookup(arn)?;
        let start = match p.one("Marker") {
            None => None,
            Some(token) => match self.open_marker(token, now_ms)? {
                MarkerScope::History {
                    execution,
                    reverse: r,
                    pos,
                } if execution == index && r == reverse => Some(pos as usize),
                _ => {
                    return Err(Reply::invalid(format!(
                        "Invalid Marker: the marker {token:?} belongs to another request"
                    )));
                }
            },
        };
        let visible = x.visible(now_ms);
        let (range, next) = if reverse {
            let upper = start.unwrap_or(visible).min(visible);
            let lower = upper.saturating_sub(max);
            (lower..upper, (lower > 0).then_some(lower))
        } else {
            let lower = start.unwrap_or(0).min(visible);
            let upper = (lower + max).min(visible);
            (lower..upper, (upper < visible).then_some(upper))
        };
        let mut page: Vec<Event> = if range.is_empty() {
            Vec::new()
        } else {
            let mut all = self.events(x);
            all.truncate(range.end);
            all.drain(..range.start);
            all
        };
        if reverse {
            page.reverse();
        }
        if !include {
            page.iter_mut().for_each(strip_payloads);
        }
        let marker = next.map(|pos| {
            self.codec.seal(
                MarkerScope::History {
                    execution: index,
                    reverse,
                    pos: pos as u32,
                },
                now_ms,
            )
        });
        Ok(Reply::ok(to_wire_json(&page, marker.as_deref())))
    }

    /// GetDurableExecution.
    pub fn get_execution(&self, arn: &str, p: &Params<'_>, now_ms: i64) -> Reply {
        let run = || -> Result<Reply, Reply> {
            let include = p.bool("IncludeExecutionData")?.unwrap_or(true);
            let (_, x) = self.lookup(arn)?;
            let mut body = self.summary_json(x, now_ms);
            let f = &self.functions[x.function as usize];
            body.insert("Version".into(), f.qualifier.clone().into());
            if let Some(t) = &x.trace_header {
                body.insert("TraceHeader".into(), json!({ "XAmznTraceId": &**t }));
            }
            let events = self.events(x);
            if include
                && let Some(EventDetails::ExecutionStarted {
                    input:
                        Some(Payload {
                            payload: Some(p), ..
                        }),
                    ..
                }) = events.first().map(|e| &e.details)
            {
                body.insert("InputPayload".into(), p.clone().into());
            }
            if x.end_ms(now_ms).is_some() {
                match events.last().map(|e| &e.details) {
                    Some(EventDetails::ExecutionSucceeded {
                        result:
                            Some(Payload {
                                payload: Some(r), ..
                            }),
                    }) if include => {
                        body.insert("Result".into(), r.clone().into());
                    }
                    Some(
                        EventDetails::ExecutionFailed { error: Some(e) }
                        | EventDetails::ExecutionTimedOut { error: Some(e) }
                        | EventDetails::ExecutionStopped { error: Some(e) },
                    ) => {
                        body.insert("Error".into(), error_object(e));
                    }
                    _ => {}
                }
            }
            Ok(Reply::ok(Value::Object(body).to_string()))
        };
        run().unwrap_or_else(|e| e)
    }

    fn summary_json(&self, x: &SimExecution, now_ms: i64) -> Map<String, Value> {
        let f = &self.functions[x.function as usize];
        let mut v = Map::new();
        v.insert("DurableExecutionArn".into(), (*x.arn).into());
        v.insert("DurableExecutionName".into(), (*x.name).into());
        v.insert(
            "FunctionArn".into(),
            format!("{}:{}", f.arn, f.qualifier).into(),
        );
        v.insert("Status".into(), x.status(now_ms).into());
        v.insert("StartTimestamp".into(), epoch_seconds(x.start_ms));
        if let Some(end) = x.end_ms(now_ms) {
            v.insert("EndTimestamp".into(), epoch_seconds(end));
        }
        v
    }

    /// ListDurableExecutionsByFunction.
    pub fn list(&self, function: &str, p: &Params<'_>, now_ms: i64) -> Reply {
        self.try_list(function, p, now_ms).unwrap_or_else(|e| e)
    }

    fn try_list(&self, function: &str, p: &Params<'_>, now_ms: i64) -> Result<Reply, Reply> {
        let q = wire::ListQuery::parse(function, p)?;
        let Some(fi) = self.functions.iter().position(|f| f.name == q.function) else {
            return Err(Reply::not_found(format!("Function not found: {function}")));
        };
        let anchor = match q.marker {
            None => None,
            Some(token) => match self.open_marker(token, now_ms)? {
                MarkerScope::List {
                    function: f,
                    reverse: r,
                    after_ms,
                    after_index,
                } if f == fi as u32 && r == q.reverse => Some((after_ms, after_index)),
                _ => {
                    return Err(Reply::invalid(format!(
                        "Invalid Marker: the marker {token:?} belongs to another request"
                    )));
                }
            },
        };
        let f = &self.functions[fi];
        let matching: Vec<((i64, u32), &SimExecution)> = if f.qualifier != q.qualifier {
            Vec::new()
        } else {
            self.executions
                .iter()
                .enumerate()
                .filter(|(_, x)| x.function == fi as u32 && x.start_ms <= now_ms)
                .filter(|(_, x)| q.wants(x.status(now_ms), &x.name, Some(x.start_ms * 1000)))
                .map(|(i, x)| ((x.start_ms, i as u32), x))
                .collect()
        };
        let (page, next) = q.page(matching, anchor);
        let items: Vec<Value> = page
            .into_iter()
            .map(|x| Value::Object(self.summary_json(x, now_ms)))
            .collect();
        let mut body = json!({ "DurableExecutions": items });
        if let Some((after_ms, after_index)) = next {
            let scope = MarkerScope::List {
                function: fi as u32,
                reverse: q.reverse,
                after_ms,
                after_index,
            };
            body["NextMarker"] = self.codec.seal(scope, now_ms).into();
        }
        Ok(Reply::ok(body.to_string()))
    }

    /// SendDurableExecutionCallbackSuccess (`result`: the request body, any bytes),
    /// SendDurableExecutionCallbackFailure (`error`: an ErrorObject) or a heartbeat (neither).
    pub fn answer_callback(
        &mut self,
        callback_id: &str,
        answer: CallbackAnswer,
        now_ms: i64,
    ) -> Reply {
        let Some(&cb) = self.callbacks.get(callback_id) else {
            return Reply::not_found(format!("Callback does not exist: {callback_id}"));
        };
        let x = &self.executions[cb.execution as usize];
        let visible = x.visible(now_ms);
        if (cb.started as usize) >= visible {
            return Reply::not_found(format!("Callback does not exist: {callback_id}"));
        }
        let pending = cb.outcome.is_some_and(|o| o as usize >= visible);
        if !pending {
            return Reply::error(
                400,
                "CallbackTimeoutException",
                format!("Callback {callback_id} has already been closed or has timed out"),
            );
        }
        let outcome = match answer {
            CallbackAnswer::Heartbeat => return Reply::ok("{}".into()),
            CallbackAnswer::Success(result) => EventDetails::CallbackSucceeded {
                result: Some(Payload {
                    payload: Some(String::from_utf8_lossy(&result).into_owned()),
                    truncated: false,
                }),
            },
            CallbackAnswer::Failure(error) => EventDetails::CallbackFailed { error: Some(error) },
        };
        let index = cb.outcome.expect("pending has an outcome");
        let at_ms = now_ms.max(x.timeline[index as usize - 1]);
        let x = &mut self.executions[cb.execution as usize];
        x.answers.push(Answer {
            index,
            at_ms,
            outcome,
        });
        let delta = at_ms - x.timeline[index as usize];
        for t in &mut x.timeline[index as usize..] {
            *t += delta;
        }
        Reply::ok("{}".into())
    }

    /// Callback ids pending now (started, not yet answered or timed out), oldest first.
    pub fn pending_callbacks(&self, now_ms: i64) -> Vec<String> {
        let mut v: Vec<(i64, &str)> = self
            .callbacks
            .iter()
            .filter_map(|(id, cb)| {
                let x = &self.executions[cb.execution as usize];
                let visible = x.visible(now_ms);
                let pending = (cb.started as usize) < visible
                    && cb.outcome.is_some_and(|o| o as usize >= visible);
                pending.then(|| (x.timeline[cb.started as usize], &**id))
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id.to_owned()).collect()
    }

    pub fn summary(&self, now_ms: i64) -> SimSummary {
        let mut s = SimSummary::default();
        for x in &self.executions {
            if x.start_ms > now_ms {
                continue;
            }
            s.add(x.status(now_ms), x.visible(now_ms) as u64);
        }
        s
    }
}

/// What a callback answer says.
#[derive(Debug, Clone)]
pub enum CallbackAnswer {
    Success(Vec<u8>),
    Failure(ErrorInfo),
    Heartbeat,
}

impl CallbackAnswer {
    /// A failure from SendDurableExecutionCallbackFailure's body (an ErrorObject, or empty).
    pub fn failure_from_body(body: &[u8]) -> Result<Self, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(CallbackAnswer::Failure(ErrorInfo::default()));
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the ErrorObject is not JSON: {e}"))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(CallbackAnswer::Failure(ErrorInfo {
            error_type: s("ErrorType"),
            error_message: s("ErrorMessage"),
            error_data: s("ErrorData"),
            stack_trace: v
                .get("StackTrace")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            truncated: false,
        }))
    }
}

fn epoch_seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn error_object(e: &ErrorInfo) -> Value {
    let mut o = Map::new();
    if let Some(t) = &e.error_type {
        o.insert("ErrorType".into(), t.clone().into());
    }
    if let Some(m) = &e.error_message {
        o.insert("ErrorMessage".into(), m.clone().into());
    }
    if let Some(d) = &e.error_data {
        o.insert("ErrorData".into(), d.clone().into());
    }
    Value::Object(o)
}

/// Compresses times around `start` by `speed`. Fields the API counts in whole seconds (wait
/// durations, retry delays, callback timeouts) are divided too, but never below one second;
/// where such a second is longer than the compressed gap it governs, the rest of the history
/// moves later, so a wait never ends before its scheduled end and a retry never starts before
/// its delay has passed.
fn retime(events: &mut [Event], start: i64, speed: f64) {
    if speed == 1.0 {
        return;
    }
    let span = |ms: i64| (ms as f64 / speed).round() as i64;
    let secs = |s: u64| ((s as f64 / speed).round() as u64).max(1);
    // What the next event of an operation must wait for: (earliest time, the original time it
    // is measured from, in the original clock).
    let mut due: HashMap<String, (i64, i64)> = HashMap::new();
    let mut offset = 0i64;
    for e in events.iter_mut() {
        let original = e.timestamp.millis();
        let mut t = start + span(original - start) + offset;
        let op = e.operation.as_ref().map(|o| o.id.to_string());
        if let Some((earliest, from)) = op.as_ref().and_then(|id| due.remove(id)) {
            // Keep the original slack past the due time, compressed.
            let wanted = earliest + span((original - from).max(0));
            if t < wanted {
                offset += wanted - t;
                t = wanted;
            }
        }
        e.timestamp = Timestamp::from_millis(t);
        let moved = |ts: Timestamp, offset: i64| {
            Timestamp::from_millis(start + span(ts.millis() - start) + offset)
        };
        match &mut e.details {
            EventDetails::ExecutionStarted {
                execution_timeout_seconds: Some(s),
                ..
            } => *s = ((*s as f64 / speed).ceil() as u64).max(1),
            EventDetails::WaitStarted {
                duration_seconds,
                scheduled_end,
            } => {
                let original_end = *scheduled_end;
                if let Some(d) = duration_seconds {
                    *d = secs(*d);
                    let end = t + *d as i64 * 1000;
                    *scheduled_end = Some(Timestamp::from_millis(end));
                    if let (Some(id), Some(o)) = (&op, original_end) {
                        due.insert(id.clone(), (end, o.millis()));
                    }
                } else if let Some(end) = scheduled_end {
                    *end = moved(*end, offset);
                }
            }
            EventDetails::WaitSucceeded {
                duration_seconds: Some(d),
            } => *d = secs(*d),
            EventDetails::StepFailed { retry: Some(r), .. }
            | EventDetails::StepSucceeded { retry: Some(r), .. } => {
                if let Some(d) = r.next_attempt_delay_seconds.as_mut().filter(|d| **d > 0) {
                    let original_due = original + *d as i64 * 1000;
                    *d = secs(*d);
                    if let Some(id) = &op {
                        due.insert(id.clone(), (t + *d as i64 * 1000, original_due));
                    }
                }
            }
            EventDetails::CallbackStarted {
                timeout_seconds,
                heartbeat_timeout_seconds,
                ..
            } => {
                for s in [timeout_seconds, heartbeat_timeout_seconds]
                    .into_iter()
                    .flatten()
                {
                    *s = secs(*s);
                }
            }
            EventDetails::InvocationCompleted { start: s, end, .. } => {
                for ts in [s, end].into_iter().flatten() {
                    *ts = moved(*ts, offset).min(e.timestamp);
                }
            }
            _ => {}
        }
    }
    // A callback that timed out did so no earlier than its (compressed) timeout.
    let mut started: HashMap<String, (i64, u64)> = HashMap::new();
    let mut offset = 0i64;
    for e in events.iter_mut() {
        let mut t = e.timestamp.millis() + offset;
        let id = e.operation.as_ref().map(|o| o.id.to_string());
        match &e.details {
            EventDetails::CallbackStarted {
                timeout_seconds,
                heartbeat_timeout_seconds,
                ..
            } => {
                if let (Some(id), Some(limit)) =
                    (&id, heartbeat_timeout_seconds.or(*timeout_seconds))
                {
                    started.insert(id.clone(), (t, limit));
                }
            }
            EventDetails::CallbackTimedOut { .. } => {
                if let Some((at, limit)) = id.as_ref().and_then(|id| started.remove(id)) {
                    let earliest = at + limit as i64 * 1000;
                    if t < earliest {
                        offset += earliest - t;
                        t = earliest;
                    }
                }
            }
            _ => {}
        }
        e.timestamp = Timestamp::from_millis(t);
        if offset != 0 {
            match &mut e.details {
                EventDetails::WaitStarted {
                    scheduled_end: Some(end),
                    ..
                } => *end = Timestamp::from_millis(end.millis() + offset),
                EventDetails::InvocationCompleted { start, end, .. } => {
                    for ts in [start, end].into_iter().flatten() {
                        *ts = Timestamp::from_millis(ts.millis() + offset);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Moves every time in `events` by `delta` ms.
fn shift(events: &mut [Event], delta: i64) {
    let moved = |t: &mut Timestamp| *t = Timestamp::from_millis(t.millis() + delta);
    for e in events {
        moved(&mut e.timestamp);
        match &mut e.details {
            EventDetails::WaitStarted {
                scheduled_end: Some(end),
                ..
            } => moved(end),
            EventDetails::InvocationCompleted { start, end, .. } => {
                start.iter_mut().chain(end.iter_mut()).for_each(moved);
            }
            _ => {}
        }
    }
}

/// Stopped or timed out while suspended: after an InvocationCompleted in the middle of the
/// course, before the event that would have followed it.
fn fate(course: &[Event], start_ms: i64, stopped: bool, cut_roll: f64, end_roll: f64) -> Fate {
    let n = course.len();
    // Suspension points: an InvocationCompleted with a later event, not the last invocation.
    let points: Vec<usize> = (1..n.saturating_sub(2))
        .filter(|&i| matches!(course[i].details, EventDetails::InvocationCompleted { .. }))
        .collect();
    if points.is_empty() {
        return Fate::Completes;
    }
    let i = points[((cut_roll * points.len() as f64) as usize).min(points.len() - 1)];
    let (cut, next) = (
        course[i].timestamp.millis(),
        course[i + 1].timestamp.millis(),
    );
    let keep = (i + 1) as u32;
    if stopped {
        let end_ms = cut + 1 + ((next - cut - 1).max(0) as f64 * (0.1 + 0.8 * end_roll)) as i64;
        return Fate::Stopped { keep, end_ms };
    }
    // The timeout is whole seconds: the first whole second after the cut that comes before
    // the next event.
    let timeout_s = ((cut - start_ms) / 1000 + 1) as u64;
    if start_ms + timeout_s as i64 * 1000 >= next {
        return Fate::Completes;
    }
    Fate::TimedOut { keep, timeout_s }
}

fn push_terminal(events: &mut Vec<Event>, at_ms: i64, details: EventDetails) {
    let op = events.first().and_then(|e| e.operation.clone());
    let last = events.last().map_or(at_ms, |e| e.timestamp.millis());
    events.push(Event {
        id: events.len() as u64 + 1,
        timestamp: Timestamp::from_millis(at_ms.max(last)),
        operation: op,
        details,
    });
}

/// IncludeExecutionData=false, as the emulator answers it: inputs and results lose their
/// payload and say Truncated; errors keep theirs, marked Truncated. The scripted source applies
/// the same rule to the raw JSON it serves (`scripted::strip_payloads`; a test holds the two
/// equal).
fn strip_payloads(e: &mut Event) {
    let parts = e.details.parts_mut();
    for p in [parts.input, parts.result].into_iter().flatten().flatten() {
        p.payload = None;
        p.truncated = true;
    }
    if let Some(Some(e)) = parts.error {
        e.truncated = true;
    }
}

#[cfg(test)]
mod tests;
