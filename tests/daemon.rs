//! `durable-exporter run`, the real binary, against the fake durable API (aws-sdk-lambda through
//! `aws.endpoint_url`) and a real OTLP/gRPC receiver: executions progress while polled, the
//! daemon restarts (gracefully and with `kill -9`), markers are rejected, the collector goes
//! away, the API throttles and fails. Whatever happens, the collector ends up with exactly the
//! spans `convert` draws from the final histories: none missing, at most one batch twice.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::fake_api::{FakeApi, FakeExecution, Faults, GET_HISTORY};
use common::otlp::{Receiver, Seen, flatten};
use durable_exporter::arn::ExecutionArn;
use durable_exporter::convert::convert;
use durable_exporter::history::Event;
use durable_exporter::synth::{SynthSpec, history};
use durable_exporter::trace::TraceOptions;
use durable_exporter::trace::proto::to_request;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_durable-exporter");
const MAX_BATCH: usize = 64;

fn arn(i: usize) -> String {
    format!(
        "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/order-{i}/6a1f0b2c-3d4e-5f60-7182-93a4b5c6d7{i:02}"
    )
}

/// Executions of `ops` operations each, from seeds 1..=n.
fn executions(n: usize, ops: usize) -> Vec<(String, Vec<Event>)> {
    (1..=n)
        .map(|i| {
            let events = history(&SynthSpec {
                operations: ops,
                seed: i as u64 * 7919,
                include_payloads: true,
                finished: true,
                ..SynthSpec::default()
            });
            (arn(i), events)
        })
        .collect()
}

/// What the collector must end up with: every span `convert` draws, by span id.
fn expected(execs: &[(String, Vec<Event>)]) -> HashMap<Vec<u8>, Seen> {
    let mut all = HashMap::new();
    for (a, events) in execs {
        let c = convert(
            events,
            &ExecutionArn::parse(a).unwrap(),
            None,
            TraceOptions::default(),
        );
        for s in flatten(&[to_request(&c.resource, &c.spans)]).0 {
            all.insert(s.span_id.clone(), s);
        }
    }
    all
}

/// Received spans by id, and how many arrived more than once.
fn received(r: &Receiver) -> (HashMap<Vec<u8>, Seen>, usize) {
    let mut by_id = HashMap::new();
    let mut repeats = 0;
    for s in flatten(&r.requests()).0 {
        if let Some(prev) = by_id.insert(s.span_id.clone(), s) {
            repeats += 1;
            assert_eq!(&prev, by_id.get(&prev.span_id).unwrap(), "a repeat differs");
        }
    }
    (by_id, repeats)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    http: SocketAddr,
}

fn setup(fake: &FakeApi, otlp: SocketAddr, arns: &[String], extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let list: Vec<String> = arns.iter().map(|a| format!("    - \"{a}\"")).collect();
    let yaml = format!(
        "aws:\n  region: us-east-1\n  endpoint_url: \"{}\"\n  max_requests_per_second: 200\n  max_concurrency: 4\n\
         track:\n  executions:\n{}\n\
         poll:\n  interval: 150ms\n  max_interval: 600ms\n  page_size: 25\n\
         otlp:\n  endpoint: \"http://{otlp}\"\n  protocol: grpc\n  timeout: 2s\n  max_batch_size: {MAX_BATCH}\n\
         checkpoint:\n  dir: \"{}\"\n\
         http:\n  listen: \"{http}\"\n{extra}",
        fake.endpoint_url(),
        list.join("\n"),
        dir.path().join("checkpoints").display(),
    );
    let yaml = merge_sections(&yaml);
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    Setup { dir, config, http }
}

