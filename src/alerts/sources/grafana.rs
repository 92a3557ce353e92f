//! Grafana alerting's webhook (PROTOCOLS.md section 7): Alertmanager's shape with
//! `version: "1"` and a few fields of Grafana's own, which routes do not need.

use serde::Deserialize;

use super::alertmanager::{AmAlert, alerts};
use super::{AlertSource, Request};
use crate::domain::{Alert, Source};
use crate::signing::{self, Unverified};

pub const NAME: &str = "grafana";

/// Grafana alerting, with its HMAC (over `timestamp:body` when it sends a timestamp) or the
/// secret as a bearer token.
pub struct Grafana;

impl AlertSource for Grafana {
    fn name(&self) -> &str {
        NAME
    }

    fn secret_var(&self) -> &str {
        "GRAFANA_WEBHOOK_SECRET"
    }

    fn verify(&self, secret: &[u8], request: &Request) -> Result<(), Unverified> {
        let authorization = request.header("authorization");
        if authorization.is_some() && signing::authorization(authorization, secret).is_ok() {
            return Ok(());
        }
        verify(
            request.header("x-grafana-alerting-signature"),
            request.header("x-grafana-alerting-timestamp"),
            secret,
            request.body,
            request.now_secs,
        )
    }

    fn parse(&self, request: &Request) -> Result<Vec<Alert>, String> {
        parse(request.body)
    }

    fn recognises(&self, body: &serde_json::Value) -> bool {
        body.get("version").and_then(|v| v.as_str()) == Some("1") || body.get("orgId").is_some()
    }
}

/// `X-Grafana-Alerting-Signature`, over `timestamp:body` when
/// `X-Grafana-Alerting-Timestamp` is sent (then within five minutes of `now`), else over the
/// body alone.
pub fn verify(
    signature: Option<&str>,
    timestamp: Option<&str>,
    secret: &[u8],
    body: &[u8],
    now_secs: i64,
) -> Result<(), Unverified> {
    let signature = signature.ok_or(Unverified::Missing(
        "X-Grafana-Alerting-Signature, or Authorization: Bearer <secret>",
    ))?;
    let matched = match timestamp.map(str::trim) {
        Some(ts) => {
            signing::fresh(ts, now_secs)?;
            signing::hmac_matches(secret, &[ts.as_bytes(), b":", body], signature)
        }
        None => signing::hmac_matches(secret, &[body], signature),
    };
    if matched {
        Ok(())
    } else {
        Err(Unverified::Mismatch)
    }
}

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    alerts: Vec<AmAlert>,
}

pub fn parse(body: &[u8]) -> Result<Vec<Alert>, String> {
    let n: Notification = super::read(body)?;
    if let Some(v) = n.version.as_deref()
        && v != "1"
    {
        return Err(format!(
            "version: this is webhook version {v:?}; Lifeboat reads Grafana's version \"1\""
        ));
    }
    alerts(Source::from_static(NAME), n.status.as_deref(), n.alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    #[test]
    fn reads_grafanas_body() {
        let body = r#"{"receiver":"lifeboat","status":"resolved","orgId":1,"alerts":[{"status":"resolved","labels":{"alertname":"HighLatency","grafana_folder":"shop"},"annotations":{"description":"p99 over 2s"},"startsAt":"2026-11-25T10:00:00Z","endsAt":"2026-11-25T10:05:00Z","generatorURL":"http://grafana/alerting/grafana/x/view","fingerprint":"f00d","silenceURL":"http://grafana/s","dashboardURL":"","panelURL":"","values":{"B":2.5},"valueString":"[ var='B' value=2.5 ]"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://grafana/","version":"1","groupKey":"{}:{}","truncatedAlerts":0,"title":"[RESOLVED]","state":"ok","message":"resolved"}"#;
        let alerts = parse(body.as_bytes()).expect("grafana");
        assert_eq!(alerts[0].source.as_str(), NAME);
        assert_eq!(alerts[0].status, Status::Resolved);
        assert_eq!(alerts[0].summary.as_deref(), Some("p99 over 2s"));
        assert!(parse(body.replace("\"1\"", "\"4\"").as_bytes()).is_err());
    }

    #[test]
    fn grafana_signs_the_body_or_the_timestamp_and_body() {
        use crate::signing::sign;
        let body = b"{}";
        let plain = sign(b"g", &[body]);
        assert_eq!(verify(Some(&plain), None, b"g", body, 0), Ok(()));
        let now = 1_800_000_000;
        let ts = now.to_string();
        let timed = sign(b"g", &[ts.as_bytes(), b":", body]);
        assert_eq!(verify(Some(&timed), Some(&ts), b"g", body, now), Ok(()));
        assert_eq!(
            verify(Some(&timed), Some(&ts), b"g", body, now + 301),
            Err(Unverified::Stale)
        );
        assert_eq!(
            verify(Some(&plain), Some(&ts), b"g", body, now),
            Err(Unverified::Mismatch)
        );
        let ms = (now * 1000).to_string();
        let timed_ms = sign(b"g", &[ms.as_bytes(), b":", body]);
        assert_eq!(verify(Some(&timed_ms), Some(&ms), b"g", body, now), Ok(()));
    }
}
