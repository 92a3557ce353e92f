//! `lifeboat routes test FILE.json`: reads a webhook body, as its source would, and
//! says, for each alert in it, which route takes it and what would happen. Starts nothing
//! and reads no store, so what it cannot know (a run already active, a cooldown running)
//! it names as a condition.

use std::path::Path;

use crate::alerts::Sources;
use crate::alerts::routing;
use crate::alerts::sources::{Headers, Request};
use crate::domain::{Alert, Status};
use crate::workflow::{Catalog, RouteMode};

/// Reads the file's alerts, as the receiver of `source` (or of the sender whose shape it
/// has) would.
pub fn read(
    file: &Path,
    sources: &Sources,
    source: Option<&str>,
) -> anyhow::Result<(String, Vec<Alert>)> {
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
    let sender = match source {
        Some(name) => sources.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "--source {name}: no such source ({})",
                sources.names().join(", ")
            )
        })?,
        None => sources.detect(&value).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: not a body of any source ({}); say which with --source",
                file.display(),
                sources.names().join(", ")
            )
        })?,
    };
    let request = Request {
        headers: &NoHeaders,
        body: &text,
        now_secs: 0,
    };
    let alerts = sender
        .parse(&request)
        .map_err(|e| anyhow::anyhow!("{}: not a {} body: {e}", file.display(), sender.name()))?;
    Ok((sender.name().to_string(), alerts))
}

/// A file has no headers.
struct NoHeaders;

impl Headers for NoHeaders {
    fn get(&self, _: &str) -> Option<&str> {
        None
    }
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
