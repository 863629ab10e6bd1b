//! `convert --otlp-endpoint` and the OTLP client against real OTLP receivers (gRPC and
//! HTTP/protobuf) on 127.0.0.1: what the collector receives is exactly the trace `convert`
//! prints, over plain connections, TLS with a private CA, mutual TLS and gzip; the collector's
//! partial success and refusals reach the caller, classified as the OTLP specification says.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::otlp::{Answer, Receiver, TestPki, flatten};
use durable_exporter::arn::ExecutionArn;
use durable_exporter::convert::{Conversion, convert};
use durable_exporter::history::json::parse_history;
use durable_exporter::otlp::{
    ExportError, ExportOutcome, OtlpClient, OtlpTarget, OtlpTls, Protocol,
};
use durable_exporter::trace::TraceOptions;
use durable_exporter::trace::proto::to_request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::common::daemon::BIN;

fn fixture(name: &str) -> (PathBuf, String) {
    (
        crate::common::history_path(name),
        crate::common::arn_of(name),
    )
}

fn conversion(name: &str, extra_header: Option<&str>) -> Conversion {
    let (path, arn) = fixture(name);
    let events = parse_history(&std::fs::read(path).unwrap()).unwrap().events;
    let options = TraceOptions {
        trace_header: extra_header
            .map(|h| durable_exporter::trace::ids::TraceHeader::parse(h).unwrap()),
        ..TraceOptions::default()
    };
    convert(&events, &ExecutionArn::parse(&arn).unwrap(), None, options)
}

fn expected(name: &str, extra_header: Option<&str>) -> ExportTraceServiceRequest {
    let c = conversion(name, extra_header);
    to_request(&c.resource, &c.spans)
}

/// The OTLP variables `convert` reads; cleared for every run, so the test's own environment
/// does not leak in.
const OTEL_VARS: [&str; 8] = [
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
];

async fn send(name: &str, endpoint: &str, protocol: &str, extra: &[&str]) -> std::process::Output {
    send_env(name, endpoint, protocol, extra, &[]).await
}

