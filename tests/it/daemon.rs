//! `durable-exporter run`, the real binary, against the fake durable API (aws-sdk-lambda through
//! `aws.endpoint_url`) and a real OTLP/gRPC receiver: executions progress while polled, the
//! daemon restarts (gracefully and with `kill -9`), markers are rejected, the collector goes
//! away, the API throttles and fails. Whatever happens, the collector ends up with exactly the
//! spans `convert` draws from the final histories: none missing, at most one batch twice.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::common::daemon::*;
use crate::common::http::free_port;
use durable_exporter::history::EventDetails;
use durable_exporter::sim::scripted::{Faults, GET_HISTORY, ScriptedApi};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progressing_executions_are_exported_exactly() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(3, 60);
    add_all_visible(&fake, &execs, 1);
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");
    let d = Daemon::start_json(&s, 1).await;

    // Let the histories grow while the daemon reads them: a few events at a time, each step
    // once the daemon has read everything visible.
    loop {
        let mut grew = false;
        for (a, events) in &execs {
            if fake.visible(a) < events.len() {
                fake.reveal_more(a, 9);
                grew = true;
            }
        }
        if !grew {
            break;
        }
        let targets: Vec<(String, u64)> = arns
            .iter()
            .map(|a| (a.clone(), fake.visible(a) as u64))
            .collect();
        wait_for(
            &d,
            s.api,
            Duration::from_secs(20),
            "reads to catch up",
            |v| {
                targets
                    .iter()
                    .all(|(a, n)| v.get(a).is_some_and(|x| x.read >= *n))
            },
        )
        .await;
    }
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;

    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0, "no span twice in a clean run");
    assert_exact(&expected(&execs), &got);

    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status:?}");
    // The daemon's own account of its reads, against the fake's count of requests.
    let logs = std::fs::read_to_string(s.dir.path().join("daemon-1.log")).unwrap();
    let stopped: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "stopped")
        .unwrap_or_else(|| panic!("no stop line in\n{logs}"));
    let field = |k: &str| -> u64 {
        stopped["fields"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {stopped}"))
    };
    assert_eq!(field("history_calls") as usize, fake.count(GET_HISTORY));
    eprintln!(
        "steady run: {} GetDurableExecutionHistory calls, {} polls ({} found new events), {} pages of new events, {} events",
        field("history_calls"),
        field("polls"),
        field("polls_with_new_events"),
        field("pages_with_new_events"),
        field("events")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_lose_nothing_and_repeat_at_most_a_batch() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 80);
    add_all_visible(&fake, &execs, 1);
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");

    // Run 1: a third of each history, then SIGTERM: a graceful stop flushes and persists.
    for (a, e) in &execs {
        fake.reveal(a, e.len() / 3);
    }
    let d = Daemon::start_json(&s, 1).await;
    let thirds: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (e.len() / 3) as u64))
        .collect();
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "a third acknowledged",
        |v| {
            thirds
                .iter()
                .all(|(a, n)| v.get(a).is_some_and(|x| x.last >= *n))
        },
    )
    .await;
    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    let after_graceful = received(&receiver);
    assert_eq!(after_graceful.1, 0);

    // Run 2: two thirds, killed with -9 while it works.
    for (a, e) in &execs {
        fake.reveal(a, 2 * e.len() / 3);
    }
    fake.reset_log();
    let d = Daemon::start_json(&s, 2).await;
    let two_thirds: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (2 * e.len() / 3) as u64 - 5))
        .collect();
    wait_for(&d, s.api, Duration::from_secs(20), "two thirds read", |v| {
        two_thirds
            .iter()
            .all(|(a, n)| v.get(a).is_some_and(|x| x.read >= *n))
    })
    .await;
    // The graceful stop left each fold beside its cursor: the restart resumed from the
    // marker, without reading the history from the start again.
    for (a, _) in &execs {
        let first = fake
            .requests()
            .into_iter()
            .find(|r| r.op == GET_HISTORY && r.target == *a)
            .unwrap();
        assert!(
            first.param("Marker").is_some(),
            "{a} was read from the start"
        );
    }
    d.kill9();

    // Run 3: everything.
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let d = Daemon::start_json(&s, 3).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(30),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    assert!(
        repeats <= MAX_BATCH,
        "{repeats} spans sent twice: more than one batch ({MAX_BATCH})"
    );
    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_invocation_is_drawn_within_seconds_and_once_across_a_kill() {
    // An execution suspended (on a callback, a wait, a chained invoke): its history ends at an
    // InvocationCompleted and may stay so for hours. Its Invocation span comes a read later,
    // seconds after, not with the next event, at whatever `poll.interval`.
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 60);
    let (a, events) = &execs[0];
    let ics: Vec<usize> = (0..events.len() - 1)
        .filter(|&i| matches!(events[i].details, EventDetails::InvocationCompleted { .. }))
        .collect();
    assert!(ics.len() >= 3, "{} invocations", ics.len());
    let (k, ic) = (2, ics[1]);
    add_all_visible(&fake, &execs, ic + 1);
    let s = setup(
        &fake,
        receiver.addr,
        &arns(&execs),
        "poll:\n  interval: 20s\n  max_interval: 5m\n",
    );
    let expected = expected(&execs);
    let invocation = |k: u64| {
        expected
            .values()
            .find(|s| {
                s.name == "Invocation"
                    && s.attributes.iter().any(|a| {
                        a.starts_with("durable.invocation.index=")
                            && a.contains(&format!("IntValue({k})"))
                    })
            })
            .unwrap_or_else(|| panic!("no invocation {k}"))
    };
    let second = invocation(k);
    assert!(
        second
            .attributes
            .iter()
            .any(|a| a.starts_with("durable.invocation.status=") && a.contains("PENDING")),
        "{second:?}"
    );

    let d = Daemon::start_json(&s, 1).await;
    let started = tokio::time::Instant::now();
    let got = d
        .eventually(Duration::from_secs(15), "invocation 2", || async {
            let (got, _) = received(&receiver);
            got.contains_key(&second.span_id).then_some(got)
        })
        .await;
    // Drawn as it will be once the next event is read, long before the next regular read.
    assert_eq!(&got[&second.span_id], second);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(
        fake.visible(a),
        ic + 1,
        "the history did not grow meanwhile"
    );
    // Acknowledged and on disk: the cursor says which invocation was settled.
    d.eventually(
        Duration::from_secs(10),
        "the settled invocation persisted",
        || async {
            s.cursor(a)
                .filter(|(_, c)| c["settled_invocation"] == k)
                .map(|_| ())
        },
    )
    .await;
    d.kill9();
    let before_restart = receiver.requests().len();

    // The restart neither draws it again nor waits for it: the rest of the history, exactly.
    fake.reveal_all(a);
    let d = Daemon::start_json(&s, 2).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(30),
        "the execution to end",
        all_finished(&execs),
    )
    .await;
    let requests = receiver.requests();
    let (got, _) = spans_of(&requests);
    assert_exact(&expected, &got);
    let times = |requests: &[_]| {
        crate::common::otlp::flatten(requests)
            .0
            .iter()
            .filter(|s| s.span_id == second.span_id)
            .count()
    };
    let (first_run, second_run) = (
        times(&requests[..before_restart]),
        times(&requests[before_restart..]),
    );
    assert_eq!(
        (first_run, second_run),
        (1, 0),
        "invocation 2 sent (before, after) the restart\n{}\n{}",
        std::fs::read_to_string(s.dir.path().join("daemon-1.log")).unwrap_or_default(),
        d.logs()
    );
    eprintln!("invocation 2 arrived {took:?} after the start");
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dormant_execution_keeps_its_fold_on_disk_and_wakes_to_the_same_spans() {
    // Two executions suspended after their second invocation: settled and acknowledged, their
    // folds go to disk with their cursors and leave memory. News wakes them: one from its
    // checkpoint, the other (its file made unreadable meanwhile) by reading its history again
    // from the start. Either way the collector gets exactly what `convert` draws, once.
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 60);
    for (a, events) in &execs {
        let ics: Vec<usize> = (0..events.len() - 1)
            .filter(|&i| matches!(events[i].details, EventDetails::InvocationCompleted { .. }))
            .collect();
        assert!(ics.len() >= 3, "{} invocations", ics.len());
        fake.add_execution(
            durable_exporter::sim::scripted::ScriptedExecution::from_events(a, events)
                .with_visible(ics[1] + 1),
        );
    }
    // Pages of 5: the position is a marker past the first page, so a read from the start shows.
    let s = setup(
        &fake,
        receiver.addr,
        &arns(&execs),
        "poll:\n  page_size: 5\n",
    );
    let d = Daemon::start_json(&s, 1).await;
    d.eventually(Duration::from_secs(20), "both dormant", || async {
        (metric(s.http, "durable_exporter_dormant_executions").await == 2.0).then_some(())
    })
    .await;
    // Dormant once the cursor with the fold is asked to be written: the file follows.
    for (a, _) in &execs {
        let c = d
            .eventually(
                Duration::from_secs(10),
                "the settled fold on disk",
                || async {
                    s.cursor(a)
                        .map(|(_, c)| c)
                        .filter(|c| c["settled_invocation"] == 2)
                },
            )
            .await;
        assert_eq!(c["fold"]["last_event_id"], c["last_event_id"], "{c}");
        assert_eq!(c["fold"]["pending_invocation"], Value::Null, "{c}");
        assert!(c["marker"].is_string(), "{c}");
    }
    let wakes = |result: &'static str| async move {
        metric(
            s.http,
            &format!("durable_exporter_dormant_wakes_total{{result=\"{result}\"}}"),
        )
        .await
    };
    // Dormant as soon as the spans of the read that ended at the second InvocationCompleted
    // were acknowledged, before that invocation settled: the read that settled it took the
    // fold back from its checkpoint (and it went dormant again after).
    assert!(wakes("checkpoint").await >= 1.0, "{}", d.logs());
    assert_eq!(
        metric(s.http, "durable_exporter_dormant_executions").await,
        2.0
    );
    // The list still says what the fold said.
    let (_, list) = http(s.api, "GET", "/v1/executions", None).await.unwrap();
    for e in list["Executions"].as_array().unwrap() {
        assert_eq!(e["Status"], "RUNNING", "{e}");
        assert!(e["Operations"].as_u64().unwrap() > 0, "{e}");
        assert!(e["TraceId"].is_string(), "{e}");
    }
    let (asleep, unreadable) = (&execs[0].0, &execs[1].0);
    let (path, mut c) = s.cursor(unreadable).unwrap();
    c["fold"] = serde_json::json!({"not": "a fold"});
    let edit = path.with_extension("edit");
    std::fs::write(&edit, serde_json::to_vec(&c).unwrap()).unwrap();
    std::fs::rename(&edit, &path).unwrap();
    fake.reset_log();
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    wait_for(
        &d,
        s.api,
        Duration::from_secs(30),
        "both executions to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    assert_eq!(repeats, 0, "a wake draws nothing twice");
    assert!(wakes("checkpoint").await >= 2.0);
    assert_eq!(wakes("reread").await, 1.0);
    // Only the execution whose fold did not read back was read from the start again.
    let from_start = |a: &String| {
        fake.requests().into_iter().any(|r| {
            r.op == GET_HISTORY
                && r.target == *a
                && r.param("Marker").is_none()
                && r.param("ReverseOrder").is_none()
        })
    };
    assert!(!from_start(asleep), "{asleep} was read from the start");
    assert!(
        from_start(unreadable),
        "{unreadable} was not read from the start"
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_execution_shows_the_same_and_its_file_stays_whole_across_a_restart() {
    // A finished execution (most of a large tracked set) lets go of what only reading needs.
    // What the list and the browser show of it stays, and so does its file: nothing writes it
    // again, and a restart reads it back to the same list and the same trace.
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 30);
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    for (i, (a, events)) in execs.iter().enumerate() {
        let x = durable_exporter::sim::scripted::ScriptedExecution::from_events(a, events);
        fake.add_execution(if i == 0 {
            x.with_trace_header(header)
        } else {
            x
        });
    }
    let traced = &execs[0].0;
    let s = setup(&fake, receiver.addr, &arns(&execs), "");
    let d = Daemon::start_json(&s, 1).await;
    let finished = r#"durable_exporter_tracked_executions{state="finished"}"#;
    d.eventually(Duration::from_secs(20), "both finished", || async {
        (metric(s.http, finished).await == 2.0).then_some(())
    })
    .await;
    let shown = |list: &Value| -> Vec<Value> {
        let mut v: Vec<Value> = list["Executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                serde_json::json!([
                    e["DurableExecutionArn"],
                    e["Status"],
                    e["FunctionName"],
                    e["Qualifier"],
                    e["LastEventId"],
                ])
            })
            .collect();
        v.sort_by_key(|x| x[0].as_str().unwrap().to_owned());
        v
    };
    let (_, list) = http(s.api, "GET", "/v1/executions", None).await.unwrap();
    let before = shown(&list);
    assert_eq!(before.len(), 2, "{list}");
    for (e, (a, events)) in before.iter().zip(&execs) {
        assert_eq!(e[0], a.as_str());
        assert_eq!(e[1], "SUCCEEDED", "{e}");
        assert_eq!(e[4], events.len() as u64, "{e}");
    }
    // The X-Ray header's trace: in the list, and in the browser (drawn from the header kept).
    let want = "5759e988bd862e3fe1be46a994272793";
    let listed = list["Executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["DurableExecutionArn"] == traced.as_str())
        .unwrap();
    assert_eq!(listed["TraceId"], want, "{listed}");
    let browsed = |api: SocketAddr| async move {
        let path = format!(
            "/v1/ui/executions/{}",
            crate::common::http::urlencode(traced)
        );
        let (status, v) = http(api, "GET", &path, None).await.unwrap();
        assert_eq!(status, 200, "{v}");
        v["TraceId"].clone()
    };
    assert_eq!(browsed(s.api).await, want);
    let files: Vec<Value> = execs.iter().map(|(a, _)| s.cursor(a).unwrap().1).collect();
    for c in &files {
        assert!(c["finished_status"].is_string(), "{c}");
        assert!(c["function_arn"].is_string(), "{c}");
    }
    assert_eq!(files[0]["trace_header"], header);
    assert!(d.terminate(Duration::from_secs(25)).await.success());

    let d = Daemon::start_json(&s, 2).await;
    d.eventually(Duration::from_secs(20), "both finished again", || async {
        (metric(s.http, finished).await == 2.0).then_some(())
    })
    .await;
    let (_, list) = http(s.api, "GET", "/v1/executions", None).await.unwrap();
    assert_eq!(shown(&list), before);
    assert_eq!(browsed(s.api).await, want);
    let again: Vec<Value> = execs.iter().map(|(a, _)| s.cursor(a).unwrap().1).collect();
    assert_eq!(
        again, files,
        "a finished execution's file was written again"
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_marker_means_a_full_reread_without_duplicates() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 50);
    add_all_visible(&fake, &execs, 0);
    for (a, e) in &execs {
        fake.reveal(a, e.len() / 2);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");
    let d = Daemon::start_json(&s, 1).await;
    let halves: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (e.len() / 2) as u64))
        .collect();
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "half acknowledged",
        |v| {
            halves
                .iter()
                .all(|(a, n)| v.get(a).is_some_and(|x| x.last >= *n))
        },
    )
    .await;
    // Markers expire quickly from now on: the one the daemon keeps between polls is always
    // refused, a fresh NextMarker followed at once still works.
    fake.set_faults(Faults {
        expire_markers_after: Some(Duration::from_millis(100)),
        ..Faults::default()
    });
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    assert!(
        fake.count_status(GET_HISTORY, 400) > 0,
        "markers were refused"
    );
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_loses_nothing_and_the_buffer_holds() {
    let fake = ScriptedApi::start().await;
    let execs = executions(3, 60);
    add_all_visible(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    // Nothing listens here yet.
    let otlp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cap = 100;
    let s = setup(
        &fake,
        otlp,
        &arns,
        &format!("otlp:\n  max_buffered_spans: {cap}\n"),
    );
    let d = Daemon::start_json(&s, 1).await;
    // The daemon reads until the buffer is full, then stops reading.
    let mut last_calls = 0;
    let mut stable = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stable < 10 {
        let (_, body) = http(s.api, "GET", "/v1/executions", None).await.unwrap();
        let buffered = body["BufferedSpans"].as_u64().unwrap();
        // Over the cap by at most what one poll brings (a page of 25 events).
        assert!(
            buffered <= cap + 2 * 25 + 10,
            "buffer {buffered} over the cap"
        );
        let calls = fake.count(GET_HISTORY);
        // Paused: no read for a second (polls come every 600 ms at the most otherwise).
        if calls == last_calls && buffered > 0 {
            stable += 1;
        } else {
            stable = 0;
        }
        last_calls = calls;
        assert!(
            tokio::time::Instant::now() < deadline,
            "never paused:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = views(s.api).await.unwrap();
    assert!(
        v.values().any(|x| x.status == "RUNNING"),
        "paused before the end: {v:?}"
    );
    // The collector comes up: everything arrives, once.
    let receiver = crate::common::otlp::grpc_on(otlp).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(60),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_keep_the_budget_and_lose_nothing() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(3, 40);
    add_all_visible(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    fake.set_faults(Faults {
        seed: 42,
        throttle_probability: 0.25,
        retry_after_seconds: Some(1),
        server_error_probability: 0.15,
        ..Faults::default()
    });
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    // Under this storm the rate sits near its floor (a tenth of the budget): the budget sets the
    // test's length.
    let rate = 50;
    let s = setup(
        &fake,
        receiver.addr,
        &arns,
        &format!("aws:\n  max_requests_per_second: {rate}\n"),
    );
    let d = Daemon::start_json(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(90),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    assert!(fake.count_status(GET_HISTORY, 429) > 0, "throttled");
    assert!(fake.count_status(GET_HISTORY, 500) > 0, "server errors");
    let peak = fake.max_requests_in_window(Duration::from_secs(1));
    assert!(peak <= rate, "{peak} requests in one second, budget {rate}");
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_tracks_at_run_time_and_remembers() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(2, 20);
    add_all_visible(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    // Nothing configured: the executions come over the API.
    let s = setup(&fake, receiver.addr, &[], "");
    let d = Daemon::start_json(&s, 1).await;
    let body = format!("{{\"DurableExecutionArn\": \"{}\"}}", execs[0].0);
    let (status, _) = http(s.api, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, _) = http(s.api, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 200, "already tracked");
    for bad in [
        "{}",
        "not json",
        "{\"DurableExecutionArn\": \"a b\"}",
        "{\"DurableExecutionArn\": \"\"}",
    ] {
        let (status, body) = http(s.api, "POST", "/v1/executions", Some(bad))
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the first to end",
        all_finished(&execs[..1]),
    )
    .await;

    // Its state, paged like GetDurableExecutionState.
    let enc = execs[0].0.replace('/', "%2F").replace('$', "%24");
    let (status, page) = http(
        s.api,
        "GET",
        &format!("/v1/executions/{enc}/state?MaxItems=5"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["Operations"].as_array().unwrap().len(), 5);
    assert_eq!(page["Operations"][0]["Type"], "EXECUTION");
    let next = page["NextMarker"].as_str().unwrap().to_owned();
    let (_, page2) = http(
        s.api,
        "GET",
        &format!("/v1/executions/{enc}/state?MaxItems=1000&Marker={next}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(page2["Operations"].as_array().unwrap().len(), 21 - 5);
    assert!(page2.get("NextMarker").is_none());
    let (status, _) = http(
        s.api,
        "GET",
        &format!("/v1/executions/{enc}/state?MaxItems=0"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);

    // Removed at run time; the removal survives a restart.
    let (status, _) = http(s.api, "DELETE", &format!("/v1/executions/{enc}"), None)
        .await
        .unwrap();
    assert_eq!(status, 204);
    let (status, _) = http(s.api, "DELETE", &format!("/v1/executions/{enc}"), None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    let body = format!("{{\"DurableExecutionArn\": \"{}\"}}", execs[1].0);
    let (status, _) = http(s.api, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 201);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    let d = Daemon::start_json(&s, 2).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the second to end",
        |v| !v.contains_key(&execs[0].0) && all_finished(&execs[1..])(v),
    )
    .await;
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[test]
fn run_with_a_bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "poll:\n  intervall: 5s\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("intervall") && err.contains("bad.yaml"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_export_works_too() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::http().await;
    let execs = executions(2, 30);
    add_all_visible(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(
        &fake,
        receiver.addr,
        &arns,
        "otlp:\n  protocol: http/protobuf\n",
    );
    let d = Daemon::start_json(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_asks_the_running_daemon() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let s = setup(&fake, receiver.addr, &[], "");
    let d = Daemon::start(&s, 1).await;
    let check = |addr: String| {
        std::process::Command::new(BIN)
            .args(["healthcheck", "--addr", &addr])
            .output()
            .unwrap()
    };
    let up = check(s.http.to_string());
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    let down = check(s.http.to_string());
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("healthcheck"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_the_collector_rejects_are_counted_logged_and_not_sent_again() {
    const MESSAGE: &str = "3 spans are older than the collector's retention";
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc_with(crate::common::otlp::Answer {
        reject: Some((3, MESSAGE.into())),
        ..Default::default()
    })
    .await;
    let execs = executions(2, 40);
    add_all_visible(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");
    let d = Daemon::start(&s, 1).await;
    // Rejections do not hold the cursors back.
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    // Every span reached the collector once: the rejected ones were not sent again.
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    let rejected = receiver.rejected();
    // Per request that had rejections: `rejected=N`, as the daemon should log them.
    let mut per_request: Vec<String> = receiver
        .meta()
        .iter()
        .filter(|m| m.rejected > 0)
        .map(|m| format!("rejected={}", m.rejected))
        .collect();
    assert!(per_request.len() >= 2, "{per_request:?}");

    assert_eq!(
        metric(s.http, "durable_exporter_spans_rejected_total").await,
        rejected as f64
    );
    assert_eq!(
        metric(s.http, "durable_exporter_spans_exported_total").await,
        (got.len() as u64 - rejected) as f64
    );
    assert_eq!(
        metric(s.http, "durable_exporter_span_export_failures_total").await,
        0.0
    );
    let logs = d.logs();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("OTLP partial success"))
        .collect();
    for w in &warnings {
        assert!(w.contains(MESSAGE) && w.contains("spans="), "{w}");
    }
    let mut logged: Vec<String> = warnings
        .iter()
        .filter_map(|w| w.split(' ').find(|f| f.starts_with("rejected=")))
        .map(str::to_owned)
        .collect();
    per_request.sort();
    logged.sort();
    assert_eq!(
        logged, per_request,
        "one WARN per request with rejections:\n{logs}"
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_the_collector_refuses_for_good_are_counted_and_the_cursor_moves_on() {
    const MESSAGE: &str = "the spans are malformed";
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::http_with(crate::common::otlp::Answer {
        http_status: Some((400, MESSAGE.into())),
        ..Default::default()
    })
    .await;
    let execs = executions(2, 30);
    add_all_visible(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(
        &fake,
        receiver.addr,
        &arns,
        "otlp:\n  protocol: http/protobuf\n",
    );
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let spans = expected(&execs).len();
    assert!(receiver.requests().is_empty());
    // Each chunk was sent once, not retried.
    let attempts = receiver.attempts();
    assert!(attempts >= 2, "{attempts}");
    assert_eq!(
        metric(s.http, "durable_exporter_spans_rejected_total").await,
        spans as f64
    );
    assert_eq!(
        metric(s.http, "durable_exporter_spans_exported_total").await,
        0.0
    );
    let logs = d.logs();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("HTTP 400"))
        .collect();
    assert_eq!(errors.len(), attempts, "one per request:\n{logs}");
    assert!(errors.iter().all(|l| l.contains(MESSAGE)), "{errors:?}");
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

/// A page that repeats an EventId with other contents (within one read of the history): the
/// first copy is what the daemon exports, and each conflicting copy is logged with its EventId
/// and counted as an anomaly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_copy_of_an_event_is_reported_and_the_first_copy_exported() {
    use durable_exporter::sim::scripted::ScriptedExecution;
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 40);
    let (a, events) = &execs[0];
    let mut wire = ScriptedExecution::from_events(a, events).events;
    assert!(
        wire.len() > 40,
        "pages of 25: the copies are on pages 1 and 2"
    );
    // A copy of event 20 on the same page, one of event 24 on the next one, both moved by a
    // second.
    let altered = |e: &Value| {
        let mut e = e.clone();
        e["EventTimestamp"] = (e["EventTimestamp"].as_f64().unwrap() + 1.0).into();
        e
    };
    let (copy20, copy24) = (altered(&wire[19]), altered(&wire[23]));
    wire.insert(21, copy20);
    wire.insert(26, copy24);
    fake.add_execution(ScriptedExecution::from_wire_events(a, wire));
    let s = setup(&fake, receiver.addr, std::slice::from_ref(a), "");
    let d = Daemon::start_json(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, _) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    let metrics = scrape(s.http).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "durable_exporter_history_anomalies_total 2"),
        "{metrics}"
    );
    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status:?}");
    let logs = std::fs::read_to_string(s.dir.path().join("daemon-1.log")).unwrap();
    let mut reported: Vec<u64> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["kind"] == "conflicting_duplicate_event")
        .map(|l| {
            assert_eq!(l["level"], "WARN", "{l}");
            l["fields"]["event_id"].as_u64().unwrap()
        })
        .collect();
    reported.sort_unstable();
    assert_eq!(reported, [20, 24], "{logs}");
}

/// A look at an execution whose read position sits deep in a large page asks for the newest 16
/// events (`ReverseOrder=true`) instead of reading the whole page again: no news costs one small
/// answer, news that fits in it is taken from it, and more news is read forward as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looks_deep_in_a_large_page_probe_the_tail() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs = executions(1, 80);
    let (a, events) = &execs[0];
    assert!(events.len() > 200, "{} events", events.len());
    add_all_visible(&fake, &execs, 150);
    let s = setup(
        &fake,
        receiver.addr,
        std::slice::from_ref(a),
        "poll:\n  page_size: 1000\n",
    );
    let d = Daemon::start_json(&s, 1).await;
    let read_to = |n: usize| {
        let a = a.clone();
        move |v: &Views| v.get(&a).is_some_and(|x| x.read >= n as u64)
    };
    wait_for(&d, s.api, Duration::from_secs(20), "150 read", read_to(150)).await;
    let history = |fake: &ScriptedApi| -> Vec<(bool, Option<String>, Option<String>)> {
        fake.requests()
            .iter()
            .filter(|r| r.op == GET_HISTORY)
            .map(|r| {
                (
                    r.param("ReverseOrder") == Some("true"),
                    r.param("MaxItems").map(str::to_owned),
                    r.param("Marker").map(str::to_owned),
                )
            })
            .collect()
    };

    // No news: every look is a tail probe of 16 events.
    fake.reset_log();
    assert!(
        fake.wait_for_requests(GET_HISTORY, 4, Duration::from_secs(10))
            .await
    );
    let idle = history(&fake);
    assert!(
        idle.iter()
            .all(|(rev, max, m)| *rev && max.as_deref() == Some("16") && m.is_none()),
        "{idle:?}"
    );

    // Five new events: taken from the probe, no forward read.
    fake.reset_log();
    fake.reveal(a, 155);
    wait_for(&d, s.api, Duration::from_secs(20), "155 read", read_to(155)).await;
    let few = history(&fake);
    assert!(few.iter().all(|(rev, _, _)| *rev), "{few:?}");

    // Forty new events: more than the probe holds, so the position's page is read forward.
    fake.reset_log();
    fake.reveal(a, 195);
    wait_for(&d, s.api, Duration::from_secs(20), "195 read", read_to(195)).await;
    let many = history(&fake);
    let first_forward = many.iter().position(|(rev, _, _)| !rev);
    assert!(
        first_forward.is_some_and(|i| i > 0 && many[i].1.as_deref() == Some("1000")),
        "a probe, then the page forward: {many:?}"
    );

    fake.reveal_all(a);
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "the execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}
