//! One execution's operation state, folded from its history: the model of
//! `GetDurableExecutionState` (`Operations`: Id, ParentId, Name, Type, SubType, Status, start,
//! end and details).
//!
//! The fold is incremental and order-driven: feeding the same events in any batching yields the
//! same state and the same [`Transition`]s, because every decision is taken when an event is
//! applied, from that event and the state before it. Nothing looks at the clock.
//!
//! What it decides, and when:
//! - A step attempt ends at StepSucceeded/StepFailed; the step itself ends there unless
//!   RetryDetails schedule another attempt (`NextAttemptDelaySeconds > 0`). A StepStarted while an
//!   attempt is still open ends that attempt as interrupted.
//! - Events between two InvocationCompleted events belong to one Lambda invocation (replay),
//!   numbered from 1. An invocation's status is known only from the event after its
//!   InvocationCompleted (the terminal event or more work), so [`Transition::InvocationEnded`]
//!   comes with that next event, or earlier when the shell says the history still ended at
//!   the InvocationCompleted well after it ([`Execution::settle_invocation`]).
//! - When the execution ends, operations still open are finished as `unfinished` at the
//!   terminal event's time, so every parent span exists.

pub mod json;

use std::collections::HashSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;

pub use crate::history::{Anomaly, AnomalyKind};
use crate::history::{ErrorInfo, Event, EventDetails, OperationRef, Payload, RetryDetails};
use crate::time::Timestamp;

/// Operation types of GetDurableExecutionState.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum OperationType {
    Execution,
    Context,
    Step,
    Wait,
    Callback,
    ChainedInvoke,
}

impl OperationType {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Execution => "EXECUTION",
            OperationType::Context => "CONTEXT",
            OperationType::Step => "STEP",
            OperationType::Wait => "WAIT",
            OperationType::Callback => "CALLBACK",
            OperationType::ChainedInvoke => "CHAINED_INVOKE",
        }
    }
}

/// Operation statuses of GetDurableExecutionState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OperationStatus {
    Started,
    /// A step between attempts: a retry (or a wait_for_condition poll) is scheduled.
    Pending,
    /// A pending step whose next attempt is due: a later event carries a time past it.
    Ready,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    Stopped,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Started => "STARTED",
            OperationStatus::Pending => "PENDING",
            OperationStatus::Ready => "READY",
            OperationStatus::Succeeded => "SUCCEEDED",
            OperationStatus::Failed => "FAILED",
            OperationStatus::Cancelled => "CANCELLED",
            OperationStatus::TimedOut => "TIMED_OUT",
            OperationStatus::Stopped => "STOPPED",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            OperationStatus::Started | OperationStatus::Pending | OperationStatus::Ready
        )
    }
}

/// The execution's own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Stopped,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Stopped => "STOPPED",
        }
    }
}

/// Type-specific state of an operation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Details {
    Execution {
        input: Option<Payload>,
        timeout_seconds: Option<u64>,
    },
    Context,
    Step(StepState),
    Wait {
        duration_seconds: Option<u64>,
        scheduled_end: Option<Timestamp>,
    },
    Callback {
        callback_id: Option<String>,
        timeout_seconds: Option<u64>,
        heartbeat_timeout_seconds: Option<u64>,
    },
    ChainedInvoke {
        function_name: Option<String>,
        tenant_id: Option<String>,
        input: Option<Payload>,
        executed_version: Option<String>,
        /// The child durable execution, when the target is durable.
        durable_execution_arn: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct StepState {
    /// Attempts started so far (StepStarted events).
    pub attempts: u32,
    /// The open attempt's start and the invocation it runs in.
    pub attempt_open: Option<(Timestamp, u32)>,
    /// When the last attempt ended, and the retry delay it scheduled.
    pub last_attempt_end: Option<Timestamp>,
    pub scheduled_delay_seconds: Option<u64>,
    /// When the next attempt is due (PENDING/READY).
    pub next_attempt: Option<Timestamp>,
    /// Attempts that ended failed.
    pub failed_attempts: u32,
}

/// One operation, as GetDurableExecutionState shows it, plus what only the history knows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Operation {
    pub id: Arc<str>,
    pub parent_id: Option<Arc<str>>,
    /// False when ParentId names an operation never seen (the span falls back to Workflow).
    pub parent_known: bool,
    pub name: Option<Arc<str>>,
    pub sub_type: Option<Arc<str>>,
    pub status: OperationStatus,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    /// EventId of the operation's first event.
    pub first_event_id: u64,
    /// The invocation (1-based) the operation started in, and the one it finished in.
    pub start_invocation: u32,
    pub end_invocation: Option<u32>,
    pub result: Option<Payload>,
    pub error: Option<ErrorInfo>,
    pub details: Details,
    /// Closed by the execution's end rather than by an event of its own.
    pub unfinished: bool,
}

impl Operation {
    pub fn op_type(&self) -> OperationType {
        match self.details {
            Details::Execution { .. } => OperationType::Execution,
            Details::Context => OperationType::Context,
            Details::Step(_) => OperationType::Step,
            Details::Wait { .. } => OperationType::Wait,
            Details::Callback { .. } => OperationType::Callback,
            Details::ChainedInvoke { .. } => OperationType::ChainedInvoke,
        }
    }

    /// The Name, else the type (how AWS's plugin names an unnamed operation's span).
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .unwrap_or_else(|| self.op_type().as_str())
    }

    pub fn step(&self) -> Option<&StepState> {
        match &self.details {
            Details::Step(s) => Some(s),
            _ => None,
        }
    }
}

/// How one step attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    /// A new StepStarted came while this attempt had no end event (its invocation was lost).
    Interrupted,
}

