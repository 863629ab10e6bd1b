//! A durable execution's history: the events of `GetDurableExecutionHistory` as our own types.
//!
//! Both sources end here: raw JSON (`json`, for saved histories and the AWS CLI's output) and
//! aws-sdk-lambda's `Event` (`sdk`, for the daemon). Unknown event types are kept as
//! [`EventDetails::Unknown`] so that a newer API never breaks a reader.

pub mod json;
pub mod sdk;

use std::sync::Arc;

use crate::time::Timestamp;

/// One history event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// 1, 2, 3 ... in order within one execution.
    pub id: u64,
    pub timestamp: Timestamp,
    /// The operation the event belongs to (absent on InvocationCompleted).
    pub operation: Option<OperationRef>,
    pub details: EventDetails,
}

/// The operation fields every operation event carries. Shared text: the fold keeps these very
/// strings in its operations instead of copying them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationRef {
    pub id: Arc<str>,
    pub name: Option<Arc<str>>,
    pub parent_id: Option<Arc<str>>,
    pub sub_type: Option<Arc<str>>,
}

impl Event {
    /// Every time the event carries, by the API's field name: EventTimestamp and the
    /// timestamps in its details.
    pub fn timestamps(&self) -> impl Iterator<Item = (&'static str, Timestamp)> {
        let details: [Option<(&'static str, Timestamp)>; 2] = match &self.details {
            EventDetails::WaitStarted { scheduled_end, .. } => {
                [scheduled_end.map(|t| ("ScheduledEndTimestamp", t)), None]
            }
            EventDetails::InvocationCompleted { start, end, .. } => [
                start.map(|t| ("StartTimestamp", t)),
                end.map(|t| ("EndTimestamp", t)),
            ],
            _ => [None, None],
        };
        std::iter::once(("EventTimestamp", self.timestamp)).chain(details.into_iter().flatten())
    }

    /// The times a span cannot carry as they are (before 1970 or after 2262): they are kept as
    /// read and clamped where spans are written, and the fold reports the event once
    /// (`timestamp_out_of_range`).
    pub fn undrawable_timestamps(&self) -> impl Iterator<Item = (&'static str, Timestamp)> {
        self.timestamps().filter(|(_, t)| !t.is_drawable())
    }
}

/// A payload (input or result) as the API wraps it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Payload {
    pub payload: Option<String>,
    pub truncated: bool,
}

/// An `ErrorObject` inside an `EventError`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub error_data: Option<String>,
    pub stack_trace: Vec<String>,
    pub truncated: bool,
}

impl ErrorInfo {
    /// `Type: message`, or whichever of the two is known.
    pub fn summary(&self) -> String {
        match (&self.error_type, &self.error_message) {
            (Some(t), Some(m)) => format!("{t}: {m}"),
            (Some(t), None) => t.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => String::new(),
        }
    }
}

/// `RetryDetails` on StepSucceeded and StepFailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryDetails {
    pub current_attempt: Option<u32>,
    pub next_attempt_delay_seconds: Option<u64>,
}

impl RetryDetails {
    /// `None` for the empty placeholder aws-sdk-lambda puts in place of absent RetryDetails
    /// (CurrentAttempt 0, no delay), so both readers agree.
    pub fn meaningful(self) -> Option<Self> {
        let empty = matches!(self.current_attempt, None | Some(0))
            && self.next_attempt_delay_seconds.is_none();
        (!empty).then_some(self)
    }

    /// Another attempt is scheduled: the delay is above zero.
    pub fn schedules_another_attempt(&self) -> bool {
        self.next_attempt_delay_seconds.is_some_and(|d| d > 0)
    }
}

