//! Wall-clock time as milliseconds since the epoch: the one representation the store, the
//! bus messages and the state machine share, identical on SQLite and PostgreSQL.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type Millis = i64;

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Microseconds, for latency measurements across components that share no `Instant`.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub fn rfc3339(ms: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn add(ms: Millis, d: Duration) -> Millis {
    ms.saturating_add(d.as_millis().min(i64::MAX as u128) as i64)
}

/// "1.5s", "2m03s": the short form the terminal and chat summaries use.
pub fn short_duration(ms: Millis) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
