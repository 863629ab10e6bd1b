//! A trace as an indented timeline for a terminal: one line per span with its status, its start
//! offset from the trace's first span and its duration, children under parents in start order,
//! the way a trace viewer lists them.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{Span, StatusCode, Value};
use crate::time::human_duration;

/// Renders the spans; spans whose parent is not among them are roots.
pub fn render(spans: &[Span]) -> String {
    if spans.is_empty() {
        return "(no finished spans yet)\n".to_owned();
    }
    let t0 = spans.iter().map(|s| s.start).min().unwrap_or_default();
    let index: HashMap<_, _> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_span_id.and_then(|p| index.get(&p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let order = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start, i));
    order(&mut roots);
    children.iter_mut().for_each(order);

    let mut rows = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    for (n, &r) in roots.iter().enumerate() {
        walk(
            spans,
            &children,
            r,
            String::new(),
            n + 1 == roots.len(),
            true,
            &mut rows,
            &mut visited,
        );
    }
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, i) in rows {
        let s = &spans[i];
        let pad = width - label.chars().count();
        let _ = write!(
            out,
            "{label}{:pad$}  {:<10} {:>9} {:>9}",
            "",
            status_label(s),
            format!("+{}", human_duration(s.start.millis() - t0.millis())),
            human_duration(s.end.millis() - s.start.millis()),
        );
        let note = note(s);
        if !note.is_empty() {
            let _ = write!(out, "  {note}");
        }
        out.push('\n');
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn walk(
    spans: &[Span],
    children: &[Vec<usize>],
    i: usize,
    prefix: String,
    last: bool,
    root: bool,
    rows: &mut Vec<(String, usize)>,
    visited: &mut [bool],
) {
    if std::mem::replace(&mut visited[i], true) {
        return;
    }
    let branch = if root {
        ""
    } else if last {
        "└─ "
    } else {
        "├─ "
    };
    rows.push((format!("{prefix}{branch}{}", display_name(&spans[i])), i));
    let child_prefix = if root {
        prefix
    } else if last {
        format!("{prefix}   ")
    } else {
        format!("{prefix}│  ")
    };
    let kids = &children[i];
    for (n, &c) in kids.iter().enumerate() {
        walk(
            spans,
            children,
            c,
            child_prefix.clone(),
            n + 1 == kids.len(),
            false,
            rows,
            visited,
        );
    }
}

fn str_attr<'a>(s: &'a Span, key: &str) -> Option<&'a str> {
    match s.attribute(key) {
        Some(Value::Str(v)) => Some(v),
        _ => None,
    }
}

fn display_name(s: &Span) -> String {
    match (&*s.name, s.attribute("durable.invocation.index")) {
        ("Invocation", Some(Value::Int(i))) => format!("Invocation #{i}"),
        _ => s.name.to_string(),
    }
}

fn status_label(s: &Span) -> String {
    for key in [
        "durable.execution.status",
        "durable.operation.status",
        "durable.invocation.status",
        "durable.attempt.outcome",
    ] {
        if let Some(v) = str_attr(s, key) {
            return v.to_owned();
        }
    }
    match s.status {
        StatusCode::Unset => "-",
        StatusCode::Ok => "OK",
        StatusCode::Error => "ERROR",
    }
    .to_owned()
}

fn note(s: &Span) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(t) = str_attr(s, "durable.operation.type") {
        if !s.name.contains(" attempt ") && !s.name.contains(" back-off ") {
            match str_attr(s, "durable.operation.subtype") {
                Some(st) => parts.push(format!("{t}/{st}")),
                None => parts.push(t.to_owned()),
            }
        }
    }
    if let Some(w) = str_attr(s, "durable.suspension.waiting_for") {
        parts.push(format!("waiting for {w}"));
    }
    if let Some(Value::Double(l)) = s.attribute("durable.wait.lateness_seconds") {
        parts.push(format!("resumed {l:.3}s after its scheduled end"));
    }
    if let Some(Value::Int(d)) = s.attribute("durable.backoff.scheduled_seconds") {
        parts.push(format!("scheduled {d}s"));
    }
    if let Some(f) = str_attr(s, "durable.chained_invoke.function_name") {
        parts.push(format!("-> {f}"));
    }
    if let Some(Value::Bool(true)) = s.attribute("durable.operation.unfinished") {
        parts.push("unfinished when the execution ended".to_owned());
    }
    if s.status == StatusCode::Error {
        if let Some(m) = &s.status_message {
            parts.push(format!("error: {m}"));
        }
    }
    parts.join("; ")
}
