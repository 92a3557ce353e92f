//! The words every file shares: actions and retry policies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(with = "millis")]
    pub initial_backoff: Duration,
    #[serde(with = "millis")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Failover,
    Failback,
    /// A rehearsal of the failover: agents check preconditions, nothing changes.
    Drill,
    /// Make what a failover left behind a replica again.
    Reprotect,
}

crate::string_enum::string_enum!(Action, "action", " (expected failover, failback, drill or reprotect)" {
    Failover = "failover",
    Failback = "failback",
    Drill = "drill",
    Reprotect = "reprotect",
});
