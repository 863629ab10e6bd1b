use super::*;
use crate::history::json::parse_history;

/// Events from a JSON list of wire events (timestamps in epoch seconds).
fn events(json: &str) -> Vec<Event> {
    parse_history(format!("{{\"Events\":[{json}]}}").as_bytes())
        .expect("test history parses")
        .events
}

fn fixture(name: &str) -> Vec<Event> {
    let path = format!(
        "{}/tests/fixtures/emulator/{name}/history_IncludeExecutionData_true.json",
        env!("CARGO_MANIFEST_DIR")
    );
    parse_history(&std::fs::read(path).unwrap()).unwrap().events
}

/// A transition summarised as a line, so sequences compare easily.
fn line(t: Transition<'_>) -> String {
    match t {
        Transition::ExecutionStarted(i) => format!("exec-start {}", i.start.unwrap().millis()),
        Transition::OperationStarted(o) => {
            format!("start {} {}", o.display_name(), o.start.millis())
        }
        Transition::AttemptEnded(o, a) => format!(
            "attempt {} #{} {} {}..{} inv{}",
            o.display_name(),
            a.number,
            a.outcome.as_str(),
            a.start.millis(),
            a.end.millis(),
            a.invocation
        ),
        Transition::BackoffEnded(o, b) => format!(
            "backoff {} after#{} {}..{} sched:{:?}",
            o.display_name(),
            b.after_attempt,
            b.start.millis(),
            b.end.millis(),
            b.scheduled_delay_seconds
        ),
        Transition::OperationFinished(o) => format!(
            "finish {} {} {}..{} inv{}{}",
            o.display_name(),
            o.status.as_str(),
            o.start.millis(),
            o.end.unwrap().millis(),
            o.end_invocation.unwrap(),
            if o.unfinished { " unfinished" } else { "" }
        ),
        Transition::InvocationEnded(i) => format!(
            "invocation {} {} {}..{}{}",
            i.index,
            i.status.as_str(),
            i.start.millis(),
            i.end.millis(),
            if i.completed { "" } else { " incomplete" }
        ),
        Transition::Suspended(s) => format!(
            "suspended after{} {}..{} {:?}{}",
            s.after_invocation,
            s.start.millis(),
            s.end.millis(),
            s.waiting_for,
            if s.ended_execution { " ended" } else { "" }
        ),
        Transition::ExecutionFinished(i) => format!("exec-end {}", i.status.as_str()),
        Transition::Anomaly(a) => format!("anomaly {} #{}", a.kind.as_str(), a.event_id),
    }
}

