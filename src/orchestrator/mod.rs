//! The orchestrator: `machine` is the pure transition function of one run, `batch` the pure
//! step of many inputs at once, `engine` the task that stores and carries out their
//! results, `publisher` what sends the committed messages, and `Orchestrator` the handle
//! the rest of the service uses to create runs, decide on them and read them.

pub(crate) mod backoff;
pub(crate) mod batch;
mod command;
pub(crate) mod engine;
pub(crate) mod machine;
pub(crate) mod publisher;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::clock::Clock;
use crate::domain::{Actor, Audit, EventKind, Run, RunId, RunState, StageRun};
use crate::metrics::StateCounts;
use crate::store::{CreateError, Store};
use crate::workflow::{Action, Catalog, Params, PlanError, PlannedStage};
use command::Command;
pub use command::CommandError;
pub(crate) use engine::Engine;
use machine::Input;
pub use machine::Refusal;
pub use publisher::OverheadLog;

/// A request to start a run, after the trigger was authenticated and authorised.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub group: String,
    pub action: Action,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub params: Params,
    /// Who asked.
    pub requested_by: Actor,
    /// The run's id when the caller chose it, so that asking again (after a crash, or from
    /// another replica) finds this run instead of making a second; a new id if `None`.
    pub id: Option<RunId>,
    /// Start even if no live agent serves a kind of work the run needs (audited).
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateRunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Busy(CreateError),
    #[error("{0}")]
    Store(anyhow::Error),
    #[error("{0}")]
    Unserved(String),
    #[error("the orchestrator is shutting down")]
    Closed,
}

#[derive(Clone)]
pub struct Orchestrator {
    tx: mpsc::UnboundedSender<Command>,
    store: Store,
    catalog: Arc<Catalog>,
    clock: Clock,
    /// Agents run in other processes: a run is checked against their heartbeats first.
    preflight: bool,
}

impl Orchestrator {
    pub(crate) fn new(
        tx: mpsc::UnboundedSender<Command>,
        store: Store,
        catalog: Arc<Catalog>,
        clock: Clock,
    ) -> Self {
        Orchestrator {
            tx,
            store,
            catalog,
            clock,
            preflight: false,
        }
    }

    /// Checks each new run against the agents' heartbeats: with agents in their own
    /// processes, one may be missing. In-process agents serve every kind by construction.
    pub(crate) fn with_preflight(mut self) -> Self {
        self.preflight = true;
        self
    }

    /// The agents heard from lately, the most recent first, each with whether it is live.
    pub async fn agents(&self) -> anyhow::Result<Vec<(crate::store::AgentBeat, bool)>> {
        use crate::agents::heartbeat::{LISTED_FOR, LIVE_FOR};
        let now = self.clock.now_ms();
        let listed = self
            .store
            .agents(clock::sub(now, LISTED_FOR), clock::sub(now, LISTED_FOR))
            .await?;
        let live_since = clock::sub(now, LIVE_FOR);
        Ok(listed
            .into_iter()
            .map(|a| {
                let live = a.last_seen >= live_since;
                (a, live)
            })
            .collect())
    }

