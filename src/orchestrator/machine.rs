//! The orchestrator's transition function: `apply(run, input)` changes the run in memory
//! and returns what must happen because of it (dispatches, lease revocations, audit
//! records). It performs no I/O, so ordering, retries and recovery are tested without a
//! store or a bus; the engine persists the result and then carries out the actions.

use std::time::Duration;

use crate::clock::{self, Millis};
use crate::domain::{
    Actor, Approval, Audit, EventKind, Hold, Report, Run, RunState, StageState, WAITING_FOR_BUDGET,
};

/// How long an agent's word that it waits for a budget holds off a dispatched attempt's
/// deadline: agents say it again every few seconds, so only a dead one lets this pass.
pub const WAITING_HOLDS: Duration = Duration::from_secs(20);

/// What happened to a run, as the engine feeds it in.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The run was created; begin.
    Start,
    /// An agent took the lease and began the attempt.
    Accepted {
        stage: usize,
        attempt: u32,
        agent: Actor,
    },
    /// An agent waits for a budget (`limits:`) before it can take the attempt's lease:
    /// not a failure, so the attempt's deadline is held off while the agent keeps saying so.
    Waiting {
        stage: usize,
        attempt: u32,
        message: String,
    },
    /// The attempt's lease ended: released by its agent, expired, or revoked.
    Outcome {
        stage: usize,
        attempt: u32,
        outcome: Outcome,
        actor: Actor,
        /// What the agent checked and changed, kept with the stage.
        report: Option<Report>,
        /// When `actor` took the lease, for an attempt its agent ended before saying it
        /// had started: the start goes on record with the end.
        started: Option<Millis>,
    },
    /// Time passed: backoffs and deadlines may be due.
    Tick,
    Approve {
        actor: Actor,
        stage: Option<usize>,
        /// Who `actor` is, and who asked for the run, as the group's `people` name them.
        person: String,
        requester: String,
    },
    Reject {
        actor: Actor,
        reason: Option<String>,
    },
    Cancel {
        actor: Actor,
        reason: Option<String>,
    },
    /// Go on from a failed or cancelled run: what did not succeed is planned again.
    Resume {
        actor: Actor,
        message: Option<String>,
    },
    /// Dispatch a stage waiting out its backoff now.
    RetryNow { actor: Actor, stage: usize },
    /// A person gives up on a failed stage; its dependents go on without it.
    Skip {
        actor: Actor,
        stage: usize,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Succeeded {
        message: Option<String>,
    },
    Failed {
        retryable: bool,
        message: String,
    },
    /// The agent stopped short for a person to decide (a promote that would lose more
    /// writes than the stage allows): the stage waits at a gate.
    Held {
        message: String,
    },
    /// The holder stopped heartbeating: the agent died or lost its way.
    Expired,
    /// The orchestrator took the lease back (timeout, cancel); already accounted for.
    Revoked,
}

/// A side effect, carried out by the engine after the new state is stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send the current attempt of this stage to its agent.
    Dispatch { stage: usize },
    /// Take back the lease of this attempt so its agent stops.
    Revoke {
        stage: usize,
        attempt: u32,
        reason: String,
    },
}

#[derive(Debug, Default)]
pub struct Transition {
    pub effects: Vec<Effect>,
    pub audit: Vec<Audit>,
    /// Stages whose row changed.
    pub changed: Vec<usize>,
    pub run_changed: bool,
}

