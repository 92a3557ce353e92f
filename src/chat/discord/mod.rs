//! Discord: `/dr` as an application command with subcommands, over HTTP interactions
//! (Ed25519-verified) or the gateway, and the live card in an incident thread of each run.

pub mod api;
pub mod gateway;
pub mod inbound;
pub mod interaction;
pub mod outbound;
pub mod render;
