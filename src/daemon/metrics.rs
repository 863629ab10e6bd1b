//! The exporter's own health as `durable_exporter_*` metrics: registered once, in the same
//! registry as the `durable_*` families, and counted where things happen (the Lambda client,
//! the exporter, the coordinator, the listeners hold clones of the handles they count with).
//! The gauges that describe the tracked set are set from it before each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metrics::{FloatGauge, register};

/// Seconds per API request.
const API_LATENCY: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Seconds per export request.
const EXPORT_LATENCY: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabel {
    pub result: &'static str,
    /// Why the read was scheduled (`schedule::Reason`).
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

fn api_latency() -> Histogram {
    Histogram::new(API_LATENCY.iter().copied())
}

/// Every `durable_exporter_*` family. Cloning shares the same series.
#[derive(Clone)]
pub struct ExporterMetrics {
    pub api_requests: Family<RequestLabels, Counter>,
    pub api_throttles: Family<OperationLabel, Counter>,
    pub api_latency: Family<OperationLabel, Histogram, fn() -> Histogram>,
    pub api_rate: FloatGauge,
    pub tracked: Family<StateLabel, Gauge>,
    pub read_lag: FloatGauge,
    pub events: Counter,
    pub unknown_events: Counter,
    pub anomalies: Counter,
    pub marker_fallbacks: Counter,
    pub dormant: Gauge,
    pub wakes: Family<ResultLabel, Counter>,
    pub task_panics: Family<OperationLabel, Counter>,
    pub polls: Family<PollLabel, Counter>,
    pub pages: Counter,
    pub spans_exported: Counter,
    pub spans_rejected: Counter,
    pub export_failures: Counter,
    pub export_batches: Counter,
    pub export_latency: Histogram,
    pub buffered: Gauge,
    pub checkpoint_writes: Counter,
    pub checkpoint_failures: Counter,
    pub checkpoints_writable: Gauge,
    pub tracking_rejected: Family<SourceLabel, Counter>,
    pub other_shard: Family<SourceLabel, Counter>,
    pub status_events: Family<ResultLabel, Counter>,
    pub sqs_errors: Family<OperationLabel, Counter>,
    pub shard_index: Gauge,
    pub shard_count: Gauge,
    pub reload_successful: Gauge,
    pub reload_success_time: FloatGauge,
    pub http_connections: Family<ListenerLabel, Gauge>,
    pub http_unauthorized: Family<ListenerLabel, Counter>,
    pub http_tls_failures: Family<ListenerLabel, Counter>,
    pub http_refused_connections: Family<ListenerLabel, Counter>,
}

impl ExporterMetrics {
    /// Registers every family in `r`.
    pub fn register(r: &mut Registry) -> Self {
        let info: Family<VersionLabel, Gauge> = register(
            r,
            "durable_exporter_build_info",
            "Always 1; the labels say which build runs.",
            Family::default(),
        );
        info.get_or_create(&VersionLabel {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        let m = ExporterMetrics {
            api_requests: register(
                r,
                "durable_exporter_api_requests_total",
                "Durable-execution API requests, by operation as the API names it and outcome (ok, throttled, server_error, transport_error, not_found, invalid_parameter, error).",
                Family::default(),
            ),
            api_throttles: register(
                r,
                "durable_exporter_api_throttles_total",
                "TooManyRequestsException answers, by operation.",
                Family::default(),
            ),
            api_latency: register(
                r,
                "durable_exporter_api_request_duration_seconds",
                "Durable-execution API request latency, by operation.",
                Family::new_with_constructor(api_latency),
            ),
            api_rate: register(
                r,
                "durable_exporter_api_rate_limit_requests_per_second",
                "The request rate allowed now (lowered by throttling, up to this replica's share of aws.max_requests_per_second).",
                FloatGauge::default(),
            ),
            tracked: register(
                r,
                "durable_exporter_tracked_executions",
                "Tracked executions, by state (describing, running, finished).",
                Family::default(),
            ),
            read_lag: register(
                r,
                "durable_exporter_read_lag_seconds",
                "The longest time since a running execution's history was last read.",
                FloatGauge::default(),
            ),
            events: register(
                r,
                "durable_exporter_events_processed_total",
                "History events folded (each once).",
                Counter::default(),
            ),
            unknown_events: register(
                r,
                "durable_exporter_unknown_events_total",
                "Events of an EventType this version does not know (skipped).",
                Counter::default(),
            ),
            anomalies: register(
                r,
                "durable_exporter_history_anomalies_total",
                "Inconsistencies found in histories (drawn as well as possible).",
                Counter::default(),
            ),
            marker_fallbacks: register(
                r,
                "durable_exporter_marker_fallbacks_total",
                "Reads from the start after a marker was refused or expired.",
                Counter::default(),
            ),
            dormant: register(
                r,
                "durable_exporter_dormant_executions",
                "Running executions whose fold is kept on disk only (suspended, every span acknowledged) until a read brings news.",
                Gauge::default(),
            ),
            wakes: register(
                r,
                "durable_exporter_dormant_wakes_total",
                "Dormant executions a read brought news to (or settled the invocation of), by where their fold came from (checkpoint: read back; reread: it did not read back, so the history was read again from the start).",
                Family::default(),
            ),
            task_panics: register(
                r,
                "durable_exporter_task_panics_total",
                "Read tasks that panicked (a bug; the log has the message), by the operation they read with. What they read is read again later.",
                Family::default(),
            ),
            polls: register(
                r,
                "durable_exporter_polls_total",
                "History polls, by result (new_events, idle) and by why they were scheduled (new, running, due, overdue, retry, backoff, spare, news).",
                Family::default(),
            ),
            pages: register(
                r,
                "durable_exporter_history_pages_with_new_events_total",
                "History pages that brought new events.",
                Counter::default(),
            ),
            spans_exported: register(
                r,
                "durable_exporter_spans_exported_total",
                "Spans the OTLP collector accepted.",
                Counter::default(),
            ),
            spans_rejected: register(
                r,
                "durable_exporter_spans_rejected_total",
                "Spans the collector answered as rejected (OTLP partial_success); not retried.",
                Counter::default(),
            ),
            export_failures: register(
                r,
                "durable_exporter_span_export_failures_total",
                "Spans in OTLP export attempts that failed (every attempt counts; failed spans are retried, never dropped).",
                Counter::default(),
            ),
            export_batches: register(
                r,
                "durable_exporter_export_batches_total",
                "OTLP export requests the collector accepted.",
                Counter::default(),
            ),
            export_latency: register(
                r,
                "durable_exporter_export_duration_seconds",
                "OTLP export request latency, successful or not.",
                Histogram::new(EXPORT_LATENCY.iter().copied()),
            ),
            buffered: register(
                r,
                "durable_exporter_buffered_spans",
                "Spans waiting for the collector's acknowledgement (polling pauses at otlp.max_buffered_spans).",
                Gauge::default(),
            ),
            checkpoint_writes: register(
                r,
                "durable_exporter_checkpoint_writes_total",
                "Checkpoint files written.",
                Counter::default(),
            ),
            checkpoint_failures: register(
                r,
                "durable_exporter_checkpoint_failures_total",
                "Checkpoint writes that failed and unreadable checkpoints moved aside.",
                Counter::default(),
            ),
            checkpoints_writable: register(
                r,
                "durable_exporter_checkpoints_writable",
                "1 while checkpoints can be written; 0 while they cannot (exporting pauses until they can).",
                Gauge::default(),
            ),
            tracking_rejected: register(
                r,
                "durable_exporter_tracking_rejected_total",
                "Executions not tracked because track.max_executions were tracked already, by where they came from (api, discovered, chained_invoke, config).",
                Family::default(),
            ),
            other_shard: register(
                r,
                "durable_exporter_other_shard_executions_total",
                "Executions heard of that hash to another replica (shard.*) and are left to it, by where they came from (api, discovered, chained_invoke, config, status_event; checkpoint: let go after a change of shard.count).",
                Family::default(),
            ),
            status_events: register(
                r,
                "durable_exporter_status_events_total",
                "Status-change events received from track.status_events, by result (tracked: a new execution; read_now: an ended one read at once; ignored: nothing to do; refused: no room, left in the queue; poison: not an event, dropped).",
                Family::default(),
            ),
            sqs_errors: register(
                r,
                "durable_exporter_sqs_errors_total",
                "SQS requests for status events that failed, by operation (ReceiveMessage, DeleteMessageBatch).",
                Family::default(),
            ),
            shard_index: register(
                r,
                "durable_exporter_shard_index",
                "This replica's shard.index (0 to shard.count - 1).",
                Gauge::default(),
            ),
            shard_count: register(
                r,
                "durable_exporter_shards",
                "shard.count: how many replicas split the executions (every replica should say the same).",
                Gauge::default(),
            ),
            reload_successful: register(
                r,
                "durable_exporter_config_last_reload_successful",
                "1 when the last configuration reload (SIGHUP) succeeded, 0 when it failed and the running configuration stayed.",
                Gauge::default(),
            ),
            reload_success_time: register(
                r,
                "durable_exporter_config_last_reload_success_timestamp_seconds",
                "When the configuration was last loaded successfully (at start or by SIGHUP), in Unix seconds.",
                FloatGauge::default(),
            ),
            http_connections: register(
                r,
                "durable_exporter_http_connections",
                "Open connections, by listener (http: metrics and health; api: the run-time API).",
                Family::default(),
            ),
            http_unauthorized: register(
                r,
                "durable_exporter_http_unauthorized_requests_total",
                "Requests answered 401 (no or wrong credentials), by listener.",
                Family::default(),
            ),
            http_tls_failures: register(
                r,
                "durable_exporter_http_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out, by listener.",
                Family::default(),
            ),
            http_refused_connections: register(
                r,
                "durable_exporter_http_refused_connections_total",
                "Connections closed as soon as accepted because the listener had its most open connections, by listener.",
                Family::default(),
            ),
        };
        m.checkpoints_writable.set(1);
        for listener in ["http", "api"] {
            m.http_connections
                .get_or_create(&ListenerLabel { listener })
                .set(0);
        }
        // At 0 from the start: an alert on its increase sees the first one.
        for operation in [
            super::lambda::OP_DESCRIBE,
            super::lambda::OP_HISTORY,
            super::lambda::OP_LIST,
        ] {
            let _ = m.task_panics.get_or_create(&OperationLabel { operation });
        }
        m
    }

    /// What a listener counts with.
    pub fn listener(&self, listener: &'static str) -> crate::listener::ListenerStats {
        let l = ListenerLabel { listener };
        crate::listener::ListenerStats {
            open_connections: self.http_connections.get_or_create_owned(&l),
            rejected_requests: self.http_unauthorized.get_or_create_owned(&l),
            tls_failures: self.http_tls_failures.get_or_create_owned(&l),
            refused_connections: self.http_refused_connections.get_or_create_owned(&l),
        }
    }

    /// Requests made so far to `operation`, every outcome (for the stop line's account; it
    /// makes the series of outcomes that never happened, at zero).
    pub fn api_requests_to(&self, operation: &'static str) -> u64 {
        super::lambda::OUTCOMES
            .iter()
            .map(|&outcome| {
                self.api_requests
                    .get_or_create(&RequestLabels { operation, outcome })
                    .get()
            })
            .sum()
    }
}