impl Transition {
    pub fn is_empty(&self) -> bool {
        self.effects.is_empty()
            && self.audit.is_empty()
            && self.changed.is_empty()
            && !self.run_changed
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("run is already {0}")]
    Finished(RunState),
    #[error("no approval is pending")]
    NoApprovalPending,
    #[error("stage `{0}` is not waiting for approval")]
    NotAwaitingApproval(String),
    #[error("run is still {0}; only a failed or cancelled run can be resumed")]
    NotStopped(RunState),
    #[error("run already succeeded; there is nothing to resume")]
    NothingToResume,
    #[error("stage `{0}` is not waiting out a backoff (it is {1})")]
    NotRetrying(String, StageState),
    #[error("stage `{0}` is {1}; only a stage that failed, or waits to retry, can be skipped")]
    NotFailed(String, StageState),
    #[error("the requester may not approve their own run: this group needs {0} other people")]
    OwnRun(u8),
    #[error("`{0}` has approved this gate already; it needs another person")]
    AlreadyApproved(String),
    #[error("`{0}` is for an alert's offer, not a run")]
    OfferOnly(&'static str),
}

/// The delay before attempt `failed + 1`, given `failed` failures so far.
pub type Backoff<'a> = &'a (dyn Fn(&crate::workflow::RetryPolicy, u32) -> Duration + Sync);

pub struct Ctx<'a> {
    pub now: Millis,
    pub backoff: Backoff<'a>,
}

const SYSTEM: &Actor = &Actor::System;

/// The message of a dispatch a person asked for before the backoff ended.
pub const RETRIED_NOW: &str = "retry now: the backoff was cut short";

struct Step<'r, 'b> {
    run: &'r mut Run,
    now: Millis,
    backoff: Backoff<'b>,
    t: Transition,
}

impl Step<'_, '_> {
    fn audit(
        &mut self,
        actor: &Actor,
        kind: EventKind,
        stage: Option<usize>,
        message: Option<String>,
    ) {
        self.audit_at(self.now, actor, kind, stage, message);
    }

    fn audit_at(
        &mut self,
        at: Millis,
        actor: &Actor,
        kind: EventKind,
        stage: Option<usize>,
        message: Option<String>,
    ) {
        let (name, attempt) = match stage {
            Some(i) => (
                Some(self.run.plan[i].name.clone()),
                Some(self.run.stages[i].attempts),
            ),
            None => (None, None),
        };
        self.t.audit.push(Audit {
            at,
            actor: actor.clone(),
            kind,
            stage: name,
            attempt,
            message,
        });
    }

    fn touch(&mut self, stage: usize) {
        if !self.t.changed.contains(&stage) {
            self.t.changed.push(stage);
        }
    }

    fn set_stage(&mut self, i: usize, state: StageState, actor: &Actor, message: Option<String>) {
        self.set_stage_at(self.now, i, state, actor, message);
    }

    fn set_stage_at(
        &mut self,
        at: Millis,
        i: usize,
        state: StageState,
        actor: &Actor,
        message: Option<String>,
    ) {
        let now = self.now;
        let s = &mut self.run.stages[i];
        s.state = state;
        if state.is_final() {
            s.finished_at = Some(now);
            s.deadline = None;
            s.retry_at = None;
        }
        if message.is_some() {
            s.message = message.clone();
        }
        self.touch(i);
        self.audit_at(at, actor, EventKind::Stage(state), Some(i), message);
    }

