//! The state shaped like a `GetDurableExecutionState` response: `{"Operations": [...]}` with the
//! API's PascalCase keys and epoch-second timestamps. Beyond the API's own fields, callbacks
//! carry their time-outs and chained invokes their target and child execution ARN.
//! Payloads (inputs, results, ErrorData) appear only when asked for.

use serde::Serialize;

use super::{Details, Operation};
use crate::history::{ErrorInfo, Payload};
use crate::time::Timestamp;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateResponse<'a> {
    pub operations: Vec<OperationJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationJson<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(rename = "Type")]
    op_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_type: Option<&'a str>,
    start_timestamp: Seconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_timestamp: Option<Seconds>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_details: Option<ExecutionDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_details: Option<ResultDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step_details: Option<StepDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_details: Option<WaitDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_details: Option<CallbackDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chained_invoke_details: Option<ChainedInvokeDetails<'a>>,
}

/// Epoch seconds as a JSON number with millisecond precision.
#[derive(Clone, Copy)]
struct Seconds(Timestamp);

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.millis() as f64 / 1000.0)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_data: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stack_trace: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExecutionDetails<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_timeout: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResultDetails<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StepDetails<'a> {
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_timestamp: Option<Seconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct WaitDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_end_timestamp: Option<Seconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CallbackDetails<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ChainedInvokeDetails<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    function_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executed_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    durable_execution_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson<'a>>,
}

impl<'a> OperationJson<'a> {
    pub fn new(op: &'a Operation, include_payloads: bool) -> Self {
        let payload = |p: &'a Option<Payload>| -> Option<&'a str> {
            if include_payloads {
                p.as_ref().and_then(|p| p.payload.as_deref())
            } else {
                None
            }
        };
        let error = |e: &'a Option<ErrorInfo>| {
            e.as_ref().map(|e| ErrorJson {
                error_type: e.error_type.as_deref(),
                error_message: e.error_message.as_deref(),
                error_data: if include_payloads {
                    e.error_data.as_deref()
                } else {
                    None
                },
                stack_trace: &e.stack_trace,
            })
        };
        let mut j = OperationJson {
            id: &op.id,
            parent_id: op.parent_id.as_deref(),
            name: op.name.as_deref(),
            op_type: op.op_type().as_str(),
            sub_type: op.sub_type.as_deref(),
            start_timestamp: Seconds(op.start),
            // An operation the execution's end closed has no end of its own.
            end_timestamp: op.end.filter(|_| !op.unfinished).map(Seconds),
            status: op.status.as_str(),
            execution_details: None,
            context_details: None,
            step_details: None,
            wait_details: None,
            callback_details: None,
            chained_invoke_details: None,
        };
        match &op.details {
            Details::Execution {
                input,
                timeout_seconds,
            } => {
                j.execution_details = Some(ExecutionDetails {
                    input_payload: payload(input),
                    execution_timeout: *timeout_seconds,
                })
            }
            Details::Context => {
                j.context_details = Some(ResultDetails {
                    result: payload(&op.result),
                    error: error(&op.error),
                })
            }
            Details::Step(s) => {
                j.step_details = Some(StepDetails {
                    attempt: s.attempts,
                    next_attempt_timestamp: s.next_attempt.map(Seconds),
                    result: payload(&op.result),
                    error: error(&op.error),
                })
            }
            Details::Wait {
                duration_seconds,
                scheduled_end,
            } => {
                j.wait_details = Some(WaitDetails {
                    scheduled_end_timestamp: scheduled_end.map(Seconds),
                    duration: *duration_seconds,
                })
            }
            Details::Callback {
                callback_id,
                timeout_seconds,
                heartbeat_timeout_seconds,
            } => {
                j.callback_details = Some(CallbackDetails {
                    callback_id: callback_id.as_deref(),
                    timeout: *timeout_seconds,
                    heartbeat_timeout: *heartbeat_timeout_seconds,
                    result: payload(&op.result),
                    error: error(&op.error),
                })
            }
            Details::ChainedInvoke {
                function_name,
                tenant_id,
                input,
                executed_version,
                durable_execution_arn,
            } => {
                j.chained_invoke_details = Some(ChainedInvokeDetails {
                    function_name: function_name.as_deref(),
                    executed_version: executed_version.as_deref(),
                    tenant_id: tenant_id.as_deref(),
                    durable_execution_arn: durable_execution_arn.as_deref(),
                    input: payload(input),
                    result: payload(&op.result),
                    error: error(&op.error),
                })
            }
        }
        j
    }
}

/// `{"Operations": [...]}` for the given operations (already in the order wanted).
pub fn state_response<'a>(
    operations: &[&'a Operation],
    include_payloads: bool,
    next_marker: Option<String>,
) -> StateResponse<'a> {
    StateResponse {
        operations: operations
            .iter()
            .map(|op| OperationJson::new(op, include_payloads))
            .collect(),
        next_marker,
    }
}
