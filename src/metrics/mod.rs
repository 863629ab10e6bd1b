//! Prometheus metrics from the same fold transitions as the spans (docs/METRICS.md), on
//! `prometheus-client`.
//!
//! [`Metrics`] owns the registry and every `durable_*` family; [`ExecutionObserver`] turns one
//! execution's transitions into counts and observations (each event counts once: the daemon
//! feeds only events it has not exported before). Histograms keep the latest trace id per bucket
//! as an exemplar, written in the OpenMetrics exposition ([`Metrics::encode_openmetrics`]); the
//! classic text format ([`Metrics::encode_text`]) leaves them out. State gauges (running
//! executions, pending callbacks) are set from the tracked set by the daemon. The exporter's own
//! `durable_exporter_*` families are registered in the same registry
//! ([`Metrics::registry_mut`]).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

use crate::state::{
    AttemptOutcome, Details, ExecutionStatus, Observer, Operation, OperationStatus, Transition,
};
use crate::trace::ids::TraceId;

pub mod recent;

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

/// An execution's `function` and `qualifier` labels (shared strings: cloned per observation
/// without copying).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Fq {
    pub function: Arc<str>,
    pub qualifier: Arc<str>,
}

impl Fq {
    /// The labels of an execution: see [`function_labels`].
    pub fn of(arn: &str, function_arn: Option<&str>) -> Self {
        let (f, q) = function_labels(arn, function_arn);
        Fq {
            function: f.into(),
            qualifier: q.into(),
        }
    }
}

/// `function`, `qualifier` and `status`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FqStatus {
    pub function: Arc<str>,
    pub qualifier: Arc<str>,
    pub status: &'static str,
}

/// `function`, `qualifier` and `outcome`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FqOutcome {
    pub function: Arc<str>,
    pub qualifier: Arc<str>,
    pub outcome: &'static str,
}

/// An operation's labels; `name` only under an operation-name policy, `status` only on the
/// counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct OpLabels {
    pub function: Arc<str>,
    pub qualifier: Arc<str>,
    pub op_type: &'static str,
    pub subtype: Arc<str>,
    pub name: Option<Arc<str>>,
    pub status: Option<&'static str>,
}

impl EncodeLabelSet for OpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("function", &*self.function).encode(encoder.encode_label())?;
        ("qualifier", &*self.qualifier).encode(encoder.encode_label())?;
        ("type", self.op_type).encode(encoder.encode_label())?;
        ("subtype", &*self.subtype).encode(encoder.encode_label())?;
        if let Some(n) = &self.name {
            ("name", &**n).encode(encoder.encode_label())?;
        }
        if let Some(s) = self.status {
            ("status", s).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A histogram observation's exemplar: the execution's trace id, made hex only when written.
#[derive(Debug, Clone, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    pub trace_id: TraceIdLabel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIdLabel(pub TraceId);

impl EncodeLabelValue for TraceIdLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        write!(encoder, "{}", self.0)
    }
}

/// A histogram whose buckets keep their latest exemplar.
pub type Hist = HistogramWithExemplars<TraceExemplar>;
type HistFamily<L> = Family<L, Hist, fn() -> Hist>;
type CounterFamily<L> = Family<L, Counter>;
type GaugeFamily<L> = Family<L, Gauge>;
/// A gauge of fractional values.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// Registers `metric` as `name`: prometheus-client adds `_total` to counters, `_seconds` to
/// families in seconds and a full stop to help texts itself, so names and help are written here
/// as they appear in the exposition.
pub fn register<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    let name = name.strip_suffix("_total").unwrap_or(name);
    let help = help.trim_end_matches('.');
    // OpenMetrics writes the unit of `*_seconds` families in a `# UNIT` line.
    match name.strip_suffix("_seconds") {
        Some(base) => r.register_with_unit(
            base,
            help,
            prometheus_client::registry::Unit::Seconds,
            metric.clone(),
        ),
        None => r.register(name, help, metric.clone()),
    }
    metric
}

macro_rules! buckets {
    ($($f:ident = $b:ident),* $(,)?) => {
        $(fn $f() -> Hist {
            Hist::new($b.iter().copied())
        })*
    };
}

