//! docs/CONFIG.md, the config struct and the container files cannot drift apart.
//!
//! The keys come from the config struct itself (`Config::keys`, what serde derives: a field is a
//! key), the defaults from `config/durable-exporter.yaml` (which a unit test in src/config ties
//! to `Config::default`).
//! The Dockerfile and the ECS task definitions are checked by reading: no container engine is
//! needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

const ENV_PREFIX: &str = "DURABLE_EXPORTER__";
const CHECKPOINT_DIR: &str = "/var/lib/durable-exporter";
const BINARY: &str = "/usr/local/bin/durable-exporter";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The config's sections and keys as docs/CONFIG.md writes them (`poll.interval`,
/// `otlp.tls.ca_file`, `track.functions[].name`), from the struct.
fn config_keys() -> (Vec<String>, BTreeSet<String>) {
    use durable_exporter::config::Config;
    let sections = Config::sections();
    assert!(sections.len() >= 9, "{sections:?}");
    (sections, Config::keys().into_iter().collect())
}

fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_uppercase().replace('.', "__"))
}

/// The table rows of docs/CONFIG.md whose first cell is a backticked key: key → cells.
fn documented_rows(doc: &str) -> BTreeMap<String, Vec<String>> {
    let mut rows = BTreeMap::new();
    for line in doc.lines() {
        let Some(row) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<String> = format!("`{row}")
            .trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        let key = cells[0].trim_matches('`').to_owned();
        if key.starts_with("OTEL_") {
            continue;
        }
        let previous = rows.insert(key.clone(), cells);
        assert!(previous.is_none(), "docs/CONFIG.md documents {key} twice");
    }
    rows
}

#[test]
fn config_md_documents_exactly_the_config_keys() {
    let doc = read("docs/CONFIG.md");
    let (sections, keys) = config_keys();
    let rows = documented_rows(&doc);

    for section in &sections {
        assert!(
            doc.contains(&format!("\n## {section}\n")),
            "docs/CONFIG.md has no `## {section}` section"
        );
    }
    let documented: BTreeSet<String> = rows.keys().cloned().collect();
    let missing: Vec<_> = keys.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&keys).collect();
    assert!(
        missing.is_empty(),
        "config keys missing from docs/CONFIG.md: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "docs/CONFIG.md documents keys the config does not know: {extra:?}"
    );

    for key in keys.iter().filter(|k| !k.contains("[]")) {
        let var = env_var(key);
        assert!(
            rows[key].iter().any(|c| c.contains(&format!("`{var}`"))),
            "docs/CONFIG.md: the row of {key} does not name {var}"
        );
    }
}

