//! The durable-execution API through aws-sdk-lambda: one client, one request budget
//! ([`RateLimiter`]) for every call and every retry. The SDK's own retries are off so that no
//! request escapes the budget; here throttling lowers the rate and honours Retry-After, 5xx and
//! transport errors retry with jittered back-off, ResourceNotFound and bad parameters do not.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::get_durable_execution::GetDurableExecutionError;
use aws_sdk_lambda::operation::get_durable_execution_history::GetDurableExecutionHistoryError;
use aws_sdk_lambda::operation::list_durable_executions_by_function::ListDurableExecutionsByFunctionError;
use aws_sdk_lambda::primitives::DateTime;

use super::Health;
use super::limiter::{Class, RateLimiter};
use super::metrics::{ExporterMetrics, OperationLabel, RequestLabels};
use crate::history::Event;
use crate::time::Timestamp;

/// Attempts for one call (throttles and server errors included) before giving up until the
/// next poll.
const MAX_ATTEMPTS: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

pub const OP_HISTORY: &str = "GetDurableExecutionHistory";
pub const OP_DESCRIBE: &str = "GetDurableExecution";
pub const OP_LIST: &str = "ListDurableExecutionsByFunction";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// ResourceNotFoundException: stop tracking.
    NotFound,
    /// InvalidParameterValueException (an expired or rejected marker, a bad ARN).
    InvalidParameter,
    /// TooManyRequestsException after every attempt.
    Throttled,
    /// 5xx after every attempt.
    Server,
    /// No answer (connection, timeout) after every attempt.
    Transport,
    /// Anything else (credentials, access denied, a response that does not parse).
    Other,
}

/// Every outcome a request is counted with: `ok` and the [`ErrorKind`] names.
pub const OUTCOMES: [&str; 7] = [
    "ok",
    "not_found",
    "invalid_parameter",
    "throttled",
    "server_error",
    "transport_error",
    "error",
];

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidParameter => "invalid_parameter",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Server => "server_error",
            ErrorKind::Transport => "transport_error",
            ErrorKind::Other => "error",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} {target}: {message}")]
pub struct ApiError {
    pub operation: &'static str,
    pub target: String,
    pub kind: ErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
}

/// Where a paged read is: the marker of the next page. One rule for every `NextMarker` loop:
/// it ends at the last page (no `NextMarker`), at an empty page (AWS's emulator answers one
/// with a marker; following it would loop) and at a marker that repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pages {
    next: Option<String>,
}

impl Pages {
    /// From `marker` (None: the first page).
    pub fn from(marker: Option<String>) -> Self {
        Pages { next: marker }
    }

