//! The Prometheus text exposition as the tests read it (classic text or OpenMetrics): samples
//! with their labels, `# TYPE` lines, histograms, and series keys (`name{a="x",b="y"}`, labels
//! sorted) to compare two expositions by.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use durable_exporter::history::Event;

use super::daemon::BIN;

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One text exposition: its samples and its `# TYPE` lines.
#[derive(Debug)]
pub struct Exposition {
    pub text: String,
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

/// A histogram series: cumulative buckets by upper bound (+Inf last), sum and count.
#[derive(Debug)]
pub struct Hist {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Hist {
    /// The cumulative count of the bucket whose upper bound is `le`.
    pub fn le(&self, le: f64) -> f64 {
        self.buckets
            .iter()
            .find(|(b, _)| *b == le)
            .unwrap_or_else(|| panic!("no bucket le={le} in {:?}", self.buckets))
            .1
    }
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
pub fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// `name{a="x",b="y"}` at the start of `s` (label values may hold escaped `\\`, `\"`, `\n`):
/// (name, labels, the rest of `s`).
fn parse_series_prefix(s: &str) -> Result<(String, BTreeMap<String, String>, &str), String> {
    let end = s.find(['{', ' ']).unwrap_or(s.len());
    let name = s[..end].to_owned();
    if name.is_empty() {
        return Err(format!("no metric name in {s:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &s[end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
            let Some((i, c)) = chars.next() else {
                return Err(format!("unterminated labels in {s:?}"));
            };
            if c == '}' {
                rest = &body[i + 1..];
                break;
            }
            let mut key = String::from(c);
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} without a quoted value in {s:?}"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("dangling escape in {s:?}")),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated label value in {s:?}")),
                }
            }
            if labels.insert(key.clone(), value).is_some() {
                return Err(format!("label {key} twice in {s:?}"));
            }
        }
    }
    Ok((name, labels, rest))
}

/// A series key, `name{a="x",b="y"}`, as (name, labels).
pub fn split_series(series: &str) -> (String, BTreeMap<String, String>) {
    let (name, labels, _) = parse_series_prefix(series).unwrap_or_else(|e| panic!("{e}"));
    (name, labels)
}

/// The key of a series: `name{a="x",b="y"}` with its labels sorted by name, values escaped as
/// in the exposition.
pub fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut key = format!("{name}{{");
    for (i, (k, v)) in labels.iter().enumerate() {
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(key, "{}{k}=\"{v}\"", if i == 0 { "" } else { "," });
    }
    key.push('}');
    key
}

/// `name{a="x",b="y"} value [timestamp] [# exemplar]`.
pub fn try_parse_sample(line: &str) -> Result<Sample, String> {
    let (name, labels, rest) = parse_series_prefix(line)?;
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let value = parse_value(value).map_err(|e| format!("{e} in {line:?}"))?;
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// Parses an exposition; panics on a line that is not a comment or a sample.
pub fn parse(text: &str) -> Exposition {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else {
            samples.push(try_parse_sample(line).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    Exposition {
        text: text.to_owned(),
        samples,
        types,
    }
}

/// The value of one series (`name{labels}`, any label order) in an exposition; None when it is
/// absent or the text does not parse there.
pub fn value_of(text: &str, series: &str) -> Option<f64> {
    let (name, labels) = split_series(series);
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name.as_str()))
        .filter_map(|l| try_parse_sample(l).ok())
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

fn matches(s: &Sample, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
}

impl Exposition {
    /// The samples of `name` whose labels include `want`.
    pub fn series(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && matches(s, want))
            .collect()
    }

    /// The one sample of `name` with labels including `want`.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let found = self.series(name, want);
        assert_eq!(
            found.len(),
            1,
            "expected one {name} with {want:?}, found {found:#?}\n{}",
            self.text
        );
        found[0].value
    }

    /// What `sum(name{want})` gives: 0 when no series matches.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.series(name, want)
            .iter()
            .fold(0.0, |total, s| total + s.value)
    }

    /// The one histogram series of `family` with labels including `want`.
    pub fn hist(&self, family: &str, want: &[(&str, &str)]) -> Hist {
        let mut buckets: Vec<(f64, f64)> = self
            .series(&format!("{family}_bucket"), want)
            .iter()
            .map(|s| {
                let le = s.labels.get("le").expect("a bucket without le");
                (
                    parse_value(le).unwrap_or_else(|e| panic!("{e} in le")),
                    s.value,
                )
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let les: BTreeSet<String> = buckets.iter().map(|(b, _)| b.to_string()).collect();
        assert_eq!(
            les.len(),
            buckets.len(),
            "{family} with {want:?} matches more than one series\n{}",
            self.text
        );
        Hist {
            buckets,
            sum: self.value(&format!("{family}_sum"), want),
            count: self.value(&format!("{family}_count"), want),
        }
    }

    /// Families by their `# TYPE` line.
    pub fn families(&self) -> BTreeSet<(String, String)> {
        self.types
            .iter()
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// The family a sample belongs to (its name without a histogram suffix).
    pub fn family_of<'a>(&self, s: &'a Sample) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = s.name.strip_suffix(suffix)
                && self.types.get(base).map(String::as_str) == Some("histogram")
            {
                return base;
            }
        }
        &s.name
    }

    /// Every sample by its [`series_key`].
    pub fn by_series(&self) -> BTreeMap<String, f64> {
        self.samples
            .iter()
            .map(|s| (series_key(&s.name, &s.labels), s.value))
            .collect()
    }

    /// The metric names that have samples.
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }
}

/// `durable-exporter convert --format prometheus --arn ARN HISTORY`: the exposition.
pub fn convert_text(arn: &str, history: &Path) -> String {
    let out = Command::new(BIN)
        .args(["convert", "--format", "prometheus", "--arn", arn])
        .arg(history)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "convert --format prometheus {}: {}",
        history.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// [`convert_text`] of a history given as events.
pub fn convert_events(arn: &str, events: &[Event]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    std::fs::write(
        &path,
        durable_exporter::history::json::to_wire_json(events, None),
    )
    .unwrap();
    convert_text(arn, &path)
}
