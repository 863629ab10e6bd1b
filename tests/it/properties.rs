//! Property tests of the core: random valid histories through the fold (`state::Execution`) and
//! the span builder (`trace::TraceBuilder`), and robustness of the JSON reader on mutated
//! real histories.
//!
//! Valid histories come from a small builder driven by a byte string of choices (`Choices`):
//! proptest generates and shrinks the bytes, the builder deterministically turns them into a
//! tree of operations and interleaves their events. Running out of bytes always picks the
//! simplest option, so shrinking converges on small histories.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::OnceLock;

use durable_exporter::arn::ExecutionArn;
use durable_exporter::convert::{Conversion, Format, convert};
use durable_exporter::history::json::parse_history;
use durable_exporter::history::{
    ErrorInfo, Event, EventDetails, KNOWN_EVENT_TYPES, OperationRef, Payload, RetryDetails,
    normalize,
};
use durable_exporter::state::json::state_response;
use durable_exporter::state::{AnomalyKind, Execution, FnObserver, FoldOptions, Transition};
use durable_exporter::time::Timestamp;
use durable_exporter::trace::{Span, TraceBuilder, TraceOptions};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

// ------------------------------------------------------------------------------------------------
// The generator of valid histories
// ------------------------------------------------------------------------------------------------

/// Execution ARNs of both forms: a real Lambda one and the emulator's `<uuid>/<uuid>`.
const ARNS: [&str; 3] = [
    "arn:aws:lambda:eu-west-1:210987654321:function:payments:7/durable-execution/order-42/3f1c2a9e-5b7d-4c1e-9a0b-1d2e3f4a5b6c",
    "b5601dd1-2043-4852-8088-c1ff0fa7bf73/0a4f6c1e-7d2b-4e9a-8c3f-5b6d7e8f9a0b",
    "arn:aws:lambda:us-east-1:123456789012:function:checkout/durable-execution/x/y",
];

/// The execution's own operation id (ExecutionStarted's Id).
const EXECUTION_ID: &str = "0a4f6c1e-7d2b-4e9a-8c3f-5b6d7e8f9a0b";

/// Contexts are nested at most this deep (a context at depth 2 holds only leaves at depth 3).
const MAX_DEPTH: usize = 3;

/// At most this many operations per history.
const MAX_OPERATIONS: usize = 40;

/// Cases per property (the whole file runs in about 15 s in a debug build on 2 cores).
const FINISHED_TREE_CASES: u32 = 512;
const VALID_HISTORY_CASES: u32 = 256;
const RANDOM_INPUT_CASES: u32 = 256;
const MUTATION_CASES: u32 = 1024;

/// RetryDetails of an attempt; a delay above 0 schedules another one.
fn retry(attempt: u32, delay: u64) -> Option<RetryDetails> {
    Some(RetryDetails {
        current_attempt: Some(attempt),
        next_attempt_delay_seconds: Some(delay),
    })
}

/// A byte string read as a sequence of choices; once exhausted every choice is 0 (the simplest).
struct Choices<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// 0..n (n at most 256).
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            usize::from(self.byte()) % n
        }
    }

    /// True with about `percent` % probability; false for a zero byte.
    fn chance(&mut self, percent: u32) -> bool {
        u32::from(self.byte()) * 100 >= (100 - percent.min(100)) * 256
    }
}

/// What an operation does next.
#[derive(Debug)]
enum Action {
    /// One event of the operation.
    Emit(EventDetails),
    /// The function suspends (or crashes): an InvocationCompleted.
    Invocation,
    /// A context's children start; the context goes on once they have all finished.
    Children(Vec<Cursor>),
}

/// One operation being played out.
#[derive(Debug)]
struct Cursor {
    op: OperationRef,
    actions: VecDeque<Action>,
    parent: Option<usize>,
    children_running: usize,
    done: bool,
}

/// A generated history.
#[derive(Clone)]
struct History {
    arn: String,
    events: Vec<Event>,
    /// Ends in a terminal Execution* event.
    finished: bool,
}

/// One line per event, so that a failing case reads like a history.
impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "History {{ arn: {:?}, finished: {}, events: [",
            self.arn, self.finished
        )?;
        for e in &self.events {
            writeln!(f, "    {e:?},")?;
        }
        write!(f, "] }}")
    }
}

impl History {
    fn arn(&self) -> ExecutionArn {
        ExecutionArn::parse(&self.arn).expect("the test ARNs are valid")
    }
}

struct Builder<'a> {
    c: Choices<'a>,
    events: Vec<Event>,
    now: i64,
    next_op: usize,
    /// Time of the first event since the last InvocationCompleted.
    first_since_invocation: Option<i64>,
}