/// `extra` may repeat a section header (e.g. `otlp:`) to add keys: fold repeated sections.
fn merge_sections(yaml: &str) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut body: HashMap<String, Vec<String>> = HashMap::new();
    let mut current = String::new();
    for line in yaml.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = line.to_owned();
            if !body.contains_key(&current) {
                order.push(current.clone());
                body.insert(current.clone(), Vec::new());
            }
        } else if !line.trim().is_empty() {
            let lines = body.get_mut(&current).unwrap();
            // A later `  key: value` replaces an earlier one of the same key.
            let key = line.split(':').next().unwrap_or("").to_owned();
            match lines.iter_mut().find(|l| {
                key.starts_with("  ")
                    && !key.starts_with("   ")
                    && l.split(':').next() == Some(key.as_str())
            }) {
                Some(l) => *l = line.to_owned(),
                None => lines.push(line.to_owned()),
            }
        }
    }
    let mut out = String::new();
    for h in order {
        out.push_str(&h);
        out.push('\n');
        for l in &body[&h] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon and waits until its HTTP API answers.
    async fn start(s: &Setup, run: usize) -> Daemon {
        let d = Daemon::spawn(s, run);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while http(s.http, "GET", "/healthz", None).await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the daemon's API never answered:\n{}",
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        d
    }

    fn spawn(s: &Setup, run: usize) -> Daemon {
        let log = s.dir.path().join(format!("daemon-{run}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["--log-format", "json", "run", "--config"])
            .arg(&s.config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGTERM, then the exit status within `within`.
    async fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "did not exit within {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request to the daemon; (status, JSON body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, Value)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status: u16 = text.split(' ').nth(1)?.parse().ok()?;
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Some((status, json))
}

/// The daemon's view of each execution: ARN → (Status, LastEventId, ReadEventId).
async fn views(addr: SocketAddr) -> Option<HashMap<String, (String, u64, u64)>> {
    let (status, body) = http(addr, "GET", "/v1/executions", None).await?;
    if status != 200 {
        return None;
    }
    Some(
        body["Executions"]
            .as_array()?
            .iter()
            .map(|e| {
                (
                    e["DurableExecutionArn"].as_str().unwrap_or("").to_owned(),
                    (
                        e["Status"].as_str().unwrap_or("").to_owned(),
                        e["LastEventId"].as_u64().unwrap_or(0),
                        e["ReadEventId"].as_u64().unwrap_or(0),
                    ),
                )
            })
            .collect(),
    )
}

/// Polls the daemon's API until `cond` holds; panics with the daemon's log on timeout.
async fn wait_for(
    d: &Daemon,
    addr: SocketAddr,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut(&HashMap<String, (String, u64, u64)>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = views(addr).await {
            if cond(&v) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out waiting for {what}: {v:?}\n{}", d.logs());
            }
        } else if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out waiting for {what} (API not answering)\n{}",
                d.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_finished(
    execs: &[(String, Vec<Event>)],
) -> impl Fn(&HashMap<String, (String, u64, u64)>) -> bool + '_ {
    move |v| {
        execs.iter().all(|(a, evs)| {
            v.get(a).is_some_and(|(status, last, _)| {
                *last == evs.len() as u64 && status != "RUNNING" && status != "PENDING"
            })
        })
    }
}

fn assert_exact(expected: &HashMap<Vec<u8>, Seen>, got: &HashMap<Vec<u8>, Seen>) {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|(id, _)| !got.contains_key(*id))
        .map(|(_, s)| &s.name)
        .collect();
    assert!(
        missing.is_empty(),
        "{} spans missing: {missing:?}",
        missing.len()
    );
    assert_eq!(got.len(), expected.len(), "unexpected extra spans");
    for (id, s) in expected {
        assert_eq!(&got[id], s, "span {} differs", s.name);
    }
}

fn add_all(fake: &FakeApi, execs: &[(String, Vec<Event>)], visible: usize) {
    for (a, events) in execs {
        fake.add_execution(FakeExecution::from_events(a, events).with_visible(visible));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progressing_executions_are_exported_exactly() {
    let fake = FakeApi::start().await;
    let receiver = common::otlp::grpc().await;
    let execs = executions(3, 60);
    add_all(&fake, &execs, 1);
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");
    let d = Daemon::start(&s, 1).await;

    // Let the histories grow while the daemon reads them: a few events at a time, each step
    // once the daemon has read everything visible.
    loop {
        let mut grew = false;
        for (a, events) in &execs {
            if fake.visible(a) < events.len() {
                fake.reveal_more(a, 9);
                grew = true;
            }
        }
        if !grew {
            break;
        }
        let targets: Vec<(String, u64)> = arns
            .iter()
            .map(|a| (a.clone(), fake.visible(a) as u64))
            .collect();
        wait_for(
            &d,
            s.http,
            Duration::from_secs(20),
            "reads to catch up",
            |v| {
                targets
                    .iter()
                    .all(|(a, n)| v.get(a).is_some_and(|(_, _, read)| read >= n))
            },
        )
        .await;
    }
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;

    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0, "no span twice in a clean run");
    assert_exact(&expected(&execs), &got);

    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status:?}");
    // The daemon's own account of its reads, against the fake's count of requests.
    let logs = std::fs::read_to_string(s.dir.path().join("daemon-1.log")).unwrap();
    let stopped: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "stopped")
        .unwrap_or_else(|| panic!("no stop line in\n{logs}"));
    let field = |k: &str| -> u64 {
        stopped["fields"][k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {stopped}"))
    };
    assert_eq!(field("history_calls") as usize, fake.count(GET_HISTORY));
    eprintln!(
        "steady run: {} GetDurableExecutionHistory calls, {} polls ({} found new events), {} pages of new events, {} events",
        field("history_calls"),
        field("polls"),
        field("polls_with_new_events"),
        field("pages_with_new_events"),
        field("events")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_lose_nothing_and_repeat_at_most_a_batch() {
    let fake = FakeApi::start().await;
    let receiver = common::otlp::grpc().await;
    let execs = executions(2, 80);
    add_all(&fake, &execs, 1);
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");

    // Run 1: a third of each history, then SIGTERM: a graceful stop flushes and persists.
    for (a, e) in &execs {
        fake.reveal(a, e.len() / 3);
    }
    let d = Daemon::start(&s, 1).await;
    let thirds: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (e.len() / 3) as u64))
        .collect();
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "a third acknowledged",
        |v| {
            thirds
                .iter()
                .all(|(a, n)| v.get(a).is_some_and(|(_, last, _)| last >= n))
        },
    )
    .await;
    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    let after_graceful = received(&receiver);
    assert_eq!(after_graceful.1, 0);

    // Run 2: two thirds, killed with -9 while it works.
    for (a, e) in &execs {
        fake.reveal(a, 2 * e.len() / 3);
    }
    fake.reset_log();
    let d = Daemon::start(&s, 2).await;
    let two_thirds: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (2 * e.len() / 3) as u64 - 5))
        .collect();
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "two thirds read",
        |v| {
            two_thirds
                .iter()
                .all(|(a, n)| v.get(a).is_some_and(|(_, _, read)| read >= n))
        },
    )
    .await;
    // The graceful stop left each fold beside its cursor: the restart resumed from the
    // marker, without reading the history from the start again.
    for (a, _) in &execs {
        let first = fake
            .requests()
            .into_iter()
            .find(|r| r.op == GET_HISTORY && r.target == *a)
            .unwrap();
        assert!(
            first.param("Marker").is_some(),
            "{a} was read from the start"
        );
    }
    d.kill9();

    // Run 3: everything.
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let d = Daemon::start(&s, 3).await;
    wait_for(
        &d,
        s.http,
        Duration::from_secs(30),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_exact(&expected(&execs), &got);
    assert!(
        repeats <= MAX_BATCH,
        "{repeats} spans sent twice: more than one batch ({MAX_BATCH})"
    );
    let status = d.terminate(Duration::from_secs(25)).await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_marker_means_a_full_reread_without_duplicates() {
    let fake = FakeApi::start().await;
    let receiver = common::otlp::grpc().await;
    let execs = executions(2, 50);
    add_all(&fake, &execs, 0);
    for (a, e) in &execs {
        fake.reveal(a, e.len() / 2);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(&fake, receiver.addr, &arns, "");
    let d = Daemon::start(&s, 1).await;
    let halves: Vec<(String, u64)> = execs
        .iter()
        .map(|(a, e)| (a.clone(), (e.len() / 2) as u64))
        .collect();
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "half acknowledged",
        |v| {
            halves
                .iter()
                .all(|(a, n)| v.get(a).is_some_and(|(_, last, _)| last >= n))
        },
    )
    .await;
    // Markers expire quickly from now on: the one the daemon keeps between polls is always
    // refused, a fresh NextMarker followed at once still works.
    fake.set_faults(Faults {
        expire_markers_after: Some(Duration::from_millis(100)),
        ..Faults::default()
    });
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    assert!(
        fake.count_status(GET_HISTORY, 400) > 0,
        "markers were refused"
    );
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_loses_nothing_and_the_buffer_holds() {
    let fake = FakeApi::start().await;
    let execs = executions(3, 60);
    add_all(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    // Nothing listens here yet.
    let otlp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cap = 100;
    let s = setup(
        &fake,
        otlp,
        &arns,
        &format!("otlp:\n  max_buffered_spans: {cap}\n"),
    );
    let d = Daemon::start(&s, 1).await;
    // The daemon reads until the buffer is full, then stops reading.
    let mut last_calls = 0;
    let mut stable = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stable < 10 {
        let (_, body) = http(s.http, "GET", "/v1/executions", None).await.unwrap();
        let buffered = body["BufferedSpans"].as_u64().unwrap();
        // Over the cap by at most what one poll brings (a page of 25 events).
        assert!(
            buffered <= cap + 2 * 25 + 10,
            "buffer {buffered} over the cap"
        );
        let calls = fake.count(GET_HISTORY);
        // Paused: no read for a second (polls come every 600 ms at the most otherwise).
        if calls == last_calls && buffered > 0 {
            stable += 1;
        } else {
            stable = 0;
        }
        last_calls = calls;
        assert!(
            tokio::time::Instant::now() < deadline,
            "never paused:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = views(s.http).await.unwrap();
    assert!(
        v.values().any(|(status, _, _)| status == "RUNNING"),
        "paused before the end: {v:?}"
    );
    // The collector comes up: everything arrives, once.
    let receiver = common::otlp::grpc_on(otlp).await;
    wait_for(
        &d,
        s.http,
        Duration::from_secs(60),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_keep_the_budget_and_lose_nothing() {
    let fake = FakeApi::start().await;
    let receiver = common::otlp::grpc().await;
    let execs = executions(3, 40);
    add_all(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    fake.set_faults(Faults {
        seed: 42,
        throttle_probability: 0.25,
        retry_after_seconds: Some(1),
        server_error_probability: 0.15,
        ..Faults::default()
    });
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let rate = 15;
    let s = setup(
        &fake,
        receiver.addr,
        &arns,
        &format!("aws:\n  max_requests_per_second: {rate}\n"),
    );
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.http,
        Duration::from_secs(90),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    assert!(fake.count_status(GET_HISTORY, 429) > 0, "throttled");
    assert!(fake.count_status(GET_HISTORY, 500) > 0, "server errors");
    let peak = fake.max_requests_in_window(Duration::from_secs(1));
    assert!(peak <= rate, "{peak} requests in one second, budget {rate}");
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_tracks_at_run_time_and_remembers() {
    let fake = FakeApi::start().await;
    let receiver = common::otlp::grpc().await;
    let execs = executions(2, 20);
    add_all(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    // Nothing configured: the executions come over the API.
    let s = setup(&fake, receiver.addr, &[], "");
    let d = Daemon::start(&s, 1).await;
    let body = format!("{{\"DurableExecutionArn\": \"{}\"}}", execs[0].0);
    let (status, _) = http(s.http, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, _) = http(s.http, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 200, "already tracked");
    for bad in [
        "{}",
        "not json",
        "{\"DurableExecutionArn\": \"a b\"}",
        "{\"DurableExecutionArn\": \"\"}",
    ] {
        let (status, body) = http(s.http, "POST", "/v1/executions", Some(bad))
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "the first to end",
        all_finished(&execs[..1]),
    )
    .await;

    // Its state, paged like GetDurableExecutionState.
    let enc = execs[0].0.replace('/', "%2F").replace('$', "%24");
    let (status, page) = http(
        s.http,
        "GET",
        &format!("/v1/executions/{enc}/state?MaxItems=5"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["Operations"].as_array().unwrap().len(), 5);
    assert_eq!(page["Operations"][0]["Type"], "EXECUTION");
    let next = page["NextMarker"].as_str().unwrap().to_owned();
    let (_, page2) = http(
        s.http,
        "GET",
        &format!("/v1/executions/{enc}/state?MaxItems=1000&Marker={next}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(page2["Operations"].as_array().unwrap().len(), 21 - 5);
    assert!(page2.get("NextMarker").is_none());
    let (status, _) = http(
        s.http,
        "GET",
        &format!("/v1/executions/{enc}/state?MaxItems=0"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 400);

    // Removed at run time; the removal survives a restart.
    let (status, _) = http(s.http, "DELETE", &format!("/v1/executions/{enc}"), None)
        .await
        .unwrap();
    assert_eq!(status, 204);
    let (status, _) = http(s.http, "DELETE", &format!("/v1/executions/{enc}"), None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    let body = format!("{{\"DurableExecutionArn\": \"{}\"}}", execs[1].0);
    let (status, _) = http(s.http, "POST", "/v1/executions", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 201);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
    let d = Daemon::start(&s, 2).await;
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "the second to end",
        |v| !v.contains_key(&execs[0].0) && all_finished(&execs[1..])(v),
    )
    .await;
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

#[test]
fn run_with_a_bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "poll:\n  intervall: 5s\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("intervall") && err.contains("bad.yaml"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_export_works_too() {
    let fake = FakeApi::start().await;
    let receiver = common::otlp::http().await;
    let execs = executions(2, 30);
    add_all(&fake, &execs, 0);
    for (a, _) in &execs {
        fake.reveal_all(a);
    }
    let arns: Vec<String> = execs.iter().map(|(a, _)| a.clone()).collect();
    let s = setup(
        &fake,
        receiver.addr,
        &arns,
        "otlp:\n  protocol: http/protobuf\n",
    );
    let d = Daemon::start(&s, 1).await;
    wait_for(
        &d,
        s.http,
        Duration::from_secs(20),
        "every execution to end",
        all_finished(&execs),
    )
    .await;
    let (got, repeats) = received(&receiver);
    assert_eq!(repeats, 0);
    assert_exact(&expected(&execs), &got);
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}
