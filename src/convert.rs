//! `durable-exporter convert`: one saved history through the core, rendered in a chosen format.

use crate::arn::ExecutionArn;
use crate::history::Event;
use crate::history::json::ParsedHistory;
use crate::pipeline::{MetricsTarget, Pipeline};
use crate::state::{Anomaly, Execution, FoldOptions};
use crate::trace::{Resource, Span, TraceOptions, otlp_json, tree};

/// Output formats of `convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One OTLP/JSON ExportTraceServiceRequest.
    OtlpJson,
    /// `{"Operations": [...]}` like GetDurableExecutionState.
    StateJson,
    /// An indented timeline for a terminal.
    Tree,
}

/// What one history contributes to the metrics, in the Prometheus text format.
pub fn prometheus(events: &[Event], arn: &ExecutionArn, options: &TraceOptions) -> String {
    let metrics = crate::metrics::Metrics::new(crate::metrics::NameLabel::Off);
    let labels = crate::metrics::Fq::of(arn.as_str(), None);
    let mut pipeline = Pipeline::new(arn.as_str(), FoldOptions::default(), options.clone());
    let target = MetricsTarget {
        metrics: &metrics,
        labels: &labels,
    };
    let mut found = crate::pipeline::Found::default();
    for e in events {
        pipeline.apply(e, Some(target), &mut found);
        // Spans are not wanted here; drop them now and then (taking them per event would drop
        // the id hashes with them).
        if pipeline.spans().len() >= 1024 {
            pipeline.take_spans();
        }
        found.clear();
    }
    metrics.encode_text()
}

/// Everything one history turns into.
#[derive(Debug)]
pub struct Conversion {
    pub execution: Execution,
    pub resource: Resource,
    pub spans: Vec<Span>,
    pub anomalies: Vec<Anomaly>,
    pub include_payloads: bool,
}

/// What [`convert`] reads: events in EventId order and the anomalies reading them found (a
/// [`ParsedHistory`]'s conflicting duplicates). Plain events convert with none.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub events: &'a [Event],
    pub anomalies: &'a [Anomaly],
}

impl<'a> From<&'a [Event]> for Input<'a> {
    fn from(events: &'a [Event]) -> Self {
        Input {
            events,
            anomalies: &[],
        }
    }
}

impl<'a> From<&'a Vec<Event>> for Input<'a> {
    fn from(events: &'a Vec<Event>) -> Self {
        Input::from(events.as_slice())
    }
}

impl<'a> From<&'a ParsedHistory> for Input<'a> {
    fn from(h: &'a ParsedHistory) -> Self {
        Input {
            events: &h.events,
            anomalies: &h.conflicts,
        }
    }
}

/// Folds the events (in EventId order) and draws the spans. [`Conversion::anomalies`] holds
/// what reading found and what the fold found, in EventId order.
pub fn convert<'a>(
    input: impl Into<Input<'a>>,
    arn: &ExecutionArn,
    service_name: Option<&str>,
    options: TraceOptions,
) -> Conversion {
    let Input {
        events,
        anomalies: read,
    } = input.into();
    let include_payloads = options.include_payloads;
    let mut pipeline = Pipeline::new(
        arn.as_str(),
        FoldOptions {
            keep_finished: true,
        },
        options,
    );
    let found = pipeline.apply_all(events, None);
    let mut anomalies = read.to_vec();
    anomalies.extend(found.anomalies);
    // Stable: what reading found about an event comes before what the fold found.
    anomalies.sort_by_key(|a| a.event_id);
    let spans = pipeline.take_spans();
    Conversion {
        execution: pipeline.into_execution(),
        resource: Resource::for_execution(arn, service_name),
        spans,
        anomalies,
        include_payloads,
    }
}

impl Conversion {
    /// The conversion in the given format, ending with a newline.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::OtlpJson => {
                let mut s = otlp_json::to_string(&self.resource, &self.spans);
                s.push('\n');
                s
            }
            Format::StateJson => {
                let ops = self.execution.operations();
                let resp = crate::state::json::state_response(&ops, self.include_payloads, None);
                let mut s = serde_json::to_string_pretty(&resp)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
                s.push('\n');
                s
            }
            Format::Tree => tree::render(&self.spans),
        }
    }
}
