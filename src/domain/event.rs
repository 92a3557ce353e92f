//! What happened to a run, in the words the audit log, the bus and the API use:
//! `run.created`, `run.<state>`, `stage.<state>`, `approval.requested`, `stage.approved`,
//! `stage.rejected`, `run.resumed`, `preflight.overridden`, `work.refused`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::actor::Actor;
use super::ids::RunId;
use super::run::{RunState, StageState};
use crate::clock::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `run.created`: a trigger asked for the run.
    RunCreated,
    /// `run.<state>`: the run moved to this state.
    Run(RunState),
    /// `stage.<state>`: a stage moved to this state.
    Stage(StageState),
    /// `approval.requested`: a gate opened and waits for a person.
    ApprovalRequested,
    /// `stage.approved`: a person (or a dry run) passed a gate.
    StageApproved,
    /// `stage.rejected`: a person said no at a gate.
    StageRejected,
    /// `run.resumed`: a person went on from a failed or cancelled run.
    RunResumed,
    /// `preflight.overridden`: a run started although no live agent serves a kind it
    /// needs, because its requester said `force`.
    PreflightOverridden,
    /// `drift.overridden`: a failback worked out from a failover started without checking
    /// that the estate is as the failover left it, because its requester said `force`.
    DriftOverridden,
    /// `alerts.joined`: more alerts were folded into the run. Sent on the bus for cards to
    /// count them; not a state change, so never in the audit log.
    AlertsJoined,
    /// `work.refused`: an agent refused a work request for the run that does not match
    /// what the store holds (a forged or stale message); nothing ran.
    WorkRefused,
}

impl EventKind {
    /// The run ended (succeeded, failed or was cancelled).
    pub fn ends_run(self) -> bool {
        matches!(self, EventKind::Run(s) if s.is_final())
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::RunCreated => f.write_str("run.created"),
            EventKind::Run(state) => write!(f, "run.{state}"),
            EventKind::Stage(state) => write!(f, "stage.{state}"),
            EventKind::ApprovalRequested => f.write_str("approval.requested"),
            EventKind::StageApproved => f.write_str("stage.approved"),
            EventKind::StageRejected => f.write_str("stage.rejected"),
            EventKind::AlertsJoined => f.write_str("alerts.joined"),
            EventKind::RunResumed => f.write_str("run.resumed"),
            EventKind::PreflightOverridden => f.write_str("preflight.overridden"),
            EventKind::DriftOverridden => f.write_str("drift.overridden"),
            EventKind::WorkRefused => f.write_str("work.refused"),
        }
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let unknown = || format!("unknown event kind `{s}`");
        Ok(match s {
            "run.created" => EventKind::RunCreated,
            "approval.requested" => EventKind::ApprovalRequested,
            "stage.approved" => EventKind::StageApproved,
            "stage.rejected" => EventKind::StageRejected,
            "alerts.joined" => EventKind::AlertsJoined,
            "run.resumed" => EventKind::RunResumed,
            "preflight.overridden" => EventKind::PreflightOverridden,
            "drift.overridden" => EventKind::DriftOverridden,
            "work.refused" => EventKind::WorkRefused,
            _ => {
                if let Some(state) = s.strip_prefix("run.") {
                    EventKind::Run(state.parse().map_err(|_| unknown())?)
                } else if let Some(state) = s.strip_prefix("stage.") {
                    EventKind::Stage(state.parse().map_err(|_| unknown())?)
                } else {
                    return Err(unknown());
                }
            }
        })
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One audit record: every state change, with who caused it.
#[derive(Clone, Debug, PartialEq)]
pub struct Audit {
    pub at: Millis,
    pub actor: Actor,
    pub kind: EventKind,
    pub stage: Option<String>,
    pub attempt: Option<u32>,
    pub message: Option<String>,
}

/// An audit record and the run it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct RunAudit {
    pub run: RunId,
    pub audit: Audit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_wire_text() {
        let mut kinds = vec![
            EventKind::RunCreated,
            EventKind::ApprovalRequested,
            EventKind::StageApproved,
            EventKind::StageRejected,
            EventKind::AlertsJoined,
            EventKind::RunResumed,
            EventKind::PreflightOverridden,
            EventKind::WorkRefused,
        ];
        kinds.extend(RunState::ALL.iter().map(|s| EventKind::Run(*s)));
        kinds.extend(StageState::ALL.iter().map(|s| EventKind::Stage(*s)));
        for k in kinds {
            assert_eq!(k.to_string().parse::<EventKind>(), Ok(k), "{k}");
        }
        assert_eq!(
            EventKind::Run(RunState::AwaitingApproval).to_string(),
            "run.awaiting_approval"
        );
        assert_eq!(
            EventKind::Stage(StageState::Failed).to_string(),
            "stage.failed"
        );
        assert!("stage.exploded".parse::<EventKind>().is_err());
        assert!("approval".parse::<EventKind>().is_err());
    }
}
