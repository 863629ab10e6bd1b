//! The harness of the daemon tests (tests/it/daemon.rs, tests/it/daemon_more.rs): `durable-exporter
//! run`, the real binary, against the fake durable API and an OTLP receiver. A config writer,
//! the daemon process, a raw HTTP client for its API, and the comparison of exported spans with
//! what `convert` draws from the histories.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use durable_exporter::arn::ExecutionArn;
use durable_exporter::convert::convert;
use durable_exporter::history::Event;
use durable_exporter::synth::{SynthSpec, history};
use durable_exporter::trace::TraceOptions;
use durable_exporter::trace::proto::to_request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;
use tokio::time::Instant;

use super::exposition::value_of;
use super::http::free_port;
use super::http::request;
use super::otlp::{Receiver, Seen, flatten};
use durable_exporter::sim::scripted::{ScriptedApi, ScriptedExecution};

pub const BIN: &str = env!("CARGO_BIN_EXE_durable-exporter");
/// `otlp.max_batch_size` in every config `setup` writes.
pub const MAX_BATCH: usize = 64;

// ---------------------------------------------------------------------------------------------
// Config.

/// A daemon's directory (config, checkpoints, logs), config file and the addresses of its
/// metrics listener (`http`) and its run-time API (`api`).
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub http: SocketAddr,
    pub api: SocketAddr,
}

impl Setup {
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.path().join("checkpoints")
    }

    /// Every file under `<checkpoint.dir>/executions` but a write in progress.
    pub fn checkpoint_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.checkpoints().join("executions"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        // What the daemon reads back: not a `.tmp-*` file a write has not renamed yet (a kill
        // then leaves the old cursor in force).
        v.retain(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
        });
        v.sort();
        v
    }

    /// The checkpoint file holding `arn`'s cursor, and the cursor (its `V1` body).
    pub fn cursor(&self, arn: &str) -> Option<(PathBuf, Value)> {
        self.checkpoint_files().into_iter().find_map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            (v["arn"] == arn).then_some((p, v))
        })
    }
}

/// A fresh directory and a config tracking `arns`, exporting to `otlp`; `extra` is appended
/// (see `merge_sections`).
pub fn setup(fake: &ScriptedApi, otlp: SocketAddr, arns: &[String], extra: &str) -> Setup {
    setup_at(&fake.endpoint_url(), otlp, arns, extra)
}

/// As [`setup`], against the durable API at `endpoint_url` (the simulator's).
pub fn setup_at(endpoint_url: &str, otlp: SocketAddr, arns: &[String], extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("config.yaml");
    let s = Setup {
        dir,
        config,
        http,
        api,
    };
    write_config_at(&s, endpoint_url, otlp, arns, extra);
    s
}

/// (Re)writes the config file of `s` (same directory, checkpoints and HTTP address).
pub fn write_config(s: &Setup, fake: &ScriptedApi, otlp: SocketAddr, arns: &[String], extra: &str) {
    write_config_at(s, &fake.endpoint_url(), otlp, arns, extra);
}

/// As [`write_config`], against the durable API at `endpoint_url`.
pub fn write_config_at(
    s: &Setup,
    endpoint_url: &str,
    otlp: SocketAddr,
    arns: &[String],
    extra: &str,
) {
    let list: Vec<String> = arns.iter().map(|a| format!("    - \"{a}\"")).collect();
    let yaml = format!(
        "aws:\n  region: us-east-1\n  endpoint_url: \"{}\"\n  max_requests_per_second: 200\n  max_concurrency: 4\n\
         track:\n  executions:\n{}\n\
         poll:\n  interval: 150ms\n  max_interval: 600ms\n  page_size: 25\n\
         otlp:\n  endpoint: \"http://{otlp}\"\n  protocol: grpc\n  timeout: 2s\n  max_batch_size: {MAX_BATCH}\n\
         checkpoint:\n  dir: \"{}\"\n\
         http:\n  listen: \"{}\"\n\
         api:\n  listen: \"{}\"\n{extra}",
        endpoint_url,
        list.join("\n"),
        s.checkpoints().display(),
        s.http,
        s.api,
    );
    std::fs::write(&s.config, merge_sections(&yaml)).unwrap();
}

/// `extra` may repeat a section header (e.g. `otlp:`) to add keys: fold repeated sections.
pub fn merge_sections(yaml: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// The daemon process.

/// The daemon's log format on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// The default: no `--log-format` flag.
    Text,
    Json,
}

