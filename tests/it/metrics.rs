//! The `durable_*` metric families (docs/METRICS.md) as a user reads them: the real binary's
//! `convert --format prometheus` over the fixture histories, its text exposition parsed here,
//! and the values checked against what the histories say (derived by hand in the comments;
//! timestamps are rounded to the millisecond, as the exporter rounds them).
//!
//! The state gauges and the `durable_exporter_*` families exist only in the daemon
//! (tests/it/daemon_metrics.rs scrapes them); here they are checked against the documentation.
//! The tests at the end (two of them run the daemon) pinned bugs found while writing these;
//! they are fixed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::exposition::{Exposition, convert_text, parse};
use crate::common::prometheus::{promtool_bin, promtool_check_metrics};
use crate::common::{FIXTURES, arn_of, history_path, root};
use serde_json::Value;

#[track_caller]
fn approx(got: f64, want: f64) {
    assert!(
        (got - want).abs() < 1e-6,
        "got {got}, want {want} (within 1e-6)"
    );
}

// ---------------------------------------------------------------------------------------------
// The binary.

fn fixture(name: &str) -> Exposition {
    parse(&convert_text(&arn_of(name), &history_path(name)))
}

fn handwritten_dir() -> PathBuf {
    root().join("tests/fixtures/handwritten")
}

fn handwritten_history() -> PathBuf {
    handwritten_dir().join("every-event-type.json")
}

/// The hand-written real-service history's ARN (function `orders`, qualifier `$LATEST`).
fn handwritten_arn() -> String {
    std::fs::read_to_string(handwritten_dir().join("arn.txt"))
        .unwrap()
        .trim()
        .to_owned()
}

fn handwritten() -> Exposition {
    parse(&convert_text(&handwritten_arn(), &handwritten_history()))
}

/// Every history with its ARN: the emulator fixtures and the hand-written one.
fn all_histories() -> Vec<(String, String, PathBuf)> {
    let mut v: Vec<(String, String, PathBuf)> = FIXTURES
        .iter()
        .map(|n| ((*n).to_owned(), arn_of(n), history_path(n)))
        .collect();
    v.push((
        "every-event-type".to_owned(),
        handwritten_arn(),
        handwritten_history(),
    ));
    v
}

/// A variant of a fixture history: `keep` picks events (by EventId), renumbered from 1.
fn derived_history(dir: &Path, from: &Path, keep: impl Fn(&Value) -> bool) -> PathBuf {
    let v: Value = serde_json::from_slice(&std::fs::read(from).unwrap()).unwrap();
    let mut events: Vec<Value> = v["Events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| keep(e))
        .cloned()
        .collect();
    for (i, e) in events.iter_mut().enumerate() {
        e["EventId"] = Value::from(i as u64 + 1);
    }
    let path = dir.join("history.json");
    std::fs::write(&path, serde_json::json!({ "Events": events }).to_string()).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// The families.

const FQ: &[&str] = &["function", "qualifier"];

/// Every event-driven family, its type and its labels (`le` aside), as docs/METRICS.md lists
/// them with the default name-label policy (off).
const EVENT_FAMILIES: &[(&str, &str, &[&str])] = &[
    ("durable_executions_started_total", "counter", FQ),
    (
        "durable_executions_finished_total",
        "counter",
        &["function", "qualifier", "status"],
    ),
    (
        "durable_execution_duration_seconds",
        "histogram",
        &["function", "qualifier", "status"],
    ),
    (
        "durable_operations_finished_total",
        "counter",
        &["function", "qualifier", "status", "subtype", "type"],
    ),
    (
        "durable_operation_duration_seconds",
        "histogram",
        &["function", "qualifier", "subtype", "type"],
    ),
    (
        "durable_step_attempts_total",
        "counter",
        &["function", "outcome", "qualifier"],
    ),
    ("durable_step_retries_total", "counter", FQ),
    ("durable_step_attempt_duration_seconds", "histogram", FQ),
    ("durable_step_retry_backoff_seconds", "histogram", FQ),
    ("durable_wait_duration_seconds", "histogram", FQ),
    ("durable_wait_lateness_seconds", "histogram", FQ),
    (
        "durable_callback_duration_seconds",
        "histogram",
        &["function", "outcome", "qualifier"],
    ),
    (
        "durable_invocations_total",
        "counter",
        &["function", "qualifier", "status"],
    ),
    (
        "durable_invocation_duration_seconds",
        "histogram",
        &["function", "qualifier", "status"],
    ),
    ("durable_execution_invocations", "histogram", FQ),
    ("durable_suspension_duration_seconds", "histogram", FQ),
    (
        "durable_chained_invokes_total",
        "counter",
        &["function", "outcome", "qualifier"],
    ),
    ("durable_execution_operations", "histogram", FQ),
];

/// The state gauges the daemon sets at each scrape (never in `convert`'s output).
const STATE_GAUGES: &[&str] = &[
    "durable_executions_running",
    "durable_callbacks_pending",
    "durable_callback_oldest_pending_age_seconds",
    "durable_execution_operations_max",
];

/// The bucket bounds docs/METRICS.md gives each histogram (+Inf aside), read from its
/// "Histogram buckets" table: the code is checked against the documentation, not a copy.
fn documented_buckets() -> std::collections::BTreeMap<String, Vec<f64>> {
    let doc = std::fs::read_to_string(root().join("docs/METRICS.md")).unwrap();
    let table = doc
        .split("## Histogram buckets")
        .nth(1)
        .expect("docs/METRICS.md has a Histogram buckets section");
    let mut out = std::collections::BTreeMap::new();
    for row in table
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with('|'))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 3 || !cells[1].starts_with('`') {
            continue;
        }
        let bounds: Vec<f64> = cells[2]
            .split(',')
            .map(|b| {
                b.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("{row}: {b}: {e}"))
            })
            .collect();
        for family in cells[1].split('`').skip(1).step_by(2) {
            out.insert(family.to_owned(), bounds.clone());
        }
    }
    out
}