impl Builder<'_> {
    fn tick(&mut self) {
        let delta = match self.c.below(8) {
            0 | 1 => 0,
            2..=4 => 1 + i64::from(self.c.byte()) * 4,
            5 | 6 => 1000 + i64::from(self.c.byte()) * 250,
            _ => 60_000 * (1 + i64::from(self.c.byte())),
        };
        self.now += delta;
    }

    fn push(&mut self, operation: Option<OperationRef>, details: EventDetails) {
        self.events.push(Event {
            id: self.events.len() as u64 + 1,
            timestamp: Timestamp(self.now),
            operation,
            details,
        });
    }

    /// An operation event at a new (not earlier) time.
    fn emit(&mut self, op: &OperationRef, details: EventDetails) {
        self.tick();
        self.first_since_invocation.get_or_insert(self.now);
        let details = match details {
            EventDetails::WaitStarted {
                duration_seconds: Some(d),
                ..
            } => EventDetails::WaitStarted {
                duration_seconds: Some(d),
                scheduled_end: Some(Timestamp(self.now + d as i64 * 1000)),
            },
            d => d,
        };
        self.push(Some(op.clone()), details);
    }

    /// An InvocationCompleted, with details (as the real service sends) or without (emulator).
    fn invocation_completed(&mut self) {
        self.tick();
        let details = match self.c.below(4) {
            0 | 1 => EventDetails::InvocationCompleted {
                start: None,
                end: None,
                request_id: None,
                error: None,
            },
            2 => EventDetails::InvocationCompleted {
                start: Some(Timestamp(self.first_since_invocation.unwrap_or(self.now))),
                end: Some(Timestamp(self.now)),
                request_id: Some(format!("req-{}", self.events.len())),
                error: None,
            },
            _ => EventDetails::InvocationCompleted {
                start: Some(Timestamp(self.first_since_invocation.unwrap_or(self.now))),
                end: Some(Timestamp(self.now)),
                request_id: Some(format!("req-{}", self.events.len())),
                error: self.error(),
            },
        };
        self.first_since_invocation = None;
        self.push(None, details);
    }

    fn text(&mut self, what: &str) -> String {
        match self.c.below(4) {
            0 => what.to_owned(),
            1 => format!("{what} \"quoted\" \\ back\nslash\ttab"),
            2 => format!("{what} é ü 漢字 🎉 \u{1}"),
            _ => format!("{what}-{}", self.c.byte()),
        }
    }

    fn payload(&mut self) -> Option<Payload> {
        match self.c.below(3) {
            0 => None,
            1 => Some(Payload {
                payload: Some(format!("{{\"v\":{}}}", self.c.byte())),
                truncated: false,
            }),
            _ => {
                let text = self.text("result");
                Some(Payload {
                    payload: Some(text.repeat(1 + self.c.below(8))),
                    truncated: self.c.chance(30),
                })
            }
        }
    }

    fn error(&mut self) -> Option<ErrorInfo> {
        match self.c.below(4) {
            0 => Some(ErrorInfo {
                error_type: Some("Error".into()),
                error_message: Some("boom".into()),
                ..ErrorInfo::default()
            }),
            1 => None,
            2 => Some(ErrorInfo::default()),
            _ => Some(ErrorInfo {
                error_type: self.c.chance(70).then(|| "ConnectionError".to_owned()),
                error_message: Some(self.text("failure")),
                error_data: self.c.chance(50).then(|| "{\"code\":7}".to_owned()),
                stack_trace: (0..self.c.below(4))
                    .map(|i| format!("  File \"app.py\", line {i}"))
                    .collect(),
                truncated: self.c.chance(20),
            }),
        }
    }

    /// A unique operation id in one of the shapes SDKs use (all shapes are disjoint).
    fn op_id(&mut self, parent: Option<&str>) -> String {
        let n = self.next_op;
        self.next_op += 1;
        match self.c.below(4) {
            0 => n.to_string(),
            1 => {
                let a = (n as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
                format!("{a:032x}{:032x}", a.rotate_left(17))
            }
            2 => format!("{}-{n}", parent.unwrap_or("top")),
            _ => format!("ü:{n}"),
        }
    }

    fn name(&mut self, kind: &str, n: usize) -> Option<String> {
        match self.c.below(4) {
            0 => None,
            1 => Some("same-name".into()),
            _ => Some(format!("{kind}-{n}")),
        }
    }

    /// The last attempt of a step: StepStarted, then a final StepSucceeded or StepFailed.
    fn final_attempt(&mut self, actions: &mut VecDeque<Action>, attempt: u32) {
        actions.push_back(Action::Emit(EventDetails::StepStarted));
        let end = match self.c.below(4) {
            0 => EventDetails::StepSucceeded {
                result: self.payload(),
                retry: None,
            },
            1 => EventDetails::StepSucceeded {
                result: self.payload(),
                retry: retry(attempt, 0),
            },
            2 => EventDetails::StepFailed {
                error: self.error(),
                retry: retry(attempt, 0),
            },
            _ => EventDetails::StepFailed {
                error: self.error(),
                retry: None,
            },
        };
        actions.push_back(Action::Emit(end));
    }

    fn operations(
        &mut self,
        depth: usize,
        parent: Option<&str>,
        budget: &mut usize,
    ) -> Vec<Cursor> {
        let n = self.c.below(if depth == 0 { 12 } else { 6 });
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            v.push(self.operation(depth, parent, budget));
        }
        v
    }

    fn operation(&mut self, depth: usize, parent: Option<&str>, budget: &mut usize) -> Cursor {
        let kind = self.c.below(if depth < MAX_DEPTH { 6 } else { 5 });
        let n = self.next_op;
        let id = self.op_id(parent);
        let mut actions = VecDeque::new();
        let (label, sub_type) = match kind {
            // A step with retries.
            0 => {
                let retries = self.c.below(4) as u32;
                for attempt in 1..=retries {
                    actions.push_back(Action::Emit(EventDetails::StepStarted));
                    if !self.c.chance(20) {
                        let delay = 1 + self.c.below(30) as u64;
                        actions.push_back(Action::Emit(EventDetails::StepFailed {
                            error: self.error(),
                            retry: retry(attempt, delay),
                        }));
                    }
                    // Without a StepFailed the attempt is lost with its invocation.
                    actions.push_back(Action::Invocation);
                }
                self.final_attempt(&mut actions, retries + 1);
                ("step", "Step")
            }
            // wait_for_condition: polls are StepSucceeded with a delay.
            1 => {
                let polls = self.c.below(4) as u32;
                for attempt in 1..=polls {
                    actions.push_back(Action::Emit(EventDetails::StepStarted));
                    let delay = 1 + self.c.below(10) as u64;
                    actions.push_back(Action::Emit(EventDetails::StepSucceeded {
                        result: self.payload(),
                        retry: retry(attempt, delay),
                    }));
                    actions.push_back(Action::Invocation);
                }
                self.final_attempt(&mut actions, polls + 1);
                ("condition", "WaitForCondition")
            }
            2 => {
                let seconds = 1 + self.c.below(120) as u64;
                actions.push_back(Action::Emit(EventDetails::WaitStarted {
                    duration_seconds: Some(seconds),
                    scheduled_end: None,
                }));
                if !self.c.chance(20) {
                    actions.push_back(Action::Invocation);
                }
                actions.push_back(Action::Emit(if self.c.chance(20) {
                    EventDetails::WaitCancelled {
                        error: self.error(),
                    }
                } else {
                    EventDetails::WaitSucceeded {
                        duration_seconds: Some(seconds),
                    }
                }));
                ("wait", "Wait")
            }
            3 => {
                actions.push_back(Action::Emit(EventDetails::CallbackStarted {
                    callback_id: Some(format!("cb-{n}")),
                    timeout_seconds: self.c.chance(50).then(|| 1 + self.c.below(600) as u64),
                    heartbeat_timeout_seconds: self
                        .c
                        .chance(30)
                        .then(|| 1 + self.c.below(60) as u64),
                }));
                if self.c.chance(70) {
                    actions.push_back(Action::Invocation);
                }
                actions.push_back(Action::Emit(match self.c.below(3) {
                    0 => EventDetails::CallbackSucceeded {
                        result: self.payload(),
                    },
                    1 => EventDetails::CallbackFailed {
                        error: self.error(),
                    },
                    _ => EventDetails::CallbackTimedOut {
                        error: self.error(),
                    },
                }));
                ("callback", "Callback")
            }
            4 => {
                actions.push_back(Action::Emit(EventDetails::ChainedInvokeStarted {
                    function_name: Some(format!("child-fn-{}", self.c.below(3))),
                    tenant_id: self.c.chance(20).then(|| "tenant-a".to_owned()),
                    input: self.payload(),
                    executed_version: self.c.chance(50).then(|| "$LATEST".to_owned()),
                    durable_execution_arn: Some(format!(
                        "arn:aws:lambda:eu-west-1:210987654321:function:child:1/durable-execution/c-{n}/{n:08x}"
                    )),
                }));
                if self.c.chance(70) {
                    actions.push_back(Action::Invocation);
                }
                actions.push_back(Action::Emit(match self.c.below(4) {
                    0 => EventDetails::ChainedInvokeSucceeded {
                        result: self.payload(),
                    },
                    1 => EventDetails::ChainedInvokeFailed {
                        error: self.error(),
                    },
                    2 => EventDetails::ChainedInvokeTimedOut {
                        error: self.error(),
                    },
                    _ => EventDetails::ChainedInvokeStopped {
                        error: self.error(),
                    },
                }));
                ("invoke", "ChainedInvoke")
            }
            _ => {
                let sub_type = *[
                    "RunInChildContext",
                    "Parallel",
                    "ParallelBranch",
                    "Map",
                    "MapIteration",
                    "WaitForCallback",
                ]
                .get(self.c.below(6))
                .unwrap_or(&"RunInChildContext");
                let children = self.operations(depth + 1, Some(&id), budget);
                actions.push_back(Action::Emit(EventDetails::ContextStarted));
                actions.push_back(Action::Children(children));
                actions.push_back(Action::Emit(if self.c.chance(25) {
                    EventDetails::ContextFailed {
                        error: self.error(),
                    }
                } else {
                    EventDetails::ContextSucceeded {
                        result: self.payload(),
                    }
                }));
                ("context", sub_type)
            }
        };
        let name = self.name(label, n);
        Cursor {
            op: OperationRef {
                id: id.into(),
                name: name.map(Into::into),
                parent_id: parent.map(Into::into),
                sub_type: (!self.c.chance(10)).then(|| sub_type.into()),
            },
            actions,
            parent: None,
            children_running: 0,
            done: false,
        }
    }

    /// Plays the operations out, picking at each step which runnable one goes next.
    fn run(&mut self, roots: Vec<Cursor>) {
        let mut arena = roots;
        loop {
            let runnable: Vec<usize> = (0..arena.len())
                .filter(|&i| !arena[i].done && arena[i].children_running == 0)
                .collect();
            if runnable.is_empty() {
                break;
            }
            if self.c.chance(6) {
                self.invocation_completed();
            }
            let i = runnable[self.c.below(runnable.len())];
            match arena[i].actions.pop_front() {
                Some(Action::Emit(d)) => {
                    let op = arena[i].op.clone();
                    self.emit(&op, d);
                }
                Some(Action::Invocation) => self.invocation_completed(),
                Some(Action::Children(children)) => {
                    arena[i].children_running = children.len();
                    for mut child in children {
                        child.parent = Some(i);
                        arena.push(child);
                    }
                }
                None => {}
            }
            if arena[i].actions.is_empty() {
                arena[i].done = true;
                if let Some(p) = arena[i].parent {
                    arena[p].children_running -= 1;
                }
            }
        }
    }
}

