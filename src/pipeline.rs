//! One execution through the core: the fold ([`Execution`]), its spans ([`TraceBuilder`]), its
//! metrics ([`ExecutionObserver`]) and what the shell must act on (anomalies to log and count,
//! chained-invoke children to follow), wired together in one place. `convert`, the daemon and
//! the tests drive it the same way: [`Pipeline::apply`] per event, [`Pipeline::take_spans`]
//! when the spans should go.

use std::sync::Arc;

use crate::history::{Anomaly, Event};
use crate::metrics::{ExecutionObserver, Fq, Metrics};
use crate::state::{Details, Execution, FnObserver, FoldOptions, Transition};
use crate::time::Timestamp;
use crate::trace::{Span, TraceBuilder, TraceOptions};

/// What applying events found that the shell acts on. Reused across events (cleared by the
/// caller) so the hot path allocates nothing when there is nothing to say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Found {
    pub anomalies: Vec<Anomaly>,
    /// Durable executions that chained invokes started (their ARNs).
    pub children: Vec<String>,
}

impl Found {
    pub fn clear(&mut self) {
        self.anomalies.clear();
        self.children.clear();
    }
}

/// What an execution list shows beyond the fold's [`ExecutionInfo`](crate::state::ExecutionInfo):
/// the retries so far (counted as `durable_step_retries_total` counts them) and the latest
/// failure of an operation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub retries: u32,
    pub last_failure: Option<Failure>,
}

/// An operation that failed (or an attempt of a step), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The operation's name, else its id.
    pub operation: String,
    /// `Type: message`.
    pub error: String,
}

impl Summary {
    fn observe(&mut self, t: Transition<'_>) {
        match t {
            Transition::AttemptEnded(op, a) => {
                if a.number > 1 {
                    self.retries += 1;
                }
                if let Some(e) = &a.error {
                    self.fail(op, e);
                }
            }
            Transition::OperationFinished(op) => {
                if let Some(e) = &op.error {
                    self.fail(op, e);
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, op: &crate::state::Operation, e: &crate::history::ErrorInfo) {
        self.last_failure = Some(Failure {
            operation: op.display_name().to_owned(),
            error: e.summary(),
        });
    }
}

/// Where an execution's metrics go: the families and the execution's `function` and
/// `qualifier` labels.
#[derive(Clone, Copy)]
pub struct MetricsTarget<'a> {
    pub metrics: &'a Metrics,
    pub labels: &'a Fq,
}

/// One execution's fold and span builder.
#[derive(Debug)]
pub struct Pipeline {
    fold: Execution,
    tracer: TraceBuilder,
    summary: Summary,
}

impl Pipeline {
    pub fn new(arn: impl Into<Arc<str>>, fold: FoldOptions, trace: TraceOptions) -> Self {
        let arn = arn.into();
        Pipeline {
            fold: Execution::new(arn.clone(), fold),
            tracer: TraceBuilder::new(arn, trace),
            summary: Summary::default(),
        }
    }

    /// Resumes from a fold restored from a checkpoint.
    pub fn resume(fold: Execution, trace: TraceOptions) -> Self {
        let tracer = TraceBuilder::new(Arc::<str>::from(fold.arn()), trace);
        Pipeline {
            fold,
            tracer,
            summary: Summary::default(),
        }
    }

    /// The execution's start as GetDurableExecution gave it (for the trace id before the
    /// history's ExecutionStarted is read again).
    pub fn set_execution_start(&mut self, start: Timestamp) {
        self.tracer.set_execution_start(start);
    }

    /// Folds one event: its spans are built, its metrics counted (with `metrics`), and what the
    /// shell acts on is added to `found`.
    pub fn apply(&mut self, e: &Event, metrics: Option<MetricsTarget<'_>>, found: &mut Found) {
        let trace_id = self.tracer.trace_id();
        let summary = &mut self.summary;
        let mut side = FnObserver(|t: Transition<'_>| {
            summary.observe(t);
            collect(t, found)
        });
        match metrics {
            Some(m) => {
                let mut measure = ExecutionObserver {
                    metrics: m.metrics,
                    labels: m.labels,
                    trace_id,
                };
                let mut all = (&mut self.tracer, (&mut side, &mut measure));
                self.fold.apply(e, &mut all);
            }
            None => {
                let mut all = (&mut self.tracer, &mut side);
                self.fold.apply(e, &mut all);
            }
        }
    }

    /// Folds an event whose spans and metrics were produced before (a restart replaying what
    /// was exported): only the state is rebuilt and the children found again.
    pub fn replay(&mut self, e: &Event, found: &mut Found) {
        let summary = &mut self.summary;
        self.fold.apply(
            e,
            &mut FnObserver(|t: Transition<'_>| {
                summary.observe(t);
                if let Some(child) = child_of(t) {
                    found.children.push(child.to_owned());
                }
            }),
        );
    }

    /// Every event in order.
    pub fn apply_all(&mut self, events: &[Event], metrics: Option<MetricsTarget<'_>>) -> Found {
        let mut found = Found::default();
        for e in events {
            self.apply(e, metrics, &mut found);
        }
        found
    }

    pub fn execution(&self) -> &Execution {
        &self.fold
    }

    pub fn into_execution(self) -> Execution {
        self.fold
    }

    pub fn spans(&self) -> &[Span] {
        self.tracer.spans()
    }

    pub fn take_spans(&mut self) -> Vec<Span> {
        self.tracer.take_spans()
    }

    /// Retries and the latest failure, over every event folded (replayed ones too).
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn tracer(&self) -> &TraceBuilder {
        &self.tracer
    }
}

fn collect(t: Transition<'_>, found: &mut Found) {
    match t {
        Transition::Anomaly(a) => found.anomalies.push(a.clone()),
        other => {
            if let Some(child) = child_of(other) {
                found.children.push(child.to_owned());
            }
        }
    }
}

/// The child execution a ChainedInvokeStarted names.
fn child_of(t: Transition<'_>) -> Option<&str> {
    match t {
        Transition::OperationStarted(op) => match &op.details {
            Details::ChainedInvoke {
                durable_execution_arn: Some(child),
                ..
            } => Some(child),
            _ => None,
        },
        _ => None,
    }
}
