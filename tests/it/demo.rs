//! `durable-exporter demo`, the README's first command: the binary runs the simulator and the
//! daemon, serves /metrics while it runs, writes spans to its file (or sends them to an OTLP
//! collector when OTEL_EXPORTER_OTLP_ENDPOINT is set), prints its summary, and stops by itself.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::http::{free_port, get_blocking};
use serde_json::Value;

use crate::common::daemon::BIN;

fn demo(listen: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "demo",
        "--duration",
        "8s",
        "--summary-every",
        "2s",
        "--speed",
        "30",
        "--listen",
        listen,
        "--api-listen",
        &format!("127.0.0.1:{}", free_port()),
    ])
    .args(extra)
    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
    .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// GET `path` once the server answers 200 (or panics after 20 s): the body.
fn get_when_up(addr: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = get_blocking(addr, path)
            && r.status == 200
        {
            return r.body;
        }
        assert!(Instant::now() < deadline, "{addr}{path} never answered");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The demo's stdout and exit status, once it stopped by itself.
fn finish(mut child: Child) -> String {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{out}\n{err}");
    out
}

/// The numbers of the last summary line: (executions, events read, spans exported, API calls).
fn last_summary(out: &str) -> (u64, u64, u64, u64) {
    let line = out
        .lines()
        .rfind(|l| l.starts_with('['))
        .expect("a summary line");
    let after = |key: &str| -> u64 {
        let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        after("executions "),
        after("events read "),
        after("spans exported "),
        after("API calls "),
    )
}

#[test]
fn the_demo_serves_metrics_writes_spans_and_stops_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("spans.jsonl");
    let listen = format!("127.0.0.1:{}", free_port());
    let child = demo(&listen, &["--spans-file", spans.to_str().unwrap()])
        .spawn()
        .unwrap();
    let metrics = get_when_up(&listen, "/metrics");
    assert!(metrics.contains("durable_exporter_build_info"), "{metrics}");
    let out = finish(child);
    assert!(
        out.contains(&format!("metrics  http://{listen}/metrics")),
        "{out}"
    );
    assert!(
        out.lines().filter(|l| l.starts_with('[')).count() >= 4,
        "a summary every 2 s:\n{out}"
    );
    let (executions, events, exported, calls) = last_summary(&out);
    assert!(executions >= 40, "{out}");
    assert!(events > 100 && exported > 100 && calls > 10, "{out}");
    assert!(
        out.contains("as `convert --format tree` draws it") && out.contains("Workflow"),
        "{out}"
    );

    // The file holds exactly what the summary says was exported, as OTLP/JSON lines.
    let text = std::fs::read_to_string(&spans).unwrap();
    let mut count = 0u64;
    let mut by_trace: HashMap<String, Vec<Value>> = HashMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("each line is JSON");
        for rs in v["resourceSpans"].as_array().unwrap() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "service.name")
                .and_then(|a| a["value"]["stringValue"].as_str())
                .unwrap();
            assert!(!service.is_empty());
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for s in ss["spans"].as_array().unwrap() {
                    count += 1;
                    by_trace
                        .entry(s["traceId"].as_str().unwrap().to_owned())
                        .or_default()
                        .push(s.clone());
                }
            }
        }
    }
    assert_eq!(count, exported, "every exported span is in the file");
    // Finished executions are whole traces: one Workflow root, every parent present.
    let mut whole = 0;
    for spans in by_trace.values() {
        let Some(_) = spans.iter().find(|s| s["name"] == "Workflow") else {
            continue;
        };
        whole += 1;
        let ids: HashSet<&str> = spans
            .iter()
            .map(|s| s["spanId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), spans.len(), "no span twice");
        for s in spans {
            if let Some(p) = s.get("parentSpanId").and_then(Value::as_str)
                && s["name"] != "Workflow"
            {
                assert!(ids.contains(p), "{} has its parent", s["name"]);
            }
        }
    }
    assert!(whole >= 10, "{whole} finished executions");
}

#[test]
fn the_demo_sends_spans_to_the_collector_otel_names() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(crate::common::otlp::grpc());
    let dir = tempfile::tempdir().unwrap();
    let spans = dir.path().join("not-written.jsonl");
    let listen = format!("127.0.0.1:{}", free_port());
    let child = demo(&listen, &["--spans-file", spans.to_str().unwrap()])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", receiver.addr),
        )
        .spawn()
        .unwrap();
    let out = finish(child);
    assert!(
        out.contains(&format!("spans -> OTLP http://{}", receiver.addr)),
        "{out}"
    );
    let (_, _, exported, _) = last_summary(&out);
    let received: usize = receiver
        .requests()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert!(exported > 100, "{out}");
    assert_eq!(received as u64, exported);
    assert!(!spans.exists(), "no file when a collector is set");
}
