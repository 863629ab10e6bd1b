//! The shell's wall clock. The core has none: it is told the time (`Execution::next_change`
//! answers in history time; the simulator is given `now` on every call).

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Wall-clock seconds since the Unix epoch, as Prometheus timestamps write them.
pub fn now_seconds() -> f64 {
    now_ms() as f64 / 1000.0
}
