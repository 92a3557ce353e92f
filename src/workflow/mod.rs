//! DR intent as YAML: workflows (stages run by agents), service groups, alert routes and
//! targets. `catalog` reads a directory and checks it as a whole; each file kind has its
//! own module (`workflows`, `groups`, `routes` with its `alert_sources`, and
//! `targets_file`, read into `targets`), over the raw serde types in `raw` and the located
//! YAML of `source`; `plan` turns a workflow into the stages a run executes. What the
//! agents accept is asked through `kinds`, so this module depends on no agent.

pub(crate) mod alert_sources;
mod catalog;
mod declared;
mod drill;
mod fields;
mod groups;
pub(crate) mod kinds;
mod limits;
mod model;
pub(crate) mod params;
pub(crate) mod plan;
mod raw;
mod routes;
pub(crate) mod source;
pub(crate) mod targets;
pub(crate) mod targets_file;
pub mod templates;
mod versions;
mod workflows;

pub use alert_sources::GenericSource;
pub use catalog::{Catalog, Plan, PlanError};
pub use declared::as_text as param_text;
pub use drill::DrillSchedule;
pub use groups::{Allow, ChatKeys, Group, Objectives, Owners, Person};
pub use kinds::{SpecError, StageKinds};
pub use limits::{Budget, Limits};
pub use model::{Action, RetryPolicy};
pub use params::Params;
pub use plan::PlannedStage;
pub use routes::{Route, RouteMode, RouteTarget};
pub use source::{Diagnostic, PathSegment, Pos};
pub use targets::{Target, TargetKind, Targets};
pub use versions::{Part as VersionPart, Versions};
pub use workflows::{Stage, Workflow};