fn fold(evs: &[Event]) -> (Execution, Vec<String>) {
    let mut ex = Execution::new(
        "arn",
        FoldOptions {
            keep_finished: true,
        },
    );
    let mut lines = Vec::new();
    ex.apply_all(
        evs,
        &mut FnObserver(|t: Transition<'_>| lines.push(line(t))),
    );
    (ex, lines)
}

const START: &str = r#"{"EventType":"ExecutionStarted","EventId":1,"EventTimestamp":100,"Id":"ex","Name":"run","ExecutionStartedDetails":{"Input":{"Payload":"{}"},"ExecutionTimeout":600}}"#;

#[test]
fn a_retried_step_ends_attempts_then_the_step() {
    let evs = events(&format!(
        r#"{START},
        {{"EventType":"StepStarted","EventId":2,"EventTimestamp":101,"Id":"s","Name":"charge","SubType":"Step"}},
        {{"EventType":"StepFailed","EventId":3,"EventTimestamp":102,"Id":"s","Name":"charge","SubType":"Step","StepFailedDetails":{{"Error":{{"Payload":{{"ErrorType":"Timeout","ErrorMessage":"slow"}}}},"RetryDetails":{{"CurrentAttempt":1,"NextAttemptDelaySeconds":5}}}}}},
        {{"EventType":"InvocationCompleted","EventId":4,"EventTimestamp":103}},
        {{"EventType":"StepStarted","EventId":5,"EventTimestamp":108,"Id":"s","Name":"charge","SubType":"Step"}},
        {{"EventType":"StepSucceeded","EventId":6,"EventTimestamp":109,"Id":"s","Name":"charge","SubType":"Step","StepSucceededDetails":{{"Result":{{"Payload":"1"}}}}}},
        {{"EventType":"InvocationCompleted","EventId":7,"EventTimestamp":110}},
        {{"EventType":"ExecutionSucceeded","EventId":8,"EventTimestamp":111,"Id":"ex"}}"#
    ));
    let (ex, lines) = fold(&evs);
    assert_eq!(
        lines,
        [
            "exec-start 100000",
            "start charge 101000",
            "attempt charge #1 FAILED 101000..102000 inv1",
            "invocation 1 PENDING 100000..103000",
            "backoff charge after#1 102000..108000 sched:Some(5)",
            "attempt charge #2 SUCCEEDED 108000..109000 inv2",
            "finish charge SUCCEEDED 101000..109000 inv2",
            "suspended after1 103000..108000 [\"RETRY\"]",
            "invocation 2 SUCCEEDED 103000..110000",
            "exec-end SUCCEEDED",
        ]
    );
    let step = ex.operations().into_iter().find(|o| &*o.id == "s").unwrap();
    assert_eq!(step.step().unwrap().attempts, 2);
    assert_eq!(step.step().unwrap().failed_attempts, 1);
    assert!(ex.is_finished());
    assert_eq!(ex.next_change(), None);
}

#[test]
fn a_pending_retry_is_the_next_change_and_turns_ready_when_due() {
    let evs = events(&format!(
        r#"{START},
        {{"EventType":"StepStarted","EventId":2,"EventTimestamp":101,"Id":"s","SubType":"Step"}},
        {{"EventType":"StepFailed","EventId":3,"EventTimestamp":102,"Id":"s","SubType":"Step","StepFailedDetails":{{"RetryDetails":{{"CurrentAttempt":1,"NextAttemptDelaySeconds":5}}}}}},
        {{"EventType":"InvocationCompleted","EventId":4,"EventTimestamp":103}},
        {{"EventType":"CallbackStarted","EventId":5,"EventTimestamp":108,"Id":"c","SubType":"Callback","CallbackStartedDetails":{{"CallbackId":"cb","Timeout":30}}}}"#
    ));
    let (mut ex, _) = fold(&evs[..4]);
    let s = ex.open_operations()[0];
    assert_eq!(s.status, OperationStatus::Pending);
    assert_eq!(s.step().unwrap().next_attempt, Some(Timestamp(107_000)));
    assert_eq!(ex.next_change(), Some(Timestamp(107_000)));
    ex.apply(&evs[4], &mut FnObserver(|_: Transition<'_>| {}));
    let s = ex.open_operations()[0];
    assert_eq!(s.status, OperationStatus::Ready);
    // The retry is due already; the callback times out at 108 + 30 s.
    assert_eq!(ex.next_change(), Some(Timestamp(107_000)));
}

#[test]
fn next_change_covers_waits_callback_timeouts_and_the_execution_timeout() {
    let evs = events(&format!(
        r#"{START},
        {{"EventType":"WaitStarted","EventId":2,"EventTimestamp":101,"Id":"w","SubType":"Wait","WaitStartedDetails":{{"Duration":60,"ScheduledEndTimestamp":161}}}},
        {{"EventType":"CallbackStarted","EventId":3,"EventTimestamp":102,"Id":"c","SubType":"Callback","CallbackStartedDetails":{{"CallbackId":"cb","Timeout":30}}}},
        {{"EventType":"ChainedInvokeStarted","EventId":4,"EventTimestamp":103,"Id":"i","SubType":"ChainedInvoke","ChainedInvokeStartedDetails":{{"FunctionName":"f"}}}}"#
    ));
    let (ex, _) = fold(&evs[..2]);
    assert_eq!(ex.next_change(), Some(Timestamp(161_000)));
    let (ex, _) = fold(&evs[..3]);
    assert_eq!(ex.next_change(), Some(Timestamp(132_000)));
    let (ex, _) = fold(&evs);
    assert_eq!(ex.next_change(), Some(Timestamp(132_000)));
    // Only the execution's own time-out (600 s) bounds a lone chained invoke.
    let only_invoke: Vec<Event> = vec![evs[0].clone(), {
        let mut e = evs[3].clone();
        e.id = 2;
        e
    }];
    let (ex, _) = fold(&only_invoke);
    assert_eq!(ex.next_change(), Some(Timestamp(700_000)));
}

#[test]
fn invocation_status_comes_from_the_event_after_it() {
    let failed = events(&format!(
        r#"{START},
        {{"EventType":"InvocationCompleted","EventId":2,"EventTimestamp":101,"InvocationCompletedDetails":{{"StartTimestamp":100.5,"EndTimestamp":101,"RequestId":"r1","Error":{{"Payload":{{"ErrorType":"Crash"}}}}}}}},
        {{"EventType":"InvocationCompleted","EventId":3,"EventTimestamp":103,"InvocationCompletedDetails":{{"StartTimestamp":102,"EndTimestamp":103,"RequestId":"r2"}}}},
        {{"EventType":"ExecutionFailed","EventId":4,"EventTimestamp":104,"Id":"ex"}}"#
    ));
    let (_, lines) = fold(&failed);
    assert_eq!(
        lines,
        [
            "exec-start 100000",
            "invocation 1 RETRYING 100500..101000",
            "suspended after1 101000..102000 []",
            "invocation 2 FAILED 102000..103000",
            "exec-end FAILED",
        ]
    );
}

#[test]
fn a_timed_out_execution_was_suspended_until_the_end_and_closes_open_operations() {
    let (ex, lines) = fold(&fixture("timed-out"));
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("suspended")).count(),
        1
    );
    let susp = lines.iter().find(|l| l.starts_with("suspended")).unwrap();
    assert!(susp.ends_with("[\"WAIT\"] ended"), "{susp}");
    let wait = lines
        .iter()
        .find(|l| l.starts_with("finish long-wait"))
        .unwrap();
    assert!(
        wait.contains("STARTED") && wait.ends_with("unfinished"),
        "{wait}"
    );
    assert_eq!(ex.info().status, ExecutionStatus::TimedOut);
    assert!(ex.open_operations().is_empty());
    let exec_op = &ex.operations()[0];
    assert_eq!(exec_op.op_type(), OperationType::Execution);
    assert_eq!(exec_op.status, OperationStatus::TimedOut);
}

#[test]
fn fixtures_fold_without_anomalies_into_the_operations_they_hold() {
    let cases: [(&str, usize, ExecutionStatus); 12] = [
        ("callbacks", 6, ExecutionStatus::Succeeded),
        ("chained-invoke", 3, ExecutionStatus::Succeeded),
        ("child-contexts", 7, ExecutionStatus::Succeeded),
        ("execution-fails", 2, ExecutionStatus::Failed),
        ("parallel-map", 15, ExecutionStatus::Succeeded),
        ("retry-then-succeed", 1, ExecutionStatus::Succeeded),
        ("step-fails-permanently", 2, ExecutionStatus::Succeeded),
        ("steps-basic", 5, ExecutionStatus::Succeeded),
        ("stopped", 2, ExecutionStatus::Stopped),
        ("timed-out", 2, ExecutionStatus::TimedOut),
        ("unknown-function", 0, ExecutionStatus::Failed),
        ("waits", 5, ExecutionStatus::Succeeded),
    ];
    for (name, ops, status) in cases {
        let (ex, lines) = fold(&fixture(name));
        assert!(
            !lines.iter().any(|l| l.starts_with("anomaly")),
            "{name}: {lines:?}"
        );
        assert_eq!(ex.info().status, status, "{name}");
        // The EXECUTION operation plus the rest.
        assert_eq!(ex.operations().len(), ops + 1, "{name}");
        assert!(
            ex.operations().iter().all(|o| o.end.is_some()),
            "{name}: every operation ends once the execution has"
        );
    }
}

#[test]
fn the_final_step_failure_has_no_delay_and_ends_the_step() {
    let (ex, _) = fold(&fixture("step-fails-permanently"));
    let doomed = ex
        .operations()
        .into_iter()
        .find(|o| o.name.as_deref() == Some("doomed-step"))
        .unwrap();
    assert_eq!(doomed.status, OperationStatus::Failed);
    assert_eq!(doomed.step().unwrap().attempts, 2);
    assert_eq!(
        doomed.error.as_ref().unwrap().error_message.as_deref(),
        Some("permanent failure (attempt 2)")
    );
}

#[test]
fn wait_for_condition_polls_are_succeeded_attempts_of_one_step() {
    let (ex, lines) = fold(&fixture("parallel-map"));
    let polls: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("attempt poll-until-3"))
        .collect();
    assert_eq!(polls.len(), 3, "{lines:?}");
    assert!(polls.iter().all(|l| l.contains("SUCCEEDED")));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("backoff poll-until-3"))
            .count(),
        2
    );
    let op = ex
        .operations()
        .into_iter()
        .find(|o| o.name.as_deref() == Some("poll-until-3"))
        .unwrap();
    assert_eq!(op.sub_type.as_deref(), Some("WaitForCondition"));
    assert_eq!(op.status, OperationStatus::Succeeded);
}

