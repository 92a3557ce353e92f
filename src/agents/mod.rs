//! Agents do the work of stages. Each kind consumes `lifeboat.work.<kind>`; the runtime
//! around it takes the stage's lease, heartbeats it, reports progress and releases it with
//! the outcome.
//!
//! Adding an agent kind is one file here, holding its spec type, its check, its resource
//! key and its work (`impl Agent`), and one line in `Registry::builtin`. Capacity, database
//! and dial hand their work to the provider that `targets.yaml` names for the target
//! (`providers`). A stage's approval gate is not an agent: the orchestrator holds it.

pub(crate) mod admission;
mod agent;
mod capacity;
mod database;
mod dial;
mod exec;
pub mod heartbeat;
mod http;
mod noop;
pub mod providers;
mod registry;
pub(crate) mod runtime;
#[cfg(test)]
mod runtime_tests;
mod spec_fields;
mod wait;
mod work;

pub use agent::{Agent, Env};
pub use registry::{Registration, Registry, Runner};
pub use work::{Failure, Work};
