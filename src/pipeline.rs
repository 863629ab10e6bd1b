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
    /// Boxed: most executions have none, and a finished one keeps its summary.
    pub last_failure: Option<Box<Failure>>,
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
        self.last_failure = Some(Box::new(Failure {
            operation: op.display_name().to_owned(),
            error: e.summary(),
        }));
    }
}

/// Where an execution's metrics go: the families and the execution's `function` and
/// `qualifier` labels.
#[derive(Clone, Copy)]
pub struct MetricsTarget<'a> {
    pub metrics: &'a Metrics,
    pub labels: &'a Fq,
}

/// Runs `$f(fold, observers)` with every observer of a live fold: the trace builder, the
/// summary and what the shell acts on, and the metrics when there is a target (a macro, not a
/// closure: the observer's type differs between the two cases and the hot path stays static).
macro_rules! observed {
    ($p:ident, $metrics:ident, $found:ident, |$fold:ident, $all:ident| $f:expr) => {{
        let trace_id = $p.tracer.trace_id();
        let summary = &mut $p.summary;
        let mut side = FnObserver(|t: Transition<'_>| {
            summary.observe(t);
            collect(t, $found)
        });
        let $fold = &mut $p.fold;
        match $metrics {
            Some(m) => {
                let mut measure = ExecutionObserver {
                    metrics: m.metrics,
                    labels: m.labels,
                    trace_id,
                };
                let $all = &mut (&mut $p.tracer, (&mut side, &mut measure));
                $f
            }
            None => {
                let $all = &mut (&mut $p.tracer, &mut side);
                $f
            }
        }
    }};
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

    /// Resumes from a fold restored from a checkpoint, with the summary counted so far.
    pub fn resume(fold: Execution, trace: TraceOptions, summary: Summary) -> Self {
        let tracer = TraceBuilder::new(Arc::<str>::from(fold.arn()), trace);
        Pipeline {
            fold,
            tracer,
            summary,
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
        observed!(self, metrics, found, |fold, all| fold.apply(e, all));
    }

    /// Ends the pending invocation as not having ended the execution (see
    /// [`Execution::settle_invocation`]): its span is built and its metrics counted like an
    /// event's. Returns its index; None when no invocation was pending.
    pub fn settle(&mut self, metrics: Option<MetricsTarget<'_>>, found: &mut Found) -> Option<u32> {
        observed!(self, metrics, found, |fold, all| fold
            .settle_invocation(all))
    }

    /// Settles the pending invocation again without a span or a metric when it is at most
    /// `settled`, the last invocation whose settling was exported (a restart rebuilding the
    /// fold up to the acknowledged position).
    pub fn resettle(&mut self, settled: Option<u32>) {
        let due = matches!(
            (self.fold.pending_invocation(), settled),
            (Some(p), Some(s)) if p.index <= s
        );
        if due {
            self.fold
                .settle_invocation(&mut FnObserver(|_: Transition<'_>| {}));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::AnomalyKind;
    use crate::history::EventDetails as D;
    use crate::history::json::parse_history;
    use crate::synth::{SynthSpec, history};

    fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
        spans.sort_by_key(|s| s.span_id);
        spans
    }

    /// The same spans, or the first that differs (or is missing) on either side.
    fn assert_same(left: &[Span], right: &[Span], what: &str) {
        let ids = |v: &[Span]| v.iter().map(|s| s.span_id).collect::<Vec<_>>();
        for s in left {
            match right.iter().find(|r| r.span_id == s.span_id) {
                Some(r) => assert_eq!(s, r, "{what}: span {} differs", s.name),
                None => panic!("{what}: {} only on the left: {s:#?}", s.name),
            }
        }
        assert_eq!(ids(left), ids(right), "{what}: spans only on the right");
    }

    /// Every span of the whole history, waiting for the event after each InvocationCompleted.
    fn waited(events: &[Event]) -> Vec<Span> {
        let mut p = Pipeline::new("arn", FoldOptions::default(), TraceOptions::default());
        p.apply_all(events, None);
        sorted(p.take_spans())
    }

    /// Every span, settling each invocation where the history (read so far) ends at its
    /// InvocationCompleted: what the daemon does when a read well after it still ends there.
    /// Returns the spans and the invocations settled.
    fn settled_at_every_invocation(events: &[Event]) -> (Vec<Span>, u32, Found) {
        let mut p = Pipeline::new("arn", FoldOptions::default(), TraceOptions::default());
        let mut found = Found::default();
        let mut settled = 0;
        for e in events {
            p.apply(e, None, &mut found);
            if matches!(e.details, D::InvocationCompleted { .. }) {
                let index = p.execution().pending_invocation().map(|i| i.index);
                assert_eq!(p.settle(None, &mut found), index);
                settled += u32::from(index.is_some());
                // Nothing is left to settle, and settling twice draws nothing.
                let before = p.spans().len();
                assert_eq!(p.settle(None, &mut found), None);
                assert_eq!(p.spans().len(), before);
            }
        }
        (sorted(p.take_spans()), settled, found)
    }

    fn fixture(name: &str) -> Vec<Event> {
        let path = format!(
            "{}/tests/fixtures/emulator/{name}/history_IncludeExecutionData_true.json",
            env!("CARGO_MANIFEST_DIR")
        );
        parse_history(&std::fs::read(path).unwrap()).unwrap().events
    }

    /// Whether the event after an InvocationCompleted is the execution's success or failure.
    fn ends_the_execution(events: &[Event], i: usize) -> bool {
        matches!(
            events.get(i + 1).map(|e| &e.details),
            Some(D::ExecutionSucceeded { .. } | D::ExecutionFailed { .. })
        )
    }

    /// Settles every invocation but one the execution's success or failure follows (the daemon
    /// reads those within milliseconds of each other) and checks the result against waiting for
    /// the next event: the same spans, ids, times, attributes and statuses. A history that ends
    /// at an InvocationCompleted (suspended, read so far) draws one span more when settled: that
    /// invocation, PENDING or RETRYING. Returns the invocations settled.
    fn assert_settling_draws_what_waiting_does(events: &[Event], what: &str) -> u32 {
        let last_ic = events
            .iter()
            .rposition(|e| matches!(e.details, D::InvocationCompleted { .. }));
        let cut = match last_ic {
            Some(i) if ends_the_execution(events, i) => i,
            _ => events.len(),
        };
        let (mut settled, n, found) = settled_at_every_invocation(&events[..cut]);
        assert!(found.anomalies.is_empty(), "{what}: {:?}", found.anomalies);
        let mut rest = Pipeline::new("arn", FoldOptions::default(), TraceOptions::default());
        rest.apply_all(&events[..cut], None);
        rest.take_spans();
        rest.apply_all(&events[cut..], None);
        settled.extend(rest.take_spans());
        let mut settled = sorted(settled);
        let waited = waited(events);
        if last_ic == Some(events.len() - 1) {
            let extra = settled
                .iter()
                .position(|s| !waited.iter().any(|w| w.span_id == s.span_id))
                .unwrap_or_else(|| panic!("{what}: the last invocation was not drawn"));
            let extra = settled.remove(extra);
            assert_eq!(extra.name, "Invocation", "{what}");
            let status = extra.attribute("durable.invocation.status").cloned();
            assert!(
                [Some("PENDING".into()), Some("RETRYING".into())].contains(&status),
                "{what}: {status:?}"
            );
        }
        assert_same(&settled, &waited, what);
        n
    }

    #[test]
    fn settling_a_suspending_invocation_draws_what_the_next_event_would() {
        // Generated executions: every kind of operation, retries, callbacks timing out, chained
        // invokes, finished or still running.
        let mut invocations = 0;
        for seed in 0..60 {
            let spec = SynthSpec {
                operations: 10 + (seed as usize * 7) % 60,
                seed,
                finished: seed % 4 != 0,
                ..SynthSpec::default()
            };
            invocations +=
                assert_settling_draws_what_waiting_does(&history(&spec), &format!("seed {seed}"));
        }
        assert!(invocations > 200, "only {invocations} invocations settled");
    }

    #[test]
    fn settling_emulator_histories_draws_the_same_spans() {
        // Real histories: a stop and a time-out while suspended come seconds after the last
        // InvocationCompleted, and settle as PENDING just as the next event would say.
        let mut invocations = 0;
        for name in [
            "callbacks",
            "chained-invoke",
            "child-contexts",
            "parallel-map",
            "retry-then-succeed",
            "steps-basic",
            "stopped",
            "timed-out",
            "waits",
        ] {
            let events = fixture(name);
            invocations += assert_settling_draws_what_waiting_does(&events, name);
            // Read only up to the first invocation's end, too.
            let first_ic = events
                .iter()
                .position(|e| matches!(e.details, D::InvocationCompleted { .. }))
                .unwrap();
            assert_settling_draws_what_waiting_does(&events[..=first_ic], name);
        }
        assert!(invocations >= 9, "only {invocations} invocations settled");
    }

    #[test]
    fn an_invocation_settled_before_the_execution_succeeded_is_reported() {
        let events = fixture("steps-basic");
        let last_ic = events
            .iter()
            .rposition(|e| matches!(e.details, D::InvocationCompleted { .. }))
            .unwrap();
        assert!(ends_the_execution(&events, last_ic));
        let mut p = Pipeline::new("arn", FoldOptions::default(), TraceOptions::default());
        let mut found = Found::default();
        for e in &events[..=last_ic] {
            p.apply(e, None, &mut found);
        }
        let index = p.settle(None, &mut found).unwrap();
        let drawn = p.take_spans();
        let invocation = drawn.last().unwrap();
        assert_eq!(
            invocation.attribute("durable.invocation.status"),
            Some(&crate::trace::Value::from("PENDING"))
        );
        for e in &events[last_ic + 1..] {
            p.apply(e, None, &mut found);
        }
        assert_eq!(found.anomalies.len(), 1, "{:?}", found.anomalies);
        let a = &found.anomalies[0];
        assert_eq!(a.kind, AnomalyKind::SettledInvocationEnded);
        assert_eq!(a.event_id, events[last_ic + 1].id);
        assert!(
            a.message.contains(&format!("invocation {index} ")),
            "{}",
            a.message
        );
        // The execution still ends, and no Invocation span is drawn twice.
        assert!(p.execution().is_finished());
        let ids: Vec<_> = p.take_spans().iter().map(|s| s.span_id).collect();
        assert!(!ids.contains(&invocation.span_id));
    }

    #[test]
    fn resettling_after_a_restart_draws_nothing_and_lets_later_invocations_end() {
        // A restart rebuilds the fold up to the acknowledged position (here: right after the
        // first InvocationCompleted, whose settling was acknowledged) and goes on from there.
        let events = fixture("waits");
        let first_ic = events
            .iter()
            .position(|e| matches!(e.details, D::InvocationCompleted { .. }))
            .unwrap();
        let mut before = Pipeline::new("arn", FoldOptions::default(), TraceOptions::default());
        let mut found = Found::default();
        for e in &events[..=first_ic] {
            before.apply(e, None, &mut found);
        }
        let settled = before.settle(None, &mut found);
        assert_eq!(settled, Some(1));
        let exported = before.take_spans();

        let mut after = Pipeline::new("arn", FoldOptions::default(), TraceOptions::default());
        for e in &events[..=first_ic] {
            after.replay(e, &mut found);
        }
        // An older settle does not apply; the acknowledged one does, once.
        after.resettle(None);
        assert!(after.execution().pending_invocation().is_some());
        after.resettle(settled);
        after.resettle(settled);
        assert!(after.execution().pending_invocation().is_none());
        assert!(after.take_spans().is_empty());
        for (i, e) in events.iter().enumerate().skip(first_ic + 1) {
            after.resettle(settled);
            after.apply(e, None, &mut found);
            if matches!(e.details, D::InvocationCompleted { .. }) && !ends_the_execution(&events, i)
            {
                after.settle(None, &mut found);
            }
        }
        let mut all = exported;
        all.extend(after.take_spans());
        assert_same(&sorted(all), &waited(&events), "after a restart");
        assert!(found.anomalies.is_empty(), "{:?}", found.anomalies);
    }
}
