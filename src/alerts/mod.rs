//! Alerts: the sources they come from, each verified and read by its own component
//! (`sources`: Alertmanager, PagerDuty, Grafana, and generic JSON webhooks),
//! matched to routes (`routing`), filed with what they did (`desk`, by the rules of
//! `triage` and `firing`), and the offers they
//! open, started at once, on a person's word, or when a countdown runs out (`offers`); and
//! notes on the PagerDuty incidents runs came from (`pagerduty_notes`).

pub mod desk;
pub mod firing;
pub mod offers;
pub mod pagerduty_notes;
pub mod routing;
pub mod sources;
pub mod triage;

pub use desk::{Desk, DeskError, DeskTask, Receipt};
pub use offers::{OfferError, Offers};
pub use sources::{Rejected, Sources};
