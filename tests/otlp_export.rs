//! `convert --otlp-endpoint` against real OTLP receivers (gRPC and HTTP/protobuf) on 127.0.0.1:
//! what the collector receives is exactly the trace `convert` prints.

mod common;

use std::path::PathBuf;

use common::otlp::flatten;
use durable_exporter::arn::ExecutionArn;
use durable_exporter::convert::convert;
use durable_exporter::history::json::parse_history;
use durable_exporter::trace::TraceOptions;
use durable_exporter::trace::proto::to_request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

const BIN: &str = env!("CARGO_BIN_EXE_durable-exporter");

fn fixture(name: &str) -> (PathBuf, String) {
    (common::history_path(name), common::arn_of(name))
}

fn expected(name: &str, extra_header: Option<&str>) -> ExportTraceServiceRequest {
    let (path, arn) = fixture(name);
    let events = parse_history(&std::fs::read(path).unwrap()).unwrap().events;
    let options = TraceOptions {
        trace_header: extra_header
            .map(|h| durable_exporter::trace::ids::TraceHeader::parse(h).unwrap()),
        ..TraceOptions::default()
    };
    let c = convert(&events, &ExecutionArn::parse(&arn).unwrap(), None, options);
    to_request(&c.resource, &c.spans)
}

async fn send(name: &str, endpoint: &str, protocol: &str, extra: &[&str]) -> std::process::Output {
    let (path, arn) = fixture(name);
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args([
        "convert",
        "--arn",
        &arn,
        "--otlp-endpoint",
        endpoint,
        "--otlp-protocol",
        protocol,
    ]);
    cmd.args(extra);
    cmd.arg(path);
    cmd.output().await.unwrap()
}

async fn check(protocol: &str) {
    for name in [
        "callbacks",
        "parallel-map",
        "retry-then-succeed",
        "timed-out",
    ] {
        let receiver = match protocol {
            "grpc" => common::otlp::grpc().await,
            _ => common::otlp::http().await,
        };
        let endpoint = format!("http://{}", receiver.addr);
        let out = send(name, &endpoint, protocol, &[]).await;
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The command returns only after the collector answered: the request is here now.
        let got = flatten(&receiver.requests());
        let want = flatten(&[expected(name, None)]);
        assert_eq!(got.1, want.1, "{name}: resource");
        assert_eq!(
            got.2,
            [(
                "durable-exporter".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned()
            )]
        );
        assert_eq!(got.0.len(), want.0.len(), "{name}: span count");
        for (g, w) in got.0.iter().zip(&want.0) {
            assert_eq!(g, w, "{name}: span {}", w.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_gets_exactly_the_converted_trace() {
    check("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receiver_gets_exactly_the_converted_trace() {
    check("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_parent_is_flagged_and_kept() {
    let receiver = common::otlp::grpc().await;
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let out = send(
        "waits",
        &format!("http://{}", receiver.addr),
        "grpc",
        &["--trace-header", header],
    )
    .await;
    assert!(out.status.success());
    let got = flatten(&receiver.requests()).0;
    let want = flatten(&[expected("waits", Some(header))]).0;
    assert_eq!(got, want);
    let workflow = got.iter().find(|s| s.name == "Workflow").unwrap();
    assert_eq!(
        workflow.parent,
        vec![0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_is_exit_1_with_a_message() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for protocol in ["grpc", "http"] {
        let out = send(
            "waits",
            &format!("http://127.0.0.1:{port}"),
            protocol,
            &["--otlp-timeout", "3"],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{protocol}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&port.to_string()), "{protocol}: {err}");
    }
}
