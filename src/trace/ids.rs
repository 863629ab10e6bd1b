//! Deterministic trace and span ids (`shared/reference/trace-ids.md`).
//!
//! Trace id, Workflow span id and operation span ids are the ones AWS's in-process plugins derive,
//! so spans from the plugin and from the exporter land in one trace. Spans only the exporter
//! draws hash (SHA-256) `"dex:v1:" + kind + ":" + arn + ":" + key`, a namespace the plugins
//! never use.

use std::fmt;
use std::sync::Arc;

use blake2::{Blake2b512, Digest as _};
use sha2::Sha256;

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

fn write_hex(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        f.write_char(HEX[usize::from(b >> 4)] as char)?;
        f.write_char(HEX[usize::from(b & 15)] as char)?;
    }
    Ok(())
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(b[2 * i])? << 4) | nibble(b[2 * i + 1])?;
    }
    Some(out)
}

/// Which of AWS's plugins the ids should match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdScheme {
    /// `aws-durable-execution-sdk-python-otel`: BLAKE2b-512.
    #[default]
    Python,
    /// `@aws/durable-execution-sdk-js-otel`: SHA-256.
    Js,
}

impl IdScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            IdScheme::Python => "python",
            IdScheme::Js => "js",
        }
    }

    fn digest(self, parts: &[&[u8]]) -> [u8; 16] {
        match self {
            IdScheme::Python => {
                let mut h = Blake2b512::new();
                parts.iter().for_each(|p| h.update(p));
                first_16(h.finalize())
            }
            IdScheme::Js => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                first_16(h.finalize())
            }
        }
    }

    fn span_id(self, parts: &[&[u8]]) -> SpanId {
        span_id_of(self.digest(parts))
    }

    /// The trace id the plugin derives when the execution has no valid X-Ray header.
    pub fn trace_id(self, arn: &str, start: Timestamp) -> TraceId {
        let mut id = [0u8; 16];
        match self {
            IdScheme::Python => {
                // format(int(start), "08x"): the low 32 bits for any time before 2106.
                let secs = start.whole_seconds() as u32;
                id[..4].copy_from_slice(&secs.to_be_bytes());
                id[4..].copy_from_slice(&self.digest(&[arn.as_bytes()])[..12]);
            }
            IdScheme::Js => {
                let iso = start.to_iso8601();
                id = self.digest(&[arn.as_bytes(), b":", iso.as_bytes()]);
            }
        }
        TraceId(id)
    }

    pub fn workflow_span_id(self, arn: &str) -> SpanId {
        self.span_id(&[b"workflow:", arn.as_bytes()])
    }

    pub fn execution_root_span_id(self, arn: &str) -> SpanId {
        self.span_id(&[b"execution-root:", arn.as_bytes()])
    }

    pub fn operation_span_id(self, arn: &str, operation_id: &str) -> SpanId {
        OperationHash::after_arn(self, arn).span_id(operation_id)
    }
}

/// The kinds of span only the exporter draws, each its own id namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnSpan {
    Invocation,
    Attempt,
    Backoff,
    Suspension,
}

impl OwnSpan {
    fn tag(self) -> &'static [u8] {
        match self {
            OwnSpan::Invocation => b"invocation",
            OwnSpan::Attempt => b"attempt",
            OwnSpan::Backoff => b"backoff",
            OwnSpan::Suspension => b"suspension",
        }
    }
}

/// `sha256("dex:v1:" + kind + ":" + arn + ":" + key)`, first 8 bytes, for both schemes.
/// SHA-256 (hardware-accelerated on current x86 and ARM CPUs) rather than BLAKE2b-512: these ids
/// need only be stable and apart from the plugins', and there is one per attempt, back-off,
/// invocation and suspension.
pub fn own_span_id(kind: OwnSpan, arn: &str, key: &str) -> SpanId {
    span_id_of(first_16(own_prefix(kind, arn).chain_update(key).finalize()))
}

/// SHA-256 after `"dex:v1:" + kind + ":" + arn + ":"`: every own id of that kind continues it.
fn own_prefix(kind: OwnSpan, arn: &str) -> Sha256 {
    let mut h = Sha256::new_with_prefix(b"dex:v1:");
    for part in [kind.tag(), b":", arn.as_bytes(), b":"] {
        h.update(part);
    }
    h
}

