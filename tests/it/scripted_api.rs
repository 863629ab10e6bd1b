//! The simulator's scripted source (`durable_exporter::sim::scripted`, the test suite's fake
//! of the durable-execution API) answers aws-sdk-lambda as the real service would: real ARNs
//! round-trip, pages follow opaque markers over a growing history, errors come back typed,
//! faults are deterministic, and the request log counts right.

use std::time::Duration;

use crate::common::http::{http_get, urlencode};
use aws_sdk_lambda::error::ProvideErrorMetadata as _;
use aws_sdk_lambda::primitives::DateTime;
use aws_sdk_lambda::types::{ExecutionStatus, ThrottleReason};
use durable_exporter::history::Event;
use durable_exporter::sim::scripted::{
    FaultKind, Faults, GET_EXECUTION, GET_HISTORY, LIST_BY_FUNCTION, ScriptedApi,
    ScriptedExecution, UNKNOWN_OPERATION,
};
use durable_exporter::synth::{SynthSpec, history};
use durable_exporter::time::Timestamp;
use serde_json::Value;

const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders";
const ORDER_1: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/order-1/9b2e4c1a-7d3f-4e8b-a6c5-0f1e2d3c4b5a";
/// 2026-11-21T08:03:49.114Z, the synthetic histories' default start.
const T0_MS: i64 = 1_795_248_229_114;

fn exec_arn(qualifier: &str, name: &str, n: u32) -> String {
    format!(
        "{FUNCTION}:{qualifier}/durable-execution/{name}/9b2e{n:04x}-7d3f-4e8b-a6c5-0f1e2d3c4b5a"
    )
}

fn synth(operations: usize, seed: u64, finished: bool) -> Vec<Event> {
    history(&SynthSpec {
        operations,
        seed,
        finished,
        ..SynthSpec::default()
    })
}

fn synth_at(start_ms: i64, seed: u64, finished: bool) -> Vec<Event> {
    history(&SynthSpec {
        operations: 5,
        seed,
        finished,
        start: Timestamp::from_millis(start_ms),
        ..SynthSpec::default()
    })
}

fn millis(t: &DateTime) -> i64 {
    (t.as_secs_f64() * 1000.0).round() as i64
}

/// One plain HTTP/1.1 GET: (status, headers as `name: value` lines, lower-cased, body).
async fn raw_get(fake: &ScriptedApi, path: &str) -> (u16, String, String) {
    let r = http_get(fake.addr(), path, &[])
        .await
        .expect("an HTTP answer");
    let head: String = r
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\n"))
        .collect();
    (r.status, head.to_ascii_lowercase(), r.body)
}

