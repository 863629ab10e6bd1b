//! A durable execution's history: the events of `GetDurableExecutionHistory` as our own types.
//!
//! Both sources end here: raw JSON (`json`, for saved histories and the AWS CLI's output) and
//! aws-sdk-lambda's `Event` (`sdk`, for the daemon). Unknown event types are kept as
//! [`EventDetails::Unknown`] so that a newer API never breaks a reader.

pub mod json;
pub mod sdk;

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

/// The operation fields every operation event carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperationRef {
    pub id: String,
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub sub_type: Option<String>,
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

/// The event types of the 2025-12-01 API with their details, and unknown ones.
#[derive(Debug, Clone, PartialEq)]
pub enum EventDetails {
    ExecutionStarted {
        input: Option<Payload>,
        execution_timeout_seconds: Option<u64>,
    },
    ExecutionSucceeded {
        result: Option<Payload>,
    },
    ExecutionFailed {
        error: Option<ErrorInfo>,
    },
    ExecutionTimedOut {
        error: Option<ErrorInfo>,
    },
    ExecutionStopped {
        error: Option<ErrorInfo>,
    },
    ContextStarted,
    ContextSucceeded {
        result: Option<Payload>,
    },
    ContextFailed {
        error: Option<ErrorInfo>,
    },
    WaitStarted {
        duration_seconds: Option<u64>,
        scheduled_end: Option<Timestamp>,
    },
    WaitSucceeded {
        duration_seconds: Option<u64>,
    },
    WaitCancelled {
        error: Option<ErrorInfo>,
    },
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
    ChainedInvokeSucceeded {
        result: Option<Payload>,
    },
    ChainedInvokeFailed {
        error: Option<ErrorInfo>,
    },
    ChainedInvokeTimedOut {
        error: Option<ErrorInfo>,
    },
    ChainedInvokeStopped {
        error: Option<ErrorInfo>,
    },
    CallbackStarted {
        callback_id: Option<String>,
        timeout_seconds: Option<u64>,
        heartbeat_timeout_seconds: Option<u64>,
    },
    CallbackSucceeded {
        result: Option<Payload>,
    },
    CallbackFailed {
        error: Option<ErrorInfo>,
    },
    CallbackTimedOut {
        error: Option<ErrorInfo>,
    },
    InvocationCompleted {
        start: Option<Timestamp>,
        end: Option<Timestamp>,
        request_id: Option<String>,
        error: Option<ErrorInfo>,
    },
    /// An EventType this version does not know (ExecutionPaused, ExecutionResumed, ...).
    Unknown {
        event_type: String,
    },
}

impl EventDetails {
    /// The EventType as the API spells it.
    pub fn event_type(&self) -> &str {
        use EventDetails::*;
        match self {
            ExecutionStarted { .. } => "ExecutionStarted",
            ExecutionSucceeded { .. } => "ExecutionSucceeded",
            ExecutionFailed { .. } => "ExecutionFailed",
            ExecutionTimedOut { .. } => "ExecutionTimedOut",
            ExecutionStopped { .. } => "ExecutionStopped",
            ContextStarted => "ContextStarted",
            ContextSucceeded { .. } => "ContextSucceeded",
            ContextFailed { .. } => "ContextFailed",
            WaitStarted { .. } => "WaitStarted",
            WaitSucceeded { .. } => "WaitSucceeded",
            WaitCancelled { .. } => "WaitCancelled",
            StepStarted => "StepStarted",
            StepSucceeded { .. } => "StepSucceeded",
            StepFailed { .. } => "StepFailed",
            ChainedInvokeStarted { .. } => "ChainedInvokeStarted",
            ChainedInvokeSucceeded { .. } => "ChainedInvokeSucceeded",
            ChainedInvokeFailed { .. } => "ChainedInvokeFailed",
            ChainedInvokeTimedOut { .. } => "ChainedInvokeTimedOut",
            ChainedInvokeStopped { .. } => "ChainedInvokeStopped",
            CallbackStarted { .. } => "CallbackStarted",
            CallbackSucceeded { .. } => "CallbackSucceeded",
            CallbackFailed { .. } => "CallbackFailed",
            CallbackTimedOut { .. } => "CallbackTimedOut",
            InvocationCompleted { .. } => "InvocationCompleted",
            Unknown { event_type } => event_type,
        }
    }