fn labels_of(family: &str) -> &'static [&'static str] {
    EVENT_FAMILIES
        .iter()
        .find(|(n, _, _)| *n == family)
        .unwrap_or_else(|| panic!("{family} is not a documented durable_* family"))
        .2
}

/// The values a label may take, per family (docs/METRICS.md).
fn allowed_values(family: &str, label: &str) -> Option<&'static [&'static str]> {
    const EXECUTION: &[&str] = &["SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];
    const OPERATION_STATUS: &[&str] = &[
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "TIMED_OUT",
        "STOPPED",
        "STARTED",
        "PENDING",
        "READY",
    ];
    Some(match (family, label) {
        ("durable_executions_finished_total" | "durable_execution_duration_seconds", "status") => {
            EXECUTION
        }
        ("durable_operations_finished_total", "status") => OPERATION_STATUS,
        (_, "type") => &["STEP", "WAIT", "CALLBACK", "CONTEXT", "CHAINED_INVOKE"],
        ("durable_step_attempts_total", "outcome") => &["SUCCEEDED", "FAILED"],
        ("durable_callback_duration_seconds", "outcome") => &["SUCCEEDED", "FAILED", "TIMED_OUT"],
        ("durable_chained_invokes_total", "outcome") => {
            &["SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"]
        }
        ("durable_invocations_total" | "durable_invocation_duration_seconds", "status") => {
            &["SUCCEEDED", "FAILED", "PENDING", "RETRYING"]
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Families, labels and shape, over every history.

#[test]
fn every_event_type_history_registers_every_event_driven_family_with_its_type() {
    let m = handwritten();
    let want: BTreeSet<(String, String)> = EVENT_FAMILIES
        .iter()
        .map(|(n, t, _)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    assert_eq!(
        m.families(),
        want,
        "the families of convert --format prometheus changed: update docs/METRICS.md and this list"
    );
    for g in STATE_GAUGES {
        assert!(
            !m.text.contains(g),
            "{g} is set by the daemon at scrape time, not by convert"
        );
    }
}

#[test]
fn labels_are_the_documented_ones_with_documented_values() {
    for (name, arn, path) in all_histories() {
        let m = parse(&convert_text(&arn, &path));
        assert!(!m.samples.is_empty(), "{name}: no samples");
        let (function, qualifier) = if arn.starts_with("arn:") {
            ("orders", "$LATEST")
        } else {
            ("unknown", "$LATEST")
        };
        for s in &m.samples {
            let family = m.family_of(s);
            let mut got: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            if s.name.ends_with("_bucket") {
                assert!(got.contains(&"le"), "{name}: {s:?}");
                got.retain(|l| *l != "le");
            }
            assert_eq!(got, labels_of(family), "{name}: labels of {s:?}");
            assert_eq!(s.labels["function"], function, "{name}: {s:?}");
            assert_eq!(s.labels["qualifier"], qualifier, "{name}: {s:?}");
            for (label, value) in &s.labels {
                if let Some(allowed) = allowed_values(family, label) {
                    assert!(
                        allowed.contains(&value.as_str()),
                        "{name}: {family} {label}={value:?} is not one of {allowed:?}"
                    );
                }
            }
            if let Some(st) = s.labels.get("subtype") {
                assert!(!st.is_empty(), "{name}: empty subtype in {s:?}");
            }
        }
    }
}

#[test]
fn no_label_holds_the_execution_arn_or_an_operation_name() {
    for (name, arn, path) in all_histories() {
        let text = convert_text(&arn, &path);
        // The ARN, its function ARN and every id in it.
        assert!(!text.contains(&arn), "{name}: the execution ARN is exposed");
        for piece in arn.split('/').filter(|p| *p != "durable-execution") {
            assert!(!text.contains(piece), "{name}: {piece:?} is exposed");
        }
        // Operation names become labels only under a name-label policy (off by default).
        let history: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let names: BTreeSet<&str> = history["Events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["Name"].as_str())
            .collect();
        assert!(!names.is_empty(), "{name}: no named operations");
        for n in names {
            assert!(
                !text.contains(&format!("=\"{n}\"")),
                "{name}: operation name {n:?} is a label value"
            );
        }
        assert!(!text.contains("name=\""), "{name}: a name label");
    }
}

#[test]
fn function_and_qualifier_come_from_the_arn() {
    let history = handwritten_history();
    let id = "/durable-execution/order-7781/3f1c9a2e-7b4d-4c1e-9f0a-5d6e7f8a9b0c";
    let cases = [
        (
            format!("arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST{id}"),
            "orders",
            "$LATEST",
        ),
        (
            format!("arn:aws:lambda:us-east-1:123456789012:function:orders:prod{id}"),
            "orders",
            "prod",
        ),
        (
            format!("arn:aws:lambda:eu-west-1:123456789012:function:payments:7{id}"),
            "payments",
            "7",
        ),
        // Unqualified: `$LATEST`.
        (
            format!("arn:aws:lambda:us-east-1:123456789012:function:orders{id}"),
            "orders",
            "$LATEST",
        ),
        // Not a Lambda ARN (the emulator's): `unknown`.
        (
            "c9d0ddd5-4e8b-4da5-ba01-445cf9e50869/3f1c9a2e-7b4d-4c1e-9f0a-5d6e7f8a9b0c".to_owned(),
            "unknown",
            "$LATEST",
        ),
    ];
    for (arn, function, qualifier) in cases {
        let m = parse(&convert_text(&arn, &history));
        assert_eq!(
            m.value(
                "durable_executions_started_total",
                &[("function", function), ("qualifier", qualifier)]
            ),
            1.0,
            "{arn}"
        );
        for s in &m.samples {
            assert_eq!(
                (
                    s.labels["function"].as_str(),
                    s.labels["qualifier"].as_str()
                ),
                (function, qualifier),
                "{arn}: {s:?}"
            );
        }
    }
}

#[test]
fn histograms_have_their_documented_buckets_and_add_up() {
    let documented = documented_buckets();
    assert!(documented.len() >= 12, "{documented:?}");
    for (name, arn, path) in all_histories() {
        let m = parse(&convert_text(&arn, &path));
        for (family, kind) in m.families() {
            if kind != "histogram" {
                continue;
            }
            let bounds = documented
                .get(&family)
                .unwrap_or_else(|| panic!("no documented buckets for {family}"));
            let counts = m.series(&format!("{family}_count"), &[]);
            assert!(!counts.is_empty(), "{name}: {family} without series");
            for c in counts {
                let want: Vec<(&str, &str)> = c
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let h = m.hist(&family, &want);
                let les: Vec<f64> = h.buckets.iter().map(|(b, _)| *b).collect();
                let mut expected = bounds.to_vec();
                expected.push(f64::INFINITY);
                assert_eq!(les, expected, "{name}: buckets of {family}");
                assert!(
                    h.buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{name}: {family} buckets not cumulative: {:?}",
                    h.buckets
                );
                assert_eq!(h.le(f64::INFINITY), h.count, "{name}: {family} +Inf");
                assert!(h.count >= 1.0, "{name}: {family} series without data");
                assert!(h.sum >= 0.0, "{name}: {family} sum {}", h.sum);
            }
        }
    }
}

/// What holds for every history: one execution, and the per-execution histograms agreeing
/// with the counters.
#[test]
fn per_execution_counts_agree_with_the_counters() {
    for (name, arn, path) in all_histories() {
        let m = parse(&convert_text(&arn, &path));
        assert_eq!(
            m.sum("durable_executions_started_total", &[]),
            1.0,
            "{name}"
        );
        assert_eq!(
            m.sum("durable_executions_finished_total", &[]),
            1.0,
            "{name}"
        );
        let status = m.series("durable_executions_finished_total", &[])[0].labels["status"].clone();
        let d = m.hist("durable_execution_duration_seconds", &[("status", &status)]);
        assert_eq!(d.count, 1.0, "{name}");

        // Operations per execution: every operation is counted once when it (or the
        // execution) ends.
        let ops = m.hist("durable_execution_operations", &[]);
        assert_eq!(ops.count, 1.0, "{name}");
        assert_eq!(
            ops.sum,
            m.sum("durable_operations_finished_total", &[]),
            "{name}: operations per execution vs operations finished"
        );
        // Invocations per execution (every fixture ends its invocations with
        // InvocationCompleted).
        let inv = m.hist("durable_execution_invocations", &[]);
        assert_eq!(inv.count, 1.0, "{name}");
        assert_eq!(
            inv.sum,
            m.sum("durable_invocations_total", &[]),
            "{name}: invocations per execution vs invocations"
        );
        // Attempts: one per step, plus one per retry (no attempt was interrupted here).
        let attempts = m.sum("durable_step_attempts_total", &[]);
        let steps = m.sum("durable_operations_finished_total", &[("type", "STEP")]);
        let retries = m.sum("durable_step_retries_total", &[]);
        assert_eq!(attempts, steps + retries, "{name}: attempts");
        if attempts > 0.0 {
            assert_eq!(
                m.hist("durable_step_attempt_duration_seconds", &[]).count,
                attempts,
                "{name}"
            );
        }
        if retries > 0.0 {
            assert_eq!(
                m.hist("durable_step_retry_backoff_seconds", &[]).count,
                retries,
                "{name}"
            );
        } else {
            assert!(
                m.series("durable_step_retry_backoff_seconds_count", &[])
                    .is_empty()
            );
        }
        // Callbacks and chained invokes that ended by their own event.
        let callbacks = m.sum("durable_operations_finished_total", &[("type", "CALLBACK")]);
        let observed = m.sum("durable_callback_duration_seconds_count", &[]);
        assert_eq!(observed, callbacks, "{name}: callbacks");
        assert_eq!(
            m.sum("durable_chained_invokes_total", &[]),
            m.sum(
                "durable_operations_finished_total",
                &[("type", "CHAINED_INVOKE")]
            ),
            "{name}: chained invokes"
        );
        // Waits that succeeded: one duration and one lateness each.
        let waits = m.sum(
            "durable_operations_finished_total",
            &[("type", "WAIT"), ("status", "SUCCEEDED")],
        );
        let durations = m.sum("durable_wait_duration_seconds_count", &[]);
        assert_eq!(durations, waits, "{name}: waits");
        assert_eq!(
            m.sum("durable_wait_lateness_seconds_count", &[]),
            waits,
            "{name}: lateness"
        );
    }
}

#[test]
fn promtool_accepts_every_exposition() {
    let Some(promtool) = promtool_bin() else {
        return;
    };
    for (name, arn, path) in all_histories() {
        let text = convert_text(&arn, &path);
        let checked = promtool_check_metrics(&promtool, &text);
        assert!(
            checked.as_ref().is_ok_and(|said| said.trim().is_empty()),
            "{name}: promtool check metrics:\n{}",
            checked.unwrap_or_else(|e| e)
        );
    }
}

#[test]
fn docs_metrics_md_lists_every_family() {
    let doc = std::fs::read_to_string(root().join("docs/METRICS.md")).unwrap();
    // Every family in the source: the durable_* registry, the exporter's own, and the two
    // latency histograms the API client and the OTLP exporter fill.
    let mut names = BTreeSet::new();
    for file in [
        "src/metrics/mod.rs",
        "src/daemon/metrics.rs",
        "src/daemon/lambda.rs",
        "src/daemon/exporter.rs",
    ] {
        let src = std::fs::read_to_string(root().join(file)).unwrap();
        for (at, _) in src.match_indices("\"durable_") {
            let lit = src[at + 1..].split('"').next().unwrap();
            if lit
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            {
                names.insert(lit.to_owned());
            }
        }
    }
    for (n, _, _) in EVENT_FAMILIES {
        assert!(names.contains(*n), "{n} is not in the source any more");
    }
    for g in STATE_GAUGES {
        assert!(names.contains(*g), "{g} is not in the source any more");
    }
    assert!(names.len() >= 40, "found only {names:?}");
    for n in &names {
        assert!(
            doc.contains(&format!("`{n}`")),
            "docs/METRICS.md does not document {n}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Each fixture, as a user would check it.

#[test]
fn retry_then_succeed_counts_two_failed_attempts_two_retries_and_their_back_off() {
    let m = fixture("retry-then-succeed");
    // flaky-step: StepFailed (retry in 2 s), StepFailed (retry in 2 s), StepSucceeded.
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "FAILED")]),
        2.0
    );
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "SUCCEEDED")]),
        1.0
    );
    assert_eq!(m.value("durable_step_retries_total", &[]), 2.0);
    // Back-offs: .436 → 231.449 and 231.449 → 233.466: 2.013 + 2.017 s.
    let b = m.hist("durable_step_retry_backoff_seconds", &[]);
    assert_eq!(b.count, 2.0);
    approx(b.sum, 4.030);
    assert_eq!(b.le(2.0), 0.0);
    assert_eq!(b.le(5.0), 2.0);
    // The attempts themselves took no time (start and end share a timestamp).
    let a = m.hist("durable_step_attempt_duration_seconds", &[]);
    assert_eq!((a.count, a.sum, a.le(0.001)), (3.0, 0.0, 3.0));
    // Three invocations: two suspended for the retries, the last one succeeded.
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "PENDING")]),
        2.0
    );
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "SUCCEEDED")]),
        1.0
    );
    assert_eq!(m.sum("durable_invocations_total", &[]), 3.0);
    // The emulator writes InvocationCompleted without details: no exact invocation bounds.
    assert!(
        m.series("durable_invocation_duration_seconds_count", &[])
            .is_empty()
    );
    // Suspended 229.539 → 231.449 and 231.552 → 233.466.
    let s = m.hist("durable_suspension_duration_seconds", &[]);
    assert_eq!(s.count, 2.0);
    approx(s.sum, 1.910 + 1.914);
    assert_eq!(m.value("durable_executions_started_total", &[]), 1.0);
    assert_eq!(
        m.value(
            "durable_executions_finished_total",
            &[("status", "SUCCEEDED")]
        ),
        1.0
    );
    let d = m.hist(
        "durable_execution_duration_seconds",
        &[("status", "SUCCEEDED")],
    );
    assert_eq!(d.count, 1.0);
    approx(d.sum, 233.583 - 229.083);
    assert_eq!(d.le(1.0), 0.0);
    assert_eq!(d.le(5.0), 1.0);
    assert_eq!(m.hist("durable_execution_invocations", &[]).sum, 3.0);
    assert_eq!(m.hist("durable_execution_invocations", &[]).le(3.0), 1.0);
    assert_eq!(m.hist("durable_execution_operations", &[]).sum, 1.0);
    // The step, from its first StepStarted to StepSucceeded, back-offs included.
    assert_eq!(
        m.value(
            "durable_operations_finished_total",
            &[
                ("type", "STEP"),
                ("subtype", "Step"),
                ("status", "SUCCEEDED")
            ]
        ),
        1.0
    );
    approx(
        m.hist(
            "durable_operation_duration_seconds",
            &[("type", "STEP"), ("subtype", "Step")],
        )
        .sum,
        233.466 - 229.436,
    );
}