impl AttemptOutcome {
    /// `durable.attempt.outcome` as AWS spells it: an interrupted attempt did not succeed.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "SUCCEEDED",
            AttemptOutcome::Failed | AttemptOutcome::Interrupted => "FAILED",
        }
    }
}

/// One ended step attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub start: Timestamp,
    pub end: Timestamp,
    pub outcome: AttemptOutcome,
    /// The invocation the attempt ran in.
    pub invocation: u32,
    pub error: Option<ErrorInfo>,
    /// `NextAttemptDelaySeconds` when this attempt scheduled another one.
    pub next_attempt_delay_seconds: Option<u64>,
}

/// The time between two attempts of a step: a retry back-off or a wait_for_condition interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The attempt that scheduled it; the next attempt is `after_attempt + 1`.
    pub after_attempt: u32,
    pub start: Timestamp,
    pub end: Timestamp,
    pub scheduled_delay_seconds: Option<u64>,
}

/// `durable.invocation.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InvocationStatus {
    Succeeded,
    Failed,
    /// The execution suspended at its end (a wait, a retry, a callback, a chained invoke).
    Pending,
    /// The invocation failed and the execution went on: Lambda retried it.
    Retrying,
}

impl InvocationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationStatus::Succeeded => "SUCCEEDED",
            InvocationStatus::Failed => "FAILED",
            InvocationStatus::Pending => "PENDING",
            InvocationStatus::Retrying => "RETRYING",
        }
    }
}

/// One Lambda invocation of the execution (a replay).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Invocation {
    /// 1-based.
    pub index: u32,
    pub start: Timestamp,
    pub end: Timestamp,
    /// False when the bounds are estimates (InvocationCompleted without details).
    pub exact_bounds: bool,
    /// False when the execution ended inside it without an InvocationCompleted.
    pub completed: bool,
    pub event_id: Option<u64>,
    pub request_id: Option<String>,
    pub error: Option<ErrorInfo>,
    pub status: InvocationStatus,
}

/// The time the execution spent suspended between two invocations.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspension {
    /// The invocation that suspended; the next one (if any) is `after_invocation + 1`.
    pub after_invocation: u32,
    pub start: Timestamp,
    pub end: Timestamp,
    /// What the execution waited for: WAIT, RETRY, CALLBACK, CHAINED_INVOKE (sorted, deduplicated).
    pub waiting_for: Vec<&'static str>,
    /// True when the execution ended (timed out, stopped) while suspended.
    pub ended_execution: bool,
}

/// The execution as a whole.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecutionInfo {
    pub arn: Arc<str>,
    pub status: ExecutionStatus,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub result: Option<Payload>,
    /// Boxed: rarely present, and 104 bytes inline in every fold.
    pub error: Option<Box<ErrorInfo>>,
    /// Operations seen so far (the EXECUTION operation aside): the API allows 3,000.
    #[serde(default)]
    pub operations: u32,
    /// Invocations completed so far (InvocationCompleted events).
    #[serde(default)]
    pub invocations: u32,
}

