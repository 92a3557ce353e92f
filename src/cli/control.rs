//! Operator controls from the command line: the same calls as the API's, made to a running
//! `lifeboat serve` (at `LIFEBOAT_SERVER`, by default the configured listen address),
//! with the token in `LIFEBOAT_API_TOKEN`. Each prints the run as it stands afterwards.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::api_client::ApiClient;

#[derive(Subcommand)]
pub enum Control {
    /// Go on from a failed or cancelled run: what did not succeed runs again.
    Resume {
        run: String,
        /// Even if the workflow plans differently now (the run keeps the plan it had).
        #[arg(long)]
        force: bool,
    },
    /// Dispatch a stage waiting out its backoff now.
    Retry { run: String, stage: String },
    /// Give up on a failed stage so that its dependents go on.
    Skip {
        run: String,
        stage: String,
        /// Why: kept with the stage and in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Cancel a run: running work is revoked and stopped.
    Abort {
        run: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Approve a run's open gate (one approval; a group may need two people).
    Approve {
        run: String,
        #[arg(long)]
        stage: Option<String>,
    },
    /// Agent processes heard from in the last hour, and whether each is live.
    Agents,
    /// Each group's readiness, as its last drill found it (or one group's).
    Readiness { group: Option<String> },
}

impl Control {
    /// The API path's segments, and the body to post (none: a GET).
    fn call(&self) -> (Vec<&str>, Option<Value>) {
        match self {
            Control::Resume { run, force } => (
                vec!["api", "v1", "runs", run, "resume"],
                Some(json!({ "force": force })),
            ),
            Control::Retry { run, stage } => (
                vec!["api", "v1", "runs", run, "stages", stage, "retry"],
                Some(json!({})),
            ),
            Control::Skip { run, stage, reason } => (
                vec!["api", "v1", "runs", run, "stages", stage, "skip"],
                Some(json!({ "reason": reason })),
            ),
            Control::Abort { run, reason } => (
                vec!["api", "v1", "runs", run, "cancel"],
                Some(json!({ "reason": reason })),
            ),
            Control::Approve { run, stage } => (
                vec!["api", "v1", "runs", run, "approve"],
                Some(json!({ "stage": stage })),
            ),
            Control::Agents => (vec!["api", "v1", "agents"], None),
            Control::Readiness { .. } => (vec!["api", "v1", "readiness"], None),
        }
    }
}

/// Makes the call; exit 0 when done, 1 when the service refused it (the run's state does
/// not allow it, or four eyes), 2 for bad usage, a bad token or no service.
pub async fn run(control: Control, server: &str) -> anyhow::Result<ExitCode> {
    let (segments, body) = control.call();
    let (status, answer) = ApiClient::new(server)?
        .call(&segments, body.as_ref())
        .await?;
    if !status.is_success() {
        let message = answer["error"].as_str().unwrap_or("no message");
        eprintln!("refused ({status}): {message}");
        return Ok(match status {
            StatusCode::CONFLICT | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                ExitCode::from(1)
            }
            _ => ExitCode::from(2),
        });
    }
    match control {
        Control::Agents => print!("{}", agents(&answer)),
        Control::Readiness { group } => {
            let shown = readiness(&answer, group.as_deref());
            if shown.is_empty() {
                eprintln!("no group `{}`", group.unwrap_or_default());
                return Ok(ExitCode::from(1));
            }
            print!("{shown}");
        }
        _ => print!("{}", run_summary(&answer)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Each group (or only `only`), as the service's readiness answer says.
fn readiness(answer: &Value, only: Option<&str>) -> String {
    let groups: Vec<crate::readiness::Readiness> =
        serde_json::from_value(answer["groups"].clone()).unwrap_or_default();
    groups
        .iter()
        .filter(|g| only.is_none_or(|o| o == g.group))
        .map(crate::readiness::Readiness::summary)
        .collect()
}

fn agents(answer: &Value) -> String {
    let list = answer["agents"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "No agent has sent a heartbeat in the last hour.\n".into();
    }
    list.iter()
        .map(|a| {
            let kinds: Vec<&str> = a["kinds"]
                .as_array()
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "{} {} ({}) on {}, v{}: {} in flight, last seen {}\n",
                if a["live"] == Value::Bool(true) {
                    "live"
                } else {
                    "gone"
                },
                a["instance"].as_str().unwrap_or("?"),
                kinds.join(", "),
                a["host"].as_str().unwrap_or("?"),
                a["version"].as_str().unwrap_or("?"),
                a["in_flight"],
                a["last_seen"].as_str().unwrap_or("?"),
            )
        })
        .collect()
}

fn run_summary(run: &Value) -> String {
    let mut out = format!(
        "run {} ({} of {}): {}\n",
        run["id"].as_str().unwrap_or("?"),
        run["action"].as_str().unwrap_or("?"),
        run["group"].as_str().unwrap_or("?"),
        run["state"].as_str().unwrap_or("?"),
    );
    for s in run["stages"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<20} {:<10} attempt {}{}\n",
            s["name"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?"),
            s["attempts"],
            s["message"]
                .as_str()
                .map(|m| format!("  {m}"))
                .unwrap_or_default(),
        ));
    }
    out
}