#[test]
fn waits_observe_their_actual_duration_and_lateness() {
    let m = fixture("waits");
    // wait-3s: 229.438 → 232.441 (scheduled 232.438); wait-2s: 232.509 → 234.510 (234.509).
    let d = m.hist("durable_wait_duration_seconds", &[]);
    assert_eq!(d.count, 2.0);
    approx(d.sum, 3.003 + 2.001);
    assert_eq!(d.le(1.0), 0.0);
    assert_eq!(d.le(5.0), 2.0);
    let late = m.hist("durable_wait_lateness_seconds", &[]);
    assert_eq!(late.count, 2.0);
    approx(late.sum, 0.003 + 0.001);
    assert_eq!(late.le(0.01), 2.0);
    assert_eq!(
        m.value(
            "durable_operations_finished_total",
            &[
                ("type", "WAIT"),
                ("subtype", "Wait"),
                ("status", "SUCCEEDED")
            ]
        ),
        2.0
    );
    assert_eq!(
        m.value(
            "durable_operations_finished_total",
            &[("type", "STEP"), ("status", "SUCCEEDED")]
        ),
        3.0
    );
    // Three invocations, suspended twice (for the waits).
    assert_eq!(m.sum("durable_invocations_total", &[]), 3.0);
    assert_eq!(
        m.hist("durable_suspension_duration_seconds", &[]).count,
        2.0
    );
    assert!(m.series("durable_step_retries_total", &[]).is_empty());
}

