//! The execution browser in a real browser: Debian's Chromium driven by playwright-core
//! (tests/ui/browser.mjs) against the real binary running the demo. The script reports what a
//! user sees; this test judges it against the daemon's own JSON.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::daemon::BIN;
use crate::common::http::{free_port, get_blocking, urlencode};
use crate::common::{missing, require_tool, root};

#[test]
fn the_browser_lists_filters_and_draws_what_convert_draws() {
    let Some(_) = require_tool("chromium", "apt-get install chromium") else {
        return;
    };
    let Some(node) = require_tool("node", "install Node.js 20") else {
        return;
    };
    let ui_dir = root().join("tests/ui");
    if !ui_dir.join("node_modules/playwright-core").is_dir() {
        missing("playwright-core", "npm ci --prefix tests/ui");
        return;
    }
    let api = format!("127.0.0.1:{}", free_port());
    let mut demo = Command::new(BIN)
        .args(["demo", "--duration", "150s", "--speed", "10", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(["--api-listen", &api, "--spans-file"])
        .arg(std::env::temp_dir().join(format!("ui-test-{}.jsonl", std::process::id())))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // Keep reading: a closed pipe would end the demo at its next summary line.
    let drain = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    // The demo says first where to look.
    let url = format!("http://{api}/");
    assert!(first.contains(&url), "{first}");
    let out = Command::new(node)
        .arg("browser.mjs")
        .arg(&url)
        .current_dir(&ui_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser.mjs failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // No request left the listener; the page raised no error (a CSP violation would be one).
    assert_eq!(report["outside"], serde_json::json!([]), "{report}");
    assert_eq!(report["consoleErrors"], serde_json::json!([]), "{report}");
    // The list filled and refreshed while the page stayed open (the page was loaded once).
    // Whether a row changed within 45 s is reported (`rowsChanged`) but not asserted: on a
    // loaded machine the demo's executions may all be between changes for that long.
    assert!(report["firstRows"].as_u64().unwrap() >= 10, "{report}");
    assert_eq!(report["liveRefreshed"], true, "{report}");
    assert_eq!(report["navigations"], 1);
    eprintln!("rows changed while watched: {}", report["rowsChanged"]);
    // Filtering by status showed exactly the API's FAILED executions.
    assert!(report["failedShown"].as_u64().unwrap() >= 1);
    assert_eq!(report["failedShown"], report["failedInApi"], "{report}");

    // The timeline has one bar per span the core draws for the whole history.
    let arn = report["arn"].as_str().unwrap();
    let detail = get_blocking(&api, &format!("/v1/ui/executions/{}", urlencode(arn)))
        .unwrap_or_else(|e| panic!("GET the execution: {e}"));
    assert_eq!(detail.status, 200);
    // Finished and kept: viewing it again costs no API call.
    assert_eq!(detail.header("x-durable-api-calls"), Some("0"));
    let detail: Value = serde_json::from_str(&detail.body).unwrap();
    assert_eq!(detail["Finished"], true);
    let spans: Vec<&Value> = detail["Trace"]["resourceSpans"][0]["scopeSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["spans"].as_array().unwrap())
        .collect();
    let bars = report["bars"].as_array().unwrap();
    assert_eq!(bars.len(), spans.len(), "{report}");
    let mut bar_ids: Vec<&str> = bars.iter().map(|b| b["id"].as_str().unwrap()).collect();
    let mut span_ids: Vec<&str> = spans
        .iter()
        .map(|s| s["spanId"].as_str().unwrap())
        .collect();
    bar_ids.sort_unstable();
    span_ids.sort_unstable();
    assert_eq!(bar_ids, span_ids);
    // The failed step shows its error.
    let failed_message = spans
        .iter()
        .filter(|s| s["status"]["code"] == 2 && s["name"] != "Workflow")
        .filter_map(|s| s["status"]["message"].as_str())
        .next()
        .expect("a failed span");
    let shown = report["errorText"].as_str().unwrap();
    assert!(shown.contains("failed"), "{shown}");
    assert!(
        spans
            .iter()
            .filter_map(|s| s["status"]["message"].as_str())
            .any(|m| shown.contains(m)),
        "{shown} names no span's error (first: {failed_message})"
    );

    // The aggregates page counts what /metrics counts.
    let total = report["aggregateTotal"].as_u64().unwrap();
    assert!(total >= 1);
    let _ = demo.kill();
    let _ = demo.wait();
    let _ = drain.join();
}
