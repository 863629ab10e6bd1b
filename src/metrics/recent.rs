//! The recent past of the metrics, kept as records so that the execution browser can aggregate
//! any function over any window: finished executions, failed operations and step retries, each
//! recorded by [`super::ExecutionObserver`] at the very place it counts the matching family
//! (`durable_executions_finished_total`, `durable_operations_finished_total` with an end status
//! other than SUCCEEDED, `durable_step_retries_total`). Over a window that holds everything recorded
//! since the start, the counts equal those families' values.
//!
//! Bounded: each kind keeps its newest [`CAPACITY`] records; an aggregate over a window that
//! reaches back before the oldest one kept says so (`Complete: false`). Pure: told the time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Records kept of each kind.
pub const CAPACITY: usize = 20_000;

#[derive(Debug, Clone)]
struct Finished {
    function: Arc<str>,
    status: &'static str,
    /// Seconds, when the execution has a start and an end and is not RUNNING (as the duration
    /// histogram observes it).
    duration: Option<f64>,
    at_ms: i64,
}

#[derive(Debug, Clone)]
struct Failed {
    function: Arc<str>,
    op_type: &'static str,
    name: Arc<str>,
    status: &'static str,
    at_ms: i64,
}

#[derive(Debug, Clone)]
struct Retry {
    function: Arc<str>,
    step: Arc<str>,
    at_ms: i64,
}

#[derive(Debug)]
struct Ring<T> {
    items: VecDeque<T>,
    /// The time of the newest record dropped for room (None: nothing dropped).
    dropped_through: Option<i64>,
}

impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring {
            items: VecDeque::new(),
            dropped_through: None,
        }
    }
}

impl<T> Ring<T> {
    fn push(&mut self, item: T, at: impl Fn(&T) -> i64) {
        if self.items.len() == CAPACITY
            && let Some(old) = self.items.pop_front()
        {
            let t = at(&old);
            self.dropped_through = Some(self.dropped_through.map_or(t, |d| d.max(t)));
        }
        self.items.push_back(item);
    }

    /// Whether every record at or after `since` is still kept.
    fn complete_since(&self, since: Option<i64>) -> bool {
        match (self.dropped_through, since) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(d), Some(s)) => d < s,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    finished: Ring<Finished>,
    failed: Ring<Failed>,
    retries: Ring<Retry>,
}

/// The records, shared by every observer of one [`super::Metrics`].
#[derive(Debug, Default)]
pub struct Recent {
    inner: Mutex<Inner>,
}

/// Duration percentiles of finished executions, in seconds (nearest rank over the records).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationFailures {
    #[serde(rename = "Type")]
    pub op_type: &'static str,
    pub name: String,
    pub status: &'static str,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepRetries {
    pub name: String,
    pub count: u64,
}

/// One function (or all) over one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Aggregate {
    /// Finished executions by status.
    pub executions: BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<Percentiles>,
    /// Most failures first.
    pub failures_by_operation: Vec<OperationFailures>,
    /// Most retries first.
    pub retries_by_step: Vec<StepRetries>,
    /// False when records inside the window were dropped for room.
    pub complete: bool,
}

impl Recent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn execution_finished(
        &self,
        function: &Arc<str>,
        status: &'static str,
        duration: Option<f64>,
        at_ms: i64,
    ) {
        let f = Finished {
            function: function.clone(),
            status,
            duration,
            at_ms,
        };
        self.lock().finished.push(f, |f| f.at_ms);
    }

    pub(super) fn operation_failed(
        &self,
        function: &Arc<str>,
        op_type: &'static str,
        name: &str,
        status: &'static str,
        at_ms: i64,
    ) {
        let f = Failed {
            function: function.clone(),
            op_type,
            name: name.into(),
            status,
            at_ms,
        };
        self.lock().failed.push(f, |f| f.at_ms);
    }

    pub(super) fn step_retried(&self, function: &Arc<str>, step: &str, at_ms: i64) {
        let r = Retry {
            function: function.clone(),
            step: step.into(),
            at_ms,
        };
        self.lock().retries.push(r, |r| r.at_ms);
    }

    /// The functions with any record, sorted.
    pub fn functions(&self) -> Vec<String> {
        let inner = self.lock();
        let mut names: Vec<String> = inner
            .finished
            .items
            .iter()
            .map(|f| &f.function)
            .chain(inner.failed.items.iter().map(|f| &f.function))
            .chain(inner.retries.items.iter().map(|r| &r.function))
            .map(|f| f.to_string())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Records of `function` (all functions: None) at or after `since_ms` (everything: None).
    pub fn aggregate(&self, function: Option<&str>, since_ms: Option<i64>) -> Aggregate {
        let inner = self.lock();
        let wanted =
            |f: &str, at: i64| function.is_none_or(|w| w == f) && since_ms.is_none_or(|s| at >= s);
        let mut executions: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut durations: Vec<f64> = Vec::new();
        for f in inner
            .finished
            .items
            .iter()
            .filter(|f| wanted(&f.function, f.at_ms))
        {
            *executions.entry(f.status).or_default() += 1;
            durations.extend(f.duration);
        }
        let mut failures: BTreeMap<(&'static str, &str, &'static str), u64> = BTreeMap::new();
        for f in inner
            .failed
            .items
            .iter()
            .filter(|f| wanted(&f.function, f.at_ms))
        {
            *failures.entry((f.op_type, &f.name, f.status)).or_default() += 1;
        }
        let mut retries: BTreeMap<&str, u64> = BTreeMap::new();
        for r in inner
            .retries
            .items
            .iter()
            .filter(|r| wanted(&r.function, r.at_ms))
        {
            *retries.entry(&r.step).or_default() += 1;
        }
        let mut failures_by_operation: Vec<OperationFailures> = failures
            .into_iter()
            .map(|((op_type, name, status), count)| OperationFailures {
                op_type,
                name: name.to_owned(),
                status,
                count,
            })
            .collect();
        failures_by_operation.sort_by_key(|f| std::cmp::Reverse(f.count));
        let mut retries_by_step: Vec<StepRetries> = retries
            .into_iter()
            .map(|(name, count)| StepRetries {
                name: name.to_owned(),
                count,
            })
            .collect();
        retries_by_step.sort_by_key(|r| std::cmp::Reverse(r.count));
        Aggregate {
            executions,
            duration: percentiles(durations),
            failures_by_operation,
            retries_by_step,
            complete: inner.finished.complete_since(since_ms)
                && inner.failed.complete_since(since_ms)
                && inner.retries.complete_since(since_ms),
        }
    }
}

