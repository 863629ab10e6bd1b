//! The OpenMetrics 1.0 text exposition of a `prometheus` registry's families, with exemplars on
//! histogram buckets (the `prometheus` crate writes only the classic format, without exemplars).

use std::collections::HashMap;
use std::fmt::Write as _;

use prometheus::proto::{MetricFamily, MetricType};

use super::Exemplar;

/// `family{a="x",b="y"}` with label pairs as given (callers sort them by name).
pub fn key<'a>(family: &str, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut k = String::from(family);
    k.push('{');
    for (i, (n, v)) in pairs.enumerate() {
        if i > 0 {
            k.push(',');
        }
        let _ = write!(k, "{n}=\"{}\"", escape(v));
    }
    k.push('}');
    k
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn labels(pairs: &[(String, String)], extra: Option<(&str, String)>) -> String {
    let mut s = String::new();
    let mut all: Vec<(&str, String)> = pairs.iter().map(|(n, v)| (n.as_str(), escape(v))).collect();
    if let Some((n, v)) = extra {
        all.push((n, v));
    }
    if all.is_empty() {
        return s;
    }
    s.push('{');
    for (i, (n, v)) in all.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{n}=\"{v}\"");
    }
    s.push('}');
    s
}

/// Writes the families; `exemplars` maps a histogram series key (see [`key`]) to the latest
/// exemplar of each bucket (the last slot is +Inf).
pub fn encode_openmetrics(
    families: &[MetricFamily],
    exemplars: &HashMap<String, Vec<Option<Exemplar>>>,
) -> String {
    let mut out = String::new();
    for f in families {
        let full = f.name();
        let (kind, name) = match f.get_field_type() {
            MetricType::COUNTER => ("counter", full.strip_suffix("_total").unwrap_or(full)),
            MetricType::GAUGE => ("gauge", full),
            MetricType::HISTOGRAM => ("histogram", full),
            MetricType::SUMMARY => ("summary", full),
            MetricType::UNTYPED => ("unknown", full),
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        if name.ends_with("_seconds") {
            let _ = writeln!(out, "# UNIT {name} seconds");
        }
        let help = f
            .help()
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('"', "\\\"");
        let _ = writeln!(out, "# HELP {name} {help}");
        for m in f.get_metric() {
            let mut pairs: Vec<(String, String)> = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect();
            pairs.sort();
            match f.get_field_type() {
                MetricType::COUNTER => {
                    let _ = writeln!(
                        out,
                        "{name}_total{} {}",
                        labels(&pairs, None),
                        float(m.get_counter().get_value())
                    );
                }
                MetricType::GAUGE => {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        labels(&pairs, None),
                        float(m.get_gauge().get_value())
                    );
                }
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let series = key(name, pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                    let ex = exemplars.get(&series);
                    let buckets = h.get_bucket();
                    for (i, b) in buckets.iter().enumerate() {
                        let _ = write!(
                            out,
                            "{name}_bucket{} {}",
                            labels(&pairs, Some(("le", float(b.upper_bound())))),
                            b.cumulative_count()
                        );
                        write_exemplar(
                            &mut out,
                            ex.and_then(|e| e.get(i)).and_then(Option::as_ref),
                        );
                        out.push('\n');
                    }
                    let _ = write!(
                        out,
                        "{name}_bucket{} {}",
                        labels(&pairs, Some(("le", "+Inf".into()))),
                        h.get_sample_count()
                    );
                    write_exemplar(
                        &mut out,
                        ex.and_then(|e| e.get(buckets.len()))
                            .and_then(Option::as_ref),
                    );
                    out.push('\n');
                    let _ = writeln!(
                        out,
                        "{name}_sum{} {}",
                        labels(&pairs, None),
                        float(h.get_sample_sum())
                    );
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        labels(&pairs, None),
                        h.get_sample_count()
                    );
                }
                MetricType::SUMMARY | MetricType::UNTYPED => {}
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn write_exemplar(out: &mut String, e: Option<&Exemplar>) {
    if let Some(e) = e {
        let _ = write!(
            out,
            " # {{trace_id=\"{}\"}} {} {:.3}",
            escape(&e.trace_id),
            float(e.value),
            e.timestamp
        );
    }
}
