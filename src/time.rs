//! Timestamps as the durable API carries them, kept as whole milliseconds since the Unix epoch.
//!
//! The wire form is a JSON number of epoch seconds with a fraction (`1795247111.640133`); the
//! AWS CLI prints ISO-8601 strings (`2026-03-14T09:26:53.663000+00:00`). Both are rounded (never
//! truncated) to the millisecond. Numbers go through the same `f64` steps as aws-sdk-lambda
//! (`DateTime::from_secs_f64`, then nanoseconds), so the SDK path and the raw-JSON path agree on
//! every event.

use std::fmt;

/// Milliseconds since the Unix epoch (UTC).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

const NANOS_PER_MILLI: i64 = 1_000_000;

/// The widest epoch-seconds value a reader accepts, either sign (about 31.7 million years).
/// Its milliseconds (1e18) and the difference of two such times (2e18) fit in an `i64`, so no
/// duration, offset or lateness computed from history times can overflow. The raw-JSON reader
/// refuses numbers beyond it; aws-sdk-lambda has already parsed them, so the SDK reader clamps
/// them to it ([`Timestamp::from_secs_nanos`]).
pub const MAX_EPOCH_SECONDS: i64 = 1_000_000_000_000_000;

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded towards negative infinity.
    pub const fn whole_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The earliest time a span can carry: OTLP's nanoseconds are unsigned.
    pub const DRAWABLE_MIN: Timestamp = Timestamp(0);
    /// The latest time a span can carry: the last whole millisecond whose nanoseconds fit in an
    /// `i64` (2262-04-11T23:47:16.854Z), as the OpenTelemetry SDK's `SystemTime` path needs.
    pub const DRAWABLE_MAX: Timestamp = Timestamp(i64::MAX / NANOS_PER_MILLI);

    /// Whether a span can carry this time as it is; [`Timestamp::unix_nanos`] clamps the others
    /// (the fold reports them as `timestamp_out_of_range`).
    pub fn is_drawable(self) -> bool {
        (Self::DRAWABLE_MIN..=Self::DRAWABLE_MAX).contains(&self)
    }

    /// Nanoseconds since the epoch, as OTLP wants them, clamped to the drawable range (0 for
    /// times before the epoch, `i64::MAX` nanoseconds after 2262).
    pub fn unix_nanos(self) -> u64 {
        u64::try_from(self.0.saturating_mul(NANOS_PER_MILLI)).unwrap_or(0)
    }

    /// From seconds and sub-second nanoseconds (aws-smithy `DateTime`), rounding to the millisecond.
    /// Seconds beyond [`MAX_EPOCH_SECONDS`] are clamped to it.
    pub fn from_secs_nanos(secs: i64, nanos: u32) -> Self {
        let secs = secs.clamp(-MAX_EPOCH_SECONDS, MAX_EPOCH_SECONDS);
        let ms = (i64::from(nanos) + NANOS_PER_MILLI / 2) / NANOS_PER_MILLI;
        Timestamp(secs.saturating_mul(1000).saturating_add(ms))
    }

    /// From epoch seconds as a JSON number. Mirrors aws-smithy's `DateTime::from_secs_f64`
    /// (floor, fraction to truncated nanoseconds) before rounding to the millisecond.
    /// `None` for NaN, infinities and values beyond [`MAX_EPOCH_SECONDS`].
    pub fn from_secs_f64(secs: f64) -> Option<Self> {
        if !secs.is_finite() || secs.abs() > MAX_EPOCH_SECONDS as f64 {
            return None;
        }
        let whole = secs.floor();
        let mut seconds = whole as i64;
        let mut nanos = ((secs - whole) * 1_000_000_000_f64) as u32;
        if nanos >= 1_000_000_000 {
            seconds += 1;
            nanos = 0;
        }
        Some(Self::from_secs_nanos(seconds, nanos))
    }

    /// Parses an RFC 3339 / ISO-8601 date-time with a `Z` or `±HH:MM` offset and an optional
    /// fraction of any length (rounded half-up to the millisecond).
    pub fn parse_iso8601(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 19 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = b.get(r)?;
            let mut v = 0i64;
            for &c in part {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Some(v)
        };
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut i = 19;
        // Fraction: keep the first four digits to round half-up to the millisecond.
        let mut frac_ms_x10 = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 4 {
                    frac_ms_x10 = frac_ms_x10 * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..4 {
                frac_ms_x10 *= 10;
            }
        }
        let offset_secs = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return None;
                }
                let v = oh * 3600 + om * 60;
                if sign == b'+' { v } else { -v }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
        Some(Timestamp(secs * 1000 + (frac_ms_x10 + 5) / 10))
    }

    /// ISO-8601 in UTC with milliseconds and `Z`, as JavaScript's `Date.toISOString()` writes it.
    pub fn to_iso8601(self) -> String {
        let secs = self.whole_seconds();
        let ms = self.0.rem_euclid(1000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }
}

