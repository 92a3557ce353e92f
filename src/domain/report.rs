//! What a provider found and would change: its report for a stage, above all in a dry run,
//! so that a drill says exactly what a failover would change.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// What promoting loses: measured before a database stage promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RecoveryPoint>,
    /// The replica's lag behind its writer, in seconds, as measured for `max_lag`: kept
    /// apart from the checks' words so that a drill's lag is a number for readiness and
    /// the metrics, also when the stage failed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_s: Option<f64>,
    /// How long the attempt waited for a budget (`limits:`) before its work began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_wait_s: Option<f64>,
}

/// The recovery point: the writes the promoted side would not have, as time and as WAL
/// bytes (each when the provider can tell).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    pub basis: Basis,
    /// The stage's `max_data_loss`, in seconds, when it set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

/// How the recovery point was had: `measured` against the writer (or reported by the
/// cloud), or `estimated` from the replica alone when the writer does not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Measured,
    Estimated,
}

impl RecoveryPoint {
    /// Over the stage's limit: its seconds are over it, or unknown while bytes are (or may
    /// be) behind; a limit of nothing is over at any byte behind.
    pub fn over_limit(&self) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let behind = self.bytes.is_none_or(|b| b > 0);
        match self.seconds {
            Some(s) => s > limit || (limit <= 0.0 && self.bytes.is_some_and(|b| b > 0)),
            None => behind,
        }
    }

    /// "about 42 s / 18 MB of writes (measured)".
    pub fn loss(&self) -> String {
        let time = self.seconds.map(seconds);
        let size = self.bytes.map(bytes);
        let what = match (time, size) {
            (Some(t), Some(b)) => format!("about {t} / {b}"),
            (Some(t), None) => format!("about {t}"),
            (None, Some(b)) => format!("about {b}"),
            (None, None) => "an unknown amount".into(),
        };
        let basis = match self.basis {
            Basis::Measured => "measured",
            Basis::Estimated => "estimated",
        };
        format!("{what} of writes ({basis})")
    }
}

/// A duration as people say it: `0.3 s`, `42 s`, `3 min 12 s`, `2 h 5 min`.
fn seconds(s: f64) -> String {
    let s = s.max(0.0);
    if s < 10.0 {
        let tenths = (s * 10.0).round() / 10.0;
        return format!("{tenths} s");
    }
    let whole = s.round() as u64;
    match whole {
        0..120 => format!("{whole} s"),
        120..7200 => format!("{} min {} s", whole / 60, whole % 60),
        _ => format!("{} h {} min", whole / 3600, whole / 60 % 60),
    }
}

/// A size in decimal units: `512 B`, `18 MB`, `1.2 GB`.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{} {}", value.round(), UNITS[unit])
    } else {
        format!("{:.1} {}", value, UNITS[unit])
    }
}

/// A precondition and whether it holds: `replica lag 0.3 s ≤ 10 s`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// One change, made or planned: `petstore.example.com A: 192.0.2.10 → 192.0.2.20`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub target: String,
    pub from: String,
    pub to: String,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
            && self.changes.is_empty()
            && self.rpo.is_none()
            && self.lag_s.is_none()
            && self.budget_wait_s.is_none()
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "✓" } else { "✗" };
        write!(f, "{mark} {}: {}", self.name, self.detail)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} → {}", self.target, self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpo(seconds: Option<f64>, bytes: Option<u64>, limit: Option<f64>) -> RecoveryPoint {
        RecoveryPoint {
            seconds,
            bytes,
            basis: Basis::Measured,
            limit,
        }
    }

    #[test]
    fn a_loss_is_said_in_words() {
        assert_eq!(
            rpo(Some(42.2), Some(18_300_000), None).loss(),
            "about 42 s / 18 MB of writes (measured)"
        );
        assert_eq!(
            rpo(Some(0.34), None, None).loss(),
            "about 0.3 s of writes (measured)"
        );
        assert_eq!(
            RecoveryPoint {
                basis: Basis::Estimated,
                ..rpo(Some(192.0), Some(1_250_000_000), None)
            }
            .loss(),
            "about 3 min 12 s / 1.2 GB of writes (estimated)"
        );
        assert_eq!(
            rpo(None, Some(512), None).loss(),
            "about 512 B of writes (measured)"
        );
        assert_eq!(
            rpo(None, None, None).loss(),
            "an unknown amount of writes (measured)"
        );
    }

    #[test]
    fn over_the_limit_is_over_it_in_time_or_unknown_with_bytes_behind() {
        assert!(!rpo(Some(9.0), Some(1), None).over_limit(), "no limit");
        assert!(!rpo(Some(5.0), Some(1), Some(5.0)).over_limit());
        assert!(rpo(Some(5.1), Some(1), Some(5.0)).over_limit());
        assert!(rpo(None, Some(1), Some(5.0)).over_limit());
        assert!(!rpo(None, Some(0), Some(0.0)).over_limit());
        assert!(
            rpo(Some(0.0), Some(120), Some(0.0)).over_limit(),
            "zero means no byte"
        );
        assert!(!rpo(Some(0.0), Some(120), Some(1.0)).over_limit());
        assert!(
            rpo(None, None, Some(5.0)).over_limit(),
            "unknown is not safe"
        );
    }
}
