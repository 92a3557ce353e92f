//! DR intent as YAML: workflows (stages run by agents), service groups, alert routes and
//! targets. `catalog` reads a directory and checks it as a whole; each file kind has its
//! own module (`workflows`, `groups`, `routes`, `targets`, the last read into `estate`),
//! over the raw serde types in `raw` and the located YAML of `source`; `plan` turns a
//! workflow into the stages a run executes. What the agents accept is asked through
//! `kinds`, so this module depends on no agent.

pub mod catalog;
pub mod estate;
mod fields;
pub mod groups;
pub mod kinds;
pub mod model;
pub mod params;
pub mod plan;
mod raw;
pub mod routes;
pub mod source;
pub mod targets;
pub mod workflows;

pub use catalog::{Catalog, Plan, PlanError};
pub use estate::{Target, TargetKind, Targets};
pub use groups::{Allow, Group};
pub use kinds::{SpecError, StageKinds};
pub use model::{Action, RetryPolicy};
pub use params::Params;
pub use plan::PlannedStage;
pub use routes::Route;
pub use source::Diagnostic;
pub use workflows::Workflow;
