//! The daemon's two HTTP surfaces (served by [`crate::listener`], with its limits, TLS and
//! credentials):
//!
//! - on `http.listen`, [`metrics_router`]: what a scraper and a probe need, nothing that
//!   changes or reveals tracked executions;
//! - on `api.listen` (loopback, or behind `api.token_file`), [`api_router`]: the run-time API.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/executions` `{"DurableExecutionArn": "..."}` | 201 (tracked now, and on disk) or 200 (already tracked); 421 another replica's (`shard.*`); 429 at `track.max_executions`; 503 when it cannot be written to disk |
//! | `DELETE /v1/executions/{arn}` | 204, or 404 when not tracked; 503 when it cannot be written to disk |
//! | `GET /v1/executions` | `{"Executions": [...], "BufferedSpans": n}`: status, last EventId, time since last read |
//! | `GET /v1/executions/{arn}` | one of them |
//! | `GET /v1/executions/{arn}/state?MaxItems=&Marker=` | GetDurableExecutionState-shaped operations, paged |
//! | `GET /`, `/ui/...`, `/v1/ui/...` | the execution browser ([`super::ui`]) |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 unless API calls have gone unanswered, or an export has been trying, for longer than `http.ready_window`, or checkpoints cannot be written; then 503 with reasons |
//! | `GET /metrics` | Prometheus text, or OpenMetrics with exemplars when asked (`Accept: application/openmetrics-text`) |
//!
//! ARNs in paths are one percent-encoded segment (`/` as `%2F`), as in the Lambda API. Errors
//! are JSON: `{"error": "..."}` with 400 for bad requests, 401 without valid credentials.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::coordinator::{Command, Refused};
use super::lambda::Lambda;
use crate::arn::ExecutionArn;
use crate::clock::now_ms;
use crate::state::json::state_response;
use crate::state::{Execution, FnObserver, FoldOptions, Transition};

#[derive(Clone)]
pub struct AppState {
    pub commands: mpsc::Sender<Command>,
    pub health: Arc<super::Health>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub exporter_metrics: super::metrics::ExporterMetrics,
    /// How recent an API answer and an export must be for /readyz.
    pub ready_window: std::time::Duration,
    pub lambda: Lambda,
    pub page_size: u32,
    pub include_execution_data: bool,
    pub include_payloads: bool,
    /// The execution browser (`ui.*`).
    pub ui: Arc<super::ui::Ui>,
}

impl AppState {
    /// One page of `arn`'s history for a request of this API: through the budget as a read,
    /// with the daemon's page size and payload setting.
    pub(super) async fn history_page(
        &self,
        arn: &str,
        marker: Option<&str>,
    ) -> Result<super::lambda::HistoryPage, super::lambda::ApiError> {
        self.lambda
            .history_page(
                super::limiter::Class::Read,
                arn,
                marker,
                self.page_size,
                self.include_execution_data,
            )
            .await
    }
}

/// Paths of the metrics listener that answer without credentials (probes).
pub const PROBE_PATHS: &[&str] = &["/healthz", "/readyz"];

/// `/metrics`, `/healthz`, `/readyz`.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `/v1/...`: reads and changes what is tracked; and the execution browser.
pub fn api_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/executions", get(list_executions).post(add_execution))
        .route(
            "/v1/executions/{arn}",
            get(get_execution).delete(remove_execution),
        )
        .route("/v1/executions/{arn}/state", get(execution_state))
        .with_state(state.clone())
        .merge(super::ui::router(state))
}

/// The answer to a registration the coordinator refused.
fn refused(r: Refused) -> Response {
    match r {
        Refused::Full { max } => error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{max} executions are tracked already (track.max_executions); remove some or raise the limit"
            ),
        ),
        Refused::OtherShard { owner, count } => (
            StatusCode::MISDIRECTED_REQUEST,
            Json(serde_json::json!({
                "error": format!("this execution is tracked by replica {owner} of {count} (shard.*), not by this one; register it there"),
                "Shard": owner,
                "ShardCount": count,
            })),
        )
            .into_response(),
        Refused::NotPersisted(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the registration cannot be written to disk, so it would not survive a restart: {e}"
            ),
        ),
    }
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

