//! The execution browser on `api.listen` (docs/UI.md): a page of plain HTML, CSS and
//! JavaScript embedded in the binary, and the JSON it reads.
//!
//! | request | answer | API calls |
//! |---|---|---|
//! | `GET /`, `/ui/app.js`, `/ui/app.css`, `/ui/favicon.svg` | the page | 0 |
//! | `GET /v1/ui/config` | the links out (`ui.*`) and whether payloads are shown | 0 |
//! | `GET /v1/executions` | the list (the run-time API: what the daemon has folded) | 0 |
//! | `GET /v1/ui/executions/{arn}` | one execution: its spans as OTLP/JSON (as `convert` draws them) and its operations | 0 for a kept finished one, else 1 |
//! | `GET /v1/ui/aggregates?function=&window=` | durations, failures by operation, retries by step | 0 |
//!
//! One execution's view keeps the events it read ([`Histories`], `ui.cache_executions` of them,
//! least recently viewed out first) and reads only from the page that held the last one: one
//! `GetDurableExecutionHistory` call per view, through the same request budget as the
//! daemon's reads, and none once a kept execution has ended. Every response (a layer on this
//! router) forbids the page any request outside this listener (a Content-Security-Policy of
//! `'self'`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::coordinator::Command;
use super::http::{AppState, ask, error};
use crate::arn::ExecutionArn;
use crate::clock::now_ms;
use crate::config::UiConfig;
use crate::history::Event;
use crate::state::json::state_response;
use crate::trace::otlp_json;

const INDEX: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");
const FAVICON: &str = include_str!("ui/favicon.svg");

/// No request outside this listener, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How many API calls a view made (`0` or `1`).
pub const API_CALLS_HEADER: &str = "x-durable-api-calls";

/// The browser's part of the API state.
pub struct Ui {
    pub config: UiConfig,
    histories: Histories,
}

impl Ui {
    pub fn new(config: UiConfig) -> Self {
        let histories = Histories::new(config.cache_executions);
        Ui { config, histories }
    }
}

/// The page and its JSON, or nothing when `ui.enabled` is off.
pub fn router(state: Arc<AppState>) -> Router {
    if !state.ui.config.enabled {
        return Router::new();
    }
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/ui/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
        .route("/v1/ui/config", get(ui_config))
        .route("/v1/ui/executions/{arn}", get(execution))
        .route("/v1/ui/aggregates", get(aggregates))
        .with_state(state)
        // On every answer, the handlers' and axum's own (a rejected query) alike.
        .layer(axum::middleware::map_response(guard_layer))
}

async fn guard_layer(r: Response) -> Response {
    guard(r)
}

