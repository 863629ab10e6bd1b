//! A real Prometheus scrapes the running daemon: PromQL through its HTTP API returns the values
//! the histories imply, exemplars link to the executions' traces, and `promtool check metrics`
//! finds nothing to say about a scrape.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::daemon::*;
use crate::common::exposition::{convert_events, parse};
use crate::common::http::http_get;
use crate::common::prometheus::{Prometheus, promtool_bin, promtool_check_metrics};
use durable_exporter::history::Event;
use durable_exporter::sim::scripted::{GET_HISTORY, ScriptedApi};
use durable_exporter::synth::{SynthSpec, history};

/// `convert --format prometheus` of one history, as series → value.
fn offline(a: &str, events: &[Event]) -> BTreeMap<String, f64> {
    parse(&convert_events(a, events)).by_series()
}

fn sum_where(m: &BTreeMap<String, f64>, prefix: &str, contains: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix) && contains.iter().all(|c| k.contains(c)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_what_the_histories_imply() {
    let Some(promtool) = promtool_bin() else {
        return;
    };
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    // Two functions, three executions.
    let execs: Vec<(String, Vec<Event>)> = [("orders", 1), ("orders", 2), ("billing", 3)]
        .iter()
        .map(|(f, i)| {
            let events = history(&SynthSpec {
                operations: 50,
                seed: 97 * *i as u64,
                finished: true,
                ..SynthSpec::default()
            });
            (arn_of_function(f, *i), events)
        })
        .collect();
    add_all(&fake, &execs);
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(30),
        "every execution to end",
        all_finished(&execs),
    )
    .await;

    let Some(prom) = Prometheus::start(&s.http.to_string()).await else {
        return;
    };
    prom.wait_until_up(Duration::from_secs(20)).await;

    // What the histories imply, per function.
    let mut by_fn: BTreeMap<&str, BTreeMap<String, f64>> = BTreeMap::new();
    for (a, e) in &execs {
        let f = if a.contains(":orders:") {
            "orders"
        } else {
            "billing"
        };
        let entry = by_fn.entry(f).or_default();
        for (k, v) in offline(a, e) {
            *entry.entry(k).or_insert(0.0) += v;
        }
    }
    for (f, m) in &by_fn {
        let sel = format!("function=\"{f}\"");
        for (family, extra) in [
            ("durable_executions_started_total", ""),
            ("durable_step_attempts_total", ",outcome=\"FAILED\""),
            ("durable_step_attempts_total", ",outcome=\"SUCCEEDED\""),
            ("durable_step_retries_total", ""),
            ("durable_invocations_total", ""),
            ("durable_operations_finished_total", ",type=\"STEP\""),
            ("durable_operations_finished_total", ",type=\"WAIT\""),
            ("durable_operations_finished_total", ",type=\"CALLBACK\""),
            ("durable_wait_duration_seconds_count", ""),
            ("durable_callback_duration_seconds_count", ""),
            ("durable_execution_duration_seconds_count", ""),
        ] {
            let want = sum_where(m, family, &[&sel, extra.trim_start_matches(',')]);
            let q = format!("sum({family}{{{sel}{extra}}})");
            let got = prom
                .wait_for(&q, Duration::from_secs(20), |r| {
                    r.first().is_some_and(|(_, v)| (*v - want).abs() < 1e-9)
                })
                .await;
            assert_eq!(got[0].1, want, "{q}");
        }
        // Finished by status: every execution once.
        let q = format!("sum(durable_executions_finished_total{{{sel}}})");
        let started = sum_where(m, "durable_executions_started_total", &[&sel]);
        let got = prom.query(&q).await;
        assert_eq!(got[0].1, started, "{q}");
    }
    // Nothing running once all ended; the exporter's own view agrees with the fake.
    let running = prom.query("sum(durable_executions_running)").await;
    assert!(running.is_empty() || running[0].1 == 0.0, "{running:?}");
    let ok = prom
        .query(r#"durable_exporter_api_requests_total{operation="GetDurableExecutionHistory",outcome="ok"}"#)
        .await;
    assert_eq!(ok[0].1 as usize, fake.count_status(GET_HISTORY, 200));
    let info = prom.query("durable_exporter_build_info").await;
    assert_eq!(
        info[0].0.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // A quantile over the step attempt histogram works (buckets are cumulative and ordered).
    let p95 = prom
        .query(
            "histogram_quantile(0.95, sum by (le) (durable_step_attempt_duration_seconds_bucket))",
        )
        .await;
    assert!(p95[0].1.is_finite() && p95[0].1 >= 0.0, "{p95:?}");

    // Exemplars: Prometheus negotiated OpenMetrics and stored trace ids the collector has.
    let traces: Vec<String> = received(&receiver)
        .0
        .values()
        .map(|s| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let ex = prom
        .query_exemplars(
            "durable_execution_duration_seconds_bucket",
            0.0,
            4_102_444_800.0,
        )
        .await;
    let ids: Vec<String> = ex
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["labels"]["trace_id"].as_str().map(str::to_owned))
        .collect();
    assert!(!ids.is_empty(), "no exemplar stored: {ex}");
    assert!(ids.iter().all(|id| traces.contains(id)), "{ids:?}");

    // promtool has nothing to say about a scrape.
    let scrape = http_get(s.http, "/metrics", &[("Accept", "text/plain")])
        .await
        .unwrap();
    if let Err(e) = promtool_check_metrics(&promtool, &scrape.body) {
        panic!("promtool check metrics:\n{e}");
    }
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}
