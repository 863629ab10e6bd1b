//! The Lambda durable REST API's conventions, as the simulator's server and its sources (the
//! generated simulation, the scripted source) speak them: query parameters as aws-sdk-lambda writes them, and error answers the SDK maps
//! to its typed errors (`{"Type": T, "message": M}` plus `x-amzn-errortype`).

use serde_json::json;

/// Operation names, as the API spells them.
pub const GET_HISTORY: &str = "GetDurableExecutionHistory";
pub const GET_EXECUTION: &str = "GetDurableExecution";
pub const LIST_BY_FUNCTION: &str = "ListDurableExecutionsByFunction";
pub const CALLBACK_SUCCESS: &str = "SendDurableExecutionCallbackSuccess";
pub const CALLBACK_FAILURE: &str = "SendDurableExecutionCallbackFailure";
pub const CALLBACK_HEARTBEAT: &str = "SendDurableExecutionCallbackHeartbeat";
/// What the request log records for a path no route matches.
pub const UNKNOWN_OPERATION: &str = "UnknownOperation";

/// MaxItems when absent or 0, as on the real service.
pub const DEFAULT_MAX_ITEMS: usize = 100;
/// MaxItems above this is a 400 InvalidParameterValueException.
pub const MAX_ITEMS_LIMIT: usize = 1000;
/// Longest durable execution ARN the API accepts.
pub use crate::arn::MAX_ARN_LEN;
/// Longest FunctionName the API accepts.
pub const MAX_FUNCTION_NAME_LEN: usize = 256;

pub const EXECUTION_STATUSES: [&str; 5] =
    ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];

/// One answer, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// JSON.
    pub body: String,
    /// `x-amzn-errortype` for errors.
    pub error_type: Option<&'static str>,
    /// `Retry-After` seconds, on throttling.
    pub retry_after: Option<u32>,
}

impl Reply {
    pub fn ok(body: String) -> Reply {
        Reply {
            status: 200,
            body,
            error_type: None,
            retry_after: None,
        }
    }

    pub fn error(status: u16, error_type: &'static str, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: json!({ "Type": error_type, "message": message.into() }).to_string(),
            error_type: Some(error_type),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Reply {
        Reply::error(400, "InvalidParameterValueException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Reply {
        Reply::error(404, "ResourceNotFoundException", message)
    }

    pub fn throttled(retry_after_seconds: Option<u32>) -> Reply {
        let mut body = json!({
            "Type": "TooManyRequestsException",
            "message": "Rate exceeded",
            "Reason": "CallerRateLimitExceeded",
        });
        if let Some(s) = retry_after_seconds {
            body["retryAfterSeconds"] = s.to_string().into();
        }
        Reply {
            status: 429,
            body: body.to_string(),
            error_type: Some("TooManyRequestsException"),
            retry_after: retry_after_seconds,
        }
    }

    pub fn service_error(message: &str) -> Reply {
        Reply::error(500, "ServiceException", message)
    }

    pub fn is_ok(&self) -> bool {
        self.status == 200
    }
}

/// A ListDurableExecutionsByFunction request, checked: what both sources of this API filter,
/// order and page by.
pub struct ListQuery<'a> {
    /// The function's name (from a name or an ARN) and the qualifier asked for (`$LATEST` when
    /// neither `Qualifier` nor the ARN gives one).
    pub function: String,
    pub qualifier: String,
    pub reverse: bool,
    pub marker: Option<&'a str>,
    statuses: Vec<&'a str>,
    started_after_us: Option<i64>,
    started_before_us: Option<i64>,
    name_contains: Option<&'a str>,
    pub max: usize,
}

impl<'a> ListQuery<'a> {
    pub fn parse(function: &str, p: &'a Params<'_>) -> Result<Self, Reply> {
        let (name, arn_qualifier) = check_function(function)?;
        Ok(ListQuery {
            qualifier: p
                .one("Qualifier")
                .map(str::to_owned)
                .or(arn_qualifier)
                .unwrap_or_else(|| "$LATEST".to_owned()),
            function: name,
            statuses: p.statuses()?,
            started_after_us: p.timestamp_micros("StartedAfter")?,
            started_before_us: p.timestamp_micros("StartedBefore")?,
            name_contains: p.one("DurableExecutionName"),
            reverse: p.bool("ReverseOrder")?.unwrap_or(false),
            max: p.max_items()?,
            marker: p.one("Marker"),
        })
    }

