//! The simulator over HTTP, read by aws-sdk-lambda as the daemon reads Lambda: every operation
//! the SDK sends is answered in a shape it parses, errors arrive as the SDK's typed errors,
//! and the `simulate` command serves until SIGTERM.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use durable_exporter::history::{Event, EventDetails};
use durable_exporter::sim::server::{self, Faults, SimHandle};
use durable_exporter::sim::{SimSpec, Simulation};
use tokio::sync::watch;

use crate::common::daemon::BIN;
use crate::common::http::get_blocking;

async fn start(spec: SimSpec) -> (SimHandle, watch::Sender<bool>) {
    let sim = Simulation::new(spec, durable_exporter::clock::now_ms()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tx, rx) = watch::channel(false);
    let (handle, _task) = server::serve(listener, sim, Faults::default(), rx)
        .await
        .unwrap();
    (handle, tx)
}

async fn client(handle: &SimHandle) -> Client {
    durable_exporter::daemon::lambda::sdk_client(
        Some("us-east-1"),
        Some(&handle.endpoint_url()),
        Duration::from_secs(10),
        Some(aws_sdk_lambda::config::Credentials::new(
            "test", "test", None, None, "test",
        )),
    )
    .await
}

/// The whole visible history, page by page through the SDK.
async fn sdk_history(c: &Client, arn: &str, page: i32) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut marker = None;
    let mut calls = 0;
    loop {
        let out = c
            .get_durable_execution_history()
            .durable_execution_arn(arn)
            .include_execution_data(true)
            .max_items(page)
            .set_marker(marker)
            .send()
            .await
            .expect("history page");
        calls += 1;
        for e in out.events() {
            events.push(Event::try_from(e).expect("a valid event"));
        }
        marker = out.next_marker().map(str::to_owned);
        if marker.is_none() {
            return (events, calls);
        }
    }
}

