//! The deployment kit (deploy/) and the shipped configs (config/): every JSON and YAML file
//! parses, every metric name in the dashboards' and alerts' PromQL is one the daemon really
//! exposes (a scrape of the running daemon after it exported synthetic executions), promtool
//! accepts the Prometheus config, the rules and their unit tests, and every config passes
//! `durable-exporter check-config`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::daemon::*;
use crate::common::exposition::parse;
use crate::common::http::{free_port, http_get};
use crate::common::prometheus::promtool_bin;
use crate::common::{require_tool, root};
use durable_exporter::history::Event;
use durable_exporter::sim::scripted::ScriptedApi;
use durable_exporter::synth::{SynthSpec, history};
use serde_json::Value;

/// Every file under `dir` (recursively) whose name ends with one of `exts`, sorted.
fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| exts.iter().any(|e| n.ends_with(e)))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_json(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", path.display()))
}

/// Parses YAML with serde-saphyr (the daemon's own YAML reader) into a JSON value.
fn parse_yaml(path: &Path) -> Value {
    serde_saphyr::from_str::<Value>(&read(path))
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()))
}

fn dashboards() -> Vec<PathBuf> {
    files_under(&root().join("deploy/grafana/dashboards"), &[".json"])
}

#[test]
fn json_and_yaml_files_parse() {
    let json = files_under(&root().join("deploy"), &[".json"]);
    assert!(json.len() >= 4, "{json:?}");
    for path in &json {
        parse_json(path);
    }
    let mut yaml = files_under(&root().join("deploy"), &[".yml", ".yaml"]);
    yaml.extend(files_under(&root().join("config"), &[".yml", ".yaml"]));
    assert!(yaml.len() >= 7, "{yaml:?}");
    for path in &yaml {
        parse_yaml(path);
    }
    for path in dashboards() {
        let d = parse_json(&path);
        assert!(d["uid"].is_string() && d["title"].is_string(), "{path:?}");
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            vars.contains(&"function") && vars.contains(&"qualifier"),
            "{path:?}: {vars:?}"
        );
    }
    let policy = parse_json(&root().join("deploy/iam/policy.json"));
    let mut actions: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .map(|a| a.as_str().unwrap())
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "lambda:GetDurableExecution",
            "lambda:GetDurableExecutionHistory",
            "lambda:ListDurableExecutionsByFunction"
        ]
    );
    // The optional policy for otlp.aws_sigv4: what X-Ray's OTLP endpoint asks for, nothing more.
    let xray = parse_json(&root().join("deploy/iam/xray-policy.json"));
    let statements = xray["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{xray}");
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(
        statements[0]["Action"],
        serde_json::json!(["xray:PutSpans"])
    );
    assert_eq!(statements[0]["Resource"], "*");
}

// ---------------------------------------------------------------------------------------------
// Metric names.

