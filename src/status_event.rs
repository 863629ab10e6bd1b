//! Lambda's `Durable Execution Status Change` events as EventBridge delivers them (each SQS
//! message body is the whole envelope; ../shared/reference/wire-format.md). Pure: text in, a
//! checked event or the reason it is not one out.

use serde::Deserialize;

use crate::arn::ExecutionArn;

pub const SOURCE: &str = "aws.lambda";
pub const DETAIL_TYPE: &str = "Durable Execution Status Change";

/// An execution's status as the event gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Stopped,
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "RUNNING" => Status::Running,
            "SUCCEEDED" => Status::Succeeded,
            "FAILED" => Status::Failed,
            "TIMED_OUT" => Status::TimedOut,
            "STOPPED" => Status::Stopped,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        self != Status::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Stopped => "STOPPED",
        }
    }
}

/// One status change of one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    pub arn: ExecutionArn,
    pub status: Status,
    /// The envelope's `id` (EventBridge's, for logs).
    pub id: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: String,
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: Detail,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    durable_execution_arn: String,
    status: String,
}

/// The largest body read (SQS's own limit is 256 KiB; these events are under 1 KiB).
pub const MAX_BODY: usize = 256 * 1024;

impl StatusEvent {
    /// The event in an SQS message body, or why the body is not one.
    pub fn parse(body: &str) -> Result<StatusEvent, String> {
        if body.len() > MAX_BODY {
            return Err(format!("{} bytes, more than {MAX_BODY}", body.len()));
        }
        let e: Envelope =
            serde_json::from_str(body).map_err(|e| format!("not an EventBridge event: {e}"))?;
        if e.source != SOURCE || e.detail_type != DETAIL_TYPE {
            return Err(format!(
                "source {:?} and detail-type {:?}, not {SOURCE:?} and {DETAIL_TYPE:?}",
                e.source, e.detail_type
            ));
        }
        let arn = ExecutionArn::parse(&e.detail.durable_execution_arn)
            .map_err(|err| format!("detail.durableExecutionArn: {err}"))?;
        if !arn.as_str().contains("/durable-execution/") {
            return Err(format!(
                "detail.durableExecutionArn {:?} is not a durable execution ARN",
                arn.as_str()
            ));
        }
        let status = Status::parse(&e.detail.status).ok_or_else(|| {
            format!(
                "detail.status {:?} is not RUNNING, SUCCEEDED, FAILED, TIMED_OUT or STOPPED",
                e.detail.status
            )
        })?;
        Ok(StatusEvent {
            arn,
            status,
            id: e.id,
        })
    }
}

/// The envelope EventBridge delivers for `arn` (what the simulator publishes; tests use it).
pub fn envelope(
    arn: &str,
    name: &str,
    function_arn: &str,
    status: Status,
    start_iso: &str,
    end_iso: Option<&str>,
    id: &str,
) -> serde_json::Value {
    let region = arn.split(':').nth(3).unwrap_or("us-east-1");
    let account = arn.split(':').nth(4).unwrap_or("000000000000");
    let mut detail = serde_json::json!({
        "durableExecutionArn": arn,
        "durableExecutionName": name,
        "functionArn": function_arn,
        "status": status.as_str(),
        "startTimestamp": start_iso,
    });
    if let Some(end) = end_iso {
        detail["endTimestamp"] = end.into();
    }
    serde_json::json!({
        "version": "0",
        "id": id,
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": end_iso.unwrap_or(start_iso),
        "region": region,
        "resources": [],
        "detail": detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:eu-west-1:111122223333:function:orders:$LATEST/durable-execution/o-77/1c9e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6";

    #[test]
    fn the_reference_shape_parses() {
        let body = r#"{"version": "0", "id": "5b3c", "detail-type": "Durable Execution Status Change",
            "source": "aws.lambda", "account": "111122223333", "time": "2026-03-02T10:00:05Z",
            "region": "eu-west-1", "resources": [],
            "detail": {"durableExecutionArn": "ARN",
                       "durableExecutionName": "o-77", "functionArn": "arn:aws:lambda:eu-west-1:111122223333:function:orders:7",
                       "status": "SUCCEEDED", "startTimestamp": "2026-03-02T09:58:01.120Z",
                       "endTimestamp": "2026-03-02T10:00:04.987Z"}}"#
            .replace("ARN", ARN);
        let e = StatusEvent::parse(&body).unwrap();
        assert_eq!(e.arn.as_str(), ARN);
        assert_eq!(e.status, Status::Succeeded);
        assert!(e.status.is_terminal());
        assert_eq!(e.id, "5b3c");
        // What the simulator writes reads back.
        let made = envelope(
            ARN,
            "o-77",
            "f",
            Status::Running,
            "2026-03-02T09:58:01.120Z",
            None,
            "x",
        );
        let back = StatusEvent::parse(&made.to_string()).unwrap();
        assert_eq!(back.status, Status::Running);
        assert_eq!(made["region"], "eu-west-1");
        assert_eq!(made["account"], "111122223333");
        assert!(made["detail"].get("endTimestamp").is_none());
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let ok = envelope(ARN, "o-77", "f", Status::Failed, "t", Some("u"), "x");
        let with = |path: &[&str], v: serde_json::Value| {
            let mut e = ok.clone();
            let mut at = &mut e;
            for p in &path[..path.len() - 1] {
                at = &mut at[*p];
            }
            at[path[path.len() - 1]] = v;
            StatusEvent::parse(&e.to_string()).unwrap_err()
        };
        assert!(
            StatusEvent::parse("not json")
                .unwrap_err()
                .contains("not an EventBridge event")
        );
        assert!(StatusEvent::parse("{}").is_err());
        assert!(with(&["source"], "aws.s3".into()).contains("source"));
        assert!(
            with(&["detail-type"], "Lambda Function Invocation".into()).contains("detail-type")
        );
        assert!(with(&["detail", "status"], "PAUSED".into()).contains("PAUSED"));
        assert!(with(&["detail", "status"], 3.into()).contains("not an EventBridge event"));
        assert!(
            with(
                &["detail", "durableExecutionArn"],
                "arn:aws:lambda:eu-west-1:1:function:f".into()
            )
            .contains("durableExecutionArn")
        );
        let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_BODY));
        assert!(StatusEvent::parse(&huge).unwrap_err().contains("more than"));
    }
}
