//! Lifeboat runs disaster-recovery workflows.
//!
//! A trigger (API, chat, alert, CLI) names a service group and an action; the orchestrator
//! plans the group's workflow into stages, stores the run, and sends each ready stage to its
//! agent over the bus; the agent takes the stage's lease in the semaphore, does the work,
//! reports progress, and releases the lease with the outcome, which moves the run on.
//!
//! Layout, lowest first (no module imports one above it):
//! - `clock`, `secret`, `signing`, `string_enum`: time as a handed-in `Clock`; values
//!   that never print; request signatures; enums stored and sent as words.
//! - `workflow`: the YAML formats (workflows, groups, routes, targets), their checks, and
//!   plans. It asks what agents accept through a trait, and so depends on none.
//! - `domain`: runs, stages, audit records and event kinds, actors, leases, ids.
//! - `bus`: the message seam, its messages, and the in-process and Kafka buses.
//! - `store`: runs, audit and outbox (`store::runs`) and leases (`store::leases`) on
//!   SQLite or PostgreSQL.
//! - `semaphore`: the lease policy (TTL, heartbeats, expiry sweep) over the store.
//! - `metrics`: Prometheus metrics.
//! - `agents`: the agent registry, one file per agent kind, the providers behind
//!   capacity, database and dial, and the runtime around every agent.
//! - `orchestrator`: the pure state machine (`machine`) and batch step (`batch`), the
//!   engine that commits and carries them out, and the handle the rest uses.
//! - `trigger` and `commands`: who asked for what, and the chat command grammar.
//! - `evacuation`: many groups moved at once in dependency order, each move taken once
//!   through the store.
//! - `schedule`: groups' scheduled drills, each time taken once through the store;
//!   `readiness`: what a group's last drill says of it; `evidence`: a run's report for
//!   an auditor, and a group's runs over a period.
//! - `alerts`: the alert webhooks, routes, the desk that files every alert with what it
//!   did, and the offers alerts open (auto, confirm, countdown).
//! - `chat`: `/dr` in Slack and Discord, and each run's live card (`chat::notifier`).
//! - `http`: the axum API and the console; `app`: the wiring; `startup`: app plus HTTP listener.
//! - `cli`: the command line, with the demo, the benchmark and terminal progress.

pub mod agents;
pub mod alerts;
pub mod app;
pub mod bus;
pub mod chat;
pub mod cli;
pub mod clock;
pub(crate) mod commands;
pub mod config;
pub mod domain;
pub mod evacuation;
pub mod evidence;
pub(crate) mod http;
pub(crate) mod metrics;
pub mod orchestrator;
pub mod readiness;
pub mod references;
pub mod schedule;
pub mod secret;
pub mod semaphore;
pub mod signing;
pub mod startup;
pub mod store;
mod string_enum;
pub(crate) mod telemetry;
pub mod tls;
pub(crate) mod trigger;
pub mod workflow;
