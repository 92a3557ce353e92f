//! Leases as the semaphore hands them out and records their ends.

use std::str::FromStr;

use super::ids::RunId;
use super::report::Report;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    Succeeded,
    Failed,
    Expired,
    Revoked,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Succeeded => "succeeded",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Expired => "expired",
            OutcomeKind::Revoked => "revoked",
        }
    }
}

impl FromStr for OutcomeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "succeeded" => OutcomeKind::Succeeded,
            "failed" => OutcomeKind::Failed,
            "expired" => OutcomeKind::Expired,
            "revoked" => OutcomeKind::Revoked,
            other => return Err(format!("unknown lease outcome `{other}`")),
        })
    }
}

/// How a request's lease ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseOutcome {
    pub request_id: String,
    pub run_id: RunId,
    pub stage: String,
    pub attempt: u32,
    pub kind: OutcomeKind,
    pub retryable: bool,
    pub message: Option<String>,
    /// What the agent checked and changed, when it says.
    pub report: Option<Report>,
    /// The instance that held the lease; none for a lease revoked before anyone took it.
    pub holder: Option<String>,
    /// Wall-clock microseconds of the release: the start of the orchestration overhead.
    pub released_us: i64,
}

#[derive(Clone, Debug)]
pub struct LeaseRequest {
    pub resource: String,
    pub request_id: String,
    pub run_id: RunId,
    pub stage: String,
    pub attempt: u32,
    pub holder: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Acquire {
    Acquired,
    /// This request already ended; do nothing.
    Ended(OutcomeKind),
    /// This request's lease is held already (a redelivery while someone works on it).
    InProgress {
        holder: String,
    },
    /// Another request holds the resource.
    Busy {
        request_id: String,
    },
}

/// One lease taken back inside a state change: the attempt's agent must stop.
#[derive(Clone, Debug, PartialEq)]
pub struct Revocation {
    pub request_id: String,
    pub run_id: RunId,
    pub stage: String,
    pub attempt: u32,
    pub reason: String,
}
