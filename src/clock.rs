//! Time as the store, the bus messages and the state machine share it: milliseconds since
//! the epoch, identical on SQLite and PostgreSQL. The store, the engine, the semaphore and
//! the agent runtime are handed one `Clock` rather than reading the system time each on
//! its own, so that what they write and compare is one notion of now, which a caller can
//! replace: `Clock::tokio` follows tokio's clock, which a test may pause and advance.
//!
//! The whole service does not run on a paused clock: sqlx's pool waits for a connection
//! on a tokio timer while SQLite works on a thread of its own, and tokio, seeing nothing
//! else to do, moves a paused clock straight to that timer, so the wait times out at once.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type Millis = i64;

/// Where "now" comes from.
#[derive(Clone)]
pub struct Clock(Arc<dyn Source>);

trait Source: Send + Sync {
    fn now_us(&self) -> i64;
}

struct System;

impl Source for System {
    fn now_us(&self) -> i64 {
        wall_us()
    }
}

/// Wall-clock time at creation, moved on by tokio's clock.
struct Tokio {
    base_us: i64,
    start: tokio::time::Instant,
}

impl Source for Tokio {
    fn now_us(&self) -> i64 {
        let elapsed = self.start.elapsed().as_micros().min(i64::MAX as u128) as i64;
        self.base_us.saturating_add(elapsed)
    }
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

impl Clock {
    /// The system's wall clock: what every deployment runs on.
    pub fn system() -> Clock {
        Clock(Arc::new(System))
    }

    /// Starts at the wall-clock time and then follows tokio's clock, which a test may pause
    /// and advance: timers and "now" then move together.
    pub fn tokio() -> Clock {
        Clock(Arc::new(Tokio {
            base_us: wall_us(),
            start: tokio::time::Instant::now(),
        }))
    }

    pub fn now_ms(&self) -> Millis {
        self.now_us() / 1000
    }

    /// Microseconds, for latency measurements across components that share no `Instant`.
    pub fn now_us(&self) -> i64 {
        self.0.now_us()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", rfc3339(self.now_ms()))
    }
}

/// Whole seconds since the epoch, by the system clock: a suffix for names that must not
/// repeat (a data directory or an instance kept aside).
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn rfc3339(ms: Millis) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn add(ms: Millis, d: Duration) -> Millis {
    ms.saturating_add(d.as_millis().min(i64::MAX as u128) as i64)
}

pub fn sub(ms: Millis, d: Duration) -> Millis {
    ms.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64)
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

/// How long ago, as people say it: "just now", "5 minutes ago", "3 days ago".
pub fn ago(ms: Millis) -> String {
    let minutes = ms.max(0) / 60_000;
    let (n, unit) = match minutes {
        0 => return "just now".into(),
        m if m < 60 => (m, "minute"),
        m if m < 60 * 24 => (m / 60, "hour"),
        m => (m / (60 * 24), "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// The longest any service may make Lifeboat wait before a call is made again.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// A wait a service asked for (`Retry-After`, `X-RateLimit-Reset-After`, `retry_after`),
/// in seconds, bounded: negative is none, NaN is a second, and anything over a minute (an
/// infinity included) is a minute. Whatever a server says, it never panics.
pub fn bounded_wait(secs: f64) -> Duration {
    if secs.is_nan() {
        return Duration::from_secs(1);
    }
    Duration::from_secs_f64(secs.clamp(0.0, LONGEST_WAIT.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_says_the_largest_whole_unit() {
        assert_eq!(ago(-5), "just now");
        assert_eq!(ago(59_999), "just now");
        assert_eq!(ago(60_000), "1 minute ago");
        assert_eq!(ago(3 * 3_600_000 + 1), "3 hours ago");
        assert_eq!(ago(3 * 86_400_000), "3 days ago");
    }

    #[test]
    fn any_wait_a_server_asks_for_is_bounded_and_never_panics() {
        assert_eq!(bounded_wait(2.5), Duration::from_millis(2500));
        assert_eq!(bounded_wait(-3.0), Duration::ZERO);
        assert_eq!(bounded_wait(f64::NAN), Duration::from_secs(1));
        assert_eq!(bounded_wait(f64::INFINITY), LONGEST_WAIT);
        assert_eq!(bounded_wait(f64::NEG_INFINITY), Duration::ZERO);
        assert_eq!(bounded_wait(1e300), LONGEST_WAIT);
        assert_eq!(bounded_wait(u64::MAX as f64), LONGEST_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_only_with_tokio_time() {
        let clock = Clock::tokio();
        let before = clock.now_ms();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms() - before, 3_600_000);
    }
}
