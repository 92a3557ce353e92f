//! What travels on the bus (DESIGN.md section 7): JSON, versioned by `v`, keyed by run id.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Millis;
use crate::ids::RunId;

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressKind {
    Accepted,
    Progress,
    Succeeded,
    Failed,
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
    pub action: String,
    pub dry_run: bool,
    /// `run.<state>`, `stage.<state>`, `stage.approved`, `approval.requested`, …
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub actor: String,
    pub at: Millis,
}
