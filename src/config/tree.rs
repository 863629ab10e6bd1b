//! The merged configuration as a tree: the YAML file, then the `DURABLE_EXPORTER__` variables laid
//! over it, deserialized into [`super::Config`] by serde derive. The tree's own deserializer gives
//! every error the wording the loader reports ("expected a whole number, found 10.5") and keeps
//! unknown and missing keys structured, so the loader can name the key and suggest the closest one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// One value of the merged configuration.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// A value from an environment variable: text that becomes a list (comma-separated) or a
    /// map of headers (`name=value` pairs) where the key takes one.
    Env(String),
    Seq(Vec<Node>),
    /// Entries in file order; null values are left out (a key whose value is commented out is
    /// not set).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value as a message shows it.
    fn describe(&self) -> String {
        match self {
            Node::Null => "nothing (null)".to_owned(),
            Node::Bool(b) => b.to_string(),
            Node::Int(n) => n.to_string(),
            Node::Float(x) => x.to_string(),
            Node::Str(s) | Node::Env(s) => quote(s),
            Node::Seq(_) => "a list".to_owned(),
            Node::Map(_) => "a map".to_owned(),
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a dotted path (`otlp.tls.ca_file`), when set.
    pub(super) fn at(&self, path: &str) -> Option<&Node> {
        path.split('.').try_fold(self, |n, k| n.get(k))
    }

    /// Sets the value at `path`, turning whatever is on the way into maps (a variable wins over
    /// the file's value, even one of another shape).
    pub(super) fn set(&mut self, path: &[String], value: Node) {
        let mut node = self;
        for (i, key) in path.iter().enumerate() {
            if !matches!(node, Node::Map(_)) {
                *node = Node::Map(Vec::new());
            }
            let Node::Map(entries) = node else {
                unreachable!("made a map above")
            };
            let pos = match entries.iter().position(|(k, _)| k == key) {
                Some(p) => p,
                None => {
                    entries.push((key.clone(), Node::Null));
                    entries.len() - 1
                }
            };
            if i + 1 == path.len() {
                entries[pos].1 = value;
                return;
            }
            node = &mut entries[pos].1;
        }
    }
}

/// A deserialization failure, before the loader knows the key.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum DeError {
    Message(String),
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Message(m) => f.write_str(m),
            DeError::UnknownField { field, .. } => write!(f, "unknown key {field:?}"),
            DeError::MissingField(field) => write!(f, "missing key {field:?}"),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Message(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::Message(format!("expected {exp}, found {}", describe(&unexp)))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::Message(format!("expected {exp}, found {}", describe(&unexp)))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::UnknownField {
            field: field.to_owned(),
            expected,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::MissingField(field)
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::Message(format!(
            "unknown value {}; expected {}",
            quote(variant),
            expected.join(" or ")
        ))
    }
}

/// A found value as a message shows it.
fn describe(u: &de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match u {
        U::Bool(b) => b.to_string(),
        U::Unsigned(n) => n.to_string(),
        U::Signed(n) => n.to_string(),
        U::Float(x) => x.to_string(),
        U::Char(c) => quote(&c.to_string()),
        U::Str(s) => quote(s),
        U::Unit | U::Option => "nothing (null)".to_owned(),
        U::Seq => "a list".to_owned(),
        U::Map => "a map".to_owned(),
        other => other.to_string(),
    }
}

/// A value quoted for a message, cut when long.
pub(super) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}... ({} characters)", s.chars().count())
    }
}

// ---------------------------------------------------------------------------------------------
// From YAML.

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(Node::Int(i128::try_from(v).unwrap_or(i128::MAX)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let key = match key {
                Node::Str(s) => s,
                Node::Bool(b) => b.to_string(),
                Node::Int(n) => n.to_string(),
                Node::Float(x) => x.to_string(),
                _ => {
                    return Err(de::Error::custom(
                        "a key must be a plain name, not a list or map",
                    ));
                }
            };
            let value = map.next_value::<Node>()?;
            if value != Node::Null {
                entries.push((key, value));
            }
        }
        Ok(Node::Map(entries))
    }
}

