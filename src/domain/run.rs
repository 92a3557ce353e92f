//! A run and its stages as the store keeps them (the README's "How it works").

use serde::{Deserialize, Serialize};

use super::actor::Actor;
use super::ids::RunId;
use super::report::Report;
use crate::clock::Millis;
use crate::workflow::{Action, Params, PlannedStage};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Pending,
    Running,
    AwaitingApproval,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    #[default]
    Pending,
    /// Dependencies done; waiting for dispatch or, at a gate, for approval.
    Ready,
    Dispatched,
    Running,
    /// Between attempts, waiting out the backoff.
    Retrying,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

crate::string_enum::string_enum!(RunState, "run state", "" {
    Pending = "pending",
    Running = "running",
    AwaitingApproval = "awaiting_approval",
    Succeeded = "succeeded",
    Failed = "failed",
    Cancelled = "cancelled",
});

crate::string_enum::string_enum!(StageState, "stage state", "" {
    Pending = "pending",
    Ready = "ready",
    Dispatched = "dispatched",
    Running = "running",
    Retrying = "retrying",
    Succeeded = "succeeded",
    Failed = "failed",
    Skipped = "skipped",
    Cancelled = "cancelled",
});

impl RunState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
}

impl StageState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            StageState::Succeeded
                | StageState::Failed
                | StageState::Skipped
                | StageState::Cancelled
        )
    }
    /// An agent may be working on it right now.
    pub fn in_flight(self) -> bool {
        matches!(self, StageState::Dispatched | StageState::Running)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    pub state: StageState,
    /// Attempts started so far; the current attempt's number.
    pub attempts: u32,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub message: Option<String>,
    /// When the next attempt is due (state `retrying`).
    pub retry_at: Option<Millis>,
    /// When the current attempt times out (states `dispatched`, `running`).
    pub deadline: Option<Millis>,
    /// Who passed its gate: the approval that made up the number the group asks for.
    pub approved_by: Option<Actor>,
    /// Every approval given at its gate so far, one per person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// A person skipped it: its dependents go on as if it had succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_by: Option<Actor>,
    /// Attempts made before the run was last resumed: the retry budget counts from here,
    /// while attempt numbers (and so request ids) keep counting.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub budget_from: u32,
    /// What the provider checked and changed (or would change, in a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// The agent stopped at a data-loss gate: a person decides whether to go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
}

/// A gate an agent raised while it worked: promoting now would lose more writes than the
/// stage allows. Approving runs the stage again, accepting the loss; rejecting fails it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// What a person decides on: "promoting petstore-region-a now loses about 42 s / 18 MB
    /// of writes (measured)".
    pub message: String,
    /// Different people needed: the group's `approvals`, and at least two when the stage
    /// allows no loss at all.
    pub approvals: u8,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One person's yes at a gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub by: Actor,
    /// Who `by` is, as the group's `people` name them: one person counts once.
    pub person: String,
    pub at: Millis,
}

impl StageRun {
    /// Done, as far as its dependents are concerned.
    pub fn lets_dependents_go(&self) -> bool {
        self.state == StageState::Succeeded
            || (self.state == StageState::Skipped && self.skipped_by.is_some())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub group: String,
    pub action: Action,
    pub workflow: String,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub requested_by: Actor,
    pub params: Params,
    /// The params it was asked with, before the workflow's and the group's were merged in
    /// (`None` for runs stored before they were kept).
    pub overrides: Option<Params>,
    pub state: RunState,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub message: Option<String>,
    pub plan: Vec<PlannedStage>,
    pub stages: Vec<StageRun>,
    /// Bumped by every stored change; a write against a stale version is refused.
    pub version: i64,
}

impl Run {
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.plan.iter().position(|s| s.name == name)
    }

    /// The lease key of a stage: its declared resource, or one only it uses.
    pub fn resource(&self, stage: usize) -> String {
        resource_key(self.id, &self.plan[stage], self.dry_run)
    }

    /// Gates open now: ready, needing approval (planned, or raised by its agent), not yet
    /// approved.
    pub fn open_gates(&self) -> Vec<usize> {
        (0..self.plan.len())
            .filter(|&i| {
                self.stages[i].state == StageState::Ready
                    && self.gated(i)
                    && self.stages[i].approved_by.is_none()
            })
            .collect()
    }

    /// Whether stage `i` waits for a person before it runs: an approval gate, or a hold.
    pub fn gated(&self, i: usize) -> bool {
        self.plan[i].approval || self.stages[i].hold.is_some()
    }

    /// Different people stage `i`'s gate needs.
    pub fn approvals_needed(&self, i: usize) -> u8 {
        let held = self.stages[i].hold.as_ref().map_or(0, |h| h.approvals);
        self.plan[i].approvals.max(held).max(1)
    }

    /// The earliest timer this run waits for.
    pub fn next_wake(&self) -> Option<Millis> {
        self.stages
            .iter()
            .filter_map(|s| match s.state {
                StageState::Retrying => s.retry_at,
                StageState::Dispatched | StageState::Running => s.deadline,
                _ => None,
            })
            .min()
    }

    /// One run per group, action and dry-run-ness may be active at a time.
    pub fn active_key(&self) -> String {
        active_key(&self.group, self.action, self.dry_run)
    }
}

/// The lease key of a planned stage of a run: its declared resource, or one only it uses.
pub fn resource_key(run: RunId, stage: &PlannedStage, dry_run: bool) -> String {
    let resource = stage
        .resource
        .clone()
        .unwrap_or_else(|| format!("stage:{run}/{}", stage.name));
    // A dry run never contends with real work for a resource.
    if dry_run {
        format!("dry-run:{resource}")
    } else {
        resource
    }
}

/// The budgets a stage's work takes: a dry run's are kept apart, so that a drill never
/// slows a real failover, while still sparing the APIs they cap.
pub fn budgets_of(stage: &PlannedStage, dry_run: bool) -> Vec<super::Budget> {
    stage
        .budgets
        .iter()
        .map(|b| super::Budget {
            key: if dry_run {
                format!("dry-run:{}", b.key)
            } else {
                b.key.clone()
            },
            limit: b.limit,
        })
        .collect()
}

pub fn active_key(group: &str, action: Action, dry_run: bool) -> String {
    format!("{group}/{action}{}", if dry_run { "/dry-run" } else { "" })
}
