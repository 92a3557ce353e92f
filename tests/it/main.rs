//! The integration tests, one binary: each module is one suite (`cargo test --test it
//! alerts::` runs one). One binary links the service (AWS SDK, kube, serenity) once, not
//! once per suite.

mod common;

mod admission;
mod agents;
mod alertmanager;
mod alerts;
mod api;
mod bench;
mod budgets;
mod cli;
mod console;
mod console_browser;
mod controls;
mod crash;
mod data_loss;
mod data_loss_postgres;
mod discord;
mod drills;
mod evacuations;
mod evidence;
mod exec;
mod failback;
mod faults;
mod forged_work;
mod fuzz;
mod fuzz_console;
mod fuzz_routes;
mod kafka_front;
mod kafka_security;
mod layering;
mod mattermost;
mod one_store;
mod production;
mod provider_aws;
mod provider_dns;
mod provider_kubernetes;
mod provider_postgres;
mod recovery;
mod redelivery;
mod reprotect;
mod reprotect_postgres;
mod runs;
mod scopes;
mod secrets;
mod slack;
mod store;
mod store_tls;
mod validate;
mod wire;
