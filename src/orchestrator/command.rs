//! What the rest of the service asks of the engine, and how a request can fail.

use tokio::sync::oneshot;

use super::machine::{Input, Refusal};
use crate::bus::Progress;
use crate::domain::{LeaseOutcome, Run, RunId};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("run {0} not found")]
    NotFound(RunId),
    #[error("stage `{0}` not found")]
    UnknownStage(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("group `{group}` already has an active {action} run: {active}")]
    Busy {
        group: String,
        action: String,
        active: RunId,
    },
    #[error("{0}")]
    WorkflowChanged(String),
    /// No live agent serves a stage still to run.
    #[error("{0}")]
    Unserved(String),
    #[error("the orchestrator could not store the change: {0}")]
    Store(String),
    /// The store did not answer: try again later.
    #[error("{0}")]
    Unavailable(String),
    #[error("the orchestrator is shutting down")]
    Closed,
}

/// Where the engine answers a command: with the run as it stands after the change.
pub type Reply = oneshot::Sender<Result<Run, CommandError>>;

pub enum Command {
    /// A run just inserted by `Orchestrator::create`.
    Start(Box<Run>),
    Apply {
        run: RunId,
        input: Input,
        reply: Option<Reply>,
    },
    /// An input that may reopen a finished run (resume, skip): the engine loads the run
    /// even if it has ended, unless another run holds its group and action meanwhile.
    Reopen {
        run: RunId,
        input: Input,
        reply: Reply,
    },
    Outcome(LeaseOutcome),
    Progress(Progress),
}

impl From<&crate::store::StoreError> for CommandError {
    fn from(e: &crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            CommandError::Unavailable(e.to_string())
        } else {
            CommandError::Store(e.to_string())
        }
    }
}

impl From<anyhow::Error> for CommandError {
    /// A store call's failure, told apart: an outage is `Unavailable`.
    fn from(e: anyhow::Error) -> Self {
        CommandError::from(&crate::store::StoreError::from(e))
    }
}
