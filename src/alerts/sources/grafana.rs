//! Grafana alerting's webhook (PROTOCOLS.md section 7): Alertmanager's shape with
//! `version: "1"` and a few fields of Grafana's own, which routes do not need.

use serde::Deserialize;

use super::alertmanager::{AmAlert, alerts};
use crate::domain::{Alert, Source};

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    version: Option<String>,
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
    alerts(Source::Grafana, n.alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    #[test]
    fn reads_grafanas_body() {
        let body = r#"{"receiver":"lifeboat","status":"resolved","orgId":1,"alerts":[{"status":"resolved","labels":{"alertname":"HighLatency","grafana_folder":"shop"},"annotations":{"description":"p99 over 2s"},"startsAt":"2026-11-25T10:00:00Z","endsAt":"2026-11-25T10:05:00Z","generatorURL":"http://grafana/alerting/grafana/x/view","fingerprint":"f00d","silenceURL":"http://grafana/s","dashboardURL":"","panelURL":"","values":{"B":2.5},"valueString":"[ var='B' value=2.5 ]"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://grafana/","version":"1","groupKey":"{}:{}","truncatedAlerts":0,"title":"[RESOLVED]","state":"ok","message":"resolved"}"#;
        let alerts = parse(body.as_bytes()).expect("grafana");
        assert_eq!(alerts[0].source, Source::Grafana);
        assert_eq!(alerts[0].status, Status::Resolved);
        assert_eq!(alerts[0].summary.as_deref(), Some("p99 over 2s"));
        assert!(parse(body.replace("\"1\"", "\"4\"").as_bytes()).is_err());
    }
}