    /// The attempt's agent began it at `at` (no later than now).
    fn running(&mut self, i: usize, attempt: u32, agent: &Actor, at: Millis) {
        let timeout = self.run.plan[i].timeout;
        let now = self.now;
        let s = &mut self.run.stages[i];
        if s.attempts != attempt || s.state != StageState::Dispatched {
            return;
        }
        let waited = s
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with(WAITING_FOR_BUDGET));
        if waited {
            // The work's time starts now: the wait for a budget was not the work's.
            s.deadline = Some(clock::add(now, timeout));
            s.message = None;
        }
        self.set_stage_at(at.min(now), i, StageState::Running, agent, None);
    }

    fn set_run(&mut self, state: RunState, actor: &Actor, message: Option<String>) {
        if self.run.state == state {
            return;
        }
        self.run.state = state;
        if state == RunState::Running && self.run.started_at.is_none() {
            self.run.started_at = Some(self.now);
        }
        if state.is_final() {
            self.run.finished_at = Some(self.now);
        }
        if message.is_some() {
            self.run.message = message.clone();
        }
        self.t.run_changed = true;
        self.audit(actor, EventKind::Run(state), None, message);
    }

    fn dispatch(&mut self, i: usize, actor: &Actor) {
        let timeout = self.run.plan[i].timeout;
        let now = self.now;
        let s = &mut self.run.stages[i];
        s.attempts += 1;
        s.retry_at = None;
        s.deadline = Some(clock::add(now, timeout));
        s.started_at.get_or_insert(now);
        self.t.effects.push(Effect::Dispatch { stage: i });
        self.set_stage(i, StageState::Dispatched, actor, None);
    }

    fn failing(&self) -> bool {
        self.run
            .stages
            .iter()
            .any(|s| s.state == StageState::Failed)
    }

    /// Moves every stage that can move, then settles the run's own state.
    fn advance(&mut self, actor: &Actor) {
        if self.run.state.is_final() {
            return;
        }
        if self.failing() {
            for i in 0..self.run.stages.len() {
                if matches!(
                    self.run.stages[i].state,
                    StageState::Pending | StageState::Ready | StageState::Retrying
                ) {
                    self.set_stage(
                        i,
                        StageState::Skipped,
                        SYSTEM,
                        Some("skipped: the run is failing".into()),
                    );
                }
            }
            if !self.run.stages.iter().any(|s| s.state.in_flight()) {
                let message = self
                    .run
                    .plan
                    .iter()
                    .zip(&self.run.stages)
                    .find(|(_, s)| s.state == StageState::Failed)
                    .map(|(p, s)| {
                        format!(
                            "stage `{}` failed: {}",
                            p.name,
                            s.message.as_deref().unwrap_or("no message")
                        )
                    });
                self.set_run(RunState::Failed, SYSTEM, message);
            }
            return;
        }
        // An approval stage that succeeds at once can make more stages ready: loop.
        loop {
            let mut moved = false;
            for i in 0..self.run.plan.len() {
                if self.run.stages[i].state != StageState::Pending {
                    continue;
                }
                let deps_done = self.run.plan[i]
                    .after
                    .iter()
                    .all(|&d| self.run.stages[d].lets_dependents_go());
                if !deps_done {
                    continue;
                }
                moved = true;
                let gated = self.run.plan[i].approval;
                if gated && self.run.dry_run {
                    self.run.stages[i].approved_by = Some(Actor::DryRun);
                    self.audit(
                        SYSTEM,
                        EventKind::StageApproved,
                        Some(i),
                        Some("dry run: approval would be asked here".into()),
                    );
                }
                if gated && self.run.stages[i].approved_by.is_none() {
                    self.set_stage(
                        i,
                        StageState::Ready,
                        actor,
                        Some("waiting for approval".into()),
                    );
                    self.audit(SYSTEM, EventKind::ApprovalRequested, Some(i), None);
                } else {
                    self.start_stage(i, actor);
                }
            }
            if !moved {
                break;
            }
        }
        if self.run.stages.iter().all(|s| s.lets_dependents_go()) {
            self.set_run(RunState::Succeeded, SYSTEM, None);
        } else if !self.run.open_gates().is_empty() {
            self.set_run(RunState::AwaitingApproval, SYSTEM, None);
        } else {
            self.set_run(RunState::Running, SYSTEM, None);
        }
    }

    /// A stage whose dependencies are done and whose gate (if any) is passed.
    fn start_stage(&mut self, i: usize, actor: &Actor) {
        if !self.run.plan[i].has_work() {
            // The approval is the whole of the work.
            let now = self.now;
            self.run.stages[i].started_at.get_or_insert(now);
            let by = self.run.stages[i]
                .approved_by
                .as_ref()
                .map(Actor::to_string)
                .unwrap_or_default();
            self.set_stage(
                i,
                StageState::Succeeded,
                actor,
                Some(format!("approved by {by}")),
            );
        } else {
            self.dispatch(i, actor);
        }
    }

    fn outcome(
        &mut self,
        i: usize,
        attempt: u32,
        outcome: Outcome,
        report: Option<Report>,
        actor: &Actor,
    ) {
        let s = &self.run.stages[i];
        if s.attempts != attempt || !s.state.in_flight() {
            return; // a duplicate, or an attempt already accounted for
        }
        if let Some(mut new) = report {
            // What an earlier attempt changed stays on record: a retry that finds the work
            // done reports no change of its own.
            if let Some(old) = self.run.stages[i].report.take() {
                let mut changes = old.changes;
                for c in std::mem::take(&mut new.changes) {
                    if !changes.contains(&c) {
                        changes.push(c);
                    }
                }
                new.changes = changes;
            }
            self.run.stages[i].report = Some(new);
        }
        let max = self.run.plan[i].retry.max_attempts;
        match outcome {
            Outcome::Revoked => {}
            Outcome::Succeeded { message } => {
                self.set_stage(i, StageState::Succeeded, actor, message);
                self.advance(actor);
            }
            Outcome::Failed {
                retryable: false,
                message,
            } => {
                self.set_stage(i, StageState::Failed, actor, Some(message));
                self.advance(actor);
            }
            Outcome::Failed {
                retryable: true,
                message,
            } => self.retry_or_fail(i, attempt, max, message, actor),
            Outcome::Held { message } => self.hold(i, message, actor),
            Outcome::Expired => self.retry_or_fail(
                i,
                attempt,
                max,
                "lease expired: the agent stopped heartbeating".into(),
                actor,
            ),
        }
    }

    /// Stops stage `i` at a gate its agent raised: approving runs it again, accepting what
    /// the gate says; rejecting fails it. No loss allowed at all takes two people.
    fn hold(&mut self, i: usize, message: String, actor: &Actor) {
        let no_loss = self.run.stages[i]
            .report
            .as_ref()
            .and_then(|r| r.rpo.as_ref())
            .and_then(|r| r.limit)
            .is_some_and(|limit| limit <= 0.0);
        let approvals = self.run.plan[i].approvals.max(if no_loss { 2 } else { 1 });
        let s = &mut self.run.stages[i];
        s.hold = Some(Hold {
            message: message.clone(),
            approvals,
        });
        s.approvals.clear();
        s.approved_by = None;
        s.deadline = None;
        self.set_stage(
            i,
            StageState::Ready,
            actor,
            Some(format!("waiting for approval: {message}")),
        );
        self.audit(SYSTEM, EventKind::ApprovalRequested, Some(i), Some(message));
        self.advance(actor);
    }

    /// Plans again what a stop left undone: stages skipped because the run was failing,
    /// cancelled ones, and with `failed`, failed ones; each with a fresh retry budget, and
    /// each gate to be approved again. A stage a person skipped stays skipped.
    fn reopen(&mut self, failed: bool, actor: &Actor) {
        for i in 0..self.run.stages.len() {
            let s = &self.run.stages[i];
            let again = match s.state {
                StageState::Failed => failed,
                StageState::Cancelled => true,
                StageState::Skipped => s.skipped_by.is_none(),
                _ => false,
            };
            if !again {
                continue;
            }
            let gated = self.run.gated(i);
            let s = &mut self.run.stages[i];
            // A gate its agent raised is raised again if it still holds.
            s.hold = None;
            if gated {
                // A gate is asked again: approvals given before a failure, a rejection or
                // a cancel were for the run as it was then.
                s.approvals.clear();
                s.approved_by = None;
            }
            s.budget_from = s.attempts;
            s.started_at = None;
            s.finished_at = None;
            s.retry_at = None;
            s.deadline = None;
            s.message = None;
            self.set_stage(i, StageState::Pending, actor, None);
        }
        if self.run.state.is_final() {
            self.run.finished_at = None;
            self.run.message = None;
            self.set_run(RunState::Running, actor, None);
        }
    }

    fn retry_or_fail(&mut self, i: usize, attempt: u32, max: u32, message: String, actor: &Actor) {
        // A resumed run gives each stage its budget afresh.
        let used = attempt.saturating_sub(self.run.stages[i].budget_from);
        if used >= max || self.failing() {
            let message = if used >= max {
                format!("{message} (attempt {used} of {max})")
            } else {
                message
            };
            self.set_stage(i, StageState::Failed, actor, Some(message));
            self.advance(actor);
        } else {
            let delay = (self.backoff)(&self.run.plan[i].retry, used);
            self.run.stages[i].deadline = None;
            self.run.stages[i].retry_at = Some(clock::add(self.now, delay));
            self.set_stage(i, StageState::Retrying, actor, Some(message));
        }
    }
}

