//! Prometheus metrics from the same fold transitions as the spans (docs/METRICS.md).
//!
//! [`Metrics`] owns a registry of every `durable_*` family; [`ExecutionObserver`] turns one
//! execution's transitions into counts and observations (each event counts once: the daemon
//! feeds only events it has not exported before). Histograms keep the latest trace id per bucket
//! as an exemplar, written in the OpenMetrics exposition ([`encode_openmetrics`]); the classic
//! text format comes from the `prometheus` crate ([`encode_text`]). State gauges (running
//! executions, pending callbacks) are set from the tracked set by the daemon.

mod openmetrics;

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{
    Encoder as _, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub use openmetrics::encode_openmetrics;

use crate::state::{
    AttemptOutcome, Details, ExecutionStatus, Observer, Operation, OperationStatus, Transition,
};

/// The per-execution operation limit of the API.
pub const OPERATIONS_LIMIT: u32 = 3000;

const LONG: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
    86400.0, 172800.0, 604800.0, 2592000.0, 7776000.0, 31536000.0,
];
const OPERATION: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 14400.0, 86400.0, 604800.0, 2592000.0,
];
const STEP: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0,
];
const BACKOFF: &[f64] = &[
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0,
];
const LATENESS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];
const INVOCATION: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
];
const COUNT: &[f64] = &[
    1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
];
const OPERATIONS: &[f64] = &[
    10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 2750.0, 3000.0,
];

/// Whether and how operation names become a label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NameLabel {
    /// No `name` label (the default: names can be unbounded).
    #[default]
    Off,
    /// Only these names; others are `other`.
    Allowlist(Vec<String>),
    /// The first N distinct names seen; later ones are `other`.
    TopN(usize),
}

/// One histogram observation's exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub trace_id: String,
    pub value: f64,
    /// Seconds since the epoch.
    pub timestamp: f64,
}