/// Every string value under a key named `key`, anywhere in `v`.
fn strings_at(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_at(x, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings_at(x, key, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers (`[a-zA-Z_:][a-zA-Z0-9_:]*`, outside
/// string literals) that start with `durable_` or are `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '"' | '\'' | '`') {
            // A string literal (a label value, a regex): skip it, escapes included.
            while let Some(d) = chars.next() {
                if d == '\\' && c != '`' {
                    chars.next();
                } else if d == c {
                    break;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut ident = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                    ident.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if ident.starts_with("durable_") || ident == "up" {
                names.insert(ident);
            }
        } else if c.is_ascii_digit() {
            // A number or a duration (`5m`, `1e3`, `0x1f`): not an identifier.
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.')
            {
                chars.next();
            }
        }
    }
    names
}

#[test]
fn the_tokenizer_finds_metric_names_only() {
    let got = metric_names(
        r#"sum by (function) (rate(durable_executions_finished_total{status!="durable_x",function=~"$function"}[$__rate_interval])) / on(job) up{job="durable-exporter"} > 1e3 or durable_a:b[5m]"#,
    );
    let want: BTreeSet<String> = ["durable_executions_finished_total", "up", "durable_a:b"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

/// Every PromQL expression of the dashboards (`expr` of targets, and the `definition` of
/// template variables) and of the alert rules (`expr`), with where it comes from.
fn promql_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in dashboards() {
        let d = parse_json(&path);
        let mut exprs = Vec::new();
        strings_at(&d["panels"], "expr", &mut exprs);
        strings_at(&d["templating"], "definition", &mut exprs);
        assert!(!exprs.is_empty(), "{path:?} has no PromQL");
        out.extend(exprs.into_iter().map(|e| (path.display().to_string(), e)));
    }
    let alerts = root().join("deploy/prometheus/alerts.yml");
    let mut exprs = Vec::new();
    strings_at(&parse_yaml(&alerts), "expr", &mut exprs);
    assert!(exprs.len() >= 6, "{exprs:?}");
    out.extend(exprs.into_iter().map(|e| (alerts.display().to_string(), e)));
    out
}

/// The series names docs/METRICS.md lists (its family tables): `_bucket`, `_sum` and `_count`
/// for histograms.
fn documented_names() -> BTreeSet<String> {
    let text = read(&root().join("docs/METRICS.md"));
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| `family` | type | labels | meaning |`: cells[0] is empty.
        let (Some(family), Some(kind)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some(family) = family
            .strip_prefix('`')
            .and_then(|f| f.strip_suffix('`'))
            .filter(|f| f.starts_with("durable_"))
        else {
            continue;
        };
        match *kind {
            "counter" | "gauge" => {
                names.insert(family.to_owned());
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{family}{suffix}"));
                }
            }
            _ => {}
        }
    }
    names
}

/// Families that need rare events to get their first series, so a scrape after a few
/// synthetic executions lacks them: the first throttle (docs/METRICS.md: "Before the first
/// throttle there is no durable_exporter_api_throttles_total series"), and a callback still
/// pending at scrape time (the running synthetic execution waits on a wait, not a callback).
/// Names of these families are checked against docs/METRICS.md instead of the scrape. The
/// exporter's other counters (export and checkpoint failures, unknown events, anomalies, marker
/// fallbacks) are exposed at 0 from the start, so they are checked against the scrape.
const RARE: [&str; 3] = [
    "durable_exporter_api_throttles_total",
    "durable_callbacks_pending",
    "durable_callback_oldest_pending_age_seconds",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_uses_only_metric_names_the_daemon_exposes() {
    let fake = ScriptedApi::start().await;
    let receiver = crate::common::otlp::grpc().await;
    // Three finished executions of two functions and one left running (suspended on a wait),
    // so the state gauges of running executions have series too.
    let spec = |seed: u64, finished: bool| SynthSpec {
        operations: 60,
        seed,
        finished,
        ..SynthSpec::default()
    };
    let finished: Vec<(String, Vec<Event>)> = [("orders", 1), ("orders", 2), ("billing", 3)]
        .iter()
        .map(|(f, i)| (arn_of_function(f, *i), history(&spec(31 * *i as u64, true))))
        .collect();
    let running = (arn_of_function("orders", 4), history(&spec(7, false)));
    add_all(&fake, &finished);
    add_all(&fake, std::slice::from_ref(&running));
    let mut arns: Vec<String> = finished.iter().map(|(a, _)| a.clone()).collect();
    arns.push(running.0.clone());
    let s = setup(&fake, receiver.addr, &arns, "");
    let d = Daemon::start(&s, 1).await;
    let ended = all_finished(&finished);
    wait_for(
        &d,
        s.api,
        Duration::from_secs(30),
        "the executions to be exported",
        |v| {
            ended(v)
                && v.get(&running.0)
                    .is_some_and(|x| x.last == running.1.len() as u64)
        },
    )
    .await;
    let scrape = http_get(s.http, "/metrics", &[("Accept", "text/plain")])
        .await
        .expect("/metrics answers");
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    let scraped = parse(&scrape.body).names();
    for must in [
        "durable_executions_started_total",
        "durable_executions_running",
        "durable_execution_duration_seconds_bucket",
        "durable_exporter_read_lag_seconds",
    ] {
        assert!(
            scraped.contains(must),
            "{must} not scraped:\n{}",
            scrape.body
        );
    }

    let documented = documented_names();
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (file, expr) in promql_expressions() {
        for name in metric_names(&expr) {
            used.insert(name.clone());
            // `up` is Prometheus's own, not the daemon's.
            let ok = name == "up"
                || scraped.contains(&name)
                || (RARE.iter().any(|r| name.starts_with(r)) && documented.contains(&name));
            if !ok {
                unknown.push(format!("{file}: {name} in {expr}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metric names the daemon does not expose:\n{}\nscraped: {scraped:?}",
        unknown.join("\n")
    );
    // The rare families really are documented, and the checks above are not vacuous.
    for r in RARE {
        assert!(documented.contains(r), "{r} is not in docs/METRICS.md");
    }
    assert!(used.len() >= 30, "{used:?}");
    assert!(d.terminate(Duration::from_secs(25)).await.success());
}

// ---------------------------------------------------------------------------------------------
// promtool and check-config.

/// `promtool ARGS` in the crate's root; None when promtool is missing (off CI: after a note).
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    let promtool = promtool_bin()?;
    Some(
        Command::new(&promtool)
            .args(args)
            .current_dir(root())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", promtool.display())),
    )
}

#[test]
fn promtool_accepts_the_config_the_rules_and_their_tests() {
    for args in [
        &["check", "config", "deploy/prometheus/prometheus.yml"][..],
        &["check", "rules", "deploy/prometheus/alerts.yml"][..],
        &["test", "rules", "deploy/prometheus/alerts_test.yml"][..],
    ] {
        let Some(out) = promtool(args) else { return };
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_shipped_config_passes_check_config() {
    let configs = files_under(&root().join("config"), &[".yml", ".yaml"]);
    assert!(configs.len() >= 3, "{configs:?}");
    for path in configs {
        // Only PATH in the environment: the developer's DURABLE_EXPORTER__ and OTEL_* variables
        // cannot leak in.
        let out = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml.

#[test]
fn docker_compose_validates_and_wires_the_stack_together() {
    let compose = root().join("deploy/docker-compose.yml");
    // Without docker-compose (off CI), the checks by reading below still run.
    if let Some(docker_compose) = require_tool("docker-compose", "apt-get install docker-compose") {
        let out = Command::new(&docker_compose)
            .args(["-f", compose.to_str().unwrap(), "config", "-q"])
            .env_remove("EXPORTER_ARGS")
            .env_remove("EXPORTER_CONFIG")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", docker_compose.display()));
        assert!(
            out.status.success(),
            "docker-compose config:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let c = parse_yaml(&compose);
    let services = c["services"].as_object().expect("services");
    for name in ["durable-exporter", "jaeger", "prometheus", "grafana"] {
        assert!(services.contains_key(name), "service {name}");
    }
    // Every bind mount's source exists (relative to deploy/), as Compose resolves them.
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let v = v.as_str().unwrap();
            let source = v.split(':').next().unwrap();
            let source = source
                .strip_prefix("${EXPORTER_CONFIG:-")
                .map_or(source, |s| s.trim_end_matches('}'));
            if source.starts_with('.') {
                let path = root().join("deploy").join(source);
                assert!(path.exists(), "{name}: {v}: {} is missing", path.display());
            }
        }
    }
    // Prometheus scrapes the exporter's service and port; Grafana's datasources and the
    // exporter's OTLP endpoint name services that publish those ports.
    let ports = |svc: &str| -> Vec<String> {
        services[svc]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().rsplit(':').next().unwrap().to_owned())
            .collect()
    };
    let prometheus = read(&root().join("deploy/prometheus/prometheus.yml"));
    assert!(prometheus.contains("\"durable-exporter:9464\""));
    assert!(ports("durable-exporter").contains(&"9464".to_owned()));
    let datasources = read(&root().join("deploy/grafana/provisioning/datasources/datasources.yml"));
    assert!(datasources.contains("url: http://prometheus:9090"));
    assert!(ports("prometheus").contains(&"9090".to_owned()));
    assert!(datasources.contains("url: http://jaeger:16686"));
    assert!(ports("jaeger").contains(&"16686".to_owned()));
    let env: Vec<&str> = services["durable-exporter"]["environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4317"));
    assert!(ports("jaeger").contains(&"4317".to_owned()));
    let prometheus_flags = services["prometheus"]["command"].to_string();
    assert!(prometheus_flags.contains("--enable-feature=exemplar-storage"));

    // The exporter's default command is one the binary accepts: run it for a second, on a
    // free port and a temporary checkpoint directory instead of the container's.
    let command = services["durable-exporter"]["command"].as_str().unwrap();
    let default = command
        .strip_prefix("${EXPORTER_ARGS:-")
        .and_then(|c| c.strip_suffix('}'))
        .expect("the command defaults to demo");
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let args: Vec<String> = default
        .split_whitespace()
        .map(|a| match a {
            "0.0.0.0:9464" => listen.clone(),
            "/var/lib/durable-exporter" => dir.path().to_str().unwrap().to_owned(),
            a => a.to_owned(),
        })
        .collect();
    assert_eq!(args[0], "demo");
    let out = Command::new(BIN)
        .args(&args)
        .args(["--duration", "2s", "--spans-file"])
        .arg(dir.path().join("spans.jsonl"))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{default}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// kubernetes/.

/// The environment the StatefulSet gives its container (literal values only).
fn container_env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let v = if e.get("value").is_some() {
                e["value"].clone()
            } else {
                e["valueFrom"].clone()
            };
            (e["name"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

#[test]
fn kubernetes_manifests_shard_by_pod_name_and_wire_together() {
    let dir = root().join("deploy/kubernetes/base");
    let kustomization = parse_yaml(&dir.join("kustomization.yaml"));
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let mut on_disk: Vec<String> = files_under(&dir, &[".yaml"])
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = resources.iter().map(|r| (*r).to_owned()).collect();
    listed.sort();
    assert_eq!(listed, on_disk, "kustomization.yaml lists every manifest");

    let sts = parse_yaml(&dir.join("statefulset.yaml"));
    assert_eq!(sts["kind"], "StatefulSet");
    let spec = &sts["spec"];
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    let env = container_env(c);
    // The shard count is the number of replicas; the index is the pod's ordinal.
    let replicas = spec["replicas"].as_u64().unwrap();
    assert!(replicas >= 2);
    assert_eq!(
        env["DURABLE_EXPORTER__SHARD__COUNT"].as_str(),
        Some(replicas.to_string().as_str()),
        "replicas and DURABLE_EXPORTER__SHARD__COUNT must agree"
    );
    assert_eq!(env["DURABLE_EXPORTER__SHARD__FROM_POD_NAME"], "true");
    assert_eq!(env["POD_NAME"]["fieldRef"]["fieldPath"], "metadata.name");
    // Its own volume for checkpoints, mounted where the config keeps them; the config from
    // the ConfigMap, at the path the arguments name.
    let claim = &spec["volumeClaimTemplates"][0]["metadata"]["name"];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount_of = |name: &Value| {
        mounts
            .iter()
            .find(|m| &m["name"] == name)
            .unwrap_or_else(|| panic!("no mount of {name}"))["mountPath"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let cm = parse_yaml(&dir.join("configmap.yaml"));
    let config_text = cm["data"]["durable-exporter.yaml"].as_str().unwrap();
    let config = serde_saphyr::from_str::<Value>(config_text).unwrap();
    assert_eq!(
        config["checkpoint"]["dir"].as_str().unwrap(),
        mount_of(claim)
    );
    let config_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == cm["metadata"]["name"])
        .expect("the ConfigMap is a volume");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    assert_eq!(
        config_path,
        format!("{}/durable-exporter.yaml", mount_of(&config_volume["name"]))
    );
    // Probes and the Service reach the metrics listener.
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert!(
        config["http"]["listen"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{port}"))
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let svc = parse_yaml(&dir.join("service.yaml"));
    assert_eq!(
        svc["spec"]["clusterIP"], "None",
        "headless: one target per replica"
    );
    assert_eq!(spec["serviceName"], svc["metadata"]["name"]);
    let labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the Service selects the pods");
    }
    let sa = parse_yaml(&dir.join("serviceaccount.yaml"));
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    // The image runs as non-root with a read-only root file system.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);

    // The config the pods read passes check-config as replica 2 of 3, and a pod name past the
    // count is refused.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("durable-exporter.yaml");
    std::fs::write(&file, config_text).unwrap();
    let check = |pod_name: &str| {
        Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("POD_NAME", pod_name)
            .env("DURABLE_EXPORTER__SHARD__FROM_POD_NAME", "true")
            .env("DURABLE_EXPORTER__SHARD__COUNT", replicas.to_string())
            .arg("check-config")
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap()
    };
    let last = format!("durable-exporter-{}", replicas - 1);
    let out = check(&last);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = check(&format!("durable-exporter-{replicas}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shard.from_pod_name"));
}

// ---------------------------------------------------------------------------------------------
// cloudformation/ and terraform/: the EventBridge rule, the queue, its policy, the role's access.

/// A tool of the aws-local venv (`bash tests/aws-local/setup.sh`); None after [`missing`].
fn aws_local_tool(name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("DURABLE_AWS_LOCAL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/aws-local-venv"));
    let bin = venv.join("bin").join(name);
    if bin.is_file() {
        Some(bin)
    } else {
        crate::common::missing(name, "bash tests/aws-local/setup.sh");
        None
    }
}

/// The actions the exporter needs on its queue (docs/CONFIG.md, track.status_events).
const QUEUE_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

#[test]
fn cloudformation_wires_the_rule_the_queue_and_the_role_and_passes_cfn_lint() {
    let path = root().join("deploy/cloudformation/status-events.yaml");
    let t = parse_yaml(&path);
    let r = &t["Resources"];
    let get_att = |v: &Value| v["Fn::GetAtt"][0].as_str().map(str::to_owned);
    // The rule matches exactly Lambda's status-change events and targets the queue.
    let rule = &r["StatusChangeRule"];
    assert_eq!(rule["Type"], "AWS::Events::Rule");
    let pattern = &rule["Properties"]["EventPattern"];
    assert_eq!(pattern["source"], serde_json::json!(["aws.lambda"]));
    assert_eq!(
        pattern["detail-type"],
        serde_json::json!([durable_exporter::status_event::DETAIL_TYPE])
    );
    let target = &rule["Properties"]["Targets"][0]["Arn"];
    assert_eq!(get_att(target).as_deref(), Some("StatusEventsQueue"));
    assert_eq!(r["StatusEventsQueue"]["Type"], "AWS::SQS::Queue");
    // Only EventBridge, for this rule, may send to the queue.
    let policy = &r["StatusEventsQueuePolicy"]["Properties"];
    assert_eq!(policy["Queues"][0]["Ref"], "StatusEventsQueue");
    let st = &policy["PolicyDocument"]["Statement"][0];
    assert_eq!(st["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(st["Action"], "sqs:SendMessage");
    assert_eq!(
        get_att(&st["Resource"]).as_deref(),
        Some("StatusEventsQueue")
    );
    assert_eq!(
        get_att(&st["Condition"]["ArnEquals"]["aws:SourceArn"]).as_deref(),
        Some("StatusChangeRule")
    );
    // The exporter's role may receive and delete on that queue.
    let access = &r["ExporterQueueAccess"]["Properties"]["PolicyDocument"]["Statement"][0];
    let actions: Vec<&str> = access["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in QUEUE_ACTIONS {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert_eq!(
        get_att(&access["Resource"]).as_deref(),
        Some("StatusEventsQueue")
    );
    // A dead-letter queue takes what is refused too often.
    let redrive = &r["StatusEventsQueue"]["Properties"]["RedrivePolicy"];
    assert_eq!(
        get_att(&redrive["deadLetterTargetArn"]).as_deref(),
        Some("DeadLetterQueue")
    );
    assert_eq!(
        t["Outputs"]["QueueUrl"]["Value"]["Ref"],
        "StatusEventsQueue"
    );

    let Some(cfn_lint) = aws_local_tool("cfn-lint") else {
        return;
    };
    let out = Command::new(cfn_lint).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "cfn-lint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn terraform_matches_the_cloudformation_and_parses() {
    let path = root().join("deploy/terraform/main.tf");
    // Runs of spaces as one (`terraform fmt` aligns the `=`).
    let tf = read(&path)
        .lines()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    // `resource "TYPE" "NAME" {` ... up to the next top-level `}`.
    let block = |kind: &str, name: &str| -> String {
        let head = format!("resource \"{kind}\" \"{name}\" {{");
        let start = tf.find(&head).unwrap_or_else(|| panic!("no {kind}.{name}"));
        let end = tf[start..].find("\n}").unwrap() + start;
        tf[start..end].to_owned()
    };
    let rule = block("aws_cloudwatch_event_rule", "status_change");
    assert!(rule.contains("source = [\"aws.lambda\"]"), "{rule}");
    assert!(
        rule.contains(&format!(
            "\"detail-type\" = [\"{}\"]",
            durable_exporter::status_event::DETAIL_TYPE
        )),
        "{rule}"
    );
    let target = block("aws_cloudwatch_event_target", "queue");
    assert!(target.contains("rule = aws_cloudwatch_event_rule.status_change.name"));
    assert!(target.contains("arn = aws_sqs_queue.status_events.arn"));
    let policy = block("aws_sqs_queue_policy", "status_events");
    assert!(policy.contains("queue_url = aws_sqs_queue.status_events.id"));
    assert!(policy.contains("Principal = { Service = \"events.amazonaws.com\" }"));
    assert!(policy.contains("Action = \"sqs:SendMessage\""));
    assert!(policy.contains("\"aws:SourceArn\" = aws_cloudwatch_event_rule.status_change.arn"));
    let access = block("aws_iam_role_policy", "exporter_queue_access");
    for a in QUEUE_ACTIONS {
        assert!(access.contains(&format!("\"{a}\"")), "{a}");
    }
    assert!(access.contains("Resource = aws_sqs_queue.status_events.arn"));
    let queue = block("aws_sqs_queue", "status_events");
    assert!(queue.contains("deadLetterTargetArn = aws_sqs_queue.dead_letter.arn"));
    // The same queue settings as the CloudFormation template.
    let cfn = parse_yaml(&root().join("deploy/cloudformation/status-events.yaml"));
    let q = &cfn["Resources"]["StatusEventsQueue"]["Properties"];
    for (tf_key, cfn_key) in [
        ("visibility_timeout_seconds", "VisibilityTimeout"),
        ("receive_wait_time_seconds", "ReceiveMessageWaitTimeSeconds"),
    ] {
        assert!(
            queue.contains(&format!("{tf_key} = {}", q[cfn_key])),
            "{tf_key} differs from {cfn_key} ({})",
            q[cfn_key]
        );
    }
    assert!(tf.contains("output \"queue_url\""));

    // It is HCL (terraform itself needs its providers from the network to validate).
    let Some(python) = aws_local_tool("python") else {
        return;
    };
    let out = Command::new(python)
        .args(["-c", "import hcl2, sys; hcl2.load(open(sys.argv[1]))"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-hcl2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl kustomize DIR`, one JSON value per rendered manifest; None without kubectl.
fn kustomize(dir: &Path) -> Option<(String, Vec<Value>)> {
    let kubectl = require_tool("kubectl", "apt-get install kubectl")?;
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
        .collect();
    Some((text, docs))
}

#[test]
fn kustomize_renders_the_base_and_the_overlay_and_they_pass_the_schemas() {
    let base = root().join("deploy/kubernetes/base");
    let Some((text, docs)) = kustomize(&base) else {
        return;
    };
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
            "StatefulSet"
        ])
    );
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"] == "observability")
    );
    // The ServiceMonitor scrapes the Service's metrics port at /metrics.
    let of = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap();
    let sm = of("ServiceMonitor");
    let svc = of("Service");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "the ServiceMonitor selects the Service"
        );
    }
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");

    // The overlay changes the replicas and the shard count together.
    let (_, five) = kustomize(&root().join("deploy/kubernetes/overlays/five-shards")).unwrap();
    let sts = five.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    assert_eq!(sts["spec"]["replicas"], 5);
    let env = container_env(&sts["spec"]["template"]["spec"]["containers"][0]);
    assert_eq!(env["DURABLE_EXPORTER__SHARD__COUNT"], "5");
    assert_eq!(env["DURABLE_EXPORTER__SHARD__FROM_POD_NAME"], "true");

    // Kubernetes' own schemas (the ServiceMonitor is a CRD they do not hold).
    let Some(validate) = aws_local_tool("kubernetes-validate") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let core: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| !d.contains("kind: ServiceMonitor"))
        .collect();
    let file = tmp.path().join("rendered.yaml");
    std::fs::write(&file, core.join("\n---\n")).unwrap();
    let out = Command::new(validate)
        .args(["--strict", "-k", "1.32.0"])
        .arg(&file)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate: {report}");
    assert_eq!(
        report.matches(" passed for resource ").count(),
        5,
        "{report}"
    );
}