#[test]
fn callbacks_observe_time_to_completion_by_outcome() {
    let m = fixture("callbacks");
    // approval 230.337 → 230.716 and external-approval's 233.412 → 233.649 succeeded;
    // rejection 230.341 → 230.755 failed; expiring 230.345 → 233.348 timed out.
    let ok = m.hist(
        "durable_callback_duration_seconds",
        &[("outcome", "SUCCEEDED")],
    );
    assert_eq!(ok.count, 2.0);
    approx(ok.sum, 0.379 + 0.237);
    assert_eq!(ok.le(1.0), 2.0);
    let failed = m.hist(
        "durable_callback_duration_seconds",
        &[("outcome", "FAILED")],
    );
    assert_eq!(failed.count, 1.0);
    approx(failed.sum, 0.414);
    let timed_out = m.hist(
        "durable_callback_duration_seconds",
        &[("outcome", "TIMED_OUT")],
    );
    assert_eq!(timed_out.count, 1.0);
    approx(timed_out.sum, 3.003);
    assert_eq!(timed_out.le(1.0), 0.0);
    assert_eq!(timed_out.le(5.0), 1.0);
    for (status, n) in [("SUCCEEDED", 2.0), ("FAILED", 1.0), ("TIMED_OUT", 1.0)] {
        assert_eq!(
            m.value(
                "durable_operations_finished_total",
                &[
                    ("type", "CALLBACK"),
                    ("subtype", "Callback"),
                    ("status", status)
                ]
            ),
            n,
            "{status}"
        );
    }
    // wait_for_callback: a WaitForCallback context around the callback and its submitter.
    assert_eq!(
        m.value(
            "durable_operations_finished_total",
            &[("type", "CONTEXT"), ("subtype", "WaitForCallback")]
        ),
        1.0
    );
    // Five invocations: four suspended, the last succeeded.
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "PENDING")]),
        4.0
    );
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "SUCCEEDED")]),
        1.0
    );
    assert_eq!(m.hist("durable_execution_invocations", &[]).sum, 5.0);
    assert_eq!(
        m.hist("durable_suspension_duration_seconds", &[]).count,
        4.0
    );
}