buckets!(
    long = LONG,
    operation = OPERATION,
    step = STEP,
    backoff = BACKOFF,
    lateness = LATENESS,
    invocation = INVOCATION,
    count = COUNT,
    operations = OPERATIONS,
);

fn hist<L: Clone + std::hash::Hash + Eq>(b: fn() -> Hist) -> HistFamily<L> {
    Family::new_with_constructor(b)
}

pub struct Metrics {
    registry: Registry,
    pub executions_started: CounterFamily<Fq>,
    pub executions_finished: CounterFamily<FqStatus>,
    pub executions_running: GaugeFamily<Fq>,
    pub execution_duration: HistFamily<FqStatus>,
    pub operations_finished: CounterFamily<OpLabels>,
    pub operation_duration: HistFamily<OpLabels>,
    pub step_attempts: CounterFamily<FqOutcome>,
    pub step_retries: CounterFamily<Fq>,
    pub step_attempt_duration: HistFamily<Fq>,
    pub step_retry_backoff: HistFamily<Fq>,
    pub wait_duration: HistFamily<Fq>,
    pub wait_lateness: HistFamily<Fq>,
    pub callback_duration: HistFamily<FqOutcome>,
    pub callbacks_pending: GaugeFamily<Fq>,
    pub callback_oldest_pending_age: Family<Fq, FloatGauge>,
    pub invocations: CounterFamily<FqStatus>,
    pub invocation_duration: HistFamily<FqStatus>,
    pub execution_invocations: HistFamily<Fq>,
    pub suspension_duration: HistFamily<Fq>,
    pub chained_invokes: CounterFamily<FqOutcome>,
    pub execution_operations: HistFamily<Fq>,
    pub execution_operations_max: GaugeFamily<Fq>,
    /// The same finished executions, failed operations and retries as records, for the
    /// execution browser's aggregates over a window.
    pub recent: recent::Recent,
    names: NameLabel,
    seen_names: Mutex<Vec<Arc<str>>>,
}

impl Metrics {
    pub fn new(names: NameLabel) -> Self {
        let mut r = Registry::default();
        let r = &mut r;
        let mut m = Metrics {
            executions_started: register(
                r,
                "durable_executions_started_total",
                "Durable executions started (ExecutionStarted seen).",
                Family::default(),
            ),
            executions_finished: register(
                r,
                "durable_executions_finished_total",
                "Durable executions ended, by terminal status.",
                Family::default(),
            ),
            executions_running: register(
                r,
                "durable_executions_running",
                "Tracked executions not ended yet.",
                Family::default(),
            ),
            execution_duration: register(
                r,
                "durable_execution_duration_seconds",
                "Execution duration, ExecutionStarted to its terminal event.",
                hist(long),
            ),
            operations_finished: register(
                r,
                "durable_operations_finished_total",
                "Operations ended, by type, subtype and status.",
                Family::default(),
            ),
            operation_duration: register(
                r,
                "durable_operation_duration_seconds",
                "Operation duration, first event to finishing event.",
                hist(operation),
            ),
            step_attempts: register(
                r,
                "durable_step_attempts_total",
                "Step attempts ended, by outcome (wait_for_condition polls are SUCCEEDED attempts).",
                Family::default(),
            ),
            step_retries: register(
                r,
                "durable_step_retries_total",
                "Step attempts after the first (retries and wait_for_condition polls).",
                Family::default(),
            ),
            step_attempt_duration: register(
                r,
                "durable_step_attempt_duration_seconds",
                "Step attempt duration.",
                hist(step),
            ),
            step_retry_backoff: register(
                r,
                "durable_step_retry_backoff_seconds",
                "Time between a step attempt's end and the next attempt's start.",
                hist(backoff),
            ),
            wait_duration: register(
                r,
                "durable_wait_duration_seconds",
                "Actual duration of waits that succeeded.",
                hist(long),
            ),
            wait_lateness: register(
                r,
                "durable_wait_lateness_seconds",
                "How long after its ScheduledEndTimestamp a wait resumed.",
                hist(lateness),
            ),
            callback_duration: register(
                r,
                "durable_callback_duration_seconds",
                "Callback start to completion, by outcome.",
                hist(long),
            ),
            callbacks_pending: register(
                r,
                "durable_callbacks_pending",
                "Callbacks started and not completed, in tracked executions.",
                Family::default(),
            ),
            callback_oldest_pending_age: register(
                r,
                "durable_callback_oldest_pending_age_seconds",
                "Age of the oldest callback still pending, per function.",
                Family::default(),
            ),
            invocations: register(
                r,
                "durable_invocations_total",
                "Lambda invocations (replays) of durable executions, by status.",
                Family::default(),
            ),
            invocation_duration: register(
                r,
                "durable_invocation_duration_seconds",
                "Invocation duration (from InvocationCompletedDetails; estimated bounds are not observed).",
                hist(invocation),
            ),
            execution_invocations: register(
                r,
                "durable_execution_invocations",
                "Invocations per ended execution.",
                hist(count),
            ),
            suspension_duration: register(
                r,
                "durable_suspension_duration_seconds",
                "Time an execution spent suspended between invocations.",
                hist(long),
            ),
            chained_invokes: register(
                r,
                "durable_chained_invokes_total",
                "Chained invokes ended, by outcome.",
                Family::default(),
            ),
            execution_operations: register(
                r,
                "durable_execution_operations",
                "Operations per ended execution (the API allows 3,000).",
                hist(operations),
            ),
            execution_operations_max: register(
                r,
                "durable_execution_operations_max",
                "Most operations in one running execution (the API allows 3,000).",
                Family::default(),
            ),
            recent: recent::Recent::default(),
            registry: Registry::default(),
            names,
            seen_names: Mutex::new(Vec::new()),
        };
        m.registry = std::mem::take(r);
        m
    }

