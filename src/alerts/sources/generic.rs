//! A generic JSON webhook (`sources:` in routes.yaml): any sender that posts JSON, read
//! through the JSON pointers its entry names. Verified by hex HMAC-SHA256 of the body (or
//! of `timestamp:body`) in its signature header, or by the secret as a bearer token, for
//! senders that can only set a header (Datadog).

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AlertSource, Request};
use crate::domain::{Alert, Source, Status};
use crate::signing::{self, Unverified};
use crate::workflow::GenericSource;

pub struct Generic {
    config: GenericSource,
    source: Source,
}

impl Generic {
    pub fn new(config: GenericSource) -> Generic {
        Generic {
            source: Source::new(config.name.clone()),
            config,
        }
    }

    fn alerts<'a>(&self, body: &'a Value) -> Result<Vec<&'a Value>, String> {
        match &self.config.alerts {
            None => Ok(vec![body]),
            Some(p) => match body.pointer(p) {
                Some(Value::Array(items)) => Ok(items.iter().collect()),
                Some(other) => Err(format!("{p}: a list of alerts, not {}", kind(other))),
                None => Err(format!("{p}: missing (the list of alerts)")),
            },
        }
    }

    fn alert(&self, at: &str, v: &Value) -> Result<Alert, String> {
        let c = &self.config;
        let status = scalar(v.pointer(&c.status)).ok_or_else(|| {
            format!(
                "{at}{}: missing, or not a string or number (the status)",
                c.status
            )
        })?;
        let status = if c.firing.contains(&status) {
            Status::Firing
        } else if c.resolved.contains(&status) {
            Status::Resolved
        } else {
            Status::Other(status)
        };
        let mut labels = BTreeMap::new();
        for tags in &c.tags {
            if let Some(t) = v.pointer(tags) {
                read_tags(t, &mut labels);
            }
        }
        for (label, p) in &c.labels {
            if let Some(value) = scalar(v.pointer(p)) {
                labels.insert(label.clone(), value);
            }
        }
        let name = c
            .alertname
            .as_ref()
            .and_then(|p| scalar(v.pointer(p)))
            .or_else(|| labels.get("alertname").cloned())
            .unwrap_or_else(|| c.name.clone());
        labels
            .entry("alertname".into())
            .or_insert_with(|| name.clone());
        let fingerprint = match c.fingerprint.as_ref().and_then(|p| scalar(v.pointer(p))) {
            Some(f) => f,
            None => digest(&[&name, &format!("{labels:?}")]),
        };
        // A re-send of one notification is the same JSON; a new notification differs.
        let dedupe_key = format!(
            "{fingerprint}:{}:{}",
            status.as_str(),
            digest(&[&v.to_string()])
        );
        Ok(Alert {
            source: self.source.clone(),
            dedupe_key,
            fingerprint,
            status,
            name,
            labels,
            summary: c.summary.as_ref().and_then(|p| scalar(v.pointer(p))),
            link: c.link.as_ref().and_then(|p| scalar(v.pointer(p))),
            incident: None,
        })
    }
}

impl AlertSource for Generic {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn secret_var(&self) -> &str {
        &self.config.secret
    }

    fn verify(&self, secret: &[u8], request: &Request) -> Result<(), Unverified> {
        let authorization = request.header("authorization");
        if authorization.is_some() && signing::authorization(authorization, secret).is_ok() {
            return Ok(());
        }
        let given = request
            .header(&self.config.signature_header)
            .ok_or(Unverified::Missing(
                "the source's signature header, or Authorization: Bearer <secret>",
            ))?;
        let given = given.trim();
        let given = given.strip_prefix("sha256=").unwrap_or(given);
        let matched = match &self.config.timestamp_header {
            Some(h) => {
                let ts = request
                    .header(h)
                    .ok_or(Unverified::Missing("the source's timestamp header"))?
                    .trim();
                signing::fresh(ts, request.now_secs)?;
                signing::hmac_matches(secret, &[ts.as_bytes(), b":", request.body], given)
            }
            None => signing::hmac_matches(secret, &[request.body], given),
        };
        if matched {
            Ok(())
        } else {
            Err(Unverified::Mismatch)
        }
    }