pub struct Metrics {
    registry: Registry,
    pub executions_started: IntCounterVec,
    pub executions_finished: IntCounterVec,
    pub executions_running: IntGaugeVec,
    pub execution_duration: HistogramVec,
    pub operations_finished: IntCounterVec,
    pub operation_duration: HistogramVec,
    pub step_attempts: IntCounterVec,
    pub step_retries: IntCounterVec,
    pub step_attempt_duration: HistogramVec,
    pub step_retry_backoff: HistogramVec,
    pub wait_duration: HistogramVec,
    pub wait_lateness: HistogramVec,
    pub callback_duration: HistogramVec,
    pub callbacks_pending: IntGaugeVec,
    pub callback_oldest_pending_age: GaugeVec,
    pub invocations: IntCounterVec,
    pub invocation_duration: HistogramVec,
    pub execution_invocations: HistogramVec,
    pub suspension_duration: HistogramVec,
    pub chained_invokes: IntCounterVec,
    pub execution_operations: HistogramVec,
    pub execution_operations_max: IntGaugeVec,
    names: NameLabel,
    seen_names: Mutex<Vec<String>>,
    /// Latest exemplar per series and bucket: key "family{labels}", index of the bucket.
    exemplars: Mutex<HashMap<String, Vec<Option<Exemplar>>>>,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

const FQ: &[&str] = &["function", "qualifier"];

impl Metrics {
    pub fn new(names: NameLabel) -> Self {
        let r = Registry::new();
        let with_name = !matches!(names, NameLabel::Off);
        let op_labels: &[&str] = if with_name {
            &["function", "qualifier", "type", "subtype", "name", "status"]
        } else {
            &["function", "qualifier", "type", "subtype", "status"]
        };
        let op_dur_labels: &[&str] = if with_name {
            &["function", "qualifier", "type", "subtype", "name"]
        } else {
            &["function", "qualifier", "type", "subtype"]
        };
        let callback_age = GaugeVec::new(
            Opts::new(
                "durable_callback_oldest_pending_age_seconds",
                "Age of the oldest callback still pending, per function.",
            ),
            FQ,
        )
        .expect("valid metric");
        r.register(Box::new(callback_age.clone()))
            .expect("unique metric");
        Metrics {
            executions_started: counter(
                &r,
                "durable_executions_started_total",
                "Durable executions started (ExecutionStarted seen).",
                FQ,
            ),
            executions_finished: counter(
                &r,
                "durable_executions_finished_total",
                "Durable executions ended, by terminal status.",
                &["function", "qualifier", "status"],
            ),
            executions_running: gauge(
                &r,
                "durable_executions_running",
                "Tracked executions not ended yet.",
                FQ,
            ),
            execution_duration: histogram(
                &r,
                "durable_execution_duration_seconds",
                "Execution duration, ExecutionStarted to its terminal event.",
                &["function", "qualifier", "status"],
                LONG,
            ),
            operations_finished: counter(
                &r,
                "durable_operations_finished_total",
                "Operations ended, by type, subtype and status.",
                op_labels,
            ),
            operation_duration: histogram(
                &r,
                "durable_operation_duration_seconds",
                "Operation duration, first event to finishing event.",
                op_dur_labels,
                OPERATION,
            ),
            step_attempts: counter(
                &r,
                "durable_step_attempts_total",
                "Step attempts ended, by outcome (wait_for_condition polls are SUCCEEDED attempts).",
                &["function", "qualifier", "outcome"],
            ),
            step_retries: counter(
                &r,
                "durable_step_retries_total",
                "Step attempts after the first (retries and wait_for_condition polls).",
                FQ,
            ),
            step_attempt_duration: histogram(
                &r,
                "durable_step_attempt_duration_seconds",
                "Step attempt duration.",
                FQ,
                STEP,
            ),
            step_retry_backoff: histogram(
                &r,
                "durable_step_retry_backoff_seconds",
                "Time between a step attempt's end and the next attempt's start.",
                FQ,
                BACKOFF,
            ),
            wait_duration: histogram(
                &r,
                "durable_wait_duration_seconds",
                "Actual duration of waits that succeeded.",
                FQ,
                LONG,
            ),
            wait_lateness: histogram(
                &r,
                "durable_wait_lateness_seconds",
                "How long after its ScheduledEndTimestamp a wait resumed.",
                FQ,
                LATENESS,
            ),
            callback_duration: histogram(
                &r,
                "durable_callback_duration_seconds",
                "Callback start to completion, by outcome.",
                &["function", "qualifier", "outcome"],
                LONG,
            ),
            callbacks_pending: gauge(
                &r,
                "durable_callbacks_pending",
                "Callbacks started and not completed, in tracked executions.",
                FQ,
            ),
            callback_oldest_pending_age: callback_age,
            invocations: counter(
                &r,
                "durable_invocations_total",
                "Lambda invocations (replays) of durable executions, by status.",
                &["function", "qualifier", "status"],
            ),
            invocation_duration: histogram(
                &r,
                "durable_invocation_duration_seconds",
                "Invocation duration (from InvocationCompletedDetails; estimated bounds are not observed).",
                &["function", "qualifier", "status"],
                INVOCATION,
            ),
            execution_invocations: histogram(
                &r,
                "durable_execution_invocations",
                "Invocations per ended execution.",
                FQ,
                COUNT,
            ),
            suspension_duration: histogram(
                &r,
                "durable_suspension_duration_seconds",
                "Time an execution spent suspended between invocations.",
                FQ,
                LONG,
            ),
            chained_invokes: counter(
                &r,
                "durable_chained_invokes_total",
                "Chained invokes ended, by outcome.",
                &["function", "qualifier", "outcome"],
            ),
            execution_operations: histogram(
                &r,
                "durable_execution_operations",
                "Operations per ended execution (the API allows 3,000).",
                FQ,
                OPERATIONS,
            ),
            execution_operations_max: gauge(
                &r,
                "durable_execution_operations_max",
                "Most operations in one running execution (the API allows 3,000).",
                FQ,
            ),
            registry: r,
            names,
            seen_names: Mutex::new(Vec::new()),
            exemplars: Mutex::new(HashMap::new()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The classic Prometheus text format (0.0.4).
    pub fn encode_text(&self) -> String {
        encode_text(&self.registry)
    }

    /// OpenMetrics text with exemplars.
    pub fn encode_openmetrics(&self) -> String {
        let ex = self.exemplars.lock().unwrap_or_else(|e| e.into_inner());
        encode_openmetrics(&self.registry.gather(), &ex)
    }

    /// The operation-name label value under the configured policy.
    fn name_label(&self, name: Option<&str>) -> Option<String> {
        let name = name.unwrap_or("");
        match &self.names {
            NameLabel::Off => None,
            NameLabel::Allowlist(allowed) => Some(if allowed.iter().any(|a| a == name) {
                name.to_owned()
            } else {
                "other".to_owned()
            }),
            NameLabel::TopN(n) => {
                let mut seen = self.seen_names.lock().unwrap_or_else(|e| e.into_inner());
                if seen.iter().any(|s| s == name) {
                    Some(name.to_owned())
                } else if seen.len() < *n {
                    seen.push(name.to_owned());
                    Some(name.to_owned())
                } else {
                    Some("other".to_owned())
                }
            }
        }
    }

    fn observe(
        &self,
        h: &HistogramVec,
        family: &str,
        labels: &[&str],
        value: f64,
        trace_id: Option<crate::trace::ids::TraceId>,
        at: f64,
    ) {
        if !value.is_finite() {
            return;
        }
        h.with_label_values(labels).observe(value);
        let Some(trace_id) = trace_id else {
            return;
        };
        let Some(buckets) = bucket_bounds(family) else {
            return;
        };
        let idx = buckets
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(buckets.len());
        let key = series_key(family, labels);
        let mut ex = self.exemplars.lock().unwrap_or_else(|e| e.into_inner());
        let slots = ex
            .entry(key)
            .or_insert_with(|| vec![None; buckets.len() + 1]);
        slots[idx] = Some(Exemplar {
            trace_id: trace_id.to_hex(),
            value,
            timestamp: at,
        });
    }
}

/// The classic text format of any registry.
pub fn encode_text(registry: &Registry) -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

fn bucket_bounds(family: &str) -> Option<&'static [f64]> {
    Some(match family {
        "durable_execution_duration_seconds"
        | "durable_wait_duration_seconds"
        | "durable_callback_duration_seconds"
        | "durable_suspension_duration_seconds" => LONG,
        "durable_operation_duration_seconds" => OPERATION,
        "durable_step_attempt_duration_seconds" => STEP,
        "durable_step_retry_backoff_seconds" => BACKOFF,
        "durable_wait_lateness_seconds" => LATENESS,
        "durable_invocation_duration_seconds" => INVOCATION,
        "durable_execution_invocations" => COUNT,
        "durable_execution_operations" => OPERATIONS,
        _ => return None,
    })
}

/// `family{l1="v1",...}` in the label order the family declares (sorted by name, as gathered).
fn series_key(family: &str, values: &[&str]) -> String {
    let names = label_names(family);
    let mut pairs: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().copied()).collect();
    pairs.sort();
    openmetrics::key(family, pairs.iter().map(|(k, v)| (*k, *v)))
}

fn label_names(family: &str) -> &'static [&'static str] {
    match family {
        "durable_execution_duration_seconds" | "durable_invocation_duration_seconds" => {
            &["function", "qualifier", "status"]
        }
        "durable_callback_duration_seconds" => &["function", "qualifier", "outcome"],
        "durable_operation_duration_seconds" => {
            &["function", "qualifier", "type", "subtype", "name"]
        }
        _ => FQ,
    }
}

/// Turns one execution's transitions into metrics. Feed it only events not counted before.
pub struct ExecutionObserver<'m> {
    pub metrics: &'m Metrics,
    pub function: &'m str,
    pub qualifier: &'m str,
    /// The execution's trace id, for exemplars.
    pub trace_id: Option<crate::trace::ids::TraceId>,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl ExecutionObserver<'_> {
    fn op(&self, op: &Operation) {
        let m = self.metrics;
        let fq = [self.function, self.qualifier];
        let t = op.op_type().as_str();
        let st = op.sub_type.as_deref().unwrap_or("");
        let status = op.status.as_str();
        let name = m.name_label(op.name.as_deref());
        let end = op.end.unwrap_or(op.start);
        let dur = secs(end.millis() - op.start.millis());
        let at = secs(end.millis());
        match &name {
            Some(n) => {
                m.operations_finished
                    .with_label_values(&[self.function, self.qualifier, t, st, n, status])
                    .inc();
                m.observe(
                    &m.operation_duration,
                    "durable_operation_duration_seconds",
                    &[self.function, self.qualifier, t, st, n],
                    dur,
                    self.trace_id,
                    at,
                );
            }
            None => {
                m.operations_finished
                    .with_label_values(&[self.function, self.qualifier, t, st, status])
                    .inc();
                m.observe(
                    &m.operation_duration,
                    "durable_operation_duration_seconds",
                    &[self.function, self.qualifier, t, st],
                    dur,
                    self.trace_id,
                    at,
                );
            }
        }
        if op.unfinished {
            return;
        }
        match &op.details {
            Details::Wait { scheduled_end, .. } if op.status == OperationStatus::Succeeded => {
                m.observe(
                    &m.wait_duration,
                    "durable_wait_duration_seconds",
                    &fq,
                    dur,
                    self.trace_id,
                    at,
                );
                if let Some(se) = scheduled_end {
                    let late = secs(end.millis() - se.millis()).max(0.0);
                    m.observe(
                        &m.wait_lateness,
                        "durable_wait_lateness_seconds",
                        &fq,
                        late,
                        self.trace_id,
                        at,
                    );
                }
            }
            Details::Callback { .. } => {
                m.observe(
                    &m.callback_duration,
                    "durable_callback_duration_seconds",
                    &[self.function, self.qualifier, status],
                    dur,
                    self.trace_id,
                    at,
                );
            }
            Details::ChainedInvoke { .. } => {
                m.chained_invokes
                    .with_label_values(&[self.function, self.qualifier, status])
                    .inc();
            }
            _ => {}
        }
    }
}

