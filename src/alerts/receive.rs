//! A receiver's request, checked and read: credentials first (before any parsing), then
//! the body. A receiver whose secret is unset refuses everything unless it was opened on
//! purpose (`LIFEBOAT_OPEN_WEBHOOKS`).

use super::{sources, verify};
use crate::config::AlertSettings;
use crate::domain::{Alert, Source};
use crate::secret::{ExposeSecret, SecretString};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Credentials missing or wrong, or the receiver is closed: 401, nothing recorded.
    #[error("{0}")]
    Unauthorized(String),
    /// The body cannot be read: 400, nothing recorded.
    #[error("{0}")]
    BadBody(String),
}

/// The request headers a receiver reads.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for axum::http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        axum::http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
}

fn secret_var(source: Source) -> &'static str {
    match source {
        Source::Alertmanager => "ALERTMANAGER_TOKEN",
        Source::Pagerduty => "PAGERDUTY_WEBHOOK_SECRET",
        Source::Grafana => "GRAFANA_WEBHOOK_SECRET",
    }
}

fn secret(settings: &AlertSettings, source: Source) -> Option<&SecretString> {
    match source {
        Source::Alertmanager => settings.alertmanager_token.as_ref(),
        Source::Pagerduty => settings.pagerduty_secret.as_ref(),
        Source::Grafana => settings.grafana_secret.as_ref(),
    }
}

/// Checks a request to `source`'s receiver and reads its alerts.
pub fn receive(
    settings: &AlertSettings,
    source: Source,
    headers: &impl Headers,
    body: &[u8],
    now_secs: i64,
) -> Result<Vec<Alert>, Rejected> {
    let unauthorized =
        |e: verify::Unverified| Rejected::Unauthorized(format!("{source} webhook refused: {e}"));
    match secret(settings, source) {
        None if settings.open.iter().any(|o| o == source.as_str()) => {}
        None => {
            return Err(Rejected::Unauthorized(format!(
                "the {source} receiver refuses every request: {} is not set",
                secret_var(source)
            )));
        }
        Some(secret) => {
            let secret = secret.expose_secret().as_bytes();
            match source {
                Source::Alertmanager => {
                    verify::authorization(headers.get("authorization"), secret)
                        .map_err(unauthorized)?;
                }
                Source::Pagerduty => {
                    verify::pagerduty(headers.get("x-pagerduty-signature"), secret, body)
                        .map_err(unauthorized)?;
                }
                Source::Grafana => {
                    let bearer = headers.get("authorization").is_some()
                        && verify::authorization(headers.get("authorization"), secret).is_ok();
                    if !bearer {
                        verify::grafana(
                            headers.get("x-grafana-alerting-signature"),
                            headers.get("x-grafana-alerting-timestamp"),
                            secret,
                            body,
                            now_secs,
                        )
                        .map_err(unauthorized)?;
                    }
                }
            }
        }
    }
    let read = match source {
        Source::Alertmanager => sources::alertmanager::parse(body),
        Source::Pagerduty => sources::pagerduty::parse(body, headers.get("x-webhook-id")),
        Source::Grafana => sources::grafana::parse(body),
    };
    read.map_err(|e| Rejected::BadBody(format!("not a {source} webhook body: {e}")))
}
