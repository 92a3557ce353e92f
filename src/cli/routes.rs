//! `lifeboat routes test FILE.json`: reads an Alertmanager, PagerDuty or Grafana body and
//! says, for each alert in it, which route takes it and what would happen. Starts nothing
//! and reads no store, so what it cannot know (a run already active, a cooldown running)
//! it names as a condition.

use std::path::Path;

use crate::alerts::{routing, sources};
use crate::domain::{Alert, Source, Status};
use crate::workflow::{Catalog, RouteMode};

/// Which sender wrote `body`, from its shape.
pub fn detect(body: &serde_json::Value) -> Option<Source> {
    if body.get("event").is_some_and(|e| e.is_object()) {
        return Some(Source::Pagerduty);
    }
    match body.get("version").and_then(|v| v.as_str()) {
        Some("4") => Some(Source::Alertmanager),
        Some("1") => Some(Source::Grafana),
        _ if body.get("orgId").is_some() => Some(Source::Grafana),
        _ => None,
    }
}

/// Reads the file's alerts, as the receiver of `source` (or of the detected sender) would.
pub fn read(file: &Path, source: Option<Source>) -> anyhow::Result<(Source, Vec<Alert>)> {
    let text =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: not JSON: {e}",
            file.display(),
            e.line(),
            e.column()
        )
    })?;
    let source = match source.or_else(|| detect(&value)) {
        Some(s) => s,
        None => anyhow::bail!(
            "{}: not an Alertmanager (version \"4\"), Grafana (version \"1\") or PagerDuty (event) body; say which with --source",
            file.display()
        ),
    };
    let alerts = match source {
        Source::Alertmanager => sources::alertmanager::parse(&text),
        Source::Grafana => sources::grafana::parse(&text),
        Source::Pagerduty => sources::pagerduty::parse(&text, None),
    }
    .map_err(|e| anyhow::anyhow!("{}: not a {source} body: {e}", file.display()))?;
    Ok((source, alerts))
}

/// What the routes would do with one alert, in words.
pub fn explain(catalog: &Catalog, alert: &Alert) -> Vec<String> {
    let mut out = vec![format!("{} [{}]", alert.headline(), alert.status.as_str())];
    let Some(route) = routing::route(&catalog.routes, alert) else {
        out.push("no route takes it: recorded as `unrouted`; nothing starts".into());
        return out;
    };
    let group = match routing::group_of(route, alert, &catalog.groups) {
        Ok(g) => g,
        Err(why) => {
            out.push(format!(
                "route `{}`, but {why}: recorded as `no_group`",
                route.name
            ));
            return out;
        }
    };
    out.push(format!(
        "route `{}`: {} of `{group}`",
        route.name, route.action
    ));
    out.push(match &alert.status {
        Status::Other(kind) => format!("{kind} is neither firing nor resolved: recorded as `ignored`"),
        Status::Resolved => "resolved: recorded; withdraws the open confirmation or countdown it made, once its other alerts resolved too".into(),
        Status::Firing => {
            let then = match route.mode {
                RouteMode::Auto => "starts the run at once".to_string(),
                RouteMode::Confirm => "asks in chat (Approve / Reject); the run starts when someone the group allows approves".to_string(),
                RouteMode::Countdown(d) => format!(
                    "counts down {} in chat (Veto / Start now), then starts the run unless vetoed",
                    humantime::format_duration(d)
                ),
            };
            format!(
                "firing: {then}; unless `{group}` has a {} run or offer open (it joins it), or this route started one for `{group}` within its cooldown of {}",
                route.action,
                humantime::format_duration(route.cooldown)
            )
        }
    });
    out
}