#[test]
fn operations_link_to_the_invocation_they_finished_in() {
    let (_, lines) = fold(&fixture("waits"));
    // wait-3s started in invocation 1 and resumed in invocation 2.
    let w = lines
        .iter()
        .find(|l| l.starts_with("finish wait-3s"))
        .unwrap();
    assert!(w.ends_with("inv2"), "{w}");
    let w = lines
        .iter()
        .find(|l| l.starts_with("finish wait-2s"))
        .unwrap();
    assert!(w.ends_with("inv3"), "{w}");
}

#[test]
fn inconsistent_histories_are_drawn_with_anomalies_never_a_panic() {
    let evs = events(&format!(
        r#"{START},
        {{"EventType":"StepSucceeded","EventId":2,"EventTimestamp":101,"Id":"orphan","SubType":"Step"}},
        {{"EventType":"StepStarted","EventId":3,"EventTimestamp":102,"Id":"kid","ParentId":"ghost","SubType":"Step"}},
        {{"EventType":"ExecutionPaused","EventId":4,"EventTimestamp":103}},
        {{"EventType":"WaitStarted","EventId":6,"EventTimestamp":104,"Id":"w","SubType":"Wait"}},
        {{"EventType":"WaitStarted","EventId":7,"EventTimestamp":104,"Id":"w","SubType":"Wait"}},
        {{"EventType":"StepSucceeded","EventId":8,"EventTimestamp":105,"Id":"w","SubType":"Step"}},
        {{"EventType":"StepStarted","EventId":9,"EventTimestamp":106,"SubType":"Step"}},
        {{"EventType":"StepSucceeded","EventId":10,"EventTimestamp":107,"Id":"orphan","SubType":"Step"}},
        {{"EventType":"ExecutionSucceeded","EventId":11,"EventTimestamp":108,"Id":"ex"}},
        {{"EventType":"InvocationCompleted","EventId":12,"EventTimestamp":109}}"#
    ));
    let (ex, lines) = fold(&evs);
    let anomalies: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("anomaly "))
        .collect();
    assert_eq!(
        anomalies,
        [
            "no_start #2",
            "unknown_parent #3",
            "unknown_event_type #4",
            "event_gap #6",
            "repeated_start #7",
            "type_mismatch #8",
            "missing_operation_id #9",
            "after_finish #10",
            "after_terminal #12",
        ]
    );
    assert!(ex.is_finished());
    // The orphan step was drawn from its finish, the kid closed at the end.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("finish STEP SUCCEEDED 101000..101000"))
    );
    assert!(lines.iter().any(|l| l.contains("unfinished")));
    let kid = ex
        .operations()
        .into_iter()
        .find(|o| &*o.id == "kid")
        .unwrap();
    assert!(!kid.parent_known);
}

