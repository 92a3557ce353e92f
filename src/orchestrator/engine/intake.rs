//! From what arrives (commands, lease outcomes, agent progress, due timers) to the inputs
//! of the next batch, each resolved against the run it concerns.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use super::{Engine, Pending};
use crate::bus::{Progress, ProgressKind};
use crate::domain::{Actor, LeaseOutcome, OutcomeKind, Run, RunId, request_id};
use crate::orchestrator::batch::Item;
use crate::orchestrator::command::{Command, CommandError, Reply};
use crate::orchestrator::machine::{Input, Outcome, Refusal};

impl Engine {
    /// The inputs of the next batch: timers that are due, then the commands in order.
    pub(super) async fn intake(&mut self, commands: Vec<Command>) -> Vec<Pending> {
        let mut items = self.due_ticks();
        let mut released = self.released_outcomes(&commands).await;
        let holders = self.lease_holders(&commands).await;
        let waiters = self.budget_waiters(&commands).await;
        for c in commands {
            if let Command::Progress(p) = &c
                && p.kind == ProgressKind::Waiting
                && self.remote_agents
                && !waiters.contains(&(p.request_id.clone(), p.agent_instance.clone()))
            {
                // A stage's deadline is held off only on the word of an agent the store
                // shows waiting for that request.
                tracing::warn!(request = %p.request_id, agent = %p.agent_instance, "Ignoring a wait the store does not show.");
                continue;
            }
            if let Command::Progress(p) = &c
                && p.kind == ProgressKind::Accepted
                && self.remote_agents
                && (holders.get(&p.request_id) != Some(&p.agent_instance)
                    || p.request_id != request_id(p.run_id, &p.stage, p.attempt))
            {
                // Only the agent holding the lease moves a stage, and only the stage the
                // lease is for: news from anyone else on the bus is not news.
                tracing::warn!(request = %p.request_id, agent = %p.agent_instance, "Ignoring a start from an agent that does not hold the lease.");
                continue;
            }
            if let Some(item) = self.item_for(c, &mut released).await {
                items.push(item);
            }
        }
        items
    }

    /// With remote agents, who holds the lease of each request an agent says it started.
    async fn lease_holders(&self, commands: &[Command]) -> HashMap<String, String> {
        if !self.remote_agents {
            return HashMap::new();
        }
        let ids: Vec<&str> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Progress(p) if p.kind == ProgressKind::Accepted => {
                    Some(p.request_id.as_str())
                }
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        match self.store.lease_holders(&ids).await {
            Ok(found) => found,
            Err(e) => {
                // The start is dropped; the outcome still moves the stage when it comes.
                tracing::warn!(error = %e, count = ids.len(), "Could not read lease holders.");
                HashMap::new()
            }
        }
    }