/// Hash states that have already absorbed one execution's ARN, so that each of its span ids costs
/// the compression of its own key alone: ARNs are longer than a hash block (about 140 bytes
/// against SHA-256's 64 and BLAKE2b's 128), so a fresh digest per id compressed the ARN again for
/// every attempt, back-off and operation. Each state is made when first needed, so that a page
/// that draws one kind of span pays for that kind's alone. The ids are exactly
/// [`IdScheme::operation_span_id`]'s and [`own_span_id`]'s (a test holds them equal).
#[derive(Clone)]
pub struct ArnHashes {
    scheme: IdScheme,
    arn: Arc<str>,
    /// After `arn + ":"`, in the scheme's hash.
    operation: Option<OperationHash>,
    /// After `"dex:v1:" + kind + ":" + arn + ":"`, by [`OwnSpan`] (in declaration order).
    own: [Option<Sha256>; 4],
}

/// The scheme's hash after `arn + ":"`: every operation span id of the execution continues it.
#[derive(Clone)]
enum OperationHash {
    Python(Blake2b512),
    Js(Sha256),
}

impl OperationHash {
    fn after_arn(scheme: IdScheme, arn: &str) -> Self {
        match scheme {
            IdScheme::Python => {
                OperationHash::Python(Blake2b512::new_with_prefix(arn).chain_update(b":"))
            }
            IdScheme::Js => OperationHash::Js(Sha256::new_with_prefix(arn).chain_update(b":")),
        }
    }

    fn span_id(&self, operation_id: &str) -> SpanId {
        span_id_of(match self {
            OperationHash::Python(h) => first_16(h.clone().chain_update(operation_id).finalize()),
            OperationHash::Js(h) => first_16(h.clone().chain_update(operation_id).finalize()),
        })
    }
}

impl fmt::Debug for ArnHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArnHashes")
            .field("scheme", &self.scheme)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

impl ArnHashes {
    pub fn new(scheme: IdScheme, arn: Arc<str>) -> Self {
        ArnHashes {
            scheme,
            arn,
            operation: None,
            own: Default::default(),
        }
    }

    /// [`IdScheme::operation_span_id`] for this ARN and scheme.
    pub fn operation_span_id(&mut self, operation_id: &str) -> SpanId {
        let (scheme, arn) = (self.scheme, &self.arn);
        self.operation
            .get_or_insert_with(|| OperationHash::after_arn(scheme, arn))
            .span_id(operation_id)
    }

    /// [`own_span_id`] for this ARN, the key given in parts (`op_id`, `":"`, `"3"`), so that
    /// callers need not build it.
    pub fn own_span_id(&mut self, kind: OwnSpan, key: &[&[u8]]) -> SpanId {
        let arn = &self.arn;
        let mut h = self.own[kind as usize]
            .get_or_insert_with(|| own_prefix(kind, arn))
            .clone();
        key.iter().for_each(|p| h.update(p));
        span_id_of(first_16(h.finalize()))
    }
}

fn first_16(digest: impl AsRef<[u8]>) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest.as_ref()[..16]);
    out
}

/// The first 8 bytes of a digest as a span id; all zeros (invalid in OTLP) becomes 1.
fn span_id_of(digest: [u8; 16]) -> SpanId {
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    SpanId(id)
}

/// A trace context handed in by the caller: an X-Ray `X-Amzn-Trace-Id`
/// (`Root=1-<8hex>-<24hex>;Parent=<16hex>;Sampled=1`) or a W3C `traceparent`
/// (`00-<32hex>-<16hex>-<2hex>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHeader {
    pub trace_id: TraceId,
    pub parent: Option<SpanId>,
    pub sampled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a trace header: expected X-Ray `Root=1-<8 hex>-<24 hex>[;Parent=<16 hex>][;Sampled=0|1]` or W3C `00-<32 hex>-<16 hex>-<2 hex>`"
)]
pub struct TraceHeaderError;

