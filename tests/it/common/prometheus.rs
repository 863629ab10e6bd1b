//! A real Prometheus server for the metrics tests: Debian's `prometheus` package (installed by
//! .ci/run; `PROMETHEUS_BIN` and `PROMTOOL_BIN` override the binaries found on PATH; missing,
//! they fail a test on CI and skip it elsewhere, see [`super::require_tool`]).
//!
//! [`Prometheus`] runs the `prometheus` binary as a child process on a free 127.0.0.1 port, with
//! its own temporary directory (config, TSDB, log), scraping one target every second with
//! exemplar storage on, and answers PromQL over its HTTP API. [`promtool_check_metrics`] lints
//! a classic-text exposition with `promtool check metrics`.
//!
//! What the installed version (2.42, Debian bookworm) does, which the tests rely on:
//! - `scrape_protocols` does not exist before 2.49 (the config is refused), so it is written
//!   only for 2.49 and later. 2.42 always sends `Accept: application/openmetrics-text;
//!   version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;
//!   q=0.5,*/*;q=0.1`, and parses the answer by its Content-Type: exemplars only come through
//!   OpenMetrics.
//! - `le` label values are stored as exposed ("1.0" and "1" are different series); Prometheus
//!   3 normalises them. Compare `le` as a number.
//! - `promtool check metrics` parses the classic text format only: an OpenMetrics exposition
//!   with exemplars is a parse error ("expected integer as timestamp, got \"#\"").

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::http::{Response, free_port, http_get, urlencode};

/// One element of an instant vector: its labels (`__name__` included when the result keeps
/// it) and its value.
pub type Sample = (BTreeMap<String, String>, f64);

/// How long `start` waits for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long Drop waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What to install for `prometheus` and `promtool`.
pub const INSTALL: &str = "apt-get install prometheus (Debian's package has both)";

/// `prometheus` (`PROMETHEUS_BIN` or PATH); None when missing off CI (see [`super::require_tool`]).
pub fn prometheus_bin() -> Option<PathBuf> {
    super::require_tool("prometheus", INSTALL)
}

/// `promtool` (`PROMTOOL_BIN` or PATH); None when missing off CI (see [`super::require_tool`]).
pub fn promtool_bin() -> Option<PathBuf> {
    super::require_tool("promtool", INSTALL)
}

/// The version (major, minor, patch) of the Prometheus at `bin`, from `prometheus --version`.
pub fn version(bin: &Path) -> (u32, u32, u32) {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e})", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "prometheus, version 2.42.0+ds (branch: ...".
    let v = text
        .split_once("version ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("unexpected `prometheus --version` output: {text}"));
    let mut nums = v
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
        nums.next().unwrap_or(0),
    )
}