/// Builds a history from choices. With `truncate`, the history stops after `cut` (an execution
/// read mid-way, or one that timed out, was stopped or failed mid-way); with `finished` a
/// terminal event ends it (ExecutionSucceeded only when every operation finished).
fn build(bytes: &[u8], arn: usize, truncate: bool, cut: Index, finished: bool) -> History {
    let mut b = Builder {
        c: Choices { bytes, pos: 0 },
        events: Vec::new(),
        now: 1_795_248_229_083,
        next_op: 1,
        first_since_invocation: None,
    };
    b.now += i64::from(b.c.byte()) * 1000;
    let input = b.payload();
    let timeout = b.c.chance(50).then(|| 60 + b.c.below(200) as u64 * 60);
    b.first_since_invocation = Some(b.now);
    b.push(
        Some(OperationRef {
            id: EXECUTION_ID.into(),
            name: Some("order-42".into()),
            parent_id: None,
            sub_type: None,
        }),
        EventDetails::ExecutionStarted {
            input,
            execution_timeout_seconds: timeout,
        },
    );
    let mut budget = MAX_OPERATIONS;
    let roots = b.operations(0, None, &mut budget);
    b.run(roots);
    if truncate {
        let keep = 1 + cut.index(b.events.len());
        b.events.truncate(keep);
    }
    if finished {
        b.tick();
        let details = match (truncate, b.c.below(4)) {
            (false, 0) => EventDetails::ExecutionSucceeded {
                result: b.payload(),
            },
            (_, 1) => EventDetails::ExecutionTimedOut { error: b.error() },
            (_, 2) => EventDetails::ExecutionStopped { error: b.error() },
            _ => EventDetails::ExecutionFailed { error: b.error() },
        };
        b.push(
            Some(OperationRef {
                id: EXECUTION_ID.into(),
                name: Some("order-42".into()),
                parent_id: None,
                sub_type: None,
            }),
            details,
        );
    }
    History {
        arn: ARNS[arn].to_owned(),
        events: b.events,
        finished,
    }
}