/// Declares [`EventDetails`] from one table: each event type with its details. The EventType
/// names ([`EventDetails::event_type`]), the empty details of each type
/// ([`EventDetails::empty`]) and [`KNOWN_EVENT_TYPES`] all come from it, so a new event type is
/// one line here (plus its payloads in `parts_of!` and, if it ends the
/// execution, [`EventDetails::terminal_status`]), its reading in `json.rs` and `sdk.rs`, and its
/// meaning in the state fold.
macro_rules! event_types {
    ($( $(#[$doc:meta])* $name:ident $({ $($field:ident : $ty:ty),* $(,)? })? ),* $(,)?) => {
        /// The event types of the 2025-12-01 API with their details, and unknown ones.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventDetails {
            $( $(#[$doc])* $name $({ $($field: $ty),* })?, )*
            /// An EventType this version does not know (ExecutionPaused, ExecutionResumed, ...).
            Unknown { event_type: String },
        }

        /// Every EventType of the 2025-12-01 API, as aws-sdk-lambda 1.156 and botocore list them
        /// (the model's prose speaks of 25; its enumeration holds these 24).
        pub const KNOWN_EVENT_TYPES: &[&str] = &[$(stringify!($name)),*];

        impl EventDetails {
            /// The EventType as the API spells it.
            pub fn event_type(&self) -> &str {
                match self {
                    $( EventDetails::$name { .. } => stringify!($name), )*
                    EventDetails::Unknown { event_type } => event_type,
                }
            }

            /// The details for an EventType with none of its details present (`Unknown` for
            /// types this version does not know).
            pub fn empty(event_type: &str) -> EventDetails {
                match event_type {
                    $( stringify!($name) => EventDetails::$name $({ $($field: Default::default()),* })?, )*
                    other => EventDetails::Unknown {
                        event_type: other.to_owned(),
                    },
                }
            }
        }
    };
}

event_types! {
    ExecutionStarted {
        input: Option<Payload>,
        execution_timeout_seconds: Option<u64>,
    },
    ExecutionSucceeded { result: Option<Payload> },
    ExecutionFailed { error: Option<ErrorInfo> },
    ExecutionTimedOut { error: Option<ErrorInfo> },
    ExecutionStopped { error: Option<ErrorInfo> },
    ContextStarted,
    ContextSucceeded { result: Option<Payload> },
    ContextFailed { error: Option<ErrorInfo> },
    WaitStarted {
        duration_seconds: Option<u64>,
        scheduled_end: Option<Timestamp>,
    },
    WaitSucceeded { duration_seconds: Option<u64> },
    WaitCancelled { error: Option<ErrorInfo> },
    StepStarted,
    StepSucceeded {
        result: Option<Payload>,
        retry: Option<RetryDetails>,
    },
    StepFailed {
        error: Option<ErrorInfo>,
        retry: Option<RetryDetails>,
    },
    ChainedInvokeStarted {
        function_name: Option<String>,
        tenant_id: Option<String>,
        input: Option<Payload>,
        executed_version: Option<String>,
        durable_execution_arn: Option<String>,
    },
    ChainedInvokeSucceeded { result: Option<Payload> },
    ChainedInvokeFailed { error: Option<ErrorInfo> },
    ChainedInvokeTimedOut { error: Option<ErrorInfo> },
    ChainedInvokeStopped { error: Option<ErrorInfo> },
    CallbackStarted {
        callback_id: Option<String>,
        timeout_seconds: Option<u64>,
        heartbeat_timeout_seconds: Option<u64>,
    },
    CallbackSucceeded { result: Option<Payload> },
    CallbackFailed { error: Option<ErrorInfo> },
    CallbackTimedOut { error: Option<ErrorInfo> },
    InvocationCompleted {
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        request_id: Option<String>,
        error: Option<ErrorInfo>,
    },
}

/// How an execution ended, as its terminal event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    Succeeded,
    Failed,
    TimedOut,
    Stopped,
}

impl Terminal {
    /// The execution status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Terminal::Succeeded => "SUCCEEDED",
            Terminal::Failed => "FAILED",
            Terminal::TimedOut => "TIMED_OUT",
            Terminal::Stopped => "STOPPED",
        }
    }
}

/// The payloads and the error an event carries (see [`EventDetails::parts`]).
#[derive(Debug, Default)]
pub struct Parts<'a> {
    pub input: Option<&'a Option<Payload>>,
    pub result: Option<&'a Option<Payload>>,
    pub error: Option<&'a Option<ErrorInfo>>,
}

