//! Export straight to AWS X-Ray: OTLP/HTTP signed with AWS SigV4 (`otlp.aws_sigv4`), judged by
//! an independent implementation. tests/e2e/sigv4_receiver.py (in the e2e venv) recomputes
//! every request's signature with botocore's signer, from the method, path, signed headers and
//! body it received and the static credentials the test also gives the exporter, answers 403
//! when it does not match and records every request.
//!
//! - the daemon (the real binary, against the scripted API) signs every export for `xray` in
//!   the configured region, over the gzipped bytes it sends, with the session token; every span
//!   arrives once;
//! - with a secret the receiver does not accept, every export is refused, nothing is counted as
//!   exported, /readyz turns 503; once the receiver accepts, every span arrives exactly once;
//! - the client without credentials (the provider fails) sends nothing and reports a retryable
//!   error; once the provider answers, the export goes through;
//! - `convert --aws-sigv4-region` signs too; grpc with signing is refused, by `convert` and by
//!   `check-config`.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use durable_exporter::arn::ExecutionArn;
use durable_exporter::otlp::{ExportError, OtlpClient, OtlpTarget, Protocol};
use durable_exporter::sigv4::{SigV4Target, Signer};
use durable_exporter::trace::TraceOptions;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use sha2::Digest as _;

use crate::common::daemon::{
    BIN, Daemon, LogFormat, add_all, all_finished, assert_exact, eventually, executions, expected,
    metric, setup, spans_of, wait_for,
};
use crate::common::http::request;
use durable_exporter::sim::scripted::ScriptedApi;

const ACCESS_KEY: &str = "AKIDSIGV4TEST";
const SECRET: &str = "the-daemon's/secret+key";
const TOKEN: &str = "session-token-of-the-test";

/// The daemon's AWS credentials: the receiver checks the signature with the same ones.
const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
    ("AWS_SECRET_ACCESS_KEY", SECRET),
    ("AWS_SESSION_TOKEN", TOKEN),
];

/// One request as the receiver saw it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Record {
    status: u16,
    reason: Option<String>,
    access_key: Option<String>,
    region: Option<String>,
    service: Option<String>,
    #[serde(default)]
    signed_headers: Vec<String>,
    /// The payload hash in the canonical request botocore rebuilt.
    payload_hash: Option<String>,
    content_encoding: Option<String>,
    content_type: Option<String>,
    /// Base64.
    body: String,
}