/// Random valid histories; `finished` forces them finished or unfinished, `None` gives both.
fn history(finished: Option<bool>) -> impl Strategy<Value = History> {
    (
        vec(any::<u8>(), 0..1500),
        0..ARNS.len(),
        any::<bool>(),
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(move |(bytes, arn, truncate, cut, fin)| {
            build(&bytes, arn, truncate, cut, finished.unwrap_or(fin))
        })
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

fn state_json(execution: &Execution) -> String {
    let ops = execution.operations();
    serde_json::to_string(&state_response(&ops, true, None)).expect("state JSON serializes")
}

fn new_fold(arn: &str) -> (Execution, TraceBuilder) {
    (
        Execution::new(
            arn,
            FoldOptions {
                keep_finished: true,
            },
        ),
        TraceBuilder::new(arn, TraceOptions::default()),
    )
}

/// Everything a fold of some events leaves behind, in comparable form.
#[derive(Debug, PartialEq)]
struct Folded {
    spans: Vec<Span>,
    state: String,
    next_change: Option<Timestamp>,
}

fn fold_at_once(arn: &str, events: &[Event]) -> Folded {
    let (mut execution, mut builder) = new_fold(arn);
    execution.apply_all(events, &mut builder);
    Folded {
        spans: builder.take_spans(),
        state: state_json(&execution),
        next_change: execution.next_change(),
    }
}

fn render_all(c: &Conversion) -> [String; 3] {
    [
        c.render(Format::OtlpJson),
        c.render(Format::StateJson),
        c.render(Format::Tree),
    ]
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks the OTLP/JSON output: valid JSON, one span per input span, well-formed ids and times.
fn check_otlp_json(text: &str, span_count: usize) -> Result<(), TestCaseError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| TestCaseError::fail(format!("OTLP/JSON does not parse: {e}")))?;
    let spans = v["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .ok_or_else(|| TestCaseError::fail("no resourceSpans[0].scopeSpans[0].spans array"))?;
    prop_assert_eq!(spans.len(), span_count);
    for s in spans {
        let trace_id = s["traceId"].as_str().unwrap_or_default();
        prop_assert!(is_lower_hex(trace_id, 32), "traceId {:?}", s["traceId"]);
        let span_id = s["spanId"].as_str().unwrap_or_default();
        prop_assert!(is_lower_hex(span_id, 16), "spanId {:?}", s["spanId"]);
        if let Some(p) = s.get("parentSpanId") {
            prop_assert!(is_lower_hex(p.as_str().unwrap_or_default(), 16), "{:?}", p);
        }
        for key in ["startTimeUnixNano", "endTimeUnixNano"] {
            let t = s[key].as_str();
            prop_assert!(
                t.is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())),
                "{} is {:?}",
                key,
                s[key]
            );
        }
        prop_assert!(s["name"].is_string());
    }
    Ok(())
}

/// The spans of a finished execution form one tree: unique span ids, every parent present, one
/// root named Workflow, one trace id, no span ending before it starts.
fn check_tree(spans: &[Span]) -> Result<(), TestCaseError> {
    let ids: HashSet<_> = spans.iter().map(|s| s.span_id).collect();
    prop_assert_eq!(ids.len(), spans.len(), "span ids are unique");
    for s in spans {
        if let Some(p) = s.parent_span_id {
            prop_assert!(p != s.span_id, "{} is its own parent", s.name);
            prop_assert!(
                ids.contains(&p),
                "the parent of {} is not in the output",
                s.name
            );
        }
        prop_assert!(s.end >= s.start, "{} ends before it starts", s.name);
        prop_assert!(!s.parent_is_remote);
    }
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    prop_assert_eq!(roots.len(), 1, "exactly one root");
    prop_assert_eq!(&*roots[0].name, "Workflow");
    let trace_ids: HashSet<_> = spans.iter().map(|s| s.trace_id).collect();
    prop_assert_eq!(trace_ids.len(), 1, "one trace id");
    Ok(())
}

