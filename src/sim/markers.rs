//! Pagination markers the simulator hands out: opaque, tamper-evident, and stateless.
//!
//! A marker carries what it points at (which history or listing, where, in which direction)
//! and when it was issued, encrypted with a key stream derived from the simulation's seed and
//! sealed with a SHA-256 tag. Nothing is stored per marker, so 10,000 executions polled for
//! hours cost no memory; expiry is checked against the issue time inside the token.

use sha2::{Digest, Sha256};

/// Where a marker points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerScope {
    /// A history page: forward, the index of the next event; reverse, the (exclusive) upper
    /// end of what is left.
    History {
        execution: u32,
        reverse: bool,
        pos: u32,
    },
    /// A listing: the sort key (start ms, execution index) of the last item returned.
    List {
        function: u32,
        reverse: bool,
        after_ms: i64,
        after_index: u32,
    },
}

/// Why a marker was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerError {
    /// Not a marker this simulation issued (garbled, forged or from another seed).
    Invalid,
    Expired,
}

const PLAIN_LEN: usize = 26;
const TAG_LEN: usize = 10;

/// Seals and opens markers for one simulation.
#[derive(Debug, Clone)]
pub struct MarkerCodec {
    key: [u8; 32],
}

impl MarkerCodec {
    pub fn new(seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(b"durable-exporter simulator markers v1");
        h.update(seed.to_le_bytes());
        MarkerCodec {
            key: h.finalize().into(),
        }
    }

    fn tag(&self, plain: &[u8]) -> [u8; TAG_LEN] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(b"tag");
        h.update(plain);
        let d = h.finalize();
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&d[..TAG_LEN]);
        t
    }

    /// The key stream for one tag: every marker is encrypted differently.
    fn stream(&self, tag: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(b"stream");
        h.update(tag);
        h.finalize().into()
    }

    pub fn seal(&self, scope: MarkerScope, issued_ms: i64) -> String {
        let mut plain = [0u8; PLAIN_LEN];
        plain[..8].copy_from_slice(&issued_ms.to_le_bytes());
        match scope {
            MarkerScope::History {
                execution,
                reverse,
                pos,
            } => {
                plain[8] = 1 | (u8::from(reverse) << 1);
                plain[9..13].copy_from_slice(&execution.to_le_bytes());
                plain[13..17].copy_from_slice(&pos.to_le_bytes());
            }
            MarkerScope::List {
                function,
                reverse,
                after_ms,
                after_index,
            } => {
                plain[8] = 4 | (u8::from(reverse) << 1);
                plain[9..13].copy_from_slice(&function.to_le_bytes());
                plain[13..21].copy_from_slice(&after_ms.to_le_bytes());
                plain[21..25].copy_from_slice(&after_index.to_le_bytes());
            }
        }
        let tag = self.tag(&plain);
        let stream = self.stream(&tag);
        let mut out = String::with_capacity(2 * (PLAIN_LEN + TAG_LEN));
        for b in tag.iter() {
            out.push_str(&format!("{b:02x}"));
        }
        for (b, k) in plain.iter().zip(stream) {
            out.push_str(&format!("{:02x}", b ^ k));
        }
        out
    }

    /// The scope of a marker issued no longer than `ttl_ms` before `now_ms`.
    pub fn open(&self, token: &str, now_ms: i64, ttl_ms: i64) -> Result<MarkerScope, MarkerError> {
        let bytes = hex_decode(token).ok_or(MarkerError::Invalid)?;
        if bytes.len() != TAG_LEN + PLAIN_LEN {
            return Err(MarkerError::Invalid);
        }
        let (tag, cipher) = bytes.split_at(TAG_LEN);
        let stream = self.stream(tag);
        let mut plain = [0u8; PLAIN_LEN];
        for (i, (c, k)) in cipher.iter().zip(stream).enumerate() {
            plain[i] = c ^ k;
        }
        if self.tag(&plain) != tag {
            return Err(MarkerError::Invalid);
        }
        let u32_at = |i: usize| u32::from_le_bytes(plain[i..i + 4].try_into().expect("4 bytes"));
        let i64_at = |i: usize| i64::from_le_bytes(plain[i..i + 8].try_into().expect("8 bytes"));
        let issued = i64_at(0);
        if now_ms.saturating_sub(issued) > ttl_ms {
            return Err(MarkerError::Expired);
        }
        let reverse = plain[8] & 2 != 0;
        match plain[8] & !2 {
            1 => Ok(MarkerScope::History {
                execution: u32_at(9),
                reverse,
                pos: u32_at(13),
            }),
            4 => Ok(MarkerScope::List {
                function: u32_at(9),
                reverse,
                after_ms: i64_at(13),
                after_index: u32_at(21),
            }),
            _ => Err(MarkerError::Invalid),
        }
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_are_opaque() {
        let c = MarkerCodec::new(7);
        let scopes = [
            MarkerScope::History {
                execution: 9_999,
                reverse: false,
                pos: 100,
            },
            MarkerScope::History {
                execution: 0,
                reverse: true,
                pos: 3,
            },
            MarkerScope::List {
                function: 2,
                reverse: true,
                after_ms: 1_795_248_229_114,
                after_index: 41,
            },
        ];
        for s in scopes {
            let t = c.seal(s, 1_000);
            assert_eq!(c.open(&t, 1_500, 1_000), Ok(s));
            assert!(!t.contains("100") || !t.ends_with("100"));
        }
        // Two markers for the same place differ when issued at different times.
        let a = c.seal(scopes[0], 1);
        let b = c.seal(scopes[0], 2);
        assert_ne!(a, b);
    }

    #[test]
    fn markers_expire_and_refuse_tampering() {
        let c = MarkerCodec::new(7);
        let s = MarkerScope::History {
            execution: 1,
            reverse: false,
            pos: 5,
        };
        let t = c.seal(s, 1_000);
        assert_eq!(c.open(&t, 2_001, 1_000), Err(MarkerError::Expired));
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(c.open(&forged, 1_000, 1_000), Err(MarkerError::Invalid));
        assert_eq!(
            MarkerCodec::new(8).open(&t, 1_000, 1_000),
            Err(MarkerError::Invalid)
        );
        for junk in ["", "zz", "12", "not a marker", "5"] {
            assert_eq!(c.open(junk, 1_000, 1_000), Err(MarkerError::Invalid));
        }
    }
}
