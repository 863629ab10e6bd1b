//! The daemon's /metrics over a restart: what two runs count together equals what
//! `convert --format prometheus` counts offline for the same histories (each event once), the
//! exporter's own counters match what the API and the collector saw, OpenMetrics carries
//! exemplars with the executions' trace ids, and /readyz answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::daemon::*;
use crate::common::exposition;
use crate::common::http::http_get;
use durable_exporter::history::Event;
use durable_exporter::sim::scripted::{GET_HISTORY, ScriptedApi};
use durable_exporter::synth::{SynthSpec, history};

/// GET with an Accept header; (status, content type, body).
async fn get(addr: SocketAddr, path: &str, accept: &str) -> (u16, String, String) {
    let r = http_get(addr, path, &[("Accept", accept)])
        .await
        .unwrap_or_else(|| panic!("GET {path}: no answer"));
    let ctype = r.header("content-type").unwrap_or_default().to_owned();
    (r.status, ctype, r.body)
}

/// `series{labels}` → value, from the text exposition.
fn parse(text: &str) -> BTreeMap<String, f64> {
    exposition::parse(text).by_series()
}

fn offline(execs: &[(String, Vec<Event>)]) -> BTreeMap<String, f64> {
    let mut total = BTreeMap::new();
    for (a, events) in execs {
        for (k, v) in parse(&exposition::convert_events(a, events)) {
            *total.entry(k).or_insert(0.0) += v;
        }
    }
    total
}

/// Counts of the event-driven families (counters and histogram counts).
fn counted(m: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    m.iter()
        .filter(|(k, _)| {
            (k.starts_with("durable_") && !k.starts_with("durable_exporter_"))
                && (k.contains("_total{") || k.contains("_count{"))
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_event_once_across_a_restart() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    let execs: Vec<(String, Vec<Event>)> = (1..=2)
        .map(|i| {
            let events = history(&SynthSpec {
                operations: 40,
                seed: 31 * i as u64,
                finished: true,
                ..SynthSpec::default()
            });
            (arn(i), events)
        })
        .collect();
    add_all_visible(&fake, &execs, 0);
    for (a, e) in &execs {
        fake.reveal(a, e.len() / 2);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");

    // Run 1: half of each history.
    let d = Daemon::start(&s, 1).await;
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
    let (status, ctype, text) = get(s.http, "/metrics", "text/plain").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let run1 = parse(&text);
    let running = r#"durable_executions_running{function="orders",qualifier="$LATEST"}"#;
    assert_eq!(run1.get(running), Some(&2.0), "{text}");
    assert!(
        !text.contains("durable-execution/m-"),
        "no execution ARN in labels"
    );
    let (status, _, _) = get(s.http, "/readyz", "*/*").await;
    assert_eq!(status, 200);
    assert!(d.terminate(Duration::from_secs(25)).await.success());

    // Run 2: the rest.
    fake.reset_log();
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let d = Daemon::start(&s, 2).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let (_, _, text) = get(s.http, "/metrics", "text/plain").await;
    let run2 = parse(&text);
    assert_eq!(run2.get(running).copied().unwrap_or(0.0), 0.0);

    // Together, the two runs counted exactly what the histories hold.
    let mut together = counted(&run1);
    for (k, v) in counted(&run2) {
        *together.entry(k).or_insert(0.0) += v;
    }
    let want = counted(&offline(&execs));
    assert!(!want.is_empty());
    for (k, v) in &want {
        assert_eq!(together.get(k).copied().unwrap_or(0.0), *v, "{k}");
    }
    for (k, v) in &together {
        if *v > 0.0 {
            assert!(want.contains_key(k), "{k} counted but not in the histories");
        }
    }

    // The exporter's own counters agree with what the API and the collector saw.
    let ok = r#"durable_exporter_api_requests_total{operation="GetDurableExecutionHistory",outcome="ok"}"#;
    assert_eq!(
        run2.get(ok).copied().unwrap_or(0.0) as usize,
        fake.count_status(GET_HISTORY, 200)
    );
    let exported = run1["durable_exporter_spans_exported_total"]
        + run2["durable_exporter_spans_exported_total"];
    assert_eq!(exported as usize, expected(&execs).len());
    assert_eq!(
        run2.get(r#"durable_exporter_build_info{version="0.1.0"}"#),
        Some(&1.0)
    );

    // OpenMetrics when asked, with exemplars naming the executions' traces.
    let (status, ctype, om) = get(
        s.http,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    )
    .await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(om.ends_with("# EOF\n"));
    let traces: Vec<String> = received(&receiver)
        .0
        .values()
        .map(|s| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let exemplar = om
        .lines()
        .find_map(|l| l.split("# {trace_id=\"").nth(1))
        .map(|r| r[..32].to_owned())
        .expect("an exemplar");
    assert!(
        traces.contains(&exemplar),
        "{exemplar} is no exported trace"
    );
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}