    /// With remote agents, which of the requests agents say they wait for a budget for
    /// the store shows them waiting for.
    async fn budget_waiters(&self, commands: &[Command]) -> HashSet<(String, String)> {
        if !self.remote_agents {
            return HashSet::new();
        }
        let ids: Vec<&str> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Progress(p) if p.kind == ProgressKind::Waiting => {
                    Some(p.request_id.as_str())
                }
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return HashSet::new();
        }
        match self.store.budget_waiters(&ids).await {
            Ok(found) => found.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, count = ids.len(), "Could not read budget waiters.");
                HashSet::new()
            }
        }
    }

    fn due_ticks(&mut self) -> Vec<Pending> {
        let now = self.clock.now_ms();
        let mut due = Vec::new();
        while let Some(Reverse((at, run))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !due.contains(&run) {
                due.push(run);
            }
        }
        due.into_iter()
            .map(|run| {
                Pending::new(
                    Item {
                        run,
                        input: Input::Tick,
                        released_us: None,
                    },
                    None,
                )
            })
            .collect()
    }

    /// With remote agents, a release comes as a progress message and its outcome is in
    /// the store: looked up here for the whole batch at once.
    async fn released_outcomes(&self, commands: &[Command]) -> HashMap<String, LeaseOutcome> {
        if !self.remote_agents {
            return HashMap::new();
        }
        let ids: Vec<&str> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Progress(p)
                    if matches!(
                        p.kind,
                        ProgressKind::Succeeded | ProgressKind::Failed | ProgressKind::Held
                    ) =>
                {
                    Some(p.request_id.as_str())
                }
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return HashMap::new();
        }
        match self.semaphore.outcomes(&ids).await {
            Ok(found) => found
                .into_iter()
                .map(|o| (o.request_id.clone(), o))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, count = ids.len(), "Could not read released outcomes; the resync will.");
                HashMap::new()
            }
        }
    }

    async fn item_for(
        &mut self,
        command: Command,
        released: &mut HashMap<String, LeaseOutcome>,
    ) -> Option<Pending> {
        let plain = |run, input| {
            Some(Pending::new(
                Item {
                    run,
                    input,
                    released_us: None,
                },
                None,
            ))
        };
        match command {
            Command::Start(run) => {
                let id = run.id;
                // A resync may have picked the new run up already, and moved it on.
                self.runs.entry(id).or_insert(*run);
                plain(id, Input::Start)
            }
            Command::Apply { run, input, reply } => Some(Pending::new(
                Item {
                    run,
                    input,
                    released_us: None,
                },
                reply,
            )),
            Command::Reopen { run, input, reply } => self.reopen(run, input, reply).await,
            Command::Outcome(o) => {
                let run = self.current(o.run_id, &o.stage, o.attempt).await?;
                outcome_item(run, o)
            }
            Command::Progress(p) => self.progress(p, released).await,
        }
    }

    /// A resume or skip, which may bring a finished run back.
    async fn reopen(&mut self, id: RunId, input: Input, reply: Reply) -> Option<Pending> {
        if let Err(e) = self.load_reopened(id).await {
            let _ = reply.send(Err(e));
            return None;
        }
        let mut pending = Pending::new(
            Item {
                run: id,
                input,
                released_us: None,
            },
            Some(reply),
        );
        pending.reopens = true;
        Some(pending)
    }

    /// Loads a run for a resume or skip whatever its state, unless another run of its
    /// group and action is active now: only one may be.
    pub(super) async fn load_reopened(&mut self, id: RunId) -> Result<(), CommandError> {
        if self.runs.contains_key(&id) {
            return Ok(());
        }
        let store = CommandError::from;
        let run = self
            .store
            .load_run(id)
            .await
            .map_err(store)?
            .ok_or(CommandError::NotFound(id))?;
        if run.state.is_final() {
            match self
                .store
                .active_run(&run.active_key())
                .await
                .map_err(store)?
            {
                Some(active) if active != id => {
                    return Err(CommandError::Busy {
                        group: run.group.clone(),
                        action: run.action.to_string(),
                        active,
                    });
                }
                _ => {}
            }
        }
        self.runs.insert(id, run);
        Ok(())
    }

    async fn progress(
        &mut self,
        p: Progress,
        released: &mut HashMap<String, LeaseOutcome>,
    ) -> Option<Pending> {
        match p.kind {
            ProgressKind::Accepted => {
                let run = self.current(p.run_id, &p.stage, p.attempt).await?;
                let stage = run.stage_index(&p.stage)?;
                Some(Pending::new(
                    Item {
                        run: p.run_id,
                        input: Input::Accepted {
                            stage,
                            attempt: p.attempt,
                            agent: Actor::Agent(p.agent_instance),
                        },
                        released_us: None,
                    },
                    None,
                ))
            }
            ProgressKind::Waiting => {
                let run = self.current(p.run_id, &p.stage, p.attempt).await?;
                let stage = run.stage_index(&p.stage)?;
                Some(Pending::new(
                    Item {
                        run: p.run_id,
                        input: Input::Waiting {
                            stage,
                            attempt: p.attempt,
                            message: p.message,
                        },
                        released_us: None,
                    },
                    None,
                ))
            }
            // The agent released its lease; the store has the outcome.
            ProgressKind::Succeeded | ProgressKind::Failed | ProgressKind::Held
                if self.remote_agents =>
            {
                let outcome = released.remove(&p.request_id)?;
                let run = self
                    .current(outcome.run_id, &outcome.stage, outcome.attempt)
                    .await?;
                outcome_item(run, outcome)
            }
            _ => None,
        }
    }

    /// The run as `cached` has it, unless news of a later attempt of `stage` than the copy
    /// knows shows that another replica moved the run on: then it is read again. Applied
    /// to the old copy, the news would be dropped as stale.
    async fn current(&mut self, id: RunId, stage: &str, attempt: u32) -> Option<&Run> {
        let behind = self.cached(id).await.is_some_and(|run| {
            run.stage_index(stage)
                .is_some_and(|i| run.stages[i].attempts < attempt)
        });
        if behind {
            self.runs.remove(&id);
        }
        self.cached(id).await
    }

    /// The unfinished run, from memory or (after a failed write or on another replica's
    /// run) from the store.
    pub(super) async fn cached(&mut self, id: RunId) -> Option<&Run> {
        if !self.runs.contains_key(&id) {
            match self.store.load_run(id).await {
                Ok(Some(run)) if !run.state.is_final() => {
                    self.runs.insert(id, run);
                }
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(run_id = %id, error = %e, "Could not load run.");
                    return None;
                }
            }
        }
        self.runs.get(&id)
    }

    /// Why a command about a run that is not cached cannot be applied.
    pub(super) async fn missing(&self, id: RunId) -> CommandError {
        match self.store.load_run(id).await {
            Ok(Some(run)) => CommandError::Refused(Refusal::Finished(run.state)),
            Ok(None) => CommandError::NotFound(id),
            Err(e) => CommandError::from(e),
        }
    }
}

/// A lease's end as the machine's input.
pub(super) fn outcome_item(run: &Run, o: LeaseOutcome) -> Option<Pending> {
    let stage = run.stage_index(&o.stage)?;
    let outcome = match o.kind {
        OutcomeKind::Succeeded => Outcome::Succeeded { message: o.message },
        OutcomeKind::Failed => Outcome::Failed {
            retryable: o.retryable,
            message: o.message.unwrap_or_else(|| "failed".into()),
        },
        OutcomeKind::Held => Outcome::Held {
            message: o.message.unwrap_or_else(|| "a person must decide".into()),
        },
        OutcomeKind::Expired => Outcome::Expired,
        OutcomeKind::Revoked => Outcome::Revoked,
    };
    let (actor, started) = match (o.kind, o.holder) {
        (OutcomeKind::Succeeded | OutcomeKind::Failed | OutcomeKind::Held, Some(holder)) => {
            (Actor::Agent(holder), o.acquired_at)
        }
        _ => (Actor::System, None),
    };
    Some(Pending::new(
        Item {
            run: o.run_id,
            input: Input::Outcome {
                stage,
                attempt: o.attempt,
                outcome,
                actor,
                report: o.report,
                started,
            },
            released_us: Some(o.released_us),
        },
        None,
    ))
}