async fn send_env(
    name: &str,
    endpoint: &str,
    protocol: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let (path, arn) = fixture(name);
    let mut cmd = tokio::process::Command::new(BIN);
    for v in OTEL_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
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
            "grpc" => crate::common::otlp::grpc().await,
            _ => crate::common::otlp::http().await,
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
    let receiver = crate::common::otlp::grpc().await;
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

// ---------------------------------------------------------------------------------------------
// The client against receivers with TLS, gzip, partial success and refusals.

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

async fn receiver(protocol: Protocol, answer: Answer) -> Receiver {
    match protocol {
        Protocol::Grpc => crate::common::otlp::grpc_with(answer).await,
        Protocol::HttpProtobuf => crate::common::otlp::http_with(answer).await,
    }
}

fn target(protocol: Protocol, endpoint: String, tls: OtlpTls) -> OtlpTarget {
    OtlpTarget {
        endpoint,
        protocol,
        timeout: Duration::from_secs(5),
        tls,
        ..OtlpTarget::default()
    }
}

fn tls(pki: &TestPki, ca: bool, client: Option<&str>) -> OtlpTls {
    OtlpTls {
        ca_file: ca.then(|| pki.path("ca.pem")),
        client_cert_file: client.map(|c| pki.path(&format!("{c}.pem"))),
        client_key_file: client.map(|c| pki.path(&format!("{c}.key"))),
    }
}

/// Exactly the conversion's spans, resource and scope, and nothing else.
fn assert_received_exactly(receiver: &Receiver, c: &Conversion, what: &str) {
    let got = flatten(&receiver.requests());
    let want = flatten(&[to_request(&c.resource, &c.spans)]);
    assert_eq!(got.1, want.1, "{what}: resource");
    assert_eq!(got.2, want.2, "{what}: scope");
    assert_eq!(got.0, want.0, "{what}: spans");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_delivers_exactly_the_spans() {
    let pki = TestPki::new();
    let c = conversion("parallel-map", None);
    for protocol in PROTOCOLS {
        // The server certificate names both: an IP address and a DNS name are verified.
        for host in ["127.0.0.1", "localhost"] {
            let what = format!("{protocol:?} {host}");
            let r = receiver(
                protocol,
                Answer {
                    tls: Some(pki.server(false)),
                    ..Answer::default()
                },
            )
            .await;
            let endpoint = format!("https://{host}:{}", r.addr.port());
            let client = OtlpClient::new(&target(protocol, endpoint, tls(&pki, true, None)))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let outcome = client
                .export(&c.resource, &c.spans)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                outcome,
                ExportOutcome {
                    accepted: c.spans.len(),
                    rejected: 0,
                    message: None
                }
            );
            assert_received_exactly(&r, &c, &what);
            let meta = r.meta();
            assert_eq!(meta.len(), 1, "{what}");
            assert!(
                meta[0]
                    .user_agent
                    .as_deref()
                    .is_some_and(|u| u.starts_with("durable-exporter/")),
                "{what}: {:?}",
                meta[0].user_agent
            );
            assert_eq!(
                meta[0].encoding, None,
                "{what}: not compressed unless asked"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_the_ca_is_a_retryable_error_naming_the_endpoint() {
    let pki = TestPki::new();
    let c = conversion("waits", None);
    for protocol in PROTOCOLS {
        let r = receiver(
            protocol,
            Answer {
                tls: Some(pki.server(false)),
                ..Answer::default()
            },
        )
        .await;
        let endpoint = format!("https://127.0.0.1:{}", r.addr.port());
        // The system's CA certificates only: the test CA is not among them.
        let client = OtlpClient::new(&target(protocol, endpoint, OtlpTls::default())).unwrap();
        let err = client.export(&c.resource, &c.spans).await.unwrap_err();
        assert!(
            matches!(err, ExportError::Transport { .. }),
            "{protocol:?}: {err:?}"
        );
        assert!(err.retryable(), "{protocol:?}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{}", r.addr.port()))
                && text.contains(&format!("{} spans", c.spans.len())),
            "{protocol:?}: {text}"
        );
        // Why, in the words of the TLS stack.
        assert!(
            text.to_lowercase().contains("certificate"),
            "{protocol:?}: {text}"
        );
        assert!(r.requests().is_empty() && r.attempts() == 0, "{protocol:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_takes_only_a_client_certificate_from_the_ca() {
    let pki = TestPki::new();
    let c = conversion("callbacks", None);
    for protocol in PROTOCOLS {
        let r = receiver(
            protocol,
            Answer {
                tls: Some(pki.server(true)),
                ..Answer::default()
            },
        )
        .await;
        let endpoint = format!("https://localhost:{}", r.addr.port());
        for (client_cert, why) in [
            (None, "no client certificate"),
            (Some("stranger"), "a client certificate from another CA"),
        ] {
            let client = OtlpClient::new(&target(
                protocol,
                endpoint.clone(),
                tls(&pki, true, client_cert),
            ))
            .unwrap();
            let err = client.export(&c.resource, &c.spans).await.unwrap_err();
            assert!(
                matches!(err, ExportError::Transport { .. }) && err.retryable(),
                "{protocol:?}, {why}: {err:?}"
            );
            assert!(
                err.to_string().contains(&endpoint),
                "{protocol:?}, {why}: {err}"
            );
        }
        assert_eq!(r.attempts(), 0, "{protocol:?}: refused at the handshake");

        let client = OtlpClient::new(&target(
            protocol,
            endpoint.clone(),
            tls(&pki, true, Some("client")),
        ))
        .unwrap();
        let outcome = client.export(&c.resource, &c.spans).await.unwrap();
        assert_eq!(outcome.accepted, c.spans.len(), "{protocol:?}");
        assert_received_exactly(&r, &c, &format!("{protocol:?} mTLS"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_requests_carry_exactly_the_converted_trace() {
    for (protocol, flag) in [(Protocol::Grpc, "grpc"), (Protocol::HttpProtobuf, "http")] {
        // Asked for on the command line, and through the standard variable (the traces
        // variant winning over the general one).
        for how in ["flag", "env"] {
            let r = receiver(
                protocol,
                Answer {
                    accept_gzip: true,
                    ..Answer::default()
                },
            )
            .await;
            let endpoint = format!("http://{}", r.addr);
            let out = match how {
                "flag" => {
                    send_env(
                        "retry-then-succeed",
                        &endpoint,
                        flag,
                        &["--otlp-compression", "gzip"],
                        &[("OTEL_EXPORTER_OTLP_COMPRESSION", "none")],
                    )
                    .await
                }
                _ => {
                    send_env(
                        "retry-then-succeed",
                        &endpoint,
                        flag,
                        &[],
                        &[
                            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
                            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
                        ],
                    )
                    .await
                }
            };
            assert!(
                out.status.success(),
                "{flag} {how}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let meta = r.meta();
            assert_eq!(meta.len(), 1, "{flag} {how}");
            assert_eq!(meta[0].encoding.as_deref(), Some("gzip"), "{flag} {how}");
            let got = flatten(&r.requests());
            let want = flatten(&[expected("retry-then-succeed", None)]);
            assert_eq!(got, want, "{flag} {how}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_compression_variable_is_exit_2_naming_it() {
    let out = send_env(
        "waits",
        "http://127.0.0.1:1",
        "grpc",
        &[],
        &[("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_COMPRESSION") && err.contains("brotli"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_reads_the_tls_files_from_the_standard_variables() {
    let pki = TestPki::new();
    for (protocol, flag) in [(Protocol::Grpc, "grpc"), (Protocol::HttpProtobuf, "http")] {
        let r = receiver(
            protocol,
            Answer {
                tls: Some(pki.server(true)),
                ..Answer::default()
            },
        )
        .await;
        let endpoint = format!("https://localhost:{}", r.addr.port());
        let ca = pki.path("ca.pem").display().to_string();
        let cert = pki.path("client.pem").display().to_string();
        let key = pki.path("client.key").display().to_string();
        let out = send_env(
            "waits",
            &endpoint,
            flag,
            &[],
            &[
                (
                    "OTEL_EXPORTER_OTLP_CERTIFICATE",
                    "/nonexistent/general-ca.pem",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &ca),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", &key),
            ],
        )
        .await;
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            flatten(&r.requests()),
            flatten(&[expected("waits", None)]),
            "{flag}"
        );

        // A CA file that is not there: the target cannot be used, exit 2 naming the file.
        let out = send_env(
            "waits",
            &endpoint,
            flag,
            &[],
            &[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/nonexistent/ca.pem") && err.contains("CA file"),
            "{flag}: {err}"
        );
    }
}

const REJECTION: &str = "3 spans are older than the collector's retention";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_is_the_outcome_on_both_protocols() {
    let c = conversion("parallel-map", None);
    assert!(c.spans.len() > 3);
    for protocol in PROTOCOLS {
        let r = receiver(
            protocol,
            Answer {
                reject: Some((3, REJECTION.into())),
                ..Answer::default()
            },
        )
        .await;
        let client = OtlpClient::new(&target(
            protocol,
            format!("http://{}", r.addr),
            OtlpTls::default(),
        ))
        .unwrap();
        let outcome = client.export(&c.resource, &c.spans).await.unwrap();
        assert_eq!(
            outcome,
            ExportOutcome {
                accepted: c.spans.len() - 3,
                rejected: 3,
                message: Some(REJECTION.into()),
            },
            "{protocol:?}"
        );
        assert_eq!(r.rejected(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_exits_1_when_the_collector_rejects_spans() {
    let spans = conversion("timed-out", None).spans.len();
    for (protocol, flag) in [(Protocol::Grpc, "grpc"), (Protocol::HttpProtobuf, "http")] {
        let r = receiver(
            protocol,
            Answer {
                reject: Some((3, REJECTION.into())),
                ..Answer::default()
            },
        )
        .await;
        let out = send("timed-out", &format!("http://{}", r.addr), flag, &[]).await;
        assert_eq!(out.status.code(), Some(1), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("rejected 3 of {spans} spans: {REJECTION}")),
            "{flag}: {err}"
        );
        assert!(!err.contains("sent "), "{flag}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_retryable_or_not_as_the_specification_says() {
    let c = conversion("waits", None);
    let n = c.spans.len();
    struct Case {
        protocol: Protocol,
        answer: Answer,
        retryable: bool,
        retry_after: Option<Duration>,
        says: &'static str,
    }
    let cases = [
        Case {
            protocol: Protocol::HttpProtobuf,
            answer: Answer {
                http_status: Some((400, "span 3 has no trace id".into())),
                ..Answer::default()
            },
            retryable: false,
            retry_after: None,
            says: "HTTP 400",
        },
        Case {
            protocol: Protocol::HttpProtobuf,
            answer: Answer {
                http_status: Some((503, "overloaded, come back later".into())),
                retry_after_secs: Some(7),
                ..Answer::default()
            },
            retryable: true,
            retry_after: Some(Duration::from_secs(7)),
            says: "HTTP 503",
        },
        Case {
            protocol: Protocol::Grpc,
            answer: Answer {
                grpc_status: Some((
                    tonic::Code::InvalidArgument,
                    "span 3 has no trace id".into(),
                )),
                ..Answer::default()
            },
            retryable: false,
            retry_after: None,
            says: "gRPC INVALID_ARGUMENT",
        },
        Case {
            protocol: Protocol::Grpc,
            answer: Answer {
                grpc_status: Some((
                    tonic::Code::Unavailable,
                    "overloaded, come back later".into(),
                )),
                retry_after_secs: Some(2),
                ..Answer::default()
            },
            retryable: true,
            retry_after: Some(Duration::from_secs(2)),
            says: "gRPC UNAVAILABLE",
        },
    ];
    for case in cases {
        let collector_says = case
            .answer
            .http_status
            .as_ref()
            .map(|(_, m)| m.clone())
            .or(case.answer.grpc_status.as_ref().map(|(_, m)| m.clone()))
            .unwrap();
        let r = receiver(case.protocol, case.answer).await;
        let client = OtlpClient::new(&target(
            case.protocol,
            format!("http://{}", r.addr),
            OtlpTls::default(),
        ))
        .unwrap();
        let err = client.export(&c.resource, &c.spans).await.unwrap_err();
        assert_eq!(err.retryable(), case.retryable, "{}: {err}", case.says);
        assert_eq!(err.retry_after(), case.retry_after, "{}: {err}", case.says);
        let text = err.to_string();
        for part in [
            case.says.to_owned(),
            r.addr.to_string(),
            format!("{n} spans"),
            collector_says,
        ] {
            assert!(
                text.contains(&part),
                "{}: {part:?} not in {text}",
                case.says
            );
        }
        assert_eq!(r.attempts(), 1, "{}", case.says);
        assert!(r.requests().is_empty(), "{}", case.says);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_http_error_body_is_cut_to_300_bytes() {
    let body = format!("{}END", "x".repeat(1000));
    let r = crate::common::otlp::http_with(Answer {
        http_status: Some((400, body)),
        ..Answer::default()
    })
    .await;
    let c = conversion("waits", None);
    let client = OtlpClient::new(&target(
        Protocol::HttpProtobuf,
        format!("http://{}", r.addr),
        OtlpTls::default(),
    ))
    .unwrap();
    match client.export(&c.resource, &c.spans).await.unwrap_err() {
        ExportError::Http {
            status, message, ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(message, "x".repeat(300));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_serves_every_resource() {
    let r = crate::common::otlp::grpc().await;
    let client = OtlpClient::new(&target(
        Protocol::Grpc,
        format!("http://{}", r.addr),
        OtlpTls::default(),
    ))
    .unwrap();
    let a = conversion("waits", None);
    let (path, arn) = fixture("callbacks");
    let events = parse_history(&std::fs::read(path).unwrap()).unwrap().events;
    let b = convert(
        &events,
        &ExecutionArn::parse(&arn).unwrap(),
        Some("billing"),
        TraceOptions::default(),
    );
    assert_ne!(a.resource.key(), b.resource.key());
    for c in [&a, &b] {
        client.export(&c.resource, &c.spans).await.unwrap();
    }
    let reqs = r.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        flatten(&reqs[..1]),
        flatten(&[to_request(&a.resource, &a.spans)])
    );
    assert_eq!(
        flatten(&reqs[1..]),
        flatten(&[to_request(&b.resource, &b.spans)])
    );
}