/// The same, to change them (the simulator strips payloads).
#[derive(Debug, Default)]
pub struct PartsMut<'a> {
    pub input: Option<&'a mut Option<Payload>>,
    pub result: Option<&'a mut Option<Payload>>,
    pub error: Option<&'a mut Option<ErrorInfo>>,
}

/// Which details field is an event's input, result or error: the one list of them, for both
/// [`EventDetails::parts`] and [`EventDetails::parts_mut`] (match ergonomics bind shared or
/// mutable references as `$details` is one or the other).
macro_rules! parts_of {
    ($details:expr, $parts:ident) => {{
        use EventDetails::*;
        match $details {
            ExecutionStarted { input, .. } | ChainedInvokeStarted { input, .. } => $parts {
                input: Some(input),
                ..$parts::default()
            },
            ExecutionSucceeded { result }
            | ContextSucceeded { result }
            | StepSucceeded { result, .. }
            | ChainedInvokeSucceeded { result }
            | CallbackSucceeded { result } => $parts {
                result: Some(result),
                ..$parts::default()
            },
            ExecutionFailed { error }
            | ExecutionTimedOut { error }
            | ExecutionStopped { error }
            | ContextFailed { error }
            | WaitCancelled { error }
            | StepFailed { error, .. }
            | ChainedInvokeFailed { error }
            | ChainedInvokeTimedOut { error }
            | ChainedInvokeStopped { error }
            | CallbackFailed { error }
            | CallbackTimedOut { error }
            | InvocationCompleted { error, .. } => $parts {
                error: Some(error),
                ..$parts::default()
            },
            ContextStarted
            | WaitStarted { .. }
            | WaitSucceeded { .. }
            | StepStarted
            | CallbackStarted { .. }
            | Unknown { .. } => $parts::default(),
        }
    }};
}

impl EventDetails {
    pub fn is_unknown(&self) -> bool {
        matches!(self, EventDetails::Unknown { .. })
    }

    /// The status the execution ends with, when this event ends it.
    pub fn terminal_status(&self) -> Option<Terminal> {
        match self {
            EventDetails::ExecutionSucceeded { .. } => Some(Terminal::Succeeded),
            EventDetails::ExecutionFailed { .. } => Some(Terminal::Failed),
            EventDetails::ExecutionTimedOut { .. } => Some(Terminal::TimedOut),
            EventDetails::ExecutionStopped { .. } => Some(Terminal::Stopped),
            _ => None,
        }
    }

    /// Where the event keeps its input, its result and its error.
    pub fn parts(&self) -> Parts<'_> {
        parts_of!(self, Parts)
    }

    /// The same, to change them.
    pub fn parts_mut(&mut self) -> PartsMut<'_> {
        parts_of!(self, PartsMut)
    }

    /// The error the event carries, if any.
    pub fn error(&self) -> Option<&ErrorInfo> {
        self.parts().error.and_then(Option::as_ref)
    }

    /// The result payload the event carries, if any.
    pub fn result(&self) -> Option<&Payload> {
        self.parts().result.and_then(Option::as_ref)
    }

    /// The input payload the event carries, if any.
    pub fn input(&self) -> Option<&Payload> {
        self.parts().input.and_then(Option::as_ref)
    }
}

/// Something a history should not contain, found while reading it ([`normalize`]) or folding it
/// (`state::Execution`): drawn as well as possible and reported, never a failure. The one anomaly
/// type of the core; the shell logs each one (with [`AnomalyKind::as_str`] as its kind) and
/// counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub event_id: u64,
    pub kind: AnomalyKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnomalyKind {
    /// An EventType this version does not know (counted, never a failure).
    UnknownEventType,
    /// An event whose EventId was already applied (overlapping pages).
    DuplicateEvent,
    /// Two copies of one EventId with different contents: the first copy read is kept.
    ConflictingDuplicateEvent,
    /// EventIds jumped: events are missing.
    EventGap,
    /// An operation event without an Id.
    MissingOperationId,
    /// An operation finished, or progressed, without a start.
    NoStart,
    /// A second start event for an operation already open.
    RepeatedStart,
    /// An event that does not fit the operation's type.
    TypeMismatch,
    /// An event for an operation that had already finished.
    AfterFinish,
    /// ParentId names an operation never seen.
    UnknownParent,
    /// An event after the execution's terminal event.
    AfterTerminal,
    /// No ExecutionStarted before other events.
    NoExecutionStarted,
    /// A time before 1970 or after 2262, which a span cannot carry: kept as read, clamped in
    /// spans.
    TimestampOutOfRange,
    /// The execution succeeded or failed right after an invocation that was drawn as having
    /// suspended it (settled after a quiet read, `state::Execution::settle_invocation`): its
    /// Invocation span says PENDING or RETRYING where the history says it ended the execution.
    SettledInvocationEnded,
}