/// The distinct operation ids of a history, the execution's own excluded.
fn operation_ids(events: &[Event]) -> HashSet<&str> {
    events
        .iter()
        .filter(|e| !e.details.event_type().starts_with("Execution"))
        .filter_map(|e| e.operation.as_ref().map(|o| &*o.id))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// The generator itself
// ------------------------------------------------------------------------------------------------

/// The generator makes well-formed histories and reaches every event type, both endings and the
/// deepest nesting; otherwise the properties below would test less than they claim.
#[test]
fn generator_covers_the_history_space() {
    let mut runner = TestRunner::deterministic();
    let strategy = history(None);
    let mut types: HashSet<String> = HashSet::new();
    let (mut finished, mut unfinished, mut max_depth) = (0, 0, 0);
    let (mut with_ic_details, mut without_ic_details) = (0, 0);
    for _ in 0..400 {
        let h = strategy.new_tree(&mut runner).expect("a history").current();
        assert!(matches!(
            h.events[0].details,
            EventDetails::ExecutionStarted { .. }
        ));
        assert_eq!(
            h.events[0].operation.as_ref().map(|o| &*o.id),
            Some(EXECUTION_ID)
        );
        let mut parents: HashMap<&str, Option<&str>> = HashMap::new();
        let mut open_contexts: HashSet<&str> = HashSet::new();
        for (i, e) in h.events.iter().enumerate() {
            assert_eq!(e.id, i as u64 + 1, "EventIds are consecutive from 1");
            if i > 0 {
                assert!(e.timestamp >= h.events[i - 1].timestamp);
            }
            types.insert(e.details.event_type().to_owned());
            if let Some(op) = &e.operation {
                parents.insert(&op.id, op.parent_id.as_deref());
                if let Some(p) = op.parent_id.as_deref() {
                    assert!(
                        open_contexts.contains(p),
                        "{h:?}: event {} outside {p}",
                        e.id
                    );
                }
                match e.details {
                    EventDetails::ContextStarted => assert!(open_contexts.insert(&op.id)),
                    EventDetails::ContextSucceeded { .. } | EventDetails::ContextFailed { .. } => {
                        assert!(open_contexts.remove(&*op.id));
                    }
                    _ => {}
                }
            }
            match &e.details {
                EventDetails::InvocationCompleted { start: Some(_), .. } => with_ic_details += 1,
                EventDetails::InvocationCompleted { start: None, .. } => without_ic_details += 1,
                _ => {}
            }
        }
        for id in parents.keys() {
            let (mut depth, mut at) = (0, *id);
            while let Some(Some(p)) = parents.get(at) {
                depth += 1;
                at = p;
            }
            max_depth = max_depth.max(depth);
        }
        let last = h.events.last().expect("ExecutionStarted at least");
        let terminal = last.details.event_type().starts_with("Execution") && last.id > 1;
        assert_eq!(terminal, h.finished);
        if h.finished {
            finished += 1;
        } else {
            unfinished += 1;
        }
    }
    let missing: Vec<&str> = KNOWN_EVENT_TYPES
        .iter()
        .copied()
        .filter(|t| !types.contains(*t))
        .collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
    assert!(
        finished > 50 && unfinished > 50,
        "{finished} / {unfinished}"
    );
    assert!(with_ic_details > 50 && without_ic_details > 50);
    assert_eq!(max_depth, MAX_DEPTH, "contexts nest {MAX_DEPTH} deep");
}

// ------------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: FINISHED_TREE_CASES, ..ProptestConfig::default() })]

    /// A finished valid history draws one tree: one Workflow root, every parent present, unique
    /// span ids, one trace id, no span ending before it starts, one span per operation, and no
    /// anomaly.
    #[test]
    fn finished_histories_draw_one_well_formed_tree(h in history(Some(true))) {
        let conversion = convert(&h.events, &h.arn(), None, TraceOptions::default());
        prop_assert!(
            conversion.anomalies.is_empty(),
            "anomalies in a valid history: {:?}",
            conversion.anomalies
        );
        check_tree(&conversion.spans)?;
        let spans = &conversion.spans;
        // Every operation ends, by its own event or by the execution's, and draws one span.
        let op_spans: Vec<&str> = spans
            .iter()
            .filter(|s| s.attribute("durable.operation.status").is_some())
            .filter_map(|s| match s.attribute("durable.operation.id") {
                Some(durable_exporter::trace::Value::Str(id)) => Some(&**id),
                _ => None,
            })
            .collect();
        let distinct: HashSet<&str> = op_spans.iter().copied().collect();
        prop_assert_eq!(distinct.len(), op_spans.len(), "one span per operation");
        prop_assert_eq!(distinct, operation_ids(&h.events));
        // Attempts follow their own outcome: OK when it succeeded, ERROR otherwise.
        for s in spans {
            if let Some(durable_exporter::trace::Value::Str(outcome)) =
                s.attribute("durable.attempt.outcome")
            {
                let expected = if *outcome == "SUCCEEDED" {
                    durable_exporter::trace::StatusCode::Ok
                } else {
                    durable_exporter::trace::StatusCode::Error
                };
                prop_assert_eq!(s.status, expected, "{}", s.name);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: VALID_HISTORY_CASES, ..ProptestConfig::default() })]

    /// Feeding the events in any batching gives the same spans (concatenated), the same state
    /// and the same next change, after every batch; feeding everything again adds no span.
    #[test]
    fn batching_does_not_change_the_result(
        h in history(None),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(h.events.len() + 1)).collect();
        cuts.push(h.events.len());
        cuts.sort_unstable();
        let (mut execution, mut builder) = new_fold(&h.arn);
        let mut spans = Vec::new();
        let mut from = 0;
        for &to in &cuts {
            execution.apply_all(&h.events[from..to], &mut builder);
            spans.extend(builder.take_spans());
            from = to;
            // The same prefix fed at once.
            let reference = fold_at_once(&h.arn, &h.events[..to]);
            let batched = Folded {
                spans: spans.clone(),
                state: state_json(&execution),
                next_change: execution.next_change(),
            };
            prop_assert_eq!(&batched, &reference, "after {} of {} events", to, h.events.len());
        }
        prop_assert_eq!(execution.last_event_id(), h.events.len() as u64);
        prop_assert_eq!(
            &spans,
            &convert(&h.events, &h.arn(), None, TraceOptions::default()).spans
        );

        // Everything again: only duplicates.
        let state_before = state_json(&execution);
        let mut kinds = Vec::new();
        {
            let mut collect = FnObserver(|t: Transition<'_>| {
                if let Transition::Anomaly(a) = t {
                    kinds.push(a.kind);
                }
            });
            let mut both = (&mut builder, &mut collect);
            execution.apply_all(&h.events, &mut both);
        }
        prop_assert!(builder.take_spans().is_empty(), "re-fed events drew spans");
        prop_assert_eq!(kinds.len(), h.events.len());
        prop_assert!(kinds.iter().all(|k| *k == AnomalyKind::DuplicateEvent), "{:?}", kinds);
        prop_assert_eq!(state_json(&execution), state_before);
    }

    /// The same events convert to byte-identical output, and OTLP/JSON is well formed.
    #[test]
    fn conversion_is_deterministic_and_otlp_json_is_well_formed(h in history(None)) {
        let arn = h.arn();
        let a = convert(&h.events, &arn, None, TraceOptions::default());
        let b = convert(&h.events, &arn, None, TraceOptions::default());
        let (ra, rb) = (render_all(&a), render_all(&b));
        prop_assert_eq!(&ra[0], &rb[0], "OTLP/JSON differs");
        prop_assert_eq!(&ra[1], &rb[1], "state JSON differs");
        prop_assert_eq!(&ra[2], &rb[2], "tree differs");
        check_otlp_json(&ra[0], a.spans.len())?;
        prop_assert!(serde_json::from_str::<serde_json::Value>(&ra[1]).is_ok());
    }

    /// Shuffled events, with overlapping pages' duplicates, normalize back to the history and
    /// convert the same.
    #[test]
    fn shuffled_events_normalize_to_the_same_conversion(
        (h, shuffled) in history(None).prop_flat_map(|h| {
            let events = h.events.clone();
            (Just(h), Just(events).prop_shuffle())
        }),
        duplicates in vec(any::<Index>(), 0..6),
    ) {
        let mut events = shuffled;
        for d in &duplicates {
            let copy = events[d.index(events.len())].clone();
            events.push(copy);
        }
        let found = normalize(&mut events);
        prop_assert_eq!(found.repeats, duplicates.len());
        prop_assert!(found.conflicts.is_empty(), "{:?}", found.conflicts);
        prop_assert_eq!(&events, &h.events);
        let arn = h.arn();
        let ordered = convert(&h.events, &arn, None, TraceOptions::default());
        let normalized = convert(&events, &arn, None, TraceOptions::default());
        prop_assert_eq!(&normalized.spans, &ordered.spans);
        prop_assert_eq!(&normalized.anomalies, &ordered.anomalies);
        prop_assert_eq!(render_all(&normalized), render_all(&ordered));
    }

    /// A later copy of an EventId with other contents never replaces the first one read, and
    /// each such copy is reported with its EventId.
    #[test]
    fn conflicting_copies_are_reported_and_the_first_copy_kept(
        h in history(None),
        copies in vec((any::<Index>(), 1i64..5_000), 1..6),
    ) {
        let mut events = h.events.clone();
        let mut expected_ids = Vec::new();
        for (d, shift) in &copies {
            let mut copy = events[d.index(h.events.len())].clone();
            copy.timestamp = Timestamp(copy.timestamp.millis() + shift);
            expected_ids.push(copy.id);
            events.push(copy);
        }
        let found = normalize(&mut events);
        prop_assert_eq!(&events, &h.events);
        prop_assert_eq!(found.repeats, 0);
        let mut ids: Vec<u64> = found.conflicts.iter().map(|a| a.event_id).collect();
        ids.sort_unstable();
        expected_ids.sort_unstable();
        prop_assert_eq!(ids, expected_ids);
        prop_assert!(found
            .conflicts
            .iter()
            .all(|a| a.kind == AnomalyKind::ConflictingDuplicateEvent));
    }
}

