//! How each kind of config value is read (`deserialize_with`) and written back (`serialize_with`,
//! for the key list and `check-config`'s summary). Every reader accepts the value as text too,
//! since environment variables are text, and words its errors for people: the key is added by
//! the loader.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serializer};

use super::tree::quote;
use crate::arn::{ExecutionArn, FunctionParts};

pub(super) const DURATION_HINT: &str =
    r#"write a number and a unit, e.g. "250ms", "5s", "1h 30m", "7d""#;

/// A scalar as text: strings as they are, numbers and booleans as written.
struct Text(&'static str);

impl Visitor<'_> for Text {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

fn text<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<String, D::Error> {
    d.deserialize_any(Text(what))
}

/// Any text.
pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d, "a string")
}

/// A text that must not be empty nor hold whitespace (names, URLs), trimmed.
pub(super) fn token<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_token(&string(d)?).map_err(de::Error::custom)
}

fn check_token(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!("{} must not contain whitespace", quote(s)));
    }
    Ok(s.to_owned())
}

/// An optional token: null and empty mean unset.
pub(super) fn opt_token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct T(#[serde(deserialize_with = "token")] String);
    Ok(Option::<T>::deserialize(d)?.map(|t| t.0))
}

/// An optional text, trimmed; empty means unset.
pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct T(#[serde(deserialize_with = "string")] String);
    Ok(Option::<T>::deserialize(d)?
        .map(|t| t.0.trim().to_owned())
        .filter(|s| !s.is_empty()))
}

/// An optional http:// or https:// URL.
pub(super) fn opt_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let u = opt_token(d)?;
    if let Some(u) = &u {
        check_url(u).map_err(de::Error::custom)?;
    }
    Ok(u)
}

/// An optional http:// or https:// URL in which `{name}` placeholders (one of `names`) are
/// filled in later; `required`, when given, must be among them.
pub(super) fn opt_url_template<'de, D: Deserializer<'de>>(
    d: D,
    names: &[&str],
    required: Option<&str>,
) -> Result<Option<String>, D::Error> {
    let Some(u) = opt_token(d)? else {
        return Ok(None);
    };
    let mut filled = u.clone();
    for name in names {
        filled = filled.replace(&format!("{{{name}}}"), "x");
    }
    if filled.contains(['{', '}']) {
        let known: Vec<String> = names.iter().map(|n| format!("{{{n}}}")).collect();
        return Err(de::Error::custom(format!(
            "the only placeholders are {}",
            known.join(", ")
        )));
    }
    if let Some(r) = required
        && !u.contains(&format!("{{{r}}}"))
    {
        return Err(de::Error::custom(format!(
            "a template holding {{{r}}}, e.g. http://jaeger:16686/trace/{{{r}}}"
        )));
    }
    check_url(&filled).map_err(de::Error::custom)?;
    Ok(Some(u))
}

/// An http:// or https:// URL.
pub(super) fn url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let u = token(d)?;
    check_url(&u).map_err(de::Error::custom)?;
    Ok(u)
}

/// An http:// or https:// URL with a host.
pub(super) fn check_url(s: &str) -> Result<(), String> {
    let ok = s.parse::<http::Uri>().ok().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not an http:// or https:// URL; write e.g. http://localhost:4317",
            quote(s)
        ))
    }
}

/// A file or directory path: not empty.
pub(super) fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let s = string(d)?;
    if s.trim().is_empty() {
        return Err(de::Error::custom(
            "must not be empty; give a path the exporter can use",
        ));
    }
    Ok(PathBuf::from(s))
}

/// An optional path: null and empty mean unset.
pub(super) fn opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(opt_string(d)?.map(PathBuf::from))
}

struct Bool;

impl Visitor<'_> for Bool {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("true or false")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match v.trim() {
            t if t.eq_ignore_ascii_case("true") => Ok(true),
            t if t.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
        }
    }
}

/// true or false (or the text "true" / "false", any case).
pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(Bool)
}

struct Whole;

impl Visitor<'_> for Whole {
    type Value = i128;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(v.into())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<i128, E> {
        Ok(v)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<i128, E> {
        Ok(i128::try_from(v).unwrap_or(i128::MAX))
    }
    /// YAML reads integers too large for 64 bits as floats: a whole float is a whole number.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
        if v.is_finite() && v.fract() == 0.0 {
            Ok(v as i128)
        } else {
            Err(E::invalid_type(de::Unexpected::Float(v), &self))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
        v.trim()
            .parse()
            .map_err(|_| E::invalid_type(de::Unexpected::Str(v), &self))
    }
}

