//! `lifeboat run GROUP --server URL`: the run started on a running service through its
//! API and followed there, for when a `serve` holds the store (only one embedded process
//! may). The token comes from `LIFEBOAT_API_TOKEN`, as for the other controls.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use super::api_client::ApiClient;
use crate::workflow::Action;

/// How often the run is read while it goes on.
const POLL: Duration = Duration::from_millis(300);

pub struct RemoteRun {
    pub server: String,
    pub group: String,
    pub action: Action,
    pub dry_run: bool,
    pub reason: Option<String>,
    /// Approve every gate as it opens.
    pub yes: bool,
    /// Start past the preflight and a failback's drift check (audited).
    pub force: bool,
}

/// Starts the run and prints each stage's moves until it ends: exit 0 when it succeeded,
/// 1 when it did not or the service refused it, 2 when the service cannot be reached.
pub async fn run(r: RemoteRun) -> anyhow::Result<ExitCode> {
    let api = ApiClient::new(&r.server)?;
    let (status, created) = api
        .call(
            &["api", "v1", "runs"],
            Some(&json!({
                "group": r.group,
                "action": r.action.to_string(),
                "dry_run": r.dry_run,
                "reason": r.reason,
                "force": r.force,
            })),
        )
        .await?;
    if status != 201 {
        eprintln!(
            "refused ({status}): {}",
            created["error"].as_str().unwrap_or("no message")
        );
        return Ok(ExitCode::from(if status == 401 { 2 } else { 1 }));
    }
    let id = created["id"].as_str().unwrap_or_default().to_string();
    println!("run {id} started on {}\n", r.server);
    let mut seen: HashMap<String, (String, i64)> = HashMap::new();
    let mut asked: Vec<String> = Vec::new();
    let done = loop {
        let (status, run) = api.call(&["api", "v1", "runs", &id], None).await?;
        if status != 200 {
            anyhow::bail!(
                "reading run {id} from {}: {status} {}",
                r.server,
                run["error"].as_str().unwrap_or("")
            );
        }
        for line in moves(&run, &mut seen) {
            println!("{line}");
        }
        for gate in open_gates(&run) {
            if asked.contains(&gate) {
                continue;
            }
            asked.push(gate.clone());
            if r.yes {
                let (status, answer) = api
                    .call(
                        &["api", "v1", "runs", &id, "approve"],
                        Some(&json!({ "stage": gate })),
                    )
                    .await?;
                if status != 200 {
                    println!(
                        "  could not approve `{gate}` ({status}): {}",
                        answer["error"].as_str().unwrap_or("no message")
                    );
                }
            } else {
                println!(
                    "  `{gate}` waits for approval: lifeboat approve {id} --stage {gate} (or Approve on the card)"
                );
            }
        }
        if matches!(
            run["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break run;
        }
        tokio::time::sleep(POLL).await;
    };
    let state = done["state"].as_str().unwrap_or("?");
    println!(
        "\nrun {id}: {state}{}",
        done["message"]
            .as_str()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    Ok(if state == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A line for each stage whose state or attempt changed since the last read.
fn moves(run: &Value, seen: &mut HashMap<String, (String, i64)>) -> Vec<String> {
    let mut out = Vec::new();
    for s in run["stages"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or("?").to_string();
        let now = (
            s["state"].as_str().unwrap_or("?").to_string(),
            s["attempts"].as_i64().unwrap_or(0),
        );
        if now.0 == "pending" || seen.get(&name) == Some(&now) {
            continue;
        }
        let message = s["message"]
            .as_str()
            .map(|m| format!("  {m}"))
            .unwrap_or_default();
        out.push(format!(
            "  {name:<20} {:<10} attempt {}{message}",
            now.0, now.1
        ));
        seen.insert(name, now);
    }
    out
}

/// Stages at a gate no one has passed yet.
fn open_gates(run: &Value) -> Vec<String> {
    run["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["state"] == "ready"
                && (s["approval"] == true || s["held"].is_string())
                && s["approved_by"].is_null()
        })
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}