#[test]
fn duplicates_are_skipped_and_reported() {
    let evs = fixture("waits");
    let (once, _) = fold(&evs);
    let mut ex = Execution::new(
        "arn",
        FoldOptions {
            keep_finished: true,
        },
    );
    let mut lines = Vec::new();
    ex.apply_all(
        &evs[..6],
        &mut FnObserver(|t: Transition<'_>| lines.push(line(t))),
    );
    ex.apply_all(
        &evs[3..],
        &mut FnObserver(|t: Transition<'_>| lines.push(line(t))),
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("anomaly duplicate_event"))
            .count(),
        3
    );
    assert_eq!(ex.operations(), once.operations());
    assert_eq!(ex.last_event_id(), evs.len() as u64);
}

#[test]
fn an_interrupted_attempt_is_ended_by_the_next_start() {
    let evs = events(&format!(
        r#"{START},
        {{"EventType":"StepStarted","EventId":2,"EventTimestamp":101,"Id":"s","Name":"once","SubType":"Step"}},
        {{"EventType":"InvocationCompleted","EventId":3,"EventTimestamp":102,"InvocationCompletedDetails":{{"StartTimestamp":100,"EndTimestamp":102,"RequestId":"r1","Error":{{"Payload":{{"ErrorType":"Sandbox.Timedout"}}}}}}}},
        {{"EventType":"StepStarted","EventId":4,"EventTimestamp":104,"Id":"s","Name":"once","SubType":"Step"}},
        {{"EventType":"StepSucceeded","EventId":5,"EventTimestamp":105,"Id":"s","Name":"once","SubType":"Step"}}"#
    ));
    let (ex, lines) = fold(&evs);
    assert!(
        lines.contains(&"attempt once #1 FAILED 101000..104000 inv1".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&"attempt once #2 SUCCEEDED 104000..105000 inv2".to_owned()));
    assert!(lines.contains(&"invocation 1 RETRYING 100000..102000".to_owned()));
    assert!(!ex.is_finished());
}

#[test]
fn the_execution_ending_inside_an_invocation_gets_that_invocation() {
    let evs = events(&format!(
        r#"{START},
        {{"EventType":"StepStarted","EventId":2,"EventTimestamp":101,"Id":"s","SubType":"Step"}},
        {{"EventType":"StepSucceeded","EventId":3,"EventTimestamp":102,"Id":"s","SubType":"Step"}},
        {{"EventType":"ExecutionSucceeded","EventId":4,"EventTimestamp":103,"Id":"ex"}}"#
    ));
    let (_, lines) = fold(&evs);
    assert!(
        lines.contains(&"invocation 1 SUCCEEDED 100000..103000 incomplete".to_owned()),
        "{lines:?}"
    );
}

#[test]
fn any_batching_gives_the_same_transitions() {
    for name in ["callbacks", "parallel-map", "retry-then-succeed", "stopped"] {
        let evs = fixture(name);
        let (whole, all_at_once) = fold(&evs);
        for size in 1..evs.len() {
            let mut ex = Execution::new(
                "arn",
                FoldOptions {
                    keep_finished: true,
                },
            );
            let mut lines = Vec::new();
            for chunk in evs.chunks(size) {
                ex.apply_all(
                    chunk,
                    &mut FnObserver(|t: Transition<'_>| lines.push(line(t))),
                );
            }
            assert_eq!(lines, all_at_once, "{name} in batches of {size}");
            assert_eq!(ex.operations(), whole.operations());
        }
    }
}

#[test]
fn without_keep_finished_only_open_operations_are_held() {
    let evs = fixture("parallel-map");
    let mut ex = Execution::new("arn", FoldOptions::default());
    ex.apply_all(&evs[..10], &mut FnObserver(|_: Transition<'_>| {}));
    // Execution + the open parallel, branch 1 and its wait (branches 0 and 2 finished).
    let ids: Vec<&str> = ex
        .operations()
        .iter()
        .map(|o| o.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [
            "parallel-map-554f2a00",
            "fan-out",
            "parallel-branch-1",
            "branch-b-wait"
        ]
    );
}

#[test]
fn a_snapshot_resumes_exactly_where_the_fold_was() {
    for name in [
        "callbacks",
        "parallel-map",
        "retry-then-succeed",
        "timed-out",
    ] {
        let evs = fixture(name);
        let (whole, all_at_once) = fold(&evs);
        for cut in 1..evs.len() {
            let mut lines = Vec::new();
            let mut first = Execution::new(
                "arn",
                FoldOptions {
                    keep_finished: true,
                },
            );
            first.apply_all(
                &evs[..cut],
                &mut FnObserver(|t: Transition<'_>| lines.push(line(t))),
            );
            // Through JSON text, as it is written to disk.
            let text = first.snapshot().to_string();
            let mut resumed = Execution::restore(serde_json::from_str(&text).unwrap())
                .expect("the snapshot reads back");
            assert_eq!(resumed.last_event_id(), cut as u64);
            resumed.apply_all(
                &evs[cut..],
                &mut FnObserver(|t: Transition<'_>| lines.push(line(t))),
            );
            assert_eq!(lines, all_at_once, "{name} resumed after event {cut}");
            assert_eq!(
                resumed.operations(),
                whole.operations(),
                "{name} after {cut}"
            );
            assert_eq!(resumed.next_change(), whole.next_change());
        }
    }
    assert!(Execution::restore(serde_json::json!({"not": "a fold"})).is_none());
}

#[test]
fn times_a_span_cannot_carry_are_kept_and_reported_once_per_event() {
    let evs = events(&format!(
        r#"{START},
        {{"EventType":"WaitStarted","EventId":2,"EventTimestamp":-1e12,"Id":"w","SubType":"Wait","WaitStartedDetails":{{"Duration":5,"ScheduledEndTimestamp":2.5e14}}}},
        {{"EventType":"InvocationCompleted","EventId":3,"EventTimestamp":102,"InvocationCompletedDetails":{{"StartTimestamp":-5,"EndTimestamp":102}}}},
        {{"EventType":"WaitSucceeded","EventId":4,"EventTimestamp":"1969-12-31T23:59:59Z","Id":"w","SubType":"Wait"}},
        {{"EventType":"ExecutionSucceeded","EventId":5,"EventTimestamp":110,"Id":"ex"}}"#
    ));
    // The readers keep every time as read, before the epoch too.
    assert_eq!(evs[1].timestamp, Timestamp(-1_000_000_000_000_000));
    let mut anomalies = Vec::new();
    let mut ex = Execution::new(
        "arn",
        FoldOptions {
            keep_finished: true,
        },
    );
    ex.apply_all(
        &evs,
        &mut FnObserver(|t: Transition<'_>| {
            if let Transition::Anomaly(a) = t {
                anomalies.push(a.clone());
            }
        }),
    );
    let ids: Vec<(u64, AnomalyKind)> = anomalies.iter().map(|a| (a.event_id, a.kind)).collect();
    assert_eq!(
        ids,
        [
            (2, AnomalyKind::TimestampOutOfRange),
            (3, AnomalyKind::TimestampOutOfRange),
            (4, AnomalyKind::TimestampOutOfRange),
        ]
    );
    // One anomaly for event 2, naming both of its fields and their values.
    let m = &anomalies[0].message;
    assert!(
        m.contains("EventTimestamp -1000000000000 (")
            && m.contains("ScheduledEndTimestamp 250000000000000 ("),
        "{m}"
    );
    assert!(
        anomalies[1]
            .message
            .contains("StartTimestamp -5 (1969-12-31T23:59:55.000Z)")
    );
    // Nothing is lost: the wait is there with its times as read.
    let wait = ex.operations().into_iter().find(|o| &*o.id == "w").unwrap();
    assert_eq!(wait.status, OperationStatus::Succeeded);
    assert_eq!(wait.start, Timestamp(-1_000_000_000_000_000));
    assert!(matches!(
        wait.details,
        Details::Wait {
            scheduled_end: Some(Timestamp(250_000_000_000_000_000)),
            ..
        }
    ));
    assert!(ex.is_finished());
}
