//! Lifeboat runs disaster-recovery workflows.
//!
//! A trigger (API, chat, alert, CLI) names a service group and an action; the orchestrator
//! plans the group's workflow into stages, stores the run, and sends each ready stage to its
//! agent over the bus; the agent takes the stage's lease in the semaphore, does the work,
//! reports progress, and releases the lease with the outcome, which moves the run on.
//!
//! Layout:
//! - `workflow`: the YAML formats (workflows, groups, routes), their checks, and plans.
//! - `orchestrator`: the pure state machine (`machine`), its engine, and the handle.
//! - `store`: runs, stages, audit and outbox on SQLite or PostgreSQL.
//! - `semaphore`: leases per resource, with heartbeats, expiry and recorded outcomes.
//! - `bus`: the message seam and its in-process implementation.
//! - `agents`: the agent runtime and the shipped agents (exec, http, wait, sim, noop).
//! - `trigger` and `commands`: who asked for what, and the chat command grammar.
//! - `http`: the axum API; `cli`, `progress`, `demo`, `bench`: the command line.
//! - `app`: wiring of all of the above from `config`.

pub mod agents;
pub mod app;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod demo;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod orchestrator;
pub mod progress;
pub mod semaphore;
pub mod store;
pub mod telemetry;
pub mod trigger;
pub mod workflow;