/// A running `durable-exporter run`; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon (text logs) and waits until its HTTP API answers.
    pub async fn start(s: &Setup, run: usize) -> Daemon {
        Daemon::start_with(s, run, LogFormat::Text).await
    }

    /// Starts the daemon with JSON logs and waits until its HTTP API answers.
    pub async fn start_json(s: &Setup, run: usize) -> Daemon {
        Daemon::start_with(s, run, LogFormat::Json).await
    }

    /// Starts the daemon and waits until its HTTP API answers; panics with its log if it exits
    /// or does not answer within 15 s.
    pub async fn start_with(s: &Setup, run: usize, format: LogFormat) -> Daemon {
        Daemon::start_with_env(s, run, format, &[]).await
    }

    /// [`Daemon::start_with`], with `vars` added to (or replacing in) its environment.
    pub async fn start_with_env(
        s: &Setup,
        run: usize,
        format: LogFormat,
        vars: &[(&str, &str)],
    ) -> Daemon {
        let mut d = Daemon::spawn_with_env(s, run, format, vars);
        let deadline = Instant::now() + Duration::from_secs(15);
        while http(s.http, "GET", "/healthz", None).await.is_none() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!("the daemon exited ({status}) at start:\n{}", d.logs());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon's API never answered:\n{}",
                d.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        d
    }

    /// Spawns the daemon, its stderr in `<dir>/daemon-<run>.log`. The environment is cleared:
    /// no RUST_LOG, so the daemon logs at its default level.
    pub fn spawn(s: &Setup, run: usize, format: LogFormat) -> Daemon {
        Daemon::spawn_with_env(s, run, format, &[])
    }

    /// [`Daemon::spawn`], with `vars` added to (or replacing in) its environment.
    pub fn spawn_with_env(
        s: &Setup,
        run: usize,
        format: LogFormat,
        vars: &[(&str, &str)],
    ) -> Daemon {
        let log = s.dir.path().join(format!("daemon-{run}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        if format == LogFormat::Json {
            cmd.args(["--log-format", "json"]);
        }
        let child = cmd
            .args(["run", "--config"])
            .arg(&s.config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    /// [`eventually`], with this daemon's log in the panic.
    pub async fn eventually<T, F, Fut>(&self, within: Duration, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        eventually(within, what, || self.logs(), check).await
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGTERM, then the exit status within `within`.
    pub async fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> String {
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

// ---------------------------------------------------------------------------------------------
// The daemon's HTTP API.

/// One HTTP/1.1 request to the daemon; (status, JSON body: Null when it is not JSON).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, Value)> {
    let r = request(addr, method, path, &[], body.unwrap_or("")).await?;
    let json = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    Some((r.status, json))
}

/// `GET /metrics` of the metrics listener (the classic text format): the body. Panics unless
/// it answers 200.
pub async fn scrape(addr: SocketAddr) -> String {
    let r = request(addr, "GET", "/metrics", &[], "")
        .await
        .expect("/metrics answers");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The value of one series (`name{labels}`) in `/metrics`; panics when the series is absent.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let body = scrape(addr).await;
    value_of(&body, series).unwrap_or_else(|| panic!("no {series} in\n{body}"))
}

/// The daemon's view of one execution.
#[derive(Debug, Clone)]
pub struct View {
    /// `Status`.
    pub status: String,
    /// `Source`: how it came to be tracked.
    pub source: String,
    /// `LastEventId`: acknowledged by the collector.
    pub last: u64,
    /// `ReadEventId`: read from the history.
    pub read: u64,
    /// `NextPollInSeconds`.
    pub next_poll_in: Option<f64>,
}

pub type Views = HashMap<String, View>;

/// GET /v1/executions, by ARN.
pub async fn views(addr: SocketAddr) -> Option<Views> {
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
                    View {
                        status: e["Status"].as_str().unwrap_or("").to_owned(),
                        source: e["Source"].as_str().unwrap_or("").to_owned(),
                        last: e["LastEventId"].as_u64().unwrap_or(0),
                        read: e["ReadEventId"].as_u64().unwrap_or(0),
                        next_poll_in: e["NextPollInSeconds"].as_f64(),
                    },
                )
            })
            .collect(),
    )
}

