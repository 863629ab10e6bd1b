//! The exporter's own health as `durable_exporter_*` metrics, refreshed from its counters at
//! every scrape, and the state gauges of the tracked executions.

use std::sync::atomic::Ordering;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::Counters;

pub struct ExporterMetrics {
    api_requests: IntCounterVec,
    api_throttles: IntCounterVec,
    api_rate: Gauge,
    pub tracked: IntGaugeVec,
    pub read_lag: Gauge,
    events: IntCounter,
    unknown_events: IntCounter,
    anomalies: IntCounter,
    marker_fallbacks: IntCounter,
    polls: IntCounterVec,
    pages: IntCounter,
    spans_exported: IntCounter,
    spans_rejected: IntCounter,
    export_failures: IntCounter,
    export_batches: IntCounter,
    buffered: IntGauge,
    checkpoint_writes: IntCounter,
    checkpoint_failures: IntCounter,
    checkpoints_writable: IntGauge,
    tracking_rejected: IntCounterVec,
    pub reload_successful: IntGauge,
    pub reload_success_time: Gauge,
    http_connections: IntGaugeVec,
    http_rejected: IntCounterVec,
    http_tls_failures: IntCounterVec,
    http_refused_connections: IntCounterVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    reg(r, IntCounter::new(name, help).expect("valid metric"))
}

