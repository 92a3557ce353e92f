//! What travels on the bus (the README's "Production deployment"): JSON, versioned by `v`, keyed by run id.
//! Each message has one constructor, and `Envelope` turns it into what a topic carries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{self, Millis};
use crate::domain::{Actor, Audit, Budget, EventKind, Run, RunId, budgets_of, request_id};
use crate::workflow::Action;

pub const VERSION: u32 = 1;
pub const PROGRESS_TOPIC: &str = "lifeboat.progress";
pub const EVENTS_TOPIC: &str = "lifeboat.events";

pub fn work_topic(agent: &str) -> String {
    format!("lifeboat.work.{agent}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkRequest {
    pub v: u32,
    /// `run/stage/attempt`: the idempotency key.
    pub id: String,
    pub run_id: RunId,
    pub stage: String,
    pub agent: String,
    pub attempt: u32,
    pub spec: Value,
    pub resource: String,
    pub deadline: Millis,
    pub dry_run: bool,
    /// A person approved the stage's data-loss gate: promote although writes are lost.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_data_loss: bool,
    /// The `limits:` the work counts against, taken with its lease.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
    /// The stage's timeout, in ms: after waiting for a budget, the work gets all of it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl WorkRequest {
    /// The current attempt of a run's stage. `now` dates the deadline of an attempt that
    /// has none yet.
    pub fn for_stage(run: &Run, stage: usize, now: Millis) -> WorkRequest {
        let s = &run.stages[stage];
        let p = &run.plan[stage];
        WorkRequest {
            v: VERSION,
            id: request_id(run.id, &p.name, s.attempts),
            run_id: run.id,
            stage: p.name.clone(),
            agent: p.agent.clone(),
            attempt: s.attempts,
            spec: p.spec.clone(),
            resource: run.resource(stage),
            deadline: s.deadline.unwrap_or_else(|| clock::add(now, p.timeout)),
            dry_run: run.dry_run,
            accept_data_loss: s.hold.is_some() && s.approved_by.is_some(),
            budgets: budgets_of(p, run.dry_run),
            timeout_ms: u64::try_from(p.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressKind {
    Accepted,
    Progress,
    Succeeded,
    Failed,
    /// Stopped for a person to decide: a data-loss gate.
    Held,
    /// Not started yet: waiting for a budget (`limits:`). Said again every few seconds
    /// while it lasts.
    Waiting,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub v: u32,
    pub request_id: String,
    pub run_id: RunId,
    pub stage: String,
    pub attempt: u32,
    pub kind: ProgressKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    pub at: Millis,
    pub agent_instance: String,
}

/// A run or stage lifecycle event, for notifiers and other consumers. One per audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub v: u32,
    /// `RUN/VERSION/N`: the Nth record of the write that took the run to VERSION. The same
    /// event delivered twice (a re-sent outbox row) has the same id, so a consumer that
    /// must act once — a chat post — keys on it. Empty in events written before it existed.
    #[serde(default)]
    pub id: String,
    pub run_id: RunId,
    pub group: String,
    pub action: Action,
    pub dry_run: bool,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub actor: Actor,
    pub at: Millis,
}

impl RunEvent {
    /// The event of the `nth` audit record of the write that took `run` to its version.
    pub fn of(run: &Run, audit: &Audit, nth: usize) -> RunEvent {
        RunEvent {
            v: VERSION,
            id: format!("{}/{}/{nth}", run.id, run.version),
            run_id: run.id,
            group: run.group.clone(),
            action: run.action,
            dry_run: run.dry_run,
            kind: audit.kind,
            stage: audit.stage.clone(),
            attempt: audit.attempt,
            message: audit.message.clone(),
            actor: audit.actor.clone(),
            at: audit.at,
        }
    }
}

/// A message ready to leave: its topic, its key (the run, so that one run's messages stay
/// in order) and its JSON. What the outbox stores.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub topic: String,
    pub key: String,
    pub payload: String,
}

impl Envelope {
    pub fn work(w: &WorkRequest) -> serde_json::Result<Envelope> {
        Ok(Envelope {
            topic: work_topic(&w.agent),
            key: w.run_id.to_string(),
            payload: serde_json::to_string(w)?,
        })
    }

    pub fn progress(p: &Progress) -> serde_json::Result<Envelope> {
        Ok(Envelope {
            topic: PROGRESS_TOPIC.to_string(),
            key: p.run_id.to_string(),
            payload: serde_json::to_string(p)?,
        })
    }

    pub fn event(e: &RunEvent) -> serde_json::Result<Envelope> {
        Ok(Envelope {
            topic: EVENTS_TOPIC.to_string(),
            key: e.run_id.to_string(),
            payload: serde_json::to_string(e)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixture;

    #[test]
    fn messages_are_built_as_they_were_before_their_types_were_typed() {
        let run = fixture::run();
        let event = RunEvent::of(&run, &fixture::audit()[3], 2);
        assert_eq!(
            serde_json::to_string(&event).expect("json"),
            include_str!("../../tests/fixtures/event-fixed.json")
        );
        let work = WorkRequest::for_stage(&run, 2, 1_795_625_669_917);
        assert_eq!(
            serde_json::to_string(&work).expect("json"),
            include_str!("../../tests/fixtures/work-fixed.json")
        );
        let envelope = Envelope::work(&work).expect("an envelope");
        assert_eq!(envelope.topic, "lifeboat.work.dial");
        assert_eq!(envelope.key, run.id.to_string());
    }
}