impl AnomalyKind {
    /// Every kind, in the order docs/TRACE_MODEL.md lists them.
    pub const ALL: [AnomalyKind; 14] = [
        AnomalyKind::UnknownEventType,
        AnomalyKind::DuplicateEvent,
        AnomalyKind::ConflictingDuplicateEvent,
        AnomalyKind::EventGap,
        AnomalyKind::MissingOperationId,
        AnomalyKind::NoStart,
        AnomalyKind::RepeatedStart,
        AnomalyKind::TypeMismatch,
        AnomalyKind::AfterFinish,
        AnomalyKind::UnknownParent,
        AnomalyKind::AfterTerminal,
        AnomalyKind::NoExecutionStarted,
        AnomalyKind::TimestampOutOfRange,
        AnomalyKind::SettledInvocationEnded,
    ];

    /// The kind as logs show it (`kind=...`).
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::UnknownEventType => "unknown_event_type",
            AnomalyKind::DuplicateEvent => "duplicate_event",
            AnomalyKind::ConflictingDuplicateEvent => "conflicting_duplicate_event",
            AnomalyKind::EventGap => "event_gap",
            AnomalyKind::MissingOperationId => "missing_operation_id",
            AnomalyKind::NoStart => "no_start",
            AnomalyKind::RepeatedStart => "repeated_start",
            AnomalyKind::TypeMismatch => "type_mismatch",
            AnomalyKind::AfterFinish => "after_finish",
            AnomalyKind::UnknownParent => "unknown_parent",
            AnomalyKind::AfterTerminal => "after_terminal",
            AnomalyKind::NoExecutionStarted => "no_execution_started",
            AnomalyKind::TimestampOutOfRange => "timestamp_out_of_range",
            AnomalyKind::SettledInvocationEnded => "settled_invocation_ended",
        }
    }
}

/// Absent-value forms the two readers must agree on: aws-sdk-lambda fills required members the
/// wire omitted with zeros and empty strings, so those mean "absent" in both readers.
pub(crate) fn nonzero(v: Option<u64>) -> Option<u64> {
    v.filter(|&v| v > 0)
}

pub(crate) fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.is_empty())
}

/// A details time: 0 is aws-sdk-lambda's placeholder for an absent one. Any other value is
/// kept, before the epoch too: the fold reports times a span cannot carry.
pub(crate) fn present_time(v: Option<Timestamp>) -> Option<Timestamp> {
    v.filter(|t| t.millis() != 0)
}

/// What [`normalize`] found among repeated EventIds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized {
    /// Identical copies dropped (overlapping pages: harmless).
    pub repeats: usize,
    /// One anomaly for each dropped copy whose contents differ from the copy kept.
    pub conflicts: Vec<Anomaly>,
}

/// Orders events by EventId and collapses repeated EventIds (overlapping pages). The first copy
/// in input order wins (the sort is stable); a dropped copy that differs from it in any way
/// (EventType, timestamp, operation, details) is reported, never silently lost.
pub fn normalize(events: &mut Vec<Event>) -> Normalized {
    let before = events.len();
    events.sort_by_key(|e| e.id);
    let mut conflicts = Vec::new();
    events.dedup_by(|copy, kept| {
        if copy.id != kept.id {
            return false;
        }
        conflicts.extend(conflicting_duplicate(kept, copy));
        true
    });
    Normalized {
        repeats: before - events.len() - conflicts.len(),
        conflicts,
    }
}