impl TraceHeader {
    pub fn parse(s: &str) -> Result<Self, TraceHeaderError> {
        let s = s.trim();
        if let Some(tp) = Self::parse_traceparent(s) {
            return Ok(tp);
        }
        let mut root = None;
        let mut parent = None;
        let mut sampled = None;
        for field in s.split(';') {
            let Some((k, v)) = field.split_once('=') else {
                continue;
            };
            match k.trim() {
                "Root" => root = Self::parse_xray_root(v.trim()),
                "Parent" => parent = parse_hex::<8>(v.trim()).map(SpanId),
                "Sampled" => {
                    sampled = match v.trim() {
                        "1" => Some(true),
                        "0" => Some(false),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        let trace_id = root.ok_or(TraceHeaderError)?;
        Ok(TraceHeader {
            trace_id,
            parent: parent.filter(|p| p.0 != [0; 8]),
            sampled,
        })
    }

    fn parse_xray_root(v: &str) -> Option<TraceId> {
        let rest = v.strip_prefix("1-")?;
        let (epoch, unique) = rest.split_once('-')?;
        let e = parse_hex::<4>(epoch)?;
        let u = parse_hex::<12>(unique)?;
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&e);
        id[4..].copy_from_slice(&u);
        (id != [0; 16]).then_some(TraceId(id))
    }

    fn parse_traceparent(s: &str) -> Option<Self> {
        let mut it = s.split('-');
        let (ver, trace, span, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || ver != "00" {
            return None;
        }
        let trace_id = TraceId(parse_hex::<16>(trace)?);
        let parent = SpanId(parse_hex::<8>(span)?);
        let flags = parse_hex::<1>(flags)?[0];
        (trace_id.0 != [0; 16] && parent.0 != [0; 8]).then_some(TraceHeader {
            trace_id,
            parent: Some(parent),
            sampled: Some(flags & 1 == 1),
        })
    }
}

impl TraceId {
    pub fn to_hex(self) -> String {
        let mut s = String::with_capacity(32);
        let _ = write_hex(&mut s, &self.0);
        s
    }
}

impl SpanId {
    pub fn to_hex(self) -> String {
        let mut s = String::with_capacity(16);
        let _ = write_hex(&mut s, &self.0);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN_A: &str = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/3f1c9a2e-7b4d-4c1e-9f0a-5d6e7f8a9b0c/6a1f0b2c-3d4e-5f60-7182-93a4b5c6d7e8";
    const ARN_C: &str = "arn:aws:lambda:eu-west-1:210987654321:function:payments:7/durable-execution/order-42/0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b";
    const OP_A: &str = "1ced8f5be2db23a6513eba4d819c73806424748a7bc6fa0d792cc1c7d1775a97";
    const OP_B: &str = "9d8bc609108ec7b3600d6cceec22d18553e3e1ec52a3568cb251464a3d39d24f";
    const OP_C: &str = "c4ca4238a0b923820dcc509a6f75849b";

    fn start_a() -> Timestamp {
        Timestamp::parse_iso8601("2026-03-14T09:26:53.589Z").unwrap()
    }
    fn start_c() -> Timestamp {
        Timestamp::parse_iso8601("2025-12-31T23:59:59.999Z").unwrap()
    }

    #[test]
    fn python_worked_examples() {
        let p = IdScheme::Python;
        assert_eq!(
            p.trace_id(ARN_A, start_a()).to_hex(),
            "69b529dd506a27bbcc71e900add309bb"
        );
        assert_eq!(
            p.trace_id(ARN_C, start_c()).to_hex(),
            "6955b8ffaddc72d68d467aca41239707"
        );
        assert_eq!(p.workflow_span_id(ARN_A).to_hex(), "67a5c87bb1ea3117");
        assert_eq!(p.execution_root_span_id(ARN_A).to_hex(), "58412e22cfaeecfb");
        assert_eq!(p.workflow_span_id(ARN_C).to_hex(), "6fee1f5be9b5fc86");
        assert_eq!(p.execution_root_span_id(ARN_C).to_hex(), "ccfc2e5eb0b17301");
        assert_eq!(
            p.operation_span_id(ARN_A, OP_A).to_hex(),
            "a47ec293f0fb02f0"
        );
        assert_eq!(
            p.operation_span_id(ARN_A, OP_B).to_hex(),
            "a64364f21cff3282"
        );
        assert_eq!(
            p.operation_span_id(ARN_C, OP_C).to_hex(),
            "9187a9053a58d6a3"
        );
    }

    #[test]
    fn js_worked_examples() {
        let j = IdScheme::Js;
        assert_eq!(
            j.trace_id(ARN_A, start_a()).to_hex(),
            "3debb276713f12352a4c6a3e4987f4eb"
        );
        assert_eq!(
            j.trace_id(ARN_C, start_c()).to_hex(),
            "749422a889873cded1af8b3915aa4858"
        );
        assert_eq!(j.workflow_span_id(ARN_A).to_hex(), "77aba0de86be1587");
        assert_eq!(j.execution_root_span_id(ARN_A).to_hex(), "229f91f8fd4481bf");
        assert_eq!(j.workflow_span_id(ARN_C).to_hex(), "74e7b81fd4850170");
        assert_eq!(j.execution_root_span_id(ARN_C).to_hex(), "0cff948997c41249");
        assert_eq!(
            j.operation_span_id(ARN_A, OP_A).to_hex(),
            "cc91570535b8f882"
        );
        assert_eq!(
            j.operation_span_id(ARN_A, OP_B).to_hex(),
            "be5f82abe84d6576"
        );
        assert_eq!(
            j.operation_span_id(ARN_C, OP_C).to_hex(),
            "dc306b16d813f5da"
        );
    }

    #[test]
    fn own_ids_are_stable_and_apart_from_the_plugins() {
        let a = own_span_id(OwnSpan::Attempt, ARN_A, "x:1");
        assert_eq!(a, own_span_id(OwnSpan::Attempt, ARN_A, "x:1"));
        assert_ne!(a, own_span_id(OwnSpan::Attempt, ARN_A, "x:2"));
        assert_ne!(a, own_span_id(OwnSpan::Backoff, ARN_A, "x:1"));
        // A fixed value: these ids are part of the output contract.
        assert_eq!(
            own_span_id(OwnSpan::Invocation, ARN_A, "1").to_hex(),
            own_hex("dex:v1:invocation:", ARN_A, ":1")
        );
        assert_ne!(
            own_span_id(OwnSpan::Invocation, ARN_A, "1"),
            IdScheme::Python.operation_span_id(ARN_A, "1")
        );
    }

    #[test]
    fn ids_from_the_arn_hashes_are_the_plain_ones() {
        for scheme in [IdScheme::Python, IdScheme::Js] {
            for arn in [ARN_A, ARN_C, "a/b", ""] {
                let mut h = ArnHashes::new(scheme, arn.into());
                for op in [OP_A, OP_B, OP_C, "1", ""] {
                    assert_eq!(
                        h.operation_span_id(op),
                        scheme.operation_span_id(arn, op),
                        "{scheme:?} {arn} {op}"
                    );
                }
                for kind in [
                    OwnSpan::Invocation,
                    OwnSpan::Attempt,
                    OwnSpan::Backoff,
                    OwnSpan::Suspension,
                ] {
                    assert_eq!(
                        h.own_span_id(kind, &[OP_A.as_bytes(), b":", b"12"]),
                        own_span_id(kind, arn, &format!("{OP_A}:12")),
                    );
                    assert_eq!(h.own_span_id(kind, &[b"7"]), own_span_id(kind, arn, "7"));
                }
            }
        }
    }

    fn own_hex(prefix: &str, arn: &str, key: &str) -> String {
        let d = Sha256::digest(format!("{prefix}{arn}{key}").as_bytes());
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn xray_headers() {
        let h = TraceHeader::parse(
            "Root=1-69b529dd-506a27bbcc71e900add309bb;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(h.trace_id.to_hex(), "69b529dd506a27bbcc71e900add309bb");
        assert_eq!(h.parent.unwrap().to_hex(), "53995c3f42cd8ad8");
        assert_eq!(h.sampled, Some(true));
        let h =
            TraceHeader::parse(" Sampled=0; Root=1-69b529dd-506a27bbcc71e900add309bb ").unwrap();
        assert_eq!(h.parent, None);
        assert_eq!(h.sampled, Some(false));
        for bad in [
            "",
            "Root=1-69b529dd",
            "Root=2-69b529dd-506a27bbcc71e900add309bb",
            "Root=1-69b529dd-506a27bbcc71e900add309bZ",
            "Root=1-00000000-000000000000000000000000",
            "Parent=53995c3f42cd8ad8",
        ] {
            assert_eq!(TraceHeader::parse(bad), Err(TraceHeaderError), "{bad}");
        }
    }

    #[test]
    fn w3c_traceparent() {
        let h =
            TraceHeader::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(h.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(h.parent.unwrap().to_hex(), "00f067aa0ba902b7");
        assert!(
            TraceHeader::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err()
        );
    }
}