/// Nearest-rank percentiles (None without values).
fn percentiles(mut v: Vec<f64>) -> Option<Percentiles> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[i.clamp(1, v.len()) - 1]
    };
    Some(Percentiles {
        count: v.len(),
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: v[v.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Arc<str> {
        s.into()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        let one = percentiles(vec![7.5]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.5, 7.5, 7.5));
        assert_eq!(percentiles(Vec::new()), None);
    }

    #[test]
    fn a_window_and_a_function_select_their_records() {
        let r = Recent::default();
        r.execution_finished(&f("orders"), "SUCCEEDED", Some(2.0), 1_000);
        r.execution_finished(&f("orders"), "FAILED", Some(4.0), 5_000);
        r.execution_finished(&f("orders"), "RUNNING", None, 6_000);
        r.execution_finished(&f("billing"), "SUCCEEDED", Some(9.0), 5_000);
        r.operation_failed(&f("orders"), "STEP", "charge", "FAILED", 5_000);
        r.operation_failed(&f("orders"), "STEP", "charge", "FAILED", 5_500);
        r.operation_failed(&f("orders"), "WAIT", "cool", "TIMED_OUT", 500);
        r.step_retried(&f("orders"), "charge", 4_000);
        r.step_retried(&f("orders"), "ship", 4_500);
        r.step_retried(&f("orders"), "ship", 4_600);

        let all = r.aggregate(Some("orders"), None);
        assert_eq!(
            all.executions,
            BTreeMap::from([("FAILED", 1), ("RUNNING", 1), ("SUCCEEDED", 1)])
        );
        assert_eq!(all.duration.as_ref().unwrap().count, 2);
        assert_eq!(all.failures_by_operation[0].name, "charge");
        assert_eq!(all.failures_by_operation[0].count, 2);
        assert_eq!(all.failures_by_operation.len(), 2);
        assert_eq!(
            all.retries_by_step,
            vec![
                StepRetries {
                    name: "ship".into(),
                    count: 2
                },
                StepRetries {
                    name: "charge".into(),
                    count: 1
                }
            ]
        );
        assert!(all.complete);

        let late = r.aggregate(Some("orders"), Some(4_550));
        assert_eq!(late.executions.values().sum::<u64>(), 2);
        assert_eq!(late.retries_by_step.len(), 1);
        assert_eq!(late.failures_by_operation.len(), 1);
        let everyone = r.aggregate(None, None);
        assert_eq!(everyone.executions["SUCCEEDED"], 2);
        assert_eq!(
            r.functions(),
            vec!["billing".to_owned(), "orders".to_owned()]
        );
    }

    #[test]
    fn a_window_reaching_past_dropped_records_is_incomplete() {
        let r = Recent::default();
        for i in 0..(CAPACITY as i64 + 10) {
            r.step_retried(&f("orders"), "charge", i);
        }
        // Records 0..=9 were dropped.
        assert!(!r.aggregate(None, None).complete);
        assert!(!r.aggregate(None, Some(9)).complete);
        let tail = r.aggregate(None, Some(10));
        assert!(tail.complete);
        assert_eq!(tail.retries_by_step[0].count, CAPACITY as u64);
    }
}
