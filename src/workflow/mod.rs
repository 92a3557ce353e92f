//! DR intent as YAML: workflows (stages run by agents), service groups and alert routes.
//! `load` reads and checks files; `model` holds the checked types; `plan` turns a workflow
//! into the stages a run executes.

pub mod load;
pub mod model;
pub mod params;
pub mod plan;
pub mod source;

pub use load::Catalog;
pub use model::{Action, Group, RetryPolicy, Route, Workflow};
pub use params::Params;
pub use plan::PlannedStage;
pub use source::Diagnostic;
