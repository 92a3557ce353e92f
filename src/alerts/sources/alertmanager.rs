//! Alertmanager's webhook, version 4 (PROTOCOLS.md section 5). Grafana's body has the same
//! shape (`grafana.rs`). `notification_reason`, `routeLabels` and `truncatedAlerts` come
//! and go between releases; nothing here needs them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AlertSource, Request};
use crate::domain::{Alert, Source, Status};
use crate::signing::{self, Unverified};

pub const NAME: &str = "alertmanager";

/// Alertmanager, with a bearer token (or basic auth whose password is the token).
pub struct Alertmanager;

impl AlertSource for Alertmanager {
    fn name(&self) -> &str {
        NAME
    }

    fn secret_var(&self) -> &str {
        "ALERTMANAGER_TOKEN"
    }

    fn verify(&self, secret: &[u8], request: &Request) -> Result<(), Unverified> {
        signing::authorization(request.header("authorization"), secret)
    }

    fn parse(&self, request: &Request) -> Result<Vec<Alert>, String> {
        parse(request.body)
    }

    fn recognises(&self, body: &serde_json::Value) -> bool {
        body.get("version").and_then(|v| v.as_str()) == Some("4")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Notification {
    pub version: String,
    /// The group's status: an alert that leaves out its own has this one.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub alerts: Vec<AmAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AmAlert {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

pub fn parse(body: &[u8]) -> Result<Vec<Alert>, String> {
    let n: Notification = super::read(body)?;
    if n.version != "4" {
        return Err(format!(
            "version: this is webhook version {:?}; Lifeboat reads version \"4\"",
            n.version
        ));
    }
    alerts(Source::from_static(NAME), n.status.as_deref(), n.alerts)
}

/// The alerts of a notification whose own status is `group_status`.
pub(super) fn alerts(
    source: Source,
    group_status: Option<&str>,
    alerts: Vec<AmAlert>,
) -> Result<Vec<Alert>, String> {
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let status = match a.status.as_deref().or(group_status) {
                Some("firing") => Status::Firing,
                Some("resolved") => Status::Resolved,
                Some(other) => {
                    return Err(format!(
                        "alerts[{i}].status: `{other}` is neither `firing` nor `resolved`"
                    ));
                }
                None => {
                    return Err(format!(
                        "alerts[{i}].status: missing, and the notification has none"
                    ));
                }
            };
            let fingerprint = if a.fingerprint.is_empty() {
                label_fingerprint(&a.labels)
            } else {
                a.fingerprint
            };
            Ok(Alert {
                source: source.clone(),
                // Re-sent every repeat_interval with the same start: the same alert. A
                // new firing after a resolve starts again, and is new.
                dedupe_key: format!("{fingerprint}:{}:{}", a.starts_at, status.as_str()),
                fingerprint,
                status,
                name: a
                    .labels
                    .get("alertname")
                    .cloned()
                    .unwrap_or_else(|| "alert".into()),
                summary: a
                    .annotations
                    .get("summary")
                    .or_else(|| a.annotations.get("description"))
                    .cloned(),
                link: Some(a.generator_url).filter(|u| !u.is_empty()),
                labels: a.labels,
                incident: None,
            })
        })
        .collect()
}

/// A stand-in for a missing fingerprint: the labels, which are what Alertmanager
/// fingerprints too.
fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xff]);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"receiver":"lifeboat","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"RegionDown","region":"region-b"},"annotations":{"summary":"region b is down"},"startsAt":"2026-11-25T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/graph","fingerprint":"a1b2"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","version":"4","groupKey":"{}:{alertname=\"RegionDown\"}","truncatedAlerts":0}
"#;

    #[test]
    fn reads_a_version_4_body() {
        let alerts = parse(BODY.as_bytes()).expect("a body");
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.fingerprint, "a1b2");
        assert_eq!(a.dedupe_key, "a1b2:2026-11-25T10:00:00Z:firing");
        assert_eq!(a.headline(), "RegionDown (region=region-b)");
        assert_eq!(a.summary.as_deref(), Some("region b is down"));
        assert_eq!(a.link.as_deref(), Some("http://prom/graph"));
    }

    #[test]
    fn newer_fields_are_tolerated_and_bad_bodies_say_where() {
        let newer = BODY.replace(
            "\"truncatedAlerts\":0",
            "\"truncatedAlerts\":0,\"notification_reason\":\"repeat\",\"routeLabels\":{\"a\":\"b\"}",
        );
        assert_eq!(parse(newer.as_bytes()).expect("newer").len(), 1);
        let bad = BODY.replace("\"region\":\"region-b\"", "\"region\":7");
        let e = parse(bad.as_bytes()).expect_err("a number label");
        assert!(e.starts_with("alerts[0].labels.region:"), "{e}");
        let e = parse(BODY.replace("\"4\"", "\"3\"").as_bytes()).expect_err("version 3");
        assert!(e.contains("version \"4\""), "{e}");
        let e = parse(b"{").expect_err("truncated");
        assert!(e.contains("EOF"), "{e}");
    }

    #[test]
    fn an_alert_without_a_status_has_its_notifications() {
        let bare = BODY.replace("[{\"status\":\"firing\",", "[{");
        assert_ne!(bare, BODY);
        let alerts = parse(bare.as_bytes()).expect("a body");
        assert_eq!(alerts[0].status, Status::Firing);
        let resolved = bare.replace("\"status\":\"firing\"", "\"status\":\"resolved\"");
        assert_eq!(
            parse(resolved.as_bytes()).expect("a body")[0].status,
            Status::Resolved
        );
        let none = bare.replace("\"status\":\"firing\",", "");
        let e = parse(none.as_bytes()).expect_err("no status anywhere");
        assert!(e.starts_with("alerts[0].status: missing"), "{e}");
    }

    #[test]
    fn a_missing_fingerprint_comes_from_the_labels() {
        let body = BODY.replace("\"fingerprint\":\"a1b2\"", "\"fingerprint\":\"\"");
        let a = &parse(body.as_bytes()).expect("a body")[0];
        assert_eq!(a.fingerprint.len(), 16);
        let again = &parse(body.as_bytes()).expect("a body")[0];
        assert_eq!(a.fingerprint, again.fingerprint);
    }
}