/// What changed when one event was applied. Borrowed from the state: observers copy what they
/// keep.
#[derive(Debug, Clone, Copy)]
pub enum Transition<'a> {
    ExecutionStarted(&'a ExecutionInfo),
    OperationStarted(&'a Operation),
    AttemptEnded(&'a Operation, &'a Attempt),
    BackoffEnded(&'a Operation, &'a Backoff),
    OperationFinished(&'a Operation),
    InvocationEnded(&'a Invocation),
    Suspended(&'a Suspension),
    ExecutionFinished(&'a ExecutionInfo),
    Anomaly(&'a Anomaly),
}

/// Receives transitions as events are applied (the trace builder, metrics, recorders in tests).
pub trait Observer {
    fn observe(&mut self, t: Transition<'_>);
}

impl<T: Observer + ?Sized> Observer for &mut T {
    fn observe(&mut self, t: Transition<'_>) {
        (**self).observe(t)
    }
}

/// A closure as an observer.
pub struct FnObserver<F>(pub F);

impl<F: FnMut(Transition<'_>)> Observer for FnObserver<F> {
    fn observe(&mut self, t: Transition<'_>) {
        (self.0)(t)
    }
}

/// Both observers see every transition, the first one first.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn observe(&mut self, t: Transition<'_>) {
        self.0.observe(t);
        self.1.observe(t);
    }
}

/// Fold options.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct FoldOptions {
    /// Keep finished operations (for `state-json`); the daemon keeps only open ones.
    pub keep_finished: bool,
}

/// An invocation that completed and waits for the next event to learn its status.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PendingInvocation {
    invocation: Invocation,
    #[serde(with = "waiting")]
    waiting_for: Vec<&'static str>,
}

/// The fold of one execution's history.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Execution {
    info: ExecutionInfo,
    /// Boxed, as the open operations are: most of a fold's size inline otherwise.
    execution_op: Option<Box<Operation>>,
    options: FoldOptions,
    /// Boxed: the table keeps a pointer per slot. Its slots outnumber the open operations (up
    /// to twice, and it never shrinks after a burst of parallel branches), and each inline
    /// `Operation` is a few hundred bytes; moving one out and back in moves a pointer.
    open: FxHashMap<Arc<str>, Box<Operation>>,
    /// Boxed as they were while open: retiring one moves a pointer, not the whole operation,
    /// and the vector grows by copying pointers.
    #[expect(clippy::vec_box, reason = "operations arrive boxed from `open`")]
    finished: Vec<Box<Operation>>,
    /// Hashes of every operation id seen (open or finished), for ParentId checks.
    seen: HashSet<u64>,
    last_event_id: u64,
    /// The invocation events are now attributed to (1-based).
    invocation: u32,
    /// The end of the previous invocation (or the execution start).
    last_invocation_end: Option<Timestamp>,
    pending_invocation: Option<PendingInvocation>,
    /// The last invocation was settled ([`Execution::settle_invocation`]) and no event came
    /// since: the next one is checked against it.
    #[serde(default)]
    settled: bool,
    /// A suspension that began at an InvocationCompleted and has not been closed yet.
    #[serde(with = "waiting_since")]
    open_suspension: Option<(Timestamp, Vec<&'static str>)>,
    /// Time of the first event after the last InvocationCompleted.
    first_event_since_invocation: Option<Timestamp>,
    /// Whether events written from inside an invocation came after the last InvocationCompleted.
    work_since_invocation: bool,
    /// The earliest next-attempt time of a PENDING step, so READY is checked only when due.
    earliest_retry: Option<Timestamp>,
    events_applied: u64,
}

/// FNV-1a: stable across builds and Rust versions, since these hashes are persisted with the
/// fold (checkpoint snapshots).
fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What a suspension waits for, persisted by name.
const WAITING_NAMES: [&str; 4] = ["WAIT", "RETRY", "CALLBACK", "CHAINED_INVOKE"];

mod waiting {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[&'static str], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<&'static str>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        Ok(names
            .iter()
            .filter_map(|n| super::WAITING_NAMES.iter().copied().find(|k| k == n))
            .collect())
    }
}

mod waiting_since {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::time::Timestamp;

    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(
        v: &Option<(Timestamp, Vec<&'static str>)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(Timestamp, Vec<&'static str>)>, D::Error> {
        let v = Option::<(Timestamp, Vec<String>)>::deserialize(d)?;
        Ok(v.map(|(t, names)| {
            (
                t,
                names
                    .iter()
                    .filter_map(|n| super::WAITING_NAMES.iter().copied().find(|k| k == n))
                    .collect(),
            )
        }))
    }
}

impl Execution {
    pub fn new(arn: impl Into<Arc<str>>, options: FoldOptions) -> Self {
        Execution {
            info: ExecutionInfo {
                arn: arn.into(),
                status: ExecutionStatus::Running,
                start: None,
                end: None,
                result: None,
                error: None,
                operations: 0,
                invocations: 0,
            },
            execution_op: None,
            options,
            open: FxHashMap::default(),
            finished: Vec::new(),
            seen: HashSet::new(),
            last_event_id: 0,
            invocation: 1,
            last_invocation_end: None,
            pending_invocation: None,
            settled: false,
            open_suspension: None,
            first_event_since_invocation: None,
            work_since_invocation: false,
            earliest_retry: None,
            events_applied: 0,
        }
    }

    pub fn info(&self) -> &ExecutionInfo {
        &self.info
    }

    pub fn arn(&self) -> &str {
        &self.info.arn
    }

    pub fn is_finished(&self) -> bool {
        self.info.status != ExecutionStatus::Running
    }

    /// The last EventId applied (0 before any).
    pub fn last_event_id(&self) -> u64 {
        self.last_event_id
    }

    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    /// The invocation new events are attributed to.
    pub fn current_invocation(&self) -> u32 {
        self.invocation
    }

    /// Operations still open, in start order.
    pub fn open_operations(&self) -> Vec<&Operation> {
        let mut v: Vec<&Operation> = self.open.values().map(|op| &**op).collect();
        v.sort_by_key(|o| o.first_event_id);
        v
    }

    /// Every operation known (the EXECUTION operation, finished ones when kept, open ones),
    /// ordered by start time, then by first event.
    pub fn operations(&self) -> Vec<&Operation> {
        let mut v: Vec<&Operation> = self
            .execution_op
            .as_deref()
            .into_iter()
            .chain(self.finished.iter().map(|op| &**op))
            .chain(self.open.values().map(|op| &**op))
            .collect();
        v.sort_by_key(|o| (o.start, o.first_event_id));
        v
    }

    /// The earliest time the execution can change on its own: a wait's scheduled end, a retry
    /// coming due, a callback timing out, the execution timing out. `None` once finished, or
    /// when only an outside party (a callback without a time-out, a chained invoke) can move it.
    pub fn next_change(&self) -> Option<Timestamp> {
        if self.is_finished() {
            return None;
        }
        let exec_deadline = match self.execution_op.as_deref() {
            Some(Operation {
                start,
                details:
                    Details::Execution {
                        timeout_seconds: Some(t),
                        ..
                    },
                ..
            }) => Some(add_secs(*start, *t)),
            _ => None,
        };
        self.open
            .values()
            .filter_map(|op| match &op.details {
                Details::Wait { scheduled_end, .. } => *scheduled_end,
                Details::Step(s) => s.next_attempt,
                Details::Callback {
                    timeout_seconds, ..
                } => timeout_seconds.map(|t| add_secs(op.start, t)),
                _ => None,
            })
            .chain(exec_deadline)
            .min()
    }

    /// The fold as JSON, to persist beside a cursor (resuming without re-reading the history).
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A fold from [`Execution::snapshot`]; `None` when it does not read back (another format).
    pub fn restore(snapshot: serde_json::Value) -> Option<Self> {
        serde_json::from_value(snapshot).ok()
    }

    /// The last invocation completed and nothing has run since: only a wait ending, a retry
    /// coming due, a callback, a chained invoke or a time-out can move the execution now.
    pub fn is_suspended(&self) -> bool {
        !self.is_finished()
            && (self.pending_invocation.is_some() || self.open_suspension.is_some())
            && !self.work_since_invocation
    }

    /// Every open operation (contexts aside) is a wait with a scheduled end or a step with a
    /// next-attempt time: the execution will not change before the earliest of them, unless
    /// someone stops it.
    pub fn waits_only_for_known_times(&self) -> bool {
        let mut any = false;
        for op in self.open.values() {
            match &op.details {
                Details::Context => {}
                Details::Wait {
                    scheduled_end: Some(_),
                    ..
                } => any = true,
                Details::Step(s) if s.next_attempt.is_some() => any = true,
                _ => return false,
            }
        }
        any
    }

    /// Applies events in order. Events at or below the last applied EventId are skipped
    /// (reported as duplicates), so overlapping pages and re-reads are harmless.
    pub fn apply_all<'e>(
        &mut self,
        events: impl IntoIterator<Item = &'e Event>,
        obs: &mut impl Observer,
    ) {
        for e in events {
            self.apply(e, obs);
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, e: &Event, obs: &mut impl Observer) {
        if e.id <= self.last_event_id {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::DuplicateEvent,
                format!(
                    "event {} ({}) was already applied",
                    e.id,
                    e.details.event_type()
                ),
            );
            return;
        }
        if e.id > self.last_event_id + 1 {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::EventGap,
                format!(
                    "events {}..{} are missing",
                    self.last_event_id + 1,
                    e.id - 1
                ),
            );
        }
        self.last_event_id = e.id;
        self.events_applied += 1;
        self.report_undrawable_times(e, obs);

        if self.is_finished() {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::AfterTerminal,
                format!(
                    "{} after the execution ended {}: ignored",
                    e.details.event_type(),
                    self.info.status.as_str()
                ),
            );
            return;
        }
        if let EventDetails::Unknown { event_type } = &e.details {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::UnknownEventType,
                format!("unknown EventType {event_type:?}: skipped"),
            );
            return;
        }
        if self.info.start.is_none() && !matches!(e.details, EventDetails::ExecutionStarted { .. })
        {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::NoExecutionStarted,
                format!(
                    "{} before ExecutionStarted: the execution start is taken from it",
                    e.details.event_type()
                ),
            );
            self.start_execution(e, None, None, obs);
        }

        if let EventDetails::InvocationCompleted {
            start,
            end,
            request_id,
            error,
        } = &e.details
        {
            self.invocation_completed(e, *start, *end, request_id, error, obs);
            return;
        }
        self.resolve_pending_invocation(e, obs);
        self.first_event_since_invocation.get_or_insert(e.timestamp);
        self.mark_ready_retries(e.timestamp);

        use EventDetails as D;
        match &e.details {
            D::ExecutionStarted {
                input,
                execution_timeout_seconds,
            } => {
                if self.info.start.is_some() {
                    self.anomaly(
                        obs,
                        e.id,
                        AnomalyKind::RepeatedStart,
                        "a second ExecutionStarted: ignored".into(),
                    );
                } else {
                    self.start_execution(e, input.clone(), *execution_timeout_seconds, obs);
                }
            }
            D::ExecutionSucceeded { result } => {
                self.info.result = result.clone();
                self.finish_execution(e, ExecutionStatus::Succeeded, None, obs)
            }
            D::ExecutionFailed { error } => {
                self.finish_execution(e, ExecutionStatus::Failed, error.clone(), obs)
            }
            D::ExecutionTimedOut { error } => {
                self.finish_execution(e, ExecutionStatus::TimedOut, error.clone(), obs)
            }
            D::ExecutionStopped { error } => {
                self.finish_execution(e, ExecutionStatus::Stopped, error.clone(), obs)
            }
            D::ContextStarted => {
                self.work_since_invocation = true;
                self.start_operation(e, Details::Context, obs);
            }
            D::WaitStarted {
                duration_seconds,
                scheduled_end,
            } => {
                self.work_since_invocation = true;
                let details = Details::Wait {
                    duration_seconds: *duration_seconds,
                    scheduled_end: *scheduled_end,
                };
                self.start_operation(e, details, obs);
            }
            D::CallbackStarted {
                callback_id,
                timeout_seconds,
                heartbeat_timeout_seconds,
            } => {
                self.work_since_invocation = true;
                let details = Details::Callback {
                    callback_id: callback_id.clone(),
                    timeout_seconds: *timeout_seconds,
                    heartbeat_timeout_seconds: *heartbeat_timeout_seconds,
                };
                self.start_operation(e, details, obs);
            }
            D::ChainedInvokeStarted {
                function_name,
                tenant_id,
                input,
                executed_version,
                durable_execution_arn,
            } => {
                self.work_since_invocation = true;
                let details = Details::ChainedInvoke {
                    function_name: function_name.clone(),
                    tenant_id: tenant_id.clone(),
                    input: input.clone(),
                    executed_version: executed_version.clone(),
                    durable_execution_arn: durable_execution_arn.clone(),
                };
                self.start_operation(e, details, obs);
            }
            D::StepStarted => {
                self.work_since_invocation = true;
                self.step_started(e, obs);
            }
            D::StepSucceeded { result, retry } => {
                self.work_since_invocation = true;
                self.step_ended(e, result.as_ref(), None, retry.as_ref(), obs);
            }
            D::StepFailed { error, retry } => {
                self.work_since_invocation = true;
                self.step_ended(e, None, error.as_ref(), retry.as_ref(), obs);
            }
            D::ContextSucceeded { .. } => {
                self.work_since_invocation = true;
                self.finish_operation(e, OperationType::Context, OperationStatus::Succeeded, obs)
            }
            D::ContextFailed { .. } => {
                self.work_since_invocation = true;
                self.finish_operation(e, OperationType::Context, OperationStatus::Failed, obs)
            }
            D::WaitSucceeded { .. } => {
                self.finish_operation(e, OperationType::Wait, OperationStatus::Succeeded, obs)
            }
            D::WaitCancelled { .. } => {
                self.work_since_invocation = true;
                self.finish_operation(e, OperationType::Wait, OperationStatus::Cancelled, obs)
            }
            D::CallbackSucceeded { .. } => {
                self.finish_operation(e, OperationType::Callback, OperationStatus::Succeeded, obs)
            }
            D::CallbackFailed { .. } => {
                self.finish_operation(e, OperationType::Callback, OperationStatus::Failed, obs)
            }
            D::CallbackTimedOut { .. } => {
                self.finish_operation(e, OperationType::Callback, OperationStatus::TimedOut, obs)
            }
            D::ChainedInvokeSucceeded { .. } => self.finish_operation(
                e,
                OperationType::ChainedInvoke,
                OperationStatus::Succeeded,
                obs,
            ),
            D::ChainedInvokeFailed { .. } => self.finish_operation(
                e,
                OperationType::ChainedInvoke,
                OperationStatus::Failed,
                obs,
            ),
            D::ChainedInvokeTimedOut { .. } => self.finish_operation(
                e,
                OperationType::ChainedInvoke,
                OperationStatus::TimedOut,
                obs,
            ),
            D::ChainedInvokeStopped { .. } => self.finish_operation(
                e,
                OperationType::ChainedInvoke,
                OperationStatus::Stopped,
                obs,
            ),
            D::InvocationCompleted { .. } | D::Unknown { .. } => {}
        }
    }

    /// One anomaly for an event with times a span cannot carry (the readers keep them as read;
    /// spans clamp them), naming each field and its value.
    fn report_undrawable_times(&self, e: &Event, obs: &mut impl Observer) {
        let mut fields = e.undrawable_timestamps().peekable();
        if fields.peek().is_none() {
            return;
        }
        let listed: Vec<String> = fields
            .map(|(field, t)| format!("{field} {t} ({})", t.to_iso8601()))
            .collect();
        self.anomaly(
            obs,
            e.id,
            AnomalyKind::TimestampOutOfRange,
            format!(
                "{} has {} outside what a span can carry ({} to {}): kept as read, clamped to that range in spans",
                e.details.event_type(),
                listed.join(", "),
                Timestamp::DRAWABLE_MIN.to_iso8601(),
                Timestamp::DRAWABLE_MAX.to_iso8601()
            ),
        );
    }

    fn anomaly(&self, obs: &mut impl Observer, event_id: u64, kind: AnomalyKind, message: String) {
        obs.observe(Transition::Anomaly(&Anomaly {
            event_id,
            kind,
            message,
        }));
    }

    fn start_execution(
        &mut self,
        e: &Event,
        input: Option<Payload>,
        timeout_seconds: Option<u64>,
        obs: &mut impl Observer,
    ) {
        self.info.start = Some(e.timestamp);
        self.last_invocation_end = Some(e.timestamp);
        let (id, name) = match &e.operation {
            Some(op) => (op.id.clone(), op.name.clone()),
            None => (Arc::from(""), None),
        };
        self.execution_op = Some(Box::new(Operation {
            id,
            parent_id: None,
            parent_known: true,
            name,
            sub_type: None,
            status: OperationStatus::Started,
            start: e.timestamp,
            end: None,
            first_event_id: e.id,
            start_invocation: self.invocation,
            end_invocation: None,
            result: None,
            error: None,
            details: Details::Execution {
                input,
                timeout_seconds,
            },
            unfinished: false,
        }));
        obs.observe(Transition::ExecutionStarted(&self.info));
    }

    /// Resolves the status of the invocation that completed just before `e`.
    fn resolve_pending_invocation(&mut self, e: &Event, obs: &mut impl Observer) {
        let terminal = matches!(
            e.details,
            EventDetails::ExecutionSucceeded { .. } | EventDetails::ExecutionFailed { .. }
        );
        if std::mem::take(&mut self.settled) && terminal {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::SettledInvocationEnded,
                format!(
                    "invocation {} was drawn as suspended, but {} followed its InvocationCompleted",
                    self.invocation - 1,
                    e.details.event_type()
                ),
            );
        }
        let Some(pending) = self.pending_invocation.take() else {
            return;
        };
        let failed = pending.invocation.error.is_some();
        let status = match &e.details {
            EventDetails::ExecutionSucceeded { .. } if !failed => InvocationStatus::Succeeded,
            _ if terminal => InvocationStatus::Failed,
            _ if failed => InvocationStatus::Retrying,
            _ => InvocationStatus::Pending,
        };
        self.end_invocation(pending, status, obs);
    }

    fn end_invocation(
        &mut self,
        pending: PendingInvocation,
        status: InvocationStatus,
        obs: &mut impl Observer,
    ) {
        let PendingInvocation {
            mut invocation,
            waiting_for,
        } = pending;
        invocation.status = status;
        obs.observe(Transition::InvocationEnded(&invocation));
        if !matches!(
            invocation.status,
            InvocationStatus::Succeeded | InvocationStatus::Failed
        ) {
            self.open_suspension = Some((invocation.end, waiting_for));
        }
    }

    /// The invocation that completed last and waits for the next event to learn its status.
    pub fn pending_invocation(&self) -> Option<&Invocation> {
        self.pending_invocation.as_ref().map(|p| &p.invocation)
    }

    /// The shell's word that the history still ended at the pending invocation's
    /// InvocationCompleted when read well after it. The service writes ExecutionSucceeded or
    /// ExecutionFailed within milliseconds after the InvocationCompleted of the invocation
    /// that ends the execution, so this invocation suspended it: it ends now as PENDING
    /// (RETRYING when it failed), and the suspension begins, instead of both waiting for the
    /// next event (a wait of up to a year). Returns the invocation's index; None when no
    /// invocation was pending. Should the next event end the execution after all, it is
    /// reported ([`AnomalyKind::SettledInvocationEnded`]).
    pub fn settle_invocation(&mut self, obs: &mut impl Observer) -> Option<u32> {
        let pending = self.pending_invocation.take()?;
        let index = pending.invocation.index;
        let status = if pending.invocation.error.is_some() {
            InvocationStatus::Retrying
        } else {
            InvocationStatus::Pending
        };
        self.end_invocation(pending, status, obs);
        self.settled = true;
        Some(index)
    }

    fn invocation_completed(
        &mut self,
        e: &Event,
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        request_id: &Option<String>,
        error: &Option<ErrorInfo>,
        obs: &mut impl Observer,
    ) {
        // Two InvocationCompleted in a row: the earlier one did nothing but resume.
        self.resolve_pending_invocation(e, obs);
        let end_ts = end.unwrap_or(e.timestamp);
        let start_ts = start
            .or(self.last_invocation_end)
            .unwrap_or(e.timestamp)
            .min(end_ts);
        self.close_suspension(start.or(self.first_event_since_invocation), false, obs);
        let invocation = Invocation {
            index: self.invocation,
            start: start_ts,
            end: end_ts,
            exact_bounds: start.is_some() && end.is_some(),
            completed: true,
            event_id: Some(e.id),
            request_id: request_id.clone(),
            error: error.clone(),
            status: InvocationStatus::Pending,
        };
        let waiting_for = self.waiting_for();
        self.pending_invocation = Some(PendingInvocation {
            invocation,
            waiting_for,
        });
        self.last_invocation_end = Some(end_ts);
        self.invocation += 1;
        self.info.invocations += 1;
        self.first_event_since_invocation = None;
        self.work_since_invocation = false;
    }

    /// Closes the open suspension at `resumed` (the next invocation's start), if any.
    fn close_suspension(
        &mut self,
        resumed: Option<Timestamp>,
        ended_execution: bool,
        obs: &mut impl Observer,
    ) {
        if let Some((start, waiting_for)) = self.open_suspension.take() {
            let end = resumed.unwrap_or(start).max(start);
            obs.observe(Transition::Suspended(&Suspension {
                after_invocation: self.invocation - 1,
                start,
                end,
                waiting_for,
                ended_execution,
            }));
        }
    }

    /// What the open operations wait for, when the execution suspends now.
    fn waiting_for(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self
            .open
            .values()
            .filter_map(|op| match &op.details {
                Details::Wait { .. } => Some("WAIT"),
                Details::Step(s) if s.next_attempt.is_some() => Some("RETRY"),
                Details::Callback { .. } => Some("CALLBACK"),
                Details::ChainedInvoke { .. } => Some("CHAINED_INVOKE"),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn mark_ready_retries(&mut self, now: Timestamp) {
        if self.earliest_retry.is_none_or(|due| due > now) {
            return;
        }
        self.earliest_retry = None;
        for op in self.open.values_mut() {
            if op.status == OperationStatus::Pending
                && op
                    .step()
                    .and_then(|s| s.next_attempt)
                    .is_some_and(|due| due <= now)
            {
                op.status = OperationStatus::Ready;
            }
        }
        // Retries still in the future keep their place.
        self.earliest_retry = self
            .open
            .values()
            .filter(|op| op.status == OperationStatus::Pending)
            .filter_map(|op| op.step().and_then(|s| s.next_attempt))
            .min();
    }

    fn finish_execution(
        &mut self,
        e: &Event,
        status: ExecutionStatus,
        error: Option<ErrorInfo>,
        obs: &mut impl Observer,
    ) {
        // Suspended until the end: the execution timed out or was stopped while waiting.
        let resumed = if self.work_since_invocation {
            self.first_event_since_invocation
        } else {
            Some(e.timestamp)
        };
        self.close_suspension(resumed, !self.work_since_invocation, obs);
        if self.work_since_invocation {
            // The execution ended inside an invocation that has no InvocationCompleted.
            let start = self
                .last_invocation_end
                .unwrap_or(e.timestamp)
                .min(e.timestamp);
            let invocation = Invocation {
                index: self.invocation,
                start,
                end: e.timestamp,
                exact_bounds: false,
                completed: false,
                event_id: None,
                request_id: None,
                error: None,
                status: if status == ExecutionStatus::Succeeded {
                    InvocationStatus::Succeeded
                } else {
                    InvocationStatus::Failed
                },
            };
            self.info.invocations += 1;
            obs.observe(Transition::InvocationEnded(&invocation));
        }

        let mut still_open: Vec<Box<Operation>> = self.open.drain().map(|(_, op)| op).collect();
        still_open.sort_by_key(|o| o.first_event_id);
        for mut op in still_open {
            op.end = Some(e.timestamp);
            op.end_invocation = Some(self.invocation);
            op.unfinished = true;
            if let Details::Step(s) = &mut op.details
                && let Some((start, invocation)) = s.attempt_open.take()
            {
                let attempt = Attempt {
                    number: s.attempts,
                    start,
                    end: e.timestamp,
                    outcome: AttemptOutcome::Interrupted,
                    invocation,
                    error: None,
                    next_attempt_delay_seconds: None,
                };
                obs.observe(Transition::AttemptEnded(&op, &attempt));
            }
            obs.observe(Transition::OperationFinished(&op));
            if self.options.keep_finished {
                self.finished.push(op);
            }
        }

        self.info.status = status;
        self.info.end = Some(e.timestamp);
        self.info.error = error.map(Box::new);
        if let Some(op) = &mut self.execution_op {
            op.end = Some(e.timestamp);
            op.end_invocation = Some(self.invocation);
            op.status = match status {
                ExecutionStatus::Running => OperationStatus::Started,
                ExecutionStatus::Succeeded => OperationStatus::Succeeded,
                ExecutionStatus::Failed => OperationStatus::Failed,
                ExecutionStatus::TimedOut => OperationStatus::TimedOut,
                ExecutionStatus::Stopped => OperationStatus::Stopped,
            };
            op.result = self.info.result.clone();
            op.error = self.info.error.as_deref().cloned();
        }
        obs.observe(Transition::ExecutionFinished(&self.info));
    }

    /// The operation reference of an operation event, or an anomaly.
    fn op_ref<'e>(&self, e: &'e Event, obs: &mut impl Observer) -> Option<&'e OperationRef> {
        let r = e.operation.as_ref().filter(|r| !r.id.is_empty());
        if r.is_none() {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::MissingOperationId,
                format!(
                    "{} without an operation Id: skipped",
                    e.details.event_type()
                ),
            );
        }
        r
    }

    fn new_operation(&mut self, e: &Event, r: &OperationRef, details: Details) -> Box<Operation> {
        let parent_known = r
            .parent_id
            .as_deref()
            .is_none_or(|p| self.seen.contains(&id_hash(p)));
        self.seen.insert(id_hash(&r.id));
        self.info.operations += 1;
        Box::new(Operation {
            // The event's own text, shared; the parent's id is the open parent's own (most
            // are open), so that its children do not each keep a copy.
            id: r.id.clone(),
            parent_id: r
                .parent_id
                .as_ref()
                .map(|p| match self.open.get_key_value(&**p) {
                    Some((id, _)) => Arc::clone(id),
                    None => Arc::clone(p),
                }),
            parent_known,
            name: r.name.clone(),
            sub_type: r.sub_type.clone(),
            status: OperationStatus::Started,
            start: e.timestamp,
            end: None,
            first_event_id: e.id,
            start_invocation: self.invocation,
            end_invocation: None,
            result: None,
            error: None,
            details,
            unfinished: false,
        })
    }

    fn report_unknown_parent(&self, op: &Operation, e: &Event, obs: &mut impl Observer) {
        if !op.parent_known {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::UnknownParent,
                format!(
                    "operation {} names ParentId {} which was never seen: drawn under Workflow",
                    op.id,
                    op.parent_id.as_deref().unwrap_or_default()
                ),
            );
        }
    }

    fn start_operation(&mut self, e: &Event, details: Details, obs: &mut impl Observer) {
        let Some(r) = self.op_ref(e, obs) else {
            return;
        };
        if self.open.contains_key(&*r.id) {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::RepeatedStart,
                format!(
                    "{} for operation {} which is already open: ignored",
                    e.details.event_type(),
                    r.id
                ),
            );
            return;
        }
        if self.seen.contains(&id_hash(&r.id)) {
            self.after_finish(e, &r.id, obs);
            return;
        }
        let op = self.new_operation(e, r, details);
        self.report_unknown_parent(&op, e, obs);
        obs.observe(Transition::OperationStarted(&op));
        self.open.insert(op.id.clone(), op);
    }

    fn after_finish(&self, e: &Event, id: &str, obs: &mut impl Observer) {
        self.anomaly(
            obs,
            e.id,
            AnomalyKind::AfterFinish,
            format!(
                "{} for operation {id} which had already finished: ignored",
                e.details.event_type()
            ),
        );
    }

    /// The open operation an event continues, creating it (with an anomaly) when the history
    /// never started it. `None` when the event must be skipped.
    fn continue_operation(
        &mut self,
        e: &Event,
        expected: OperationType,
        obs: &mut impl Observer,
    ) -> Option<Box<Operation>> {
        let r = self.op_ref(e, obs)?;
        if let Some(op) = self.open.remove(&*r.id) {
            if op.op_type() != expected {
                self.anomaly(
                    obs,
                    e.id,
                    AnomalyKind::TypeMismatch,
                    format!(
                        "{} for operation {} which started as {}",
                        e.details.event_type(),
                        op.id,
                        op.op_type().as_str()
                    ),
                );
            }
            return Some(op);
        }
        if self.seen.contains(&id_hash(&r.id)) {
            self.after_finish(e, &r.id, obs);
            return None;
        }
        self.anomaly(
            obs,
            e.id,
            AnomalyKind::NoStart,
            format!(
                "{} for operation {} which never started: drawn from this event",
                e.details.event_type(),
                r.id
            ),
        );
        let details = match expected {
            OperationType::Step => Details::Step(StepState::default()),
            OperationType::Wait => Details::Wait {
                duration_seconds: None,
                scheduled_end: None,
            },
            OperationType::Callback => Details::Callback {
                callback_id: None,
                timeout_seconds: None,
                heartbeat_timeout_seconds: None,
            },
            OperationType::ChainedInvoke => Details::ChainedInvoke {
                function_name: None,
                tenant_id: None,
                input: None,
                executed_version: None,
                durable_execution_arn: None,
            },
            OperationType::Context | OperationType::Execution => Details::Context,
        };
        let op = self.new_operation(e, r, details);
        self.report_unknown_parent(&op, e, obs);
        obs.observe(Transition::OperationStarted(&op));
        Some(op)
    }

    fn finish_operation(
        &mut self,
        e: &Event,
        expected: OperationType,
        status: OperationStatus,
        obs: &mut impl Observer,
    ) {
        let Some(mut op) = self.continue_operation(e, expected, obs) else {
            return;
        };
        op.status = status;
        op.end = Some(e.timestamp);
        op.end_invocation = Some(self.invocation);
        op.result = e.details.result().cloned();
        op.error = e.details.error().cloned();
        if let (
            Details::Wait {
                duration_seconds, ..
            },
            EventDetails::WaitSucceeded {
                duration_seconds: Some(d),
            },
        ) = (&mut op.details, &e.details)
        {
            duration_seconds.get_or_insert(*d);
        }
        self.retire(op, obs);
    }

    /// Reports a finished operation and keeps it only when asked to.
    fn retire(&mut self, op: Box<Operation>, obs: &mut impl Observer) {
        obs.observe(Transition::OperationFinished(&op));
        if self.options.keep_finished {
            self.finished.push(op);
        }
    }

    fn step_started(&mut self, e: &Event, obs: &mut impl Observer) {
        let Some(r) = self.op_ref(e, obs) else {
            return;
        };
        let Some(mut op) = self.open.remove(&*r.id) else {
            if self.seen.contains(&id_hash(&r.id)) {
                self.after_finish(e, &r.id, obs);
                return;
            }
            let mut op = self.new_operation(e, r, Details::Step(StepState::default()));
            self.report_unknown_parent(&op, e, obs);
            if let Details::Step(s) = &mut op.details {
                s.attempts = 1;
                s.attempt_open = Some((e.timestamp, self.invocation));
            }
            obs.observe(Transition::OperationStarted(&op));
            self.open.insert(op.id.clone(), op);
            return;
        };
        let invocation = self.invocation;
        let Details::Step(s) = &mut op.details else {
            self.anomaly(
                obs,
                e.id,
                AnomalyKind::TypeMismatch,
                format!(
                    "StepStarted for operation {} which started as {}: ignored",
                    op.id,
                    op.op_type().as_str()
                ),
            );
            self.open.insert(op.id.clone(), op);
            return;
        };
        // What the new start ends: an open attempt (lost with its invocation) or a back-off.
        let interrupted = s
            .attempt_open
            .take()
            .map(|(start, attempt_invocation)| Attempt {
                number: s.attempts,
                start,
                end: e.timestamp.max(start),
                outcome: AttemptOutcome::Interrupted,
                invocation: attempt_invocation,
                error: None,
                next_attempt_delay_seconds: None,
            });
        let backoff = match (&interrupted, s.last_attempt_end) {
            (None, Some(prev_end)) => Some(Backoff {
                after_attempt: s.attempts,
                start: prev_end,
                end: e.timestamp.max(prev_end),
                scheduled_delay_seconds: s.scheduled_delay_seconds,
            }),
            _ => None,
        };
        if interrupted.is_some() {
            s.last_attempt_end = Some(e.timestamp);
            s.failed_attempts += 1;
        }
        if let Some(a) = &interrupted {
            obs.observe(Transition::AttemptEnded(&op, a));
        }
        if let Some(b) = &backoff {
            obs.observe(Transition::BackoffEnded(&op, b));
        }
        if let Details::Step(s) = &mut op.details {
            s.attempts += 1;
            s.attempt_open = Some((e.timestamp, invocation));
            s.next_attempt = None;
            s.scheduled_delay_seconds = None;
        }
        op.status = OperationStatus::Started;
        self.open.insert(op.id.clone(), op);
    }

    fn step_ended(
        &mut self,
        e: &Event,
        result: Option<&Payload>,
        error: Option<&ErrorInfo>,
        retry: Option<&RetryDetails>,
        obs: &mut impl Observer,
    ) {
        let Some(mut op) = self.continue_operation(e, OperationType::Step, obs) else {
            return;
        };
        let succeeded = error.is_none() && matches!(e.details, EventDetails::StepSucceeded { .. });
        let another = retry.is_some_and(RetryDetails::schedules_another_attempt);
        let delay = retry.and_then(|r| r.next_attempt_delay_seconds);
        let Details::Step(s) = &mut op.details else {
            // Not a step (a type mismatch already reported): finish it as it says.
            op.status = if succeeded {
                OperationStatus::Succeeded
            } else {
                OperationStatus::Failed
            };
            op.end = Some(e.timestamp);
            op.end_invocation = Some(self.invocation);
            op.result = result.cloned();
            op.error = error.cloned();
            self.retire(op, obs);
            return;
        };
        let attempt = s.attempt_open.take().map(|(start, invocation)| Attempt {
            number: s.attempts,
            start,
            end: e.timestamp.max(start),
            outcome: if succeeded {
                AttemptOutcome::Succeeded
            } else {
                AttemptOutcome::Failed
            },
            invocation,
            error: error.cloned(),
            next_attempt_delay_seconds: if another { delay } else { None },
        });
        if !succeeded {
            s.failed_attempts += 1;
        }
        s.last_attempt_end = Some(e.timestamp);
        op.result = result.cloned();
        op.error = error.cloned();
        if another {
            s.scheduled_delay_seconds = delay;
            s.next_attempt = delay.map(|d| add_secs(e.timestamp, d));
            op.status = OperationStatus::Pending;
            if let Some(due) = s.next_attempt {
                self.earliest_retry = Some(self.earliest_retry.map_or(due, |e| e.min(due)));
            }
        } else {
            s.next_attempt = None;
            op.status = if succeeded {
                OperationStatus::Succeeded
            } else {
                OperationStatus::Failed
            };
            op.end = Some(e.timestamp);
            op.end_invocation = Some(self.invocation);
        }
        if let Some(a) = &attempt {
            obs.observe(Transition::AttemptEnded(&op, a));
        }
        if another {
            self.open.insert(op.id.clone(), op);
        } else {
            self.retire(op, obs);
        }
    }
}

fn add_secs(t: Timestamp, secs: u64) -> Timestamp {
    Timestamp(t.0.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)))
}

#[cfg(test)]
mod tests;