/// Applies one input to a run. `Err` means the input was refused and nothing changed.
pub fn apply(run: &mut Run, input: Input, ctx: &Ctx) -> Result<Transition, Refusal> {
    let mut step = Step {
        run,
        now: ctx.now,
        backoff: ctx.backoff,
        t: Transition::default(),
    };
    match input {
        Input::Start => {
            if step.run.state == RunState::Pending {
                step.set_run(RunState::Running, SYSTEM, None);
                step.advance(SYSTEM);
            }
        }
        Input::Accepted {
            stage,
            attempt,
            agent,
        } => {
            let now = step.now;
            step.running(stage, attempt, &agent, now);
        }
        Input::Waiting {
            stage,
            attempt,
            message,
        } => {
            let timeout = step.run.plan[stage].timeout.max(WAITING_HOLDS);
            let now = step.now;
            let s = &mut step.run.stages[stage];
            if s.attempts == attempt
                && s.state == StageState::Dispatched
                && message.starts_with(WAITING_FOR_BUDGET)
            {
                s.deadline = Some(clock::add(now, timeout));
                s.message = Some(message);
                step.touch(stage);
            }
        }
        Input::Outcome {
            stage,
            attempt,
            outcome,
            actor,
            report,
            started,
        } => {
            if let Some(at) = started {
                step.running(stage, attempt, &actor, at);
            }
            step.outcome(stage, attempt, outcome, report, &actor);
        }
        Input::Tick => tick(&mut step),
        Input::Approve {
            actor,
            stage,
            person,
            requester,
        } => {
            if step.run.state.is_final() {
                return Err(Refusal::Finished(step.run.state));
            }
            let gates = step.run.open_gates();
            let chosen: Vec<usize> = match stage {
                Some(i) if gates.contains(&i) => vec![i],
                Some(i) => return Err(Refusal::NotAwaitingApproval(step.run.plan[i].name.clone())),
                None if gates.is_empty() => return Err(Refusal::NoApprovalPending),
                None => gates,
            };
            // Every gate is checked before any changes, so a refusal changes nothing.
            for &i in &chosen {
                let need = step.run.approvals_needed(i);
                if need >= 2 && person == requester {
                    return Err(Refusal::OwnRun(need));
                }
                if step.run.stages[i]
                    .approvals
                    .iter()
                    .any(|a| a.person == person)
                {
                    return Err(Refusal::AlreadyApproved(person));
                }
            }
            for i in chosen {
                let need = step.run.approvals_needed(i);
                let now = step.now;
                let given = &mut step.run.stages[i].approvals;
                given.push(Approval {
                    by: actor.clone(),
                    person: person.clone(),
                    at: now,
                });
                let count = given.len();
                step.touch(i);
                let note = (need > 1).then(|| format!("{count} of {need} approvals"));
                step.audit(&actor, EventKind::StageApproved, Some(i), note);
                if count >= usize::from(need) {
                    step.run.stages[i].approved_by = Some(actor.clone());
                    step.start_stage(i, &actor);
                }
            }
            step.advance(&actor);
        }
        Input::Resume { actor, message } => {
            match step.run.state {
                RunState::Failed | RunState::Cancelled => {}
                RunState::Succeeded => return Err(Refusal::NothingToResume),
                going => return Err(Refusal::NotStopped(going)),
            }
            step.audit(&actor, EventKind::RunResumed, None, message);
            step.reopen(true, &actor);
            step.advance(&actor);
        }
        Input::RetryNow { actor, stage } => {
            if step.run.state.is_final() {
                return Err(Refusal::Finished(step.run.state));
            }
            let state = step.run.stages[stage].state;
            if state != StageState::Retrying {
                return Err(Refusal::NotRetrying(
                    step.run.plan[stage].name.clone(),
                    state,
                ));
            }
            step.dispatch(stage, &actor);
            // Said in the audit only: the stage keeps the message of its last failure.
            if let Some(a) = step.t.audit.last_mut() {
                a.message = Some(RETRIED_NOW.into());
            }
        }
        Input::Skip {
            actor,
            stage,
            reason,
        } => {
            if matches!(step.run.state, RunState::Succeeded | RunState::Cancelled) {
                return Err(Refusal::Finished(step.run.state));
            }
            let state = step.run.stages[stage].state;
            if !matches!(state, StageState::Failed | StageState::Retrying) {
                return Err(Refusal::NotFailed(step.run.plan[stage].name.clone(), state));
            }
            step.run.stages[stage].skipped_by = Some(actor.clone());
            step.set_stage(
                stage,
                StageState::Skipped,
                &actor,
                Some(format!("skipped by {actor}: {reason}")),
            );
            // What was given up on for the failure's sake goes on now, unless another
            // stage has failed too.
            if !step.failing() {
                step.reopen(false, &actor);
                step.advance(&actor);
            }
        }
        Input::Reject { actor, reason } => {
            if step.run.state.is_final() {
                return Err(Refusal::Finished(step.run.state));
            }
            let gates = step.run.open_gates();
            if gates.is_empty() {
                return Err(Refusal::NoApprovalPending);
            }
            let why = match reason {
                Some(r) => format!("rejected by {actor}: {r}"),
                None => format!("rejected by {actor}"),
            };
            for &i in &gates {
                step.audit(&actor, EventKind::StageRejected, Some(i), Some(why.clone()));
            }
            // A gate an agent raised fails its stage for good: the run fails, rather than
            // being cancelled, and says what was refused.
            let held: Vec<usize> = gates
                .into_iter()
                .filter(|&i| step.run.stages[i].hold.is_some())
                .collect();
            if held.is_empty() {
                cancel(&mut step, &actor, why);
            } else {
                for i in held {
                    let what = step.run.stages[i]
                        .hold
                        .as_ref()
                        .map(|h| h.message.clone())
                        .unwrap_or_default();
                    step.set_stage(
                        i,
                        StageState::Failed,
                        &actor,
                        Some(format!("{why}; {what}")),
                    );
                }
                step.advance(&actor);
            }
        }
        Input::Cancel { actor, reason } => {
            if step.run.state.is_final() {
                return Err(Refusal::Finished(step.run.state));
            }
            let why = match reason {
                Some(r) => format!("cancelled by {actor}: {r}"),
                None => format!("cancelled by {actor}"),
            };
            cancel(&mut step, &actor, why);
        }
    }
    Ok(step.t)
}