// ------------------------------------------------------------------------------------------------
// Robustness of the JSON reader
// ------------------------------------------------------------------------------------------------

/// Parses, and when that works converts and renders every format (with payloads, cut short):
/// JSON output stays JSON, and a finished execution still draws one tree.
fn parse_convert_render(bytes: &[u8], max_attribute_length: usize) -> Result<(), TestCaseError> {
    let Ok(parsed) = parse_history(bytes) else {
        return Ok(());
    };
    let arn = ExecutionArn::parse(ARNS[0]).expect("valid ARN");
    for options in [
        TraceOptions::default(),
        TraceOptions {
            include_payloads: true,
            max_attribute_length,
            ..TraceOptions::default()
        },
    ] {
        let conversion = convert(&parsed.events, &arn, None, options);
        let [otlp, state, _tree] = render_all(&conversion);
        check_otlp_json(&otlp, conversion.spans.len())?;
        prop_assert!(serde_json::from_str::<serde_json::Value>(&state).is_ok());
        // However odd the history, an execution that ended draws one tree.
        if conversion.execution.is_finished() {
            check_tree(&conversion.spans)?;
        }
    }
    Ok(())
}

fn fixtures() -> &'static [(String, Vec<u8>)] {
    static FIXTURES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/emulator");
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .expect("the emulator fixtures")
            .filter_map(|d| {
                let path = d
                    .ok()?
                    .path()
                    .join("history_IncludeExecutionData_true.json");
                let bytes = std::fs::read(&path).ok()?;
                Some((path.display().to_string(), bytes))
            })
            .collect();
        v.sort();
        assert!(v.len() >= 10, "fixtures missing in {}", dir.display());
        v
    })
}

