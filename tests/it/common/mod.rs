//! Test support shared by the integration tests.

pub mod daemon;
pub mod exposition;
pub mod http;
pub mod moto;
pub mod otlp;
pub mod prometheus;

use std::path::PathBuf;

/// On the CI machine (`.ci/run` installs every tool the tests need and sets
/// DURABLE_EXPORTER_CI=1).
pub fn on_ci() -> bool {
    std::env::var_os("DURABLE_EXPORTER_CI").is_some()
}

/// Something a test needs from the machine (a tool, root, a venv) is missing: on CI that fails
/// the test; elsewhere the caller skips it, after a note saying what to install.
#[track_caller]
pub fn missing(what: &str, install: &str) {
    assert!(
        !on_ci(),
        "{what} is missing on the CI machine ({install}; .ci/run should have)"
    );
    eprintln!("skipped: {what} is missing ({install})");
}

/// A tool the test needs: `$TOOL_BIN` when set (`PROMTOOL_BIN`, `DOCKER_COMPOSE_BIN`), else
/// the tool on PATH. None when it is not there, after [`missing`] (which fails on CI).
#[track_caller]
pub fn require_tool(tool: &str, install: &str) -> Option<PathBuf> {
    let var = format!("{}_BIN", tool.to_ascii_uppercase().replace('-', "_"));
    if let Some(bin) = std::env::var_os(&var) {
        return Some(PathBuf::from(bin));
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(tool))
            .find(|p| is_executable(p))
    });
    if found.is_none() {
        missing(&format!("`{tool}`"), install);
    }
    found
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The histories captured from AWS's emulator (tests/fixtures/emulator).
pub const FIXTURES: [&str; 12] = [
    "callbacks",
    "chained-invoke",
    "child-contexts",
    "execution-fails",
    "parallel-map",
    "retry-then-succeed",
    "step-fails-permanently",
    "steps-basic",
    "stopped",
    "timed-out",
    "unknown-function",
    "waits",
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_dir(name: &str) -> PathBuf {
    root().join("tests/fixtures/emulator").join(name)
}

/// The fixture's history with execution data, as the API sent it.
pub fn history_path(name: &str) -> PathBuf {
    fixture_dir(name).join("history_IncludeExecutionData_true.json")
}

/// The fixture's execution ARN, from its GetDurableExecution response.
pub fn arn_of(name: &str) -> String {
    let get: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture_dir(name).join("get_durable_execution.json")).unwrap(),
    )
    .unwrap();
    get["DurableExecutionArn"].as_str().unwrap().to_owned()
}
