//! PagerDuty's v3 webhooks (PROTOCOLS.md section 6). Incident events are matched on
//! `event_type`, `service`, `priority`, `urgency` and `title`, given to routes as labels of
//! those names. `incident.triggered` fires and `incident.resolved` resolves; every other
//! event type is recorded and starts nothing.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AlertSource, Request};
use crate::domain::{Alert, Source, Status};
use crate::signing::{self, Unverified};

pub const NAME: &str = "pagerduty";

/// PagerDuty's v3 webhooks, signed with HMAC-SHA256 over the raw body (several
/// signatures while a secret is rotated).
pub struct Pagerduty;

impl AlertSource for Pagerduty {
    fn name(&self) -> &str {
        NAME
    }

    fn secret_var(&self) -> &str {
        "PAGERDUTY_WEBHOOK_SECRET"
    }

    fn verify(&self, secret: &[u8], request: &Request) -> Result<(), Unverified> {
        verify(
            request.header("x-pagerduty-signature"),
            secret,
            request.body,
        )
    }

    fn parse(&self, request: &Request) -> Result<Vec<Alert>, String> {
        parse(request.body)
    }

    fn recognises(&self, body: &serde_json::Value) -> bool {
        body.get("event").is_some_and(|e| e.is_object())
    }
}

/// `X-PagerDuty-Signature: v1=HEX[,v1=HEX…]`: accepted when any `v1` matches.
pub fn verify(header: Option<&str>, secret: &[u8], body: &[u8]) -> Result<(), Unverified> {
    let header = header.ok_or(Unverified::Missing("X-PagerDuty-Signature"))?;
    let any = header
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .any(|sig| signing::hmac_matches(secret, &[body], sig));
    if any {
        Ok(())
    } else {
        Err(Unverified::Mismatch)
    }
}

#[derive(Deserialize)]
struct Envelope {
    event: Event,
}

#[derive(Deserialize)]
struct Event {
    id: String,
    event_type: String,
    #[serde(default)]
    data: Data,
}

#[derive(Deserialize, Default)]
struct Data {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    #[serde(default)]
    service: Option<Summary>,
    #[serde(default)]
    priority: Option<Summary>,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(default)]
    summary: Option<String>,
}

/// Reads a webhook's body. A delivery is known by its event's id, which the signature
/// covers; the `X-Webhook-Id` header does not count, since anyone replaying a delivery
/// can change it.
pub fn parse(body: &[u8]) -> Result<Vec<Alert>, String> {
    let env: Envelope = super::read(body)?;
    let e = env.event;
    let status = match e.event_type.as_str() {
        "incident.triggered" => Status::Firing,
        "incident.resolved" => Status::Resolved,
        other => Status::Other(other.to_string()),
    };
    let d = e.data;
    let mut labels = BTreeMap::new();
    labels.insert("event_type".to_string(), e.event_type.clone());
    let summary_of = |s: Option<Summary>| s.and_then(|s| s.summary);
    for (name, value) in [
        ("service", summary_of(d.service)),
        ("priority", summary_of(d.priority)),
        ("urgency", d.urgency),
        ("title", d.title.clone()),
    ] {
        if let Some(v) = value {
            labels.insert(name.to_string(), v);
        }
    }
    let incident = d.id;
    Ok(vec![Alert {
        source: Source::from_static(NAME),
        dedupe_key: e.id.clone(),
        fingerprint: incident.clone().unwrap_or_else(|| e.id.clone()),
        status,
        name: d.title.unwrap_or_else(|| e.event_type.clone()),
        labels,
        summary: None,
        link: d.html_url,
        incident,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const TRIGGERED: &str = r#"{"event":{"id":"01DEN","event_type":"incident.triggered","resource_type":"incident","occurred_at":"2026-11-25T10:00:00.000Z","agent":null,"client":null,"data":{"id":"PGR0VU2","type":"incident","html_url":"https://acme.pagerduty.com/incidents/PGR0VU2","number":2,"status":"triggered","incident_key":"d3640fbd","title":"Region b is down","service":{"id":"PF9KMXH","summary":"petstore-api","type":"service_reference"},"priority":{"summary":"P1"},"urgency":"high"}}}"#;

    #[test]
    fn pagerdutys_published_vector_passes_among_several_signatures() {
        let body = br#"{"event":{"id":"x"}}"#;
        let good = "v1=6ffde868d5515a7f9a84c45bf3eb4ef120aa4991dce7d53835e17f63a9b778fd";
        assert_eq!(verify(Some(good), b"pd-secret", body), Ok(()));
        let rotated = format!("v1=00ff, {good}");
        assert_eq!(verify(Some(&rotated), b"pd-secret", body), Ok(()));
        assert_eq!(
            verify(Some(good), b"other-secret", body),
            Err(Unverified::Mismatch)
        );
        assert_eq!(
            verify(Some(good), b"pd-secret", br#"{"event":{"id":"y"}}"#),
            Err(Unverified::Mismatch)
        );
        assert!(matches!(
            verify(None, b"pd-secret", body),
            Err(Unverified::Missing(_))
        ));
    }

    #[test]
    fn an_incident_becomes_labels() {
        let a = &parse(TRIGGERED.as_bytes()).expect("pd")[0];
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.dedupe_key, "01DEN");
        assert_eq!(a.fingerprint, "PGR0VU2");
        assert_eq!(a.incident.as_deref(), Some("PGR0VU2"));
        assert_eq!(a.labels["service"], "petstore-api");
        assert_eq!(a.labels["priority"], "P1");
        assert_eq!(a.labels["urgency"], "high");
        assert_eq!(a.labels["title"], "Region b is down");
        assert_eq!(a.labels["event_type"], "incident.triggered");
    }

    #[test]
    fn other_events_are_read_and_start_nothing() {
        let acked = TRIGGERED
            .replace("incident.triggered", "incident.acknowledged")
            .replace("\"priority\":{\"summary\":\"P1\"}", "\"priority\":null");
        let a = &parse(acked.as_bytes()).expect("pd")[0];
        assert_eq!(a.status, Status::Other("incident.acknowledged".into()));
        assert_eq!(a.dedupe_key, "01DEN");
        assert!(!a.labels.contains_key("priority"));
        let e = parse(br#"{"event":{"event_type":"incident.triggered"}}"#).expect_err("no id");
        assert!(e.contains("missing field `id`"), "{e}");
    }
}