#[test]
fn config_md_names_no_unknown_key_or_variable() {
    let doc = read("docs/CONFIG.md");
    let (sections, keys) = config_keys();
    let vars: BTreeSet<String> = keys
        .iter()
        .filter(|k| !k.contains("[]"))
        .map(|k| env_var(k))
        .collect();

    // Every backticked `section.key` mention, outside fenced code blocks.
    let mut fenced = false;
    let prose: String = doc
        .lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect::<Vec<_>>()
        .join("\n");
    for (i, chunk) in prose.split('`').enumerate() {
        if i % 2 == 0 {
            continue;
        }
        let Some((section, rest)) = chunk.split_once('.') else {
            continue;
        };
        if !sections.iter().any(|s| s == section)
            || !rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.' || c == '[' || c == ']')
        {
            continue;
        }
        assert!(
            keys.contains(chunk) || keys.iter().any(|k| k.starts_with(&format!("{chunk}."))),
            "docs/CONFIG.md mentions `{chunk}`, which is not a config key"
        );
    }

    // Every DURABLE_EXPORTER__ variable.
    let allowed_patterns = [
        "DURABLE_EXPORTER__SECTION__KEY",
        "DURABLE_EXPORTER__OTLP__HEADERS__<NAME>",
        "DURABLE_EXPORTER__OTLP__HEADERS__AUTHORIZATION",
    ];
    for (i, _) in doc.match_indices(ENV_PREFIX) {
        let var: String = doc[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_<>".contains(*c))
            .collect();
        let var = var.trim_end_matches('_');
        if var == ENV_PREFIX.trim_end_matches('_') {
            continue; // the prefix itself
        }
        assert!(
            vars.contains(var) || allowed_patterns.contains(&var),
            "docs/CONFIG.md names {var}, which sets no config key"
        );
    }
}

#[test]
fn config_md_names_exactly_the_otel_variables_read() {
    let doc = read("docs/CONFIG.md");
    let otel_in = |text: &str| -> BTreeSet<String> {
        text.match_indices("OTEL_")
            .map(|(i, _)| {
                text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect::<String>()
            })
            .filter(|v| v.len() > "OTEL_".len())
            .collect()
    };
    // The config loader reads them, and the OTLP client's helpers it calls (TLS, compression).
    let src = ["src/config/load.rs", "src/otlp.rs"]
        .map(|f| read(f).split("#[cfg(test)]").next().unwrap().to_owned())
        .join("\n");
    let non_test_src = src.as_str();
    let read_by_src: BTreeSet<String> = otel_in(non_test_src)
        .into_iter()
        .filter(|v| non_test_src.contains(&format!("\"{v}\"")))
        .collect();
    assert!(read_by_src.len() >= 7, "{read_by_src:?}");
    let in_doc = otel_in(&doc);
    assert_eq!(
        in_doc, read_by_src,
        "the OTEL_* variables docs/CONFIG.md names and those src/config reads differ"
    );
}

/// `section.key` (`section.sub.key` for nested sections) → the value written in the shipped
/// config (uncommented keys only).
fn shipped_defaults() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // The open sections, by indentation (two spaces a level).
    let mut path: Vec<String> = Vec::new();
    for line in read("config/durable-exporter.yaml").lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let depth = (line.len() - line.trim_start().len()) / 2;
        path.truncate(depth);
        let (key, value) = line.trim().split_once(':').expect(line);
        if value.trim().is_empty() {
            path.push(key.to_owned());
        } else {
            assert!(!path.is_empty(), "a key outside any section: {line}");
            out.insert(format!("{}.{key}", path.join(".")), value.trim().to_owned());
        }
    }
    out
}

#[test]
fn config_md_defaults_match_the_shipped_config() {
    let rows = documented_rows(&read("docs/CONFIG.md"));
    let defaults = shipped_defaults();
    assert!(defaults.len() >= 20, "{defaults:?}");
    for (key, value) in &defaults {
        let row = rows
            .get(key)
            .unwrap_or_else(|| panic!("{key} (in the shipped config) is not in docs/CONFIG.md"));
        assert!(
            row[2].contains(&format!("`{value}`")),
            "docs/CONFIG.md: the default of {key} is {:?}; the shipped config says {value}",
            row[2]
        );
    }
}

