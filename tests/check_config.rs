//! `durable-exporter check-config`: the real binary, with an environment of our choosing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_durable-exporter");

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `check-config --config path` with only `vars` in its environment, so the developer's
/// own DURABLE_EXPORTER__ and OTEL_* variables cannot leak in.
fn check_config(path: &Path, vars: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .env_clear()
        .envs(vars.iter().copied())
        .arg("check-config")
        .arg("--config")
        .arg(path)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A config file in a temporary directory (kept alive by the returned guard).
fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Exit 2 and exactly one line on stderr, which is returned.
#[track_caller]
fn assert_rejected(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("durable-exporter: "), "{err:?}");
    err
}

#[test]
fn the_shipped_config_is_valid() {
    let path = manifest_path("config/durable-exporter.yaml");
    let o = check_config(&path, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().next().unwrap(),
        format!("durable-exporter: {} is valid", path.display())
    );
    for fragment in [
        "tracked executions: 0",
        "functions: 0",
        "otlp: http://localhost:4317 (grpc)",
        "checkpoint dir: /var/lib/durable-exporter",
        "http listen: 0.0.0.0:9464",
    ] {
        assert!(out.contains(fragment), "{out:?} lacks {fragment:?}");
    }
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn the_examples_are_valid_and_the_environment_applies() {
    let o = check_config(&manifest_path("config/examples/sidecar.yaml"), &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).contains("tracked executions: 3"),
        "{}",
        stdout(&o)
    );

    let o = check_config(
        &manifest_path("config/examples/service.yaml"),
        &[("DURABLE_EXPORTER__OTLP__ENABLED", "false")],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("functions: 2"), "{out}");
    assert!(out.contains("otlp: disabled"), "{out}");
    assert!(
        out.contains("checkpoint dir: /srv/durable-exporter/checkpoints"),
        "{out}"
    );

    // The shipped config leaves the endpoint to OTEL_EXPORTER_OTLP_ENDPOINT.
    let o = check_config(
        &manifest_path("config/durable-exporter.yaml"),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).contains("otlp: http://collector:4318/v1/traces (http/protobuf)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_unknown_key_is_rejected_naming_it_and_the_file() {
    let (_dir, path) = write_config("poll:\n  intervall: 10s\n");
    let err = assert_rejected(&check_config(&path, &[]));
    let expected = format!(
        "durable-exporter: {}: poll.intervall: unknown key \"intervall\" in section poll; did you mean interval?",
        path.display()
    );
    assert!(err.starts_with(&expected), "{err:?}");
}

#[test]
fn a_malformed_arn_is_rejected_naming_its_key() {
    let (_dir, path) = write_config(
        "track:\n  executions:\n    - c9d0ddd5-4e8b-4da5-ba01-445cf9e50869/b5601dd1-2043-4852-8088-c1ff0fa7bf73\n    - \"not an arn\"\n",
    );
    let err = assert_rejected(&check_config(&path, &[]));
    assert!(
        err.starts_with(&format!(
            "durable-exporter: {}: track.executions[1]: ",
            path.display()
        )),
        "{err:?}"
    );
    assert!(err.contains("\"not an arn\""), "{err:?}");
}

#[test]
fn a_bad_duration_is_rejected_naming_its_key() {
    let (_dir, path) = write_config("checkpoint:\n  retention: a week\n");
    let err = assert_rejected(&check_config(&path, &[]));
    assert!(
        err.starts_with(&format!(
            "durable-exporter: {}: checkpoint.retention: invalid duration \"a week\"",
            path.display()
        )),
        "{err:?}"
    );

    // From the environment: the variable is named, not the file.
    let (_dir, path) = write_config("");
    let err = assert_rejected(&check_config(
        &path,
        &[("DURABLE_EXPORTER__POLL__INTERVAL", "soon")],
    ));
    assert!(
        err.starts_with("durable-exporter: poll.interval: invalid duration \"soon\""),
        "{err:?}"
    );
    assert!(err.contains("DURABLE_EXPORTER__POLL__INTERVAL"), "{err:?}");
}

#[test]
fn a_missing_file_is_rejected_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.yaml");
    let err = assert_rejected(&check_config(&path, &[]));
    assert!(
        err.starts_with(&format!(
            "durable-exporter: {}: no such config file",
            path.display()
        )),
        "{err:?}"
    );
}
