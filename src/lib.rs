//! durable-exporter: AWS Lambda durable execution histories as OpenTelemetry traces and
//! Prometheus metrics.
//!
//! The core is pure and synchronous: [`history`] (events as our types) → [`state`] (the fold
//! into operations, with transitions) → [`trace`] (spans). [`convert`] drives it for a saved
//! history; [`otlp`] is the shell's OTLP client that sends spans to a collector ([`sigv4`] signs
//! its requests for AWS X-Ray's OTLP endpoint).

pub mod arn;
pub mod aws;
pub mod clock;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod demo;
pub mod history;
pub mod listener;
pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod shard;
pub mod sigv4;
pub mod sim;
pub mod state;
pub mod status_event;
pub mod synth;
pub mod time;
mod tls;
pub mod trace;
