//! `durable-exporter check-config`: the real binary, with an environment of our choosing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::daemon::BIN;

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

// ---------------------------------------------------------------------------------------------
// Hardening: the run-time API's exposure, bounded numbers, bounded YAML, web config files.

#[test]
fn a_network_facing_api_without_a_token_is_refused_naming_both_keys() {
    let (_dir, path) = write_config("api:\n  listen: 0.0.0.0:9465\n");
    let err = assert_rejected(&check_config(&path, &[]));
    assert!(
        err.contains("api.listen") && err.contains("api.token_file"),
        "{err:?}"
    );
    assert!(err.contains(&path.display().to_string()), "{err:?}");

    // The same listener with a token is fine.
    let (dir, path) = write_config("");
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(
        &path,
        format!(
            "api:\n  listen: 0.0.0.0:9465\n  token_file: \"{}\"\n",
            token.display()
        ),
    )
    .unwrap();
    let o = check_config(&path, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).contains("api listen: 0.0.0.0:9465 (bearer token)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn numbers_out_of_bounds_are_refused_with_the_bound() {
    for (text, key, bound) in [
        (
            "aws:\n  max_requests_per_second: 1e-300\n",
            "aws.max_requests_per_second",
            "must be at least 0.01 (one request every 100 s); got 1e-300",
        ),
        (
            "aws:\n  max_requests_per_second: 1e300\n",
            "aws.max_requests_per_second",
            "must be at most 10000; got 1e300",
        ),
        (
            "aws:\n  max_concurrency: 99999999999999999999\n",
            "aws.max_concurrency",
            "must be at most 1024; got 100000000000000000000",
        ),
    ] {
        let (_dir, path) = write_config(text);
        let err = assert_rejected(&check_config(&path, &[]));
        assert!(
            err.starts_with(&format!("durable-exporter: {}: {key}: ", path.display())),
            "{text}: {err:?}"
        );
        assert!(err.contains(bound), "{text}: {err:?}");
        // The value as a person wrote it, not 300 digits.
        assert!(err.len() < 200, "{text}: {err:?}");
    }
}

#[test]
fn a_duration_out_of_bounds_from_the_environment_names_the_variable_not_the_file() {
    let (_dir, path) = write_config("poll:\n  max_interval: 10m\n");
    let err = assert_rejected(&check_config(
        &path,
        &[("DURABLE_EXPORTER__POLL__INTERVAL", "99999999999d")],
    ));
    assert!(err.contains("DURABLE_EXPORTER__POLL__INTERVAL"), "{err:?}");
    assert!(err.contains("poll.interval"), "{err:?}");
    assert!(err.contains("must be at most 1h"), "{err:?}");
    assert!(
        !err.contains(&path.display().to_string()),
        "the file did not set it: {err:?}"
    );
}

#[test]
fn an_alias_bomb_is_refused_in_moments() {
    // Nine levels of nine: 9^9 (387 million) scalars once expanded.
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let (_dir, path) = write_config(&text);
    let started = std::time::Instant::now();
    let o = check_config(&path, &[]);
    let took = started.elapsed();
    let err = assert_rejected(&o);
    assert!(
        err.starts_with(&format!(
            "durable-exporter: {}: not a valid config file",
            path.display()
        )),
        "{err:?}"
    );
    // Expanded, it would take minutes and gigabytes; refused, a process start.
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_file_of_2_mib_is_refused_unread() {
    let text = format!("# {}\npoll:\n  interval: 5s\n", "x".repeat(2 << 20));
    let (_dir, path) = write_config(&text);
    let err = assert_rejected(&check_config(&path, &[]));
    assert!(
        err.starts_with(&format!(
            "durable-exporter: {}: larger than",
            path.display()
        )),
        "{err:?}"
    );
}

/// A self-signed certificate for localhost and its key (PEM).
fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// A config whose `http.web_config_file` is `web` (written next to it, with `cert.pem`,
/// `key.pem` and `other-key.pem`: a key of another certificate).
fn with_web_config(web: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (dir, path) = write_config("");
    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    for (name, text) in [
        ("cert.pem", &cert),
        ("key.pem", &key),
        ("other-key.pem", &other_key),
        ("ca.pem", &cert),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, web).unwrap();
    std::fs::write(
        &path,
        format!("http:\n  web_config_file: \"{}\"\n", web_path.display()),
    )
    .unwrap();
    (dir, path, web_path)
}

#[test]
fn a_usable_web_config_is_valid() {
    let (_dir, path, _) = with_web_config(
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
    );
    let o = check_config(&path, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).contains("http listen: 0.0.0.0:9464 (web config)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_web_config_that_cannot_be_honoured_is_refused_naming_its_file_and_key() {
    for (web, key, what) in [
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_user:\n  prom: x\n",
            "basic_auth_user",
            "unknown key",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequestClientCert\n  client_ca_file: ca.pem\n",
            "tls_server_config.client_auth_type",
            "RequestClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: other-key.pem\n",
            "tls_server_config.key_file",
            "does not match",
        ),
    ] {
        let (_dir, path, web_path) = with_web_config(web);
        let err = assert_rejected(&check_config(&path, &[]));
        assert!(err.contains("http.web_config_file"), "{web}: {err:?}");
        assert!(
            err.contains(&format!("{}: {key}: ", web_path.display())),
            "{web}: {err:?}"
        );
        assert!(err.contains(what), "{web}: {err:?}");
    }
}
