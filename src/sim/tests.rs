use std::collections::{BTreeSet, HashSet};

use super::*;
use crate::arn::ExecutionArn;
use crate::convert::convert;
use crate::history::json::parse_history;

const T0: i64 = 1_795_248_229_114;
const HOUR: i64 = 3_600_000;

fn sim(spec: SimSpec) -> Simulation {
    Simulation::new(spec, T0).expect("valid spec")
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn body(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).expect("JSON body")
}

/// Every event visible at `now`, read page by page through markers.
fn read_all(s: &Simulation, arn: &str, page: usize, now: i64) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut marker: Option<String> = None;
    let mut calls = 0;
    loop {
        let max = page.to_string();
        let mut params = q(&[("MaxItems", &max)]);
        if let Some(m) = &marker {
            params.push(("Marker".into(), m.clone()));
        }
        let r = s.history(arn, &Params(&params), now);
        calls += 1;
        events.extend(
            parse_history(r.body.as_bytes())
                .expect("a valid history page")
                .events,
        );
        let b = body(&r);
        match b.get("NextMarker").and_then(Value::as_str) {
            Some(m) => marker = Some(m.to_owned()),
            None => return (events, calls),
        }
    }
}

fn arn_of(s: &Simulation, i: usize) -> String {
    s.arns().nth(i).unwrap().to_owned()
}

#[test]
fn the_same_spec_gives_the_same_executions_and_histories() {
    let spec = SimSpec {
        executions: 50,
        ..SimSpec::default()
    };
    let (a, b) = (sim(spec.clone()), sim(spec));
    let arns: Vec<_> = a.arns().collect();
    assert_eq!(arns, b.arns().collect::<Vec<_>>());
    assert_eq!(arns.iter().collect::<HashSet<_>>().len(), 50);
    for arn in arns.iter().take(10) {
        let p = q(&[("MaxItems", "1000")]);
        assert_eq!(
            a.history(arn, &Params(&p), T0 + HOUR),
            b.history(arn, &Params(&p), T0 + HOUR)
        );
        assert!(
            ExecutionArn::parse(arn).is_ok(),
            "{arn} is a real-form durable execution ARN"
        );
    }
}

#[test]
fn histories_grow_by_appending_with_stable_event_ids() {
    let s = sim(SimSpec {
        executions: 20,
        ..SimSpec::default()
    });
    for i in 0..20 {
        let arn = arn_of(&s, i);
        let mut before: Vec<Event> = Vec::new();
        for now in [T0, T0 + 2_000, T0 + 60_000, T0 + HOUR, T0 + 48 * HOUR] {
            let (events, _) = read_all(&s, &arn, 1000, now);
            assert!(events.len() >= before.len());
            assert_eq!(&events[..before.len()], &before[..], "append-only");
            for (k, e) in events.iter().enumerate() {
                assert_eq!(e.id, k as u64 + 1);
                assert!(e.timestamp.millis() <= now, "no event from the future");
            }
            before = events;
        }
        assert!(
            before
                .last()
                .is_some_and(|e| e.details.terminal_status().is_some()),
            "every execution ends within two days"
        );
    }
}

#[test]
fn the_mix_is_realistic_valid_and_complete() {
    let s = sim(SimSpec {
        executions: 600,
        stopped_percent: 5,
        timed_out_percent: 5,
        ..SimSpec::default()
    });
    let end = T0 + 30 * 24 * HOUR;
    let mut statuses = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for arn in s.arns() {
        let (events, _) = read_all(&s, arn, 1000, end);
        let conversion = convert(
            &events,
            &ExecutionArn::parse(arn).unwrap(),
            None,
            Default::default(),
        );
        assert!(
            conversion.anomalies.is_empty(),
            "{arn}: {:?}",
            conversion.anomalies
        );
        for w in events.windows(2) {
            assert!(
                w[0].timestamp <= w[1].timestamp,
                "{arn}: times never go back"
            );
        }
        for e in &events {
            kinds.insert(e.details.event_type().to_owned());
            if let Some(st) = e.operation.as_ref().and_then(|o| o.sub_type.as_deref()) {
                kinds.insert(st.to_owned());
            }
        }
        let r = body(&s.get_execution(arn, &Params(&[]), end));
        statuses.insert(r["Status"].as_str().unwrap().to_owned());
        let first = &events[0];
        assert_eq!(
            first.operation.as_ref().unwrap().name.as_deref(),
            r["DurableExecutionName"].as_str(),
            "ExecutionStarted names the execution of the ARN"
        );
    }
    assert_eq!(
        statuses,
        ["FAILED", "STOPPED", "SUCCEEDED", "TIMED_OUT"]
            .map(String::from)
            .into()
    );
    for k in [
        "StepFailed",
        "WaitSucceeded",
        "CallbackSucceeded",
        "CallbackFailed",
        "CallbackTimedOut",
        "ContextStarted",
        "ChainedInvokeStarted",
        "InvocationCompleted",
        "Parallel",
        "Map",
        "ParallelBranch",
        "MapIteration",
        "WaitForCallback",
        "WaitForCondition",
        "RunInChildContext",
    ] {
        assert!(kinds.contains(k), "the mix has {k}: {kinds:?}");
    }
}