/// Byte ranges of JSON number tokens outside strings.
fn number_tokens(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut i, mut in_string) = (0, false);
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
        } else if c == b'"' {
            in_string = true;
            i += 1;
        } else if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                i += 1;
            }
            out.push((start, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of the values that follow `key` (a quoted key with its colon), up to `end`.
fn values_after(b: &[u8], key: &[u8], end: impl Fn(u8) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = b[i..].windows(key.len()).position(|w| w == key) {
        let start = i + p + key.len();
        let mut j = start;
        while j < b.len() && !end(b[j]) {
            j += 1;
        }
        out.push((start, j));
        i = start;
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(Index, u8),
    Truncate(Index),
    DeleteRange(Index, usize),
    DuplicateRange(Index, usize),
    ReplaceNumber(Index, String),
    ReplaceEventType(Index, String),
    SwapEventIds(Index, Index),
}

fn number_replacement() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "\"12\"",
            "\"1795248229.5\"",
            "\"2026-03-14T09:26:53.663000+00:00\"",
            "\"not a number\"",
            "-1",
            "-1795248229.082658",
            "0",
            "-0",
            "0.0000000001",
            "1e15",
            "-1e15",
            "1e16",
            "1e308",
            "-1e308",
            "1e400",
            "1.8e19",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "4294967296",
            "NaN",
            "Infinity",
            "-Infinity",
            "null",
            "true",
            "[]",
            "{}",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        (any::<u32>(), 0u32..1_000_000).prop_map(|(s, f)| format!("{s}.{f:06}")),
    ]
}

fn event_type_replacement() -> impl Strategy<Value = String> {
    prop_oneof![
        select(KNOWN_EVENT_TYPES.to_vec()).prop_map(str::to_owned),
        select(vec![
            "ExecutionPaused",
            "ExecutionResumed",
            "",
            "stepstarted"
        ])
        .prop_map(str::to_owned),
        "[A-Za-z]{0,24}",
        "[ -~é漢]{0,12}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::FlipByte(i, x)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), 1usize..400).prop_map(|(i, n)| Mutation::DeleteRange(i, n)),
        1 => (any::<Index>(), 1usize..400).prop_map(|(i, n)| Mutation::DuplicateRange(i, n)),
        3 => (any::<Index>(), number_replacement()).prop_map(|(i, s)| Mutation::ReplaceNumber(i, s)),
        3 => (any::<Index>(), event_type_replacement())
            .prop_map(|(i, s)| Mutation::ReplaceEventType(i, s)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapEventIds(a, b)),
    ]
}

fn replace(b: &mut Vec<u8>, (start, end): (usize, usize), with: &[u8]) {
    b.splice(start..end, with.iter().copied());
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    if b.is_empty() {
        return;
    }
    match m {
        Mutation::FlipByte(i, x) => {
            let i = i.index(b.len());
            b[i] ^= x;
        }
        Mutation::Truncate(i) => b.truncate(i.index(b.len())),
        Mutation::DeleteRange(i, n) => {
            let start = i.index(b.len());
            let end = (start + n).min(b.len());
            b.drain(start..end);
        }
        Mutation::DuplicateRange(i, n) => {
            let start = i.index(b.len());
            let end = (start + n).min(b.len());
            let copy = b[start..end].to_vec();
            replace(b, (end, end), &copy);
        }
        Mutation::ReplaceNumber(i, s) => {
            let tokens = number_tokens(b);
            if !tokens.is_empty() {
                replace(b, tokens[i.index(tokens.len())], s.as_bytes());
            }
        }
        Mutation::ReplaceEventType(i, s) => {
            let values = values_after(b, b"\"EventType\":\"", |c| c == b'"');
            if !values.is_empty() {
                replace(b, values[i.index(values.len())], s.as_bytes());
            }
        }
        Mutation::SwapEventIds(x, y) => {
            let ids = values_after(b, b"\"EventId\":", |c| c == b',' || c == b'}');
            if ids.len() >= 2 {
                let (a, c) = (ids[x.index(ids.len())], ids[y.index(ids.len())]);
                let (first, second) = if a.0 <= c.0 { (a, c) } else { (c, a) };
                if first != second {
                    let (t1, t2) = (b[first.0..first.1].to_vec(), b[second.0..second.1].to_vec());
                    replace(b, second, &t1);
                    replace(b, first, &t2);
                }
            }
        }
    }
}

fn json_string(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(pool).prop_map(|v| serde_json::to_string(v).expect("a string serializes"))
}

/// A count of seconds (or attempts), sometimes extreme.
fn json_count() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0u64..100).prop_map(|v| v.to_string()),
        1 => select(&["0.4", "7.5", "1e15", "1.7e19", "18446744073709551615", "4294967296"][..])
            .prop_map(str::to_owned),
    ]
}

/// An epoch-seconds number or an ISO-8601 string, sometimes extreme.
fn json_timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0u32..100_000).prop_map(|ms| format!("{}.{:03}", 1_795_248_229 + ms / 1000, ms % 1000)),
        2 => (0u32..86_400).prop_map(|s| {
            format!("\"2026-03-14T{:02}:{:02}:{:02}.663000+00:00\"", s / 3600, s / 60 % 60, s % 60)
        }),
        1 => select(&[
            "0", "-1", "1e15", "-1e15", "-999999999999999.9", "999999999999999.9",
            "\"9999-12-31T23:59:59.9999Z\"", "\"0000-01-01T00:00:00Z\"",
            "\"2024-02-29T23:59:60-23:59\"",
        ][..])
        .prop_map(str::to_owned),
    ]
}

const TEXTS: &[&str] = &["", "x", "é\n\u{1}\"\\", "漢字🎉", "{\"v\":1}"];

fn json_payload() -> impl Strategy<Value = String> {
    (json_string(TEXTS), any::<bool>())
        .prop_map(|(p, t)| format!("{{\"Payload\":{p},\"Truncated\":{t}}}"))
}