/// The headers every answer of the browser carries.
fn guard(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn ui_config(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.ui.config;
    Json(serde_json::json!({
        "TraceUrlTemplate": c.trace_url_template,
        "DashboardUrl": c.dashboard_url,
        "IncludePayloads": state.include_payloads,
        "Version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// What one execution's view has read of its history.
#[derive(Default)]
struct History {
    events: Vec<Event>,
    /// The page to read next: the one that held the last event, or the next one.
    marker: Option<String>,
    /// The last read ended at a NextMarker: there is more to read.
    more: bool,
    /// The rendered answer, once the execution ended and everything was read.
    done: Option<bytes::Bytes>,
}

/// One execution's history, locked while a view reads it (two views, one API call).
type Shared = Arc<tokio::sync::Mutex<History>>;

/// Histories the browser has read, `ui.cache_executions` of them, with when each was last used.
struct Histories {
    capacity: usize,
    entries: Mutex<HashMap<String, (Shared, u64)>>,
    uses: std::sync::atomic::AtomicU64,
}

impl Histories {
    fn new(capacity: usize) -> Self {
        Histories {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
            uses: Default::default(),
        }
    }

    /// The entry of `arn`, made (and the least recently used one dropped) when missing.
    fn entry(&self, arn: &str) -> Shared {
        let tick = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((h, used)) = entries.get_mut(arn) {
            *used = tick;
            return h.clone();
        }
        if entries.len() >= self.capacity
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        let h = Arc::new(tokio::sync::Mutex::new(History::default()));
        entries.insert(arn.to_owned(), (h.clone(), tick));
        h
    }

    /// Forgets an execution no longer tracked.
    fn forget(&self, arn: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(arn);
    }
}

fn json_response(body: bytes::Bytes, api_calls: u32) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static(API_CALLS_HEADER),
                HeaderValue::from(api_calls),
            ),
        ],
        body,
    )
        .into_response()
}

/// One tracked execution: its spans, drawn by the same core and options as the daemon's (and
/// `convert`'s), its operations in the GetDurableExecutionState shape, and how much was read.
async fn execution(State(state): State<Arc<AppState>>, Path(arn): Path<String>) -> Response {
    let traced = match ask(&state, |reply| Command::Trace {
        arn: arn.clone(),
        reply,
    })
    .await
    {
        Ok(Some(t)) => t,
        Ok(None) => {
            state.ui.histories.forget(&arn);
            return error(StatusCode::NOT_FOUND, format!("not tracked: {arn}"));
        }
        Err(r) => return r,
    };
    let Ok(parsed) = ExecutionArn::parse(&arn) else {
        return error(StatusCode::BAD_REQUEST, "not an execution ARN");
    };
    let entry = state.ui.histories.entry(&arn);
    let mut h = entry.lock().await;
    if let Some(done) = &h.done {
        return json_response(done.clone(), 0);
    }
    let mut pages = super::lambda::Pages::from(h.marker.clone());
    let page = match state.history_page(&arn, pages.marker()).await {
        Ok(p) => p,
        Err(e) => {
            if e.kind == super::lambda::ErrorKind::InvalidParameter && h.marker.is_some() {
                // The marker expired: the next view reads from the start.
                *h = History::default();
            }
            return error(StatusCode::BAD_GATEWAY, e.to_string());
        }
    };
    let last = h.events.last().map_or(0, |e| e.id);
    let read_before = h.events.len();
    let items = page.events.len();
    h.events
        .extend(page.events.into_iter().filter(|e| e.id > last));
    // Read again from the page that held the last event, or on from the next one.
    h.more = pages.advance(page.next_marker, items);
    if h.more {
        h.marker = pages.marker().map(str::to_owned);
    }
    let (options, resource) = traced;
    let conversion = crate::convert::convert(&h.events, &parsed, None, options);
    let ops = conversion.execution.operations();
    let info = conversion.execution.info();
    let finished = conversion.execution.is_finished() && !h.more;
    let meta = serde_json::json!({
        "DurableExecutionArn": arn,
        "Status": info.status.as_str(),
        "StartTimestamp": info.start.map(|t| t.to_iso8601()),
        "EndTimestamp": info.end.map(|t| t.to_iso8601()),
        "TraceId": conversion.spans.first().map(|s| s.trace_id.to_string()),
        "Events": h.events.len(),
        "NewEvents": h.events.len() - read_before,
        "Complete": !h.more,
        "Finished": finished,
        "ReadAtMs": now_ms(),
        "Anomalies": conversion
            .anomalies
            .iter()
            .map(|a| format!("event {}: {} ({})", a.event_id, a.message, a.kind.as_str()))
            .collect::<Vec<_>>(),
    });
    let state_json = serde_json::to_string(&state_response(&ops, state.include_payloads, None))
        .unwrap_or_else(|_| "{}".into());
    let mut body = serde_json::to_string(&meta).unwrap_or_else(|_| "{}".into());
    // Spliced, not re-parsed: the trace is the OTLP/JSON `convert` writes.
    body.pop();
    body.push_str(",\"Trace\":");
    body.push_str(&otlp_json::to_string(&resource, &conversion.spans));
    body.push_str(",\"State\":");
    body.push_str(&state_json);
    body.push('}');
    let body = bytes::Bytes::from(body);
    if finished {
        h.done = Some(body.clone());
        // Nothing more will be read: the events are no longer needed.
        h.events = Vec::new();
    }
    json_response(body, 1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateQuery {
    function: Option<String>,
    /// `5m`, `1h`, `7d`, ... or `all` (the default).
    window: Option<String>,
}

/// Aggregates of the fold the metrics use ([`crate::metrics::recent`]).
async fn aggregates(
    State(state): State<Arc<AppState>>,
    Query(q): Query<AggregateQuery>,
) -> Response {
    let window = match q.window.as_deref().map(str::trim) {
        None | Some("" | "all") => None,
        Some(w) => match humantime::parse_duration(w) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "window: a duration such as 15m, 1h or 7d, or all",
                );
            }
        },
    };
    let since = window.map(|d| now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
    let function = q
        .function
        .as_deref()
        .filter(|f| !f.is_empty() && *f != "all");
    let recent = &state.metrics.recent;
    let aggregate = recent.aggregate(function, since);

    Json(serde_json::json!({
        "Function": function,
        "Window": q.window.as_deref().unwrap_or("all"),
        "SinceMs": since,
        "Functions": recent.functions(),
        "Aggregate": aggregate,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_viewed_history_goes_first() {
        let h = Histories::new(2);
        let a = h.entry("a");
        h.entry("b");
        // "a" viewed again: "b" is now the oldest.
        assert!(Arc::ptr_eq(&a, &h.entry("a")));
        h.entry("c");
        let kept = h.entries.lock().unwrap();
        let mut keys: Vec<&String> = kept.keys().collect();
        keys.sort();
        assert_eq!(keys, ["a", "c"]);
    }

    #[test]
    fn the_page_may_reach_nothing_outside_the_listener() {
        let r = guard(asset("text/html", INDEX));
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        // Nothing in the page refers to another origin (no CDN, fonts or analytics).
        for (name, text) in [
            ("index.html", INDEX),
            ("app.js", APP_JS),
            ("app.css", APP_CSS),
        ] {
            // The SVG namespace is a name, not a request.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            for scheme in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(scheme), "{name} holds {scheme}");
            }
        }
        assert!(INDEX.len() + APP_JS.len() + APP_CSS.len() + FAVICON.len() < 300 * 1024);
    }
}
