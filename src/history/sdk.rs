//! aws-sdk-lambda's `Event` into our [`Event`]: the daemon reads histories through the SDK.
//!
//! The SDK parses `EventTimestamp` through an `f64` into seconds and truncated nanoseconds;
//! [`Timestamp::from_secs_nanos`] rounds that to the millisecond exactly as the raw-JSON path does.
//! Times the SDK accepts beyond what the raw-JSON reader does ([`crate::time::MAX_EPOCH_SECONDS`])
//! are clamped to that bound; the fold reports every time a span cannot carry.

use aws_sdk_lambda::primitives::DateTime;
use aws_sdk_lambda::types as sdk;

use super::{
    ErrorInfo, Event, EventDetails, OperationRef, Payload, RetryDetails, nonempty, nonzero,
    present_time,
};
use crate::time::Timestamp;

/// Why an SDK event could not become one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdkEventError {
    #[error("event {0} has no EventType")]
    NoEventType(i32),
    #[error("event {0} has no EventTimestamp")]
    NoTimestamp(i32),
    #[error("an event has EventId {0}; EventIds start at 1")]
    BadEventId(i32),
}

fn ts(d: &DateTime) -> Timestamp {
    Timestamp::from_secs_nanos(d.secs(), d.subsec_nanos())
}

fn secs(v: i32) -> Option<u64> {
    u64::try_from(v).ok()
}

fn payload(p: Option<&str>, truncated: Option<bool>) -> Payload {
    Payload {
        payload: p.map(str::to_owned),
        truncated: truncated.unwrap_or(false),
    }
}

fn input(i: Option<&sdk::EventInput>) -> Option<Payload> {
    i.map(|i| payload(i.payload(), i.truncated()))
}

fn result(r: Option<&sdk::EventResult>) -> Option<Payload> {
    r.map(|r| payload(r.payload(), r.truncated()))
}

fn error(e: Option<&sdk::EventError>) -> Option<ErrorInfo> {
    e.map(|e| {
        let p = e.payload();
        ErrorInfo {
            error_type: p.and_then(|p| p.error_type()).map(str::to_owned),
            error_message: p.and_then(|p| p.error_message()).map(str::to_owned),
            error_data: p.and_then(|p| p.error_data()).map(str::to_owned),
            stack_trace: p.map(|p| p.stack_trace().to_vec()).unwrap_or_default(),
            truncated: e.truncated().unwrap_or(false),
        }
    })
}

fn retry(r: Option<&sdk::RetryDetails>) -> Option<RetryDetails> {
    r.and_then(|r| {
        RetryDetails {
            current_attempt: u32::try_from(r.current_attempt()).ok(),
            next_attempt_delay_seconds: r.next_attempt_delay_seconds().and_then(secs),
        }
        .meaningful()
    })
}

impl TryFrom<&sdk::Event> for Event {
    type Error = SdkEventError;