    /// Where the exporter's own families are registered, before the registry is shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The classic Prometheus text format (0.0.4), without exemplars.
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// OpenMetrics text with exemplars, ending with `# EOF`.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The operation-name label value under the configured policy.
    fn name_label(&self, name: Option<&str>) -> Option<Arc<str>> {
        let name = name.unwrap_or("");
        match &self.names {
            NameLabel::Off => None,
            NameLabel::Allowlist(allowed) => Some(if allowed.iter().any(|a| a == name) {
                name.into()
            } else {
                "other".into()
            }),
            NameLabel::TopN(n) => {
                let mut seen = self.seen_names.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = seen.iter().find(|s| &***s == name) {
                    Some(s.clone())
                } else if seen.len() < *n {
                    let s: Arc<str> = name.into();
                    seen.push(s.clone());
                    Some(s)
                } else {
                    Some("other".into())
                }
            }
        }
    }
}

/// Observes `value` (seconds or a count) with the trace id as its bucket's exemplar, stamped
/// with the history time `at_ms`.
fn observe(h: &Hist, value: f64, trace_id: Option<TraceId>, at_ms: i64) {
    if !value.is_finite() {
        return;
    }
    let exemplar = trace_id.map(|t| TraceExemplar {
        trace_id: TraceIdLabel(t),
    });
    let at = u64::try_from(at_ms)
        .ok()
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    h.observe(
        value,
        exemplar,
        at.filter(|_| trace_id.is_some()).or(None::<SystemTime>),
    );
}