#[test]
fn chained_invokes_count_by_outcome() {
    let m = fixture("chained-invoke");
    // call-durable-child and call-plain-fn succeeded; call-missing-fn failed.
    assert_eq!(
        m.value("durable_chained_invokes_total", &[("outcome", "SUCCEEDED")]),
        2.0
    );
    assert_eq!(
        m.value("durable_chained_invokes_total", &[("outcome", "FAILED")]),
        1.0
    );
    assert_eq!(m.series("durable_chained_invokes_total", &[]).len(), 2);
    let d = m.hist(
        "durable_operation_duration_seconds",
        &[("type", "CHAINED_INVOKE"), ("subtype", "ChainedInvoke")],
    );
    assert_eq!(d.count, 3.0);
    // 229.553 → 229.878, 229.893 → 229.912, and 0 for the one that failed at once.
    approx(d.sum, 0.325 + 0.019);
    // The execution still succeeded.
    assert_eq!(
        m.value(
            "durable_executions_finished_total",
            &[("status", "SUCCEEDED")]
        ),
        1.0
    );
}

#[test]
fn parallel_and_map_count_operations_by_type_and_subtype() {
    let m = fixture("parallel-map");
    let want = [
        ("CONTEXT", "Parallel", 1.0),
        ("CONTEXT", "ParallelBranch", 3.0),
        ("CONTEXT", "Map", 1.0),
        ("CONTEXT", "MapIteration", 3.0),
        ("STEP", "Step", 5.0),
        ("STEP", "WaitForCondition", 1.0),
        ("WAIT", "Wait", 1.0),
    ];
    for (t, st, n) in want {
        assert_eq!(
            m.value(
                "durable_operations_finished_total",
                &[("type", t), ("subtype", st), ("status", "SUCCEEDED")]
            ),
            n,
            "{t}/{st}"
        );
        assert_eq!(
            m.hist(
                "durable_operation_duration_seconds",
                &[("type", t), ("subtype", st)]
            )
            .count,
            n,
            "{t}/{st}"
        );
    }
    assert_eq!(m.series("durable_operations_finished_total", &[]).len(), 7);
    assert_eq!(m.hist("durable_execution_operations", &[]).sum, 15.0);
    // wait_for_condition: three polls, each a SUCCEEDED attempt; two intervals between them
    // (230.643 → 231.669 → 232.678).
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "SUCCEEDED")]),
        8.0
    );
    assert!(
        m.series("durable_step_attempts_total", &[("outcome", "FAILED")])
            .is_empty()
    );
    assert_eq!(m.value("durable_step_retries_total", &[]), 2.0);
    let b = m.hist("durable_step_retry_backoff_seconds", &[]);
    assert_eq!(b.count, 2.0);
    approx(b.sum, 1.026 + 1.009);
    assert_eq!(b.le(1.0), 0.0);
    assert_eq!(b.le(2.0), 2.0);
    // The parallel: 229.550 → 230.578.
    approx(
        m.hist(
            "durable_operation_duration_seconds",
            &[("type", "CONTEXT"), ("subtype", "Parallel")],
        )
        .sum,
        1.028,
    );
}

#[test]
fn child_contexts_count_nested_operations() {
    let m = fixture("child-contexts");
    assert_eq!(
        m.value(
            "durable_operations_finished_total",
            &[("type", "CONTEXT"), ("subtype", "RunInChildContext")]
        ),
        2.0
    );
    assert_eq!(
        m.value("durable_operations_finished_total", &[("type", "STEP")]),
        4.0
    );
    assert_eq!(
        m.value("durable_operations_finished_total", &[("type", "WAIT")]),
        1.0
    );
    assert_eq!(m.hist("durable_execution_operations", &[]).sum, 7.0);
    // wait-in-child: 229.454 → 230.472, scheduled for 230.454.
    approx(m.hist("durable_wait_duration_seconds", &[]).sum, 1.018);
    approx(m.hist("durable_wait_lateness_seconds", &[]).sum, 0.018);
    assert_eq!(m.hist("durable_wait_lateness_seconds", &[]).le(0.01), 0.0);
    assert_eq!(m.hist("durable_wait_lateness_seconds", &[]).le(0.05), 1.0);
}