/// `None` when `copy` repeats `kept` exactly; otherwise the anomaly saying what differs, with
/// `kept` being the copy that stays.
pub fn conflicting_duplicate(kept: &Event, copy: &Event) -> Option<Anomaly> {
    if kept == copy {
        return None;
    }
    let mut differences = Vec::new();
    let (kt, ct) = (kept.details.event_type(), copy.details.event_type());
    if kt != ct {
        differences.push(format!("EventType {kt} / {ct}"));
    }
    if kept.timestamp != copy.timestamp {
        differences.push(format!(
            "EventTimestamp {} / {}",
            kept.timestamp, copy.timestamp
        ));
    }
    if kept.operation != copy.operation {
        let id = |e: &Event| e.operation.as_ref().map_or("none", |o| &*o.id).to_owned();
        if id(kept) == id(copy) {
            differences.push("operation fields".to_owned());
        } else {
            differences.push(format!("operation {} / {}", id(kept), id(copy)));
        }
    }
    if kt == ct && kept.details != copy.details {
        differences.push(format!("{kt} details"));
    }
    Some(Anomaly {
        event_id: kept.id,
        kind: AnomalyKind::ConflictingDuplicateEvent,
        message: format!(
            "EventId {} read twice with different contents ({}): the first copy read is kept, the other dropped",
            kept.id,
            differences.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips_through_empty() {
        for t in KNOWN_EVENT_TYPES {
            let d = EventDetails::empty(t);
            assert!(!d.is_unknown(), "{t}");
            assert_eq!(d.event_type(), *t);
        }
        assert_eq!(KNOWN_EVENT_TYPES.len(), 24);
        let u = EventDetails::empty("ExecutionPaused");
        assert!(u.is_unknown());
        assert_eq!(u.event_type(), "ExecutionPaused");
    }

    #[test]
    fn normalize_sorts_and_collapses() {
        let ev = |id| Event {
            id,
            timestamp: Timestamp(id as i64),
            operation: None,
            details: EventDetails::StepStarted,
        };
        let mut v = vec![ev(3), ev(1), ev(2), ev(3), ev(1)];
        assert_eq!(
            normalize(&mut v),
            Normalized {
                repeats: 2,
                conflicts: Vec::new()
            }
        );
        assert_eq!(v.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn a_repeated_event_id_with_other_contents_is_reported_and_the_first_copy_kept() {
        let ev = |id, ms, details| Event {
            id,
            timestamp: Timestamp(ms),
            operation: Some(OperationRef {
                id: "op".into(),
                ..OperationRef::default()
            }),
            details,
        };
        let first = ev(2, 2000, EventDetails::StepStarted);
        let other_type = ev(2, 2000, EventDetails::empty("StepSucceeded"));
        let other_time = ev(2, 2500, EventDetails::StepStarted);
        let mut v = vec![
            ev(3, 3000, EventDetails::StepStarted),
            first.clone(),
            other_type,
            first.clone(),
            other_time,
            ev(1, 1000, EventDetails::empty("ExecutionStarted")),
        ];
        let n = normalize(&mut v);
        assert_eq!(v.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(v[1], first, "the first copy in input order wins");
        assert_eq!(n.repeats, 1, "the identical copy is a plain repeat");
        assert_eq!(n.conflicts.len(), 2, "{:?}", n.conflicts);
        assert!(
            n.conflicts
                .iter()
                .all(|a| a.event_id == 2 && a.kind == AnomalyKind::ConflictingDuplicateEvent)
        );
        assert!(
            n.conflicts[0]
                .message
                .contains("EventType StepStarted / StepSucceeded"),
            "{}",
            n.conflicts[0].message
        );
        assert!(
            n.conflicts[1].message.contains("EventTimestamp 2 / 2.5"),
            "{}",
            n.conflicts[1].message
        );
    }

    #[test]
    fn anomaly_kinds_are_listed_in_the_trace_model() {
        let doc = include_str!("../../docs/TRACE_MODEL.md");
        for k in AnomalyKind::ALL {
            assert!(
                doc.contains(&format!("`{}`", k.as_str())),
                "docs/TRACE_MODEL.md does not list {}",
                k.as_str()
            );
        }
    }
}
