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

use crate::clock::Clock;
use crate::domain::{Actor, Audit, EventKind, Run, RunId, RunState, StageRun};
use crate::metrics::StateCounts;
use crate::store::{CreateError, Store};
use crate::workflow::{Action, Catalog, Params, PlanError};
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
}

#[derive(Debug, thiserror::Error)]
pub enum CreateRunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Busy(CreateError),
    #[error("{0}")]
    Store(anyhow::Error),
    #[error("the orchestrator is shutting down")]
    Closed,
}

#[derive(Clone)]
pub struct Orchestrator {
    tx: mpsc::UnboundedSender<Command>,
    store: Store,
    catalog: Arc<Catalog>,
    clock: Clock,
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
        }
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
        let audit = Audit {
            at: now,
            actor: req.requested_by.clone(),
            kind: EventKind::RunCreated,
            stage: None,
            attempt: None,
            message: req.reason.clone(),
        };
        let stored = self
            .store
            .insert_run(&run, &audit)
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
        self.tx
            .send(Command::Start(Box::new(run.clone())))
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

    pub async fn approve(
        &self,
        run: RunId,
        stage: Option<String>,
        actor: &Actor,
    ) -> Result<Run, CommandError> {
        let actor = actor.clone();
        self.ask(|reply| Command::Approve {
            run,
            stage,
            actor,
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