pub(super) async fn ask<T>(
    state: &AppState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, Response> {
    let (tx, rx) = oneshot::channel();
    state
        .commands
        .send(make(tx))
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    rx.await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AddRequest {
    durable_execution_arn: String,
}

async fn add_execution(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let req: AddRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"DurableExecutionArn\": \"...\"}}: {e}"),
            );
        }
    };
    let arn = match ExecutionArn::parse(&req.durable_execution_arn) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("DurableExecutionArn: {e}")),
    };
    let arn_text = arn.as_str().to_owned();
    match ask(&state, |reply| Command::Add { arn, reply }).await {
        Ok(Err(r)) => refused(r),
        Ok(Ok(new)) => (
            if new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            Json(serde_json::json!({ "DurableExecutionArn": arn_text, "Tracked": true })),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn remove_execution(State(state): State<Arc<AppState>>, Path(arn): Path<String>) -> Response {
    match ask(&state, |reply| Command::Remove {
        arn: arn.clone(),
        reply,
    })
    .await
    {
        Ok(Ok(true)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, format!("not tracked: {arn}")),
        Ok(Err(r)) => refused(r),
        Err(r) => r,
    }
}

async fn list_executions(State(state): State<Arc<AppState>>) -> Response {
    match ask(&state, |reply| Command::List { reply }).await {
        Ok(v) => Json(serde_json::json!({
            "Executions": v,
            "BufferedSpans": state.exporter_metrics.buffered.get(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn get_execution(State(state): State<Arc<AppState>>, Path(arn): Path<String>) -> Response {
    match ask(&state, |reply| Command::Get {
        arn: arn.clone(),
        reply,
    })
    .await
    {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("not tracked: {arn}")),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StateQuery {
    max_items: Option<String>,
    marker: Option<String>,
}

/// Reads the whole history (through the same request budget) and folds it, keeping finished
/// operations: the daemon itself holds only open ones.
async fn execution_state(
    State(state): State<Arc<AppState>>,
    Path(arn): Path<String>,
    Query(q): Query<StateQuery>,
) -> Response {
    let max_items = match q.max_items.as_deref().map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "MaxItems: a whole number from 1 to 1000",
            );
        }
    };
    let start = match q.marker.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Marker: not a marker this API gave",
            );
        }
    };
    match ask(&state, |reply| Command::Get {
        arn: arn.clone(),
        reply,
    })
    .await
    {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("not tracked: {arn}")),
        Err(r) => return r,
    }
    let mut fold = Execution::new(
        arn.as_str(),
        FoldOptions {
            keep_finished: true,
        },
    );
    let mut pages = super::lambda::Pages::default();
    loop {
        let page = match state.history_page(&arn, pages.marker()).await {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
        };
        fold.apply_all(&page.events, &mut FnObserver(|_: Transition<'_>| {}));
        if !pages.advance(page.next_marker, page.events.len()) {
            break;
        }
    }
    let ops = fold.operations();
    if start > ops.len() {
        return error(StatusCode::BAD_REQUEST, "Marker: beyond the last operation");
    }
    let end = (start + max_items).min(ops.len());
    let next = (end < ops.len()).then(|| end.to_string());
    Json(state_response(
        &ops[start..end],
        state.include_payloads,
        next,
    ))
    .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if let Err(r) = ask(&state, |reply| Command::RefreshGauges { reply }).await {
        return r;
    }
    state
        .exporter_metrics
        .api_rate
        .set(state.lambda.limiter().rate());
    let openmetrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.encode_openmetrics(),
        )
            .into_response()
    } else {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.encode_text(),
        )
            .into_response()
    }
}

/// Ready: the coordinator answers, checkpoints can be written, no API call has gone unanswered
/// for longer than the window, and no export has been trying for longer than the window. Quiet
/// is not failing: a daemon with nothing to read or send is ready.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    use std::sync::atomic::Ordering;
    let mut reasons: Vec<String> = Vec::new();
    if ask(&state, |reply| Command::List { reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let window = state.ready_window.as_millis() as i64;
    let now = now_ms();
    if let Some(e) = state
        .health
        .checkpoint_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        reasons.push(format!(
            "checkpoints cannot be written, so exporting is paused: {e}"
        ));
    }
    if let Some(e) = state
        .health
        .tracking_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        reasons.push(format!(
            "tracked.json cannot be written, so run-time registrations are refused: {e}"
        ));
    }
    let unanswered_since = state.health.unanswered_since_ms.load(Ordering::Relaxed);
    if unanswered_since > 0 && now - unanswered_since > window {
        reasons.push(format!(
            "the durable-execution API has not answered for {} s",
            (now - unanswered_since) / 1000
        ));
    }
    let sending_since = state.health.sending_since_ms.load(Ordering::Relaxed);
    if sending_since > 0 && now - sending_since > window {
        let buffered = state.exporter_metrics.buffered.get();
        reasons.push(format!(
            "the OTLP collector has not accepted an export for {} s ({buffered} spans wait)",
            (now - sending_since) / 1000
        ));
    }
    if reasons.is_empty() {
        Json(serde_json::json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reasons": reasons })),
        )
            .into_response()
    }
}