#[test]
fn stopped_and_timed_out_executions_finish_with_their_status() {
    // Both: first-step, then a 30 s wait cut short by the end of the execution.
    for (name, status, duration, wait, suspended) in [
        // 229.157 → 231.702; the wait from 229.573; suspended from 229.721.
        ("stopped", "STOPPED", 2.545, 2.129, 1.981),
        // 229.169 → 232.216; the wait from 229.725; suspended from 229.873.
        ("timed-out", "TIMED_OUT", 3.047, 2.491, 2.343),
    ] {
        let m = fixture(name);
        assert_eq!(
            m.value("durable_executions_finished_total", &[("status", status)]),
            1.0,
            "{name}"
        );
        assert_eq!(
            m.series("durable_executions_finished_total", &[]).len(),
            1,
            "{name}"
        );
        let d = m.hist("durable_execution_duration_seconds", &[("status", status)]);
        assert_eq!(d.count, 1.0, "{name}");
        approx(d.sum, duration);
        // The wait still open is counted when the execution ends, with its last status and
        // its time until then; it did not succeed, so it is no wait duration.
        assert_eq!(
            m.value(
                "durable_operations_finished_total",
                &[("type", "WAIT"), ("status", "STARTED")]
            ),
            1.0,
            "{name}"
        );
        approx(
            m.hist("durable_operation_duration_seconds", &[("type", "WAIT")])
                .sum,
            wait,
        );
        assert!(
            m.series("durable_wait_duration_seconds_count", &[])
                .is_empty(),
            "{name}"
        );
        // Suspended from the only invocation's end until the execution ended.
        let s = m.hist("durable_suspension_duration_seconds", &[]);
        assert_eq!(s.count, 1.0, "{name}");
        approx(s.sum, suspended);
        assert_eq!(
            m.value("durable_invocations_total", &[("status", "PENDING")]),
            1.0,
            "{name}"
        );
    }
}

#[test]
fn failures_count_failed_steps_and_executions() {
    // execution-fails: good-step, then fatal-step fails without a retry
    // (NextAttemptDelaySeconds 0), and the execution fails.
    let m = fixture("execution-fails");
    assert_eq!(
        m.value("durable_executions_finished_total", &[("status", "FAILED")]),
        1.0
    );
    assert_eq!(
        m.value(
            "durable_operations_finished_total",
            &[("type", "STEP"), ("status", "FAILED")]
        ),
        1.0
    );
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "FAILED")]),
        1.0
    );
    assert!(m.series("durable_step_retries_total", &[]).is_empty());
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "FAILED")]),
        1.0
    );
    approx(
        m.hist(
            "durable_execution_duration_seconds",
            &[("status", "FAILED")],
        )
        .sum,
        229.713 - 229.145,
    );

    // step-fails-permanently: doomed-step fails, is retried once after 1 s, fails for good;
    // cleanup succeeds and so does the execution.
    let m = fixture("step-fails-permanently");
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "FAILED")]),
        2.0
    );
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "SUCCEEDED")]),
        1.0
    );
    assert_eq!(m.value("durable_step_retries_total", &[]), 1.0);
    approx(
        m.hist("durable_step_retry_backoff_seconds", &[]).sum,
        230.443 - 229.430,
    );
    for status in ["FAILED", "SUCCEEDED"] {
        assert_eq!(
            m.value(
                "durable_operations_finished_total",
                &[("type", "STEP"), ("status", status)]
            ),
            1.0,
            "{status}"
        );
    }
    assert_eq!(
        m.value(
            "durable_executions_finished_total",
            &[("status", "SUCCEEDED")]
        ),
        1.0
    );

    // unknown-function: ExecutionStarted, ExecutionFailed 10 ms later; nothing ran.
    let m = fixture("unknown-function");
    assert_eq!(
        m.value("durable_executions_finished_total", &[("status", "FAILED")]),
        1.0
    );
    approx(
        m.hist(
            "durable_execution_duration_seconds",
            &[("status", "FAILED")],
        )
        .sum,
        0.010,
    );
    assert!(m.series("durable_invocations_total", &[]).is_empty());
    assert!(
        m.series("durable_operations_finished_total", &[])
            .is_empty()
    );
    let inv = m.hist("durable_execution_invocations", &[]);
    assert_eq!((inv.count, inv.sum, inv.le(1.0)), (1.0, 0.0, 1.0));
    let ops = m.hist("durable_execution_operations", &[]);
    assert_eq!((ops.count, ops.sum, ops.le(10.0)), (1.0, 0.0, 1.0));
}

#[test]
fn steps_basic_attempt_durations_fall_in_their_buckets() {
    let m = fixture("steps-basic");
    // add, times-ten, greet take 0 ms; slow-at-least-once 229.545 → 230.957 (1.412 s),
    // slow-at-most-once 230.966 → 232.472 (1.506 s).
    let a = m.hist("durable_step_attempt_duration_seconds", &[]);
    assert_eq!(a.count, 5.0);
    approx(a.sum, 1.412 + 1.506);
    assert_eq!(a.le(0.001), 3.0);
    assert_eq!(a.le(1.0), 3.0);
    assert_eq!(a.le(2.5), 5.0);
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "SUCCEEDED")]),
        5.0
    );
    assert!(m.series("durable_step_retries_total", &[]).is_empty());
    // One invocation, which ended the execution.
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "SUCCEEDED")]),
        1.0
    );
    assert!(
        m.series("durable_suspension_duration_seconds_count", &[])
            .is_empty()
    );
}

