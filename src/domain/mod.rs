//! The types the store, the orchestrator, the agents and the API all speak: runs and
//! their states, audit records and event kinds, actors, leases, and identifiers. Below all
//! of them; it does no I/O.

pub mod actor;
pub mod alert;
pub mod control;
pub mod evacuation;
pub mod event;
#[cfg(test)]
pub(crate) mod fixture;
pub mod ids;
pub mod lease;
pub mod offer;
pub mod report;
pub mod run;
pub mod scorecard;

pub use actor::{Actor, Platform};
pub use alert::{Alert, AlertBrief, AlertDecision, AlertTally, Source, Status};
pub use control::Control;
pub use event::{Audit, EventKind, RunAudit};
pub use ids::{EvacuationId, RunId, request_id};
pub use lease::{
    Acquire, Budget, LeaseOutcome, LeaseRequest, OutcomeKind, Revocation, WAITING_FOR_BUDGET,
};
pub use offer::{Offer, OfferMode, OfferState};
pub use report::{Basis, Change, Check, RecoveryPoint, Report};
pub use run::{Approval, Hold, Run, RunState, StageRun, StageState, active_key, budgets_of};