    /// The details for an EventType with none of its details present (`None` for unknown types).
    pub fn empty(event_type: &str) -> EventDetails {
        use EventDetails::*;
        match event_type {
            "ExecutionStarted" => ExecutionStarted {
                input: None,
                execution_timeout_seconds: None,
            },
            "ExecutionSucceeded" => ExecutionSucceeded { result: None },
            "ExecutionFailed" => ExecutionFailed { error: None },
            "ExecutionTimedOut" => ExecutionTimedOut { error: None },
            "ExecutionStopped" => ExecutionStopped { error: None },
            "ContextStarted" => ContextStarted,
            "ContextSucceeded" => ContextSucceeded { result: None },
            "ContextFailed" => ContextFailed { error: None },
            "WaitStarted" => WaitStarted {
                duration_seconds: None,
                scheduled_end: None,
            },
            "WaitSucceeded" => WaitSucceeded {
                duration_seconds: None,
            },
            "WaitCancelled" => WaitCancelled { error: None },
            "StepStarted" => StepStarted,
            "StepSucceeded" => StepSucceeded {
                result: None,
                retry: None,
            },
            "StepFailed" => StepFailed {
                error: None,
                retry: None,
            },
            "ChainedInvokeStarted" => ChainedInvokeStarted {
                function_name: None,
                tenant_id: None,
                input: None,
                executed_version: None,
                durable_execution_arn: None,
            },
            "ChainedInvokeSucceeded" => ChainedInvokeSucceeded { result: None },
            "ChainedInvokeFailed" => ChainedInvokeFailed { error: None },
            "ChainedInvokeTimedOut" => ChainedInvokeTimedOut { error: None },
            "ChainedInvokeStopped" => ChainedInvokeStopped { error: None },
            "CallbackStarted" => CallbackStarted {
                callback_id: None,
                timeout_seconds: None,
                heartbeat_timeout_seconds: None,
            },
            "CallbackSucceeded" => CallbackSucceeded { result: None },
            "CallbackFailed" => CallbackFailed { error: None },
            "CallbackTimedOut" => CallbackTimedOut { error: None },
            "InvocationCompleted" => InvocationCompleted {
                start: None,
                end: None,
                request_id: None,
                error: None,
            },
            other => Unknown {
                event_type: other.to_owned(),
            },
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, EventDetails::Unknown { .. })
    }

    /// The error the event carries, if any.
    pub fn error(&self) -> Option<&ErrorInfo> {
        use EventDetails::*;
        match self {
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
            | InvocationCompleted { error, .. } => error.as_ref(),
            _ => None,
        }
    }

    /// The result payload the event carries, if any.
    pub fn result(&self) -> Option<&Payload> {
        use EventDetails::*;
        match self {
            ExecutionSucceeded { result }
            | ContextSucceeded { result }
            | StepSucceeded { result, .. }
            | ChainedInvokeSucceeded { result }
            | CallbackSucceeded { result } => result.as_ref(),
            _ => None,
        }
    }
}

/// Every EventType of the 2025-12-01 API, as aws-sdk-lambda 1.156 and botocore list them (the
/// model's prose speaks of 25; its enumeration holds these 24).
pub const KNOWN_EVENT_TYPES: [&str; 24] = [
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionTimedOut",
    "ExecutionStopped",
    "ContextStarted",
    "ContextSucceeded",
    "ContextFailed",
    "WaitStarted",
    "WaitSucceeded",
    "WaitCancelled",
    "StepStarted",
    "StepSucceeded",
    "StepFailed",
    "ChainedInvokeStarted",
    "ChainedInvokeSucceeded",
    "ChainedInvokeFailed",
    "ChainedInvokeTimedOut",
    "ChainedInvokeStopped",
    "CallbackStarted",
    "CallbackSucceeded",
    "CallbackFailed",
    "CallbackTimedOut",
    "InvocationCompleted",
];

/// Absent-value forms the two readers must agree on: aws-sdk-lambda fills required members the
/// wire omitted with zeros and empty strings, so those mean "absent" in both readers.
pub(crate) fn nonzero(v: Option<u64>) -> Option<u64> {
    v.filter(|&v| v > 0)
}

pub(crate) fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|v| !v.is_empty())
}

pub(crate) fn after_epoch(v: Option<Timestamp>) -> Option<Timestamp> {
    v.filter(|t| t.millis() > 0)
}

/// Orders events by EventId and collapses repeated EventIds (overlapping pages), keeping the
/// first copy. Returns how many duplicates were dropped.
pub fn normalize(events: &mut Vec<Event>) -> usize {
    let before = events.len();
    events.sort_by_key(|e| e.id);
    events.dedup_by_key(|e| e.id);
    before - events.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips_through_empty() {
        for t in KNOWN_EVENT_TYPES {
            let d = EventDetails::empty(t);
            assert!(!d.is_unknown(), "{t}");
            assert_eq!(d.event_type(), t);
        }
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
        assert_eq!(normalize(&mut v), 2);
        assert_eq!(v.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
    }
}
