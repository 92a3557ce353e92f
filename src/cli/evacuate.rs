//! `lifeboat evacuate`: many groups moved at once on a running `serve`, in dependency
//! order, followed until the evacuation ends (a line each time its counts change).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::api_client::ApiClient;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["groups", "all"])))]
pub struct Evacuate {
    /// The groups to move.
    groups: Vec<String>,
    /// Every group.
    #[arg(long)]
    all: bool,
    #[arg(long, default_value = "failover")]
    action: String,
    /// Through the real agents, changing nothing.
    #[arg(long)]
    dry_run: bool,
    /// Why: kept with the evacuation and each of its runs.
    #[arg(long)]
    reason: String,
    /// Start it and return, rather than follow it to its end.
    #[arg(long)]
    no_wait: bool,
}

/// How often a followed evacuation is asked how it stands.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(e: Evacuate, server: &str) -> anyhow::Result<ExitCode> {
    let client = ApiClient::new(server)?;
    let groups = if e.all { json!("all") } else { json!(e.groups) };
    let body = json!({
        "groups": groups,
        "action": e.action,
        "dry_run": e.dry_run,
        "reason": e.reason,
    });
    let (status, answer) = client
        .call(&["api", "v1", "evacuations"], Some(&body))
        .await?;
    if !status.is_success() {
        eprintln!(
            "refused ({status}): {}",
            answer["error"].as_str().unwrap_or("no message")
        );
        return Ok(match status {
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::CONFLICT => {
                ExitCode::from(1)
            }
            _ => ExitCode::from(2),
        });
    }
    let id = answer["id"].as_str().unwrap_or_default().to_string();
    println!("evacuation {id}: {} groups", groups_of(&answer).len());
    if e.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    let mut said = String::new();
    loop {
        let (status, now) = client
            .call(&["api", "v1", "evacuations", &id], None)
            .await?;
        if !status.is_success() {
            eprintln!("lost the evacuation ({status}): {}", now["error"]);
            return Ok(ExitCode::from(2));
        }
        let line = counts(&now);
        if line != said {
            println!("{line}");
            said = line;
        }
        match now["state"].as_str() {
            Some("going") | None => tokio::time::sleep(POLL).await,
            Some(end) => {
                for g in groups_of(&now) {
                    if g["state"] != "succeeded" {
                        println!(
                            "  {}: {}{}",
                            g["group"].as_str().unwrap_or("?"),
                            g["state"].as_str().unwrap_or("?"),
                            g["note"]
                                .as_str()
                                .map(|n| format!(" ({n})"))
                                .unwrap_or_default()
                        );
                    }
                }
                println!("evacuation {id} {end}");
                return Ok(if end == "succeeded" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
        }
    }
}

fn groups_of(evacuation: &Value) -> Vec<Value> {
    evacuation["groups"].as_array().cloned().unwrap_or_default()
}

/// "3 succeeded, 2 started, 5 waiting": the states some group is in.
fn counts(evacuation: &Value) -> String {
    evacuation["counts"]
        .as_object()
        .map(|c| {
            c.iter()
                .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                .map(|(state, n)| format!("{n} {state}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