fn tick(step: &mut Step<'_, '_>) {
    if step.run.state.is_final() {
        return;
    }
    let now = step.now;
    for i in 0..step.run.stages.len() {
        let s = &step.run.stages[i];
        match s.state {
            StageState::Retrying if s.retry_at.is_some_and(|t| t <= now) => {
                if step.failing() {
                    continue;
                }
                step.dispatch(i, SYSTEM);
            }
            StageState::Dispatched | StageState::Running
                if s.deadline.is_some_and(|t| t <= now) =>
            {
                let attempt = s.attempts;
                let timeout = step.run.plan[i].timeout;
                let message = format!("timed out after {}", humantime::format_duration(timeout));
                step.t.effects.push(Effect::Revoke {
                    stage: i,
                    attempt,
                    reason: message.clone(),
                });
                let max = step.run.plan[i].retry.max_attempts;
                step.retry_or_fail(i, attempt, max, message, SYSTEM);
            }
            _ => {}
        }
    }
    step.advance(SYSTEM);
}

fn cancel(step: &mut Step<'_, '_>, actor: &Actor, why: String) {
    for i in 0..step.run.stages.len() {
        let s = &step.run.stages[i];
        if s.state.is_final() {
            continue;
        }
        if s.state.in_flight() {
            step.t.effects.push(Effect::Revoke {
                stage: i,
                attempt: s.attempts,
                reason: why.clone(),
            });
        }
        step.set_stage(i, StageState::Cancelled, actor, None);
    }
    step.set_run(RunState::Cancelled, actor, Some(why));
}