fn whole<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    d: D,
    min: u64,
    max: u64,
    between: bool,
) -> Result<T, D::Error> {
    let n = d.deserialize_any(Whole)?;
    let in_range = n >= i128::from(min) && n <= i128::from(max);
    match T::try_from(n) {
        Ok(v) if in_range => Ok(v),
        _ if between => Err(de::Error::custom(format!(
            "must be between {min} and {max}; got {n}"
        ))),
        _ if n < i128::from(min) => Err(de::Error::custom(format!(
            "must be at least {min}; got {n}"
        ))),
        _ => Err(de::Error::custom(format!("must be at most {max}; got {n}"))),
    }
}

/// A whole number in `MIN..=MAX` whose range is the point (an API's own limits): errors say
/// "between".
pub(super) fn int_between<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    whole(d, MIN, MAX, true)
}

/// A whole number in `MIN..=MAX` whose upper bound is only a sanity limit: errors say "at least"
/// or "at most".
pub(super) fn int<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    whole(d, MIN, MAX, false)
}

struct Number;

impl Visitor<'_> for Number {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::invalid_type(de::Unexpected::Str(v), &self))
    }
}

/// Lambda API calls per second: above 0, at least [`super::MIN_REQUESTS_PER_SECOND`] (one call
/// every 100 s), at most [`super::MAX_REQUESTS_PER_SECOND`].
pub(super) fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let f = d.deserialize_any(Number)?;
    let (min, max) = (
        super::MIN_REQUESTS_PER_SECOND,
        super::MAX_REQUESTS_PER_SECOND,
    );
    // `{f:?}` writes 1e-300 as 1e-300; `{f}` would spell out 300 digits.
    if !f.is_finite() || f <= 0.0 {
        Err(de::Error::custom(format!(
            "must be a finite number greater than 0; got {f:?}"
        )))
    } else if f < min {
        Err(de::Error::custom(format!(
            "must be at least {min} (one request every {} s); got {f:?}",
            1.0 / min
        )))
    } else if f > max {
        Err(de::Error::custom(format!(
            "must be at most {max}; got {f:?}"
        )))
    } else {
        Ok(f)
    }
}

struct Human;

impl Visitor<'_> for Human {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a duration: {DURATION_HINT}")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        humantime::parse_duration(v.trim()).map_err(|e| {
            E::custom(format!(
                "invalid duration {}: {e}; {DURATION_HINT}",
                quote(v)
            ))
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(no_unit(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(no_unit(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Duration, E> {
        Err(no_unit(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(no_unit(v))
    }
}

fn no_unit<E: de::Error>(n: impl fmt::Display) -> E {
    E::custom(format!(
        "invalid duration {n}: a unit is needed, e.g. \"{n}s\" or \"{n}ms\""
    ))
}

/// A duration (humantime: "250ms", "1h 30m") from `MIN_MS` to `MAX_MS` milliseconds; a minimum
/// of 1 ms reads as "greater than 0".
pub(super) fn duration<'de, D, const MIN_MS: u64, const MAX_MS: u64>(
    d: D,
) -> Result<Duration, D::Error>
where
    D: Deserializer<'de>,
{
    let v = d.deserialize_any(Human)?;
    let (min, max) = (Duration::from_millis(MIN_MS), Duration::from_millis(MAX_MS));
    if v < min {
        let min = if MIN_MS == 1 {
            "greater than 0".to_owned()
        } else {
            format!("at least {}", humantime::format_duration(min))
        };
        return Err(de::Error::custom(format!(
            "must be {min}; got {}",
            humantime::format_duration(v)
        )));
    }
    if v > max {
        return Err(de::Error::custom(format!(
            "must be at most {}; got {}",
            humantime::format_duration(max),
            humantime::format_duration(v)
        )));
    }
    Ok(v)
}

pub(super) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = string(d)?;
    s.trim().parse().map_err(|_| {
        de::Error::custom(format!(
            "{} is not an IP address and port; write e.g. 0.0.0.0:9464, 127.0.0.1:9464 or [::]:9464",
            quote(&s)
        ))
    })
}

/// Header names to values: names checked and lowercased, values checked but never repeated in
/// errors (they carry secrets).
pub(super) fn headers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    struct Headers;
    impl<'de> Visitor<'de> for Headers {
        type Value = std::collections::BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of header names to values")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Self::Value::new();
            while let Some(name) = map.next_key::<String>()? {
                // Checked while the value is read, so that an error names the header's key.
                let (n, v) = map.next_value_seed(Header(name))?;
                out.insert(n, v);
            }
            Ok(out)
        }
    }
    struct Header(String);
    impl<'de> de::DeserializeSeed<'de> for Header {
        type Value = (String, String);
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            let value = string(d)?;
            header(&self.0, &value).map_err(de::Error::custom)
        }
    }
    d.deserialize_map(Headers)
}

