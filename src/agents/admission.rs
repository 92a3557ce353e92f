//! Whether a work request may run: only the attempt the orchestrator stored, as it stored
//! it. The bus is not trusted; the store is, since every agent already depends on it for
//! leases. So the request on the bus only names an attempt, and what runs is read from the
//! store: a forged, altered or replayed message runs nothing.

use std::fmt;

use crate::bus::WorkRequest;
use crate::domain::StageState;
use crate::store::StoredWork;

/// The largest work request an agent reads. A stage's spec is a few kilobytes of YAML;
/// anything near Kafka's default message limit is not one of ours.
pub const MAX_REQUEST_BYTES: usize = 512 * 1024;

/// What to do with a request.
#[derive(Debug)]
pub enum Verdict {
    /// Run this: the attempt as the store has it.
    Admit(WorkRequest),
    /// The request has ended already (a redelivery or a replay of a finished attempt):
    /// nothing to do, and nothing suspicious.
    Ended,
    Refuse(Refused),
}

/// Why a request was refused: the `reason` label of `lifeboat_work_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Oversized,
    Malformed,
    UnknownRun,
    UnknownStage,
    WrongAgent,
    StaleAttempt,
    SpecMismatch,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Oversized => "oversized",
            Reason::Malformed => "malformed",
            Reason::UnknownRun => "unknown_run",
            Reason::UnknownStage => "unknown_stage",
            Reason::WrongAgent => "wrong_agent",
            Reason::StaleAttempt => "stale_attempt",
            Reason::SpecMismatch => "spec_mismatch",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    pub reason: Reason,
    pub detail: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

/// A claimed name as logs and the audit show it: the sender chose it, so at most 64
/// characters of it.
pub fn clip(claimed: &str) -> &str {
    match claimed.char_indices().nth(64) {
        Some((end, _)) => &claimed[..end],
        None => claimed,
    }
}

fn refuse(reason: Reason, detail: String) -> Verdict {
    Verdict::Refuse(Refused { reason, detail })
}