#[test]
fn every_event_type_real_service_history() {
    let m = handwritten();
    let fq = [("function", "orders"), ("qualifier", "$LATEST")];
    assert_eq!(m.value("durable_executions_started_total", &fq), 1.0);
    assert_eq!(
        m.value("durable_executions_finished_total", &[("status", "FAILED")]),
        1.0
    );
    // 413.589 → 1835.455.
    let d = m.hist(
        "durable_execution_duration_seconds",
        &[("status", "FAILED")],
    );
    approx(d.sum, 1421.866);
    assert_eq!(d.le(1800.0), 1.0);
    assert_eq!(d.le(600.0), 0.0);

    // Six invocations with InvocationCompletedDetails (exact bounds): five suspended the
    // execution, the sixth carried an Error and the execution failed.
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "PENDING")]),
        5.0
    );
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "FAILED")]),
        1.0
    );
    assert_eq!(m.sum("durable_invocations_total", &[]), 6.0);
    // PENDING: 1.046, 0.473, 0.187, 0.089, 0.127 s.
    let p = m.hist(
        "durable_invocation_duration_seconds",
        &[("status", "PENDING")],
    );
    assert_eq!(p.count, 5.0);
    approx(p.sum, 1.046 + 0.473 + 0.187 + 0.089 + 0.127);
    assert_eq!(
        [
            p.le(0.05),
            p.le(0.1),
            p.le(0.25),
            p.le(0.5),
            p.le(1.0),
            p.le(2.5)
        ],
        [0.0, 1.0, 3.0, 4.0, 4.0, 5.0]
    );
    // FAILED: 1835.281 → 1835.451.
    let f = m.hist(
        "durable_invocation_duration_seconds",
        &[("status", "FAILED")],
    );
    assert_eq!(f.count, 1.0);
    approx(f.sum, 0.170);
    assert_eq!([f.le(0.1), f.le(0.25)], [0.0, 1.0]);
    let per = m.hist("durable_execution_invocations", &[]);
    assert_eq!(
        (per.count, per.sum, per.le(5.0), per.le(10.0)),
        (1.0, 6.0, 0.0, 1.0)
    );

    // Suspended between invocations: each end to the next one's StartTimestamp:
    // 5.100, 60.300, 120.140, 31.050, 1203.060 s.
    let s = m.hist("durable_suspension_duration_seconds", &[]);
    assert_eq!(s.count, 5.0);
    approx(s.sum, 5.1 + 60.3 + 120.14 + 31.05 + 1203.06);
    assert_eq!(
        [
            s.le(5.0),
            s.le(15.0),
            s.le(60.0),
            s.le(120.0),
            s.le(300.0),
            s.le(1800.0)
        ],
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );

    // 17 operations; the API allows 3,000.
    let ops = m.hist("durable_execution_operations", &[]);
    assert_eq!((ops.count, ops.sum), (1.0, 17.0));
    assert_eq!([ops.le(10.0), ops.le(50.0)], [0.0, 1.0]);
    assert_eq!(m.sum("durable_operations_finished_total", &[]), 17.0);

    // Steps: validate, charge-card (failed once, retried after 5.25 s), submitter.
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "FAILED")]),
        1.0
    );
    assert_eq!(
        m.value("durable_step_attempts_total", &[("outcome", "SUCCEEDED")]),
        3.0
    );
    assert_eq!(m.value("durable_step_retries_total", &[]), 1.0);
    let b = m.hist("durable_step_retry_backoff_seconds", &[]);
    approx(b.sum, 5.25);
    assert_eq!([b.le(5.0), b.le(10.0)], [0.0, 1.0]);
    // 0.004 + 0.800 + 0.350 + 0.050.
    approx(
        m.hist("durable_step_attempt_duration_seconds", &[]).sum,
        1.204,
    );

    // cool-off (60 s, resumed 0.27 s late) succeeded; grace-period was cancelled: counted as
    // an operation, not as a wait duration.
    let w = m.hist("durable_wait_duration_seconds", &[]);
    assert_eq!(w.count, 1.0);
    approx(w.sum, 60.27);
    assert_eq!([w.le(60.0), w.le(120.0)], [0.0, 1.0]);
    let late = m.hist("durable_wait_lateness_seconds", &[]);
    approx(late.sum, 0.27);
    assert_eq!([late.le(0.25), late.le(0.5)], [0.0, 1.0]);
    assert_eq!(
        m.value(
            "durable_operations_finished_total",
            &[("type", "WAIT"), ("status", "CANCELLED")]
        ),
        1.0
    );

    // Callbacks: carrier-pickup timed out after 120.13 s, manual-review's succeeded after
    // 1200.072 s, refund-window failed after 1203.02 s.
    for (outcome, secs) in [
        ("TIMED_OUT", 120.13),
        ("SUCCEEDED", 1200.072),
        ("FAILED", 1203.02),
    ] {
        let c = m.hist("durable_callback_duration_seconds", &[("outcome", outcome)]);
        assert_eq!(c.count, 1.0, "{outcome}");
        approx(c.sum, secs);
        assert_eq!(c.le(1800.0), 1.0, "{outcome}");
    }
    assert_eq!(
        m.hist(
            "durable_callback_duration_seconds",
            &[("outcome", "TIMED_OUT")]
        )
        .le(120.0),
        0.0
    );

    // Chained invokes: one of each outcome.
    for outcome in ["SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"] {
        assert_eq!(
            m.value("durable_chained_invokes_total", &[("outcome", outcome)]),
            1.0,
            "{outcome}"
        );
    }
    // Contexts: the parallel, its two branches (one failed), the child context (failed),
    // wait_for_callback's context.
    for (st, status, n) in [
        ("Parallel", "SUCCEEDED", 1.0),
        ("ParallelBranch", "SUCCEEDED", 1.0),
        ("ParallelBranch", "FAILED", 1.0),
        ("RunInChildContext", "FAILED", 1.0),
        ("WaitForCallback", "SUCCEEDED", 1.0),
    ] {
        assert_eq!(
            m.value(
                "durable_operations_finished_total",
                &[("type", "CONTEXT"), ("subtype", st), ("status", status)]
            ),
            n,
            "{st} {status}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bugs found while writing these tests, now fixed: kept as regression tests.

/// An execution whose last invocation ended with the execution (no InvocationCompleted after
/// its work) counts that invocation in `durable_invocations_total` but not in
/// `durable_execution_invocations`: `ExecutionInfo::invocations` counts InvocationCompleted
/// events only, while the fold's `finish_execution` also emits `InvocationEnded` for the
/// uncompleted invocation.
#[test]
fn an_invocation_ended_by_the_execution_counts_in_invocations_per_execution() {
    let dir = tempfile::tempdir().unwrap();
    // steps-basic without its InvocationCompleted: one invocation that ended the execution.
    let path = derived_history(dir.path(), &history_path("steps-basic"), |e| {
        e["EventType"] != "InvocationCompleted"
    });
    let m = parse(&convert_text(&arn_of("steps-basic"), &path));
    assert_eq!(
        m.value("durable_invocations_total", &[("status", "SUCCEEDED")]),
        1.0
    );
    assert_eq!(
        m.hist("durable_execution_invocations", &[]).sum,
        m.sum("durable_invocations_total", &[]),
        "invocations per execution vs invocations"
    );
}

/// A step attempt whose invocation was lost (StepStarted, then StepStarted again with no end
/// event) is ended as interrupted; the next attempt is a retry, but `durable_step_retries_total`
/// counts back-offs (`Transition::BackoffEnded`), which the fold emits only after an attempt that
/// ended by its own event.
#[test]
fn an_attempt_after_an_interrupted_one_counts_as_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    // retry-then-succeed keeping StepStarted (2), InvocationCompleted (4), StepStarted (8),
    // StepSucceeded (9), InvocationCompleted (10), ExecutionSucceeded (11): attempt 1 has no
    // end event, attempt 2 succeeds.
    let path = derived_history(dir.path(), &history_path("retry-then-succeed"), |e| {
        ![3, 5, 6, 7].contains(&e["EventId"].as_u64().unwrap())
    });
    let m = parse(&convert_text(&arn_of("retry-then-succeed"), &path));
    assert_eq!(m.sum("durable_step_attempts_total", &[]), 2.0);
    assert_eq!(
        m.sum("durable_step_retries_total", &[]),
        1.0,
        "step attempts after the first"
    );
}

/// A running execution whose reads fail (the API is gone) falls behind: the read lag should grow
/// with the time since its history was last read. `Coordinator::on_polled` sets `last_read`
/// before it looks at the poll's error, so a failed poll resets the lag; it never exceeds one
/// poll's retries (at most about 6 s: 4 back-offs of up to 0.4, 0.8, 1.6 and 3.2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_lag_grows_while_reads_fail() {
    use std::time::Duration;

    use crate::common::daemon::{Daemon, add_all, scrape, setup, wait_for};
    use durable_exporter::synth::{SynthSpec, history};

    let fake = durable_exporter::sim::scripted::ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/lag/0f9e8d7c-6b5a-4938-8271-605f4e3d2c01".to_owned();
    let events = history(&SynthSpec {
        operations: 10,
        finished: false,
        ..SynthSpec::default()
    });
    let n = events.len() as u64;
    add_all(&fake, &[(arn.clone(), events)]);
    let s = setup(&fake, receiver.addr, std::slice::from_ref(&arn), "");
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the history read",
        |v| v.get(&arn).is_some_and(|x| x.read >= n),
    )
    .await;
    fake.stop().await;
    let stopped = std::time::Instant::now();

    // Scrape until the lag passes what one poll's retries could explain (about 6 s); a lag
    // reset by every failed poll never gets there.
    let (body, lag) = loop {
        let body = scrape(s.http).await;
        let lag = parse(&body).value("durable_exporter_read_lag_seconds", &[]);
        if lag >= 7.5 || stopped.elapsed() > Duration::from_secs(30) {
            break (body, lag);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        lag >= 7.5,
        "no successful read for {:?}, yet durable_exporter_read_lag_seconds is {lag}",
        stopped.elapsed()
    );
    assert!(
        lag <= stopped.elapsed().as_secs_f64() + 2.0,
        "the lag {lag} is longer than the outage {:?} (and a poll interval)",
        stopped.elapsed()
    );
    assert!(
        parse(&body).value(
            "durable_exporter_api_requests_total",
            &[("outcome", "transport_error")]
        ) > 0.0,
        "the reads did not fail:\n{body}"
    );
}