#[test]
fn pages_in_either_direction_join_into_the_whole_history() {
    let s = sim(SimSpec {
        executions: 5,
        min_operations: 30,
        max_operations: 60,
        ..SimSpec::default()
    });
    let arn = arn_of(&s, 0);
    let now = T0 + 10 * HOUR;
    let (whole, one) = read_all(&s, &arn, 1000, now);
    assert_eq!(one, 1);
    let (paged, calls) = read_all(&s, &arn, 7, now);
    assert_eq!(paged, whole);
    assert_eq!(calls, whole.len().div_ceil(7));
    // Reverse order.
    let mut back = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut p = q(&[("MaxItems", "9"), ("ReverseOrder", "true")]);
        if let Some(m) = &marker {
            p.push(("Marker".into(), m.clone()));
        }
        let r = s.history(&arn, &Params(&p), now);
        let b = body(&r);
        let ids: Vec<u64> = b["Events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["EventId"].as_u64().unwrap())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] == w[1] + 1),
            "newest first: {ids:?}"
        );
        back.extend(parse_history(r.body.as_bytes()).unwrap().events);
        match b.get("NextMarker").and_then(Value::as_str) {
            Some(m) => marker = Some(m.to_owned()),
            None => break,
        }
    }
    back.sort_by_key(|e| e.id);
    assert_eq!(back, whole);
}

#[test]
fn markers_are_opaque_bound_to_their_request_and_expire() {
    let s = sim(SimSpec {
        executions: 2,
        min_operations: 30,
        max_operations: 40,
        marker_ttl: Duration::from_secs(60),
        ..SimSpec::default()
    });
    let (a, b) = (arn_of(&s, 0), arn_of(&s, 1));
    let now = T0 + 10 * HOUR;
    let r = body(&s.history(&a, &Params(&q(&[("MaxItems", "3")])), now));
    let m = r["NextMarker"].as_str().unwrap().to_owned();
    assert!(m.parse::<u64>().is_err(), "not an EventId: {m}");
    let with =
        |arn: &str, at: i64| s.history(arn, &Params(&q(&[("MaxItems", "3"), ("Marker", &m)])), at);
    assert_eq!(with(&a, now + 1_000).status, 200);
    let other = with(&b, now + 1_000);
    assert_eq!(other.status, 400);
    assert!(other.body.contains("belongs to another request"));
    let expired = with(&a, now + 61_000);
    assert_eq!(expired.status, 400);
    assert!(expired.body.contains("expired"), "{}", expired.body);
    assert_eq!(expired.error_type, Some("InvalidParameterValueException"));
}

#[test]
fn bad_requests_get_the_api_errors() {
    let s = sim(SimSpec::default());
    let arn = arn_of(&s, 0);
    let cases = [
        (s.history("", &Params(&[]), T0), 400),
        (
            s.history(
                "arn:aws:lambda:us-east-1:1:function:x:$LATEST/durable-execution/n/none",
                &Params(&[]),
                T0,
            ),
            404,
        ),
        (
            s.history(&arn, &Params(&q(&[("MaxItems", "1001")])), T0),
            400,
        ),
        (s.history(&arn, &Params(&q(&[("MaxItems", "-1")])), T0), 400),
        (
            s.history(&arn, &Params(&q(&[("ReverseOrder", "maybe")])), T0),
            400,
        ),
        (s.history(&arn, &Params(&q(&[("Marker", "0011")])), T0), 400),
        (s.list("no-such-function", &Params(&[]), T0), 404),
        (
            s.list("order-processor", &Params(&q(&[("Statuses", "DONE")])), T0),
            400,
        ),
    ];
    for (i, (r, status)) in cases.into_iter().enumerate() {
        assert_eq!(r.status, status, "case {i}: {}", r.body);
        let b: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(b["Type"].as_str(), r.error_type, "case {i}");
    }
}