fn json_error() -> impl Strategy<Value = String> {
    (json_string(TEXTS), json_string(TEXTS), vec(json_string(TEXTS), 0..3), any::<bool>()).prop_map(
        |(t, m, st, tr)| {
            format!(
                "{{\"Payload\":{{\"ErrorType\":{t},\"ErrorMessage\":{m},\"StackTrace\":[{}]}},\"Truncated\":{tr}}}",
                st.join(",")
            )
        },
    )
}

/// A details object: a random subset of the fields any details object may hold, each typed.
fn json_details() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        json_payload().prop_map(|v| ("Input", v)),
        json_payload().prop_map(|v| ("Result", v)),
        json_error().prop_map(|v| ("Error", v)),
        (json_count(), json_count()).prop_map(|(a, d)| {
            (
                "RetryDetails",
                format!("{{\"CurrentAttempt\":{a},\"NextAttemptDelaySeconds\":{d}}}"),
            )
        }),
        json_count().prop_map(|v| ("Duration", v)),
        json_count().prop_map(|v| ("ExecutionTimeout", v)),
        json_count().prop_map(|v| ("Timeout", v)),
        json_count().prop_map(|v| ("HeartbeatTimeout", v)),
        json_timestamp().prop_map(|v| ("ScheduledEndTimestamp", v)),
        json_timestamp().prop_map(|v| ("StartTimestamp", v)),
        json_timestamp().prop_map(|v| ("EndTimestamp", v)),
        json_string(TEXTS).prop_map(|v| ("CallbackId", v)),
        json_string(TEXTS).prop_map(|v| ("FunctionName", v)),
        json_string(TEXTS).prop_map(|v| ("RequestId", v)),
        json_string(TEXTS).prop_map(|v| ("DurableExecutionArn", v)),
    ];
    vec(field, 0..6).prop_map(|fields| object(fields.into_iter().collect()))
}

fn object(m: BTreeMap<&str, String>) -> String {
    let fields: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

/// A random event: EventType, EventId and EventTimestamp (almost always), operation fields from
/// a small pool of ids, and the details object its type names (usually) or another one.
fn json_event() -> impl Strategy<Value = String> {
    const IDS: &[&str] = &["a", "b", "c", "d", "e", ""];
    let event_type = prop_oneof![
        12 => select(KNOWN_EVENT_TYPES.to_vec()),
        1 => select(&["ExecutionPaused", "ExecutionResumed", ""][..]),
    ];
    let operation = vec(
        prop_oneof![
            3 => json_string(IDS).prop_map(|v| ("Id", v)),
            1 => json_string(IDS).prop_map(|v| ("ParentId", v)),
            1 => json_string(TEXTS).prop_map(|v| ("Name", v)),
            1 => json_string(&["Step", "Wait", "Parallel", "Custom"]).prop_map(|v| ("SubType", v)),
        ],
        0..4,
    );
    (
        event_type,
        proptest::option::weighted(0.995, 1u64..40),
        proptest::option::weighted(0.995, json_timestamp()),
        operation,
        proptest::option::weighted(0.8, json_details()),
        any::<bool>(),
        select(KNOWN_EVENT_TYPES),
    )
        .prop_map(|(t, id, ts, op, details, own, other)| {
            let mut m: BTreeMap<&str, String> = op.into_iter().collect();
            m.insert("EventType", format!("{t:?}"));
            if let Some(id) = id {
                m.insert("EventId", id.to_string());
            }
            if let Some(ts) = ts {
                m.insert("EventTimestamp", ts);
            }
            if let Some(d) = details {
                let key = format!("{}Details", if own { t } else { other });
                return object(m).replacen('{', &format!("{{{key:?}:{d},"), 1);
            }
            object(m)
        })
}

/// Histories of random, mostly well-typed events: they get past the reader and through every
/// anomaly path of the fold.
fn json_random_history() -> impl Strategy<Value = Vec<u8>> {
    vec(json_event(), 0..40)
        .prop_map(|events| format!("{{\"Events\":[{}]}}", events.join(",")).into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: RANDOM_INPUT_CASES, ..ProptestConfig::default() })]

    /// Arbitrary bytes never make the reader (or what follows) panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048), max in 0usize..64) {
        parse_convert_render(&bytes, max)?;
    }

    /// Nor do histories of random events (most of them read, with every kind of anomaly).
    #[test]
    fn random_event_histories_never_panic(bytes in json_random_history(), max in 0usize..64) {
        parse_convert_render(&bytes, max)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: MUTATION_CASES, ..ProptestConfig::default() })]

    /// Mutated real histories never make the reader, the fold, the span builder or a renderer
    /// panic, and what renders as JSON stays valid JSON.
    #[test]
    fn mutated_fixture_histories_never_panic(
        fixture in any::<Index>(),
        mutations in vec(mutation(), 1..5),
        max in 0usize..64,
    ) {
        let all = fixtures();
        let (_, original) = &all[fixture.index(all.len())];
        let mut bytes = original.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        parse_convert_render(&bytes, max)?;
    }
}

/// The mutation harness starts from histories that parse, and its mutators find their targets.
#[test]
fn fixtures_parse_and_mutators_find_their_targets() {
    for (path, bytes) in fixtures() {
        let parsed = parse_history(bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(!parsed.events.is_empty(), "{path}");
        assert!(!number_tokens(bytes).is_empty(), "{path}");
        let types = values_after(bytes, b"\"EventType\":\"", |c| c == b'"');
        assert_eq!(types.len(), parsed.events.len(), "{path}");
        let ids = values_after(bytes, b"\"EventId\":", |c| c == b',' || c == b'}');
        assert_eq!(ids.len(), parsed.events.len(), "{path}");
        parse_convert_render(bytes, 8).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
