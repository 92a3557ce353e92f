//! Alerts: Alertmanager, PagerDuty and Grafana webhooks (`receive`, `sources`, `verify`),
//! matched to routes (`routing`), filed with what they did (`desk`), and the offers they
//! open, started at once, on a person's word, or when a countdown runs out (`offers`); and
//! notes on the PagerDuty incidents runs came from (`pagerduty`).

pub mod desk;
pub mod firing;
pub mod offers;
pub mod pagerduty_notes;
pub mod receive;
pub mod routing;
pub mod sources;
pub mod verify;

pub use desk::{Desk, DeskError, DeskTask, Receipt};
pub use offers::{Choice, OfferError, Offers};
pub use receive::{Rejected, receive};
