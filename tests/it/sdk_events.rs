//! aws-sdk-lambda reading real histories over HTTP (Marker pagination) ends in exactly the events
//! the raw-JSON reader gives for the same bytes: the daemon and `convert` see one history.

use std::collections::HashMap;
use std::sync::Arc;

use crate::common::FIXTURES;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use durable_exporter::history::Event;
use durable_exporter::history::json::parse_history;
use serde_json::Value;

fn raw_history(name: &str) -> Vec<u8> {
    std::fs::read(crate::common::history_path(name)).unwrap()
}

/// Serves every fixture's events under `/2025-12-01/durable-executions/{arn}/history`, in pages
/// of `MaxItems` with the index of the next event as the marker, as the emulator does.
type Histories = Arc<HashMap<String, Vec<Value>>>;

async fn history(
    State(h): State<Histories>,
    axum::extract::Path(arn): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(events) = h.get(&arn) else {
        return (
            StatusCode::NOT_FOUND,
            [("x-amzn-errortype", "ResourceNotFoundException")],
            r#"{"Type":"ResourceNotFoundException","message":"no such execution"}"#,
        )
            .into_response();
    };
    let max: usize = q
        .get("MaxItems")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100);
    let from: usize = q.get("Marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let to = (from + max).min(events.len());
    let mut body = serde_json::json!({ "Events": &events[from..to] });
    if to < events.len() {
        body["NextMarker"] = to.to_string().into();
    }
    ([("content-type", "application/json")], body.to_string()).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_and_raw_json_give_the_same_events() {
    let mut histories = HashMap::new();
    for name in FIXTURES {
        let v: Value = serde_json::from_slice(&raw_history(name)).unwrap();
        histories.insert(name.to_owned(), v["Events"].as_array().unwrap().clone());
    }
    let app = axum::Router::new()
        .route(
            "/2025-12-01/durable-executions/{arn}/history",
            axum::routing::get(history),
        )
        .with_state(Arc::new(histories));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let client = aws_sdk_lambda::Client::from_conf(config);

    for name in FIXTURES {
        let mut marker: Option<String> = None;
        let mut pages = 0;
        let mut events = Vec::new();
        loop {
            let out = client
                .get_durable_execution_history()
                .durable_execution_arn(name)
                .include_execution_data(true)
                .max_items(2)
                .set_marker(marker.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            pages += 1;
            for e in out.events() {
                events.push(Event::try_from(e).unwrap_or_else(|e| panic!("{name}: {e}")));
            }
            marker = out.next_marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        let raw = parse_history(&raw_history(name)).unwrap().events;
        assert_eq!(pages, raw.len().div_ceil(2), "{name}: pages of 2 events");
        assert_eq!(events.len(), raw.len(), "{name}");
        for (s, r) in events.iter().zip(&raw) {
            assert_eq!(s, r, "{name}: event {}", r.id);
        }
    }

    // An unknown ARN is the API's ResourceNotFoundException, typed.
    let err = client
        .get_durable_execution_history()
        .durable_execution_arn("no-such-execution")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    server.abort();
}

#[test]
fn sdk_events_with_every_detail_convert() {
    use aws_sdk_lambda::primitives::DateTime;
    use aws_sdk_lambda::types as t;
    use durable_exporter::history::EventDetails;
    use durable_exporter::time::Timestamp;

    let ic = t::Event::builder()
        .event_type(t::EventType::InvocationCompleted)
        .event_id(7)
        .event_timestamp(DateTime::from_secs_f64(1795248229.4355))
        .invocation_completed_details(
            t::InvocationCompletedDetails::builder()
                .start_timestamp(DateTime::from_secs_f64(1795248228.0))
                .end_timestamp(DateTime::from_secs_f64(1795248229.0))
                .request_id("req-1")
                .error(
                    t::EventError::builder()
                        .payload(
                            t::ErrorObject::builder()
                                .error_type("Sandbox.Timedout")
                                .error_message("Task timed out")
                                .stack_trace("a.py:1")
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .build();
    let e = Event::try_from(&ic).unwrap();
    assert_eq!(e.id, 7);
    // 1795248229.4355 s through the SDK's f64 path rounds (not truncates) to .436 or .435
    // exactly as the raw JSON reader does for the same number.
    let raw = parse_history(
        br#"{"Events":[{"EventType":"InvocationCompleted","EventId":7,"EventTimestamp":1795248229.4355}]}"#,
    )
    .unwrap();
    assert_eq!(e.timestamp, raw.events[0].timestamp);
    let EventDetails::InvocationCompleted {
        start,
        end,
        request_id,
        error,
    } = e.details
    else {
        panic!("{e:?}")
    };
    assert_eq!(start, Some(Timestamp(1_795_248_228_000)));
    assert_eq!(end, Some(Timestamp(1_795_248_229_000)));
    assert_eq!(request_id.as_deref(), Some("req-1"));
    let error = error.unwrap();
    assert_eq!(error.error_type.as_deref(), Some("Sandbox.Timedout"));
    assert_eq!(error.stack_trace, ["a.py:1"]);

    let unknown = t::Event::builder()
        .event_type(t::EventType::from("ExecutionPaused"))
        .event_id(8)
        .event_timestamp(DateTime::from_secs(1))
        .build();
    assert_eq!(
        Event::try_from(&unknown).unwrap().details,
        EventDetails::Unknown {
            event_type: "ExecutionPaused".into()
        }
    );
    let no_type = t::Event::builder()
        .event_id(9)
        .event_timestamp(DateTime::from_secs(1))
        .build();
    assert!(Event::try_from(&no_type).is_err());
    let zero_id = t::Event::builder()
        .event_type(t::EventType::StepStarted)
        .event_id(0)
        .event_timestamp(DateTime::from_secs(1))
        .build();
    assert!(Event::try_from(&zero_id).is_err());
}

/// Times a span cannot carry come through the SDK as through the raw-JSON reader (kept as read,
/// listed by `undrawable_timestamps` for the fold to report); times past what the raw-JSON
/// reader accepts, which the SDK has already parsed, are clamped to that bound.
#[test]
fn sdk_times_out_of_range_match_the_raw_json_reader() {
    use aws_sdk_lambda::primitives::DateTime;
    use aws_sdk_lambda::types as t;
    use durable_exporter::time::{MAX_EPOCH_SECONDS, Timestamp};

    let step = |id: i32, ts: DateTime| {
        t::Event::builder()
            .event_type(t::EventType::StepStarted)
            .event_id(id)
            .id("s")
            .event_timestamp(ts)
            .build()
    };
    for (i, secs) in [-1e12, 2.5e14, -0.5, 1e15].into_iter().enumerate() {
        let id = i as i32 + 1;
        let sdk = Event::try_from(&step(id, DateTime::from_secs_f64(secs))).unwrap();
        let raw = parse_history(
            format!(
                r#"{{"Events":[{{"EventType":"StepStarted","EventId":{id},"Id":"s","EventTimestamp":{secs:?}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(sdk, raw.events[0], "{secs}");
        let undrawable: Vec<_> = sdk.undrawable_timestamps().collect();
        assert_eq!(undrawable, [("EventTimestamp", sdk.timestamp)], "{secs}");
    }
    // 1e300 s: the SDK saturates the seconds; the reader clamps them to the accepted range.
    let far = Event::try_from(&step(9, DateTime::from_secs_f64(1e300))).unwrap();
    assert_eq!(far.timestamp, Timestamp(MAX_EPOCH_SECONDS * 1000));
    let early = Event::try_from(&step(9, DateTime::from_secs(i64::MIN))).unwrap();
    assert_eq!(early.timestamp, Timestamp(-MAX_EPOCH_SECONDS * 1000));

    // A details time before the epoch is kept, as the raw-JSON reader keeps it.
    let ic = t::Event::builder()
        .event_type(t::EventType::InvocationCompleted)
        .event_id(10)
        .event_timestamp(DateTime::from_secs(10))
        .invocation_completed_details(
            t::InvocationCompletedDetails::builder()
                .start_timestamp(DateTime::from_secs(-3))
                .end_timestamp(DateTime::from_secs(10))
                .request_id("r")
                .build()
                .unwrap(),
        )
        .build();
    let e = Event::try_from(&ic).unwrap();
    let undrawable: Vec<_> = e.undrawable_timestamps().collect();
    assert_eq!(undrawable, [("StartTimestamp", Timestamp(-3000))]);
}
