//! Leases as the semaphore hands them out and records their ends.

use super::ids::RunId;
use super::report::Report;
use crate::clock::Millis;
pub use crate::workflow::Budget;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeKind {
    Succeeded,
    Failed,
    /// The agent stopped short for a person to decide: a promote that would lose more
    /// writes than the stage allows.
    Held,
    Expired,
    Revoked,
}

crate::string_enum::string_enum!(OutcomeKind, "lease outcome", "" {
    Succeeded = "succeeded",
    Failed = "failed",
    Held = "held",
    Expired = "expired",
    Revoked = "revoked",
});

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
    /// When the holder took the lease: its attempt's start. Work that ends at once never
    /// says it started, and the orchestrator records the start from here.
    pub acquired_at: Option<Millis>,
}

#[derive(Clone, Debug)]
pub struct LeaseRequest {
    pub resource: String,
    pub request_id: String,
    pub run_id: RunId,
    pub stage: String,
    pub attempt: u32,
    pub holder: String,
    /// The budgets the work counts against, each taken with the lease and given back with it.
    pub budgets: Vec<Budget>,
}

/// What a stage's agent says while it waits for a budget; the orchestrator holds the
/// attempt's deadline off on it.
pub const WAITING_FOR_BUDGET: &str = "waiting for budget";

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
    /// Every slot of a budget is taken: `held` of `limit`.
    OverBudget {
        budget: String,
        held: u32,
        limit: u32,
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