/// Writes the epoch-seconds number form the API uses, e.g. `1795248229.436`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (s, ms) = (abs / 1000, abs % 1000);
        if ms == 0 {
            write!(f, "{sign}{s}")
        } else {
            let frac = format!("{ms:03}");
            write!(f, "{sign}{s}.{}", frac.trim_end_matches('0'))
        }
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A duration in milliseconds written for people: `0ms`, `453ms`, `2.01s`, `3m04s`, `2h05m`, `3d04h`.
pub fn human_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else if ms < 86_400_000 {
        format!("{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    } else {
        format!("{}d{:02}h", ms / 86_400_000, (ms % 86_400_000) / 3_600_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_numbers_round_to_the_millisecond() {
        assert_eq!(
            Timestamp::from_secs_f64(1795248229.082658),
            Some(Timestamp(1795248229083))
        );
        assert_eq!(
            Timestamp::from_secs_f64(1795248229.435674),
            Some(Timestamp(1795248229436))
        );
        assert_eq!(
            Timestamp::from_secs_f64(1795248229.4349),
            Some(Timestamp(1795248229435))
        );
        assert_eq!(Timestamp::from_secs_f64(12.0), Some(Timestamp(12000)));
        assert_eq!(Timestamp::from_secs_f64(f64::NAN), None);
        assert_eq!(Timestamp::from_secs_f64(f64::INFINITY), None);
        assert_eq!(Timestamp::from_secs_f64(1e300), None);
        // 0.9999999 s rounds up into the next second.
        assert_eq!(Timestamp::from_secs_f64(5.9999999), Some(Timestamp(6000)));
    }

    #[test]
    fn the_accepted_range_and_the_drawable_range() {
        // Accepted: up to 1e15 s either way; the SDK's already-parsed values are clamped there.
        assert_eq!(
            Timestamp::from_secs_f64(1e15),
            Some(Timestamp(1_000_000_000_000_000_000))
        );
        assert_eq!(Timestamp::from_secs_f64(1.000_001e15), None);
        assert_eq!(
            Timestamp::from_secs_nanos(i64::MAX, 999_999_999),
            Timestamp(1_000_000_000_000_000_000 + 1000)
        );
        assert_eq!(
            Timestamp::from_secs_nanos(i64::MIN, 0),
            Timestamp(-1_000_000_000_000_000_000)
        );
        // Drawable: what OTLP carries without clamping.
        assert_eq!(
            Timestamp::DRAWABLE_MAX.to_iso8601(),
            "2262-04-11T23:47:16.854Z"
        );
        assert_eq!(
            Timestamp::DRAWABLE_MAX.unix_nanos(),
            9_223_372_036_854_000_000
        );
        assert!(Timestamp(0).is_drawable() && Timestamp::DRAWABLE_MAX.is_drawable());
        for (t, nanos) in [
            (Timestamp(-1), 0),
            (Timestamp(-1_000_000_000_000_000), 0),
            (Timestamp(250_000_000_000_000_000), i64::MAX as u64),
            (Timestamp(Timestamp::DRAWABLE_MAX.0 + 1), i64::MAX as u64),
        ] {
            assert!(!t.is_drawable(), "{t}");
            assert_eq!(t.unix_nanos(), nanos, "{t}");
        }
    }

    #[test]
    fn iso_strings_in_the_cli_form_and_zulu_form() {
        let cli = Timestamp::parse_iso8601("2026-03-14T09:26:53.663000+00:00").unwrap();
        let zulu = Timestamp::parse_iso8601("2026-03-14T09:26:53.663Z").unwrap();
        assert_eq!(cli, zulu);
        assert_eq!(zulu.to_iso8601(), "2026-03-14T09:26:53.663Z");
        // Half a millisecond rounds up, not down.
        let r = Timestamp::parse_iso8601("2026-03-14T09:26:53.6635Z").unwrap();
        assert_eq!(r.millis() % 1000, 664);
        let r = Timestamp::parse_iso8601("2026-03-14T09:26:53.9996Z").unwrap();
        assert_eq!(r.to_iso8601(), "2026-03-14T09:26:54.000Z");
        // Offsets move the instant.
        let plus = Timestamp::parse_iso8601("2026-03-14T11:26:53.663+02:00").unwrap();
        assert_eq!(plus, zulu);
        assert_eq!(
            Timestamp::parse_iso8601("2026-03-14T09:26:53Z")
                .unwrap()
                .millis()
                % 1000,
            0
        );
        for bad in [
            "",
            "2026-03-14",
            "2026-13-14T09:26:53Z",
            "2026-02-30T09:26:53Z",
            "2026-03-14T09:26:53",
            "2026-03-14T09:26:53.Z",
            "2026-03-14T09:26:53+0000",
            "2026-03-14T09:26:53Zjunk",
            "२०२६-03-14T09:26:53Z",
        ] {
            assert_eq!(Timestamp::parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_worked_examples_start_times() {
        // trace-ids.md: ARN_A started 2026-03-14T09:26:53.589Z, whose whole seconds are 0x69b529dd.
        let a = Timestamp::parse_iso8601("2026-03-14T09:26:53.589Z").unwrap();
        assert_eq!(format!("{:08x}", a.whole_seconds()), "69b529dd");
        let c = Timestamp::parse_iso8601("2025-12-31T23:59:59.999Z").unwrap();
        assert_eq!(c.to_iso8601(), "2025-12-31T23:59:59.999Z");
    }

    #[test]
    fn display_is_the_wire_number() {
        assert_eq!(Timestamp(1795248229436).to_string(), "1795248229.436");
        assert_eq!(Timestamp(1795248229400).to_string(), "1795248229.4");
        assert_eq!(Timestamp(1795248229000).to_string(), "1795248229");
        assert_eq!(Timestamp(-1).to_string(), "-0.001");
        assert_eq!(Timestamp(-1500).to_string(), "-1.5");
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(0), "0ms");
        assert_eq!(human_duration(453), "453ms");
        assert_eq!(human_duration(2014), "2.01s");
        assert_eq!(human_duration(184_000), "3m04s");
        assert_eq!(human_duration(7_500_000), "2h05m");
        assert_eq!(human_duration(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    }
}