/// A checked header: its lowercase name and its value.
pub(super) fn header(name: &str, value: &str) -> Result<(String, String), String> {
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{} is not a valid HTTP header name", quote(name)))?;
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header {name} is not a valid HTTP header value (printable ASCII only)"
        ));
    }
    Ok((name.as_str().to_owned(), value.to_owned()))
}

/// Durable execution ARNs (duplicates are found by the validation, which knows their keys).
pub(super) fn arns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ExecutionArn>, D::Error> {
    struct Arn(ExecutionArn);
    impl<'de> Deserialize<'de> for Arn {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let raw = string(d)?;
            ExecutionArn::parse(&raw).map(Arn).map_err(|e| {
                de::Error::custom(format!(
                    "{}: {e}; expected arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]/durable-execution/NAME/ID",
                    quote(&raw)
                ))
            })
        }
    }
    list::<D, Arn>(d).map(|v| v.into_iter().map(|a| a.0).collect())
}

/// A list of `T` ("expected a list, found ..." otherwise).
pub(super) fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    struct L<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for L<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = seq.next_element()? {
                out.push(x);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(L(std::marker::PhantomData))
}

/// A list of tokens.
pub(super) fn tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct T(#[serde(deserialize_with = "token")] String);
    list::<D, T>(d).map(|v| v.into_iter().map(|t| t.0).collect())
}

/// Execution statuses to list, upper case.
pub(super) fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct S(String);
    impl<'de> Deserialize<'de> for S {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let status = string(d)?;
            let known = super::EXECUTION_STATUSES;
            if known.contains(&status.as_str()) {
                return Ok(S(status));
            }
            let hint = known
                .iter()
                .find(|s| s.eq_ignore_ascii_case(status.trim()))
                .map(|s| format!(" (statuses are upper case: {s})"))
                .unwrap_or_default();
            Err(de::Error::custom(format!(
                "unknown execution status {}{hint}; expected one of {}",
                quote(&status),
                known.join(", ")
            )))
        }
    }
    list::<D, S>(d).map(|v| v.into_iter().map(|s| s.0).collect())
}

/// A function to discover: a name or a function ARN, not an execution ARN.
pub(super) fn function_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_function_name(&token(d)?).map_err(de::Error::custom)
}

pub(super) fn check_function_name(name: &str) -> Result<String, String> {
    let name = check_token(name)?;
    if name.starts_with("arn:") {
        if name.contains("/durable-execution/") {
            return Err(format!(
                "{} is an execution ARN; list it under track.executions, or give its function here",
                quote(&name)
            ));
        }
        if FunctionParts::from_execution_arn(&name).is_none() || name.contains('/') {
            return Err(format!(
                "{} is not a function ARN; expected arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] or a plain function name",
                quote(&name)
            ));
        }
    }
    Ok(name)
}

/// An AWS region or signing name (`us-east-1`, `xray`): lowercase letters, digits and
/// hyphens, as the region goes into a host name.
pub(super) fn aws_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    check_aws_name(&token(d)?).map_err(de::Error::custom)
}

/// [`aws_name`], optional: null and empty mean unset.
pub(super) fn opt_aws_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct T(#[serde(deserialize_with = "aws_name")] String);
    Ok(Option::<T>::deserialize(d)?.map(|t| t.0))
}

pub(super) fn check_aws_name(name: &str) -> Result<String, String> {
    let name = check_token(name)?;
    crate::sigv4::check_name(&name)?;
    Ok(name)
}

// ---------------------------------------------------------------------------------------------
// Written back.

pub(super) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

pub(super) fn ser_arns<S: Serializer>(v: &[ExecutionArn], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ExecutionArn::as_str))
}