/// Judges `claimed`, read from `kind`'s work topic, against what the store holds of the
/// stage it names.
pub fn judge(claimed: &WorkRequest, kind: &str, stored: StoredWork) -> Verdict {
    let (state, current, ended) = match stored {
        StoredWork::NoRun => {
            return refuse(
                Reason::UnknownRun,
                format!("no run {} in the store", claimed.run_id),
            );
        }
        StoredWork::NoStage => {
            return refuse(
                Reason::UnknownStage,
                format!(
                    "run {} has no stage `{}`",
                    claimed.run_id,
                    clip(&claimed.stage)
                ),
            );
        }
        StoredWork::Stage {
            state,
            current,
            ended,
        } => (state, current, ended),
    };
    if current.agent != kind || claimed.agent != kind {
        return refuse(
            Reason::WrongAgent,
            format!(
                "stage `{}` is run by the {} agent, not by {kind}",
                current.stage, current.agent
            ),
        );
    }
    // A finished attempt delivered again is the bus doing its job, whatever else it says.
    if ended {
        return Verdict::Ended;
    }
    let in_flight = matches!(state, StageState::Dispatched | StageState::Running);
    if claimed.attempt != current.attempt || !in_flight {
        return refuse(
            Reason::StaleAttempt,
            format!(
                "attempt {} of `{}` is not in flight: the stage is {state} at attempt {}",
                claimed.attempt, current.stage, current.attempt
            ),
        );
    }
    let differs: Vec<&str> = [
        ("id", claimed.id != current.id),
        ("spec", claimed.spec != current.spec),
        ("resource", claimed.resource != current.resource),
        ("dry_run", claimed.dry_run != current.dry_run),
        (
            "accept_data_loss",
            claimed.accept_data_loss != current.accept_data_loss,
        ),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect();
    if !differs.is_empty() {
        return refuse(
            Reason::SpecMismatch,
            format!(
                "the request's {} differ from attempt {} of `{}` as stored",
                differs.join(", "),
                current.attempt,
                current.stage
            ),
        );
    }
    // An in-flight stage always has its deadline stored; a row without one (0) would
    // otherwise never run.
    let deadline = if current.deadline == 0 {
        claimed.deadline
    } else {
        current.deadline
    };
    Verdict::Admit(WorkRequest {
        deadline,
        ..*current
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunId, request_id};
    use serde_json::json;

    fn stored(state: StageState, ended: bool) -> (WorkRequest, StoredWork) {
        let run = RunId::new();
        let current = WorkRequest {
            v: 1,
            id: request_id(run, "promote", 2),
            run_id: run,
            stage: "promote".into(),
            agent: "database".into(),
            attempt: 2,
            spec: json!({"target": "db-b", "action": "promote"}),
            resource: "database:db-b".into(),
            deadline: 1_000,
            dry_run: true,
            accept_data_loss: false,
            budgets: Vec::new(),
            timeout_ms: 0,
        };
        let s = StoredWork::Stage {
            state,
            current: Box::new(current.clone()),
            ended,
        };
        (current, s)
    }

    fn reason(v: Verdict) -> Option<Reason> {
        match v {
            Verdict::Refuse(r) => Some(r.reason),
            _ => None,
        }
    }

    #[test]
    fn the_stored_attempt_runs_as_stored() {
        let (mut claimed, s) = stored(StageState::Dispatched, false);
        // A deadline is not the message's to set: the stored one is used.
        claimed.deadline = i64::MAX;
        match judge(&claimed, "database", s) {
            Verdict::Admit(req) => assert_eq!(req.deadline, 1_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_the_store_does_not_hold_are_refused() {
        let (claimed, _) = stored(StageState::Running, false);
        assert_eq!(
            reason(judge(&claimed, "database", StoredWork::NoRun)),
            Some(Reason::UnknownRun)
        );
        assert_eq!(
            reason(judge(&claimed, "database", StoredWork::NoStage)),
            Some(Reason::UnknownStage)
        );
        let (claimed, s) = stored(StageState::Running, false);
        assert_eq!(reason(judge(&claimed, "exec", s)), Some(Reason::WrongAgent));
        let (mut claimed, s) = stored(StageState::Running, false);
        claimed.attempt = 3;
        assert_eq!(
            reason(judge(&claimed, "database", s)),
            Some(Reason::StaleAttempt)
        );
        let (claimed, s) = stored(StageState::Retrying, false);
        assert_eq!(
            reason(judge(&claimed, "database", s)),
            Some(Reason::StaleAttempt)
        );
    }

    #[test]
    fn an_altered_spec_or_a_real_run_passed_off_as_a_dry_run_is_refused() {
        let (mut claimed, s) = stored(StageState::Running, false);
        claimed.spec = json!({"target": "db-a", "action": "promote"});
        assert_eq!(
            reason(judge(&claimed, "database", s)),
            Some(Reason::SpecMismatch)
        );
        let (mut claimed, s) = stored(StageState::Running, false);
        claimed.dry_run = false;
        claimed.resource = "database:db-b".into();
        match judge(&claimed, "database", s) {
            Verdict::Refuse(r) => assert!(r.detail.contains("dry_run"), "{r}"),
            other => panic!("{other:?}"),
        }
        // Only a person's approval, as stored, lets a promote lose writes.
        let (mut claimed, s) = stored(StageState::Running, false);
        claimed.accept_data_loss = true;
        match judge(&claimed, "database", s) {
            Verdict::Refuse(r) => assert!(r.detail.contains("accept_data_loss"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_finished_attempt_delivered_again_is_no_refusal() {
        let (claimed, s) = stored(StageState::Succeeded, true);
        assert!(matches!(judge(&claimed, "database", s), Verdict::Ended));
    }
}
