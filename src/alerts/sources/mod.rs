//! Alert sources: each sender Lifeboat takes alerts from is one `AlertSource`, which says
//! how its requests are verified and how its bodies become `Alert`s. A body that cannot be
//! read is refused whole, with what was wrong and where.
//!
//! Adding a sender is a file here and a line in `builtin`; a sender that posts JSON needs
//! no code at all (`generic`, configured under `sources:` in routes.yaml).

pub mod alertmanager;
pub mod generic;
pub mod grafana;
pub mod pagerduty;
mod registry;

use std::sync::Arc;

pub use registry::{Rejected, Sources};

use crate::domain::Alert;
use crate::signing::Unverified;

/// The request headers a source reads.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for axum::http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        axum::http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

/// A request to a source's receiver, as it arrived.
pub struct Request<'a> {
    pub headers: &'a dyn Headers,
    pub body: &'a [u8],
    pub now_secs: i64,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// One sender of alerts.
pub trait AlertSource: Send + Sync {
    /// In `/webhooks/{name}`, in a route's `source:`, and on every alert it sends.
    fn name(&self) -> &str;
    /// Where its secret comes from, named when it is missing.
    fn secret_var(&self) -> &str;
    /// Checks a request's credentials against the secret, before the body is read.
    fn verify(&self, secret: &[u8], request: &Request) -> Result<(), Unverified>;
    /// Reads the alerts in a verified request.
    fn parse(&self, request: &Request) -> Result<Vec<Alert>, String>;
    /// Whether a body looks like this sender's (`lifeboat routes test`).
    fn recognises(&self, body: &serde_json::Value) -> bool;
}

/// The senders Lifeboat knows by code, one line each.
pub fn builtin() -> Vec<Arc<dyn AlertSource>> {
    vec![
        Arc::new(alertmanager::Alertmanager),
        Arc::new(pagerduty::Pagerduty),
        Arc::new(grafana::Grafana),
    ]
}

/// Reads JSON into `T`, saying where in the body it went wrong.
fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}
