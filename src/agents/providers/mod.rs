//! Providers drive the systems behind targets (the README's "Providers"): `targets.yaml` names
//! one per target, and the capacity, database and dial agents hand their work to it.
//! `capability` holds one trait per capability; `sim` is the simulated estate.

#[cfg(feature = "aws")]
pub mod aws;
pub mod capability;
pub mod data_loss;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod poll;
pub mod postgres;
pub mod records;
pub mod reference;
pub mod registry;
pub mod rfc2136;
pub mod sim;

pub use capability::Provider;
pub use registry::Providers;
