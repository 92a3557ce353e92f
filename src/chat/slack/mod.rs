//! Slack: `/dr` slash commands and card buttons over HTTP or Socket Mode, and the live card
//! in an incident channel of each run.

pub mod api;
pub mod blocks;
pub mod inbound;
pub mod outbound;
pub mod socket;
pub mod verify;
