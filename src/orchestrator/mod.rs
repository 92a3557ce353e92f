//! The orchestrator: `machine` is the pure transition function, `engine` the task that
//! stores and carries out its results, and `Orchestrator` the handle the rest of the
//! service uses to create runs and send approvals and cancels.

pub mod backoff;
pub mod engine;
pub mod machine;
pub mod publisher;
pub mod state;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::ids::RunId;
use crate::store::{CreateError, Store};
use crate::workflow::{Action, Catalog, Params};
use engine::Command;
pub use engine::{CommandError, Engine};
use machine::{Audit, Input};
use state::{Run, RunState, StageRun};

/// A request to start a run, after the trigger was authenticated and authorised.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub group: String,
    pub action: Action,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub params: Params,
    /// Who asked: `api:<token name>`, `slack:<user>`, `alert:<route>`, `cli:<user>`.
    pub requested_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateRunError {
    #[error("unknown group `{0}`")]
    UnknownGroup(String),
    #[error("group `{group}` has no {action} workflow")]
    NoWorkflow { group: String, action: Action },
    #[error("{0}")]
    BadParams(String),
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
}

impl Orchestrator {
    pub(crate) fn new(
        tx: mpsc::UnboundedSender<Command>,
        store: Store,
        catalog: Arc<Catalog>,
    ) -> Self {
        Orchestrator { tx, store, catalog }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Plans and stores a new run, then hands it to the engine.
    pub async fn create(&self, req: NewRun) -> Result<Run, CreateRunError> {
        let group = self
            .catalog
            .groups
            .get(&req.group)
            .ok_or_else(|| CreateRunError::UnknownGroup(req.group.clone()))?;
        let no_workflow = || CreateRunError::NoWorkflow {
            group: req.group.clone(),
            action: req.action,
        };
        let name = group.workflow_for(req.action).ok_or_else(no_workflow)?;
        let workflow = self.catalog.workflows.get(name).ok_or_else(no_workflow)?;
        let params = workflow
            .params_with(&[&group.params, &req.params])
            .map_err(CreateRunError::BadParams)?;
        let plan = workflow.plan(&params).map_err(|errors| {
            CreateRunError::BadParams(
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let now = clock::now_ms();
        let run = Run {
            id: RunId::new(),
            group: req.group.clone(),
            action: req.action,
            workflow: workflow.name.clone(),
            // A drill is a rehearsal: it never changes anything.
            dry_run: req.dry_run || req.action == Action::Drill,
            reason: req.reason.clone(),
            requested_by: req.requested_by.clone(),
            params,
            state: RunState::Pending,
            created_at: now,
            started_at: None,
            finished_at: None,
            message: None,
            stages: vec![StageRun::default(); plan.len()],
            plan,
            version: 0,
        };
        let audit = Audit {
            at: now,
            actor: req.requested_by.clone(),
            kind: "run.created".into(),
            stage: None,
            attempt: None,
            message: req.reason.clone(),
        };
        self.store
            .insert_run(&run, &audit)
            .await
            .map_err(|e| match e {
                CreateError::Store(e) => CreateRunError::Store(e),
                busy => CreateRunError::Busy(busy),
            })?;
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
        actor: &str,
    ) -> Result<Run, CommandError> {
        let actor = actor.to_string();
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
        actor: &str,
        reason: Option<String>,
    ) -> Result<Run, CommandError> {
        self.apply(
            run,
            Input::Reject {
                actor: actor.to_string(),
                reason,
            },
        )
        .await
    }

    pub async fn cancel(
        &self,
        run: RunId,
        actor: &str,
        reason: Option<String>,
    ) -> Result<Run, CommandError> {
        self.apply(
            run,
            Input::Cancel {
                actor: actor.to_string(),
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

    pub fn outcome(&self, o: crate::semaphore::LeaseOutcome) {
        let _ = self.tx.send(Command::Outcome(o));
    }
}

/// The engine's command channel, split so wiring can hand out senders before the engine
/// starts.
pub fn channel() -> (
    mpsc::UnboundedSender<Command>,
    mpsc::UnboundedReceiver<Command>,
) {
    mpsc::unbounded_channel()
}

#[cfg(test)]
mod tests;