    fn parse(&self, request: &Request) -> Result<Vec<Alert>, String> {
        let body: Value = serde_json::from_slice(request.body)
            .map_err(|e| format!("line {} column {}: {e}", e.line(), e.column()))?;
        let many = self.config.alerts.is_some();
        self.alerts(&body)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let at = if many {
                    format!("{}/{i}", self.config.alerts.as_deref().unwrap_or(""))
                } else {
                    String::new()
                };
                self.alert(&at, v)
            })
            .collect()
    }

    fn recognises(&self, body: &Value) -> bool {
        match self.alerts(body) {
            Ok(alerts) => {
                !alerts.is_empty()
                    && alerts
                        .iter()
                        .all(|a| scalar(a.pointer(&self.config.status)).is_some())
            }
            Err(_) => false,
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A string, number or boolean as text; nothing for null, lists and objects.
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Labels from a value holding many: an object (`{service: petstore}`), `key:value` or
/// `key=value` strings (in a list, or comma separated), or `{tag, value}` objects (Zabbix).
fn read_tags(v: &Value, labels: &mut BTreeMap<String, String>) {
    fn pair(text: &str, labels: &mut BTreeMap<String, String>) {
        let text = text.trim();
        let (k, val) = match text.split_once([':', '=']) {
            Some((k, val)) => (k.trim(), val.trim()),
            None => (text, ""),
        };
        if !k.is_empty() {
            labels.insert(k.to_string(), val.to_string());
        }
    }
    match v {
        Value::String(s) => s.split(',').for_each(|p| pair(p, labels)),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => pair(s, labels),
                    Value::Object(o) => {
                        let key = ["tag", "key", "name"]
                            .iter()
                            .find_map(|k| scalar(o.get(*k)));
                        if let Some(key) = key {
                            labels.insert(key, scalar(o.get("value")).unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
        }
        Value::Object(o) => {
            for (k, val) in o {
                if let Some(val) = scalar(Some(val)) {
                    labels.insert(k.clone(), val);
                }
            }
        }
        _ => {}
    }
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0xff]);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::alert_sources::pointer;

    fn datadog() -> Generic {
        Generic::new(GenericSource {
            name: "datadog".into(),
            pos: Default::default(),
            secret: "${env:DD}".into(),
            signature_header: "x-lifeboat-signature".into(),
            timestamp_header: None,
            alerts: None,
            alertname: Some(pointer("$.title").expect("path")),
            status: pointer("$.alert_transition").expect("path"),
            firing: vec!["Triggered".into(), "Re-Triggered".into()],
            resolved: vec!["Recovered".into()],
            fingerprint: Some(pointer("$.alert_id").expect("path")),
            labels: [("priority".to_string(), pointer("$.priority").expect("path"))]
                .into_iter()
                .collect(),
            tags: vec![pointer("$.tags").expect("path")],
            summary: Some(pointer("$.body").expect("path")),
            link: Some(pointer("$.link").expect("path")),
        })
    }

    struct NoHeaders;
    impl super::super::Headers for NoHeaders {
        fn get(&self, _: &str) -> Option<&str> {
            None
        }
    }

    fn read(g: &Generic, body: &str) -> Result<Vec<Alert>, String> {
        g.parse(&Request {
            headers: &NoHeaders,
            body: body.as_bytes(),
            now_secs: 0,
        })
    }

    #[test]
    fn a_datadog_body_becomes_an_alert_with_its_tags_as_labels() {
        let body = r#"{"alert_id":"1234","title":"[Triggered] petstore p99","alert_transition":"Triggered","priority":"P1","tags":"env:prod,service:petstore-api,region:region-b","body":"p99 over 2s","link":"https://app.datadoghq.com/monitors/1234","date":1800000000}"#;
        let a = &read(&datadog(), body).expect("datadog")[0];
        assert_eq!(a.source.as_str(), "datadog");
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.fingerprint, "1234");
        assert_eq!(a.name, "[Triggered] petstore p99");
        assert_eq!(a.labels["service"], "petstore-api");
        assert_eq!(a.labels["region"], "region-b");
        assert_eq!(a.labels["priority"], "P1");
        assert_eq!(a.summary.as_deref(), Some("p99 over 2s"));
        let again = &read(&datadog(), body).expect("datadog")[0];
        assert_eq!(a.dedupe_key, again.dedupe_key, "a re-send is the same");
        let recovered = body.replace("\"Triggered\"", "\"Recovered\"");
        let r = &read(&datadog(), &recovered).expect("recovered")[0];
        assert_eq!(r.status, Status::Resolved);
        assert_eq!(r.fingerprint, a.fingerprint);
        assert_ne!(r.dedupe_key, a.dedupe_key);
        let warn = body.replace("\"Triggered\"", "\"Warn\"");
        assert_eq!(
            read(&datadog(), &warn).expect("warn")[0].status,
            Status::Other("Warn".into())
        );
    }

    #[test]
    fn bodies_it_cannot_read_say_where() {
        let e = read(&datadog(), r#"{"title":"x"}"#).expect_err("no status");
        assert!(e.contains("/alert_transition"), "{e}");
        let e = read(&datadog(), "{").expect_err("not JSON");
        assert!(e.contains("line 1"), "{e}");
        let mut many = datadog();
        many.config.alerts = Some("/events".into());
        let e = read(&many, r#"{"events":{}}"#).expect_err("not a list");
        assert!(e.contains("/events: a list"), "{e}");
        let e = read(&many, r#"{"events":[{"alert_transition":"Triggered"},{}]}"#)
            .expect_err("second lacks a status");
        assert!(e.starts_with("/events/1/alert_transition"), "{e}");
    }

    #[test]
    fn tags_come_as_objects_pairs_or_zabbix_tag_lists() {
        let mut labels = BTreeMap::new();
        read_tags(
            &serde_json::json!([{"tag": "service", "value": "petstore"}, "env=prod", 3]),
            &mut labels,
        );
        read_tags(&serde_json::json!({"team": "sre", "n": 2}), &mut labels);
        assert_eq!(labels["service"], "petstore");
        assert_eq!(labels["env"], "prod");
        assert_eq!(labels["team"], "sre");
        assert_eq!(labels["n"], "2");
    }

    #[test]
    fn recognises_bodies_with_its_status() {
        let g = datadog();
        assert!(g.recognises(&serde_json::json!({"alert_transition": "Triggered"})));
        assert!(!g.recognises(&serde_json::json!({"version": "4"})));
    }
}