/// The same history from the model directly.
fn model_history(h: &SimHandle, arn: &str) -> Vec<Event> {
    h.with_simulation(|s| s.visible_events(arn, durable_exporter::clock::now_ms()))
        .expect("a simulated execution")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_reads_listings_executions_and_paged_histories() {
    let (h, _stop) = start(SimSpec {
        executions: 40,
        spread: Duration::from_secs(3600),
        min_operations: 20,
        max_operations: 40,
        ..SimSpec::default()
    })
    .await;
    let c = client(&h).await;
    let arns: HashSet<String> = h.with_simulation(|s| s.arns().map(str::to_owned).collect());
    let mut listed = HashSet::new();
    let functions: Vec<String> =
        h.with_simulation(|s| s.functions().map(|(n, _)| n.to_owned()).collect());
    for f in &functions {
        let mut marker = None;
        loop {
            let out = c
                .list_durable_executions_by_function()
                .function_name(f)
                .max_items(3)
                .set_marker(marker)
                .send()
                .await
                .expect("listing");
            for x in out.durable_executions() {
                assert!(x.function_arn().contains(f.as_str()));
                assert!(listed.insert(x.durable_execution_arn().to_owned()));
            }
            marker = out.next_marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
    }
    assert_eq!(listed, arns, "every execution listed once, through markers");

    for arn in arns.iter().take(8) {
        let x = c
            .get_durable_execution()
            .durable_execution_arn(arn)
            .send()
            .await
            .expect("GetDurableExecution");
        assert_eq!(x.durable_execution_arn(), arn);
        assert!(x.function_arn().contains(":function:"));
        let (events, calls) = sdk_history(&c, arn, 7).await;
        let model = model_history(&h, arn);
        // The history may have grown between the two reads, never shrunk or changed.
        assert!(events.len() <= model.len());
        assert_eq!(events[..], model[..events.len()], "{arn}");
        assert_eq!(calls, events.len().div_ceil(7).max(1), "{arn}");
        let terminal = matches!(
            events.last().map(|e| &e.details),
            Some(
                EventDetails::ExecutionSucceeded { .. }
                    | EventDetails::ExecutionFailed { .. }
                    | EventDetails::ExecutionTimedOut { .. }
                    | EventDetails::ExecutionStopped { .. }
            )
        );
        assert_eq!(
            x.status().as_str() != "RUNNING",
            terminal,
            "GetDurableExecution's status agrees with the history"
        );
    }
    let stats = h.stats();
    assert_eq!(stats.requests["GetDurableExecution"][&200], 8);
    assert!(stats.events_served > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_answered_through_the_sdk() {
    let (h, _stop) = start(SimSpec {
        executions: 300,
        spread: Duration::from_secs(3600),
        ..SimSpec::default()
    })
    .await;
    let c = client(&h).await;
    let pending = h.with_simulation(|s| s.pending_callbacks(durable_exporter::clock::now_ms()));
    assert!(pending.len() >= 2, "callbacks pending: {}", pending.len());
    let ok = c
        .send_durable_execution_callback_success()
        .callback_id(&pending[0])
        .result(Blob::new(b"{\"approved\":true}".to_vec()))
        .send()
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let failed = c
        .send_durable_execution_callback_failure()
        .callback_id(&pending[1])
        .error(
            aws_sdk_lambda::types::ErrorObject::builder()
                .error_type("Rejected")
                .error_message("no budget")
                .build(),
        )
        .send()
        .await;
    assert!(failed.is_ok(), "{failed:?}");
    // Both outcomes are in their histories now.
    let mut seen = (false, false);
    for arn in h.with_simulation(|s| s.arns().map(str::to_owned).collect::<Vec<_>>()) {
        for e in model_history(&h, &arn) {
            match e.details {
                EventDetails::CallbackSucceeded { result: Some(p) }
                    if p.payload.as_deref() == Some("{\"approved\":true}") =>
                {
                    seen.0 = true
                }
                EventDetails::CallbackFailed { error: Some(err) }
                    if err.error_message.as_deref() == Some("no budget") =>
                {
                    seen.1 = true
                }
                _ => {}
            }
        }
    }
    assert_eq!(seen, (true, true));
    // A closed callback: the SDK's CallbackTimeoutException. An unknown one: not found.
    let again = c
        .send_durable_execution_callback_heartbeat()
        .callback_id(&pending[0])
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("CallbackTimeoutException"));
    let unknown = c
        .send_durable_execution_callback_heartbeat()
        .callback_id("bm9wZQ")
        .send()
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("ResourceNotFoundException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_arrive_as_the_sdks_typed_errors() {
    let (h, _stop) = start(SimSpec {
        executions: 3,
        min_operations: 30,
        max_operations: 40,
        spread: Duration::from_secs(3600),
        ..SimSpec::default()
    })
    .await;
    let c = client(&h).await;
    let arn = h.with_simulation(|s| s.arns().next().unwrap().to_owned());
    let read = |marker: Option<String>| {
        c.get_durable_execution_history()
            .durable_execution_arn(&arn)
            .max_items(2)
            .set_marker(marker)
            .send()
    };
    let marker = read(None).await.unwrap().next_marker().map(str::to_owned);
    assert!(marker.is_some());

    h.set_faults(Faults {
        throttle_probability: 1.0,
        retry_after_seconds: Some(1),
        ..Faults::default()
    });
    let e = read(None).await.unwrap_err().into_service_error();
    assert!(e.is_too_many_requests_exception(), "{e:?}");
    if let aws_sdk_lambda::operation::get_durable_execution_history::GetDurableExecutionHistoryError::TooManyRequestsException(t) = &e {
        assert_eq!(t.retry_after_seconds(), Some("1"));
    }

    h.set_faults(Faults {
        server_error_probability: 1.0,
        ..Faults::default()
    });
    let e = read(None).await.unwrap_err().into_service_error();
    assert!(e.is_service_exception(), "{e:?}");

    h.set_faults(Faults {
        expired_marker_probability: 1.0,
        ..Faults::default()
    });
    assert!(read(None).await.is_ok(), "no marker, nothing to expire");
    let e = read(marker.clone()).await.unwrap_err().into_service_error();
    assert!(e.is_invalid_parameter_value_exception(), "{e:?}");
    assert!(e.message().unwrap_or_default().contains("expired"));

    // A quota of 5 requests per second: a burst of 20 gets at most 5 (plus what refilled).
    h.set_faults(Faults {
        rate_limit: Some(5.0),
        ..Faults::default()
    });
    let mut ok = 0;
    for _ in 0..20 {
        if read(None).await.is_ok() {
            ok += 1;
        }
    }
    assert!((5..=7).contains(&ok), "{ok} of 20 got through");
}

#[test]
fn simulate_serves_until_sigterm() {
    let mut child = Command::new(BIN)
        .args(["simulate", "--listen", "127.0.0.1:0", "--executions", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("25 executions"), "{first}");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the endpoint")
        .to_owned();
    let addr = url.trim_start_matches("http://");
    let stats = get_blocking(addr, "/sim/stats").unwrap().body;
    assert!(stats.contains("\"executions\":25"), "{stats}");
    let missing = get_blocking(addr, "/2025-12-01/durable-executions/nope/history").unwrap();
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(missing.body.contains("ResourceNotFoundException"));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        rest.iter().any(|l| l.contains("API requests served: 1")),
        "{rest:?}"
    );
}

#[test]
fn simulate_refuses_bad_arguments() {
    for args in [
        &["--speed", "0.5"][..],
        &["--throttle-rate", "2"],
        &["--min-operations", "50", "--max-operations", "10"],
        &["--functions", "a:"],
    ] {
        let out = Command::new(BIN)
            .args(["simulate", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("durable-exporter: "), "{err}");
    }
}