// ---------------------------------------------------------------------------------------------
// Into the config types.

/// `k1=v1,k2=v2` with percent-encoded values, as `OTEL_EXPORTER_OTLP_HEADERS` writes headers.
/// Errors never repeat a value: headers carry secrets.
pub(super) fn parse_header_list(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, pair) in s.split(',').enumerate() {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!(
                "entry {} has no `=`; write name=value pairs separated by commas",
                i + 1
            ));
        };
        let value = percent_decode(value.trim()).ok_or_else(|| {
            format!(
                "the value of {:?} is not UTF-8 once percent-decoded",
                name.trim()
            )
        })?;
        out.push((name.trim().to_owned(), value));
    }
    Ok(out)
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|c| (*c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl<'de> IntoDeserializer<'de, DeError> for Node {
    type Deserializer = Node;
    fn into_deserializer(self) -> Node {
        self
    }
}

impl<'de> Deserializer<'de> for Node {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self {
            Node::Null => v.visit_unit(),
            Node::Bool(b) => v.visit_bool(b),
            Node::Int(n) => match (i64::try_from(n), u64::try_from(n)) {
                (Ok(i), _) => v.visit_i64(i),
                (_, Ok(u)) => v.visit_u64(u),
                _ => v.visit_i128(n),
            },
            Node::Float(x) => v.visit_f64(x),
            Node::Str(s) | Node::Env(s) => v.visit_string(s),
            Node::Seq(items) => {
                let mut seq = de::value::SeqDeserializer::new(items.into_iter());
                let out = v.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            Node::Map(entries) => {
                let mut map = de::value::MapDeserializer::new(entries.into_iter());
                let out = v.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
        }
    }

    /// Null, and an empty text (an empty variable, `key: ""`), are "not set".
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self {
            Node::Null => v.visit_none(),
            Node::Str(s) | Node::Env(s) if s.trim().is_empty() => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    /// A variable sets a list as one comma-separated text (blank items skipped).
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) => Node::Seq(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Node::Env(s.to_owned()))
                    .collect(),
            )
            .deserialize_any(v),
            other => other.deserialize_any(v),
        }
    }

    /// A variable sets a map as `name=value` pairs (percent-encoded values).
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self {
            Node::Env(s) => {
                let pairs = parse_header_list(&s).map_err(DeError::Message)?;
                Node::Map(
                    pairs
                        .into_iter()
                        .map(|(k, val)| (k, Node::Env(val)))
                        .collect(),
                )
                .deserialize_any(v)
            }
            Node::Null => Node::Map(Vec::new()).deserialize_any(v),
            other => other.deserialize_any(v),
        }
    }

    /// A section left empty (`aws:` with every key commented out) is all defaults.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self {
            Node::Null => Node::Map(Vec::new()).deserialize_any(v),
            Node::Map(_) => self.deserialize_any(v),
            other => Err(DeError::Message(format!(
                "expected a section (a map with the keys {}), found {}",
                fields.join(", "),
                other.describe()
            ))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match self {
            Node::Str(s) | Node::Env(s) => v.visit_enum(s.trim().to_owned().into_deserializer()),
            other => other.deserialize_any(v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

/// The field names of a derived struct, in declaration order: what serde hands its deserializer.
pub(super) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("fields")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> Deserializer<'de> for Fields {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Fields) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_builds_maps_on_the_way() {
        let mut n = Node::Map(vec![("poll".into(), Node::Int(5))]);
        n.set(&["poll".into(), "interval".into()], Node::Env("1s".into()));
        n.set(
            &["otlp".into(), "tls".into(), "ca_file".into()],
            Node::Env("/ca".into()),
        );
        assert_eq!(n.at("poll.interval"), Some(&Node::Env("1s".into())));
        assert_eq!(n.at("otlp.tls.ca_file"), Some(&Node::Env("/ca".into())));
        assert_eq!(n.at("otlp.tls.cert_file"), None);
    }
}