impl Record {
    fn raw_body(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body)
            .unwrap()
    }

    /// The request it carried (gunzipped when it was gzipped).
    fn request(&self) -> ExportTraceServiceRequest {
        let raw = self.raw_body();
        let bytes = match self.content_encoding.as_deref() {
            Some("gzip") => {
                use std::io::Read as _;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(raw.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            None => raw,
            Some(other) => panic!("unexpected content-encoding {other}"),
        };
        ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// tests/e2e/sigv4_receiver.py, stopped by its PID when dropped.
struct SigningReceiver {
    child: Child,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl SigningReceiver {
    /// Accepts requests signed by [`ACCESS_KEY`] with `secret` and [`TOKEN`] for `xray` in
    /// `region`.
    fn start(venv: &Path, secret: &str, region: &str) -> SigningReceiver {
        let log = tempfile::NamedTempFile::new().unwrap();
        let script = crate::common::root().join("tests/e2e/sigv4_receiver.py");
        let mut child = Command::new(venv.join("bin/python"))
            .arg(&script)
            .args([
                "--access-key",
                ACCESS_KEY,
                "--secret",
                secret,
                "--token",
                TOKEN,
            ])
            .args(["--service", "xray", "--region", region])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let port: u16 = match line.trim().strip_prefix("listening ") {
            Some(p) => p.parse().unwrap(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the receiver did not start: {line:?}\n{}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
        };
        SigningReceiver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    async fn records(&self) -> Vec<Record> {
        let r = request(self.addr, "GET", "/control/requests", &[], "")
            .await
            .expect("the receiver answers");
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    async fn set_secret(&self, secret: &str) {
        let r = request(self.addr, "POST", "/control/secret", &[], secret)
            .await
            .expect("the receiver answers");
        assert_eq!(r.status, 200, "{}", r.body);
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for SigningReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn arns(execs: &[(String, Vec<durable_exporter::history::Event>)]) -> Vec<String> {
    execs.iter().map(|(a, _)| a.clone()).collect()
}

/// The accepted requests, each checked as a user of X-Ray would: signed by the test's key
/// for `xray` in `region`, over the headers that matter, the payload hash botocore used being
/// the SHA-256 of the bytes that arrived.
fn check_accepted(records: &[Record], region: &str, gzip: bool) -> Vec<ExportTraceServiceRequest> {
    let accepted: Vec<&Record> = records.iter().filter(|r| r.status == 200).collect();
    assert!(!accepted.is_empty(), "nothing accepted: {records:#?}");
    for r in &accepted {
        assert_eq!(r.reason, None);
        assert_eq!(r.access_key.as_deref(), Some(ACCESS_KEY));
        assert_eq!(r.service.as_deref(), Some("xray"));
        assert_eq!(r.region.as_deref(), Some(region));
        assert_eq!(r.content_type.as_deref(), Some("application/x-protobuf"));
        let mut must = vec!["content-type", "host", "x-amz-date", "x-amz-security-token"];
        if gzip {
            must.push("content-encoding");
            assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
        } else {
            assert_eq!(r.content_encoding, None);
        }
        for h in must {
            assert!(
                r.signed_headers.iter().any(|s| s == h),
                "{h} not signed: {r:?}"
            );
        }
        assert_eq!(
            r.payload_hash.as_deref(),
            Some(sha256_hex(&r.raw_body()).as_str()),
            "the signature does not cover the body that arrived"
        );
    }
    accepted.iter().map(|r| r.request()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_signs_every_export_and_botocore_verifies_each() {
    let Some(venv) = crate::e2e_emulator::venv() else {
        return;
    };
    let receiver = SigningReceiver::start(&venv, SECRET, "eu-west-1");
    let fake = ScriptedApi::start().await;
    let execs = executions(4, 12);
    add_all(&fake, &execs);
    // The endpoint is the receiver's (setup writes it); gzip: the compressed bytes are signed.
    let s = setup(
        &fake,
        receiver.addr,
        &arns(&execs),
        "otlp:\n  protocol: http/protobuf\n  compression: gzip\n  aws_sigv4:\n    service: xray\n    region: eu-west-1\n",
    );
    let d = Daemon::start_with_env(&s, 1, LogFormat::Text, &CREDENTIALS).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(30),
        "every execution read and acknowledged",
        all_finished(&execs),
    )
    .await;
    let records = receiver.records().await;
    let refused: Vec<&Record> = records.iter().filter(|r| r.status != 200).collect();
    assert!(refused.is_empty(), "refused: {refused:#?}\n{}", d.logs());
    let reqs = check_accepted(&records, "eu-west-1", true);
    let (got, repeats) = spans_of(&reqs);
    let want = expected(&execs);
    assert_exact(&want, &got);
    assert_eq!(repeats, 0);
    assert_eq!(
        metric(s.http, "durable_exporter_spans_exported_total").await,
        want.len() as f64
    );
    assert_eq!(
        metric(s.http, "durable_exporter_span_export_failures_total").await,
        0.0
    );
    assert!(
        d.logs().contains("signed with AWS SigV4"),
        "the start is not logged:\n{}",
        d.logs()
    );
    d.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_signatures_lose_nothing_and_everything_arrives_once_accepted() {
    let Some(venv) = crate::e2e_emulator::venv() else {
        return;
    };
    // The receiver expects another secret than the daemon's: every signature is wrong.
    let receiver = SigningReceiver::start(&venv, "a-secret-the-daemon-does-not-have", "us-east-1");
    let fake = ScriptedApi::start().await;
    let execs = executions(3, 10);
    add_all(&fake, &execs);
    // No region in the section: aws.region (us-east-1, from setup) applies.
    let s = setup(
        &fake,
        receiver.addr,
        &arns(&execs),
        "otlp:\n  protocol: http/protobuf\n  aws_sigv4: {}\nhttp:\n  ready_window: 1s\n",
    );
    let d = Daemon::start_with_env(&s, 1, LogFormat::Text, &CREDENTIALS).await;
    let logs = || format!("{}\n--- receiver\n{}", d.logs(), receiver.logs());
    let refused = eventually(
        Duration::from_secs(20),
        "three refused exports",
        logs,
        || async {
            let r = receiver.records().await;
            (r.iter().filter(|r| r.status == 403).count() >= 3).then_some(r)
        },
    )
    .await;
    for r in &refused {
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(r.reason.as_deref(), Some("signature mismatch"), "{r:?}");
        // Signed as configured: only the secret is wrong.
        assert_eq!(r.region.as_deref(), Some("us-east-1"));
        assert_eq!(r.service.as_deref(), Some("xray"));
    }
    let reasons = eventually(
        Duration::from_secs(10),
        "/readyz to say 503",
        logs,
        || async {
            let r = request(s.http, "GET", "/readyz", &[], "").await?;
            (r.status == 503).then_some(r.body)
        },
    )
    .await;
    assert!(reasons.contains("collector"), "{reasons}");
    assert!(metric(s.http, "durable_exporter_span_export_failures_total").await > 0.0);
    assert_eq!(
        metric(s.http, "durable_exporter_spans_exported_total").await,
        0.0
    );
    assert_eq!(
        metric(s.http, "durable_exporter_spans_rejected_total").await,
        0.0,
        "a refused signature dropped spans"
    );
    let log = d.logs();
    assert!(
        log.contains("HTTP 403") && log.contains("signature mismatch"),
        "the refusal is not logged:\n{log}"
    );

    // The receiver accepts the daemon's secret from now on.
    receiver.set_secret(SECRET).await;
    wait_for(
        &d,
        s.api,
        Duration::from_secs(60),
        "every execution acknowledged once the signatures are accepted",
        all_finished(&execs),
    )
    .await;
    let records = receiver.records().await;
    let reqs = check_accepted(&records, "us-east-1", false);
    let (got, repeats) = spans_of(&reqs);
    let want = expected(&execs);
    assert_exact(&want, &got);
    assert_eq!(repeats, 0, "spans arrived twice");
    assert_eq!(
        metric(s.http, "durable_exporter_spans_exported_total").await,
        want.len() as f64
    );
    eventually(
        Duration::from_secs(10),
        "/readyz to say 200",
        logs,
        || async {
            let r = request(s.http, "GET", "/readyz", &[], "").await?;
            (r.status == 200).then_some(())
        },
    )
    .await;
    d.kill9();
}

/// A credentials provider the test switches on and off.
#[derive(Debug)]
struct Switch(Arc<AtomicBool>);

impl aws_credential_types::provider::ProvideCredentials for Switch {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        use aws_credential_types::provider::future::ProvideCredentials as F;
        if !self.0.load(Ordering::SeqCst) {
            return F::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "no credentials in the test's chain",
                ),
            ));
        }
        F::ready(Ok(aws_credential_types::Credentials::new(
            ACCESS_KEY,
            SECRET,
            Some(TOKEN.to_owned()),
            Some(SystemTime::now() + Duration::from_secs(3600)),
            "switch",
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_nothing_is_sent_and_the_error_is_retryable() {
    let Some(venv) = crate::e2e_emulator::venv() else {
        return;
    };
    let receiver = SigningReceiver::start(&venv, SECRET, "ap-southeast-2");
    let on = Arc::new(AtomicBool::new(false));
    let client = OtlpClient::new(&OtlpTarget {
        endpoint: format!("http://{}", receiver.addr),
        protocol: Protocol::HttpProtobuf,
        timeout: Duration::from_secs(5),
        ..OtlpTarget::default()
    })
    .unwrap()
    .with_sigv4(Signer::new(
        SigV4Target {
            service: "xray".into(),
            region: "ap-southeast-2".into(),
        },
        aws_credential_types::provider::SharedCredentialsProvider::new(Switch(on.clone())),
    ))
    .unwrap();
    let name = "steps-basic";
    let events = durable_exporter::history::json::parse_history(
        &std::fs::read(crate::common::history_path(name)).unwrap(),
    )
    .unwrap();
    let c = durable_exporter::convert::convert(
        &events.events,
        &ExecutionArn::parse(&crate::common::arn_of(name)).unwrap(),
        None,
        TraceOptions::default(),
    );
    assert!(!c.spans.is_empty());

    let e = client.export(&c.resource, &c.spans).await.unwrap_err();
    assert!(matches!(e, ExportError::Credentials { .. }), "{e:?}");
    assert!(e.retryable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("AWS SigV4") && text.contains("no credentials in the test's chain"),
        "{text}"
    );
    assert!(
        receiver.records().await.is_empty(),
        "sent without credentials"
    );

    on.store(true, Ordering::SeqCst);
    let outcome = client.export(&c.resource, &c.spans).await.unwrap();
    assert_eq!(outcome.accepted, c.spans.len());
    let records = receiver.records().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let reqs = check_accepted(&records, "ap-southeast-2", false);
    let (got, _) = spans_of(&reqs);
    assert_eq!(got.len(), c.spans.len());

    // A gRPC client cannot sign.
    let grpc = OtlpClient::new(&OtlpTarget {
        endpoint: format!("http://{}", receiver.addr),
        protocol: Protocol::Grpc,
        ..OtlpTarget::default()
    })
    .unwrap()
    .with_sigv4(Signer::new(
        SigV4Target {
            service: "xray".into(),
            region: "ap-southeast-2".into(),
        },
        aws_credential_types::provider::SharedCredentialsProvider::new(Switch(on)),
    ));
    let e = grpc.unwrap_err().to_string();
    assert!(e.contains("http/protobuf"), "{e}");
}

fn convert_cmd(args: &[&str]) -> std::process::Output {
    let name = "steps-basic";
    Command::new(BIN)
        .env_clear()
        .envs(CREDENTIALS)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("convert")
        .args(["--arn", &crate::common::arn_of(name)])
        .args(args)
        .arg(crate::common::history_path(name))
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_signs_with_aws_sigv4_region() {
    let Some(venv) = crate::e2e_emulator::venv() else {
        return;
    };
    let receiver = SigningReceiver::start(&venv, SECRET, "eu-north-1");
    let endpoint = format!("http://{}/v1/traces", receiver.addr);
    let o = convert_cmd(&[
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        "http",
        "--otlp-compression",
        "gzip",
        "--aws-sigv4-region",
        "eu-north-1",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}\n{}", receiver.logs());
    let records = receiver.records().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let reqs = check_accepted(&records, "eu-north-1", true);
    let (got, _) = spans_of(&reqs);
    assert!(
        stderr.contains(&format!("sent {} spans", got.len())),
        "{stderr}"
    );

    // Signing is for OTLP/HTTP: gRPC is refused before anything is sent.
    let o = convert_cmd(&[
        "--otlp-endpoint",
        &endpoint,
        "--aws-sigv4-region",
        "eu-north-1",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--aws-sigv4-region") && stderr.contains("--otlp-protocol http"),
        "{stderr}"
    );
    let o = convert_cmd(&["--aws-sigv4-region", "EU North", "--otlp-protocol", "http"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not an AWS name"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(receiver.records().await.len(), 1);
}

#[test]
fn check_config_refuses_signing_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.yaml");
    std::fs::write(
        &path,
        "otlp:\n  protocol: grpc\n  aws_sigv4:\n    region: us-east-1\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .env_clear()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("otlp.aws_sigv4")
            && err.contains("otlp.protocol is grpc")
            && err.contains("set otlp.protocol to http/protobuf"),
        "{err}"
    );

    // With http/protobuf it is valid, and says where spans go and how they are signed.
    std::fs::write(
        &path,
        "otlp:\n  protocol: http/protobuf\n  aws_sigv4:\n    region: us-east-1\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .env_clear()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("https://xray.us-east-1.amazonaws.com/v1/traces (http/protobuf, signed with SigV4 for xray in us-east-1)"),
        "{out}"
    );
}