/// The Dockerfile's instructions: comments dropped, continuation lines joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() && current.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn dockerfile_has_the_required_pieces() {
    let text = read("Dockerfile");
    let ins = dockerfile_instructions(&text);
    let all = |op: &str| -> Vec<&str> {
        ins.iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let one = |op: &str| -> &str {
        let v = all(op);
        assert_eq!(v.len(), 1, "Dockerfile: expected one {op}, found {v:?}");
        v[0]
    };

    let froms = all("FROM");
    assert!(froms.len() >= 2, "not multi-stage: {froms:?}");
    assert!(
        froms[0].starts_with("rust:") && froms[0].ends_with(" AS builder"),
        "{froms:?}"
    );
    assert!(
        froms
            .last()
            .unwrap()
            .starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "{froms:?}"
    );
    let runtime_start = ins.iter().rposition(|(o, _)| o == "FROM").unwrap();
    let runtime = &ins[runtime_start..];
    let runtime_all = |op: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };

    let builds: Vec<&str> = all("RUN")
        .into_iter()
        .filter(|r| r.contains("cargo build"))
        .collect();
    assert!(!builds.is_empty());
    for b in &builds {
        assert!(
            b.contains("cargo build --release --locked --bin durable-exporter"),
            "{b}"
        );
    }
    // The volume directory is made in the builder (no shell at run time) and owned by 65532.
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains("chown 65532:65532") && r.contains(CHECKPOINT_DIR)),
        "the builder does not create and chown the checkpoint directory"
    );
    assert!(
        runtime_all("RUN").is_empty(),
        "distroless has no shell to RUN"
    );
    assert!(
        runtime_all("COPY")
            .iter()
            .any(|c| c.contains("--chown=65532:65532") && c.contains("/var/lib")),
        "the checkpoint directory is not copied with --chown=65532:65532"
    );
    assert!(
        runtime_all("COPY")
            .iter()
            .any(|c| c.ends_with(&format!(" {BINARY}")))
    );
    assert!(
        runtime_all("COPY")
            .iter()
            .any(|c| c
                == &"config/durable-exporter.yaml /etc/durable-exporter/durable-exporter.yaml")
    );

    let user = runtime_all("USER");
    let user = user.last().expect("no USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid == "nonroot" || uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user} is root"
    );

    let health = one("HEALTHCHECK");
    let cmd = &health[health.find("CMD ").expect(health) + 4..];
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("HEALTHCHECK CMD is an exec array");
    assert_eq!(cmd[..2], [BINARY, "healthcheck"], "{cmd:?}");
    assert!(cmd.iter().any(|a| a.ends_with(":9464")), "{cmd:?}");

    assert_eq!(one("EXPOSE"), "9464");
    let volume: Vec<String> = serde_json::from_str(one("VOLUME")).expect("VOLUME [\"...\"]");
    assert_eq!(volume, [CHECKPOINT_DIR]);
    assert!(
        all("ENV").contains(&&*format!(
            "DURABLE_EXPORTER__CHECKPOINT__DIR={CHECKPOINT_DIR}"
        )),
        "{:?}",
        all("ENV")
    );
    let entrypoint: Vec<String> = serde_json::from_str(one("ENTRYPOINT")).unwrap();
    assert_eq!(entrypoint, [BINARY]);
    let cmd: Vec<String> = serde_json::from_str(one("CMD")).unwrap();
    assert_eq!(cmd[0], "run");

    let labels = all("LABEL").join(" ");
    for label in ["title", "description", "source", "licenses", "version"] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{label}=")),
            "no OCI label {label}"
        );
    }
    assert!(labels.contains("org.opencontainers.image.licenses=\"Apache-2.0\""));
}

#[test]
fn dockerignore_keeps_the_context_small_but_complete() {
    let ignore = read(".dockerignore");
    let lines: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        lines.first(),
        Some(&"*"),
        "expected an allowlist: {lines:?}"
    );
    let allowed: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for banned in ["target", ".git", "tests"] {
        assert!(
            !allowed.contains(&banned),
            "{banned} is in the build context"
        );
    }
    // Every file the Dockerfile copies from the context is in it.
    for (op, args) in dockerfile_instructions(&read("Dockerfile")) {
        if op != "COPY" || args.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = args
            .split_whitespace()
            .filter(|a| !a.starts_with("--"))
            .collect();
        for src in &parts[..parts.len() - 1] {
            let src = src.trim_end_matches('/');
            assert!(
                allowed
                    .iter()
                    .any(|a| src == *a || src.starts_with(&format!("{a}/"))),
                ".dockerignore leaves {src} out of the context, but the Dockerfile copies it"
            );
            assert!(root().join(src).exists(), "{src} does not exist");
        }
    }
}

/// Field names RegisterTaskDefinition accepts (top level, and in a container definition).
const TASK_FIELDS: &[&str] = &[
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "tags",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
];
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "repositoryCredentials",
    "cpu",
    "memory",
    "memoryReservation",
    "links",
    "portMappings",
    "essential",
    "restartPolicy",
    "entryPoint",
    "command",
    "environment",
    "environmentFiles",
    "mountPoints",
    "volumesFrom",
    "linuxParameters",
    "secrets",
    "dependsOn",
    "startTimeout",
    "stopTimeout",
    "versionConsistency",
    "hostname",
    "user",
    "workingDirectory",
    "disableNetworking",
    "privileged",
    "readonlyRootFilesystem",
    "dnsServers",
    "dnsSearchDomains",
    "extraHosts",
    "dockerSecurityOptions",
    "interactive",
    "pseudoTerminal",
    "dockerLabels",
    "ulimits",
    "logConfiguration",
    "healthCheck",
    "systemControls",
    "resourceRequirements",
    "firelensConfiguration",
    "credentialSpecs",
];

