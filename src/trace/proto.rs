//! Spans as OTLP protobuf messages (`opentelemetry-proto`) and as `opentelemetry_sdk` `SpanData`
//! (what opentelemetry-otlp's `SpanExporter` sends).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace as otel;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::{KeyValue, Resource, SCOPE_NAME, SCOPE_VERSION, Span, StatusCode, Value};

fn any_value(v: &Value) -> pc::AnyValue {
    use pc::any_value::Value as V;
    pc::AnyValue {
        value: Some(match v {
            Value::Str(s) => V::StringValue(s.clone()),
            Value::Int(i) => V::IntValue(*i),
            Value::Bool(b) => V::BoolValue(*b),
            Value::Double(d) => V::DoubleValue(*d),
        }),
    }
}

fn key_values(attrs: &[KeyValue]) -> Vec<pc::KeyValue> {
    attrs
        .iter()
        .map(|a| pc::KeyValue {
            key: a.key.to_owned(),
            value: Some(any_value(&a.value)),
            ..Default::default()
        })
        .collect()
}

/// One `ExportTraceServiceRequest` holding every span under one resource and scope.
pub fn to_request(resource: &Resource, spans: &[Span]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: key_values(&resource.attributes),
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(pc::InstrumentationScope {
                    name: SCOPE_NAME.to_owned(),
                    version: SCOPE_VERSION.to_owned(),
                    ..Default::default()
                }),
                spans: spans.iter().map(to_proto_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn to_proto_span(s: &Span) -> pt::Span {
    pt::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: String::new(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: if s.parent_is_remote { 0x300 } else { 0 },
        name: s.name.clone(),
        kind: pt::span::SpanKind::Internal as i32,
        start_time_unix_nano: s.start.unix_nanos(),
        end_time_unix_nano: s.end.unix_nanos(),
        attributes: key_values(&s.attributes),
        dropped_attributes_count: 0,
        events: s
            .events
            .iter()
            .map(|e| pt::span::Event {
                time_unix_nano: e.time.unix_nanos(),
                name: e.name.to_owned(),
                attributes: key_values(&e.attributes),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: 0,
        links: s
            .links
            .iter()
            .map(|l| pt::span::Link {
                trace_id: l.trace_id.0.to_vec(),
                span_id: l.span_id.0.to_vec(),
                trace_state: String::new(),
                attributes: key_values(&l.attributes),
                dropped_attributes_count: 0,
                flags: 0,
            })
            .collect(),
        dropped_links_count: 0,
        status: Some(pt::Status {
            message: s.status_message.clone().unwrap_or_default(),
            code: match s.status {
                StatusCode::Unset => pt::status::StatusCode::Unset,
                StatusCode::Ok => pt::status::StatusCode::Ok,
                StatusCode::Error => pt::status::StatusCode::Error,
            } as i32,
        }),
    }
}

fn system_time(t: crate::time::Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(t.unix_nanos())
}

fn otel_kv(a: &KeyValue) -> opentelemetry::KeyValue {
    let v = match &a.value {
        Value::Str(s) => opentelemetry::Value::from(s.clone()),
        Value::Int(i) => opentelemetry::Value::I64(*i),
        Value::Bool(b) => opentelemetry::Value::Bool(*b),
        Value::Double(d) => opentelemetry::Value::F64(*d),
    };
    opentelemetry::KeyValue::new(a.key, v)
}

/// The OpenTelemetry resource for an exporter.
pub fn to_sdk_resource(resource: &Resource) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder_empty()
        .with_attributes(resource.attributes.iter().map(otel_kv))
        .build()
}

/// The span as the OpenTelemetry SDK's exporters take it.
pub fn to_span_data(s: &Span) -> SpanData {
    let sampled = otel::TraceFlags::SAMPLED;
    let mut events = SpanEvents::default();
    events.events = s
        .events
        .iter()
        .map(|e| {
            otel::Event::new(
                e.name,
                system_time(e.time),
                e.attributes.iter().map(otel_kv).collect(),
                0,
            )
        })
        .collect();
    let mut links = SpanLinks::default();
    links.links = s
        .links
        .iter()
        .map(|l| {
            otel::Link::new(
                otel::SpanContext::new(
                    otel::TraceId::from_bytes(l.trace_id.0),
                    otel::SpanId::from_bytes(l.span_id.0),
                    sampled,
                    true,
                    otel::TraceState::default(),
                ),
                l.attributes.iter().map(otel_kv).collect(),
                0,
            )
        })
        .collect();
    SpanData {
        span_context: otel::SpanContext::new(
            otel::TraceId::from_bytes(s.trace_id.0),
            otel::SpanId::from_bytes(s.span_id.0),
            sampled,
            false,
            otel::TraceState::default(),
        ),
        parent_span_id: s
            .parent_span_id
            .map(|p| otel::SpanId::from_bytes(p.0))
            .unwrap_or(otel::SpanId::INVALID),
        parent_span_is_remote: s.parent_is_remote,
        span_kind: otel::SpanKind::Internal,
        name: Cow::Owned(s.name.clone()),
        start_time: system_time(s.start),
        end_time: system_time(s.end),
        attributes: s.attributes.iter().map(otel_kv).collect(),
        dropped_attributes_count: 0,
        events,
        links,
        status: match s.status {
            StatusCode::Unset => otel::Status::Unset,
            StatusCode::Ok => otel::Status::Ok,
            StatusCode::Error => otel::Status::error(s.status_message.clone().unwrap_or_default()),
        },
        instrumentation_scope: opentelemetry::InstrumentationScope::builder(SCOPE_NAME)
            .with_version(SCOPE_VERSION)
            .build(),
    }
}