    /// The stages whose kind of work no live agent serves, each with its kind.
    async fn unserved(&self, stages: &[PlannedStage]) -> anyhow::Result<Vec<(usize, String)>> {
        let live: Vec<String> = self
            .agents()
            .await?
            .into_iter()
            .filter(|(_, live)| *live)
            .flat_map(|(a, _)| a.kinds)
            .collect();
        Ok(stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.has_work() && !live.contains(&s.agent))
            .map(|(i, s)| (i, s.agent.clone()))
            .collect())
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Plans and stores a new run, then hands it to the engine.
    pub async fn create(&self, req: NewRun) -> Result<Run, CreateRunError> {
        let plan = self.catalog.plan_for(&req.group, req.action, &req.params)?;
        let now = self.clock.now_ms();
        let run = Run {
            id: req.id.unwrap_or_default(),
            group: req.group.clone(),
            action: req.action,
            workflow: plan.workflow,
            // A drill is a rehearsal: it never changes anything.
            dry_run: req.dry_run || req.action == Action::Drill,
            reason: req.reason.clone(),
            requested_by: req.requested_by.clone(),
            params: plan.params,
            state: RunState::Pending,
            created_at: now,
            started_at: None,
            finished_at: None,
            message: None,
            stages: vec![StageRun::default(); plan.stages.len()],
            plan: plan.stages,
            version: 0,
        };
        let unserved = if self.preflight {
            self.unserved(&run.plan)
                .await
                .map_err(CreateRunError::Store)?
        } else {
            Vec::new()
        };
        let mut audit = vec![Audit {
            at: now,
            actor: req.requested_by.clone(),
            kind: EventKind::RunCreated,
            stage: None,
            attempt: None,
            message: req.reason.clone(),
        }];
        if !unserved.is_empty() {
            let why = unserved_message(&run, &unserved);
            if run.dry_run {
                // A rehearsal goes ahead and reports the missing agents as failed checks.
            } else if req.force {
                audit.push(Audit {
                    at: now,
                    actor: req.requested_by.clone(),
                    kind: EventKind::PreflightOverridden,
                    stage: None,
                    attempt: None,
                    message: Some(format!("{why}; started anyway (force)")),
                });
            } else {
                return Err(CreateRunError::Unserved(format!(
                    "{why}; start an agent that serves it (`lifeboat agent --agents {}`), or force",
                    kinds_of(&unserved).join(",")
                )));
            }
        }
        let stored = self
            .store
            .insert_run_with(&run, &audit)
            .await
            .map_err(|e| match e {
                CreateError::Store(e) => CreateRunError::Store(e),
                busy => CreateRunError::Busy(busy),
            });
        match stored {
            Ok(()) => {}
            // Made already by an earlier call: that run, which its engine (or the next
            // start's recovery) carries on.
            Err(CreateRunError::Busy(CreateError::Exists(id))) => {
                return self
                    .store
                    .load_run(id)
                    .await
                    .map_err(CreateRunError::Store)?
                    .ok_or_else(|| CreateRunError::Store(anyhow::anyhow!("run {id} vanished")));
            }
            Err(e) => return Err(e),
        }
        tracing::info!(run_id = %run.id, group = %run.group, action = %run.action, by = %run.requested_by, "Run created.");
        let unserved = if run.dry_run { unserved } else { Vec::new() };
        self.tx
            .send(Command::Start(Box::new(run.clone()), unserved))
            .map_err(|_| CreateRunError::Closed)?;
        Ok(run)
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<Run, CommandError>>) -> Command,
    ) -> Result<Run, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(command(reply))
            .map_err(|_| CommandError::Closed)?;
        rx.await.map_err(|_| CommandError::Closed)?
    }

    /// A run as stored, with the index of its stage `name` if one is named.
    async fn stage_of(
        &self,
        id: RunId,
        name: Option<&str>,
    ) -> Result<(Run, Option<usize>), CommandError> {
        let run = self
            .store
            .load_run(id)
            .await
            .map_err(|e| CommandError::Store(e.to_string()))?
            .ok_or(CommandError::NotFound(id))?;
        let stage = match name {
            None => None,
            Some(name) => Some(
                run.stage_index(name)
                    .ok_or_else(|| CommandError::UnknownStage(name.to_string()))?,
            ),
        };
        Ok((run, stage))
    }

    /// Who an actor is in a group's eyes: one person across Slack, Discord and the API.
    fn person(&self, group: &str, actor: &Actor) -> String {
        let (platform, id) = match actor {
            Actor::Chat { platform, user } => (platform.as_str(), user.as_str()),
            Actor::Api(name) => ("api", name.as_str()),
            _ => return actor.to_string(),
        };
        self.catalog
            .groups
            .get(group)
            .and_then(|g| g.person(platform, id))
            .map(str::to_string)
            .unwrap_or_else(|| actor.to_string())
    }

    pub async fn approve(
        &self,
        run: RunId,
        stage: Option<String>,
        actor: &Actor,
    ) -> Result<Run, CommandError> {
        let (loaded, stage) = self.stage_of(run, stage.as_deref()).await?;
        let input = Input::Approve {
            actor: actor.clone(),
            stage,
            person: self.person(&loaded.group, actor),
            requester: self.person(&loaded.group, &loaded.requested_by),
        };
        self.apply(run, input).await
    }

    /// Goes on from a failed or cancelled run: the stages that did not succeed run again.
    /// Refused if the run's workflow now plans differently, unless `force`; then the run
    /// goes on with the plan it started with.
    pub async fn resume(&self, id: RunId, actor: &Actor, force: bool) -> Result<Run, CommandError> {
        let (run, _) = self.stage_of(id, None).await?;
        let mut message = None;
        if let Some(change) = self.plan_change(&run) {
            if !force {
                return Err(CommandError::WorkflowChanged(format!(
                    "{change} since run {id} started; resume with force to go on with the plan it started with"
                )));
            }
            message = Some(format!(
                "forced: {change}; going on with the plan the run started with"
            ));
        }
        let input = Input::Resume {
            actor: actor.clone(),
            message,
        };
        self.ask(|reply| Command::Reopen {
            run: id,
            input,
            reply,
        })
        .await
    }

    /// How the run's workflow, as the catalog has it now, differs from the plan the run
    /// started with; `None` if it plans the same.
    fn plan_change(&self, run: &Run) -> Option<String> {
        let now = match self.catalog.plan_for(&run.group, run.action, &run.params) {
            Ok(p) => p,
            Err(e) => return Some(format!("workflow `{}` no longer plans ({e})", run.workflow)),
        };
        if now.workflow != run.workflow {
            return Some(format!(
                "group `{}` now runs workflow `{}` for {}, not `{}`",
                run.group, now.workflow, run.action, run.workflow
            ));
        }
        if now.stages.len() != run.plan.len() {
            return Some(format!(
                "workflow `{}` has {} stages now, not {}",
                run.workflow,
                now.stages.len(),
                run.plan.len()
            ));
        }
        now.stages
            .iter()
            .zip(&run.plan)
            .find(|(a, b)| a != b)
            .map(|(_, was)| {
                format!(
                    "stage `{}` of workflow `{}` has changed",
                    was.name, run.workflow
                )
            })
    }

    /// Dispatches a stage waiting out its backoff now.
    pub async fn retry_now(
        &self,
        id: RunId,
        stage: &str,
        actor: &Actor,
    ) -> Result<Run, CommandError> {
        let (_, stage) = self.stage_of(id, Some(stage)).await?;
        let Some(stage) = stage else {
            return Err(CommandError::UnknownStage(String::new()));
        };
        self.apply(
            id,
            Input::RetryNow {
                actor: actor.clone(),
                stage,
            },
        )
        .await
    }

    /// Marks a failed stage skipped by a person, so that its dependents go on; a failed run
    /// is reopened for them.
    pub async fn skip(
        &self,
        id: RunId,
        stage: &str,
        actor: &Actor,
        reason: String,
    ) -> Result<Run, CommandError> {
        let (_, stage) = self.stage_of(id, Some(stage)).await?;
        let Some(stage) = stage else {
            return Err(CommandError::UnknownStage(String::new()));
        };
        let input = Input::Skip {
            actor: actor.clone(),
            stage,
            reason,
        };
        self.ask(|reply| Command::Reopen {
            run: id,
            input,
            reply,
        })
        .await
    }

    pub async fn reject(
        &self,
        run: RunId,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Run, CommandError> {
        self.apply(
            run,
            Input::Reject {
                actor: actor.clone(),
                reason,
            },
        )
        .await
    }

    pub async fn cancel(
        &self,
        run: RunId,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Run, CommandError> {
        self.apply(
            run,
            Input::Cancel {
                actor: actor.clone(),
                reason,
            },
        )
        .await
    }

    async fn apply(&self, run: RunId, input: Input) -> Result<Run, CommandError> {
        self.ask(|reply| Command::Apply {
            run,
            input,
            reply: Some(reply),
        })
        .await
    }

    /// Agent progress read from the bus; `accepted` moves a stage to `running`.
    pub fn progress(&self, p: crate::bus::Progress) {
        let _ = self.tx.send(Command::Progress(p));
    }

    pub fn outcome(&self, o: crate::domain::LeaseOutcome) {
        let _ = self.tx.send(Command::Outcome(o));
    }

    /// The run as stored, which every replica agrees on.
    pub async fn run(&self, id: RunId) -> anyhow::Result<Option<Run>> {
        self.store.load_run(id).await
    }

    /// The run's audit log, oldest first.
    pub async fn events(&self, id: RunId) -> anyhow::Result<Vec<Audit>> {
        self.store.audit(id).await
    }

    /// A finished run's scorecard, beside the group's previous run and last drill of the
    /// same action; `None` while it runs.
    pub async fn recovery(
        &self,
        run: &Run,
    ) -> anyhow::Result<Option<crate::domain::scorecard::Recovery>> {
        let audit = self.store.audit(run.id).await?;
        let Some(card) = crate::domain::scorecard::score(run, &audit) else {
            return Ok(None);
        };
        let history = self.store.list_runs(Some(&run.group), 200).await?;
        let (previous, last_drill) = crate::domain::scorecard::Earlier::of(run, &history);
        Ok(Some(crate::domain::scorecard::Recovery {
            card,
            previous,
            last_drill,
        }))
    }

    /// The most recent runs first, optionally of one group.
    pub async fn runs(&self, group: Option<&str>, limit: i64) -> anyhow::Result<Vec<Run>> {
        self.store.list_runs(group, limit).await
    }

    pub async fn state_counts(&self) -> anyhow::Result<StateCounts> {
        let (runs, stages) = self.store.state_counts().await?;
        Ok(StateCounts { runs, stages })
    }

    /// The leases held now.
    pub async fn leases(&self) -> anyhow::Result<Vec<crate::store::HeldLease>> {
        self.store.held_leases().await
    }

    /// Recent alerts, newest first.
    pub async fn alerts(
        &self,
        filter: &crate::store::AlertFilter,
    ) -> anyhow::Result<Vec<crate::store::AlertRow>> {
        self.store.alerts(filter).await
    }

    /// How many distinct alerts a run has, and how many re-sends of them.
    pub async fn alert_count(&self, run: RunId) -> anyhow::Result<(i64, i64)> {
        self.store.count_alerts(run).await
    }

    /// Recent offers, newest first.
    pub async fn offers(&self, limit: i64) -> anyhow::Result<Vec<crate::domain::Offer>> {
        self.store.offers(limit).await
    }

    /// The most recent chat requests refused for want of permission.
    pub async fn refusals(&self, limit: i64) -> anyhow::Result<Vec<crate::store::RefusalRow>> {
        self.store.refusals(limit).await
    }

    /// Whether the store answers.
    pub async fn store_ready(&self) -> bool {
        self.store.ping().await
    }
}

/// The distinct kinds among `unserved`, in plan order.
fn kinds_of(unserved: &[(usize, String)]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for (_, k) in unserved {
        if !kinds.contains(k) {
            kinds.push(k.clone());
        }
    }
    kinds
}

/// `no live agent serves kind `database` (stage `promote`)`, for each kind.
fn unserved_message(run: &Run, unserved: &[(usize, String)]) -> String {
    kinds_of(unserved)
        .iter()
        .map(|kind| {
            let stages: Vec<String> = unserved
                .iter()
                .filter(|(_, k)| k == kind)
                .map(|(i, _)| format!("`{}`", run.plan[*i].name))
                .collect();
            format!(
                "no live agent serves kind `{kind}` (stage{} {})",
                if stages.len() == 1 { "" } else { "s" },
                stages.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The engine's command channel, split so wiring can hand out senders before the engine
/// starts.
pub(crate) fn channel() -> (
    mpsc::UnboundedSender<Command>,
    mpsc::UnboundedReceiver<Command>,
) {
    mpsc::unbounded_channel()
}

#[cfg(test)]
mod tests;