    /// Whether an execution of this status, name and start (microseconds; unknown: None) is
    /// asked for (`StartedAfter` and `StartedBefore` are exclusive).
    pub fn wants(&self, status: &str, name: &str, start_us: Option<i64>) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&status))
            && self.name_contains.is_none_or(|n| name.contains(n))
            && self
                .started_after_us
                .is_none_or(|a| start_us.is_some_and(|s| s > a))
            && self
                .started_before_us
                .is_none_or(|b| start_us.is_some_and(|s| s < b))
    }

    /// One page of the matching executions keyed by start: oldest first (newest first with
    /// `ReverseOrder`), those past the marker's key (`after`), at most `MaxItems`; with the key
    /// of the last one when more follow.
    pub fn page<K: Ord + Copy, T>(
        &self,
        mut matching: Vec<(K, T)>,
        after: Option<K>,
    ) -> (Vec<T>, Option<K>) {
        matching.sort_by_key(|(k, _)| *k);
        if self.reverse {
            matching.reverse();
        }
        if let Some(a) = after {
            matching.retain(|(k, _)| if self.reverse { *k < a } else { *k > a });
        }
        let more = matching.len() > self.max;
        matching.truncate(self.max);
        let next = more.then(|| matching.last().map(|(k, _)| *k)).flatten();
        (matching.into_iter().map(|(_, x)| x).collect(), next)
    }
}

/// The query string's parameters, in order, percent-decoded.
pub struct Params<'a>(pub &'a [(String, String)]);

impl Params<'_> {
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `true` / `false` (any case), as the SDK writes booleans.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, Reply> {
        match self.one(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(Reply::invalid(format!(
                "Invalid value '{v}' for {name}: expected true or false"
            ))),
        }
    }

    /// MaxItems: absent or 0 → the default; negative or above the limit → 400.
    pub fn max_items(&self) -> Result<usize, Reply> {
        let Some(v) = self.one("MaxItems") else {
            return Ok(DEFAULT_MAX_ITEMS);
        };
        let n: i64 = v
            .parse()
            .map_err(|_| Reply::invalid(format!("Invalid value '{v}' for MaxItems")))?;
        if n < 0 {
            return Err(Reply::invalid(format!(
                "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy \
                 constraint: Member must have value greater than or equal to 0"
            )));
        }
        if n as u64 > MAX_ITEMS_LIMIT as u64 {
            return Err(Reply::invalid(format!(
                "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy \
                 constraint: Member must have value less than or equal to {MAX_ITEMS_LIMIT}"
            )));
        }
        Ok(if n == 0 {
            DEFAULT_MAX_ITEMS
        } else {
            n as usize
        })
    }

    /// A timestamp in epoch microseconds: RFC 3339 (`2026-11-21T08:03:49.114Z`, what the SDK
    /// sends) or epoch seconds.
    pub fn timestamp_micros(&self, name: &str) -> Result<Option<i64>, Reply> {
        let Some(v) = self.one(name) else {
            return Ok(None);
        };
        let micros = crate::time::Timestamp::parse_iso8601(v)
            .map(|t| t.millis() * 1000)
            .or_else(|| v.parse::<f64>().ok().map(|s| (s * 1e6).round() as i64))
            .ok_or_else(|| Reply::invalid(format!("Invalid timestamp '{v}' for {name}")))?;
        Ok(Some(micros))
    }

    /// The `Statuses` filter (repeated or comma-separated), each one a known status.
    pub fn statuses(&self) -> Result<Vec<&str>, Reply> {
        let mut statuses = Vec::new();
        for v in self.all("Statuses") {
            for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !EXECUTION_STATUSES.contains(&s) {
                    return Err(Reply::invalid(format!(
                        "1 validation error detected: Value '{s}' at 'statuses' failed to \
                         satisfy constraint: Member must satisfy enum value set: \
                         [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED]"
                    )));
                }
                statuses.push(s);
            }
        }
        Ok(statuses)
    }
}

/// Checks a durable execution ARN as the API validates the path parameter (as
/// [`crate::arn::ExecutionArn::parse`] does).
pub fn check_arn(arn: &str) -> Result<(), Reply> {
    crate::arn::ExecutionArn::parse(arn)
        .map(drop)
        .map_err(|_| Reply::invalid("Invalid Durable Execution ARN"))
}

/// A function name, partial ARN (`ACCOUNT:function:NAME`) or ARN, optionally qualified:
/// (name, qualifier).
pub fn function_ref(s: &str) -> Option<(String, Option<String>)> {
    let segments: Vec<&str> = s.split(':').collect();
    let (name, qualifier) = match segments.iter().position(|&x| x == "function") {
        Some(i) => (*segments.get(i + 1)?, segments.get(i + 2).copied()),
        None => match segments.as_slice() {
            [name] => (*name, None),
            [name, qualifier] => (*name, Some(*qualifier)),
            _ => return None,
        },
    };
    if name.is_empty() || qualifier.is_some_and(str::is_empty) {
        return None;
    }
    Some((name.to_owned(), qualifier.map(str::to_owned)))
}

/// Checks ListDurableExecutionsByFunction's FunctionName and splits it into (name, qualifier).
pub fn check_function(function: &str) -> Result<(String, Option<String>), Reply> {
    if function.is_empty() || function.len() > MAX_FUNCTION_NAME_LEN {
        return Err(Reply::invalid(format!(
            "1 validation error detected: Value '{function}' at 'functionName' failed to \
             satisfy constraint: Member must have length between 1 and {MAX_FUNCTION_NAME_LEN}"
        )));
    }
    function_ref(function)
        .ok_or_else(|| Reply::invalid(format!("Invalid function name: {function}")))
}