    fn try_from(e: &sdk::Event) -> Result<Self, Self::Error> {
        let raw_id = e.event_id();
        let id = u64::try_from(raw_id)
            .ok()
            .filter(|&i| i > 0)
            .ok_or(SdkEventError::BadEventId(raw_id))?;
        let event_type = e.event_type().ok_or(SdkEventError::NoEventType(raw_id))?;
        let timestamp = e
            .event_timestamp()
            .map(ts)
            .ok_or(SdkEventError::NoTimestamp(raw_id))?;
        use EventDetails as D;
        use sdk::EventType as T;
        let details = match event_type {
            T::ExecutionStarted => {
                let d = e.execution_started_details();
                D::ExecutionStarted {
                    input: input(d.and_then(|d| d.input())),
                    execution_timeout_seconds: nonzero(d.and_then(|d| secs(d.execution_timeout()))),
                }
            }
            T::ExecutionSucceeded => D::ExecutionSucceeded {
                result: result(e.execution_succeeded_details().and_then(|d| d.result())),
            },
            T::ExecutionFailed => D::ExecutionFailed {
                error: error(e.execution_failed_details().and_then(|d| d.error())),
            },
            T::ExecutionTimedOut => D::ExecutionTimedOut {
                error: error(e.execution_timed_out_details().and_then(|d| d.error())),
            },
            T::ExecutionStopped => D::ExecutionStopped {
                error: error(e.execution_stopped_details().and_then(|d| d.error())),
            },
            T::ContextStarted => D::ContextStarted,
            T::ContextSucceeded => D::ContextSucceeded {
                result: result(e.context_succeeded_details().and_then(|d| d.result())),
            },
            T::ContextFailed => D::ContextFailed {
                error: error(e.context_failed_details().and_then(|d| d.error())),
            },
            T::WaitStarted => {
                let d = e.wait_started_details();
                D::WaitStarted {
                    duration_seconds: nonzero(d.and_then(|d| secs(d.duration()))),
                    scheduled_end: present_time(d.map(|d| ts(d.scheduled_end_timestamp()))),
                }
            }
            T::WaitSucceeded => D::WaitSucceeded {
                duration_seconds: nonzero(
                    e.wait_succeeded_details()
                        .and_then(|d| d.duration())
                        .and_then(secs),
                ),
            },
            T::WaitCancelled => D::WaitCancelled {
                error: error(e.wait_cancelled_details().and_then(|d| d.error())),
            },
            T::StepStarted => D::StepStarted,
            T::StepSucceeded => {
                let d = e.step_succeeded_details();
                D::StepSucceeded {
                    result: result(d.and_then(|d| d.result())),
                    retry: retry(d.and_then(|d| d.retry_details())),
                }
            }
            T::StepFailed => {
                let d = e.step_failed_details();
                D::StepFailed {
                    error: error(d.and_then(|d| d.error())),
                    retry: retry(d.and_then(|d| d.retry_details())),
                }
            }
            T::ChainedInvokeStarted => {
                let d = e.chained_invoke_started_details();
                D::ChainedInvokeStarted {
                    function_name: nonempty(d.map(|d| d.function_name().to_owned())),
                    tenant_id: d.and_then(|d| d.tenant_id()).map(str::to_owned),
                    input: input(d.and_then(|d| d.input())),
                    executed_version: d.and_then(|d| d.executed_version()).map(str::to_owned),
                    durable_execution_arn: d
                        .and_then(|d| d.durable_execution_arn())
                        .map(str::to_owned),
                }
            }
            T::ChainedInvokeSucceeded => D::ChainedInvokeSucceeded {
                result: result(
                    e.chained_invoke_succeeded_details()
                        .and_then(|d| d.result()),
                ),
            },
            T::ChainedInvokeFailed => D::ChainedInvokeFailed {
                error: error(e.chained_invoke_failed_details().and_then(|d| d.error())),
            },
            T::ChainedInvokeTimedOut => D::ChainedInvokeTimedOut {
                error: error(e.chained_invoke_timed_out_details().and_then(|d| d.error())),
            },
            T::ChainedInvokeStopped => D::ChainedInvokeStopped {
                error: error(e.chained_invoke_stopped_details().and_then(|d| d.error())),
            },
            T::CallbackStarted => {
                let d = e.callback_started_details();
                D::CallbackStarted {
                    callback_id: nonempty(d.map(|d| d.callback_id().to_owned())),
                    timeout_seconds: d.and_then(|d| d.timeout()).and_then(secs),
                    heartbeat_timeout_seconds: d.and_then(|d| d.heartbeat_timeout()).and_then(secs),
                }
            }
            T::CallbackSucceeded => D::CallbackSucceeded {
                result: result(e.callback_succeeded_details().and_then(|d| d.result())),
            },
            T::CallbackFailed => D::CallbackFailed {
                error: error(e.callback_failed_details().and_then(|d| d.error())),
            },
            T::CallbackTimedOut => D::CallbackTimedOut {
                error: error(e.callback_timed_out_details().and_then(|d| d.error())),
            },
            T::InvocationCompleted => {
                let d = e.invocation_completed_details();
                D::InvocationCompleted {
                    start: present_time(d.map(|d| ts(d.start_timestamp()))),
                    end: present_time(d.map(|d| ts(d.end_timestamp()))),
                    request_id: nonempty(d.map(|d| d.request_id().to_owned())),
                    error: error(d.and_then(|d| d.error())),
                }
            }
            // The SDK's Unknown variant and any variant added after this was written.
            other => D::Unknown {
                event_type: other.as_str().to_owned(),
            },
        };
        let operation = e.id().map(|id| OperationRef {
            id: id.into(),
            name: e.name().map(Into::into),
            parent_id: e.parent_id().map(Into::into),
            sub_type: e.sub_type().map(Into::into),
        });
        Ok(Event {
            id,
            timestamp,
            operation,
            details,
        })
    }
}
