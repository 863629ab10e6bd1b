//! OTLP/JSON: one `ExportTraceServiceRequest` in the protobuf JSON mapping, as the
//! OpenTelemetry Collector's file exporter writes it (hex ids, 64-bit integers as strings, enum
//! values as numbers, lowerCamelCase keys, empty fields left out).

use super::{KeyValue, Resource, SCOPE_NAME, SCOPE_VERSION, Span, StatusCode, Value};

/// Writes the request as one line of JSON.
pub fn to_string(resource: &Resource, spans: &[Span]) -> String {
    let mut w = String::with_capacity(512 + spans.len() * 700);
    w.push_str("{\"resourceSpans\":[{\"resource\":{\"attributes\":");
    attributes(&mut w, &resource.attributes);
    w.push_str("},\"scopeSpans\":[{\"scope\":{\"name\":");
    string(&mut w, SCOPE_NAME);
    w.push_str(",\"version\":");
    string(&mut w, SCOPE_VERSION);
    w.push_str("},\"spans\":[");
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            w.push(',');
        }
        span(&mut w, s);
    }
    w.push_str("]}]}]}");
    w
}

fn span(w: &mut String, s: &Span) {
    w.push_str("{\"traceId\":\"");
    w.push_str(&s.trace_id.to_hex());
    w.push_str("\",\"spanId\":\"");
    w.push_str(&s.span_id.to_hex());
    w.push('"');
    if let Some(p) = s.parent_span_id {
        w.push_str(",\"parentSpanId\":\"");
        w.push_str(&p.to_hex());
        w.push('"');
    }
    if s.parent_is_remote {
        // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
        w.push_str(",\"flags\":768");
    }
    w.push_str(",\"name\":");
    string(w, &s.name);
    // SPAN_KIND_INTERNAL
    w.push_str(",\"kind\":1,\"startTimeUnixNano\":\"");
    w.push_str(&s.start.unix_nanos().to_string());
    w.push_str("\",\"endTimeUnixNano\":\"");
    w.push_str(&s.end.unix_nanos().to_string());
    w.push('"');
    if !s.attributes.is_empty() {
        w.push_str(",\"attributes\":");
        attributes(w, &s.attributes);
    }
    if !s.events.is_empty() {
        w.push_str(",\"events\":[");
        for (i, e) in s.events.iter().enumerate() {
            if i > 0 {
                w.push(',');
            }
            w.push_str("{\"timeUnixNano\":\"");
            w.push_str(&e.time.unix_nanos().to_string());
            w.push_str("\",\"name\":");
            string(w, e.name);
            if !e.attributes.is_empty() {
                w.push_str(",\"attributes\":");
                attributes(w, &e.attributes);
            }
            w.push('}');
        }
        w.push(']');
    }
    if !s.links.is_empty() {
        w.push_str(",\"links\":[");
        for (i, l) in s.links.iter().enumerate() {
            if i > 0 {
                w.push(',');
            }
            w.push_str("{\"traceId\":\"");
            w.push_str(&l.trace_id.to_hex());
            w.push_str("\",\"spanId\":\"");
            w.push_str(&l.span_id.to_hex());
            w.push('"');
            if !l.attributes.is_empty() {
                w.push_str(",\"attributes\":");
                attributes(w, &l.attributes);
            }
            w.push('}');
        }
        w.push(']');
    }
    w.push_str(",\"status\":{");
    match s.status {
        StatusCode::Unset => {}
        StatusCode::Ok => w.push_str("\"code\":1"),
        StatusCode::Error => {
            if let Some(m) = &s.status_message {
                w.push_str("\"message\":");
                string(w, m);
                w.push(',');
            }
            w.push_str("\"code\":2");
        }
    }
    w.push_str("}}");
}

fn attributes(w: &mut String, attrs: &[KeyValue]) {
    w.push('[');
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            w.push(',');
        }
        w.push_str("{\"key\":");
        string(w, a.key);
        w.push_str(",\"value\":{");
        match &a.value {
            Value::Str(s) => {
                w.push_str("\"stringValue\":");
                string(w, s);
            }
            Value::Int(v) => {
                w.push_str("\"intValue\":\"");
                w.push_str(&v.to_string());
                w.push('"');
            }
            Value::Bool(b) => {
                w.push_str("\"boolValue\":");
                w.push_str(if *b { "true" } else { "false" });
            }
            Value::Double(d) => {
                w.push_str("\"doubleValue\":");
                if d.is_finite() {
                    w.push_str(&d.to_string());
                } else {
                    // The protobuf JSON mapping spells non-finite doubles as strings.
                    string(w, &d.to_string().replace("inf", "Infinity"));
                }
            }
        }
        w.push_str("}}");
    }
    w.push(']');
}

fn string(w: &mut String, s: &str) {
    w.push('"');
    for c in s.chars() {
        match c {
            '"' => w.push_str("\\\""),
            '\\' => w.push_str("\\\\"),
            '\n' => w.push_str("\\n"),
            '\r' => w.push_str("\\r"),
            '\t' => w.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                w.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => w.push(c),
        }
    }
    w.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_as_json() {
        let mut w = String::new();
        string(&mut w, "a\"b\\c\nd\u{1}é");
        assert_eq!(w, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&w).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }
}
