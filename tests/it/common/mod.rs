//! Test support shared by the integration tests.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_api;
pub mod otlp;
pub mod prometheus;

use std::path::PathBuf;

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
