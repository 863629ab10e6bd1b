//! A trace as an indented timeline for a terminal: one line per span with its status, its start
//! offset from the trace's first span and its duration, children under parents in start order,
//! the way a trace viewer lists them. Nesting deeper than [`MAX_DRAWN_LEVELS`] shows the count
//! of the levels left out (`[+N]`) instead of drawing them, and the walk is iterative: ParentId
//! chains of any depth neither overflow the stack nor make lines grow with the depth.

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

    let rows = walk(spans, &children, &roots);
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

/// Guide levels drawn in full; a deeper line shows the first ones and how many it leaves out,
/// so a line stays short however deep the nesting (indenting every level would make the output
/// grow with the square of the depth).
pub const MAX_DRAWN_LEVELS: usize = 32;

/// One span waiting to be drawn: its index, the guides of its ancestors (at most
/// [`MAX_DRAWN_LEVELS`]), how many guide levels it has in all, and whether it is the last child.
struct Pending {
    i: usize,
    prefix: String,
    levels: usize,
    last: bool,
    root: bool,
}

/// The rows (label, span index) in depth-first order, children in the order given. Iterative:
/// the nesting depth comes from the input (ParentId chains) and must not reach the call stack.
/// A span already drawn is not drawn again, and spans no root leads to (a parent cycle) are
/// drawn as roots of their own, so every span gets its line.
fn walk(spans: &[Span], children: &[Vec<usize>], roots: &[usize]) -> Vec<(String, usize)> {
    let mut rows = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    let mut stack: Vec<Pending> = Vec::new();
    for r in roots.iter().copied().chain(0..spans.len()) {
        if visited[r] {
            continue;
        }
        stack.push(Pending {
            i: r,
            prefix: String::new(),
            levels: 0,
            last: true,
            root: true,
        });
        while let Some(p) = stack.pop() {
            if std::mem::replace(&mut visited[p.i], true) {
                continue;
            }
            let branch = if p.root {
                ""
            } else if p.last {
                "└─ "
            } else {
                "├─ "
            };
            let elided = p.levels.saturating_sub(MAX_DRAWN_LEVELS);
            let label = if elided > 0 {
                format!(
                    "{}[+{elided}] {branch}{}",
                    p.prefix,
                    display_name(&spans[p.i])
                )
            } else {
                format!("{}{branch}{}", p.prefix, display_name(&spans[p.i]))
            };
            rows.push((label, p.i));
            // A root's children hang from the left edge; others add this span's guide.
            let (child_prefix, child_levels) = if p.root {
                (p.prefix, p.levels)
            } else if p.levels >= MAX_DRAWN_LEVELS {
                (p.prefix, p.levels + 1)
            } else {
                let guide = if p.last { "   " } else { "│  " };
                (p.prefix + guide, p.levels + 1)
            };
            let kids = &children[p.i];
            for (n, &c) in kids.iter().enumerate().rev() {
                stack.push(Pending {
                    i: c,
                    prefix: child_prefix.clone(),
                    levels: child_levels,
                    last: n + 1 == kids.len(),
                    root: false,
                });
            }
        }
    }
    rows
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
    if let Some(t) = str_attr(s, "durable.operation.type")
        && !s.name.contains(" attempt ")
        && !s.name.contains(" back-off ")
    {
        match str_attr(s, "durable.operation.subtype") {
            Some(st) => parts.push(format!("{t}/{st}")),
            None => parts.push(t.to_owned()),
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
    if s.status == StatusCode::Error
        && let Some(m) = &s.status_message
    {
        parts.push(format!("error: {m}"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use crate::trace::ids::{SpanId, TraceId};

    fn span(id: u64, parent: Option<u64>, name: &str) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId(id.to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId(p.to_be_bytes())),
            parent_is_remote: false,
            name: super::super::Text::Owned(name.to_owned()),
            start: Timestamp(1000 + id as i64),
            end: Timestamp(2000 + id as i64),
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: StatusCode::Unset,
            status_message: None,
        }
    }

    /// The label column of each line (the status of these spans is `-`).
    fn labels(out: &str) -> Vec<&str> {
        out.lines()
            .map(|l| l.split("  -").next().unwrap().trim_end())
            .collect()
    }

    #[test]
    fn children_hang_under_their_parents() {
        let spans = vec![
            span(1, None, "root"),
            span(2, Some(1), "a"),
            span(3, Some(2), "a1"),
            span(4, Some(2), "a2"),
            span(5, Some(4), "a2x"),
            span(6, Some(1), "b"),
        ];
        assert_eq!(
            labels(&render(&spans)),
            [
                "root",
                "├─ a",
                "│  ├─ a1",
                "│  └─ a2",
                "│     └─ a2x",
                "└─ b"
            ]
        );
    }

    #[test]
    fn a_chain_deeper_than_the_stack_renders_every_span_once() {
        // Deep enough to overflow a recursive walk on a 2 MiB test thread.
        let depth = 200_000;
        let spans: Vec<Span> = (1..=depth)
            .map(|i| span(i, (i > 1).then(|| i - 1), &format!("op-{i}")))
            .collect();
        let out = render(&spans);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), depth as usize);
        assert!(lines[0].starts_with("op-1 "), "{}", lines[0]);
        // Depth shows in full up to MAX_DRAWN_LEVELS guides, then as a count.
        let last = lines[lines.len() - 1];
        let elided = depth as usize - 2 - MAX_DRAWN_LEVELS;
        let expected = format!(
            "{}[+{elided}] └─ op-{depth} ",
            "   ".repeat(MAX_DRAWN_LEVELS)
        );
        assert!(last.starts_with(&expected), "{last}");
        // Lines stay short: no line is padded to the depth.
        assert!(
            lines.iter().all(|l| l.chars().count() < 200),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn spans_in_a_parent_cycle_still_get_their_lines() {
        let spans = vec![
            span(1, None, "root"),
            span(2, Some(3), "a"),
            span(3, Some(2), "b"),
        ];
        let out = render(&spans);
        assert_eq!(labels(&out), ["root", "a", "└─ b"], "{out}");
    }
}