/// `metrics.operation_name_label` (README, config/durable-exporter.yaml) is parsed and checked,
/// but `daemon::run` builds its registry with `Metrics::new(NameLabel::Off)` whatever the config
/// says, so no `name` label ever appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_applies_the_operation_name_label_policy() {
    use std::time::Duration;

    use crate::common::daemon::{Daemon, add_all, all_finished, scrape, setup, wait_for};
    use durable_exporter::synth::{SynthSpec, history};

    let fake = durable_exporter::sim::scripted::ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/names/0f9e8d7c-6b5a-4938-8271-605f4e3d2c02".to_owned();
    let execs = vec![(
        arn.clone(),
        history(&SynthSpec {
            operations: 20,
            ..SynthSpec::default()
        }),
    )];
    add_all(&fake, &execs);
    let s = setup(
        &fake,
        receiver.addr,
        std::slice::from_ref(&arn),
        "metrics:\n  operation_name_label: top_n\n  operation_names_top_n: 3\n",
    );
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(&execs),
    )
    .await;
    let m = parse(&scrape(s.http).await);
    let ops = m.series("durable_operations_finished_total", &[]);
    assert!(!ops.is_empty(), "{}", m.text);
    let names: BTreeSet<&str> = ops
        .iter()
        .map(|s| {
            s.labels
                .get("name")
                .unwrap_or_else(|| panic!("no name label under top_n: {s:?}"))
                .as_str()
        })
        .collect();
    assert!(
        names.iter().filter(|n| **n != "other").count() <= 3,
        "{names:?}"
    );
}
