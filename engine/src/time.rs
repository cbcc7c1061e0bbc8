//! Timestamps as text: RFC 3339 in UTC (v5 used local time, which made reports depend on the
//! machine that produced them).

use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC text with microseconds, e.g. `2024-03-01T12:00:00.000000Z`.
pub fn iso_utc(ts_ns: i64) -> String {
    if ts_ns >= 0 {
        let t = UNIX_EPOCH + Duration::from_nanos(ts_ns as u64);
        humantime::format_rfc3339_micros(t).to_string()
    } else {
        format!("{:.6}", ts_ns as f64 / 1e9)
    }
}
