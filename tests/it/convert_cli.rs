//! `durable-exporter convert` as other tools call it: the real binary, real fixture histories
//! captured from AWS's emulator, golden outputs, exit codes.
//!
//! Golden files live in tests/golden; `UPDATE_GOLDEN=1 cargo nextest run --test it convert_cli::`
//! rewrites them (review the diff before committing).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::common::{FIXTURES, arn_of, history_path as history, root};
use serde_json::Value;

use crate::common::daemon::BIN;

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn convert_ok(args: &[&str]) -> String {
    let out = run(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn convert(name: &str, format: &str, extra: &[&str]) -> String {
    let arn = arn_of(name);
    let path = history(name);
    let mut args = vec![
        "convert",
        "--arn",
        &arn,
        "--format",
        format,
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    convert_ok(&args)
}

fn spans(otlp: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(otlp).unwrap();
    v["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .clone()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn golden(file: &str, actual: &str) {
    let path = root().join("tests/golden").join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert!(
        expected == actual,
        "{file} differs from the golden file; UPDATE_GOLDEN=1 rewrites it.\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

#[test]
fn golden_outputs() {
    for name in ["retry-then-succeed", "callbacks", "parallel-map", "stopped"] {
        golden(&format!("{name}.tree.txt"), &convert(name, "tree", &[]));
        golden(
            &format!("{name}.otlp.json"),
            &pretty(&convert(name, "otlp-json", &[])),
        );
        golden(
            &format!("{name}.state.json"),
            &convert(name, "state-json", &[]),
        );
    }
}

fn pretty(json: &str) -> String {
    let v: Value = serde_json::from_str(json).unwrap();
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}

#[test]
fn every_fixture_converts_in_every_format_to_a_well_formed_trace() {
    for name in FIXTURES {
        let otlp = convert(name, "otlp-json", &[]);
        let spans = spans(&otlp);
        let ids: Vec<&str> = spans
            .iter()
            .map(|s| s["spanId"].as_str().unwrap())
            .collect();
        let roots: Vec<&Value> = spans
            .iter()
            .filter(|s| s.get("parentSpanId").is_none())
            .collect();
        assert_eq!(roots.len(), 1, "{name}: one root");
        assert_eq!(roots[0]["name"], "Workflow", "{name}");
        for s in &spans {
            assert_eq!(s["traceId"].as_str().unwrap().len(), 32);
            assert_eq!(s["kind"], 1, "INTERNAL");
            if let Some(p) = s.get("parentSpanId") {
                assert!(ids.contains(&p.as_str().unwrap()), "{name}: {s}");
            }
            let start: u64 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
            let end: u64 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
            assert!(start <= end, "{name}: {s}");
            assert_eq!(
                attr(s, "durable.execution.arn").unwrap()["stringValue"],
                arn_of(name)
            );
        }
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{name}: span ids are unique");
        // Same input, byte-identical output.
        assert_eq!(otlp, convert(name, "otlp-json", &[]), "{name}");

        let state: Value = serde_json::from_str(&convert(name, "state-json", &[])).unwrap();
        let ops = state["Operations"].as_array().unwrap();
        assert_eq!(ops[0]["Type"], "EXECUTION", "{name}");
        let starts: Vec<f64> = ops
            .iter()
            .map(|o| o["StartTimestamp"].as_f64().unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{name}: by start");
        assert!(convert(name, "tree", &[]).starts_with("Workflow"), "{name}");
    }
}

#[test]
fn spans_follow_the_reference_conventions() {
    let spans = spans(&convert("retry-then-succeed", "otlp-json", &[]));
    let by_name = |n: &str| spans.iter().find(|s| s["name"] == n).unwrap();
    let workflow = by_name("Workflow");
    assert_eq!(
        attr(workflow, "durable.execution.status").unwrap()["stringValue"],
        "SUCCEEDED"
    );
    assert_eq!(workflow["status"]["code"], 1);
    let step = by_name("flaky-step");
    assert_eq!(step["parentSpanId"], workflow["spanId"]);
    assert_eq!(
        attr(step, "durable.operation.type").unwrap()["stringValue"],
        "STEP"
    );
    assert_eq!(
        attr(step, "durable.operation.subtype").unwrap()["stringValue"],
        "Step"
    );
    assert_eq!(
        attr(step, "durable.operation.id").unwrap()["stringValue"],
        "1ced8f5be2db23a6513eba4d819c73806424748a7bc6fa0d792cc1c7d1775a97"
    );
    let invocations: Vec<&Value> = spans.iter().filter(|s| s["name"] == "Invocation").collect();
    assert_eq!(invocations.len(), 3);
    assert_eq!(
        attr(invocations[0], "durable.invocation.first").unwrap()["boolValue"],
        true
    );
    assert_eq!(
        attr(invocations[1], "durable.invocation.first").unwrap()["boolValue"],
        false
    );
    // The step finished in invocation 3: its link says so.
    assert_eq!(step["links"][0]["spanId"], invocations[2]["spanId"]);
    for n in 1..=3 {
        let a = by_name(&format!("flaky-step attempt {n}"));
        assert_eq!(a["parentSpanId"], step["spanId"]);
        assert_eq!(
            attr(a, "durable.attempt.number").unwrap()["intValue"],
            n.to_string()
        );
        // Attempt n ran in invocation n.
        assert_eq!(a["links"][0]["spanId"], invocations[n - 1]["spanId"]);
        let outcome = &attr(a, "durable.attempt.outcome").unwrap()["stringValue"];
        if n < 3 {
            assert_eq!(outcome, "FAILED");
            assert_eq!(a["status"]["code"], 2);
            let ev = &a["events"][0];
            assert_eq!(ev["name"], "exception");
            assert_eq!(
                attr(ev, "exception.type").unwrap()["stringValue"],
                "ConnectionError"
            );
        } else {
            assert_eq!(outcome, "SUCCEEDED");
            assert_eq!(a["status"]["code"], 1, "a succeeded attempt is OK: {a}");
        }
    }
    let backoff = by_name("flaky-step back-off 1");
    assert_eq!(
        attr(backoff, "durable.backoff.scheduled_seconds").unwrap()["intValue"],
        "2"
    );
}

#[test]
fn what_only_a_history_shows() {
    let waits = spans(&convert("waits", "otlp-json", &[]));
    let wait = waits.iter().find(|s| s["name"] == "wait-3s").unwrap();
    assert_eq!(
        attr(wait, "durable.wait.scheduled_end_time").unwrap()["stringValue"],
        "2026-11-21T08:03:52.438Z"
    );
    let late = attr(wait, "durable.wait.lateness_seconds").unwrap()["doubleValue"]
        .as_f64()
        .unwrap();
    assert!((0.0..0.2).contains(&late), "{late}");
    assert!(
        waits
            .iter()
            .filter(|s| s["name"] == "Suspended")
            .all(|s| attr(s, "durable.suspension.waiting_for").unwrap()["stringValue"] == "WAIT")
    );

    let cb = spans(&convert("callbacks", "otlp-json", &[]));
    let expiring = cb.iter().find(|s| s["name"] == "expiring").unwrap();
    assert_eq!(
        attr(expiring, "durable.operation.status").unwrap()["stringValue"],
        "TIMED_OUT"
    );
    assert_eq!(expiring["status"]["code"], 2);
    assert!(
        attr(expiring, "durable.callback.id").unwrap()["stringValue"]
            .as_str()
            .unwrap()
            .starts_with("eyJ")
    );

    let child = cb
        .iter()
        .find(|s| s["name"] == "external-approval submitter")
        .unwrap();
    let ctx = cb
        .iter()
        .find(|s| s["name"] == "external-approval")
        .unwrap();
    assert_eq!(child["parentSpanId"], ctx["spanId"]);

    let chained = spans(&convert("chained-invoke", "otlp-json", &[]));
    let call = chained
        .iter()
        .find(|s| s["name"] == "call-durable-child")
        .unwrap();
    assert_eq!(
        attr(call, "durable.chained_invoke.function_name").unwrap()["stringValue"],
        "invoke-target-durable"
    );
    let child_arn = attr(call, "durable.chained_invoke.execution_arn").unwrap()["stringValue"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = call["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| attr(l, "durable.link.type").is_some())
        .unwrap();
    // The child's Workflow span id, derived from the child's ARN as the plugin would.
    assert_eq!(
        link["spanId"],
        durable_exporter::trace::ids::IdScheme::Python
            .workflow_span_id(&child_arn)
            .to_hex()
    );
}

#[test]
fn payloads_stay_private_unless_asked_for() {
    let private = convert("callbacks", "otlp-json", &[]);
    let state = convert("callbacks", "state-json", &[]);
    for secret in ["approved-by-bob", "budget", "alice"] {
        assert!(!private.contains(secret), "{secret} leaked into spans");
        assert!(!state.contains(secret), "{secret} leaked into state");
    }
    // Error type and message are always kept.
    assert!(private.contains("rejected by reviewer") && private.contains("Rejected"));

    let open = convert("callbacks", "otlp-json", &["--include-payloads"]);
    assert!(open.contains("approved-by-bob"));
    let cut = convert(
        "callbacks",
        "otlp-json",
        &["--include-payloads", "--max-attribute-length", "5"],
    );
    let spans = spans(&cut);
    let approval = spans.iter().find(|s| s["name"] == "approval").unwrap();
    assert_eq!(
        attr(approval, "durable.operation.result").unwrap()["stringValue"],
        "{\"app"
    );
    assert_eq!(
        attr(approval, "durable.payload.truncated").unwrap()["boolValue"],
        true
    );
}

#[test]
fn ids_match_the_plugins_and_a_trace_header_wins() {
    let arn = arn_of("steps-basic");
    let spans_py = spans(&convert("steps-basic", "otlp-json", &[]));
    let workflow = &spans_py.iter().find(|s| s["name"] == "Workflow").unwrap();
    let ids = durable_exporter::trace::ids::IdScheme::Python;
    assert_eq!(workflow["spanId"], ids.workflow_span_id(&arn).to_hex());
    let add = spans_py.iter().find(|s| s["name"] == "add").unwrap();
    assert_eq!(
        add["spanId"],
        ids.operation_span_id(
            &arn,
            "1ced8f5be2db23a6513eba4d819c73806424748a7bc6fa0d792cc1c7d1775a97"
        )
        .to_hex()
    );
    // The Python trace id opens with ExecutionStarted's whole seconds in hex.
    let trace = workflow["traceId"].as_str().unwrap();
    assert!(
        trace.starts_with(&format!("{:08x}", 1_795_248_229u32)),
        "{trace}"
    );

    let spans_js = spans(&convert("steps-basic", "otlp-json", &["--id-scheme", "js"]));
    let wf_js = spans_js.iter().find(|s| s["name"] == "Workflow").unwrap();
    assert_eq!(
        wf_js["spanId"],
        durable_exporter::trace::ids::IdScheme::Js
            .workflow_span_id(&arn)
            .to_hex()
    );
    assert_ne!(wf_js["traceId"], workflow["traceId"]);

    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let spans_x = spans(&convert(
        "steps-basic",
        "otlp-json",
        &["--trace-header", header],
    ));
    assert!(
        spans_x
            .iter()
            .all(|s| s["traceId"] == "5759e988bd862e3fe1be46a994272793")
    );
    let wf_x = spans_x.iter().find(|s| s["name"] == "Workflow").unwrap();
    assert_eq!(wf_x["parentSpanId"], "53995c3f42cd8ad8");
    assert_eq!(wf_x["spanId"], workflow["spanId"]);
}

#[test]
fn resource_and_scope() {
    let out: Value = serde_json::from_str(&convert(
        "steps-basic",
        "otlp-json",
        &["--service-name", "checkout"],
    ))
    .unwrap();
    let rs = &out["resourceSpans"][0];
    let res = &rs["resource"];
    assert_eq!(
        attr(res, "service.name").unwrap()["stringValue"],
        "checkout"
    );
    assert_eq!(attr(res, "cloud.provider").unwrap()["stringValue"], "aws");
    assert_eq!(
        attr(res, "cloud.platform").unwrap()["stringValue"],
        "aws_lambda"
    );
    let scope = &rs["scopeSpans"][0]["scope"];
    assert_eq!(scope["name"], "durable-exporter");
    assert_eq!(scope["version"], env!("CARGO_PKG_VERSION"));

    // A real Lambda ARN gives region, account, function and qualifier.
    let real = "arn:aws:lambda:eu-west-1:210987654321:function:payments:7/durable-execution/order-42/0f9e8d7c";
    let path = history("steps-basic");
    let out: Value = serde_json::from_str(&convert_ok(&[
        "convert",
        "--arn",
        real,
        path.to_str().unwrap(),
    ]))
    .unwrap();
    let res = &out["resourceSpans"][0]["resource"];
    for (k, v) in [
        ("service.name", "payments"),
        ("cloud.region", "eu-west-1"),
        ("cloud.account.id", "210987654321"),
        ("faas.name", "payments"),
        ("faas.version", "7"),
    ] {
        assert_eq!(attr(res, k).unwrap()["stringValue"], v, "{k}");
    }
}

/// Rewrites epoch-second timestamps as the AWS CLI prints them.
fn to_cli_form(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k.ends_with("Timestamp") && x.is_f64() {
                    let secs = x.as_f64().unwrap();
                    let t = durable_exporter::time::Timestamp::from_secs_f64(secs).unwrap();
                    let iso = t.to_iso8601().replace('Z', "000+00:00");
                    *x = Value::String(iso);
                } else {
                    to_cli_form(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(to_cli_form),
        _ => {}
    }
}

#[test]
fn every_input_form_gives_the_same_output() {
    let name = "parallel-map";
    let arn = arn_of(name);
    let expected = convert(name, "otlp-json", &[]);
    let page: Value = serde_json::from_slice(&std::fs::read(history(name)).unwrap()).unwrap();
    let events = page["Events"].as_array().unwrap();
    let pages: Vec<Value> = events
        .chunks(7)
        .enumerate()
        .map(|(i, c)| serde_json::json!({"Events": c, "NextMarker": format!("m{i}")}))
        .collect();
    let mut cli = page.clone();
    to_cli_form(&mut cli);
    // Overlapping pages repeat events: they must count once.
    let overlapping: Vec<Value> = events
        .windows(10)
        .step_by(5)
        .map(|w| serde_json::json!({"Events": w}))
        .collect();
    let forms: Vec<String> = vec![
        serde_json::to_string(&pages).unwrap(),
        pages
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        pages.iter().map(|p| p.to_string()).collect::<String>(),
        serde_json::to_string_pretty(&cli).unwrap(),
        serde_json::to_string(&overlapping).unwrap()
            + &serde_json::json!({"Events": events[events.len() - 10..]}).to_string(),
    ];
    for form in forms {
        let out = run(&["convert", "--arn", &arn, "-"], Some(form.as_bytes()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    }
}

#[test]
fn bad_input_exits_2_with_one_line_naming_input_and_position() {
    let dir = std::env::temp_dir().join(format!("dex-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("broken.json");
    std::fs::write(
        &bad,
        "{\"Events\": [\n  {\"EventType\": \"StepStarted\", \"EventId\": }\n]}",
    )
    .unwrap();
    let out = run(&["convert", "--arn", "a/b", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{}:2:", bad.display())), "{err}");
    assert!(out.stdout.is_empty());

    let out = run(&["convert", "--arn", "a/b", "-"], Some(b"not json"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("<stdin>:1:"), "{err}");

    let missing = dir.join("missing.json");
    let out = run(
        &["convert", "--arn", "a/b", missing.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));

    let h = history("waits");
    for (args, needle) in [
        (vec!["convert", "--arn", "", h.to_str().unwrap()], "--arn"),
        (
            vec!["convert", "--arn", "a b", h.to_str().unwrap()],
            "--arn",
        ),
        (
            vec![
                "convert",
                "--arn",
                "a/b",
                "--trace-header",
                "Root=2-x",
                h.to_str().unwrap(),
            ],
            "--trace-header",
        ),
        (
            vec![
                "convert",
                "--arn",
                "a/b",
                "--format",
                "yaml",
                h.to_str().unwrap(),
            ],
            "yaml",
        ),
    ] {
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_events_are_warned_about_and_skipped() {
    let mut page: Value =
        serde_json::from_slice(&std::fs::read(history("waits")).unwrap()).unwrap();
    let events = page["Events"].as_array_mut().unwrap();
    // Insert an ExecutionPaused / ExecutionResumed pair after event 5, renumbering.
    let ts = events[4]["EventTimestamp"].clone();
    events.insert(
        5,
        serde_json::json!({"EventType": "ExecutionPaused", "EventId": 0, "EventTimestamp": ts}),
    );
    events.insert(
        6,
        serde_json::json!({"EventType": "ExecutionResumed", "EventId": 0, "EventTimestamp": ts}),
    );
    for (i, e) in events.iter_mut().enumerate() {
        e["EventId"] = (i + 1).into();
    }
    let arn = arn_of("waits");
    let out = run(
        &["convert", "--arn", &arn, "--format", "tree", "-"],
        Some(page.to_string().as_bytes()),
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("unknown_event_type").count(), 2, "{err}");
    assert!(err.contains("ExecutionPaused") && err.contains("ExecutionResumed"));
    let tree = String::from_utf8(out.stdout).unwrap();
    assert_eq!(tree, convert("waits", "tree", &[]));
}

#[test]
fn an_unfinished_history_has_no_workflow_yet() {
    let page: Value = serde_json::from_slice(&std::fs::read(history("waits")).unwrap()).unwrap();
    let events = &page["Events"].as_array().unwrap()[..6];
    let arn = arn_of("waits");
    let out = run(
        &["convert", "--arn", &arn, "-"],
        Some(serde_json::json!({"Events": events}).to_string().as_bytes()),
    );
    assert!(out.status.success());
    let spans = spans(&String::from_utf8(out.stdout).unwrap());
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "before-wait attempt 1",
            "before-wait",
            "Invocation",
            "wait-3s"
        ]
    );
    assert!(spans.iter().all(|s| s["parentSpanId"].is_string()));
}

fn handwritten(format: &str, file: &str, extra: &[&str]) -> String {
    let dir = root().join("tests/fixtures/handwritten");
    let arn = std::fs::read_to_string(dir.join("arn.txt")).unwrap();
    let path = dir.join(file);
    let mut args = vec![
        "convert",
        "--arn",
        arn.trim(),
        "--format",
        format,
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    convert_ok(&args)
}

/// A real-service-shaped history (full ARNs, InvocationCompletedDetails, RetryDetails on
/// StepSucceeded, callback time-outs, ExecutedVersion) holding every event type but the three
/// terminal ones the emulator fixtures cover (ExecutionSucceeded, TimedOut, Stopped).
#[test]
fn every_event_type_in_the_real_service_form() {
    let otlp = handwritten("otlp-json", "every-event-type.json", &[]);
    golden("every-event-type.otlp.json", &pretty(&otlp));
    golden(
        "every-event-type.tree.txt",
        &handwritten("tree", "every-event-type.json", &[]),
    );
    golden(
        "every-event-type.state.json",
        &handwritten("state-json", "every-event-type.json", &[]),
    );
    // The AWS CLI's form (ISO timestamps, two pages) is the same history.
    assert_eq!(
        otlp,
        handwritten("otlp-json", "every-event-type.cli.json", &[])
    );

    let spans = spans(&otlp);
    let by = |n: &str| {
        spans
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("no span {n}"))
    };
    let status = |n: &str| attr(by(n), "durable.operation.status").unwrap()["stringValue"].clone();
    for (name, want) in [
        ("fulfil", "FAILED"),
        ("ship", "SUCCEEDED"),
        ("ship-branch-1", "FAILED"),
        ("carrier-pickup", "TIMED_OUT"),
        ("notify-customer", "TIMED_OUT"),
        ("audit-log", "STOPPED"),
        ("fraud-check", "FAILED"),
        ("grace-period", "CANCELLED"),
        ("refund-window", "FAILED"),
        ("manual-review create callback id", "SUCCEEDED"),
    ] {
        assert_eq!(status(name), want, "{name}");
    }
    // A parallel whose branch failed is itself OK while the execution failed.
    assert_eq!(by("ship")["status"]["code"], 1);
    assert_eq!(by("Workflow")["status"]["code"], 2);
    assert_eq!(
        by("Workflow")["status"]["message"],
        "order 7781 rejected after review"
    );

    let invocations: Vec<&Value> = spans.iter().filter(|s| s["name"] == "Invocation").collect();
    let statuses: Vec<&str> = invocations
        .iter()
        .map(|s| {
            attr(s, "durable.invocation.status").unwrap()["stringValue"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        statuses,
        [
            "PENDING", "PENDING", "PENDING", "PENDING", "PENDING", "FAILED"
        ]
    );
    // Exact bounds from InvocationCompletedDetails, and the RequestId.
    assert!(
        invocations
            .iter()
            .all(|s| attr(s, "durable.invocation.estimated_bounds").is_none())
    );
    assert_eq!(
        attr(invocations[0], "faas.invocation_id").unwrap()["stringValue"],
        "6f1e7a2b-0001"
    );

    // The chained invoke with a durable target links to the child's Workflow span.
    let reserve = by("reserve-stock");
    let child = "arn:aws:lambda:us-east-1:123456789012:function:warehouse:3/durable-execution/reserve-7781/9b2e4d10-5a6c-4f7e-8d9a-0b1c2d3e4f50";
    assert_eq!(
        attr(reserve, "durable.chained_invoke.execution_arn").unwrap()["stringValue"],
        child
    );
    assert_eq!(
        attr(reserve, "durable.chained_invoke.executed_version").unwrap()["stringValue"],
        "3"
    );
    let ids = durable_exporter::trace::ids::IdScheme::Python;
    assert!(
        reserve["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["spanId"] == ids.workflow_span_id(child).to_hex())
    );

    // Callback time-outs and what the execution waited for while suspended.
    let pickup = by("carrier-pickup");
    assert_eq!(
        attr(pickup, "durable.callback.timeout_seconds").unwrap()["intValue"],
        "120"
    );
    assert_eq!(
        attr(pickup, "durable.callback.heartbeat_timeout_seconds").unwrap()["intValue"],
        "30"
    );
    let waiting: Vec<&str> = spans
        .iter()
        .filter(|s| s["name"] == "Suspended")
        .map(|s| {
            attr(s, "durable.suspension.waiting_for").unwrap()["stringValue"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        waiting,
        [
            "RETRY",
            "WAIT",
            "CALLBACK,CHAINED_INVOKE",
            "CHAINED_INVOKE,WAIT",
            "CALLBACK"
        ]
    );
    // The stack trace is kept, payloads and ErrorData are not.
    assert!(otlp.contains("charge.py:41 in charge\\ngateway.py:12 in post"));
    for secret in ["4111-xxxx", "xbank", "dana", "ch_91"] {
        assert!(!otlp.contains(secret), "{secret}");
    }
    let with = handwritten(
        "state-json",
        "every-event-type.json",
        &["--include-payloads"],
    );
    assert!(with.contains("xbank") && with.contains("4111-xxxx"));
}

/// A history whose operations nest `depth` deep: operation k's ParentId is operation k-1
/// (`ctx-1` .. `ctx-{depth-1}` are child contexts, the deepest is a step that succeeds), all
/// left open until the execution succeeds.
fn chain_history(depth: usize) -> String {
    let mut events = Vec::with_capacity(depth + 3);
    let mut id = 0u64;
    let mut event = |fields: String| {
        id += 1;
        let ts = 1_795_248_229.0 + id as f64 / 1000.0;
        events.push(format!(
            r#"{{"EventId":{id},"EventTimestamp":{ts},{fields}}}"#
        ));
    };
    event(r#""EventType":"ExecutionStarted","Id":"exec","ExecutionStartedDetails":{}"#.into());
    for k in 1..depth {
        let parent = if k == 1 {
            String::new()
        } else {
            format!(r#","ParentId":"ctx-{}""#, k - 1)
        };
        event(format!(
            r#""EventType":"ContextStarted","Id":"ctx-{k}","Name":"ctx-{k}","SubType":"RunInChildContext"{parent}"#
        ));
    }
    let step = format!(
        r#""Id":"deep-step","Name":"deep-step","SubType":"Step","ParentId":"ctx-{}""#,
        depth - 1
    );
    event(format!(r#""EventType":"StepStarted",{step}"#));
    event(format!(r#""EventType":"StepSucceeded",{step}"#));
    event(r#""EventType":"ExecutionSucceeded","Id":"exec""#.into());
    format!("{{\"Events\":[{}]}}", events.join(",\n"))
}

/// Nesting depth comes from the input: no format may recurse on it. 30,000 levels, past what
/// the recursive tree walk survived on the main thread's 8 MiB stack, in every format. (100,000
/// pass as well, but take about 8 s per format in a debug build, where the unoptimized BLAKE2b
/// of the span ids and serde_json dominate; the time grows linearly with the depth.)
#[test]
fn a_30000_deep_parent_chain_converts_in_every_format() {
    const DEPTH: usize = 30_000;
    let history = chain_history(DEPTH);
    let arn = arn_of("waits");
    let run_format = |format: &str| {
        let started = std::time::Instant::now();
        let out = run(
            &["convert", "--arn", &arn, "--format", format, "-"],
            Some(history.as_bytes()),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {:?} {stderr}", out.status);
        // The open contexts end with the execution: drawn, not reported as inconsistent.
        assert!(!stderr.contains("WARN"), "{format}: {stderr}");
        eprintln!("{format}: {:?}", started.elapsed());
        String::from_utf8(out.stdout).unwrap()
    };

    // Every operation, the attempt, the Invocation and Workflow.
    let otlp = spans(&run_format("otlp-json"));
    assert_eq!(otlp.len(), DEPTH + 3);
    let id_of = |name: &str| {
        otlp.iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span {name}"))["spanId"]
            .clone()
    };
    let step = otlp.iter().find(|s| s["name"] == "deep-step").unwrap();
    assert_eq!(step["parentSpanId"], id_of(&format!("ctx-{}", DEPTH - 1)));
    assert_eq!(
        otlp.iter().find(|s| s["name"] == "ctx-1").unwrap()["parentSpanId"],
        id_of("Workflow")
    );

    let state: Value = serde_json::from_str(&run_format("state-json")).unwrap();
    let ops = state["Operations"].as_array().unwrap();
    assert_eq!(
        ops.len(),
        DEPTH + 1,
        "the EXECUTION operation and every other"
    );
    let deepest = ops.iter().find(|o| o["Id"] == "deep-step").unwrap();
    assert_eq!(deepest["ParentId"], format!("ctx-{}", DEPTH - 1));
    assert_eq!(deepest["Status"], "SUCCEEDED");

    let tree = run_format("tree");
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), DEPTH + 3, "one line per span");
    assert!(lines[0].starts_with("Workflow "), "{}", lines[0]);
    // The attempt is DEPTH guide levels deep; the first MAX_DRAWN_LEVELS are drawn.
    let max = durable_exporter::trace::tree::MAX_DRAWN_LEVELS;
    let attempt = lines
        .iter()
        .find(|l| l.contains("deep-step attempt 1"))
        .expect("the deepest span has its line");
    assert!(
        attempt.starts_with(&format!(
            "{}[+{}] └─ deep-step attempt 1 ",
            "   ".repeat(max),
            DEPTH - max
        )),
        "{attempt}"
    );

    let metrics = run_format("prometheus");
    let contexts = metrics
        .lines()
        .find(|l| {
            l.starts_with("durable_operations_finished_total{") && l.contains("type=\"CONTEXT\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(contexts.ends_with(&format!(" {}", DEPTH - 1)), "{contexts}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("durable_executions_finished_total{")
                && l.contains("status=\"SUCCEEDED\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

/// Two pages that overlap: an identical repeat is collapsed quietly, a copy with other contents
/// is warned about by EventId, and the first copy read is what gets drawn.
#[test]
fn a_conflicting_copy_of_an_event_is_warned_about_and_the_first_copy_kept() {
    let page: Value = serde_json::from_slice(&std::fs::read(history("waits")).unwrap()).unwrap();
    let events = page["Events"].as_array().unwrap();
    let mut conflicting = events[3].clone();
    conflicting["EventTimestamp"] = (conflicting["EventTimestamp"].as_f64().unwrap() + 5.0).into();
    let first = serde_json::json!({"Events": events[..5], "NextMarker": "5"});
    let mut rest: Vec<Value> = vec![events[4].clone(), conflicting];
    rest.extend_from_slice(&events[5..]);
    let input = format!("{first}\n{}\n", serde_json::json!({"Events": rest}));
    let arn = arn_of("waits");
    let out = run(
        &["convert", "--arn", &arn, "--format", "tree", "-"],
        Some(input.as_bytes()),
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("conflicting_duplicate_event")
            && warnings[0].contains(&format!("event_id={}", events[3]["EventId"]))
            && warnings[0].contains("EventTimestamp"),
        "{err}"
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert_eq!(tree, convert("waits", "tree", &[]));
}

/// Times a span cannot carry (before 1970, after 2262) are kept and clamped in spans, as
/// before, and now each affected event is warned about with its EventId and the value read.
#[test]
fn timestamps_out_of_range_are_warned_about_and_drawn_clamped() {
    let history = r#"{"Events":[
        {"EventType":"ExecutionStarted","EventId":1,"EventTimestamp":1795248229.0,"Id":"exec"},
        {"EventType":"StepStarted","EventId":2,"EventTimestamp":-1e12,"Id":"early","Name":"early","SubType":"Step"},
        {"EventType":"StepSucceeded","EventId":3,"EventTimestamp":1795248229.5,"Id":"early","Name":"early","SubType":"Step"},
        {"EventType":"StepStarted","EventId":4,"EventTimestamp":1795248229.6,"Id":"late","Name":"late","SubType":"Step"},
        {"EventType":"StepSucceeded","EventId":5,"EventTimestamp":2.5e14,"Id":"late","Name":"late","SubType":"Step"},
        {"EventType":"ExecutionSucceeded","EventId":6,"EventTimestamp":2.5e14,"Id":"exec"}
    ]}"#;
    let arn = arn_of("waits");
    let out = run(
        &["convert", "--arn", &arn, "--format", "otlp-json", "-"],
        Some(history.as_bytes()),
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("timestamp_out_of_range"))
        .collect();
    assert_eq!(warned.len(), 3, "{err}");
    for (line, (id, value)) in warned.iter().zip([
        (2, "-1000000000000"),
        (5, "250000000000000"),
        (6, "250000000000000"),
    ]) {
        assert!(
            line.contains(&format!("event_id={id}"))
                && line.contains(&format!("EventTimestamp {value} (")),
            "{line}"
        );
    }
    let spans = spans(&String::from_utf8(out.stdout).unwrap());
    let by = |n: &str| spans.iter().find(|s| s["name"] == n).unwrap();
    assert_eq!(by("early")["startTimeUnixNano"], "0");
    assert_eq!(by("late")["endTimeUnixNano"], i64::MAX.to_string());
    assert_eq!(by("Workflow")["endTimeUnixNano"], i64::MAX.to_string());
}
