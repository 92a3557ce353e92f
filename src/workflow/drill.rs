//! A group's `drill:` schedule: `{ every: 6h }` or `{ cron: "0 3 * * *" }` (UTC). Its
//! times are the same on every replica (`every` counts from the Unix epoch), so that a
//! time names one drill wherever it is asked for.

use std::fmt;
use std::time::Duration;

use crate::clock::Millis;

#[derive(Clone)]
pub enum DrillSchedule {
    Every(Duration),
    Cron {
        written: String,
        cron: Box<croner::Cron>,
    },
}

impl fmt::Debug for DrillSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DrillSchedule({self})")
    }
}

impl fmt::Display for DrillSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrillSchedule::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
            DrillSchedule::Cron { written, .. } => write!(f, "cron \"{written}\" (UTC)"),
        }
    }
}

impl DrillSchedule {
    /// `every`: a duration of at least a second.
    pub fn every(text: &str) -> Result<DrillSchedule, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}` is not a duration ({e}); write it like 6h or 30s"))?;
        if d < Duration::from_secs(1) {
            return Err(format!(
                "`{text}` is under a second: drill at most once a second"
            ));
        }
        Ok(DrillSchedule::Every(d))
    }

    /// `cron`: five fields (minute, hour, day of month, month, day of week), in UTC.
    pub fn cron(text: &str) -> Result<DrillSchedule, String> {
        let cron = croner::Cron::new(text.trim()).parse().map_err(|e| {
            format!("`{text}` is not a cron schedule ({e}); write it like \"0 3 * * *\"")
        })?;
        Ok(DrillSchedule::Cron {
            written: text.trim().to_string(),
            cron: Box::new(cron),
        })
    }

    /// The first drill time after `after` (ms since the epoch); `None` if the schedule
    /// never comes again.
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        match self {
            DrillSchedule::Every(d) => {
                let every = i64::try_from(d.as_millis()).ok()?.max(1);
                Some((after.div_euclid(every) + 1).saturating_mul(every))
            }
            DrillSchedule::Cron { cron, .. } => {
                let at = chrono::DateTime::from_timestamp_millis(after)?;
                let next = cron.find_next_occurrence(&at, false).ok()?;
                Some(next.timestamp_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_counted_from_the_epoch_and_cron_in_utc() {
        let every = DrillSchedule::every("6h").expect("6h");
        let six_hours = 6 * 3_600_000;
        assert_eq!(every.next_after(0), Some(six_hours));
        assert_eq!(every.next_after(six_hours - 1), Some(six_hours));
        assert_eq!(every.next_after(six_hours), Some(2 * six_hours));
        let daily = DrillSchedule::cron("0 3 * * *").expect("a cron");
        // 2026-12-06T12:00:00Z: the next 03:00 UTC is the morning after.
        let noon = 1_796_558_400_000;
        assert_eq!(daily.next_after(noon), Some(noon + 15 * 3_600_000));
        assert!(
            DrillSchedule::every("500ms")
                .expect_err("too often")
                .contains("under a second")
        );
        assert!(DrillSchedule::every("often").is_err());
        assert!(
            DrillSchedule::cron("61 * * * *")
                .expect_err("no minute 61")
                .contains("not a cron schedule")
        );
        assert_eq!(daily.to_string(), "cron \"0 3 * * *\" (UTC)");
        assert_eq!(every.to_string(), "every 6h");
    }
}
