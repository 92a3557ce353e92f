//! The sources a service takes alerts from, with their secrets: the built-in senders and
//! the generic ones of routes.yaml. A request is checked (credentials first, before any
//! parsing) and read here. A source whose secret is unset refuses everything unless it
//! was opened on purpose (`LIFEBOAT_OPEN_WEBHOOKS`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::generic::Generic;
use super::{AlertSource, Headers, Request, builtin};
use crate::agents::providers::reference;
use crate::config::AlertSettings;
use crate::domain::Alert;
use crate::secret::{ExposeSecret, SecretString};
use crate::workflow::GenericSource;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No such source: 404, nothing recorded.
    #[error("{0}")]
    Unknown(String),
    /// Credentials missing or wrong, or the receiver is closed: 401, nothing recorded.
    #[error("{0}")]
    Unauthorized(String),
    /// The body cannot be read: 400, nothing recorded.
    #[error("{0}")]
    BadBody(String),
}

/// Where a source's secret comes from.
enum Secret {
    /// Read when the service started (a built-in source's variable).
    Held(SecretString),
    /// `${env:…}` or `${file:…}`, read on each request so a rotated secret is taken
    /// without a restart.
    Reference(String),
    Unset,
}

struct Entry {
    source: Arc<dyn AlertSource>,
    generic: bool,
    secret: Secret,
    open: bool,
}

pub struct Sources {
    entries: Vec<Entry>,
}

impl Sources {
    /// The built-in sources, with the secrets `settings` holds or else their variables
    /// (`env`), and the generic sources of routes.yaml. `LIFEBOAT_OPEN_WEBHOOKS` may name
    /// only sources there are.
    pub fn new(
        settings: &AlertSettings,
        generic: &[GenericSource],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Sources> {
        let mut entries: Vec<Entry> = builtin()
            .into_iter()
            .map(|source| {
                let secret = match settings.secrets.get(source.name()) {
                    Some(s) => Secret::Held(s.clone()),
                    None => match env(source.secret_var()) {
                        Some(s) => Secret::Held(SecretString::from(s)),
                        None => Secret::Unset,
                    },
                };
                Entry {
                    source,
                    generic: false,
                    secret,
                    open: false,
                }
            })
            .collect();
        for g in generic {
            entries.push(Entry {
                secret: Secret::Reference(g.secret.clone()),
                source: Arc::new(Generic::new(g.clone())),
                generic: true,
                open: false,
            });
        }
        let mut sources = Sources { entries };
        for name in &settings.open {
            let known = sources.names().join(", ");
            let entry = sources
                .entries
                .iter_mut()
                .find(|e| e.source.name() == name)
                .ok_or_else(|| {
                    anyhow::anyhow!("LIFEBOAT_OPEN_WEBHOOKS: `{name}` is not a receiver ({known})")
                })?;
            entry.open = true;
        }
        Ok(sources)
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.source.name()).collect()
    }

    /// The first source, built-in ones first, that recognises a body.
    pub fn detect(&self, body: &serde_json::Value) -> Option<&dyn AlertSource> {
        self.entries
            .iter()
            .map(|e| e.source.as_ref())
            .find(|s| s.recognises(body))
    }

    pub fn get(&self, name: &str) -> Option<&dyn AlertSource> {
        self.entries
            .iter()
            .find(|e| e.source.name() == name)
            .map(|e| e.source.as_ref())
    }

    /// Checks a request to source `name` (a generic one when `generic`, as its path says)
    /// and reads its alerts.
    pub fn receive(
        &self,
        name: &str,
        generic: bool,
        headers: &dyn Headers,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Vec<Alert>, Rejected> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.generic == generic && e.source.name() == name)
            .ok_or_else(|| {
                let there: Vec<String> = self
                    .entries
                    .iter()
                    .map(|e| {
                        if e.generic {
                            format!("generic/{}", e.source.name())
                        } else {
                            e.source.name().to_string()
                        }
                    })
                    .collect();
                Rejected::Unknown(format!(
                    "no alert source `{name}` (there are: {})",
                    there.join(", ")
                ))
            })?;
        let request = Request {
            headers,
            body,
            now_secs,
        };
        let secret = match &entry.secret {
            Secret::Held(s) => Some(s.clone()),
            Secret::Reference(r) => match reference::resolve("secret", r) {
                Ok(s) => Some(s),
                Err(f) if entry.open => {
                    tracing::debug!(source = name, why = %f.message, "An open source's secret is unreadable.");
                    None
                }
                Err(f) => {
                    return Err(Rejected::Unauthorized(format!(
                        "the {name} receiver refuses every request: {}",
                        f.message
                    )));
                }
            },
            Secret::Unset => None,
        };
        match secret {
            None if entry.open => {}
            None => {
                return Err(Rejected::Unauthorized(format!(
                    "the {name} receiver refuses every request: {} is not set",
                    entry.source.secret_var()
                )));
            }
            Some(secret) => entry
                .source
                .verify(secret.expose_secret().as_bytes(), &request)
                .map_err(|e| Rejected::Unauthorized(format!("{name} webhook refused: {e}")))?,
        }
        entry
            .source
            .parse(&request)
            .map_err(|e| Rejected::BadBody(format!("not a {name} webhook body: {e}")))
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open: BTreeMap<&str, bool> = self
            .entries
            .iter()
            .map(|e| (e.source.name(), e.open))
            .collect();
        f.debug_struct("Sources").field("open", &open).finish()
    }
}
