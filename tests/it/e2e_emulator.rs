//! End to end against AWS's own local durable-execution emulator: real durable executions of
//! the project's own Python functions (tests/e2e/functions.py), run by `dex-local-runner` (PyPI
//! aws-durable-execution-sdk-python-testing, in the venv tests/e2e/setup.sh makes) through a
//! stand-in for Lambda's Invoke API (tests/e2e/lambda_stand_in.py), read by `durable-exporter
//! run`, the real binary, through `aws.endpoint_url`.
//!
//! Two daemons read the same executions:
//! - the first one while they run: it is told about most of them over `POST /v1/executions`
//!   as they start, discovers one function's (`track.functions`) and follows the chained
//!   invoke's child execution (`track.follow_chained_invokes`), reading small pages;
//! - the second one after they ended, from `track.executions` in its config.
//!
//! Each time, the OTLP receiver must end up with exactly the spans `convert` draws from the
//! final histories (fetched from the emulator here, as raw JSON): none missing, none twice,
//! one root Workflow span per execution with the execution's status; and the daemon's
//! `/metrics` must count what the histories hold, and what the functions were written to do.
//!
//! On failure the working directory (logs, configs, histories) is kept and its path printed,
//! with the tails of the emulator's, the stand-in's and the daemons' logs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::common::daemon::{BIN, Daemon, assert_exact, expected, http, spans_of, views};
use crate::common::exposition::{parse, series_key, split_series};
use crate::common::http::{free_port, send, urlencode as enc};
use crate::common::otlp::Seen;
use durable_exporter::arn::ExecutionArn;
use durable_exporter::history::Event;
use durable_exporter::trace::TraceOptions;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The account the emulator's executions belong to.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-west-2";
/// The chained invokes' durable targets (started by e2e-chained-invoke, not by the test), and
/// how they end.
const CHILDREN: [(&str, &str); 2] = [
    ("e2e-invoke-target", "SUCCEEDED"),
    ("e2e-invoke-refuses", "FAILED"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    /// `POST /v1/executions` as soon as it started.
    Api,
    /// Discovered through `track.functions`.
    Discovered,
}

/// One execution the test starts: its function in functions.py, execution time-out, how the
/// first daemon learns of it, and the status it must end with.
struct Scenario {
    function: &'static str,
    timeout_seconds: u32,
    tracked: Tracked,
    status: &'static str,
}

const fn scenario(
    function: &'static str,
    timeout_seconds: u32,
    tracked: Tracked,
    status: &'static str,
) -> Scenario {
    Scenario {
        function,
        timeout_seconds,
        tracked,
        status,
    }
}

const SCENARIOS: [Scenario; 11] = [
    scenario("e2e-steps", 60, Tracked::Api, "SUCCEEDED"),
    scenario("e2e-retry", 60, Tracked::Api, "SUCCEEDED"),
    scenario("e2e-step-fails", 60, Tracked::Api, "SUCCEEDED"),
    scenario("e2e-waits", 60, Tracked::Discovered, "SUCCEEDED"),
    scenario("e2e-callbacks", 60, Tracked::Api, "SUCCEEDED"),
    scenario("e2e-child-contexts", 60, Tracked::Api, "SUCCEEDED"),
    scenario("e2e-parallel-map", 60, Tracked::Api, "SUCCEEDED"),
    scenario("e2e-chained-invoke", 60, Tracked::Api, "SUCCEEDED"),
    scenario("e2e-fails", 60, Tracked::Api, "FAILED"),
    // Long enough for its first invocation to reach the wait on a busy machine.
    scenario("e2e-timed-out", 6, Tracked::Api, "TIMED_OUT"),
    scenario("e2e-stopped", 60, Tracked::Api, "STOPPED"),
];

/// How long the executions may take to end (they need about 7 s).
const EXECUTIONS_DEADLINE: Duration = Duration::from_secs(90);
/// How long a daemon may take to read, export and acknowledge everything once they ended.
const DAEMON_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The test.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_exports_what_the_emulator_recorded() {
    let started = Instant::now();
    let Some(venv) = venv() else {
        return;
    };
    let h = Harness::new();
    eprintln!("e2e: working directory {}", h.dir.path().display());
    let emu = h.start_emulator(&venv).await;
    eprintln!(
        "e2e: emulator on {} ready after {:.1}s",
        emu.addr,
        started.elapsed().as_secs_f64()
    );

    // Daemon A, from before the first execution starts.
    let receiver_a = crate::common::otlp::grpc().await;
    let http_a: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let api_a: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config_a = h.write_config(
        "a",
        &emu,
        receiver_a.addr,
        (http_a, api_a),
        "  executions: []\n  functions:\n    - name: e2e-waits\n      statuses: [RUNNING, SUCCEEDED, FAILED, TIMED_OUT, STOPPED]\n      lookback: 10m\n  discovery_interval: 1s\n  follow_chained_invokes: true\n",
    );
    let daemon_a = start_daemon(&h, "a", &config_a, http_a).await;

    // The executions, each told to daemon A as it starts (but the discovered one).
    let run = std::process::id();
    let mut arns: Vec<(&Scenario, String)> = Vec::new();
    for sc in &SCENARIOS {
        let arn = emu
            .start(
                sc.function,
                &format!("{}-{run}", sc.function),
                sc.timeout_seconds,
            )
            .await;
        if sc.tracked == Tracked::Api {
            let body = json!({ "DurableExecutionArn": arn }).to_string();
            let answer = http(api_a, "POST", "/v1/executions", Some(&body)).await;
            assert_eq!(
                answer.as_ref().map(|a| a.0),
                Some(201),
                "POST /v1/executions {arn}: {answer:?}"
            );
        }
        arns.push((sc, arn));
    }
    let arn_of = |f: &str| {
        arns.iter()
            .find(|(s, _)| s.function == f)
            .unwrap()
            .1
            .clone()
    };
    // Telling it twice is no error, and tracks nothing twice.
    let body = json!({ "DurableExecutionArn": arn_of("e2e-steps") }).to_string();
    let again = http(api_a, "POST", "/v1/executions", Some(&body)).await;
    assert_eq!(again.as_ref().map(|a| a.0), Some(200), "{again:?}");

    // Drive the callbacks and the stop while the rest runs.
    let (callbacks_arn, stopped_arn) = (arn_of("e2e-callbacks"), arn_of("e2e-stopped"));
    tokio::join!(
        drive_callbacks(&emu, &h, &callbacks_arn),
        drive_stop(&emu, &h, &stopped_arn),
    );

    // Every execution ends as its function was written to.
    let mut execs: Vec<Exec> = Vec::new();
    for (sc, arn) in &arns {
        let described = emu.wait_ended(&h, arn).await;
        assert_eq!(
            described["Status"], sc.status,
            "{} ({arn}) ended {}",
            sc.function, described["Status"]
        );
        assert_function(&described, sc.function);
        execs.push(emu.exec(&h, arn, sc.function, sc.status).await);
    }
    // The chained invokes' durable children.
    let chained = execs
        .iter()
        .find(|e| e.function == "e2e-chained-invoke")
        .unwrap();
    let mut children: Vec<(String, String)> = chained
        .raw
        .iter()
        .filter(|e| e["EventType"] == "ChainedInvokeStarted")
        .filter_map(|e| {
            let d = &e["ChainedInvokeStartedDetails"];
            Some((
                d["FunctionName"].as_str()?.to_owned(),
                d["DurableExecutionArn"].as_str()?.to_owned(),
            ))
        })
        .collect();
    children.sort();
    let names: Vec<&str> = children.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        ["e2e-invoke-refuses", "e2e-invoke-target"],
        "{children:?}"
    );
    for (function, status) in CHILDREN {
        let arn = &children.iter().find(|(f, _)| f == function).unwrap().1;
        let described = emu.wait_ended(&h, arn).await;
        assert_eq!(described["Status"], status, "{function}: {described}");
        assert_function(&described, function);
        execs.push(emu.exec(&h, arn, function, status).await);
    }
    eprintln!(
        "e2e: {} executions ended after {:.1}s ({} events)",
        execs.len(),
        started.elapsed().as_secs_f64(),
        execs.iter().map(|e| e.events.len()).sum::<usize>()
    );
    assert_covers_every_operation(&execs);

    // Daemon A: everything read, exported once, counted once.
    let want = expected(&pairs(&execs));
    let got = wait_daemon_done(&h, &daemon_a, api_a, "daemon A", &execs).await;
    let sources: HashMap<String, String> = got.into_iter().collect();
    for e in &execs {
        let want_source = match e.function {
            "e2e-waits" => "discovered",
            "e2e-invoke-target" | "e2e-invoke-refuses" => "chained_invoke",
            _ => "api",
        };
        assert_eq!(
            sources[&e.arn], want_source,
            "how {} came to be tracked",
            e.function
        );
    }
    check_spans(&receiver_a.requests(), &want, &execs, "daemon A");
    let metrics_a = scrape(http_a).await;
    check_metrics(&metrics_a, &execs, want.len(), "daemon A");
    let listings = total(
        &metrics_a,
        "durable_exporter_api_requests_total",
        &[
            ("operation", "ListDurableExecutionsByFunction"),
            ("outcome", "ok"),
        ],
    );
    assert!(listings >= 1.0, "daemon A never listed e2e-waits");
    report("daemon A", &metrics_a);
    let status = daemon_a.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "daemon A exit status {status:?}");
    eprintln!(
        "e2e: daemon A checked after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Daemon B: the ended executions, listed in its config.
    let receiver_b = crate::common::otlp::grpc().await;
    let http_b: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let api_b: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let listed: String = execs
        .iter()
        .map(|e| format!("    - \"{}\"\n", e.arn))
        .collect();
    let config_b = h.write_config(
        "b",
        &emu,
        receiver_b.addr,
        (http_b, api_b),
        &format!("  executions:\n{listed}"),
    );
    let daemon_b = start_daemon(&h, "b", &config_b, http_b).await;
    let got = wait_daemon_done(&h, &daemon_b, api_b, "daemon B", &execs).await;
    for (arn, source) in &got {
        assert_eq!(source, "config", "{arn}");
    }
    check_spans(&receiver_b.requests(), &want, &execs, "daemon B");
    let metrics_b = scrape(http_b).await;
    check_metrics(&metrics_b, &execs, want.len(), "daemon B");
    report("daemon B", &metrics_b);
    let status = daemon_b.terminate(Duration::from_secs(25)).await;
    assert!(status.success(), "daemon B exit status {status:?}");
    eprintln!(
        "e2e: passed in {:.1}s ({} executions, {} spans each time)",
        started.elapsed().as_secs_f64(),
        execs.len(),
        want.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The venv, the processes, the working directory.

/// tests/e2e/setup.sh: the venv's path (created or checked). None when it cannot be made,
/// after [`crate::common::missing`] (which fails the test on CI).
pub(crate) fn venv() -> Option<PathBuf> {
    let script = crate::common::root().join("tests/e2e/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        crate::common::missing(
            &format!(
                "the e2e venv ({} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr})",
                script.display(),
                out.status
            ),
            "Python >= 3.11 and PyPI (or a venv at $DURABLE_E2E_VENV) for \
             aws-durable-execution-sdk-python-testing; see tests/e2e/README.md",
        );
        return None;
    }
    let venv = PathBuf::from(stdout.lines().next_back().unwrap_or("").trim());
    assert!(
        venv.join("bin/dex-local-runner").is_file(),
        "{} printed {venv:?}, which has no bin/dex-local-runner\n{stdout}{stderr}",
        script.display()
    );
    Some(venv)
}

/// A process the test started: stopped by its PID (SIGTERM, then SIGKILL) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    /// `None` while it runs, else how it ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.exited().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The working directory and the Python processes; on a panic, keeps the directory and prints
/// the logs' tails.
struct Harness {
    dir: tempfile::TempDir,
    procs: Mutex<Vec<Proc>>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            dir: tempfile::Builder::new()
                .prefix("durable-e2e-")
                .tempdir()
                .unwrap(),
            procs: Mutex::new(Vec::new()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Panics with the logs when the emulator or the stand-in exited.
    fn check(&self) {
        let mut procs = self.procs.lock().unwrap();
        let exited = procs
            .iter_mut()
            .find_map(|p| p.exited().map(|status| (p.name, status)));
        if let Some((name, status)) = exited {
            let tails: String = procs.iter().map(|p| tail(&p.log, 40)).collect();
            drop(procs);
            panic!("{name} exited ({status})\n{tails}");
        }
    }

    fn spawn(&self, name: &'static str, cmd: &mut Command, log: &str) {
        let p = Proc::spawn(name, cmd, self.path(log));
        self.procs.lock().unwrap().push(p);
    }

    /// The stand-in on a port of its choosing, then dex-local-runner on a free port, both
    /// with dummy credentials; returns once the emulator answers /health.
    async fn start_emulator(&self, venv: &Path) -> Emulator {
        let dex_port = free_port();
        let dex: SocketAddr = format!("127.0.0.1:{dex_port}").parse().unwrap();
        let ready = self.path("stand-in.ready.json");
        let mut stand_in = Command::new(venv.join("bin/python"));
        clean_env(&mut stand_in);
        stand_in
            .arg(crate::common::root().join("tests/e2e/lambda_stand_in.py"))
            .arg("--ready-file")
            .arg(&ready)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .env("AWS_ENDPOINT_URL_LAMBDA", format!("http://{dex}"));
        self.spawn("lambda stand-in", &mut stand_in, "stand-in.log");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready: Value = loop {
            self.check();
            if let Ok(bytes) = std::fs::read(&ready) {
                break serde_json::from_slice(&bytes).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "the lambda stand-in did not start within 30s\n{}",
                tail(&self.path("stand-in.log"), 40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let lambda_port = ready["port"].as_u64().unwrap();

        let mut dex_cmd = Command::new(venv.join("bin/dex-local-runner"));
        clean_env(&mut dex_cmd);
        dex_cmd
            .args(["start-server", "--host", "127.0.0.1", "--port"])
            .arg(dex_port.to_string())
            .arg("--lambda-endpoint")
            .arg(format!("http://127.0.0.1:{lambda_port}"))
            .args(["--local-runner-region", REGION])
            // Not the memory store: it reads ListDurableExecutionsByFunction's StartedAfter as
            // epoch seconds, the SDKs send ISO-8601, and it then lists nothing; the SQLite
            // store parses ISO-8601, so discovery works.
            .args(["--store-type", "sqlite", "--store-path"])
            .arg(self.path("emulator.sqlite"))
            .arg("--no-skip-time")
            .arg("--function-configs")
            .arg(ready["function_configs"].to_string());
        self.spawn("dex-local-runner", &mut dex_cmd, "emulator.log");
        let emu = Emulator { addr: dex };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.check();
            if let Ok((200, _)) = request(dex, "GET", "/health", None).await {
                return emu;
            }
            assert!(
                Instant::now() < deadline,
                "dex-local-runner did not answer /health within 30s\n{}",
                tail(&self.path("emulator.log"), 40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A daemon config in `<dir>/config-<name>.yaml`; `track` is the body of its track section.
    fn write_config(
        &self,
        name: &str,
        emu: &Emulator,
        otlp: SocketAddr,
        (listen, api): (SocketAddr, SocketAddr),
        track: &str,
    ) -> PathBuf {
        let checkpoints = self.path(&format!("checkpoints-{name}"));
        let yaml = format!(
            "aws:\n  region: {REGION}\n  endpoint_url: \"http://{}\"\n  max_requests_per_second: 100\n  max_concurrency: 4\n\
             track:\n{track}\
             poll:\n  interval: 200ms\n  max_interval: 1s\n  page_size: 4\n\
             otlp:\n  endpoint: \"http://{otlp}\"\n  protocol: grpc\n  timeout: 5s\n  max_batch_size: 16\n\
             checkpoint:\n  dir: \"{}\"\n\
             http:\n  listen: \"{listen}\"\n\
             api:\n  listen: \"{api}\"\n",
            emu.addr,
            checkpoints.display(),
        );
        let path = self.path(&format!("config-{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let procs = self.procs.get_mut().unwrap_or_else(|e| e.into_inner());
        for p in procs.iter_mut().rev() {
            p.stop();
        }
        if std::thread::panicking() {
            let mut logs: Vec<PathBuf> = procs.iter().map(|p| p.log.clone()).collect();
            self.dir.disable_cleanup(true);
            let mut daemons: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            daemons.retain(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("daemon-"))
            });
            daemons.sort();
            logs.extend(daemons);
            let tails: String = logs.iter().map(|l| tail(l, 60)).collect();
            eprintln!(
                "e2e FAILED: kept the working directory {} (logs, configs, checkpoints, histories)\n{tails}",
                self.dir.path().display()
            );
        }
    }
}

/// A fresh environment for the Python processes and the daemon (call it first):
/// dummy credentials, the region, nothing from the caller's AWS setup.
fn clean_env(cmd: &mut Command) {
    cmd.env_clear()
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_ACCESS_KEY_ID", "dummy")
        .env("AWS_SECRET_ACCESS_KEY", "dummy")
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// The last `lines` lines of a log, without the emulator's access log lines.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
    let all: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(".web.server - INFO - "))
        .collect();
    let from = all.len().saturating_sub(lines);
    format!(
        "---- last {} lines of {}\n{}\n",
        all.len() - from,
        path.display(),
        all[from..].join("\n")
    )
}

/// `durable-exporter run --config <config>`, its stderr in `<dir>/daemon-<name>.log`, once its
/// API answers.
async fn start_daemon(h: &Harness, name: &str, config: &Path, listen: SocketAddr) -> Daemon {
    let log = h.path(&format!("daemon-{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"]).arg(config);
    clean_env(&mut cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut d = Daemon { child, log };
    let deadline = Instant::now() + Duration::from_secs(15);
    while http(listen, "GET", "/healthz", None).await.is_none() {
        if let Some(status) = d.child.try_wait().unwrap() {
            panic!("daemon {name} exited ({status}) at start:\n{}", d.logs());
        }
        assert!(
            Instant::now() < deadline,
            "daemon {name}'s API never answered:\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    d
}

// ---------------------------------------------------------------------------------------------
// The emulator's API.

/// One HTTP/1.1 request (`Connection: close`, 15 s to answer): status and body. Errors are
/// transport errors.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    send(
        addr,
        method,
        path,
        &[],
        body.unwrap_or(""),
        Duration::from_secs(15),
    )
    .await
    .map(|r| (r.status, r.body))
}

/// One execution as the emulator recorded it, once it ended.
struct Exec {
    function: &'static str,
    arn: String,
    status: String,
    /// The raw events, as the API sent them.
    raw: Vec<Value>,
    /// The same, parsed as `convert` parses saved histories.
    events: Vec<Event>,
}

fn pairs(execs: &[Exec]) -> Vec<(String, Vec<Event>)> {
    execs
        .iter()
        .map(|e| (e.arn.clone(), e.events.clone()))
        .collect()
}

struct Emulator {
    addr: SocketAddr,
}

impl Emulator {
    /// A JSON call that must answer `want`.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>, want: u16) -> Value {
        let body = body.map(Value::to_string);
        let (status, text) = request(self.addr, method, path, body.as_deref())
            .await
            .unwrap_or_else(|e| panic!("emulator {method} {path}: {e}"));
        assert_eq!(status, want, "emulator {method} {path}: {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("emulator {method} {path}: {e}: {text}"))
        }
    }

    async fn start(&self, function: &str, name: &str, timeout_seconds: u32) -> String {
        let body = json!({
            "AccountId": ACCOUNT,
            "FunctionName": function,
            "FunctionQualifier": "$LATEST",
            "ExecutionName": name,
            "ExecutionTimeoutSeconds": timeout_seconds,
            "ExecutionRetentionPeriodDays": 1,
            "Input": json!({"sku": "book", "items": 5}).to_string(),
        });
        let answer = self
            .call("POST", "/start-durable-execution", Some(&body), 201)
            .await;
        answer["ExecutionArn"]
            .as_str()
            .unwrap_or_else(|| panic!("no ExecutionArn in {answer}"))
            .to_owned()
    }

    /// GetDurableExecution.
    async fn describe(&self, arn: &str) -> Value {
        self.call(
            "GET",
            &format!("/2025-12-01/durable-executions/{}", enc(arn)),
            None,
            200,
        )
        .await
    }

    /// Every event of the history, all pages, with execution data.
    async fn raw_history(&self, arn: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut marker: Option<String> = None;
        for _page in 0..1000 {
            let mut path = format!(
                "/2025-12-01/durable-executions/{}/history?IncludeExecutionData=true&MaxItems=1000",
                enc(arn)
            );
            if let Some(m) = &marker {
                path.push_str(&format!("&Marker={}", enc(m)));
            }
            let page = self.call("GET", &path, None, 200).await;
            events.extend(page["Events"].as_array().cloned().unwrap_or_default());
            marker = page["NextMarker"]
                .as_str()
                .filter(|m| !m.is_empty())
                .map(str::to_owned);
            if marker.is_none() {
                return events;
            }
        }
        panic!("{arn}: more than 1000 history pages");
    }

    /// Polls GetDurableExecution until the execution ended; its description.
    async fn wait_ended(&self, h: &Harness, arn: &str) -> Value {
        let deadline = Instant::now() + EXECUTIONS_DEADLINE;
        loop {
            h.check();
            let d = self.describe(arn).await;
            if d["Status"] != "RUNNING" {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "{arn} still RUNNING after {EXECUTIONS_DEADLINE:?}: {d}\n{}",
                serde_json::to_string_pretty(&self.raw_history(arn).await).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ended execution's final history, saved in the working directory too.
    async fn exec(
        &self,
        h: &Harness,
        arn: &str,
        function: &'static str,
        status: &'static str,
    ) -> Exec {
        let raw = self.raw_history(arn).await;
        let doc = json!({ "Events": raw });
        let bytes = serde_json::to_vec_pretty(&doc).unwrap();
        std::fs::write(h.path(&format!("history-{function}.json")), &bytes).unwrap();
        let parsed = durable_exporter::history::json::parse_history(&bytes)
            .unwrap_or_else(|e| panic!("{function} ({arn}): the history does not parse: {e}"));
        assert_eq!(parsed.duplicates, 0, "{function}: repeated EventIds");
        let ids: Vec<u64> = parsed.events.iter().map(|e| e.id).collect();
        let want: Vec<u64> = (1..=ids.len() as u64).collect();
        assert_eq!(ids, want, "{function}: EventIds are 1..n");
        Exec {
            function,
            arn: arn.to_owned(),
            status: status.to_owned(),
            raw,
            events: parsed.events,
        }
    }

    /// The CallbackId of the callback named `name`, once the invocation that created it ended
    /// (an InvocationCompleted follows its CallbackStarted), as the SDK's own test runner waits.
    async fn callback_id(&self, h: &Harness, arn: &str, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            h.check();
            let events = self.raw_history(arn).await;
            let found = events.iter().enumerate().find(|(_, e)| {
                e["EventType"] == "CallbackStarted" && e["Name"].as_str() == Some(name)
            });
            if let Some((i, e)) = found
                && events[i + 1..]
                    .iter()
                    .any(|x| x["EventType"] == "InvocationCompleted")
            {
                return e["CallbackStartedDetails"]["CallbackId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no CallbackId in {e}"))
                    .to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "callback {name} of {arn} not ready within 30s: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn callback(&self, id: &str, action: &str, body: Option<&Value>) {
        self.call(
            "POST",
            &format!(
                "/2025-12-01/durable-execution-callbacks/{}/{action}",
                enc(id)
            ),
            body,
            200,
        )
        .await;
    }
}

/// e2e-callbacks: a heartbeat and success for "approve", a failure for "review", nothing for
/// "courier" (it times out after 2 s), then success for the wait_for_callback "sign-off".
async fn drive_callbacks(emu: &Emulator, h: &Harness, arn: &str) {
    let approve = emu.callback_id(h, arn, "approve").await;
    let review = emu.callback_id(h, arn, "review").await;
    emu.callback(&approve, "heartbeat", None).await;
    emu.callback(&approve, "succeed", Some(&json!({"approved_by": "alice"})))
        .await;
    emu.callback(
        &review,
        "fail",
        Some(&json!({"ErrorType": "Rejected", "ErrorMessage": "rejected by the reviewer"})),
    )
    .await;
    let sign_off = emu.callback_id(h, arn, "sign-off create callback id").await;
    emu.callback(&sign_off, "succeed", Some(&json!("signed by bob")))
        .await;
}

/// e2e-stopped: StopDurableExecution once it suspended on its long wait.
async fn drive_stop(emu: &Emulator, h: &Harness, arn: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        h.check();
        let events = emu.raw_history(arn).await;
        let waiting = events
            .iter()
            .position(|e| e["EventType"] == "WaitStarted")
            .is_some_and(|i| {
                events[i + 1..]
                    .iter()
                    .any(|x| x["EventType"] == "InvocationCompleted")
            });
        if waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{arn} did not suspend on its wait within 30s: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body =
        json!({"Error": {"ErrorType": "OperatorStop", "ErrorMessage": "stopped by the e2e test"}});
    emu.call(
        "POST",
        &format!("/2025-12-01/durable-executions/{}/stop", enc(arn)),
        Some(&body),
        200,
    )
    .await;
}

/// GetDurableExecution's FunctionArn names the function the test started.
fn assert_function(described: &Value, function: &str) {
    let f = described["FunctionArn"].as_str().unwrap_or("");
    assert_eq!(
        f,
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:$LATEST"),
        "{described}"
    );
}

/// The histories hold every event type the executions were written to produce.
fn assert_covers_every_operation(execs: &[Exec]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in execs {
        for ev in &e.raw {
            let t = ev["EventType"].as_str().unwrap_or("").to_owned();
            let sub = ev["SubType"].as_str().unwrap_or("").to_owned();
            *seen.entry(t.clone()).or_default() += 1;
            *seen.entry(format!("{t}/{sub}")).or_default() += 1;
        }
    }
    for want in [
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionStopped",
        "InvocationCompleted",
        "StepStarted/Step",
        "StepSucceeded/Step",
        "StepFailed/Step",
        "StepSucceeded/WaitForCondition",
        "WaitStarted/Wait",
        "WaitSucceeded/Wait",
        "CallbackStarted/Callback",
        "CallbackSucceeded/Callback",
        "CallbackFailed/Callback",
        "CallbackTimedOut/Callback",
        "ContextStarted/RunInChildContext",
        "ContextSucceeded/RunInChildContext",
        "ContextSucceeded/Parallel",
        "ContextSucceeded/ParallelBranch",
        "ContextSucceeded/Map",
        "ContextSucceeded/MapIteration",
        "ContextSucceeded/WaitForCallback",
        "ChainedInvokeStarted/ChainedInvoke",
        "ChainedInvokeSucceeded/ChainedInvoke",
        "ChainedInvokeFailed/ChainedInvoke",
    ] {
        assert!(
            seen.contains_key(want),
            "no {want} in the histories: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What the daemon did.

/// Polls the daemon's API until it tracks every execution, ended, acknowledged to its last
/// event; each one's `Source`. Fails early when everything it tracks is done but it has not
/// tracked some execution for a while (a chained-invoke child it did not follow, an execution
/// discovery did not list).
async fn wait_daemon_done(
    h: &Harness,
    d: &Daemon,
    addr: SocketAddr,
    who: &str,
    execs: &[Exec],
) -> Vec<(String, String)> {
    let deadline = Instant::now() + DAEMON_DEADLINE;
    let mut stalled_since: Option<Instant> = None;
    loop {
        h.check();
        let v = views(addr).await;
        let done = |e: &Exec| {
            v.as_ref().and_then(|v| v.get(&e.arn)).is_some_and(|x| {
                x.last == e.events.len() as u64 && x.status != "RUNNING" && x.status != "PENDING"
            })
        };
        let untracked: Vec<(&str, &str)> = execs
            .iter()
            .filter(|e| v.as_ref().is_some_and(|v| !v.contains_key(&e.arn)))
            .map(|e| (e.function, e.arn.as_str()))
            .collect();
        let behind: Vec<(&str, &str, usize)> = execs
            .iter()
            .filter(|e| v.as_ref().is_some_and(|v| v.contains_key(&e.arn)) && !done(e))
            .map(|e| (e.function, e.arn.as_str(), e.events.len()))
            .collect();
        if let Some(v) = &v
            && untracked.is_empty()
            && behind.is_empty()
        {
            assert_eq!(
                v.len(),
                execs.len(),
                "{who} tracks only the test's executions: {v:#?}"
            );
            return execs
                .iter()
                .map(|e| (e.arn.clone(), v[&e.arn].source.clone()))
                .collect();
        }
        let stalled = v.is_some() && behind.is_empty();
        stalled_since = if stalled {
            stalled_since.or(Some(Instant::now()))
        } else {
            None
        };
        let given_up = stalled_since.is_some_and(|t| t.elapsed() > Duration::from_secs(5));
        if given_up || Instant::now() >= deadline {
            let hint = if untracked
                .iter()
                .any(|(f, _)| CHILDREN.iter().any(|(c, _)| c == f))
            {
                "\nA chained-invoke child was never followed: AWS's emulator first serves a \
                 ChainedInvokeStarted without its DurableExecutionArn and adds it a moment \
                 later; a daemon that read the event in between never learns of the child (and \
                 draws the invoke's span without its link)."
            } else {
                ""
            };
            panic!(
                "{who} did not read and acknowledge every execution (within {DAEMON_DEADLINE:?}, \
                 or 5 s after it finished all it tracks)\nnever tracked (function, arn): \
                 {untracked:#?}\nnot read to the end (function, arn, last event): {behind:#?}\n\
                 its view: {v:#?}{hint}\n{}",
                d.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The receiver got exactly the spans `convert` draws from the final histories, each once, and
/// one trace per execution with one root Workflow span holding the execution's status.
fn check_spans(
    sent: &[ExportTraceServiceRequest],
    want: &HashMap<Vec<u8>, Seen>,
    execs: &[Exec],
    who: &str,
) {
    let (got, repeats) = spans_of(sent);
    let missing: Vec<&str> = want
        .iter()
        .filter(|(id, _)| !got.contains_key(*id))
        .map(|(_, s)| s.name.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{who}: {} of {} spans missing: {missing:?}",
        missing.len(),
        want.len()
    );
    assert_eq!(repeats, 0, "{who}: spans exported more than once");
    assert_exact(want, &got);

    let mut traces: BTreeMap<Vec<u8>, Vec<&Seen>> = BTreeMap::new();
    for s in got.values() {
        traces.entry(s.trace_id.clone()).or_default().push(s);
    }
    assert_eq!(traces.len(), execs.len(), "{who}: one trace per execution");
    for e in execs {
        let arn_attr = format!(
            "durable.execution.arn=Some(AnyValue {{ value: Some(StringValue({:?}))",
            e.arn
        );
        let roots: Vec<&Seen> = got
            .values()
            .filter(|s| {
                s.name == "Workflow" && s.attributes.iter().any(|a| a.starts_with(&arn_attr))
            })
            .collect();
        assert_eq!(
            roots.len(),
            1,
            "{who}: {} has {} Workflow spans",
            e.function,
            roots.len()
        );
        let root = roots[0];
        assert!(
            root.parent.is_empty(),
            "{who}: {}'s Workflow has a parent",
            e.function
        );
        let status_attr = format!(
            "durable.execution.status=Some(AnyValue {{ value: Some(StringValue({:?}))",
            e.status
        );
        assert!(
            root.attributes.iter().any(|a| a.starts_with(&status_attr)),
            "{who}: {}'s Workflow: {:?}",
            e.function,
            root.attributes
        );
        let in_trace = &traces[&root.trace_id];
        let workflows = in_trace.iter().filter(|s| s.name == "Workflow").count();
        assert_eq!(workflows, 1, "{who}: {}'s trace", e.function);
        let spans = in_trace.len();
        let from_history = want
            .values()
            .filter(|s| s.trace_id == root.trace_id)
            .count();
        assert_eq!(spans, from_history, "{who}: {}'s spans", e.function);
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics.

/// Series → value; a series is `name{label="value",...}` with its labels sorted by name.
type Series = BTreeMap<String, f64>;

/// GET /metrics (the classic text format).
async fn scrape(addr: SocketAddr) -> Series {
    parse(&crate::common::daemon::scrape(addr).await).by_series()
}

/// The sum of the series of `name` whose labels include `labels`.
fn total(m: &Series, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter_map(|(k, v)| {
            let (n, l) = split_series(k);
            (n == name
                && labels
                    .iter()
                    .all(|(lk, lv)| l.get(*lk).map(String::as_str) == Some(*lv)))
            .then_some(*v)
        })
        .sum()
}

/// Gauges computed from the tracked set at scrape time, not counted from events.
const STATE_GAUGES: [&str; 4] = [
    "durable_executions_running",
    "durable_callbacks_pending",
    "durable_callback_oldest_pending_age_seconds",
    "durable_execution_operations_max",
];

/// The event-driven `durable_*` series of a scrape.
fn event_driven(m: &Series) -> Series {
    m.iter()
        .filter(|(k, _)| {
            let (name, _) = split_series(k);
            name.starts_with("durable_")
                && !name.starts_with("durable_exporter_")
                && !STATE_GAUGES.contains(&name.as_str())
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// What the histories contribute, by `convert::prometheus`, with each execution's function as
/// the daemon labels it (from GetDurableExecution's FunctionArn: the emulator's ARNs name no
/// function, so `convert` says `unknown`).
fn metrics_of_histories(execs: &[Exec]) -> Series {
    let mut all = Series::new();
    for e in execs {
        let text = durable_exporter::convert::prometheus(
            &e.events,
            &ExecutionArn::parse(&e.arn).unwrap(),
            &TraceOptions::default(),
        );
        for (k, v) in parse(&text).by_series() {
            let (name, mut labels) = split_series(&k);
            if let Some(f) = labels.get_mut("function") {
                assert_eq!(f, "unknown", "{k}");
                *f = e.function.to_owned();
            }
            *all.entry(series_key(&name, &labels)).or_insert(0.0) += v;
        }
    }
    all
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A line on how the daemon read the histories.
fn report(who: &str, m: &Series) {
    let t = |name: &str, labels: &[(&str, &str)]| total(m, name, labels);
    eprintln!(
        "e2e: {who}: {} GetDurableExecutionHistory calls, {} polls ({} with new events), {} pages with new events, {} marker fallbacks, {} export batches",
        t(
            "durable_exporter_api_requests_total",
            &[("operation", "GetDurableExecutionHistory")]
        ),
        t("durable_exporter_polls_total", &[]),
        t("durable_exporter_polls_total", &[("result", "new_events")]),
        t("durable_exporter_history_pages_with_new_events_total", &[]),
        t("durable_exporter_marker_fallbacks_total", &[]),
        t("durable_exporter_export_batches_total", &[]),
    );
}

/// The daemon's /metrics against the histories (every event-driven series, buckets and sums
/// included), against what the functions were written to do, and its own counters against what
/// it exported.
fn check_metrics(m: &Series, execs: &[Exec], spans: usize, who: &str) {
    // 1. Every event-driven series equals what the histories hold.
    let want = metrics_of_histories(execs);
    let got = event_driven(m);
    assert!(!want.is_empty());
    let mut wrong = Vec::new();
    for k in want.keys().chain(got.keys()) {
        let (w, g) = (
            want.get(k).copied().unwrap_or(0.0),
            got.get(k).copied().unwrap_or(0.0),
        );
        if !close(w, g) {
            wrong.push(format!("{k}: daemon {g}, histories {w}"));
        }
    }
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "{who}: {} series differ from the histories:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // 2. What the functions were written to do (functions.py), by function.
    let t = |name: &str, labels: &[(&str, &str)]| total(m, name, labels);
    let mut expect = |what: &str, got: f64, want: f64| {
        if got != want {
            wrong.push(format!("{what}: {got}, expected {want}"));
        }
    };
    for e in execs {
        let f = e.function;
        expect(
            &format!("{f} started"),
            t("durable_executions_started_total", &[("function", f)]),
            1.0,
        );
        expect(
            &format!("{f} finished {}", e.status),
            t(
                "durable_executions_finished_total",
                &[
                    ("function", f),
                    ("status", &e.status),
                    ("qualifier", "$LATEST"),
                ],
            ),
            1.0,
        );
        expect(
            &format!("{f} finished"),
            t("durable_executions_finished_total", &[("function", f)]),
            1.0,
        );
        expect(
            &format!("{f} execution duration observed"),
            t(
                "durable_execution_duration_seconds_count",
                &[("function", f)],
            ),
            1.0,
        );
    }
    let attempts = |f: &str, outcome: &str| {
        t(
            "durable_step_attempts_total",
            &[("function", f), ("outcome", outcome)],
        )
    };
    let retries = |f: &str| t("durable_step_retries_total", &[("function", f)]);
    let ops = |f: &str, typ: &str, subtype: &str, status: &str| {
        let mut l = vec![("function", f), ("type", typ), ("status", status)];
        if !subtype.is_empty() {
            l.push(("subtype", subtype));
        }
        t("durable_operations_finished_total", &l)
    };
    let waits = |f: &str| t("durable_wait_duration_seconds_count", &[("function", f)]);
    let callbacks = |outcome: &str| {
        t(
            "durable_callback_duration_seconds_count",
            &[("function", "e2e-callbacks"), ("outcome", outcome)],
        )
    };
    // steps
    expect(
        "e2e-steps attempts",
        attempts("e2e-steps", "SUCCEEDED"),
        3.0,
    );
    expect(
        "e2e-steps steps",
        ops("e2e-steps", "STEP", "Step", "SUCCEEDED"),
        3.0,
    );
    expect(
        "e2e-steps invocations",
        t(
            "durable_invocations_total",
            &[("function", "e2e-steps"), ("status", "SUCCEEDED")],
        ),
        1.0,
    );
    expect(
        "e2e-retry failed attempts",
        attempts("e2e-retry", "FAILED"),
        2.0,
    );
    expect(
        "e2e-retry good attempts",
        attempts("e2e-retry", "SUCCEEDED"),
        1.0,
    );
    expect("e2e-retry retries", retries("e2e-retry"), 2.0);
    expect(
        "e2e-retry back-offs",
        t(
            "durable_step_retry_backoff_seconds_count",
            &[("function", "e2e-retry")],
        ),
        2.0,
    );
    expect(
        "e2e-step-fails failed attempts",
        attempts("e2e-step-fails", "FAILED"),
        2.0,
    );
    expect(
        "e2e-step-fails good attempts",
        attempts("e2e-step-fails", "SUCCEEDED"),
        1.0,
    );
    expect("e2e-step-fails retries", retries("e2e-step-fails"), 1.0);
    expect(
        "e2e-step-fails failed step",
        ops("e2e-step-fails", "STEP", "Step", "FAILED"),
        1.0,
    );
    expect(
        "e2e-fails failed step",
        ops("e2e-fails", "STEP", "Step", "FAILED"),
        1.0,
    );
    expect(
        "e2e-fails failed invocation",
        t(
            "durable_invocations_total",
            &[("function", "e2e-fails"), ("status", "FAILED")],
        ),
        1.0,
    );
    // waits
    expect("e2e-waits waits", waits("e2e-waits"), 2.0);
    expect(
        "e2e-waits lateness",
        t(
            "durable_wait_lateness_seconds_count",
            &[("function", "e2e-waits")],
        ),
        2.0,
    );
    expect("e2e-child-contexts waits", waits("e2e-child-contexts"), 1.0);
    expect("e2e-parallel-map waits", waits("e2e-parallel-map"), 1.0);
    for f in ["e2e-timed-out", "e2e-stopped"] {
        expect(&format!("{f} waits"), waits(f), 0.0);
        expect(
            &format!("{f} unfinished wait"),
            ops(f, "WAIT", "Wait", "STARTED"),
            1.0,
        );
    }
    // callbacks
    expect("callbacks succeeded", callbacks("SUCCEEDED"), 2.0);
    expect("callbacks failed", callbacks("FAILED"), 1.0);
    expect("callbacks timed out", callbacks("TIMED_OUT"), 1.0);
    expect(
        "wait_for_callback",
        ops("e2e-callbacks", "CONTEXT", "WaitForCallback", "SUCCEEDED"),
        1.0,
    );
    // child contexts, parallel, map, wait_for_condition
    expect(
        "child contexts",
        ops(
            "e2e-child-contexts",
            "CONTEXT",
            "RunInChildContext",
            "SUCCEEDED",
        ),
        2.0,
    );
    for (subtype, n) in [
        ("Parallel", 1.0),
        ("ParallelBranch", 3.0),
        ("Map", 1.0),
        ("MapIteration", 3.0),
    ] {
        expect(
            subtype,
            ops("e2e-parallel-map", "CONTEXT", subtype, "SUCCEEDED"),
            n,
        );
    }
    expect(
        "wait_for_condition",
        ops("e2e-parallel-map", "STEP", "WaitForCondition", "SUCCEEDED"),
        1.0,
    );
    // quote-air, quote-sea, three weigh-N, three polls
    expect(
        "e2e-parallel-map attempts",
        attempts("e2e-parallel-map", "SUCCEEDED"),
        8.0,
    );
    expect(
        "e2e-parallel-map polls after the first",
        retries("e2e-parallel-map"),
        2.0,
    );
    // chained invokes
    let chained = |outcome: &str| {
        t(
            "durable_chained_invokes_total",
            &[("function", "e2e-chained-invoke"), ("outcome", outcome)],
        )
    };
    expect("chained invokes succeeded", chained("SUCCEEDED"), 2.0);
    expect("chained invokes failed", chained("FAILED"), 1.0);

    // 3. Nothing left running; the exporter's own counters.
    let exporter = |name: &str, labels: &[(&str, &str)]| t(name, labels);
    expect("running", t("durable_executions_running", &[]), 0.0);
    expect(
        "callbacks pending",
        t("durable_callbacks_pending", &[]),
        0.0,
    );
    expect(
        "tracked finished",
        exporter(
            "durable_exporter_tracked_executions",
            &[("state", "finished")],
        ),
        execs.len() as f64,
    );
    expect(
        "tracked",
        exporter("durable_exporter_tracked_executions", &[]),
        execs.len() as f64,
    );
    expect(
        "spans exported",
        exporter("durable_exporter_spans_exported_total", &[]),
        spans as f64,
    );
    expect(
        "span export failures",
        exporter("durable_exporter_span_export_failures_total", &[]),
        0.0,
    );
    expect(
        "events processed",
        exporter("durable_exporter_events_processed_total", &[]),
        execs.iter().map(|e| e.events.len()).sum::<usize>() as f64,
    );
    expect(
        "anomalies",
        exporter("durable_exporter_history_anomalies_total", &[]),
        0.0,
    );
    expect(
        "unknown events",
        exporter("durable_exporter_unknown_events_total", &[]),
        0.0,
    );
    expect(
        "GetDurableExecution once per execution",
        exporter(
            "durable_exporter_api_requests_total",
            &[("operation", "GetDurableExecution")],
        ),
        execs.len() as f64,
    );
    let all_requests = exporter("durable_exporter_api_requests_total", &[]);
    let ok_requests = exporter("durable_exporter_api_requests_total", &[("outcome", "ok")]);
    expect("API requests that failed", all_requests - ok_requests, 0.0);
    assert!(
        wrong.is_empty(),
        "{who}: /metrics is not what the executions did:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checks themselves.

/// The span checks catch a daemon that drops, repeats or changes a span, or sends one more
/// (no emulator needed: histories captured from it earlier, tests/fixtures/emulator).
#[test]
fn span_checks_catch_dropped_repeated_changed_and_extra_spans() {
    let execs: Vec<Exec> = ["retry-then-succeed", "callbacks", "stopped"]
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(crate::common::history_path(name)).unwrap();
            let raw: Value = serde_json::from_slice(&bytes).unwrap();
            let get: Value = serde_json::from_slice(
                &std::fs::read(crate::common::fixture_dir(name).join("get_durable_execution.json"))
                    .unwrap(),
            )
            .unwrap();
            Exec {
                function: name,
                arn: crate::common::arn_of(name),
                status: get["Status"].as_str().unwrap().to_owned(),
                raw: raw["Events"].as_array().unwrap().clone(),
                events: durable_exporter::history::json::parse_history(&bytes)
                    .unwrap()
                    .events,
            }
        })
        .collect();
    let want = expected(&pairs(&execs));
    // What a correct daemon sends: every span once, in a few requests.
    let sent: Vec<ExportTraceServiceRequest> = execs
        .iter()
        .map(|e| {
            let c = durable_exporter::convert::convert(
                &e.events,
                &ExecutionArn::parse(&e.arn).unwrap(),
                None,
                TraceOptions::default(),
            );
            durable_exporter::trace::proto::to_request(&c.resource, &c.spans)
        })
        .collect();
    check_spans(&sent, &want, &execs, "correct");

    let fails = |sent: Vec<ExportTraceServiceRequest>, why: &str, says: &str| {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_spans(&sent, &want, &execs, "broken")
        }))
        .expect_err(why);
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains(says), "{why}: {msg}");
    };
    let spans = |r: &mut ExportTraceServiceRequest| {
        std::mem::take(&mut r.resource_spans[0].scope_spans[0].spans)
    };

    let mut dropped = sent.clone();
    let mut s = spans(&mut dropped[1]);
    s.pop();
    dropped[1].resource_spans[0].scope_spans[0].spans = s;
    fails(dropped, "a dropped span", "spans missing");

    let mut no_root = sent.clone();
    let mut s = spans(&mut no_root[2]);
    s.retain(|x| x.name != "Workflow");
    no_root[2].resource_spans[0].scope_spans[0].spans = s;
    fails(
        no_root,
        "a missing Workflow span",
        "missing: [\"Workflow\"]",
    );

    let mut repeated = sent.clone();
    repeated.push(sent[0].clone());
    fails(repeated, "a repeated request", "more than once");

    let mut changed = sent.clone();
    changed[0].resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano += 1_000_000;
    fails(changed, "a changed span", "differs");

    let mut extra = sent.clone();
    let mut another = sent[1].resource_spans[0].scope_spans[0].spans[0].clone();
    another.span_id = vec![7; 8];
    extra[1].resource_spans[0].scope_spans[0]
        .spans
        .push(another);
    fails(extra, "an extra span", "extra");
}