/// Polls `check` every 50 ms until it gives Some, or panics with `what` and `logs()` (the
/// daemon's log, say) after `within`.
pub async fn eventually<T, F, Fut>(
    within: Duration,
    what: &str,
    logs: impl Fn() -> String,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the daemon's API until `cond` holds, and returns the views that satisfied it; panics
/// with the daemon's log on timeout.
pub async fn wait_for(
    d: &Daemon,
    addr: SocketAddr,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut(&Views) -> bool,
) -> Views {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = views(addr).await {
            if cond(&v) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}: {v:#?}\n{}", d.logs());
            }
        } else if Instant::now() >= deadline {
            panic!(
                "timed out waiting for {what} (API not answering)\n{}",
                d.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every execution read to its last event, ended, and acknowledged.
pub fn all_finished(execs: &[(String, Vec<Event>)]) -> impl Fn(&Views) -> bool + '_ {
    move |v| {
        execs.iter().all(|(a, evs)| {
            v.get(a).is_some_and(|x| {
                x.last == evs.len() as u64 && x.status != "RUNNING" && x.status != "PENDING"
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Executions and spans.

/// Adds the executions to the fake API, all of their events visible.
pub fn add_all(fake: &ScriptedApi, execs: &[(String, Vec<Event>)]) {
    add_all_visible(fake, execs, usize::MAX);
}

/// The ARN of test execution `i` of the `orders` function (a valid UUID for any `i`).
pub fn arn(i: usize) -> String {
    arn_of_function("orders", i)
}

/// The ARN of test execution `i` of `function` (a valid UUID for any `i`).
pub fn arn_of_function(function: &str, i: usize) -> String {
    format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{function}:$LATEST/durable-execution/{function}-{i}/6a1f0b2c-3d4e-5f60-7182-{i:012x}"
    )
}

/// The ARNs of `execs`.
pub fn arns(execs: &[(String, Vec<Event>)]) -> Vec<String> {
    execs.iter().map(|(a, _)| a.clone()).collect()
}

/// Finished executions of `ops` operations each, from seeds 1..=n.
pub fn executions(n: usize, ops: usize) -> Vec<(String, Vec<Event>)> {
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

/// Adds the executions to the fake API, the first `visible` events of each visible.
pub fn add_all_visible(fake: &ScriptedApi, execs: &[(String, Vec<Event>)], visible: usize) {
    for (a, events) in execs {
        fake.add_execution(ScriptedExecution::from_events(a, events).with_visible(visible));
    }
}

/// What the collector must end up with: every span `convert` draws, by span id. The histories
/// must convert without anomalies.
pub fn expected(execs: &[(String, Vec<Event>)]) -> HashMap<Vec<u8>, Seen> {
    let mut all = HashMap::new();
    for (a, events) in execs {
        let c = convert(
            events,
            &ExecutionArn::parse(a).unwrap(),
            None,
            TraceOptions::default(),
        );
        assert!(c.anomalies.is_empty(), "{a}: {:?}", c.anomalies);
        for s in flatten(&[to_request(&c.resource, &c.spans)]).0 {
            all.insert(s.span_id.clone(), s);
        }
    }
    all
}

/// Spans of some requests by id, and how many arrived more than once.
pub fn spans_of(reqs: &[ExportTraceServiceRequest]) -> (HashMap<Vec<u8>, Seen>, usize) {
    let mut by_id = HashMap::new();
    let mut repeats = 0;
    for s in flatten(reqs).0 {
        if let Some(prev) = by_id.insert(s.span_id.clone(), s) {
            repeats += 1;
            assert_eq!(&prev, by_id.get(&prev.span_id).unwrap(), "a repeat differs");
        }
    }
    (by_id, repeats)
}

/// Received spans by id, and how many arrived more than once.
pub fn received(r: &Receiver) -> (HashMap<Vec<u8>, Seen>, usize) {
    spans_of(&r.requests())
}

/// Every expected span is among `got`, equal.
pub fn assert_contains_all(expected: &HashMap<Vec<u8>, Seen>, got: &HashMap<Vec<u8>, Seen>) {
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
    for (id, s) in expected {
        assert_eq!(&got[id], s, "span {} differs", s.name);
    }
}

/// Exactly the expected spans: none missing, none different, none extra.
pub fn assert_exact(expected: &HashMap<Vec<u8>, Seen>, got: &HashMap<Vec<u8>, Seen>) {
    assert_contains_all(expected, got);
    assert_eq!(got.len(), expected.len(), "unexpected extra spans");
}