    /// The marker to read the next page with.
    pub fn marker(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// After a page of `items` items that said `next`: true when there is a page to read.
    pub fn advance(&mut self, next: Option<String>, items: usize) -> bool {
        match next {
            Some(n) if items > 0 && self.next.as_ref() != Some(&n) => {
                self.next = Some(n);
                true
            }
            _ => false,
        }
    }

    /// From the first page again (a refused or expired marker).
    pub fn restart(&mut self) {
        self.next = None;
    }
}

/// One page of history, converted.
#[derive(Debug, Default)]
pub struct HistoryPage {
    pub events: Vec<Event>,
    pub next_marker: Option<String>,
    /// Events the SDK gave that could not be converted (logged, counted).
    pub skipped: Vec<String>,
}

/// What GetDurableExecution says about an execution.
#[derive(Debug, Clone)]
pub struct Description {
    pub start: Timestamp,
    pub status: String,
    pub trace_header: Option<String>,
    pub function_arn: Option<String>,
}

/// One execution from ListDurableExecutionsByFunction.
#[derive(Debug, Clone)]
pub struct Listed {
    pub arn: String,
    pub start: Timestamp,
}

#[derive(Clone)]
pub struct Lambda {
    client: aws_sdk_lambda::Client,
    limiter: Arc<RateLimiter>,
    metrics: ExporterMetrics,
    health: Arc<Health>,
}

/// The Lambda client: [`crate::aws::sdk_config`], then [`lambda_client`].
pub async fn sdk_client(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    timeout: Duration,
    credentials: Option<aws_sdk_lambda::config::Credentials>,
) -> aws_sdk_lambda::Client {
    lambda_client(
        &crate::aws::sdk_config(region, timeout, credentials).await,
        endpoint_url,
    )
}

/// The Lambda client (its own retries off: the limiter and the scheduler retry).
pub fn lambda_client(
    shared: &aws_config::SdkConfig,
    endpoint_url: Option<&str>,
) -> aws_sdk_lambda::Client {
    let mut conf =
        aws_sdk_lambda::config::Builder::from(shared).retry_config(RetryConfig::disabled());
    if let Some(e) = endpoint_url {
        conf = conf.endpoint_url(e);
    }
    aws_sdk_lambda::Client::from_conf(conf.build())
}

/// Typed Retry-After of each operation's TooManyRequestsException.
trait Throttle {
    fn retry_after(&self) -> Option<&str>;
}

impl Throttle for GetDurableExecutionHistoryError {
    fn retry_after(&self) -> Option<&str> {
        match self {
            Self::TooManyRequestsException(t) => t.retry_after_seconds(),
            _ => None,
        }
    }
}

impl Throttle for GetDurableExecutionError {
    fn retry_after(&self) -> Option<&str> {
        match self {
            Self::TooManyRequestsException(t) => t.retry_after_seconds(),
            _ => None,
        }
    }
}

impl Throttle for ListDurableExecutionsByFunctionError {
    fn retry_after(&self) -> Option<&str> {
        match self {
            Self::TooManyRequestsException(t) => t.retry_after_seconds(),
            _ => None,
        }
    }
}

fn classify<E>(
    operation: &'static str,
    target: &str,
    err: SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> ApiError
where
    E: ProvideErrorMetadata + Throttle + std::error::Error + 'static,
{
    let mk = |kind, message: String, retry_after| ApiError {
        operation,
        target: target.to_owned(),
        kind,
        message,
        retry_after,
    };
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let header_retry = ctx
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<f64>().ok());
            let e = ctx.err();
            let retry_after = e
                .retry_after()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .or(header_retry)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(3600.0)));
            let code = e.code().unwrap_or("");
            let message = format!(
                "{}{}",
                if code.is_empty() { "" } else { code },
                e.message().map(|m| format!(": {m}")).unwrap_or_default()
            );
            let message = if message.is_empty() {
                format!("HTTP {status}")
            } else {
                message
            };
            let kind = match code {
                "ResourceNotFoundException" => ErrorKind::NotFound,
                "InvalidParameterValueException" => ErrorKind::InvalidParameter,
                "TooManyRequestsException" => ErrorKind::Throttled,
                _ if status == 429 => ErrorKind::Throttled,
                _ if status == 404 => ErrorKind::NotFound,
                _ if status >= 500 => ErrorKind::Server,
                _ => ErrorKind::Other,
            };
            mk(kind, message, retry_after)
        }
        SdkError::TimeoutError(_) => mk(ErrorKind::Transport, "timed out".into(), None),
        SdkError::DispatchFailure(d) => {
            let message = match d.as_connector_error() {
                Some(c) => format!("no answer: {c}"),
                None => "no answer".into(),
            };
            mk(ErrorKind::Transport, message, None)
        }
        SdkError::ResponseError(r) => mk(
            ErrorKind::Transport,
            format!("unreadable response (HTTP {})", r.raw().status().as_u16()),
            None,
        ),
        other => mk(ErrorKind::Other, display_chain(&other), None),
    }
}

fn display_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    // Full jitter: anywhere up to the exponential bound.
    exp.mul_f64(fastrand::f64().max(0.1))
}

