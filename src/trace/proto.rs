//! Spans as OTLP protobuf: [`encode_request`] writes the wire bytes straight from our spans (what
//! the OTLP client sends); [`to_request`] builds `opentelemetry-proto`'s generated messages, the
//! reference the direct encoding is tested against.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use super::{KeyValue, Resource, SCOPE_NAME, SCOPE_VERSION, Span, StatusCode, Value};

fn any_value(v: &Value) -> pc::AnyValue {
    use pc::any_value::Value as V;
    pc::AnyValue {
        value: Some(match v {
            Value::Str(s) => V::StringValue(s.to_string()),
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
        name: s.name.to_string(),
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

/// Protobuf wire encoding of an `ExportTraceServiceRequest` straight from our spans, without
/// building the generated message types: the same bytes as `to_request(..).encode_to_vec()`
/// (fields in tag order, proto3 defaults left out), far fewer allocations.
pub fn encode_request(resource: &Resource, spans: &[Span]) -> Vec<u8> {
    let span_lens: Vec<usize> = spans.iter().map(span_len).collect();
    let scope_len =
        len_field(1, scope_inner_len()) + span_lens.iter().map(|&l| len_field(2, l)).sum::<usize>();
    let resource_inner = attrs_len(1, &resource.attributes);
    let resource_spans_len = len_field(1, resource_inner) + len_field(2, scope_len);
    let total = len_field(1, resource_spans_len);

    let mut w = Vec::with_capacity(total);
    key(&mut w, 1, LEN);
    varint(&mut w, resource_spans_len as u64);
    key(&mut w, 1, LEN);
    varint(&mut w, resource_inner as u64);
    for a in &resource.attributes {
        key_value(&mut w, 1, a);
    }
    key(&mut w, 2, LEN);
    varint(&mut w, scope_len as u64);
    key(&mut w, 1, LEN);
    varint(&mut w, scope_inner_len() as u64);
    string(&mut w, 1, SCOPE_NAME);
    string(&mut w, 2, SCOPE_VERSION);
    for (s, &l) in spans.iter().zip(&span_lens) {
        key(&mut w, 2, LEN);
        varint(&mut w, l as u64);
        write_span(&mut w, s);
    }
    debug_assert_eq!(w.len(), total);
    w
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key_len(tag: u32) -> usize {
    varint_len(u64::from(tag << 3))
}

/// A length-delimited field holding `inner` bytes.
fn len_field(tag: u32, inner: usize) -> usize {
    key_len(tag) + varint_len(inner as u64) + inner
}

/// A string or bytes field, left out when empty (proto3).
fn opt_bytes_len(tag: u32, len: usize) -> usize {
    if len == 0 { 0 } else { len_field(tag, len) }
}

fn varint(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn key(w: &mut Vec<u8>, tag: u32, wire: u8) {
    varint(w, u64::from(tag << 3 | u32::from(wire)));
}

fn string(w: &mut Vec<u8>, tag: u32, s: &str) {
    bytes(w, tag, s.as_bytes());
}

fn bytes(w: &mut Vec<u8>, tag: u32, b: &[u8]) {
    if !b.is_empty() {
        key(w, tag, LEN);
        varint(w, b.len() as u64);
        w.extend_from_slice(b);
    }
}

fn fixed64(w: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        key(w, tag, I64);
        w.extend_from_slice(&v.to_le_bytes());
    }
}

fn scope_inner_len() -> usize {
    opt_bytes_len(1, SCOPE_NAME.len()) + opt_bytes_len(2, SCOPE_VERSION.len())
}

fn any_value_len(v: &Value) -> usize {
    // A oneof member is written even when it holds its type's default.
    match v {
        Value::Str(s) => len_field(1, s.len()),
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(*i as u64),
        Value::Double(_) => 9,
    }
}

fn key_value_len(a: &KeyValue) -> usize {
    opt_bytes_len(1, a.key.len()) + len_field(2, any_value_len(&a.value))
}

fn attrs_len(tag: u32, attrs: &[KeyValue]) -> usize {
    attrs.iter().map(|a| len_field(tag, key_value_len(a))).sum()
}

fn key_value(w: &mut Vec<u8>, tag: u32, a: &KeyValue) {
    key(w, tag, LEN);
    varint(w, key_value_len(a) as u64);
    string(w, 1, a.key);
    key(w, 2, LEN);
    varint(w, any_value_len(&a.value) as u64);
    match &a.value {
        Value::Str(s) => {
            key(w, 1, LEN);
            varint(w, s.len() as u64);
            w.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => {
            key(w, 2, VARINT);
            w.push(u8::from(*b));
        }
        Value::Int(i) => {
            key(w, 3, VARINT);
            varint(w, *i as u64);
        }
        Value::Double(d) => {
            key(w, 4, I64);
            w.extend_from_slice(&d.to_le_bytes());
        }
    }
}

fn status_code(s: StatusCode) -> u64 {
    match s {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

fn status_len(s: &Span) -> usize {
    let msg = s.status_message.as_deref().map_or(0, str::len);
    let code = status_code(s.status);
    opt_bytes_len(2, msg) + if code == 0 { 0 } else { 2 }
}

fn flags(s: &Span) -> u32 {
    if s.parent_is_remote { 0x300 } else { 0 }
}

fn event_len(e: &super::SpanEvent) -> usize {
    let time = if e.time.unix_nanos() == 0 { 0 } else { 9 };
    time + opt_bytes_len(2, e.name.len()) + attrs_len(3, &e.attributes)
}

fn link_len(l: &super::Link) -> usize {
    len_field(1, 16) + len_field(2, 8) + attrs_len(4, &l.attributes)
}

fn span_len(s: &Span) -> usize {
    len_field(1, 16)
        + len_field(2, 8)
        + s.parent_span_id.map_or(0, |_| len_field(4, 8))
        + if flags(s) == 0 { 0 } else { 2 + 4 }
        + opt_bytes_len(5, s.name.len())
        + 2 // kind INTERNAL
        + if s.start.unix_nanos() == 0 { 0 } else { 9 }
        + if s.end.unix_nanos() == 0 { 0 } else { 9 }
        + attrs_len(9, &s.attributes)
        + s.events.iter().map(|e| len_field(11, event_len(e))).sum::<usize>()
        + s.links.iter().map(|l| len_field(13, link_len(l))).sum::<usize>()
        + len_field(15, status_len(s))
}

fn write_span(w: &mut Vec<u8>, s: &Span) {
    bytes(w, 1, &s.trace_id.0);
    bytes(w, 2, &s.span_id.0);
    if let Some(p) = s.parent_span_id {
        bytes(w, 4, &p.0);
    }
    string(w, 5, &s.name);
    key(w, 6, VARINT);
    varint(w, pt::span::SpanKind::Internal as u64);
    fixed64(w, 7, s.start.unix_nanos());
    fixed64(w, 8, s.end.unix_nanos());
    for a in &s.attributes {
        key_value(w, 9, a);
    }
    for e in &s.events {
        key(w, 11, LEN);
        varint(w, event_len(e) as u64);
        fixed64(w, 1, e.time.unix_nanos());
        string(w, 2, e.name);
        for a in &e.attributes {
            key_value(w, 3, a);
        }
    }
    for l in &s.links {
        key(w, 13, LEN);
        varint(w, link_len(l) as u64);
        bytes(w, 1, &l.trace_id.0);
        bytes(w, 2, &l.span_id.0);
        for a in &l.attributes {
            key_value(w, 4, a);
        }
    }
    key(w, 15, LEN);
    varint(w, status_len(s) as u64);
    if let Some(m) = &s.status_message {
        string(w, 2, m);
    }
    let code = status_code(s.status);
    if code != 0 {
        key(w, 3, VARINT);
        varint(w, code);
    }
    // prost writes fields in tag order: flags (16) last.
    let f = flags(s);
    if f != 0 {
        key(w, 16, I32);
        w.extend_from_slice(&f.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::arn::ExecutionArn;
    use crate::synth::{SynthSpec, history};
    use crate::trace::ids::{SpanId, TraceHeader, TraceId};
    use crate::trace::{Link, SpanEvent, Text, TraceOptions};

    fn same_bytes(resource: &Resource, spans: &[Span]) {
        let ours = encode_request(resource, spans);
        let prost = to_request(resource, spans).encode_to_vec();
        if let Some(i) = ours.iter().zip(&prost).position(|(a, b)| a != b) {
            let lo = i.saturating_sub(16);
            panic!(
                "first difference at byte {i}: ours {:?} prost {:?}",
                &ours[lo..(i + 16).min(ours.len())],
                &prost[lo..(i + 16).min(prost.len())]
            );
        }
        assert_eq!(ours.len(), prost.len());
        assert_eq!(
            ExportTraceServiceRequest::decode(ours.as_slice()).unwrap(),
            to_request(resource, spans)
        );
    }

    #[test]
    fn the_direct_encoding_is_prosts_encoding() {
        let arn = ExecutionArn::parse(
            "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/x/1",
        )
        .unwrap();
        for (seed, include_payloads) in [(1, false), (2, true), (3, true)] {
            let events = history(&SynthSpec {
                operations: 300,
                seed,
                include_payloads,
                ..SynthSpec::default()
            });
            let header = TraceHeader::parse(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            )
            .unwrap();
            let options = TraceOptions {
                include_payloads,
                trace_header: (seed == 3).then_some(header),
                ..TraceOptions::default()
            };
            let c = crate::convert::convert(&events, &arn, None, options);
            assert!(c.spans.len() > 300);
            same_bytes(&c.resource, &c.spans);
        }
        same_bytes(&Resource { attributes: vec![] }, &[]);
    }

    #[test]
    fn edge_values_encode_like_prost() {
        let span = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            parent_is_remote: false,
            name: Text::Static(""),
            start: crate::time::Timestamp(0),
            end: crate::time::Timestamp(1),
            attributes: vec![
                KeyValue {
                    key: "neg",
                    value: Value::Int(-5),
                },
                KeyValue {
                    key: "zero",
                    value: Value::Int(0),
                },
                KeyValue {
                    key: "empty",
                    value: Value::Str(Text::Owned(String::new())),
                },
                KeyValue {
                    key: "f",
                    value: Value::Bool(false),
                },
                KeyValue {
                    key: "d",
                    value: Value::Double(-0.5),
                },
                KeyValue {
                    key: "long",
                    value: Value::Str(Text::Owned("é".repeat(200))),
                },
            ],
            events: vec![SpanEvent {
                name: "e",
                time: crate::time::Timestamp(0),
                attributes: vec![],
            }],
            links: vec![Link {
                trace_id: TraceId([3; 16]),
                span_id: SpanId([4; 8]),
                attributes: vec![],
            }],
            status: StatusCode::Error,
            status_message: Some(String::new()),
        };
        same_bytes(&Resource { attributes: vec![] }, &[span]);
    }
}