/// Moves a counter up to a total kept elsewhere (counters only go up).
fn catch_up(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

impl ExporterMetrics {
    /// Registers the families (and the API latency histogram the API client fills).
    pub fn new(r: &Registry, counters: &Counters) -> Self {
        let _ = r.register(Box::new(counters.api.latency.clone()));
        let _ = r.register(Box::new(counters.export.latency.clone()));
        let info = IntGaugeVec::new(
            Opts::new(
                "durable_exporter_build_info",
                "Always 1; the labels say which build runs.",
            ),
            &["version"],
        )
        .expect("valid metric");
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        reg(r, info);
        ExporterMetrics {
            api_requests: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "durable_exporter_api_requests_total",
                        "Durable-execution API requests, by operation as the API names it and outcome (ok, throttled, server_error, transport_error, not_found, invalid_parameter, error).",
                    ),
                    &["operation", "outcome"],
                )
                .expect("valid metric"),
            ),
            api_throttles: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "durable_exporter_api_throttles_total",
                        "TooManyRequestsException answers, by operation.",
                    ),
                    &["operation"],
                )
                .expect("valid metric"),
            ),
            api_rate: reg(
                r,
                Gauge::new(
                    "durable_exporter_api_rate_limit_requests_per_second",
                    "The request rate allowed now (lowered by throttling, up to aws.max_requests_per_second).",
                )
                .expect("valid metric"),
            ),
            tracked: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "durable_exporter_tracked_executions",
                        "Tracked executions, by state (describing, running, finished).",
                    ),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            read_lag: reg(
                r,
                Gauge::new(
                    "durable_exporter_read_lag_seconds",
                    "The longest time since a running execution's history was last read.",
                )
                .expect("valid metric"),
            ),
            events: counter(r, "durable_exporter_events_processed_total", "History events folded (each once)."),
            unknown_events: counter(r, "durable_exporter_unknown_events_total", "Events of an EventType this version does not know (skipped)."),
            anomalies: counter(r, "durable_exporter_history_anomalies_total", "Inconsistencies found in histories (drawn as well as possible)."),
            marker_fallbacks: counter(r, "durable_exporter_marker_fallbacks_total", "Reads from the start after a marker was refused or expired."),
            polls: reg(
                r,
                IntCounterVec::new(
                    Opts::new("durable_exporter_polls_total", "History polls, by result (new_events, idle)."),
                    &["result"],
                )
                .expect("valid metric"),
            ),
            pages: counter(r, "durable_exporter_history_pages_with_new_events_total", "History pages that brought new events."),
            spans_exported: counter(r, "durable_exporter_spans_exported_total", "Spans the OTLP collector accepted."),
            spans_rejected: counter(r, "durable_exporter_spans_rejected_total", "Spans the collector answered as rejected (OTLP partial_success); not retried."),
            export_failures: counter(r, "durable_exporter_span_export_failures_total", "Spans in OTLP export attempts that failed (every attempt counts; failed spans are retried, never dropped)."),
            export_batches: counter(r, "durable_exporter_export_batches_total", "OTLP export requests the collector accepted."),
            buffered: reg(
                r,
                IntGauge::new(
                    "durable_exporter_buffered_spans",
                    "Spans waiting for the collector's acknowledgement (polling pauses at otlp.max_buffered_spans).",
                )
                .expect("valid metric"),
            ),
            checkpoint_writes: counter(r, "durable_exporter_checkpoint_writes_total", "Checkpoint files written."),
            checkpoint_failures: counter(r, "durable_exporter_checkpoint_failures_total", "Checkpoint writes that failed and unreadable checkpoints moved aside."),
            checkpoints_writable: reg(
                r,
                IntGauge::new(
                    "durable_exporter_checkpoints_writable",
                    "1 while checkpoints can be written; 0 while they cannot (exporting pauses until they can).",
                )
                .expect("valid metric"),
            ),
            tracking_rejected: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "durable_exporter_tracking_rejected_total",
                        "Executions not tracked because track.max_executions were tracked already, by where they came from (api, discovered, chained_invoke, config).",
                    ),
                    &["source"],
                )
                .expect("valid metric"),
            ),
            reload_successful: reg(
                r,
                IntGauge::new(
                    "durable_exporter_config_last_reload_successful",
                    "1 when the last configuration reload (SIGHUP) succeeded, 0 when it failed and the running configuration stayed.",
                )
                .expect("valid metric"),
            ),
            reload_success_time: reg(
                r,
                Gauge::new(
                    "durable_exporter_config_last_reload_success_timestamp_seconds",
                    "When the configuration was last loaded successfully (at start or by SIGHUP), in Unix seconds.",
                )
                .expect("valid metric"),
            ),
            http_connections: reg(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "durable_exporter_http_connections",
                        "Open connections, by listener (http: metrics and health; api: the run-time API).",
                    ),
                    &["listener"],
                )
                .expect("valid metric"),
            ),
            http_rejected: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "durable_exporter_http_unauthorized_requests_total",
                        "Requests answered 401 (no or wrong credentials), by listener.",
                    ),
                    &["listener"],
                )
                .expect("valid metric"),
            ),
            http_tls_failures: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "durable_exporter_http_tls_handshake_failures_total",
                        "TLS handshakes that failed or timed out, by listener.",
                    ),
                    &["listener"],
                )
                .expect("valid metric"),
            ),
            http_refused_connections: reg(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "durable_exporter_http_refused_connections_total",
                        "Connections closed as soon as accepted because the listener had its most open connections, by listener.",
                    ),
                    &["listener"],
                )
                .expect("valid metric"),
            ),
        }
    }

    /// Brings every counter up to date before a scrape.
    pub fn refresh(&self, c: &Counters, rate: f64) {
        for ((op, outcome), n) in c.api.snapshot() {
            catch_up(&self.api_requests.with_label_values(&[op, outcome]), n);
            if outcome == super::api::ErrorKind::Throttled.as_str() {
                catch_up(&self.api_throttles.with_label_values(&[op]), n);
            }
        }
        self.api_rate.set(rate);
        let co = &c.coordinator;
        catch_up(&self.events, co.events_processed.load(Ordering::Relaxed));
        catch_up(
            &self.unknown_events,
            co.unknown_events.load(Ordering::Relaxed),
        );
        catch_up(&self.anomalies, co.anomalies.load(Ordering::Relaxed));
        catch_up(
            &self.marker_fallbacks,
            co.marker_fallbacks.load(Ordering::Relaxed),
        );
        let polls = co.polls.load(Ordering::Relaxed);
        let with_new = co.polls_with_new_events.load(Ordering::Relaxed);
        catch_up(&self.polls.with_label_values(&["new_events"]), with_new);
        catch_up(
            &self.polls.with_label_values(&["idle"]),
            polls.saturating_sub(with_new),
        );
        catch_up(
            &self.pages,
            co.pages_with_new_events.load(Ordering::Relaxed),
        );
        catch_up(
            &self.checkpoint_writes,
            co.checkpoint_writes.load(Ordering::Relaxed),
        );
        catch_up(
            &self.checkpoint_failures,
            co.checkpoint_failures.load(Ordering::Relaxed),
        );
        self.buffered
            .set(co.buffered_spans.load(Ordering::Relaxed) as i64);
        let writable = co
            .checkpoint_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none();
        self.checkpoints_writable.set(i64::from(writable));
        for (source, n) in super::coordinator::Source::ALL
            .iter()
            .zip(&co.tracking_rejected)
        {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                catch_up(
                    &self.tracking_rejected.with_label_values(&[source.as_str()]),
                    n,
                );
            }
        }
        for (name, l) in [("http", &c.http_listener), ("api", &c.api_listener)] {
            self.http_connections
                .with_label_values(&[name])
                .set(l.open_connections.load(Ordering::Relaxed));
            catch_up(
                &self.http_rejected.with_label_values(&[name]),
                l.rejected_requests.load(Ordering::Relaxed),
            );
            catch_up(
                &self.http_tls_failures.with_label_values(&[name]),
                l.tls_failures.load(Ordering::Relaxed),
            );
            catch_up(
                &self.http_refused_connections.with_label_values(&[name]),
                l.refused_connections.load(Ordering::Relaxed),
            );
        }
        let ex = &c.export;
        catch_up(
            &self.spans_exported,
            ex.spans_exported.load(Ordering::Relaxed),
        );
        catch_up(
            &self.spans_rejected,
            ex.spans_rejected.load(Ordering::Relaxed),
        );
        catch_up(
            &self.export_failures,
            ex.export_failures.load(Ordering::Relaxed),
        );
        catch_up(&self.export_batches, ex.batches.load(Ordering::Relaxed));
    }
}
