//! The integration tests: one crate (one link of the AWS SDK, one build of `common`), a module
//! per area. Fixtures stay in tests/fixtures, tests/golden and tests/e2e.

mod common;

mod check_config;
mod config_docs;
mod convert_cli;
mod daemon;
mod daemon_metrics;
mod daemon_more;
mod demo;
mod deploy;
mod e2e_emulator;
mod hardening;
mod metrics;
mod otlp_export;
mod otlp_sigv4;
mod prometheus_scrape;
mod prometheus_selftest;
mod properties;
mod scripted_api;
mod sdk_events;
mod sharding;
mod simulator;
mod status_events;
mod ui;