/// Reads pages from `marker` on until NextMarker runs out: (events, markers received).
async fn drain(
    client: &aws_sdk_lambda::Client,
    arn: &str,
    max_items: i32,
    mut marker: Option<String>,
) -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::new();
    let mut markers = Vec::new();
    loop {
        let out = client
            .get_durable_execution_history()
            .durable_execution_arn(arn)
            .include_execution_data(true)
            .max_items(max_items)
            .set_marker(marker.take())
            .send()
            .await
            .unwrap();
        events.extend(out.events().iter().map(|e| Event::try_from(e).unwrap()));
        match out.next_marker() {
            Some(m) => {
                markers.push(m.to_owned());
                marker = Some(m.to_owned());
            }
            None => return (events, markers),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_history_pages_each_event_once_in_order() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    let events = synth(40, 1, true);
    let n = events.len();
    assert!(n > 60, "{n}");
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &events).with_visible(7));

    // A poller: keeps the last EventId it processed and the marker of the last page it read;
    // resumes from that marker once the history grew, skipping what it already has.
    let mut seen: Vec<Event> = Vec::new();
    let mut resume: Option<String> = None;
    let mut all_markers = Vec::new();
    let mut reread = 0;
    loop {
        let (page_events, markers) = drain(&client, ORDER_1, 5, resume.clone()).await;
        let cursor = seen.last().map_or(0, |e| e.id);
        for e in page_events {
            if e.id <= cursor {
                reread += 1;
                continue;
            }
            assert_eq!(e.id, seen.len() as u64 + 1, "in order, none skipped");
            seen.push(e);
        }
        if let Some(m) = markers.last() {
            resume = Some(m.clone());
        }
        all_markers.extend(markers);
        if fake.visible(ORDER_1) == n {
            break;
        }
        fake.reveal_more(ORDER_1, 6);
    }
    assert_eq!(seen, events, "every event exactly once, in order");
    // Resuming from the last page's marker reads that page again: NextMarker is absent on the
    // last page, as documented.
    assert!(reread > 0 && reread < n, "{reread}");

    // Markers are opaque tokens, not EventIds or indexes, and never repeat.
    let distinct: std::collections::HashSet<_> = all_markers.iter().collect();
    assert_eq!(distinct.len(), all_markers.len());
    for m in &all_markers {
        assert!(m.parse::<i64>().is_err(), "{m}");
        assert!(m.len() >= 16, "{m}");
    }
    assert_eq!(fake.markers_issued(), all_markers.len());

    // The real-form ARN ($, :, /) crossed the path as one segment and came back intact.
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.op == GET_HISTORY && r.target == ORDER_1)
    );
    assert!(requests.iter().all(|r| r.status == Some(200)));
    let got = client
        .get_durable_execution()
        .durable_execution_arn(ORDER_1)
        .send()
        .await
        .unwrap();
    assert_eq!(got.durable_execution_arn(), ORDER_1);
    assert_eq!(got.durable_execution_name(), "order-1");
    assert_eq!(
        got.function_arn(),
        "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST"
    );
    assert_eq!(got.version(), Some("$LATEST"));

    // Newest first: the same events reversed, still one per EventId.
    let mut marker = None;
    let mut newest_first = Vec::new();
    loop {
        let out = client
            .get_durable_execution_history()
            .durable_execution_arn(ORDER_1)
            .reverse_order(true)
            .max_items(7)
            .set_marker(marker.take())
            .send()
            .await
            .unwrap();
        newest_first.extend(out.events().iter().map(|e| Event::try_from(e).unwrap()));
        marker = out.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    newest_first.reverse();
    assert_eq!(newest_first, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_markers_resume_exactly_where_the_last_page_ended() {
    let fake = ScriptedApi::start().await;
    fake.set_tail_markers(true);
    let client = fake.client();
    let events = synth(30, 2, true);
    let n = events.len();
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &events).with_visible(9));

    let mut seen = Vec::new();
    let mut resume: Option<String> = None;
    loop {
        let (page_events, markers) = drain(&client, ORDER_1, 4, resume.clone()).await;
        seen.extend(page_events);
        if let Some(m) = markers.last() {
            resume = Some(m.clone());
        }
        if seen.len() == n {
            break;
        }
        // Nothing new yet: an empty page, and no NextMarker pointing at the same place.
        let out = client
            .get_durable_execution_history()
            .durable_execution_arn(ORDER_1)
            .set_marker(resume.clone())
            .send()
            .await
            .unwrap();
        assert!(out.events().is_empty());
        assert_eq!(out.next_marker(), None);
        fake.reveal_more(ORDER_1, 5);
    }
    assert_eq!(seen, events, "no event read twice");
    // The terminal event is visible: the last page carries no marker.
    let out = client
        .get_durable_execution_history()
        .durable_execution_arn(ORDER_1)
        .max_items(1000)
        .send()
        .await
        .unwrap();
    assert_eq!(out.events().len(), n);
    assert_eq!(out.next_marker(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_expired_and_rejected_markers_are_invalid_parameter_values() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    let events = synth(20, 3, true);
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &events));
    let other = exec_arn("$LATEST", "order-2", 2);
    fake.add_execution(ScriptedExecution::from_events(&other, &events));
    fake.set_faults(Faults {
        expire_markers_after: Some(Duration::from_millis(200)),
        ..Faults::default()
    });
    let page = |marker: Option<&str>, arn: &str| {
        client
            .get_durable_execution_history()
            .durable_execution_arn(arn)
            .max_items(5)
            .set_marker(marker.map(str::to_owned))
            .send()
    };
    let first = page(None, ORDER_1).await.unwrap();
    let marker = first.next_marker().unwrap().to_owned();
    // Fresh, it works (and can be used twice).
    for _ in 0..2 {
        let second = page(Some(&marker), ORDER_1).await.unwrap();
        assert_eq!(second.events()[0].event_id(), 6);
    }
    // Another execution's marker, an EventId, garbage: invalid.
    for (m, arn) in [
        (marker.as_str(), other.as_str()),
        ("6", ORDER_1),
        ("garbage", ORDER_1),
    ] {
        let err = page(Some(m), arn).await.unwrap_err();
        let e = err.as_service_error().unwrap();
        assert!(e.is_invalid_parameter_value_exception(), "{m}: {err:?}");
        assert!(e.message().unwrap().contains("marker"), "{e:?}");
    }
    // Expiry is time-based: wait past it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = page(Some(&marker), ORDER_1).await.unwrap_err();
    let e = err.as_service_error().unwrap();
    assert!(e.is_invalid_parameter_value_exception(), "{err:?}");
    assert!(e.message().unwrap().contains("expired"), "{e:?}");
    // Starting over without a marker still works.
    assert_eq!(page(None, ORDER_1).await.unwrap().events().len(), 5);

    // Every marker rejected, even a fresh one.
    fake.set_faults(Faults {
        reject_all_markers: true,
        ..Faults::default()
    });
    let fresh = page(None, ORDER_1)
        .await
        .unwrap()
        .next_marker()
        .unwrap()
        .to_owned();
    let err = page(Some(&fresh), ORDER_1).await.unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception()),
        "{err:?}"
    );
    fake.clear_faults();
    assert!(page(Some(&fresh), ORDER_1).await.is_ok());
    assert_eq!(fake.count_status(GET_HISTORY, 400), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_items_limits() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    let events = synth(100, 4, true);
    assert!(events.len() > 100 && events.len() < 1000);
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &events));
    let get = |max: Option<i32>| {
        client
            .get_durable_execution_history()
            .durable_execution_arn(ORDER_1)
            .set_max_items(max)
            .send()
    };
    for bad in [1001, 5000, -1] {
        let err = get(Some(bad)).await.unwrap_err();
        let e = err.as_service_error().unwrap();
        assert!(e.is_invalid_parameter_value_exception(), "{bad}: {err:?}");
        assert!(e.message().unwrap().contains("maxItems"), "{e:?}");
    }
    let all = get(Some(1000)).await.unwrap();
    assert_eq!(all.events().len(), events.len());
    assert_eq!(all.next_marker(), None);
    // Absent or 0: the default of 100.
    for max in [None, Some(0)] {
        let out = get(max).await.unwrap();
        assert_eq!(out.events().len(), 100);
        assert!(out.next_marker().is_some());
    }
    let logged: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| (r.param("MaxItems").map(str::to_owned), r.status))
        .collect();
    assert_eq!(logged[0], (Some("1001".to_owned()), Some(400)));
    assert_eq!(logged[4], (None, Some(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_typed_not_found() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &synth(3, 5, true)));
    let missing = exec_arn("$LATEST", "nope", 9);

    let err = client
        .get_durable_execution_history()
        .durable_execution_arn(&missing)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    let err = client
        .get_durable_execution()
        .durable_execution_arn(&missing)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    let err = client
        .list_durable_executions_by_function()
        .function_name("no-such-function")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    assert_eq!(fake.count_status(GET_HISTORY, 404), 1);
    assert_eq!(fake.count_status(GET_EXECUTION, 404), 1);
    assert_eq!(fake.count_status(LIST_BY_FUNCTION, 404), 1);

    // On the wire: the header and the body the real service sends.
    let (status, head, body) = raw_get(
        &fake,
        &format!(
            "/2025-12-01/durable-executions/{}/history",
            urlencode(&missing)
        ),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        head.contains("x-amzn-errortype: resourcenotfoundexception"),
        "{head}"
    );
    assert!(head.contains("content-type: application/json"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["Type"], "ResourceNotFoundException");
    assert!(body["message"].is_string());

    // An unencoded slash splits the ARN into segments no route has; so does nonsense.
    for path in [
        "/2025-12-01/durable-executions/a/b/history".to_owned(),
        format!(
            "/2025-12-01/durable-executions/{}/nonsense",
            urlencode(ORDER_1)
        ),
    ] {
        let (status, _, _) = raw_get(&fake, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(fake.count_status(UNKNOWN_OPERATION, 404), 2);
    // A blank ARN is invalid, not unknown.
    let (status, head, _) = raw_get(&fake, "/2025-12-01/durable-executions/%20/history").await;
    assert_eq!(status, 400);
    assert!(head.contains("x-amzn-errortype: invalidparametervalueexception"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_typed_and_deterministic() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &synth(3, 6, true)));

    fake.set_faults(Faults {
        throttle_probability: 1.0,
        retry_after_seconds: Some(3),
        ..Faults::default()
    });
    let err = client
        .get_durable_execution_history()
        .durable_execution_arn(ORDER_1)
        .send()
        .await
        .unwrap_err();
    let e = err.into_service_error();
    assert!(e.is_too_many_requests_exception(), "{e:?}");
    let aws_sdk_lambda::operation::get_durable_execution_history::GetDurableExecutionHistoryError::TooManyRequestsException(t) = e else {
        unreachable!()
    };
    assert_eq!(t.retry_after_seconds(), Some("3"));
    assert_eq!(t.reason(), Some(&ThrottleReason::CallerRateLimitExceeded));
    let err = client
        .get_durable_execution()
        .durable_execution_arn(ORDER_1)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_too_many_requests_exception());
    let err = client
        .list_durable_executions_by_function()
        .function_name("orders")
        .send()
        .await
        .unwrap_err();
    let aws_sdk_lambda::operation::list_durable_executions_by_function::ListDurableExecutionsByFunctionError::TooManyRequestsException(t) = err.into_service_error() else {
        panic!("not throttled")
    };
    assert_eq!(t.retry_after_seconds(), Some("3"));

    fake.set_faults(Faults {
        server_error_probability: 1.0,
        ..Faults::default()
    });
    let err = client
        .get_durable_execution_history()
        .durable_execution_arn(ORDER_1)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_service_exception());
    let err = client
        .get_durable_execution()
        .durable_execution_arn(ORDER_1)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_service_exception());
    let err = client
        .list_durable_executions_by_function()
        .function_name("orders")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_service_exception());
    assert_eq!(fake.count_status(GET_HISTORY, 429), 1);
    assert_eq!(fake.count_status(GET_HISTORY, 500), 1);

    // Scripted: exactly the next two, then back to normal.
    fake.clear_faults();
    fake.fail_next(2, FaultKind::Throttle);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = client
            .get_durable_execution()
            .durable_execution_arn(ORDER_1)
            .send()
            .await;
        statuses.push(r.is_ok());
    }
    assert_eq!(statuses, [false, false, true]);

    // Random faults repeat exactly for the same seed.
    let run = |seed: u64| {
        let fake = fake.clone();
        let client = client.clone();
        async move {
            fake.reset_log();
            fake.set_faults(Faults {
                seed,
                throttle_probability: 0.3,
                server_error_probability: 0.2,
                ..Faults::default()
            });
            for _ in 0..30 {
                let _ = client
                    .get_durable_execution()
                    .durable_execution_arn(ORDER_1)
                    .send()
                    .await;
            }
            fake.requests()
                .iter()
                .map(|r| r.status.unwrap())
                .collect::<Vec<_>>()
        }
    };
    let a = run(42).await;
    let b = run(42).await;
    let c = run(43).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    for s in [200, 429, 500] {
        assert!(a.contains(&s), "{a:?}");
    }

    // Faults limited to one operation leave the others alone.
    fake.set_faults(Faults {
        server_error_probability: 1.0,
        only_operations: vec![GET_HISTORY],
        ..Faults::default()
    });
    assert!(
        client
            .get_durable_execution()
            .durable_execution_arn(ORDER_1)
            .send()
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_durable_execution_follows_the_visible_history() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    let events = synth(10, 7, true);
    let n = events.len();
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    fake.add_execution(
        ScriptedExecution::from_events(ORDER_1, &events)
            // Not the last InvocationCompleted: shown without the end, it never is.
            .with_visible(n - 2)
            .with_trace_header(trace),
    );
    let get = || {
        client
            .get_durable_execution()
            .durable_execution_arn(ORDER_1)
            .send()
    };
    let running = get().await.unwrap();
    assert_eq!(running.status(), &ExecutionStatus::Running);
    assert_eq!(running.end_timestamp(), None);
    assert_eq!(
        millis(running.start_timestamp()),
        events[0].timestamp.millis()
    );
    assert_eq!(
        running.trace_header().and_then(|t| t.x_amzn_trace_id()),
        Some(trace)
    );
    assert!(running.input_payload().is_some());
    assert_eq!(running.result(), None);

    fake.reveal_all(ORDER_1);
    let done = get().await.unwrap();
    assert_eq!(done.status(), &ExecutionStatus::Succeeded);
    assert_eq!(
        done.end_timestamp().map(millis),
        Some(events[n - 1].timestamp.millis())
    );
    assert!(done.result().is_some());
    let lean = client
        .get_durable_execution()
        .durable_execution_arn(ORDER_1)
        .include_execution_data(false)
        .send()
        .await
        .unwrap();
    assert_eq!((lean.input_payload(), lean.result()), (None, None));

    // The emulator's failed, stopped and timed-out executions, under their <uuid>/<uuid> ARNs.
    for (name, status) in [
        ("execution-fails", ExecutionStatus::Failed),
        ("stopped", ExecutionStatus::Stopped),
        ("timed-out", ExecutionStatus::TimedOut),
    ] {
        let raw: Value =
            serde_json::from_slice(&std::fs::read(crate::common::history_path(name)).unwrap())
                .unwrap();
        let arn = crate::common::arn_of(name);
        fake.add_execution(ScriptedExecution::from_wire_events(
            &arn,
            raw["Events"].as_array().unwrap().clone(),
        ));
        let got = client
            .get_durable_execution()
            .durable_execution_arn(&arn)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), &status, "{name}");
        assert!(got.end_timestamp().is_some());
        let fixture: Value = serde_json::from_slice(
            &std::fs::read(crate::common::fixture_dir(name).join("get_durable_execution.json"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            got.durable_execution_name(),
            fixture["DurableExecutionName"]
        );
        assert_eq!(
            got.end_timestamp().unwrap().as_secs_f64(),
            fixture["EndTimestamp"].as_f64().unwrap()
        );
        assert_eq!(
            got.error().and_then(|e| e.error_message()),
            fixture["Error"]["ErrorMessage"].as_str(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_by_function_filters_and_pages() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    let minute = 60_000;
    let owned = [
        exec_arn("$LATEST", "a", 1),
        exec_arn("$LATEST", "b", 2),
        exec_arn("$LATEST", "c", 3),
        exec_arn("prod", "d", 4),
    ];
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| owned[i].as_str());
    let e = "arn:aws:lambda:us-east-1:123456789012:function:billing:$LATEST/durable-execution/e/9b2e0005-7d3f-4e8b-a6c5-0f1e2d3c4b5a";
    fake.add_execution(ScriptedExecution::from_events(a, &synth_at(T0_MS, 1, true)));
    fake.add_execution(ScriptedExecution::from_events(
        c,
        &synth_at(T0_MS + 2 * minute, 3, true),
    ));
    fake.add_execution(ScriptedExecution::from_events(
        b,
        &synth_at(T0_MS + minute, 2, false),
    ));
    let mut prod = ScriptedExecution::from_events(d, &synth_at(T0_MS + minute / 2, 4, true));
    prod.version = "7".into();
    fake.add_execution(prod);
    fake.add_execution(ScriptedExecution::from_events(e, &synth_at(T0_MS, 5, true)));

    let list = || {
        client
            .list_durable_executions_by_function()
            .function_name("orders")
    };
    let arns = |out: &aws_sdk_lambda::operation::list_durable_executions_by_function::ListDurableExecutionsByFunctionOutput| {
        out.durable_executions()
            .iter()
            .map(|x| x.durable_execution_arn().to_owned())
            .collect::<Vec<_>>()
    };

    // Without Qualifier: $LATEST only, oldest first.
    let out = list().send().await.unwrap();
    assert_eq!(arns(&out), [a, b, c]);
    assert_eq!(out.next_marker(), None);
    let first = &out.durable_executions()[0];
    assert_eq!(first.durable_execution_name(), "a");
    assert_eq!(first.status(), &ExecutionStatus::Succeeded);
    assert_eq!(millis(first.start_timestamp()), T0_MS);
    assert!(first.end_timestamp().is_some());
    assert_eq!(
        first.function_arn(),
        "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST"
    );
    assert_eq!(
        out.durable_executions()[1].status(),
        &ExecutionStatus::Running
    );
    assert_eq!(out.durable_executions()[1].end_timestamp(), None);
    let newest_first = list().reverse_order(true).send().await.unwrap();
    assert_eq!(arns(&newest_first), [c, b, a]);

    // Function given as ARN, partial ARN, or qualified ARN; Qualifier as alias or version.
    for f in [FUNCTION, "123456789012:function:orders"] {
        let out = client
            .list_durable_executions_by_function()
            .function_name(f)
            .send()
            .await
            .unwrap();
        assert_eq!(arns(&out), [a, b, c], "{f}");
    }
    let qualified = client
        .list_durable_executions_by_function()
        .function_name(format!("{FUNCTION}:prod"))
        .send()
        .await
        .unwrap();
    assert_eq!(arns(&qualified), [d]);
    for q in ["prod", "7"] {
        assert_eq!(arns(&list().qualifier(q).send().await.unwrap()), [d], "{q}");
    }

    // Statuses: the SDK repeats the parameter.
    fake.reset_log();
    let running = list()
        .statuses(ExecutionStatus::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(arns(&running), [b]);
    let both = list()
        .statuses(ExecutionStatus::Succeeded)
        .statuses(ExecutionStatus::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(arns(&both), [a, b, c]);
    let failed = list()
        .statuses(ExecutionStatus::Failed)
        .send()
        .await
        .unwrap();
    assert!(failed.durable_executions().is_empty());
    assert_eq!(
        fake.requests()[1].params("Statuses"),
        ["SUCCEEDED", "RUNNING"]
    );

    // StartedAfter / StartedBefore: RFC 3339 in the query, exclusive bounds.
    fake.reset_log();
    let after = list()
        .started_after(DateTime::from_millis(T0_MS + minute / 2))
        .send()
        .await
        .unwrap();
    assert_eq!(arns(&after), [b, c]);
    assert_eq!(
        fake.requests()[0].param("StartedAfter"),
        Some("2026-11-21T08:04:19.114Z")
    );
    let before = list()
        .started_before(DateTime::from_millis(T0_MS + 2 * minute))
        .send()
        .await
        .unwrap();
    assert_eq!(arns(&before), [a, b]);
    let window = list()
        .started_after(DateTime::from_millis(T0_MS))
        .started_before(DateTime::from_millis(T0_MS + 2 * minute))
        .send()
        .await
        .unwrap();
    assert_eq!(arns(&window), [b]);

    // Pages of 2 with an opaque marker, forward and backward.
    for (reverse, expected) in [(false, [a, b, c]), (true, [c, b, a])] {
        let p1 = list()
            .max_items(2)
            .reverse_order(reverse)
            .send()
            .await
            .unwrap();
        assert_eq!(arns(&p1), expected[..2]);
        let marker = p1.next_marker().unwrap();
        let p2 = list()
            .max_items(2)
            .reverse_order(reverse)
            .marker(marker)
            .send()
            .await
            .unwrap();
        assert_eq!(arns(&p2), expected[2..]);
        assert_eq!(p2.next_marker(), None);
    }
    let err = list().max_items(1001).send().await.unwrap_err();
    assert!(
        err.into_service_error()
            .is_invalid_parameter_value_exception()
    );

    // A known function without executions lists nothing; the name filter matches substrings.
    fake.add_function("arn:aws:lambda:us-east-1:123456789012:function:quiet");
    let quiet = client
        .list_durable_executions_by_function()
        .function_name("quiet")
        .send()
        .await
        .unwrap();
    assert!(quiet.durable_executions().is_empty());
    let named = list().durable_execution_name("b").send().await.unwrap();
    assert_eq!(arns(&named), [b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_execution_data_false_strips_payloads_like_the_emulator() {
    let fake = ScriptedApi::start().await;
    for name in [
        "callbacks",
        "chained-invoke",
        "execution-fails",
        "parallel-map",
    ] {
        let full: Value =
            serde_json::from_slice(&std::fs::read(crate::common::history_path(name)).unwrap())
                .unwrap();
        let arn = crate::common::arn_of(name);
        fake.add_execution(ScriptedExecution::from_wire_events(
            &arn,
            full["Events"].as_array().unwrap().clone(),
        ));
        let path = format!(
            "/2025-12-01/durable-executions/{}/history?IncludeExecutionData=false&MaxItems=1000",
            urlencode(&arn)
        );
        let (status, _, body) = raw_get(&fake, &path).await;
        assert_eq!(status, 200);
        let got: Value = serde_json::from_str(&body).unwrap();
        let mut want: Value = serde_json::from_slice(
            &std::fs::read(
                crate::common::fixture_dir(name).join("history_IncludeExecutionData_false.json"),
            )
            .unwrap(),
        )
        .unwrap();
        // The emulator alone keeps ExecutionSucceeded's result payload; the fake strips it too.
        for e in want["Events"].as_array_mut().unwrap() {
            if let Some(r) = e
                .pointer_mut("/ExecutionSucceededDetails/Result")
                .and_then(Value::as_object_mut)
            {
                r.remove("Payload");
            }
        }
        assert_eq!(got, want, "{name}");
    }

    // Through the SDK, on a synthetic history: no input or result payload anywhere.
    let client = fake.client();
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &synth(30, 8, true)));
    let out = client
        .get_durable_execution_history()
        .durable_execution_arn(ORDER_1)
        .include_execution_data(false)
        .max_items(1000)
        .send()
        .await
        .unwrap();
    let mut results = 0;
    for e in out.events() {
        let e = Event::try_from(e).unwrap();
        if let Some(r) = e.details.result() {
            assert!(r.truncated && r.payload.is_none(), "{e:?}");
            results += 1;
        }
    }
    assert!(results > 10);
    let with_data = client
        .get_durable_execution_history()
        .durable_execution_arn(ORDER_1)
        .max_items(1000)
        .send()
        .await
        .unwrap();
    assert!(
        with_data
            .events()
            .iter()
            .filter_map(|e| Event::try_from(e).unwrap().details.result().cloned())
            .any(|r| r.payload.is_some()),
        "IncludeExecutionData defaults to true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_log_counts_and_measures_rates() {
    let fake = ScriptedApi::start().await;
    let client = fake.client();
    fake.add_execution(ScriptedExecution::from_events(ORDER_1, &synth(3, 9, true)));
    fake.set_faults(Faults {
        latency: Duration::from_millis(20),
        ..Faults::default()
    });
    for _ in 0..20 {
        client
            .get_durable_execution()
            .durable_execution_arn(ORDER_1)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(fake.count(GET_EXECUTION), 20);
    assert_eq!(fake.count_status(GET_EXECUTION, 200), 20);
    assert_eq!(fake.count(GET_HISTORY), 0);
    let requests = fake.requests();
    assert!(requests.iter().all(|r| r.target == ORDER_1));
    for w in requests.windows(2) {
        assert!(w[1].arrived.duration_since(w[0].arrived) >= Duration::from_millis(20));
    }
    // Sequential calls 20 ms apart: never two within 15 ms, all 20 within a minute.
    assert_eq!(fake.max_requests_in_window(Duration::from_millis(15)), 1);
    assert_eq!(fake.max_requests_in_window(Duration::from_secs(60)), 20);
    assert_eq!(fake.max_requests_in_window(Duration::ZERO), 0);

    // Concurrent calls arrive together; a waiter sees them answered.
    fake.reset_log();
    assert!(fake.requests().is_empty());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .get_durable_execution_history()
                .durable_execution_arn(ORDER_1)
                .send()
                .await
        }));
    }
    assert!(
        fake.wait_for_requests(GET_HISTORY, 8, Duration::from_secs(5))
            .await
    );
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.count_status(GET_HISTORY, 200), 8);
    assert_eq!(fake.max_requests_in_window(Duration::from_secs(60)), 8);
    assert_eq!(
        fake.max_requests_in_window_for(GET_EXECUTION, Duration::from_secs(60)),
        0
    );

    // Stopped: nothing answers any more.
    fake.stop().await;
    assert!(
        client
            .get_durable_execution()
            .durable_execution_arn(ORDER_1)
            .send()
            .await
            .is_err()
    );
}