/// A running `prometheus` scraping one target; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    target: String,
    log: PathBuf,
    // Last: removed after the child is stopped.
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://<target>/metrics` (`target` is `host:port`) and waits
    /// until it is ready. None when `prometheus` is missing (off CI: the test skips).
    pub async fn start(target: &str) -> Option<Prometheus> {
        Prometheus::start_with(target, "/metrics").await
    }

    /// Starts Prometheus scraping `http://<target><metrics_path>` every second (timeout 900ms,
    /// OpenMetrics preferred, exemplar storage on) and waits until `/-/ready` answers 200;
    /// panics with its log if it exits or is not ready within 20 s. A port taken between
    /// choosing it and binding it means another try on another port. None when `prometheus`
    /// is missing (off CI: the test skips).
    pub async fn start_with(target: &str, metrics_path: &str) -> Option<Prometheus> {
        let bin = prometheus_bin()?;
        let version = version(&bin);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut p = Prometheus::spawn(&bin, target, metrics_path, version);
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                // Ready, and ours: not another test's server that got the port first.
                if p.get("/-/ready").await.is_some_and(|r| r.status == 200) && p.is_ours().await {
                    return Some(p);
                }
                if let Some(status) = p.child.try_wait().unwrap() {
                    let logs = p.logs();
                    if attempt < 3 && logs.contains("address already in use") {
                        break;
                    }
                    panic!(
                        "prometheus exited ({status}) at start; config:\n{}\nlog:\n{logs}",
                        p.config()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus not ready within {READY_TIMEOUT:?} on {}; log:\n{}",
                    p.addr,
                    p.logs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    fn spawn(bin: &Path, target: &str, metrics_path: &str, version: (u32, u32, u32)) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = dir.path().join("prometheus.yml");
        // `scrape_protocols` appeared in 2.49; earlier versions refuse unknown fields, and
        // already prefer OpenMetrics 1.0.0 over text 0.0.4 in their Accept header.
        let protocols = if version >= (2, 49, 0) {
            "    scrape_protocols: [OpenMetricsText1.0.0, PrometheusText0.0.4]\n"
        } else {
            ""
        };
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: target\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n\
             {protocols}    metrics_path: {metrics_path:?}\n    static_configs:\n      - targets: [{target:?}]\n"
        );
        std::fs::write(&config, yaml).unwrap();
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}` ({e})", bin.display()));
        Prometheus {
            child,
            addr,
            target: target.to_owned(),
            log,
            dir,
        }
    }

    /// Whether the server on `addr` runs with this instance's TSDB directory.
    async fn is_ours(&self) -> bool {
        let ours = self.dir.path().join("data").display().to_string();
        self.api("/api/v1/status/flags")
            .await
            .is_ok_and(|f| f["storage.tsdb.path"] == ours.as_str())
    }

    /// Its stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The config file it runs with.
    pub fn config(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.yml")).unwrap_or_default()
    }

    /// One GET to Prometheus; None when it does not answer.
    pub async fn get(&self, path_and_query: &str) -> Option<Response> {
        http_get(self.addr, path_and_query, &[]).await
    }

    /// GET an API path and return its `data`, or the error (HTTP status, `error`, body).
    async fn api(&self, path_and_query: &str) -> Result<Value, String> {
        let r = self
            .get(path_and_query)
            .await
            .ok_or_else(|| format!("GET {path_and_query}: no answer"))?;
        let v: Value = serde_json::from_str(&r.body)
            .map_err(|e| format!("GET {path_and_query}: {} {e}: {}", r.status, r.body))?;
        if r.status != 200 || v["status"] != "success" {
            return Err(format!(
                "GET {path_and_query}: {} {}: {}",
                r.status, v["errorType"], v["error"]
            ));
        }
        Ok(v["data"].clone())
    }

    /// An instant query now (`/api/v1/query`); an error as Err. A scalar result is one sample
    /// without labels; a matrix or string result is an error.
    pub async fn try_query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self
            .api(&format!("/api/v1/query?query={}", urlencode(promql)))
            .await?;
        parse_instant(&data).map_err(|e| format!("{promql}: {e}: {data}"))
    }

    /// An instant query now (`/api/v1/query`); panics with the error and the log on failure.
    pub async fn query(&self, promql: &str) -> Vec<Sample> {
        match self.try_query(promql).await {
            Ok(v) => v,
            Err(e) => panic!("query failed: {e}\nprometheus log:\n{}", self.logs()),
        }
    }

    /// Polls `promql` until `pred` holds for its results, and returns them; panics after
    /// `timeout` with the last results (or error), the targets' state and the log.
    pub async fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        mut pred: impl FnMut(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_query(promql).await;
            if let Ok(v) = &last
                && pred(v)
            {
                return last.unwrap();
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for `{promql}`; last result: {last:?}\n\
                     targets: {}\nprometheus log:\n{}",
                    self.targets_summary().await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `/api/v1/targets` `data.activeTargets` (Null when it does not answer).
    pub async fn targets(&self) -> Value {
        self.api("/api/v1/targets?state=active")
            .await
            .map(|d| d["activeTargets"].clone())
            .unwrap_or(Value::Null)
    }

    /// Every active target (there is one) has health "up": scraped at least once, and the last
    /// scrape succeeded.
    pub async fn targets_up(&self) -> bool {
        match self.targets().await.as_array() {
            Some(ts) if !ts.is_empty() => ts.iter().all(|t| t["health"] == "up"),
            _ => false,
        }
    }

    /// Polls until `targets_up`; panics after `timeout` with the targets' state and the log.
    pub async fn wait_until_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.targets_up().await {
            if Instant::now() >= deadline {
                panic!(
                    "target {} not up within {timeout:?}: {}\nprometheus log:\n{}",
                    self.target,
                    self.targets_summary().await,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Each target's scrape URL, health and last error, for panic messages.
    pub async fn targets_summary(&self) -> String {
        match self.targets().await.as_array() {
            Some(ts) => ts
                .iter()
                .map(|t| {
                    format!(
                        "{} health={} lastError={}",
                        t["scrapeUrl"], t["health"], t["lastError"]
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            None => "(targets API not answering)".to_owned(),
        }
    }

    /// `/api/v1/query_exemplars` between `start` and `end` (Unix seconds, compared with the
    /// exemplars' own timestamps): its `data`, an array of `{seriesLabels, exemplars: [{labels,
    /// value, timestamp}]}` (value a string, timestamp in seconds). Panics on an error.
    pub async fn query_exemplars(&self, promql: &str, start: f64, end: f64) -> Value {
        let path = format!(
            "/api/v1/query_exemplars?query={}&start={start:.3}&end={end:.3}",
            urlencode(promql)
        );
        match self.api(&path).await {
            Ok(v) => v,
            Err(e) => panic!(
                "query_exemplars failed: {e}\nprometheus log:\n{}",
                self.logs()
            ),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check metrics` on `text` (classic text format 0.0.4 only: promtool does not
/// parse OpenMetrics). Ok with its output when it exits 0 and reports nothing; Err with its
/// output (stdout and stderr, and the exit status) otherwise. Lint problems exit 3, one line
/// each (`demo_requests counter metrics should have "_total" suffix`); parse errors exit 1
/// (`error while linting: text format parsing error in line 1: ...`).
pub fn promtool_check_metrics(promtool: &Path, text: &str) -> Result<String, String> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}` ({e})", promtool.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_owned();
    // A writer thread: promtool may answer before reading everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let output = format!("{stdout}{stderr}");
    if out.status.success() && stderr.trim().is_empty() {
        Ok(output)
    } else {
        Err(format!("{}{output}", exit_note(out.status)))
    }
}

fn exit_note(status: std::process::ExitStatus) -> String {
    if status.success() {
        String::new()
    } else {
        format!("promtool {status}\n")
    }
}

// ---------------------------------------------------------------------------------------------
// Query results.

/// A sample value as the API writes it: a string, "NaN", "+Inf" or "-Inf" included.
pub fn parse_value(v: &Value) -> Result<f64, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("value is not a string: {v}"))?;
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse().map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// The `data` of an instant query: a vector, or a scalar as one unlabelled sample.
fn parse_instant(data: &Value) -> Result<Vec<Sample>, String> {
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("vector without result")?
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .ok_or("sample without metric")?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                Ok((labels, parse_value(&r["value"][1])?))
            })
            .collect(),
        Some("scalar") => Ok(vec![(BTreeMap::new(), parse_value(&data["result"][1])?)]),
        other => Err(format!("not an instant vector or scalar: {other:?}")),
    }
}