impl Lambda {
    pub fn new(
        client: aws_sdk_lambda::Client,
        limiter: Arc<RateLimiter>,
        metrics: ExporterMetrics,
        health: Arc<Health>,
    ) -> Self {
        Lambda {
            client,
            limiter,
            metrics,
            health,
        }
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// One attempt of `operation` ended with `outcome` (`ok`, or an [`ErrorKind`] name).
    fn count(&self, operation: &'static str, outcome: &'static str) {
        self.metrics
            .api_requests
            .get_or_create(&RequestLabels { operation, outcome })
            .inc();
        if outcome == ErrorKind::Throttled.as_str() {
            self.metrics
                .api_throttles
                .get_or_create(&OperationLabel { operation })
                .inc();
        }
    }

    /// Runs one call under the budget, retrying what is worth retrying.
    async fn call<T, E, F, Fut>(
        &self,
        class: Class,
        operation: &'static str,
        target: &str,
        send: F,
    ) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, SdkError<E, aws_sdk_lambda::config::http::HttpResponse>>,
            >,
        E: ProvideErrorMetadata + Throttle + std::error::Error + 'static,
    {
        let mut attempt = 0;
        loop {
            self.limiter.acquire(class).await;
            let started = std::time::Instant::now();
            let started_ms = crate::clock::now_ms();
            self.health.waiting_since(started_ms);
            let sent = send().await;
            self.metrics
                .api_latency
                .get_or_create(&OperationLabel { operation })
                .observe(started.elapsed().as_secs_f64());
            let answered = match &sent {
                Ok(_) => true,
                Err(SdkError::ServiceError(ctx)) => ctx.raw().status().as_u16() < 500,
                Err(_) => false,
            };
            if answered {
                self.health
                    .unanswered_since_ms
                    .store(0, std::sync::atomic::Ordering::Relaxed);
            } else {
                // A call that started before another one's answer cleared the mark.
                self.health.waiting_since(started_ms);
            }
            let err = match sent {
                Ok(v) => {
                    self.count(operation, "ok");
                    self.limiter.succeeded();
                    return Ok(v);
                }
                Err(e) => classify(operation, target, e),
            };
            self.count(operation, err.kind.as_str());
            attempt += 1;
            match err.kind {
                ErrorKind::Throttled => {
                    self.limiter.throttled();
                    let wait = super::limiter::retry_wait(err.retry_after);
                    tracing::debug!(operation, target, retry_after = ?err.retry_after, ?wait, "throttled");
                    if attempt < MAX_ATTEMPTS {
                        tokio::time::sleep(wait).await;
                    }
                }
                ErrorKind::Server | ErrorKind::Transport => {
                    let wait = backoff(attempt);
                    tracing::debug!(operation, target, ?wait, error = %err.message, "retrying");
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(err),
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(err);
            }
        }
    }

    pub async fn history_page(
        &self,
        class: Class,
        arn: &str,
        marker: Option<&str>,
        max_items: u32,
        include_execution_data: bool,
    ) -> Result<HistoryPage, ApiError> {
        self.history_page_in(class, arn, marker, max_items, include_execution_data, false)
            .await
    }

    /// The newest `max_items` events, newest first (`ReverseOrder=true`): a cheap look for news.
    pub async fn history_tail(
        &self,
        class: Class,
        arn: &str,
        max_items: u32,
        include_execution_data: bool,
    ) -> Result<HistoryPage, ApiError> {
        self.history_page_in(class, arn, None, max_items, include_execution_data, true)
            .await
    }

    async fn history_page_in(
        &self,
        class: Class,
        arn: &str,
        marker: Option<&str>,
        max_items: u32,
        include_execution_data: bool,
        reverse: bool,
    ) -> Result<HistoryPage, ApiError> {
        let max_items = i32::try_from(max_items.clamp(1, 1000)).unwrap_or(1000);
        let out = self
            .call(class, OP_HISTORY, arn, || {
                self.client
                    .get_durable_execution_history()
                    .durable_execution_arn(arn)
                    .set_marker(marker.map(str::to_owned))
                    .max_items(max_items)
                    .include_execution_data(include_execution_data)
                    .set_reverse_order(reverse.then_some(true))
                    .send()
            })
            .await?;
        let mut page = HistoryPage {
            events: Vec::with_capacity(out.events().len()),
            next_marker: out.next_marker().map(str::to_owned),
            skipped: Vec::new(),
        };
        for e in out.events() {
            match Event::try_from(e) {
                Ok(ev) => page.events.push(ev),
                Err(err) => page.skipped.push(err.to_string()),
            }
        }
        Ok(page)
    }

    pub async fn describe(&self, arn: &str) -> Result<Description, ApiError> {
        let out = self
            .call(Class::New, OP_DESCRIBE, arn, || {
                self.client
                    .get_durable_execution()
                    .durable_execution_arn(arn)
                    .send()
            })
            .await?;
        let st = out.start_timestamp();
        Ok(Description {
            start: Timestamp::from_secs_nanos(st.secs(), st.subsec_nanos()),
            status: out.status().as_str().to_owned(),
            trace_header: out
                .trace_header()
                .and_then(|h| h.x_amzn_trace_id())
                .map(str::to_owned),
            function_arn: Some(out.function_arn().to_owned()).filter(|f| !f.is_empty()),
        })
    }

    /// One page of an execution listing.
    pub async fn list_by_function(
        &self,
        function: &str,
        qualifier: Option<&str>,
        statuses: &[String],
        started_after: Option<Timestamp>,
        marker: Option<&str>,
    ) -> Result<(Vec<Listed>, Option<String>), ApiError> {
        let statuses: Vec<aws_sdk_lambda::types::ExecutionStatus> = statuses
            .iter()
            .map(|s| aws_sdk_lambda::types::ExecutionStatus::from(s.as_str()))
            .collect();
        let out = self
            .call(Class::Discovery, OP_LIST, function, || {
                self.client
                    .list_durable_executions_by_function()
                    .function_name(function)
                    .set_qualifier(qualifier.map(str::to_owned))
                    .set_statuses(Some(statuses.clone()).filter(|s| !s.is_empty()))
                    .set_started_after(started_after.map(|t| DateTime::from_millis(t.millis())))
                    .set_marker(marker.map(str::to_owned))
                    .max_items(1000)
                    .send()
            })
            .await?;
        let listed = out
            .durable_executions()
            .iter()
            .map(|e| Listed {
                arn: e.durable_execution_arn().to_owned(),
                start: Timestamp::from_secs_nanos(
                    e.start_timestamp().secs(),
                    e.start_timestamp().subsec_nanos(),
                ),
            })
            .collect();
        Ok((listed, out.next_marker().map(str::to_owned)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_at_the_last_an_empty_or_a_repeated_page() {
        let mut p = Pages::default();
        assert_eq!(p.marker(), None);
        assert!(p.advance(Some("m1".into()), 3));
        assert_eq!(p.marker(), Some("m1"));
        // The same marker again: a loop, not a page.
        assert!(!p.advance(Some("m1".into()), 3));
        assert!(p.advance(Some("m2".into()), 1));
        // An empty page with a marker (AWS's emulator for MaxItems 0): the end.
        assert!(!p.advance(Some("m3".into()), 0));
        assert!(!p.advance(None, 5));
        p.restart();
        assert_eq!(p.marker(), None);
        assert_eq!(Pages::from(Some("x".into())).marker(), Some("x"));
    }
}