impl Observer for ExecutionObserver<'_> {
    fn observe(&mut self, t: Transition<'_>) {
        let m = self.metrics;
        let fq = [self.function, self.qualifier];
        match t {
            Transition::ExecutionStarted(_) => {
                m.executions_started.with_label_values(&fq).inc();
            }
            Transition::OperationFinished(op) => self.op(op),
            Transition::AttemptEnded(_, a) => {
                m.step_attempts
                    .with_label_values(&[self.function, self.qualifier, a.outcome.as_str()])
                    .inc();
                if a.number > 1 {
                    m.step_retries.with_label_values(&fq).inc();
                }
                if a.outcome != AttemptOutcome::Interrupted {
                    let d = secs(a.end.millis() - a.start.millis());
                    m.observe(
                        &m.step_attempt_duration,
                        "durable_step_attempt_duration_seconds",
                        &fq,
                        d,
                        self.trace_id,
                        secs(a.end.millis()),
                    );
                }
            }
            Transition::BackoffEnded(_, b) => {
                let d = secs(b.end.millis() - b.start.millis());
                m.observe(
                    &m.step_retry_backoff,
                    "durable_step_retry_backoff_seconds",
                    &fq,
                    d,
                    self.trace_id,
                    secs(b.end.millis()),
                );
            }
            Transition::InvocationEnded(inv) => {
                let status = inv.status.as_str();
                m.invocations
                    .with_label_values(&[self.function, self.qualifier, status])
                    .inc();
                if inv.exact_bounds {
                    let d = secs(inv.end.millis() - inv.start.millis());
                    m.observe(
                        &m.invocation_duration,
                        "durable_invocation_duration_seconds",
                        &[self.function, self.qualifier, status],
                        d,
                        self.trace_id,
                        secs(inv.end.millis()),
                    );
                }
            }
            Transition::Suspended(s) => {
                let d = secs(s.end.millis() - s.start.millis());
                m.observe(
                    &m.suspension_duration,
                    "durable_suspension_duration_seconds",
                    &fq,
                    d,
                    self.trace_id,
                    secs(s.end.millis()),
                );
            }
            Transition::ExecutionFinished(info) => {
                let status = info.status.as_str();
                m.executions_finished
                    .with_label_values(&[self.function, self.qualifier, status])
                    .inc();
                if let (Some(s), Some(e)) = (info.start, info.end)
                    && info.status != ExecutionStatus::Running
                {
                    m.observe(
                        &m.execution_duration,
                        "durable_execution_duration_seconds",
                        &[self.function, self.qualifier, status],
                        secs(e.millis() - s.millis()),
                        self.trace_id,
                        secs(e.millis()),
                    );
                }
                let at = info.end.map_or(0.0, |e| secs(e.millis()));
                m.observe(
                    &m.execution_invocations,
                    "durable_execution_invocations",
                    &fq,
                    f64::from(info.invocations),
                    self.trace_id,
                    at,
                );
                m.observe(
                    &m.execution_operations,
                    "durable_execution_operations",
                    &fq,
                    f64::from(info.operations),
                    self.trace_id,
                    at,
                );
            }
            Transition::OperationStarted(_) | Transition::Anomaly(_) => {}
        }
    }
}

/// The `function` and `qualifier` labels of an execution: from its ARN, else from its
/// function's ARN; `unknown` / `$LATEST` when neither says.
pub fn function_labels(arn: &str, function_arn: Option<&str>) -> (String, String) {
    use crate::arn::FunctionParts;
    let parts = FunctionParts::from_execution_arn(arn)
        .or_else(|| function_arn.and_then(FunctionParts::from_execution_arn));
    match parts {
        Some(p) => (p.name, p.qualifier.unwrap_or_else(|| "$LATEST".to_owned())),
        None => ("unknown".to_owned(), "$LATEST".to_owned()),
    }
}