#[test]
fn listing_filters_by_function_status_and_time_and_pages() {
    let s = sim(SimSpec {
        executions: 300,
        spread: Duration::from_secs(600),
        ..SimSpec::default()
    });
    let now = T0 + 2 * HOUR;
    let mut seen = HashSet::new();
    for (f, _) in s.functions() {
        let mut marker: Option<String> = None;
        loop {
            let mut p = q(&[("MaxItems", "17")]);
            if let Some(m) = &marker {
                p.push(("Marker".into(), m.clone()));
            }
            let b = body(&s.list(f, &Params(&p), now));
            for item in b["DurableExecutions"].as_array().unwrap() {
                assert!(item["FunctionArn"].as_str().unwrap().contains(f));
                assert!(seen.insert(item["DurableExecutionArn"].as_str().unwrap().to_owned()));
            }
            match b.get("NextMarker").and_then(Value::as_str) {
                Some(m) => marker = Some(m.to_owned()),
                None => break,
            }
        }
    }
    assert_eq!(seen.len(), 300, "every execution listed once");
    let f = s.functions().next().unwrap().0.to_owned();
    let running = body(&s.list(
        &f,
        &Params(&q(&[("Statuses", "RUNNING"), ("MaxItems", "1000")])),
        now,
    ));
    for item in running["DurableExecutions"].as_array().unwrap() {
        assert_eq!(item["Status"], "RUNNING");
        assert!(item.get("EndTimestamp").is_none());
    }
    let other_qualifier = body(&s.list(&f, &Params(&q(&[("Qualifier", "7")])), now));
    assert_eq!(
        other_qualifier["DurableExecutions"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn answering_a_callback_makes_it_happen_now() {
    let s0 = sim(SimSpec {
        executions: 200,
        ..SimSpec::default()
    });
    // A pending callback some time after the start.
    let mut found = None;
    for now in (1..600).map(|k| T0 + k * 5_000) {
        if let Some(id) = s0.pending_callbacks(now).into_iter().next() {
            found = Some((id, now));
            break;
        }
    }
    let (id, now) = found.expect("some callback is pending within 50 minutes");
    let mut s = s0;
    let cb = s.callbacks[id.as_str()];
    let arn = s.executions[cb.execution as usize].arn.to_string();
    let (before, _) = read_all(&s, &arn, 1000, now);

    let r = s.answer_callback(&id, CallbackAnswer::Heartbeat, now);
    assert_eq!(r.status, 200);
    let r = s.answer_callback(
        &id,
        CallbackAnswer::Success(b"{\"approved\":true}".to_vec()),
        now,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (after, _) = read_all(&s, &arn, 1000, now);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "what was visible stays"
    );
    let outcome = &after[cb.outcome.unwrap() as usize];
    assert_eq!(
        outcome.timestamp.millis(),
        now.max(after[outcome.id as usize - 2].timestamp.millis())
    );
    match &outcome.details {
        EventDetails::CallbackSucceeded { result: Some(p) } => {
            assert_eq!(p.payload.as_deref(), Some("{\"approved\":true}"))
        }
        other => panic!("expected CallbackSucceeded, got {other:?}"),
    }
    // Closed now: a second answer is refused; unknown ids are not found.
    let again = s.answer_callback(&id, CallbackAnswer::Heartbeat, now + 1);
    assert_eq!(
        (again.status, again.error_type),
        (400, Some("CallbackTimeoutException"))
    );
    let unknown = s.answer_callback("bm9wZQ==", CallbackAnswer::Heartbeat, now);
    assert_eq!(unknown.status, 404);
    // The execution still folds cleanly to its end.
    let (whole, _) = read_all(&s, &arn, 1000, now + 30 * 24 * HOUR);
    let conversion = convert(
        &whole,
        &ExecutionArn::parse(&arn).unwrap(),
        None,
        Default::default(),
    );
    assert!(
        conversion.anomalies.is_empty(),
        "{:?}",
        conversion.anomalies
    );
    for w in whole.windows(2) {
        assert!(w[0].timestamp <= w[1].timestamp);
    }
}

#[test]
fn speed_compresses_time_consistently() {
    // Fates are cut at whole seconds, so they may differ between speeds: none here.
    let spec = SimSpec {
        executions: 40,
        stopped_percent: 0,
        timed_out_percent: 0,
        ..SimSpec::default()
    };
    let slow = sim(spec.clone());
    let fast = sim(SimSpec {
        speed: 60.0,
        ..spec
    });
    let end = T0 + 60 * 24 * HOUR;
    let mut slow_total = 0;
    let mut fast_total = 0;
    for i in 0..40 {
        let (a, _) = read_all(&slow, &arn_of(&slow, i), 1000, end);
        let (b, _) = read_all(&fast, &arn_of(&fast, i), 1000, end);
        assert_eq!(a.len(), b.len(), "same course");
        slow_total += a.last().unwrap().timestamp.millis() - a[0].timestamp.millis();
        fast_total += b.last().unwrap().timestamp.millis() - b[0].timestamp.millis();
        assert_consistent_times(&a);
        assert_consistent_times(&b);
        let c = convert(
            &b,
            &ExecutionArn::parse(&arn_of(&fast, i)).unwrap(),
            None,
            Default::default(),
        );
        assert!(c.anomalies.is_empty(), "{:?}", c.anomalies);
    }
    let ratio = slow_total as f64 / fast_total as f64;
    // Whole seconds of at least one stretch the shortest gaps a little.
    assert!(
        (30.0..=61.0).contains(&ratio),
        "about 60x faster overall: {ratio}"
    );
}

/// Waits end after their scheduled end, with the whole seconds they were given; retries start
/// after their delay; callbacks time out after their timeout.
fn assert_consistent_times(events: &[Event]) {
    use std::collections::HashMap;
    let mut due: HashMap<&str, i64> = HashMap::new();
    let mut callback: HashMap<&str, i64> = HashMap::new();
    for e in events {
        let Some(id) = e.operation.as_ref().map(|o| &*o.id) else {
            continue;
        };
        let t = e.timestamp.millis();
        if let Some(d) = due.remove(id) {
            assert!(
                t >= d,
                "event {} at {t} comes before its due time {d}",
                e.id
            );
        }
        match &e.details {
            EventDetails::WaitStarted {
                duration_seconds: Some(d),
                scheduled_end: Some(end),
            } => {
                assert!(*d >= 1);
                assert_eq!(end.millis(), t + *d as i64 * 1000, "event {}", e.id);
                due.insert(id, end.millis());
            }
            EventDetails::StepFailed { retry: Some(r), .. }
            | EventDetails::StepSucceeded { retry: Some(r), .. } => {
                if let Some(d) = r.next_attempt_delay_seconds.filter(|d| *d > 0) {
                    due.insert(id, t + d as i64 * 1000);
                }
            }
            EventDetails::CallbackStarted {
                timeout_seconds,
                heartbeat_timeout_seconds,
                ..
            } => {
                if let Some(l) = heartbeat_timeout_seconds.or(*timeout_seconds) {
                    callback.insert(id, t + l as i64 * 1000);
                }
            }
            EventDetails::CallbackTimedOut { .. } => {
                let limit = callback[id];
                assert!(t >= limit, "callback timed out at {t} before {limit}");
            }
            _ => {}
        }
    }
}

#[test]
fn executions_arrive_at_the_given_rate_up_to_the_cap() {
    let mut s = sim(SimSpec {
        executions: 10,
        arrivals_per_minute: 120.0,
        max_executions: 100,
        ..SimSpec::default()
    });
    s.advance(T0 + 10_000);
    assert_eq!(s.len(), 10 + 20);
    s.advance(T0 + 10_000);
    assert_eq!(s.len(), 30, "advancing to the same time adds nothing");
    s.advance(T0 + HOUR);
    assert_eq!(s.len(), 100);
    assert_eq!(s.summary(T0 + 10_000).executions, 30);
}

#[test]
fn without_execution_data_no_payload_is_served() {
    let s = sim(SimSpec::default());
    let arn = arn_of(&s, 0);
    let now = T0 + 48 * HOUR;
    let full = s.history(&arn, &Params(&q(&[("MaxItems", "1000")])), now);
    let bare = s.history(
        &arn,
        &Params(&q(&[
            ("MaxItems", "1000"),
            ("IncludeExecutionData", "false"),
        ])),
        now,
    );
    assert!(full.body.contains("\"Payload\":\"{"));
    let b = body(&bare);
    for e in b["Events"].as_array().unwrap() {
        for (k, d) in e.as_object().unwrap() {
            if !k.ends_with("Details") {
                continue;
            }
            for f in ["Input", "Result"] {
                if let Some(p) = d.get(f) {
                    assert!(p.get("Payload").is_none(), "{k}.{f} has no payload");
                    assert_eq!(p["Truncated"], true);
                }
            }
        }
    }
}

#[test]
fn ten_thousand_executions_fit_in_little_memory() {
    let s = sim(SimSpec {
        executions: 10_000,
        spread: Duration::ZERO,
        ..SimSpec::default()
    });
    assert_eq!(s.len(), 10_000);
    let events: usize = s.executions.iter().map(|x| x.timeline.len()).sum();
    // The per-execution state is the timeline plus a few strings.
    let bytes = events * 8 + s.len() * 400;
    assert!(bytes < 40 << 20, "{bytes} bytes");
    assert_eq!(s.summary(T0).running, 10_000);
}

#[test]
fn bad_specs_are_refused() {
    for (spec, err) in [
        (
            SimSpec {
                speed: 0.5,
                ..SimSpec::default()
            },
            SimSpecError::Speed(0.5),
        ),
        (
            SimSpec {
                functions: vec![],
                ..SimSpec::default()
            },
            SimSpecError::NoFunctions,
        ),
        (
            SimSpec {
                min_operations: 0,
                ..SimSpec::default()
            },
            SimSpecError::Operations(0, 40),
        ),
        (
            SimSpec {
                stopped_percent: 60,
                timed_out_percent: 50,
                ..SimSpec::default()
            },
            SimSpecError::Fates,
        ),
        (
            SimSpec {
                functions: vec!["a:".into()],
                ..SimSpec::default()
            },
            SimSpecError::Function("a:".into()),
        ),
        (
            SimSpec {
                functions: vec!["arn:aws:lambda:us-east-1:1:function:f".into()],
                ..SimSpec::default()
            },
            SimSpecError::Function("arn:aws:lambda:us-east-1:1:function:f".into()),
        ),
        (
            SimSpec {
                functions: vec!["f".into(), "f:live".into()],
                ..SimSpec::default()
            },
            SimSpecError::Function("f:live".into()),
        ),
    ] {
        assert_eq!(Simulation::new(spec, T0).err(), Some(err));
    }
    // Names users give their functions are fine.
    for f in ["my-function", "orders_v2", "payments:live", "x:7"] {
        let spec = SimSpec {
            functions: vec![f.into()],
            ..SimSpec::default()
        };
        assert!(spec.validate().is_ok(), "{f}");
    }
}

/// The simulator strips typed events, the scripted source raw JSON: the same rule, checked over
/// every kind of event the generator writes (inputs, results and errors with payloads).
#[test]
fn both_sources_strip_payloads_alike() {
    use crate::history::json::to_wire_json;
    let events = crate::synth::history(&crate::synth::SynthSpec {
        operations: 400,
        seed: 11,
        ..Default::default()
    });
    let wire = |events: &[Event]| -> Vec<Value> {
        let page: Value = serde_json::from_str(&to_wire_json(events, None)).unwrap();
        page["Events"].as_array().unwrap().clone()
    };
    let mut typed = events.clone();
    typed.iter_mut().for_each(strip_payloads);
    let raw: Vec<Value> = wire(&events)
        .into_iter()
        .map(scripted::strip_payloads)
        .collect();
    assert_eq!(wire(&typed), raw);
    // Every part was met, and inputs and results lost their payloads.
    let mut seen = BTreeSet::new();
    for (before, after) in wire(&events).iter().zip(&raw) {
        for (k, details) in after.as_object().unwrap() {
            let Some(details) = details.as_object().filter(|_| k.ends_with("Details")) else {
                continue;
            };
            for part in ["Input", "Result", "Error"] {
                let Some(p) = details.get(part) else { continue };
                seen.insert(part);
                assert_eq!(p["Truncated"], true, "{after}");
                if part != "Error" {
                    assert!(p.get("Payload").is_none(), "{after}");
                    assert!(before[k][part].get("Payload").is_some(), "{before}");
                }
            }
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}