/// Turns one execution's transitions into metrics. Feed it only events not counted before.
pub struct ExecutionObserver<'m> {
    pub metrics: &'m Metrics,
    pub labels: &'m Fq,
    /// The execution's trace id, for exemplars.
    pub trace_id: Option<TraceId>,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl ExecutionObserver<'_> {
    fn with_status(&self, status: &'static str) -> FqStatus {
        FqStatus {
            function: self.labels.function.clone(),
            qualifier: self.labels.qualifier.clone(),
            status,
        }
    }

    fn with_outcome(&self, outcome: &'static str) -> FqOutcome {
        FqOutcome {
            function: self.labels.function.clone(),
            qualifier: self.labels.qualifier.clone(),
            outcome,
        }
    }

    fn op(&self, op: &Operation) {
        let m = self.metrics;
        let fq = self.labels;
        let status = op.status.as_str();
        let end = op.end.unwrap_or(op.start);
        let dur = secs(end.millis() - op.start.millis());
        let at = end.millis();
        let mut labels = OpLabels {
            function: fq.function.clone(),
            qualifier: fq.qualifier.clone(),
            op_type: op.op_type().as_str(),
            subtype: op.sub_type.as_deref().unwrap_or("").into(),
            name: m.name_label(op.name.as_deref()),
            status: Some(status),
        };
        m.operations_finished.get_or_create(&labels).inc();
        if op.status.is_terminal() && op.status != OperationStatus::Succeeded {
            m.recent
                .operation_failed(&fq.function, labels.op_type, op.display_name(), status, at);
        }
        labels.status = None;
        observe(
            &m.operation_duration.get_or_create(&labels),
            dur,
            self.trace_id,
            at,
        );
        if op.unfinished {
            return;
        }
        match &op.details {
            Details::Wait { scheduled_end, .. } if op.status == OperationStatus::Succeeded => {
                observe(&m.wait_duration.get_or_create(fq), dur, self.trace_id, at);
                if let Some(se) = scheduled_end {
                    let late = secs(end.millis() - se.millis()).max(0.0);
                    observe(&m.wait_lateness.get_or_create(fq), late, self.trace_id, at);
                }
            }
            Details::Callback { .. } => {
                observe(
                    &m.callback_duration
                        .get_or_create(&self.with_outcome(status)),
                    dur,
                    self.trace_id,
                    at,
                );
            }
            Details::ChainedInvoke { .. } => {
                m.chained_invokes
                    .get_or_create(&self.with_outcome(status))
                    .inc();
            }
            _ => {}
        }
    }
}

impl Observer for ExecutionObserver<'_> {
    fn observe(&mut self, t: Transition<'_>) {
        let m = self.metrics;
        let fq = self.labels;
        match t {
            Transition::ExecutionStarted(_) => {
                m.executions_started.get_or_create(fq).inc();
            }
            Transition::OperationFinished(op) => self.op(op),
            Transition::AttemptEnded(op, a) => {
                m.step_attempts
                    .get_or_create(&self.with_outcome(a.outcome.as_str()))
                    .inc();
                if a.number > 1 {
                    m.step_retries.get_or_create(fq).inc();
                    m.recent
                        .step_retried(&fq.function, op.display_name(), a.start.millis());
                }
                if a.outcome != AttemptOutcome::Interrupted {
                    let d = secs(a.end.millis() - a.start.millis());
                    observe(
                        &m.step_attempt_duration.get_or_create(fq),
                        d,
                        self.trace_id,
                        a.end.millis(),
                    );
                }
            }
            Transition::BackoffEnded(_, b) => {
                let d = secs(b.end.millis() - b.start.millis());
                observe(
                    &m.step_retry_backoff.get_or_create(fq),
                    d,
                    self.trace_id,
                    b.end.millis(),
                );
            }
            Transition::InvocationEnded(inv) => {
                let labels = self.with_status(inv.status.as_str());
                m.invocations.get_or_create(&labels).inc();
                if inv.exact_bounds {
                    let d = secs(inv.end.millis() - inv.start.millis());
                    observe(
                        &m.invocation_duration.get_or_create(&labels),
                        d,
                        self.trace_id,
                        inv.end.millis(),
                    );
                }
            }
            Transition::Suspended(s) => {
                let d = secs(s.end.millis() - s.start.millis());
                observe(
                    &m.suspension_duration.get_or_create(fq),
                    d,
                    self.trace_id,
                    s.end.millis(),
                );
            }
            Transition::ExecutionFinished(info) => {
                let labels = self.with_status(info.status.as_str());
                m.executions_finished.get_or_create(&labels).inc();
                let mut duration = None;
                if let (Some(s), Some(e)) = (info.start, info.end)
                    && info.status != ExecutionStatus::Running
                {
                    let d = secs(e.millis() - s.millis());
                    duration = Some(d);
                    observe(
                        &m.execution_duration.get_or_create(&labels),
                        d,
                        self.trace_id,
                        e.millis(),
                    );
                }
                let at = info.end.map_or(0, |e| e.millis());
                m.recent
                    .execution_finished(&fq.function, labels.status, duration, at);
                observe(
                    &m.execution_invocations.get_or_create(fq),
                    f64::from(info.invocations),
                    self.trace_id,
                    at,
                );
                observe(
                    &m.execution_operations.get_or_create(fq),
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