fn check_task_definition(rel: &str) -> Value {
    let path = root().join(rel);
    let task: Value = serde_json::from_str(&read(rel))
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", path.display()));
    let fields = |v: &Value, allowed: &[&str], what: &str| {
        for k in v.as_object().unwrap().keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "{rel}: unknown {what} field {k}"
            );
        }
    };
    fields(&task, TASK_FIELDS, "task definition");
    assert_eq!(task["networkMode"], "awsvpc", "{rel}");
    assert!(
        task["family"].as_str().is_some_and(|f| !f.is_empty()),
        "{rel}"
    );
    assert!(
        task["taskRoleArn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:iam::")),
        "{rel}"
    );

    let containers = task["containerDefinitions"].as_array().expect(rel);
    let names: BTreeSet<&str> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        containers.len(),
        "{rel}: duplicate container names"
    );
    let volumes: BTreeMap<&str, &Value> = task["volumes"]
        .as_array()
        .expect(rel)
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    for c in containers {
        fields(c, CONTAINER_FIELDS, "container definition");
        for d in c["dependsOn"].as_array().into_iter().flatten() {
            assert!(
                names.contains(d["containerName"].as_str().unwrap()),
                "{rel}: {d}"
            );
        }
        if let Some(cmd) = c["healthCheck"]["command"].as_array() {
            assert!(
                matches!(cmd[0].as_str(), Some("CMD" | "CMD-SHELL")),
                "{rel}: {cmd:?}"
            );
        }
    }

    let exporter = containers
        .iter()
        .find(|c| c["name"] == "durable-exporter")
        .unwrap_or_else(|| panic!("{rel}: no durable-exporter container"));
    assert_eq!(exporter["readonlyRootFilesystem"], true, "{rel}");
    let user = exporter["user"].as_str().expect("user");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "{rel}: user {user}"
    );

    let hc = &exporter["healthCheck"];
    let cmd: Vec<&str> = hc["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cmd[..3], ["CMD", BINARY, "healthcheck"], "{rel}");
    for f in ["interval", "timeout", "retries", "startPeriod"] {
        assert!(hc[f].is_u64(), "{rel}: healthCheck.{f}");
    }

    let mount = exporter["mountPoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["containerPath"] == CHECKPOINT_DIR)
        .unwrap_or_else(|| panic!("{rel}: no mountPoint at {CHECKPOINT_DIR}"));
    assert_ne!(mount["readOnly"], true, "{rel}");
    let volume = volumes[mount["sourceVolume"].as_str().unwrap()];
    let efs = &volume["efsVolumeConfiguration"];
    assert!(
        efs["fileSystemId"]
            .as_str()
            .is_some_and(|s| s.starts_with("fs-")),
        "{rel}"
    );
    assert_eq!(efs["transitEncryption"], "ENABLED", "{rel}");
    assert!(
        efs["authorizationConfig"]["accessPointId"].is_string(),
        "{rel}"
    );

    // Every DURABLE_EXPORTER__ variable sets a real key.
    let (_, keys) = config_keys();
    let vars: BTreeSet<String> = keys
        .iter()
        .filter(|k| !k.contains("[]"))
        .map(|k| env_var(k))
        .collect();
    for e in exporter["environment"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(e["value"].is_string(), "{rel}: {name}");
        if name.starts_with(ENV_PREFIX) {
            assert!(vars.contains(name), "{rel}: {name} sets no config key");
        }
    }
    let env = |name: &str| {
        exporter["environment"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        env("DURABLE_EXPORTER__OTLP__ENDPOINT").as_deref(),
        Some("http://localhost:4317"),
        "{rel}"
    );
    // A collector in the same task listens there.
    assert!(
        containers.iter().any(|c| c["portMappings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["containerPort"] == 4317)),
        "{rel}: no container listens on 4317"
    );
    assert_eq!(
        env("DURABLE_EXPORTER__CHECKPOINT__DIR").as_deref(),
        Some(CHECKPOINT_DIR),
        "{rel}"
    );
    task
}

#[test]
fn ecs_sidecar_task_definition() {
    let task = check_task_definition("deploy/ecs/sidecar-task-definition.json");
    let names: Vec<&str> = task["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.len() >= 3, "app, exporter and collector: {names:?}");
}

#[test]
fn ecs_service_task_definition() {
    let task = check_task_definition("deploy/ecs/service-task-definition.json");
    let exporter = task["containerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "durable-exporter")
        .unwrap();
    assert!(
        exporter["environment"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "DURABLE_EXPORTER__TRACK__FUNCTIONS"
                && e["value"].as_str().is_some_and(|v| !v.is_empty())),
        "the service discovers executions by function"
    );
    assert_eq!(exporter["essential"], true);
}
